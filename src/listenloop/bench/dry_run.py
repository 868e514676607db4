"""The dry run on the demo, through the API, and its verdict against a full `listenloop simulate`.

`python -m listenloop.bench.dry_run [--json FILE] [--keep DIR]`: in a fresh folder, `listenloop
demo`'s project (300 spoken-digit clips, 20 of them uploaded with labels) gets a dry run through
`POST /api/v1/projects/{id}/dry-run`; a second project of the same 300 clips, all uploaded with
labels (a demo-like project whose owner labelled a subset), gets one too. Each dry run is run by
the learning service's dry-run step (`LearningService.run_dry_runs_once`, what its thread does)
and timed from the POST to `done`. Then `listenloop simulate` runs the command the second dry
run reports on the same labelled clips (labels.csv in clip-id order), and its `--recommend`
verdict is compared with the dry run's. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select


def _dry_run(client: Any, headers: dict[str, str], service: Any, pid: int) -> dict[str, Any]:
    """POST a dry run, let the service run it, GET the result; with its wall time."""
    start = time.perf_counter()
    r = client.post(f"/api/v1/projects/{pid}/dry-run", headers=headers)
    if r.status_code != 202:
        raise RuntimeError(f"dry run of project {pid}: {r.status_code} {r.text}")
    service.run_dry_runs_once()
    out = client.get(f"/api/v1/projects/{pid}/dry-run", headers=headers).json()
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns (and prints) the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    a = ap.parse_args(argv)
    from fastapi.testclient import TestClient

    from listenloop.demo import DEMO_DIR
    from listenloop.demo.setup import DEMO_CLASSES, _as_wav, _wav_name, prepare_demo
    from listenloop.engine.learning.service import LearningService
    from listenloop.server import create_app
    from listenloop.store.models import Clip

    work = a.keep or Path(tempfile.mkdtemp(prefix="listenloop-bench-dry-run-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    app = create_app(f"sqlite:///{work / 'listenloop.db'}", data, learning=False)
    db = app.state.db
    logins = prepare_demo(db, data)
    service = LearningService(db, data, inline=True)
    figures: dict[str, Any] = {}
    with TestClient(app) as client:
        token = client.post(
            "/api/v1/token", data=dict(zip(("username", "password"), logins.owner, strict=True))
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        demo = _dry_run(client, headers, service, logins.project_id)
        figures["demo"] = {
            "labels": demo["labels"],
            "wall_s": demo["wall_s"],
            "status": demo["status"],
            "error": demo["error"],
            "verdict": demo["result"] and demo["result"]["verdict"]["text"],
            "recommended": demo["result"] and demo["result"]["verdict"]["recommended"],
        }
        # the same clips, every one uploaded with its label
        table = pd.read_csv(DEMO_DIR / "labels.csv", dtype=str)
        body = {"name": "digits, all labelled", "task_type": "classification", "classes": DEMO_CLASSES}
        pid = client.post("/api/v1/projects", headers=headers, json=body | {"retrain_every": 10}).json()["id"]
        archive = work / "clips.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for f in table["file"]:
                z.writestr(_wav_name(f), _as_wav(DEMO_DIR / "recordings" / f))
        labels = "file,label\n" + "".join(
            f"{_wav_name(f)},{lab}\n" for f, lab in zip(table["file"], table["label"], strict=True)
        )
        r = client.post(
            f"/api/v1/projects/{pid}/clips",
            headers=headers,
            files={"archive": ("clips.zip", archive.read_bytes()), "labels": ("labels.csv", labels.encode())},
        )
        if r.status_code != 201:
            raise RuntimeError(f"upload: {r.status_code} {r.text}")
        full = _dry_run(client, headers, service, pid)
    v = full["result"]["verdict"]
    figures["labelled_300"] = {
        "labels": full["labels"],
        "wall_s": full["wall_s"],
        "plan": full["result"]["plan"],
        "command": full["result"]["command"],
        "recommended": v["recommended"],
        "verdict": v["text"],
        "strategies": {
            k: {
                f: s[f]
                for f in ("labels_to_target", "labels_ci80", "share_of_random", "compared_with_random")
            }
            for k, s in v["strategies"].items()
        },
    }
    with db.read() as session:
        rows = session.execute(
            select(Clip.path, Clip.seed_label).where(Clip.project_id == pid).order_by(Clip.id)
        ).all()
    with open(data / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        writer.writerows([(row.path, row.seed_label) for row in rows])
    args = shlex.split(full["result"]["command"])
    args[args.index("DATASET")] = str(data)
    args[args.index("OUT")] = str(work / "simulate")
    args += ["--quiet", "--jobs", "1", "--cache-dir", str(data / "features")]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "listenloop", *args[1:]], capture_output=True, text=True, check=False
    )
    sim_s = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"simulate failed: {done.stderr[-2000:]}")
    said = [line for line in done.stdout.splitlines() if line.startswith("recommended: ")]
    figures["simulate"] = {
        "wall_s": round(sim_s, 1),
        "recommended": said[0].split(": ", 1)[1] if said else None,
        "same_recommendation": bool(said) and said[0] == f"recommended: {v['recommended']}",
        "same_text": v["text"] in done.stdout,
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text)
    return figures


if __name__ == "__main__":
    main()
