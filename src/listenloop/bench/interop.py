"""The Label Studio round trip at size: import N tasks (three annotators each), export them back,
validate, and time the exports and the agreement.

`python -m listenloop.bench.interop [N] [WORKDIR]` builds N short distinct audio files and a
Label Studio export of them (five annotators, three annotations per task, 80 % of them right,
one in 20 skipped), imports it into a new SQLite project through `engine.labelstudio_import`
(the CLI's path), exports the project as Label Studio tasks and as crowd-kit's table, checks
the export against the format model and the answers against the file, computes the agreement,
and prints the times as JSON.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from listenloop.engine.accounts import Principal, create_user, hash_password
from listenloop.engine.agreement import project_agreement
from listenloop.engine.config import ProjectConfig
from listenloop.engine.exports import iter_export_crowdkit
from listenloop.engine.labelstudio import iter_labelstudio
from listenloop.engine.labelstudio_format import parse_tasks
from listenloop.engine.labelstudio_import import import_labelstudio
from listenloop.engine.projects import create_project, load_project
from listenloop.engine.uploads import UploadLimits
from listenloop.store.database import Database

CLASSES = [str(i) for i in range(10)]


def labelstudio_file(n: int, audio: Path, rng: random.Random) -> list[dict[str, Any]]:
    """N tasks over N generated clips, each annotated by three of five annotators."""
    audio.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0)
    tasks = []
    for i in range(n):
        name = f"clip_{i:06d}.wav"
        sf.write(audio / name, (0.1 * noise.standard_normal(1600)).astype(np.float32), 8000)
        truth = rng.choice(CLASSES)
        annotations = []
        for k, who in enumerate(rng.sample(range(1, 6), 3)):
            skipped = rng.random() < 0.05
            label = truth if rng.random() < 0.8 else rng.choice(CLASSES)
            annotations.append(
                {
                    "id": i * 3 + k,
                    "completed_by": who,
                    "result": []
                    if skipped
                    else [
                        {
                            "type": "choices",
                            "from_name": "label",
                            "to_name": "audio",
                            "value": {"choices": [label]},
                        }
                    ],
                    "was_cancelled": skipped,
                    "ground_truth": False,
                    "created_at": f"2025-01-01T{(i * 3 + k) // 3600 % 24:02d}:{(i * 3 + k) // 60 % 60:02d}:"
                    f"{(i * 3 + k) % 60:02d}Z",
                }
            )
        tasks.append(
            {"id": i, "data": {"audio": f"/data/upload/1/0a1b2c3d-{name}"}, "annotations": annotations}
        )
    return tasks


def run(n: int, workdir: Path) -> dict[str, Any]:
    """The round trip's figures."""
    rng = random.Random(0)
    tasks = labelstudio_file(n, workdir / "audio", rng)
    text = json.dumps(tasks).encode()
    db = Database(f"sqlite:///{workdir / 'bench.db'}")
    db.upgrade()
    with db.write() as session:
        owner = create_user(session, "owner", hash_password("owner-pass-1"), "owner")
        who = Principal(owner.id, "owner", "owner")
        config = ProjectConfig(name="bench", task_type="classification", classes=CLASSES)
        pid = create_project(session, who, config).id
    out: dict[str, Any] = {"tasks": n, "annotations": sum(len(t["annotations"]) for t in tasks)}
    start = time.perf_counter()
    report = import_labelstudio(
        db, pid, who, text, workdir / "data", folder=workdir / "audio", limits=UploadLimits(max_files=10**6)
    )
    out["import_s"] = round(time.perf_counter() - start, 2)
    out["imported"] = {k: report[k] for k in ("clips_added", "answers", "cant_tell")}
    with db.read() as session:
        project = load_project(session, pid)
        start = time.perf_counter()
        exported = "".join(iter_labelstudio(session, project))
        out["labelstudio_export_s"] = round(time.perf_counter() - start, 2)
        out["labelstudio_export_mb"] = round(len(exported) / 1e6, 2)
        start = time.perf_counter()
        table = "".join(iter_export_crowdkit(session, project))
        out["crowdkit_export_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        stats = project_agreement(session, project)
        out["agreement_s"] = round(time.perf_counter() - start, 2)
    back = parse_tasks(exported)
    out["valid"] = len(back) == n
    out["annotations_back"] = sum(len(t.annotations) for t in back)
    out["crowdkit_rows"] = table.count("\n") - 1
    out["alpha"], out["kappa"] = stats["alpha"], stats["kappa"]
    db.dispose()
    return out


def main(argv: list[str]) -> None:
    """`[N] [WORKDIR]`: print the figures as JSON."""
    n = int(argv[0]) if argv else 1000
    if len(argv) > 1:
        workdir = Path(argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(n, workdir), indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(n, Path(tmp)), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
