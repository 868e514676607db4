"""The owner's endpoints run off the event loop and exports stream (issue 17, point 2).

A slow dashboard, status, clip browser or export must not hold up an annotator's `next`, which
stays on the event loop; an export is read and sent in pieces, a chunk of clips at a time,
from a read-only session; uploads are stored in the thread pool.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from api_support import annotator, login, wavs, zip_of
from listenloop.engine import exports
from listenloop.engine import projects as ops
from listenloop.store.models import Clip

SLOW = 1.5  # seconds a patched owner call blocks its thread


def _project(c: TestClient, oh: dict[str, str], n: int) -> int:
    body = {"name": "p", "task_type": "classification", "classes": [str(i) for i in range(10)]}
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(n)))})
    assert r.status_code == 201, r.text
    return int(pid)


def _next_while(
    c: TestClient, slow: Callable[[], Any], ann: dict[str, str], pid: int, path: str | None = None
) -> tuple[float, Any]:
    """Start `slow` in a thread, then time one `next` of the annotator (or a GET of `path`)
    meanwhile: (seconds, slow's result)."""
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", slow()))
    thread.start()
    time.sleep(0.3)  # the slow call is in its sleep now
    t0 = time.perf_counter()
    r = c.get(path or f"/api/v1/projects/{pid}/next", headers=ann)
    took = time.perf_counter() - t0
    thread.join(timeout=30)
    assert r.status_code == 200, r.text
    return took, out["r"]


def _blocking(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """Make `module.name` sleep SLOW seconds (a blocking call, as O(N) work is) before its work."""
    real = getattr(module, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slow)


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("dashboard.dashboard_summary", "dashboard"),
        ("dashboard.annotator_table", "annotators"),
        ("projects.project_status", "status"),
        ("clips.browse_clips", "clips"),
    ],
)
def test_a_slow_owner_read_does_not_hold_up_next(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, target: str, path: str
) -> None:
    import importlib

    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, 4)
    ann = annotator(client, "ann")
    module, name = target.split(".")
    _blocking(monkeypatch, importlib.import_module(f"listenloop.engine.{module}"), name)
    took, r = _next_while(client, lambda: client.get(f"/api/v1/projects/{pid}/{path}", headers=oh), ann, pid)
    assert r.status_code == 200, r.text
    assert took < SLOW / 2, f"next waited {took:.2f} s behind the owner's {path}"


def test_a_slow_export_does_not_hold_up_next_and_comes_in_pieces(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, 10)
    ann = annotator(client, "ann")
    whole = client.get(f"/api/v1/projects/{pid}/export", headers=oh).text
    db = client.app.state.db  # in the server's thread pool, where the patches below reach it
    monkeypatch.setattr(db, "settings", db.settings.model_copy(update={"export_process": False}))
    monkeypatch.setattr(exports, "CHUNK", 3)  # 10 clips: the header and 3 rows, 3, 3, then 1
    pieces: list[str] = []
    real = exports.iter_csv

    def slow_pieces(*args: Any, **kwargs: Any) -> Any:
        for piece in real(*args, **kwargs):
            time.sleep(SLOW / 4)  # blocking work per piece
            pieces.append(piece)
            yield piece

    monkeypatch.setattr(exports, "iter_csv", slow_pieces)
    took, r = _next_while(client, lambda: client.get(f"/api/v1/projects/{pid}/export", headers=oh), ann, pid)
    assert took < SLOW / 2, f"next waited {took:.2f} s behind an export"
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert len(pieces) == 4 and "".join(pieces) == r.text  # streamed in pieces ...
    before = {row["clip_id"]: row for row in csv.DictReader(io.StringIO(whole))}
    after = {row["clip_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert before.keys() == after.keys() and len(after) == 10  # ... and the same file


def test_an_export_reads_clips_a_chunk_at_a_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first piece is ready after one chunk of clips was read, not the whole project."""
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, 10)
    monkeypatch.setattr(exports, "CHUNK", 4)
    db = client.app.state.db
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM clips" in statement:
            seen.append(statement)

    with db.read_only() as session:
        project = ops.load_project(session, pid)
        event.listen(session.get_bind(), "before_cursor_execute", count)
        try:
            pieces = exports.iter_export_project(session, project, "jsonl")
            first = next(pieces)
            assert len(seen) == 1 and first.count("\n") == 4, seen  # one chunk read, four lines out
            rest = "".join(pieces)
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", count)
    assert len(seen) == 4  # 4 + 4 + 2 clips, then an empty chunk ends it
    assert (first + rest).count('"record":"clip"') == 10


def test_the_read_only_session_cannot_write(client: TestClient) -> None:
    db = client.app.state.db
    with db.read_only() as session, pytest.raises(DBAPIError) as exc:
        session.execute(text("UPDATE clips SET rank = 0"))
    assert "read" in str(exc.value.orig).lower(), exc.value  # readonly database / read-only transaction
    with db.read() as session:  # nothing was changed, and the ordinary sessions still write
        assert session.query(Clip).count() == 0


def test_an_upload_is_stored_off_the_event_loop(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from listenloop.server.routers import clips as clip_routes

    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, 2)
    ann = annotator(client, "ann")
    _blocking(monkeypatch, clip_routes, "store_clips")
    more = {"archive": ("b.zip", zip_of(dict(list(wavs(6).items())[2:])))}
    # A request that reads (an upload's write transaction holds SQLite's write lock, which `next`
    # needs too): the event loop answers it while the upload is stored.
    took, r = _next_while(
        client,
        lambda: client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=more),
        ann,
        pid,
        f"/api/v1/projects/{pid}",
    )
    assert r.status_code == 201 and r.json()["added"] == 4, r.text
    assert took < SLOW / 2, f"a read waited {took:.2f} s behind an upload being stored"
