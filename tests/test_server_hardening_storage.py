"""Issue 15 (storage and membership): a removed member's leases end, CSV exports escape formulas,
start-up cleans what a crash left, and uploads are bounded by whole-archive expansion and a
per-project storage quota."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of

DIGITS = [str(i) for i in range(10)]


def _project(c: TestClient, oh: dict[str, str], n_clips: int, **extra: object) -> int:
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS, **extra}
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    if n_clips:
        files = {"archive": ("a.zip", zip_of(wavs(n_clips)))}
        assert c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).status_code == 201
    return pid


def test_a_removed_member_cannot_answer_their_open_lease(client: TestClient) -> None:
    """Finding 12: DELETE …/members ends the removed member's open leases, as blocking does."""
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, 2, invite_only=True)
    ah = annotator(client, "ann")
    client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
    r = client.request("DELETE", f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    assert r.status_code == 200 and r.json()["active"] is False
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 403, r.text
    assert "blocked" in r.json()["detail"]
    answers = client.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text
    assert list(csv.DictReader(io.StringIO(answers))) == []
    # invited again: the old lease stays ended (no answer to it), a new task works
    client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 409, r.text
    task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 201, r.text
