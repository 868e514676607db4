"""`listenloop user create`, `listenloop serve` and migrations on an empty database file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from api_support import wait_http
from listenloop.bench.serve import free_port
from listenloop.server.listeners import balanced
from listenloop.store.database import MIGRATIONS, Database


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_migrations_build_an_empty_file_and_are_idempotent(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    db.upgrade()
    db.upgrade()  # a current schema is left as it is
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "users",
        "api_tokens",
        "projects",
        "project_members",
        "clips",
        "tasks",
        "worker_trust",
        "events",
    } <= tables
    with db.engine.connect() as conn:
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert conn.execute(text("select version_num from alembic_version")).scalar() == head
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1
    db.dispose()


def test_user_create(tmp_path: Path) -> None:
    url = "sqlite:///./l.db"
    create = (
        "user",
        "create",
        "--role",
        "owner",
        "--username",
        "o",
        "--password",
        "owner-pass-1",
        "--db",
        url,
    )
    ok = run_cli(*create, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "created owner o" in ok.stdout
    again = run_cli(*create, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == "error: username 'o' is taken"
    for bad, message in (
        (["--role", "boss", "--username", "p", "--password", "long-enough"], "role 'boss'"),
        (["--username", "p", "--password", "short"], "at least 8 characters"),
        (
            ["--username", "p", "--password", "long-enough", "--db", "sqlite:///./no/such/x.db"],
            "does not exist",
        ),
    ):
        r = (
            run_cli("user", "create", *bad, "--db", url, cwd=tmp_path)
            if "--db" not in bad
            else run_cli("user", "create", *bad, cwd=tmp_path)
        )
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (read from /proc: no ps needed)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def _serving_and_learning(parent: int, port: int) -> tuple[set[int], set[int]]:
    """The children of `serve`'s parent process: those that serve `port` (uvicorn's workers hold
    its listening socket) and the others (the learning service; multiprocessing's resource
    tracker aside)."""
    serving, other = set(), set()
    for child in psutil.Process(parent).children():
        if "resource_tracker" in " ".join(child.cmdline()):
            continue
        listens = any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp")
        )
        (serving if listens else other).add(child.pid)
    return serving, other


def test_serve_with_workers_answers_and_children_die_with_parent(tmp_path: Path) -> None:
    """`serve --workers 2`: two processes serve the port, one learning service runs beside them
    (started by the parent, not per worker), and all of them end with the parent."""
    port = free_port()
    db = f"sqlite:///{tmp_path / 'l.db'}"
    run_cli("user", "create", "--username", "o", "--password", "owner-pass-1", "--db", db, cwd=tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "listenloop",
            "serve",
            "--port",
            str(port),
            "--db",
            db,
            "--data",
            str(tmp_path / "d"),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base)
        r = httpx.post(f"{base}/api/v1/token", data={"username": "o", "password": "owner-pass-1"}, timeout=30)
        assert r.status_code == 200
        # the port answers once one worker is up; the other may still be importing (2 slow cores)
        deadline = time.monotonic() + 60
        serving, learning = _serving_and_learning(proc.pid, port)
        while (len(serving), len(learning)) != (2, 1) and time.monotonic() < deadline:
            time.sleep(0.5)
            serving, learning = _serving_and_learning(proc.pid, port)
        assert len(serving) == 2, f"{len(serving)} processes serve the port, not 2"
        assert len(learning) == 1, f"{len(learning)} learning services, not one"
        for worker in serving:  # the workers run none of their own
            assert not psutil.Process(worker).children(), "a worker started a learning service"
        # a crowd connecting at once is spread over the workers (server/listeners.py)
        crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        try:
            time.sleep(1)
            held = {
                w: sum(
                    c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                    for c in psutil.Process(w).net_connections("tcp")
                )
                for w in serving
            }
        finally:
            for conn in crowd:
                conn.close()
        assert sum(held.values()) == 32, f"connections per worker: {held}"
        if balanced():
            assert min(held.values()) > 0, f"one worker took every connection: {held}"
        time.sleep(3)  # and they stay (uvicorn restarts workers slow to answer its health checks)
        assert _serving_and_learning(proc.pid, port) == (serving, learning)
        workers = serving | learning
        os.kill(proc.pid, signal.SIGKILL)  # only the parent
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "a worker outlived its parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_refuses_bad_options_with_one_line(tmp_path: Path) -> None:
    """Each before anything starts: one line, no traceback, nothing half-started. Every case names
    its --port (a free one where the port is not the point): the default 8000 may be taken."""
    (tmp_path / "a-file").write_text("x")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        free, no_scheduler = str(free_port()), free_port()
        for command, args, words in (
            ("serve", ("--workers", "0"), "--workers"),
            ("serve", ("--port", "70000"), "--port"),
            ("serve", ("--port", busy), "already in use"),
            ("demo", ("--port", busy), "already in use"),
            ("serve", ("--data", "a-file"), "not a folder"),
            ("serve", ("--import-root", str(tmp_path / "nowhere")), "--import-root"),
            ("serve", ("--scheduler", f"tcp://127.0.0.1:{no_scheduler}"), "no Dask scheduler answers"),
            ("serve", ("--scheduler", "nonsense"), "tcp://HOST:PORT"),
        ):
            db = () if command == "demo" else ("--db", "sqlite:///./l.db")
            port = () if "--port" in args else ("--port", free)
            out = run_cli(command, *db, *port, *args, cwd=tmp_path)
            assert out.returncode == 2 and words in out.stderr, (args, out.stderr)
            assert "Traceback" not in out.stderr and "serving on" not in out.stdout, out.stderr


def test_serve_picks_its_workers_by_the_database_and_the_cores(monkeypatch) -> None:
    """One per usable core: at most 2 on a SQLite file, 4 on PostgreSQL; 1 in memory."""
    from listenloop.cli.serve import auto_workers

    for cores, sqlite_file, postgres in ((1, 1, 1), (2, 2, 2), (8, 2, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert auto_workers("sqlite:///./l.db") == sqlite_file
        assert auto_workers("postgresql+psycopg://u@localhost/d") == postgres
        assert auto_workers("sqlite://") == auto_workers("sqlite:///:memory:") == 1
