"""REST API v1 through FastAPI's TestClient on SQLite and PostgreSQL: people, projects, tasks, exports,
access."""

from __future__ import annotations

import csv
import io
import json

from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of

DIGITS = [str(i) for i in range(10)]
REVEALING = ("control", "gold", "consistency", "truth", "is_check")


def new_project(c: TestClient, headers: dict[str, str], **extra: object) -> int:
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS, **extra}
    r = c.post("/api/v1/projects", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload(c: TestClient, headers: dict[str, str], pid: int, files: dict[str, bytes]) -> dict:
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=headers, files={"archive": ("a.zip", zip_of(files))})
    assert r.status_code == 201, r.text
    return r.json()


def answers_csv(c: TestClient, headers: dict[str, str], pid: int) -> list[dict[str, str]]:
    r = c.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=headers)
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


def test_register_token_and_me(client: TestClient) -> None:
    r = client.post("/api/v1/users", json={"username": "ann", "password": "ann-password"})
    assert r.status_code == 201 and r.json()["role"] == "annotator"
    assert (
        client.post("/api/v1/users", json={"username": "ann", "password": "other-password"}).status_code
        == 409
    )
    assert client.post("/api/v1/users", json={"username": "bob", "password": "short"}).status_code == 422
    assert client.post("/api/v1/users", json={"username": "bob"}).status_code == 422
    bad = client.post("/api/v1/token", data={"username": "ann", "password": "wrong-password"})
    assert bad.status_code == 401
    assert client.post("/api/v1/token", data={"username": "nobody", "password": "x"}).status_code == 401
    h = login(client, "ann", "ann-password")
    assert client.get("/api/v1/users/me", headers=h).json()["username"] == "ann"


def test_token_sets_no_cookie_and_session_sign_in_does(client: TestClient) -> None:
    """API clients keep a cookie jar: /token must not leave them signed in by cookie."""
    client.post("/api/v1/users", json={"username": "ann", "password": "ann-password"})
    assert (
        "set-cookie"
        not in client.post("/api/v1/token", data={"username": "ann", "password": "ann-password"}).headers
    )
    assert client.get("/api/v1/users/me").status_code == 401
    pages = {"X-Requested-With": "listenloop"}  # the pages' sign-in needs it (no login CSRF)
    wrong = client.post("/api/v1/session", headers=pages, data={"username": "ann", "password": "wrong-pass"})
    assert wrong.status_code == 401
    r = client.post("/api/v1/session", headers=pages, data={"username": "ann", "password": "ann-password"})
    assert r.status_code == 200 and r.json()["username"] == "ann"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "access_token" not in r.text
    assert client.get("/api/v1/users/me").json()["username"] == "ann"  # the cookie signs GETs in
    assert client.get("/api/v1/session").json()["user"]["username"] == "ann"
    # a cookie-only change needs the CSRF header
    refused = client.post("/api/v1/logout")
    assert refused.status_code == 403 and "X-Requested-With" in refused.json()["detail"]
    assert client.get("/api/v1/users/me").status_code == 200
    assert client.post("/api/v1/logout", headers={"X-Requested-With": "listenloop"}).status_code == 204
    assert client.get("/api/v1/users/me").status_code == 401  # cookie cleared ...
    client.cookies.set("listenloop_session", r.cookies["listenloop_session"])
    assert client.get("/api/v1/users/me").status_code == 401  # ... and its token revoked


def test_no_or_bad_token_is_401(client: TestClient) -> None:
    assert client.get("/api/v1/projects").status_code == 401
    r = client.get("/api/v1/projects", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/v1/tasks/1/answer", json={"answer": "1"}).status_code == 401


def test_project_with_minimal_config_gets_defaults(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh)
    project = client.get(f"/api/v1/projects/{pid}", headers=oh).json()
    assert project["classes"] == DIGITS and project["strategy"] == "auto" and project["learner"] == "svm"
    assert project["redundancy"] == {"min": 2, "max": 7, "tau": 0.95} and project["budget"] is None
    r = client.post(
        "/api/v1/projects", headers=oh, json={"name": "loud", "task_type": "continuous", "range": [0, 10]}
    )
    assert r.status_code == 201 and r.json()["strategy"] == "regression_binary_confidence"
    for bad in (
        {"name": "x", "task_type": "classification"},  # no classes
        {"name": "x", "task_type": "binary", "classes": ["a", "b", "c"]},
        {"name": "x", "task_type": "continuous", "range": [3, 1]},
        {"name": "x", "task_type": "classification", "classes": ["a", "b"], "strategy": "nope"},
        {"name": "x", "task_type": "classification", "classes": ["a", "b"], "colour": "red"},
        {"name": "x", "task_type": "classification", "classes": ["a", "a"]},
    ):
        assert client.post("/api/v1/projects", headers=oh, json=bad).status_code == 422, bad
    listed = client.get("/api/v1/projects", headers=oh).json()
    assert [p["name"] for p in listed] == ["digits", "loud"]


def test_annotator_is_kept_off_owner_routes(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh)
    upload(client, oh, pid, wavs(3))
    ah = annotator(client, "ann")
    body = {"name": "x", "task_type": "binary", "classes": ["a", "b"]}
    assert client.post("/api/v1/projects", headers=ah, json=body).status_code == 403
    for path in ("export?format=csv", "export?format=jsonl", "answers?format=csv", "members"):
        assert client.get(f"/api/v1/projects/{pid}/{path}", headers=ah).status_code == 403, path
    files = {"archive": ("a.zip", zip_of(wavs(1)))}
    assert client.post(f"/api/v1/projects/{pid}/clips", headers=ah, files=files).status_code == 403
    gold = {"file": ("g.csv", b"file,label\n0_george_0.wav,0\n")}
    assert client.post(f"/api/v1/projects/{pid}/gold", headers=ah, files=gold).status_code == 403
    assert (
        client.post(f"/api/v1/projects/{pid}/members", headers=ah, json={"username": "ann"}).status_code
        == 403
    )
    # another owner is no owner of this project either
    o2 = login(client, "owner2", "owner-pass-2")
    assert client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=o2).status_code == 403
    assert client.get("/api/v1/projects/999/status", headers=oh).status_code == 404
    project = client.get(f"/api/v1/projects/{pid}", headers=ah).json()
    assert "control_rate" not in project and project["classes"] == DIGITS


