"""Undo through REST API v1 (`DELETE /api/v1/tasks/{id}/answer`) on SQLite and PostgreSQL: the
annotator's own last answer comes back as an open task; others' tasks, unknown tasks and answers
that later ones rest on are refused with their reason."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api_support import annotator, login, wavs
from listenloop.crowd.worker_prior import PRIOR_TRUST
from test_server_api import answers_csv, new_project, upload


def next_task(c: TestClient, headers: dict[str, str], pid: int) -> dict:
    r = c.get(f"/api/v1/projects/{pid}/next", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def answer(c: TestClient, headers: dict[str, str], task_id: int, value: str) -> dict:
    r = c.post(f"/api/v1/tasks/{task_id}/answer", headers=headers, json={"answer": value})
    assert r.status_code == 201, r.text
    return r.json()


def undo(c: TestClient, headers: dict[str, str], task_id: int) -> object:
    return c.delete(f"/api/v1/tasks/{task_id}/answer", headers=headers)


def test_undo_serves_the_task_again_and_the_new_answer_is_stored(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, control_rate=0.0, consistency_rate=0.0)
    upload(client, oh, pid, wavs(4))
    ah, bh = annotator(client, "ann"), annotator(client, "bob")
    task = next_task(client, ah, pid)
    tid = task["task_id"]
    assert undo(client, ah, tid).status_code == 409  # leased, not answered: nothing to undo
    assert answer(client, ah, tid, "3")["total_points"] == 10
    assert client.delete(f"/api/v1/tasks/{tid}/answer").status_code == 401
    other = undo(client, bh, tid)
    assert other.status_code == 403 and "another annotator" in other.json()["detail"]
    assert undo(client, ah, 999999).status_code == 404
    r = undo(client, ah, tid)
    assert r.status_code == 200, r.text
    assert r.json() == {"task_id": tid, "project_id": pid, "points": 10, "total_points": 0, "level": 1}
    again = undo(client, ah, tid)
    assert again.status_code == 409 and "no answer to undo" in again.json()["detail"]
    assert answers_csv(client, oh, pid) == []  # the answer is gone from the owner's export
    status = client.get(f"/api/v1/projects/{pid}/status", headers=oh).json()
    assert status["answers_used"] == 0
    assert next_task(client, ah, pid)["task_id"] == tid  # the same task, served again
    assert answer(client, ah, tid, "7")["total_points"] == 10
    rows = answers_csv(client, oh, pid)
    assert [(r["task_id"], r["answer"], r["annotator"]) for r in rows] == [(str(tid), "7", "ann")]
    table = {a["username"]: a for a in client.get(f"/api/v1/projects/{pid}/annotators", headers=oh).json()}
    assert table["ann"]["answers"] == 1 and table["ann"]["points"] == 10
    progress = client.get("/api/v1/users/me/progress", headers=ah).json()
    assert progress["answers"] == 1 and progress["points"] == 10


def test_undo_refuses_with_the_reason_when_a_later_answer_rests_on_it(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(
        client, oh, control_rate=0.0, consistency_rate=0.0, redundancy={"min": 2, "max": 3, "tau": 0.8}
    )
    upload(client, oh, pid, wavs(4))
    ah, bh, ch = annotator(client, "ann"), annotator(client, "bob"), annotator(client, "cid")
    first = next_task(client, ah, pid)["task_id"]
    answer(client, ah, first, "1")
    second = next_task(client, ah, pid)["task_id"]
    answer(client, ah, second, "1")
    r = undo(client, ah, first)
    assert r.status_code == 409 and "last answer" in r.json()["detail"]
    on_first = next_task(client, bh, pid)["task_id"]  # bob gets ann's first clip (two at once) ...
    answer(client, bh, on_first, "5")  # ... and disagrees: the clip stays open
    assert undo(client, ah, second).status_code == 200  # ann's last answer: fine
    r = undo(client, ah, first)  # now her last, but bob answered that clip after her
    assert r.status_code == 409 and "after you" in r.json()["detail"]
    third = next_task(client, ch, pid)["task_id"]
    answer(client, ch, third, "5")  # agrees with bob: the clip is decided by this answer
    r = undo(client, ch, third)
    assert r.status_code == 409 and "decided" in r.json()["detail"]
    rows = answers_csv(client, oh, pid)
    assert sorted((r["annotator"], r["answer"]) for r in rows) == [("ann", "1"), ("bob", "5"), ("cid", "5")]


def test_undoing_a_control_answer_takes_its_check_back_everywhere(client: TestClient) -> None:
    """Trust and the owner's control accuracy forget a check whose answer was taken back."""
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, control_rate=0.5, consistency_rate=0.0)
    files = wavs(12)
    upload(client, oh, pid, files)
    gold = "file,label\n" + "".join(f"{n},{n.split('_')[0]}\n" for n in list(files)[:3])
    assert (
        client.post(
            f"/api/v1/projects/{pid}/gold", headers=oh, files={"file": ("g.csv", gold.encode())}
        ).status_code
        == 201
    )
    ah = annotator(client, "ann")
    for _ in range(30):
        tid = next_task(client, ah, pid)["task_id"]
        answer(client, ah, tid, "9")  # never right on the control clips (digits 0)
        if answers_csv(client, oh, pid)[-1]["kind"] == "control":
            break
    else:
        raise AssertionError("no control question in 30 tasks at a control rate of 0.5")
    table = client.get(f"/api/v1/projects/{pid}/annotators", headers=oh).json()
    assert table[0]["control"]["checked"] == 1 and table[0]["trust"] < PRIOR_TRUST
    assert undo(client, ah, tid).status_code == 200  # the same rule as any answer
    table = client.get(f"/api/v1/projects/{pid}/annotators", headers=oh).json()
    assert table[0]["control"] == {"checked": 0, "right": 0, "accuracy": None}
    assert table[0]["checked"] == 0 and table[0]["trust"] == PRIOR_TRUST


def test_a_blocked_annotator_cannot_undo(client: TestClient) -> None:
    """Blocking ends the annotator's work: an undone answer could never be given again."""
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, control_rate=0.0, consistency_rate=0.0)
    upload(client, oh, pid, wavs(3))
    ah = annotator(client, "ann")
    tid = next_task(client, ah, pid)["task_id"]
    answer(client, ah, tid, "4")
    r = client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={"blocked": True})
    assert r.status_code == 200, r.text
    refused = undo(client, ah, tid)
    assert refused.status_code == 403 and "blocked" in refused.json()["detail"]
    assert [row["answer"] for row in answers_csv(client, oh, pid)] == ["4"]
