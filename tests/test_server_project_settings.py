"""Settings after creation (`PATCH /api/v1/projects/{id}`) and draft projects, through the API on
SQLite and PostgreSQL: what may change and when, who may change it, and what annotators of a
draft are refused until its owner opens it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of

DIGITS = [str(i) for i in range(10)]


def new_project(c: TestClient, headers: dict[str, str], **extra: object) -> int:
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS, **extra}
    r = c.post("/api/v1/projects", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload(c: TestClient, headers: dict[str, str], pid: int, n: int) -> None:
    files = {"archive": ("a.zip", zip_of(wavs(n)))}
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=headers, files=files)
    assert r.status_code == 201, r.text


def answer_one(c: TestClient, headers: dict[str, str], pid: int) -> int:
    """Lease and answer one task; returns its task id."""
    r = c.get(f"/api/v1/projects/{pid}/next", headers=headers)
    assert r.status_code == 200, r.text
    task = r.json()
    r = c.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=headers, json={"answer": "3"})
    assert r.status_code == 201, r.text
    return task["task_id"]


def patch(c: TestClient, headers: dict[str, str], pid: int, body: dict[str, object]):
    return c.patch(f"/api/v1/projects/{pid}", headers=headers, json=body)


def test_safe_settings_change_at_any_time(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, control_rate=0.0, consistency_rate=0.0)
    upload(client, oh, pid, 4)
    answer_one(client, annotator(client, "ann"), pid)
    change = {
        "name": "spoken digits",
        "redundancy": {"max": 4},
        "retrain_every": 5,
        "strategy": "entropy",
        "learner": "logreg",
        "passive_share": 0.2,
        "control_rate": 0.2,
        "consistency_rate": 0.1,
        "trust_threshold": 0.3,
        "budget": 500,
        "invite_only": True,
    }
    r = patch(client, oh, pid, change)
    assert r.status_code == 200, r.text
    got = client.get(f"/api/v1/projects/{pid}", headers=oh).json()
    for key, value in change.items():
        if key != "redundancy":
            assert got[key] == value, key
    assert got["redundancy"] == {"min": 2, "max": 4, "tau": 0.95}  # the fields left out keep their values
    assert got["classes"] == DIGITS and got["answers_used"] == 1
    # null: the learner's default and no budget
    r = patch(client, oh, pid, {"learner": None, "budget": None})
    assert r.status_code == 200 and r.json()["learner"] == "svm" and r.json()["budget"] is None
    # the change is what `next` and the status use from now on
    assert client.get(f"/api/v1/projects/{pid}/status", headers=oh).json()["budget"] is None


def test_locked_and_invalid_changes_are_refused_with_the_reason(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh)
    # before any clip, label or answer: the classes and the mode may still change
    r = patch(client, oh, pid, {"classes": ["yes", "no"], "mode": "stream"})
    assert r.status_code == 200 and r.json()["classes"] == ["yes", "no"] and r.json()["mode"] == "stream"
    assert set(r.json()["locked"]) == {"task_type", "open"}
    r = patch(client, oh, pid, {"classes": DIGITS, "mode": "pool"})
    assert r.status_code == 200, r.text
    upload(client, oh, pid, 3)
    answer_one(client, annotator(client, "ann"), pid)
    before = client.get(f"/api/v1/projects/{pid}", headers=oh).json()
    assert set(before["locked"]) == {"task_type", "classes", "mode", "open"}

    r = patch(client, oh, pid, {"task_type": "binary", "classes": ["a", "b"], "mode": "stream", "name": "x"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "task type is fixed" in detail and "class list cannot change" in detail and "mode" in detail
    r = patch(client, oh, pid, {"open": False})
    assert r.status_code == 422 and "cannot go back to draft" in r.json()["detail"]
    # a locked setting sent with its current value is no change
    r = patch(client, oh, pid, {"task_type": "classification", "classes": DIGITS, "name": "same rules"})
    assert r.status_code == 200 and r.json()["name"] == "same rules"

    # the result must pass the rules of a new project: every problem at once, by field
    r = patch(client, oh, pid, {"retrain_every": 0, "trust_threshold": 2, "budget": 0})
    assert r.status_code == 422
    assert {p["loc"][-1] for p in r.json()["detail"]} == {"retrain_every", "trust_threshold", "budget"}
    for bad in (
        {"redundancy": {"min": 8}},  # above the maximum of 7 it keeps
        {"control_rate": 0.4, "consistency_rate": 0.3},
        {"retrain_every": 0},
        {"retrain_every": 2**70},  # more than a database column holds: a 422, not a 500
        {"budget": 2**31},
        {"name": ""},
        {"name": None},
        {"budget": 0},
        {"redundancy": {"tau": 1.5}},
        {"colour": "red"},
        {"strategy": "nope"},
        {"learner": "svr"},  # a regressor for a classification task
        {"feature_set": "nope"},
    ):
        r = patch(client, oh, pid, bad)
        assert r.status_code == 422, (bad, r.text)
    after = client.get(f"/api/v1/projects/{pid}", headers=oh).json()
    assert after == {**before, "name": "same rules"}  # nothing refused was stored


def test_only_the_owner_changes_settings(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh)
    ah = annotator(client, "ann")
    assert patch(client, ah, pid, {"name": "mine"}).status_code == 403
    other = login(client, "owner2", "owner-pass-2")
    r = patch(client, other, pid, {"name": "mine"})
    assert r.status_code == 403 and f"only the owner of project {pid}" in r.json()["detail"]
    assert client.patch(f"/api/v1/projects/{pid}", json={"name": "mine"}).status_code == 401
    assert patch(client, oh, pid + 100, {"name": "mine"}).status_code == 404
    assert client.get(f"/api/v1/projects/{pid}", headers=oh).json()["name"] == "digits"


def test_a_draft_is_invisible_to_annotators_until_opened(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    open_pid = new_project(client, oh, name="at once")  # today's fields: open at once
    pid = new_project(client, oh, name="draft", open=False)
    upload(client, oh, pid, 3)
    assert client.get(f"/api/v1/projects/{pid}", headers=oh).json()["open"] is False
    assert "open" not in client.get(f"/api/v1/projects/{pid}", headers=oh).json()["locked"]
    owner_task = client.get(f"/api/v1/projects/{pid}/next", headers=oh)  # the owner may try it out
    assert owner_task.status_code == 200
    owner_audio = owner_task.json()["audio_url"].removeprefix("/api/v1")  # addressed by the task
    export = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    clip = export.splitlines()[1].split(",")[0]

    refusal = f"project {pid} is a draft: its owner has not opened it to annotators yet"
    ah = annotator(client, "ann")
    invited = annotator(client, "bea")
    r = client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "bea"})
    assert r.status_code == 201  # an owner may invite people before opening
    other_owner = login(client, "owner2", "owner-pass-2")
    for who in (ah, invited, other_owner):
        assert [p["id"] for p in client.get("/api/v1/projects", headers=who).json()] == [open_pid]
        for method, path in (
            ("GET", f"/projects/{pid}"),
            ("GET", f"/projects/{pid}/status"),
            ("GET", f"/projects/{pid}/next"),
            ("GET", f"/projects/{pid}/leaderboard"),
            ("GET", f"/users/me/progress?project_id={pid}"),
            ("GET", f"/clips/{clip}/audio"),
            ("GET", f"/clips/{clip}/spectrogram.png"),
        ):
            r = client.request(method, f"/api/v1{path}", headers=who)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["detail"] == refusal

    r = patch(client, oh, pid, {"open": True})
    assert r.status_code == 200 and r.json()["open"] is True and "open" in r.json()["locked"]
    assert [p["id"] for p in client.get("/api/v1/projects", headers=ah).json()] == [open_pid, pid]
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 200
    assert client.get(f"/api/v1/projects/{pid}/next", headers=invited).status_code == 200
    assert client.get(f"/api/v1{owner_audio}", headers=oh).status_code == 200
    assert client.get(f"/api/v1{owner_audio}", headers=invited).status_code == 403  # the owner's task
    # annotators hear clips through their own tasks, never by a clip's id
    assert client.get(f"/api/v1/clips/{clip}/audio", headers=invited).status_code == 403
    mine = client.get(f"/api/v1/projects/{pid}/next", headers=invited).json()
    assert client.get(mine["audio_url"], headers=invited).status_code == 200
    assert client.get(f"/api/v1/projects/{pid}/leaderboard", headers=ah).status_code == 200


def test_rating_tolerance_is_a_continuous_setting(client: TestClient) -> None:
    """`rating_tolerance` (the standard error at which a rating closes): null by default (a
    tenth of the range), set at creation or later, back to null, and refused where it means
    nothing (classes) or is out of range."""
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "loud", "task_type": "continuous", "range": [0, 10]}
    r = client.post("/api/v1/projects", headers=oh, json=body)
    assert r.status_code == 201 and r.json()["rating_tolerance"] is None
    pid = r.json()["id"]
    r = patch(client, oh, pid, {"rating_tolerance": 0.5})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/projects/{pid}", headers=oh).json()["rating_tolerance"] == 0.5
    with client.app.state.db.read() as session:
        from listenloop.engine.live.views import load_view

        assert load_view(session, pid).rating_tolerance == 0.5
    assert patch(client, oh, pid, {"rating_tolerance": None}).json()["rating_tolerance"] is None
    for bad in (0, -1, 11, "wide"):
        r = patch(client, oh, pid, {"rating_tolerance": bad})
        assert r.status_code == 422 and "rating_tolerance" in r.text, (bad, r.text)
    r = client.post("/api/v1/projects", headers=oh, json={**body, "rating_tolerance": 2})
    assert r.status_code == 201 and r.json()["rating_tolerance"] == 2
    digits = new_project(client, oh)
    r = patch(client, oh, digits, {"rating_tolerance": 1})
    assert r.status_code == 422 and "continuous" in r.text
