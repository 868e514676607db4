"""`listenloop demo`: exactly the two login lines, working logins, a ready project; a restart keeps it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from api_support import wait_http
from listenloop.bench.serve import free_port


def start_demo(cwd: Path, port: int) -> tuple[subprocess.Popen, dict[str, tuple[str, str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listenloop", "demo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
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
    proc, logins = start_demo(tmp_path, port)
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
        assert status["labels_done"] >= 20 and status["answers_used"] == 1
    finally:
        stop(proc)
    assert (tmp_path / "listenloop-demo" / "listenloop.db").is_file()
    proc, again = start_demo(tmp_path, port)
    try:
        assert again == logins
        projects = httpx.get(f"{base}/api/v1/projects", headers=token(base, *again["owner"])).json()
        assert len(projects) == 1  # the same project, not a second one
    finally:
        stop(proc)
