"""Owner exports produced in a child process at a lower CPU priority, streamed back through a pipe.

Why a process: an export of a 100,000-clip project is seconds of Python work (rows, CSV or
JSON text). In the server's thread pool it held the GIL in slices that the event loop waited
for after each of its own database calls, so the annotators' p99 rose from about 30 ms to
69-84 ms while an owner exported (BENCHMARKS.md, "an export during the load"). In a child the
server only relays bytes, the child's memory holds a chunk of clips at a time, and its nice
value (`Settings.export_nice`) lets the request path have the cores first.

The children are forked from a fork server that imported this module once (`multiprocessing`'s
forkserver: a fresh Python would take about 2 s of imports before each download; a fork of the
server itself is unsafe with its threads). The order (database URL, settings, which export)
travels pickled over the fork server's socket, not on a command line, where a PostgreSQL
password would show in `ps`. A child sends the export's bytes through a pipe and exits 0; a
failure exits non-zero with its traceback on stderr (the server's log), and the relay raises,
so that a truncated file never looks complete. When the server goes away, the child's next
send fails (a broken pipe) and it ends.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.engine import projects as ops
from listenloop.engine.exports import iter_export_answers, iter_export_crowdkit, iter_export_project
from listenloop.engine.labelstudio import iter_labelstudio
from listenloop.errors import ListenloopError
from listenloop.priority import NICEST, lower_priority
from listenloop.settings import Settings
from listenloop.store.database import Database
from listenloop.store.models import Clip, Project

PROCESS_NAME = "ll-export"  # at most 15 characters
PIPE_CHUNK = 1 << 16  # bytes per relayed piece: a pipe's buffer on Linux
CONTEXT = multiprocessing.get_context("forkserver")
# The CLI too: every child re-runs the server's main script (multiprocessing recreates
# `__main__`), which for `listenloop serve` imports the CLI: 150 ms per download, unless the
# fork server has imported it already. (Its own preload of "__main__" is lost on Python 3.11.)
CONTEXT.set_forkserver_preload([__name__, "listenloop.cli"])


@dataclass(frozen=True)
class ExportOrder:
    """Which export of which project: `what` labels (csv or jsonl, `table` clips or annotators),
    answers (csv or jsonl), crowdkit (csv) or labelstudio (json, clips' audio at `audio_url`)."""

    project_id: int
    what: Literal["labels", "answers", "crowdkit", "labelstudio"]
    format: str = "csv"
    table: str = "clips"
    audio_url: str = "/api/v1/clips/{clip_id}/audio"


def export_pieces(session: Session, project: Project, order: ExportOrder) -> Iterator[str]:
    """The text of `order`'s export in pieces (the one dispatch both ways of producing it use)."""
    if order.what == "answers":
        return iter_export_answers(session, project, order.format)
    if order.what == "crowdkit":
        return iter_export_crowdkit(session, project)
    if order.what == "labelstudio":
        return iter_labelstudio(session, project, order.audio_url)
    return iter_export_project(session, project, order.format, order.table)


def in_thread(db: Database, order: ExportOrder) -> Iterator[bytes]:
    """The export read in this process, from one read-only session that lives as long as the
    iteration: a small project's, an in-memory database's (no other process can open it), any
    with `export_process` off, and the child's own work."""
    with db.read_only() as session:
        for piece in export_pieces(session, ops.load_project(session, order.project_id), order):
            yield piece.encode()


def _fork_server_at(nice: int) -> None:
    """Start the fork server, if it is not running, at CPU priority `nice`: from a thread that
    first lowers itself (on Linux a process inherits the priority of the thread that forks it),
    so that its imports (about 2 s of CPU) do not compete with the request path either."""

    def start() -> None:
        lower_priority(at_least=nice)  # Linux: this thread only
        forkserver.ensure_running()

    starter = threading.Thread(target=start, name="listenloop-export-start")
    starter.start()
    starter.join()


def start_child(db: Database, order: ExportOrder) -> tuple[BaseProcess, Connection]:
    """A child producing `order`'s export from `db`, and the end of the pipe it writes to."""
    nice = min(NICEST, os.getpriority(os.PRIO_PROCESS, 0) + db.settings.export_nice)
    _fork_server_at(nice)
    reader, writer = CONTEXT.Pipe(duplex=False)
    args = (writer, db.url, db.settings.model_dump(), asdict(order), nice)
    child = CONTEXT.Process(target=_produce, args=args, daemon=True)
    child.start()
    writer.close()  # the child's end: at its exit the reader sees the end of the file
    return child, reader


def in_child(db: Database, order: ExportOrder) -> Iterator[bytes]:
    """The export produced by a child process (`start_child`), relayed as it comes. The child
    starts at the first piece asked for and is killed when the iteration stops early (the
    client went away)."""
    child, reader = start_child(db, order)
    try:
        while True:
            try:
                chunk = reader.recv_bytes()
            except EOFError:
                break
            yield chunk
        child.join()
        if child.exitcode != 0:
            raise ListenloopError(f"the export of project {order.project_id} failed (exit {child.exitcode})")
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        reader.close()


def has_clips(session: Session, project_id: int, count: int) -> bool:
    """Whether the project has at least `count` clips (at most `count` index entries read)."""
    if count <= 0:
        return True
    first = select(Clip.id).where(Clip.project_id == project_id).order_by(Clip.id)
    return session.scalar(first.offset(count - 1).limit(1)) is not None


def export_bytes(db: Database, order: ExportOrder) -> Iterator[bytes]:
    """`order`'s export as bytes in pieces: from a child process where the database can be opened
    from one, the settings allow it and the project has `export_process_min_clips` clips, else
    from this process (a small project's export takes less than a child's start)."""
    settings = db.settings
    if db.in_memory or not settings.export_process:
        return in_thread(db, order)
    with db.read_only() as session:
        if not has_clips(session, order.project_id, settings.export_process_min_clips):
            return in_thread(db, order)
    return in_child(db, order)


def _produce(out: Connection, url: str, settings: dict[str, Any], order: dict[str, Any], nice: int) -> None:
    """The child: `order`'s export from the database at `url`, sent through `out` in pieces of
    about PIPE_CHUNK bytes, at CPU priority `nice` (`export_nice` below the server's)."""
    with contextlib.suppress(OSError):  # Linux: `ps` and `top` name it (a fork server's child
        Path("/proc/self/comm").write_text(PROCESS_NAME)  # would show as the fork server)
    lower_priority(at_least=nice)  # (the fork server's may be lower already)
    db = Database(url, Settings.model_validate(settings))
    buffer = bytearray()
    try:
        for piece in in_thread(db, ExportOrder(**order)):
            buffer += piece
            if len(buffer) >= PIPE_CHUNK:
                out.send_bytes(buffer)
                buffer.clear()
        if buffer:
            out.send_bytes(buffer)
    except BrokenPipeError:  # the server went away: nobody reads the rest
        os._exit(1)
    finally:
        out.close()
        db.dispose()