def test_next_answer_retry_and_others_task(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, control_rate=0.3, consistency_rate=0.0)
    files = wavs(12)
    assert upload(client, oh, pid, files) == {"added": 12, "rejected": []}
    gold = "file,label\n" + "".join(f"{n},{n.split('_')[0]}\n" for n in list(files)[:3])
    r = client.post(f"/api/v1/projects/{pid}/gold", headers=oh, files={"file": ("g.csv", gold.encode())})
    assert r.status_code == 201 and r.json() == {"marked": 3, "rejected": []}
    a1, a2 = annotator(client, "ann"), annotator(client, "bob")
    acked = []
    for _ in range(20):
        r = client.get(f"/api/v1/projects/{pid}/next", headers=a1)
        if r.status_code == 204:
            break
        assert r.status_code == 200, r.text
        assert not any(word in r.text.lower() for word in REVEALING), r.text
        task = r.json()
        assert set(task) == {"task_id", "audio_url", "spectrogram_url", "question", "leased_until"}
        assert "can't tell" in task["question"]["choices"]
        again = client.get(f"/api/v1/projects/{pid}/next", headers=a1).json()
        assert again["task_id"] == task["task_id"]  # an open lease is handed out again
        tid = task["task_id"]
        assert client.post(f"/api/v1/tasks/{tid}/answer", headers=a2, json={"answer": "1"}).status_code == 403
        assert (
            client.post(f"/api/v1/tasks/{tid}/answer", headers=a1, json={"answer": "eleven"}).status_code
            == 422
        )
        assert client.post(f"/api/v1/tasks/{tid}/answer", headers=a1, json={"wrong": "1"}).status_code == 422
        r = client.post(f"/api/v1/tasks/{tid}/answer", headers=a1, json={"answer": "1"})
        assert r.status_code == 201 and r.json()["points"] >= 10, r.text
        acked.append(str(tid))
        r = client.post(f"/api/v1/tasks/{tid}/answer", headers=a1, json={"answer": "2"})
        assert r.status_code == 409
    assert client.post("/api/v1/tasks/99999/answer", headers=a1, json={"answer": "1"}).status_code == 404
    rows = answers_csv(client, oh, pid)
    assert [r["task_id"] for r in rows] == acked  # each acknowledged answer exactly once
    assert {r["answer"] for r in rows} == {"1"} and {r["annotator"] for r in rows} == {"ann"}
    assert {r["kind"] for r in rows} <= {"regular", "control"} and len(acked) >= 9
    assert list(rows[0]) == ["task_id", "clip_id", "annotator", "answer", "kind", "answered_at"]


def test_export_labels_and_annotators(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(
        client, oh, redundancy={"min": 2, "max": 3, "tau": 0.75}, control_rate=0.0, consistency_rate=0.0
    )
    files = wavs(2)
    upload(client, oh, pid, files)
    heads = [annotator(client, name) for name in ("ann", "bob")]
    for h in heads:
        for _ in range(2):
            task = client.get(f"/api/v1/projects/{pid}/next", headers=h).json()
            label = "0"
            assert (
                client.post(
                    f"/api/v1/tasks/{task['task_id']}/answer", headers=h, json={"answer": label}
                ).status_code
                == 201
            )
    r = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    clips = list(csv.DictReader(io.StringIO(r.text)))
    assert [c["file"] for c in clips] == list(files)
    assert all(c["label"] == "0" and c["status"] == "done" and c["answers"] == "2" for c in clips)
    assert all(float(c["confidence"]) >= 0.75 and json.loads(c["soft"])["0"] == 1.0 for c in clips)
    people = client.get(f"/api/v1/projects/{pid}/export?format=csv&table=annotators", headers=oh).text
    assert next(iter(csv.DictReader(io.StringIO(people)))).keys() >= {"annotator", "trust", "answers"}
    lines = client.get(f"/api/v1/projects/{pid}/export?format=jsonl", headers=oh).text.splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["record"] for r in records] == ["clip", "clip", "annotator", "annotator", "agreement"]
    assert records[-1]["answers_used"] == 4  # the crowd's agreement statistics close the export
    assert client.get(f"/api/v1/projects/{pid}/export?format=xml", headers=oh).status_code == 422
    status = client.get(f"/api/v1/projects/{pid}/status", headers=heads[0]).json()
    assert status["labels_done"] == 2 and status["answers_used"] == 4 and status["progress"] == 1.0
    assert status["model_scores"] == [] and status["budget_left"] is None
    assert client.get(f"/api/v1/projects/{pid}/next", headers=heads[0]).status_code == 204


