"""`listenloop demo`: exactly the two login lines, working logins, a ready project; a restart keeps it;
its simulated crowd works in the background, stops with the demo and keeps its accounts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from api_support import wait_http
from listenloop.bench.serve import free_port

T = TypeVar("T")


def start_demo(cwd: Path, port: int, *extra: str) -> tuple[subprocess.Popen, dict[str, tuple[str, str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listenloop", "demo", "--host", "127.0.0.1", "--port", str(port), *extra],
        cwd=cwd,
        stdout=subprocess.PIPE,
        # to a file, not a pipe nobody reads: a full pipe would block the demo's logging
        stderr=(cwd / f"demo-{time.monotonic_ns()}.log").open("w"),
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    logins = {}
    for _ in range(2):
        line = proc.stdout.readline().strip()
        role, _, rest = line.partition(" login: ")
        user, password = rest.split(" ")
        logins[role] = (user, password)
    wait_http(f"http://127.0.0.1:{port}")
    return proc, logins


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(20)


def token(base: str, user: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/v1/token", data={"username": user, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_demo_logins_work_and_survive_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, logins = start_demo(tmp_path, port, "--crowd", "0")
    try:
        assert set(logins) == {"owner", "annotator"}
        owner, annotator = token(base, *logins["owner"]), token(base, *logins["annotator"])
        projects = httpx.get(f"{base}/api/v1/projects", headers=annotator).json()
        assert [p["name"] for p in projects] == ["Spoken digits (demo)"]
        pid = projects[0]["id"]
        task = httpx.get(f"{base}/api/v1/projects/{pid}/next", headers=annotator)
        assert task.status_code == 200
        body = task.json()
        assert httpx.get(base + body["audio_url"], headers=annotator).status_code == 200
        r = httpx.post(
            f"{base}/api/v1/tasks/{body['task_id']}/answer", headers=annotator, json={"answer": "3"}
        )
        assert r.status_code == 201
        status = httpx.get(f"{base}/api/v1/projects/{pid}/status", headers=owner).json()
        assert status["labels_done"] >= 20 and status["answers_used"] == 1  # --crowd 0: nobody else answers
        table = httpx.get(f"{base}/api/v1/projects/{pid}/annotators", headers=owner).json()
        assert [a["username"] for a in table] == [logins["annotator"][0]]
    finally:
        stop(proc)
    assert (tmp_path / "listenloop-demo" / "listenloop.db").is_file()
    proc, again = start_demo(tmp_path, port, "--crowd", "0")
    try:
        assert again == logins
        projects = httpx.get(f"{base}/api/v1/projects", headers=token(base, *again["owner"])).json()
        assert len(projects) == 1  # the same project, not a second one
    finally:
        stop(proc)


def demo_log(cwd: Path, tail: int = 3000) -> str:
    """The end of the demos' stderr in `cwd`, for a failure's message."""
    return "\n".join(p.read_text()[-tail:] for p in sorted(cwd.glob("demo-*.log")))


def crowd_rows(base: str, owner: dict[str, str]) -> dict[str, int]:
    """The demo crowd's members in the owner's annotator table: username -> answers."""
    table = httpx.get(f"{base}/api/v1/projects/1/annotators", headers=owner).json()
    return {a["username"]: a["answers"] for a in table if a["username"].startswith("demo-crowd-")}


def wait_for(check: Callable[[], T], seconds: float = 60) -> T:
    """Call `check` until it returns something truthy or `seconds` pass; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_demo_crowd_works_stops_with_ctrl_c_and_keeps_its_accounts(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, logins = start_demo(tmp_path, port, "--crowd", "3", "--crowd-speed", "20")
    try:
        owner = token(base, *logins["owner"])
        everyone = {"demo-crowd-1", "demo-crowd-2", "demo-crowd-3"}
        # every member answers (the table lists only those with answers), six answers in all
        first = wait_for(
            lambda: (rows := crowd_rows(base, owner)) and set(rows) == everyone and sum(rows.values()) >= 6,
            120,
        ) and crowd_rows(base, owner)
        assert first and set(first) == everyone, (first, demo_log(tmp_path))
    finally:
        os.kill(
            proc.pid, signal.SIGINT
        )  # Ctrl+C, to the demo alone: it must end its crowd and service itself
        rc = proc.wait(30)
    assert rc == 0
    assert wait_for(lambda: gone(proc.pid), 20), "a process of the demo outlived it"
    proc, _ = start_demo(tmp_path, port, "--crowd", "3", "--crowd-speed", "20")
    try:
        owner = token(base, *logins["owner"])
        later = wait_for(
            lambda: (
                (rows := crowd_rows(base, owner)) and sum(rows.values()) > sum(first.values()) + 3 and rows
            )
        )
        assert set(later) == set(first)  # the same accounts, answering on
        db = tmp_path / "listenloop-demo" / "listenloop.db"
        with sqlite3.connect(db) as conn:
            n = conn.execute("select count(*) from users where username like 'demo-crowd-%'").fetchone()[0]
        assert n == 3
    finally:
        stop(proc)
