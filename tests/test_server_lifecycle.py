"""A project's lifecycle (issue 21) through the API on SQLite and PostgreSQL: pause, resume and
archive (what annotators and uploads get), delete (confirmation, rows and files gone, shared
files kept, the audit event kept) and the retention job for raw answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api_support import annotator, login, wavs, zip_of
from listenloop.engine.learning.service import LearningService
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, Project, Task, utcnow


def make_project(c: TestClient, headers: dict[str, str], name: str, files: dict[str, bytes]) -> int:
    body = {
        "name": name,
        "task_type": "classification",
        "classes": [str(i) for i in range(10)],
        "redundancy": {"min": 2, "max": 2, "tau": 0.75},
        "control_rate": 0.0,
        "consistency_rate": 0.0,
    }
    r = c.post("/api/v1/projects", headers=headers, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=headers, files={"archive": ("a.zip", zip_of(files))})
    assert r.status_code == 201, r.text
    return pid


def lease(c: TestClient, pid: int, headers: dict[str, str]) -> int:
    r = c.get(f"/api/v1/projects/{pid}/next", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def test_pause_resume_archive(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = make_project(client, oh, "life", wavs(4))
    base = f"/api/v1/projects/{pid}"
    ann = annotator(client, "ann")
    held = lease(client, pid, ann)
    r = client.post(f"{base}/pause", headers=oh)
    assert r.status_code == 200 and r.json() == {"project_id": pid, "state": "paused"}
    r = client.get(f"{base}/next", headers=ann)
    assert r.status_code == 409 and "paused" in r.json()["detail"]
    assert (
        annotator(client, "late")
        and client.get(f"{base}/next", headers=login(client, "late", "late-password")).status_code == 409
    )
    # an answer to a lease taken before the pause still counts
    assert client.post(f"/api/v1/tasks/{held}/answer", headers=ann, json={"answer": "1"}).status_code == 201
    assert {p["id"]: p["state"] for p in client.get("/api/v1/projects", headers=ann).json()}[pid] == "paused"
    assert client.post(f"{base}/pause", headers=oh).json()["state"] == "paused"  # again: no-op
    assert client.post(f"{base}/resume", headers=oh).json()["state"] == "active"
    held = lease(client, pid, ann)
    # archived: read-only; open leases end, nothing is served or uploaded, the owner still reads
    assert client.post(f"{base}/archive", headers=oh).json()["state"] == "archived"
    r = client.post(f"/api/v1/tasks/{held}/answer", headers=ann, json={"answer": "1"})
    assert r.status_code == 409, r.text
    r = client.get(f"{base}/next", headers=ann)
    assert r.status_code == 409 and "archived" in r.json()["detail"]
    r = client.post(f"{base}/clips", headers=oh, files={"archive": ("b.zip", zip_of(wavs(5)))})
    assert r.status_code == 409 and "archived" in r.json()["detail"]
    assert client.get(f"{base}/export?format=csv", headers=oh).status_code == 200
    assert client.get(base, headers=oh).json()["state"] == "archived"
    r = client.post(f"{base}/pause", headers=oh)
    assert r.status_code == 409 and "resume it" in r.json()["detail"]
    assert client.post(f"{base}/resume", headers=oh).json()["state"] == "active"
    assert client.get(f"{base}/next", headers=ann).status_code == 200
    # only the owner
    assert client.post(f"{base}/pause", headers=ann).status_code == 403
    assert client.post(f"{base}/pause", headers=login(client, "owner2", "owner-pass-2")).status_code == 403
    with client.app.state.db.read() as s:
        kinds = list(
            s.scalars(
                select(Event.kind)
                .where(Event.project_id == pid, Event.kind.like("project_%"))
                .order_by(Event.id)
            )
        )
    assert kinds == [
        "project_created",
        "project_paused",
        "project_resumed",
        "project_archived",
        "project_resumed",
    ]


def test_delete_needs_its_name_and_removes_rows_and_files(client: TestClient, tmp_path: Path) -> None:
    oh = login(client, "owner", "owner-pass-1")
    files = wavs(4)
    pid = make_project(client, oh, "doomed", files)
    shared_name = sorted(files)[0]
    other = make_project(
        client, login(client, "owner2", "owner-pass-2"), "keeper", {shared_name: files[shared_name]}
    )
    ann = annotator(client, "ann")
    task = lease(client, pid, ann)
    assert client.post(f"/api/v1/tasks/{task}/answer", headers=ann, json={"answer": "0"}).status_code == 201
    db: Database = client.app.state.db
    data = tmp_path / "data"
    with db.read() as s:
        clips = s.execute(select(Clip.id, Clip.path, Clip.sha256).where(Clip.project_id == pid)).all()
        kept_path = s.scalar(select(Clip.path).where(Clip.project_id == other))
    for clip_id, _, _ in clips:  # render the spectrograms, which go too
        assert client.get(f"/api/v1/clips/{clip_id}/spectrogram.png", headers=oh).status_code == 200
    assert all((data / rel).is_file() for _, rel, _ in clips)
    models = data / "models" / f"project-{pid}" / "v1"  # a model version's files go too
    models.mkdir(parents=True)
    (models / "model.json").write_text("{}")
    base = f"/api/v1/projects/{pid}"
    # no confirmation, or the wrong one: 422 and nothing deleted
    assert client.request("DELETE", base, headers=oh).status_code == 422
    r = client.request("DELETE", base, headers=oh, json={"confirm": "Doomed"})
    assert r.status_code == 422 and "its name exactly" in r.json()["detail"]
    r = client.request(
        "DELETE", base, headers=login(client, "owner2", "owner-pass-2"), json={"confirm": "doomed"}
    )
    assert r.status_code == 403
    assert client.get(base, headers=oh).status_code == 200
    r = client.request("DELETE", base, headers=oh, json={"confirm": "doomed"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["project"], out["name"], out["clips"], out["answers"]) == (pid, "doomed", 4, 1)
    assert out["files_removed"] == 3 and out["files_kept"] == 0  # the shared file stays
    assert client.get(base, headers=oh).status_code == 404
    with db.read() as s:
        assert s.get(Project, pid) is None
        assert s.scalar(select(func.count()).select_from(Clip).where(Clip.project_id == pid)) == 0
        assert s.scalar(select(func.count()).select_from(Task).where(Task.project_id == pid)) == 0
        assert s.scalar(select(func.count()).select_from(Event).where(Event.project_id == pid)) == 0
        audit = s.scalars(select(Event).where(Event.kind == "project_deleted")).one()
    assert audit.project_id is None and audit.data["project"] == pid and audit.data["name"] == "doomed"
    assert audit.data["files_removed"] == 3 and audit.user_id is not None
    gone = [rel for _, rel, _ in clips if rel != kept_path]
    assert len(gone) == 3 and not any((data / rel).exists() for rel in gone)
    assert (data / kept_path).is_file() and not models.parent.exists()
    pictures = {p.name for p in (data / "spectrograms").rglob("*.png")}
    assert len(pictures) == 1 and not any(
        f"{sha}.png" in pictures for _, rel, sha in clips if rel != kept_path
    )
    assert (
        client.get(
            f"/api/v1/projects/{other}/status", headers=login(client, "owner2", "owner-pass-2")
        ).status_code
        == 200
    )


def test_retention_deletes_old_raw_answers_and_keeps_labels(client: TestClient, tmp_path: Path) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = make_project(client, oh, "kept short", wavs(3))
    db: Database = client.app.state.db
    with db.write() as s:
        for clip in s.scalars(select(Clip).where(Clip.project_id == pid)):
            clip.rank = float(clip.id)
    a, b = annotator(client, "a"), annotator(client, "b")
    for who in (a, b):  # both answer the first clip alike: it is done; a also answers the second
        task = lease(client, pid, who)
        assert (
            client.post(f"/api/v1/tasks/{task}/answer", headers=who, json={"answer": "0"}).status_code == 201
        )
    task = lease(client, pid, a)
    assert client.post(f"/api/v1/tasks/{task}/answer", headers=a, json={"answer": "0"}).status_code == 201
    r = client.put(f"/api/v1/projects/{pid}/retention", headers=oh, json={"days": 30})
    assert r.status_code == 200 and r.json() == {"project_id": pid, "retention_days": 30}
    assert client.put(f"/api/v1/projects/{pid}/retention", headers=oh, json={"days": -1}).status_code == 422
    service = LearningService(db, tmp_path / "data", inline=True)
    assert service.sweep_retention(force=True) == {}  # nothing is 30 days old yet
    old = utcnow() - timedelta(days=31)
    with db.write() as s:
        done = s.scalars(select(Clip).where(Clip.project_id == pid, Clip.status == "done")).one()
        done_id, label = done.id, done.label
        open_id = s.scalars(select(Clip.id).where(Clip.project_id == pid, Clip.n_answers == 1)).one()
        done.updated_at = old
        for t in s.scalars(select(Task).where(Task.project_id == pid)):
            t.answered_at = old
    assert service.sweep_retention(force=True) == {pid: 2}
    assert service.sweep_retention() == {}  # not due again for an hour
    with db.read() as s:
        left = s.execute(select(Task.clip_id).where(Task.project_id == pid)).scalars().all()
        clip = s.get(Clip, done_id)
        event = s.scalars(select(Event).where(Event.project_id == pid, Event.kind == "answers_expired")).one()
    assert left == [open_id]  # the open clip's answer stays however old
    assert (clip.status, clip.label, clip.n_answers) == ("done", label, 2)
    assert event.data == {"answers": 2, "retention_days": 30}
    export = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    assert f"{done_id}," in export and ",done," in export
    # null: kept for ever again
    assert (
        client.put(f"/api/v1/projects/{pid}/retention", headers=oh, json={"days": None}).json()[
            "retention_days"
        ]
        is None
    )