def test_budget_stops_handing_out_tasks(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, budget=2, control_rate=0.0, consistency_rate=0.0)
    upload(client, oh, pid, wavs(5))
    ah = annotator(client, "ann")
    for _ in range(2):
        task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
        client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "3"})
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 204
    assert client.get(f"/api/v1/projects/{pid}/status", headers=oh).json()["budget_left"] == 0


def test_audio_and_spectrogram_by_task_and_clip_audio_for_owners(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    open_pid = new_project(client, oh)
    upload(client, oh, open_pid, wavs(2))
    closed_pid = new_project(client, oh, invite_only=True)
    upload(client, oh, closed_pid, dict(list(wavs(4).items())[2:]))
    ah = annotator(client, "ann")
    task = client.get(f"/api/v1/projects/{open_pid}/next", headers=ah).json()  # joins the open project
    r = client.get(task["audio_url"], headers=ah)
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    r = client.get(task["spectrogram_url"], headers=ah)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(task["spectrogram_url"], headers=ah).content == r.content  # cached
    assert task["audio_url"] == f"/api/v1/tasks/{task['task_id']}/audio"  # no clip identity
    assert client.get(task["audio_url"], headers=oh).status_code == 200  # the project's owner
    other = annotator(client, "bob")
    assert client.get(task["audio_url"], headers=other).status_code == 403  # another annotator's task
    assert client.get(task["spectrogram_url"], headers=other).status_code == 403
    assert client.get("/api/v1/tasks/999/audio", headers=ah).status_code == 404
    assert client.get(task["audio_url"]).status_code == 401
    opened = client.get(f"/api/v1/projects/{open_pid}/export?format=csv", headers=oh).text
    open_clip = next(iter(csv.DictReader(io.StringIO(opened))))["clip_id"]
    assert client.get(f"/api/v1/clips/{open_clip}/audio", headers=oh).status_code == 200  # owners: by clip
    assert client.get(f"/api/v1/clips/{open_clip}/audio", headers=ah).status_code == 403  # a member: no
    closed = client.get(f"/api/v1/projects/{closed_pid}/export?format=csv", headers=oh).text
    closed_clip = next(iter(csv.DictReader(io.StringIO(closed))))["clip_id"]
    assert client.get(f"/api/v1/clips/{closed_clip}/audio", headers=ah).status_code == 403
    assert client.get(f"/api/v1/clips/{closed_clip}/spectrogram.png", headers=ah).status_code == 403
    assert client.get(f"/api/v1/projects/{closed_pid}/next", headers=ah).status_code == 403
    assert client.get("/api/v1/clips/999/audio", headers=ah).status_code == 404
    assert client.get(f"/api/v1/clips/{closed_clip}/audio").status_code == 401
    assert [p["id"] for p in client.get("/api/v1/projects", headers=ah).json()] == [open_pid]
    # invited: now a member; removed: out again
    r = client.post(f"/api/v1/projects/{closed_pid}/members", headers=oh, json={"username": "ann"})
    assert r.status_code == 201 and r.json()["active"] is True
    assert client.get(f"/api/v1/clips/{closed_clip}/audio", headers=ah).status_code == 403  # by task only
    closed_task = client.get(f"/api/v1/projects/{closed_pid}/next", headers=ah)
    assert closed_task.status_code == 200
    assert client.get(closed_task.json()["audio_url"], headers=ah).status_code == 200
    r = client.request(
        "DELETE", f"/api/v1/projects/{closed_pid}/members", headers=oh, json={"username": "ann"}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get(closed_task.json()["audio_url"], headers=ah).status_code == 403  # removed
    assert (
        client.post(
            f"/api/v1/projects/{closed_pid}/members", headers=oh, json={"username": "zed"}
        ).status_code
        == 404
    )


def test_openapi_and_docs(client: TestClient) -> None:
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # nothing from another host
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/users",
        "/api/v1/token",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}/clips",
        "/api/v1/projects/{project_id}/gold",
        "/api/v1/projects/{project_id}/next",
        "/api/v1/tasks/{task_id}/answer",
        "/api/v1/projects/{project_id}/status",
        "/api/v1/projects/{project_id}/export",
        "/api/v1/projects/{project_id}/answers",
        "/api/v1/projects/{project_id}/members",
        "/api/v1/clips/{clip_id}/audio",
        "/api/v1/clips/{clip_id}/spectrogram.png",
    ):
        assert path in paths, path
