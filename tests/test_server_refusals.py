"""Each refusal says its true reason: blocked, not invited to an invite-only project, or not a
member yet. A blocked annotator on an open project was told "project 1 is invite-only"."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of

DIGITS = [str(i) for i in range(10)]


def _project(c: TestClient, oh: dict[str, str], n_clips: int, **extra: object) -> tuple[int, str]:
    """A digits project with `n_clips` clips: (id, one clip's id)."""
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS, **extra}
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    files = {"archive": ("a.zip", zip_of(wavs(n_clips)))}
    assert c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).status_code == 201
    export = c.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    return pid, next(iter(csv.DictReader(io.StringIO(export))))["clip_id"]


def _refused(c: TestClient, headers: dict[str, str], method: str, url: str, **kw: object) -> str:
    r = c.request(method, url, headers=headers, **kw)
    assert r.status_code == 403, (url, r.status_code, r.text)
    return r.json()["detail"]


def _member_routes(pid: int, clip: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/projects/{pid}"),
        ("GET", f"/api/v1/projects/{pid}/status"),
        ("GET", f"/api/v1/projects/{pid}/next"),
        ("GET", f"/api/v1/projects/{pid}/leaderboard"),
        ("GET", f"/api/v1/users/me/progress?project_id={pid}"),
        ("GET", f"/api/v1/clips/{clip}/audio"),
        ("GET", f"/api/v1/clips/{clip}/spectrogram.png"),
    ]


def test_a_blocked_annotator_is_told_they_are_blocked(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid, clip = _project(client, oh, 3)  # open to every annotator
    ah = annotator(client, "ann")
    task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()  # joins
    r = client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={"blocked": True})
    assert r.status_code == 200 and r.json()["blocked"] is True
    for method, url in _member_routes(pid, clip):
        detail = _refused(client, ah, method, url)
        assert "blocked" in detail and "invite-only" not in detail, (url, detail)
    for url in (task["audio_url"], task["spectrogram_url"]):  # their own task's clip: blocked too
        assert "blocked" in _refused(client, ah, "GET", url)
    # the block ended the annotator's lease: the answer is refused for the block, not as a late one
    detail = _refused(client, ah, "POST", f"/api/v1/tasks/{task['task_id']}/answer", json={"answer": "1"})
    assert "blocked" in detail and "expired" not in detail, detail
    assert client.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text.count("\n") == 1
    # unblocked: back at work
    client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={"blocked": False})
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 200


def test_invite_only_refusals_say_so_and_removal_says_blocked(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid, clip = _project(client, oh, 2, invite_only=True)
    ah = annotator(client, "ann")
    for method, url in _member_routes(pid, clip):
        detail = _refused(client, ah, method, url)
        assert "invite-only" in detail and "not invited" in detail and "blocked" not in detail, (url, detail)
    client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 200
    client.request("DELETE", f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    for method, url in _member_routes(pid, clip):
        detail = _refused(client, ah, method, url)
        assert "blocked" in detail and "invite-only" not in detail, (url, detail)


def test_an_open_project_before_joining(client: TestClient) -> None:
    """Nobody is refused an open project itself; its members-only parts say what is missing."""
    oh = login(client, "owner", "owner-pass-1")
    pid, clip = _project(client, oh, 2)
    ah = annotator(client, "ann")
    assert client.get(f"/api/v1/projects/{pid}", headers=ah).status_code == 200
    detail = _refused(client, ah, "GET", f"/api/v1/clips/{clip}/audio")
    assert detail == f"clip {clip} belongs to a project you are not a member of"
    detail = _refused(client, ah, "GET", f"/api/v1/projects/{pid}/leaderboard")
    assert detail == f"the leaderboard of project {pid} is for its members"
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 200  # joins
    detail = _refused(client, ah, "GET", f"/api/v1/clips/{clip}/audio")  # a member hears clips by task
    assert detail == (
        f"clip {clip} is for the owner of its project and its reviewers: "
        "annotators hear clips through their tasks"
    )
