"""Owner exports come from a child process at a lower CPU priority (issue 17: an export during
the load must not raise the annotators' p99), byte for byte the file the server's own thread
would have written; a failing child breaks the download instead of ending it early, and a
download the client leaves ends its child."""

from __future__ import annotations

import dataclasses
import json
import os
from multiprocessing.process import BaseProcess
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of
from listenloop.engine import export_process
from listenloop.engine.accounts import Principal, create_user, hash_password
from listenloop.engine.config import ProjectConfig
from listenloop.engine.export_process import ExportOrder, in_child, in_thread
from listenloop.engine.projects import create_project
from listenloop.errors import ListenloopError
from listenloop.store.database import Database
from row_support import queued_clip

LS_AUDIO = "http://testserver/api/v1/clips/{clip_id}/audio"  # TestClient's base URL
KINDS = [
    ("export?format=csv", ExportOrder(0, "labels", "csv")),
    ("export?format=csv&table=annotators", ExportOrder(0, "labels", "csv", "annotators")),
    ("export?format=jsonl", ExportOrder(0, "labels", "jsonl")),
    ("export?format=crowdkit", ExportOrder(0, "crowdkit")),
    ("answers?format=csv", ExportOrder(0, "answers", "csv")),
    ("answers?format=jsonl", ExportOrder(0, "answers", "jsonl")),
    ("export?format=labelstudio", ExportOrder(0, "labelstudio", "json", audio_url=LS_AUDIO)),
]


class Spawned:
    """`export_process.start_child`, keeping each child it starts."""

    def __init__(self) -> None:
        self.children: list[BaseProcess] = []
        self._start = export_process.start_child  # the real one, before the patch

    def __call__(self, *args: Any) -> tuple[BaseProcess, Any]:
        child, reader = self._start(*args)
        self.children.append(child)
        return child, reader


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    spy = Spawned()
    monkeypatch.setattr(export_process, "start_child", spy)
    return spy


def _setting(monkeypatch: pytest.MonkeyPatch, db: Database, **update: Any) -> None:
    monkeypatch.setattr(db, "settings", db.settings.model_copy(update=update))


def _timeless(content: bytes) -> list[Any]:
    """An export's lines, JSON ones parsed without the agreement record's `computed_at` (the
    moment of the export: two exports a moment apart differ there)."""
    if content.startswith(b"["):  # Label Studio's one JSON list: nothing in it is timed
        return [json.loads(content)]
    lines: list[Any] = []
    for line in content.decode().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            record.pop("computed_at", None)
            lines.append(record)
        else:
            lines.append(line)
    return lines


def test_every_export_comes_from_a_child_and_equals_the_in_process_file(
    client: TestClient, spawned: Spawned, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(monkeypatch, client.app.state.db, export_process_min_clips=0)  # even 6 clips
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "p", "task_type": "classification", "classes": ["a", "b"]}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    files = {"archive": ("a.zip", zip_of(wavs(6)))}
    assert client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).status_code == 201
    ann = annotator(client, "ann")
    for _ in range(4):
        task = client.get(f"/api/v1/projects/{pid}/next", headers=ann).json()
        r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ann, json={"answer": "a"})
        assert r.status_code in (200, 201), r.text
    db: Database = client.app.state.db
    for path, order in KINDS:
        before = len(spawned.children)
        r = client.get(f"/api/v1/projects/{pid}/{path}", headers=oh)
        assert r.status_code == 200, (path, r.text)
        assert len(spawned.children) == before + 1, path  # one child per download
        assert spawned.children[-1].exitcode == 0
        order = dataclasses.replace(order, project_id=pid)
        assert _timeless(r.content) == _timeless(b"".join(in_thread(db, order))), path
        assert r.content.count(b"\n") >= 2, path  # a header or a record, and rows


def _big_project(db: Database, clips: int) -> int:
    with db.write() as s:
        user = create_user(s, "boss", hash_password("boss-pass-1"), "owner")
        boss = Principal(user.id, user.username, "owner")
        project = create_project(
            s, boss, ProjectConfig(name="big", task_type="classification", classes=["a", "b"])
        )
        s.add_all(queued_clip(project.id, i) for i in range(clips))
        s.flush()
        return int(project.id)


def test_the_child_runs_below_the_server_and_ends_when_the_download_stops(
    client: TestClient, spawned: Spawned
) -> None:
    db: Database = client.app.state.db
    pid = _big_project(db, 3000)  # a JSONL file of several pipe buffers: the child waits to write
    pieces = in_child(db, ExportOrder(pid, "labels", "jsonl"))
    first = next(pieces)
    assert first.startswith(b'{"record":"clip"')
    child = psutil.Process(spawned.children[-1].pid)
    assert child.nice() == min(19, os.nice(0) + db.settings.export_nice)  # 19: the lowest
    assert child.name() == export_process.PROCESS_NAME
    assert child.parent().nice() == child.nice()  # the fork server too: its imports wait as well
    assert child.status() != psutil.STATUS_ZOMBIE  # still writing: the rest of the file waits
    pieces.close()  # the client went away
    assert spawned.children[-1].exitcode is not None  # ended and reaped
    rest = b"".join(in_child(db, ExportOrder(pid, "labels", "jsonl")))
    assert rest.count(b'"record":"clip"') == 3000  # and a whole download has every clip


def test_a_failing_child_breaks_the_download(client: TestClient, spawned: Spawned) -> None:
    db: Database = client.app.state.db
    with pytest.raises(ListenloopError, match=r"project 9999 failed \(exit 1\)"):
        b"".join(in_child(db, ExportOrder(9999, "labels", "csv")))  # no such project
    assert spawned.children[-1].exitcode == 1


def test_a_small_project_or_export_process_off_exports_in_the_server(
    client: TestClient, spawned: Spawned, monkeypatch: pytest.MonkeyPatch
) -> None:
    db: Database = client.app.state.db
    pid = _big_project(db, 3)
    oh = login(client, "boss", "boss-pass-1")

    def children_of_a_download() -> int:
        before = len(spawned.children)
        r = client.get(f"/api/v1/projects/{pid}/export", headers=oh)
        assert r.status_code == 200 and r.text.count("\n") == 4  # the header and 3 clips
        return len(spawned.children) - before

    _setting(monkeypatch, db, export_process_min_clips=4)
    assert children_of_a_download() == 0  # 3 clips: below the bound
    _setting(monkeypatch, db, export_process_min_clips=3)
    assert children_of_a_download() == 1  # at it
    _setting(monkeypatch, db, export_process=False)
    assert children_of_a_download() == 0
