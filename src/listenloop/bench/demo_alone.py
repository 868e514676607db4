"""The demo as one newcomer meets it: `python -m listenloop.bench.demo_alone OUT [--seconds 300]`.

Starts `listenloop demo` (its simulated crowd on, as by default) in an empty folder under
OUT, answers 20 clips as the printed annotator at a person's pace (one every 3 s, the
first choice offered: a newcomer clicking through, right or wrong), and at `--seconds` after
the demo answered reads the owner's status and takes screenshots of the dashboard, the
labelling page and the clip browser into OUT/screenshots. Prints one JSON line: finished
clips, scored rounds, the savings line's figures and the learning error, if any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from listenloop.bench.screenshots import take_screenshots
from listenloop.bench.serve import free_port


def _logins(proc: subprocess.Popen) -> dict[str, tuple[str, str]]:
    """The two printed logins (the demo's first two stdout lines)."""
    assert proc.stdout is not None
    found: dict[str, tuple[str, str]] = {}
    while len(found) < 2:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("the demo ended before printing its logins")
        match = re.match(r"(owner|annotator) login:\s*(\S+)\s+(\S+)", line)
        if match:
            found[match[1]] = (match[2], match[3])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=300.0)
    args = parser.parse_args()
    folder = args.out / "demo"
    folder.mkdir(parents=True, exist_ok=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "listenloop", "demo", "--host", "127.0.0.1", "--port", str(port)]
    log = open(args.out / "demo.err", "w")  # noqa: SIM115 - the demo writes to it until it ends
    proc = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
    )
    try:
        logins = _logins(proc)
        client = httpx.Client(base_url=base, timeout=30)
        while True:
            try:
                client.get("/")
                break
            except httpx.TransportError:
                time.sleep(0.5)
        t0 = time.monotonic()

        def token(who: str) -> dict[str, str]:
            user, password = logins[who]
            reply = client.post("/api/v1/token", data={"username": user, "password": password})
            reply.raise_for_status()
            return {"Authorization": f"Bearer {reply.json()['access_token']}"}

        annotator, owner = token("annotator"), token("owner")
        pid = client.get("/api/v1/projects", headers=owner).json()[0]["id"]
        answered = 0
        while answered < 20 and time.monotonic() - t0 < args.seconds - 30:
            task = client.get(f"/api/v1/projects/{pid}/next", headers=annotator)
            if task.status_code == 200:
                body = task.json()
                choice = (body["question"].get("choices") or ["0"])[0]
                sent = client.post(
                    f"/api/v1/tasks/{body['task_id']}/answer", headers=annotator, json={"answer": choice}
                )
                answered += sent.status_code == 201
            time.sleep(3)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
        status = client.get(f"/api/v1/projects/{pid}/status", headers=owner).json()
        shots = asyncio.run(
            take_screenshots(base, pid, logins["owner"], logins["annotator"], args.out / "screenshots")
        )
        dashboard = client.get(f"/api/v1/projects/{pid}/dashboard", headers=owner)
        savings = dashboard.json().get("savings") if dashboard.status_code == 200 else None
        print(
            json.dumps(
                {
                    "seconds": round(time.monotonic() - t0),
                    "answered_by_the_person": answered,
                    "labels_done": status.get("labels_done"),
                    "scored_rounds": sum(m.get("score") is not None for m in status.get("model_scores", [])),
                    "savings": savings,
                    "learning_error": status.get("learning_error"),
                    "screenshots": [str(p) for p in shots],
                }
            )
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    main()
