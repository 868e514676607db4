"""`listenloop bench model-export`: does an exported model version label audio as the project said?

Protocol: a fresh server on loopback (as `bench campaign`), one classification project over
`clips` clips of a labelled folder (seed labels and control questions per class, as a campaign)
plus `held` other clips uploaded with their true labels and held out as the project's test set
(`PUT /projects/{id}/test-clips`: never trained on, never queued). Simulated annotators of mixed
skill label the campaign clips through the API while the learning service trains model
versions. Then, for the newest version and the oldest one whose files are kept, `listenloop
model export` and `listenloop predict` (each a child process, as a user runs them) label the
held-out clips from their audio files, and the predictions' UAR is compared with the score
the project reported for that version on the same clips (`GET /projects/{id}/models`,
`scores.test`).
"""

from __future__ import annotations

import asyncio
import csv
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from listenloop.bench.campaign import (
    DEFAULT_SKILLS,
    _pick,
    _truth_by_audio,
    _zip,
    annotate,
    class_answer,
    read_truth,
)
from listenloop.bench.serve import OWNER, OWNER_PASSWORD, Server, create_owner, token_of
from listenloop.errors import ListenloopError

QUIET = 30.0  # seconds without a new learning round: the service has caught up with the labels


def uar(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted average recall: the mean over the true classes of the share predicted right."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(list(truth), list(predicted)))


def _run(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "listenloop", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ListenloopError(f"listenloop {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
    return time.monotonic() - start, done


def run_model_export_bench(
    folder: Path,
    *,
    clips: int = 300,
    held: int = 100,
    seeds: int = 2,
    gold: int = 1,
    skills: Sequence[float] = DEFAULT_SKILLS,
    feature_set: str = "compare",
    retrain_every: int = 20,
    max_seconds: float = 300.0,
    seed: int = 0,
    own_cluster: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol above on `folder` (labels.csv: file,label); returns its figures.

    `own_cluster`: the server's learning rounds run on a Dask cluster the bench starts (one
    worker at normal priority, `serve --scheduler`): the server's own local cluster runs at the
    lowest priority (SCHED_IDLE), which on a machine busy with other work gets no CPU at all."""
    import httpx

    say = progress or (lambda _line: None)
    rng = random.Random(seed)
    truth = read_truth(folder)
    names = sorted(truth)
    rng.shuffle(names)
    if len(names) < clips + held:
        raise ListenloopError(f"{folder} has {len(names)} clips: fewer than --clips {clips} + --held {held}")
    test_names, campaign_names = names[:held], names[held : held + clips]
    campaign = {n: truth[n] for n in campaign_names}
    classes = sorted(set(truth.values()))
    seed_labels = _pick(campaign, seeds, rng, set())
    gold_labels = _pick(campaign, gold, rng, set(seed_labels))
    with tempfile.TemporaryDirectory(prefix="listenloop-bench-model-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        url = f"sqlite:///{data / 'listenloop.db'}"
        create_owner(url)
        cluster = _cluster() if own_cluster else None
        extra = ("--scheduler", cluster.scheduler_address) if cluster is not None else ()
        server = Server(url, data, 1, Path(tmp) / "server.log", extra=extra)
        t0 = time.monotonic()
        try:
            server.wait()
            with httpx.Client(base_url=server.base, timeout=300) as c:
                oh = {"Authorization": f"Bearer {token_of(c, OWNER, OWNER_PASSWORD)}"}
                body = {"name": "model-bench", "task_type": "classification", "classes": classes}
                body |= {"feature_set": feature_set, "retrain_every": retrain_every}
                pid = c.post("/api/v1/projects", headers=oh, json=body).raise_for_status().json()["id"]
                for part, labels in (
                    (campaign_names, seed_labels),
                    (test_names, {n: truth[n] for n in test_names}),
                ):
                    text = "file,label\n" + "".join(f"{n},{v}\n" for n, v in labels.items())
                    c.post(
                        f"/api/v1/projects/{pid}/clips",
                        headers=oh,
                        files={
                            "archive": ("clips.zip", _zip(folder, sorted(part)), "application/zip"),
                            "labels": ("labels.csv", text.encode(), "text/csv"),
                        },
                    ).raise_for_status()
                ids = _clip_ids(c, oh, pid, set(test_names))
                c.put(
                    f"/api/v1/projects/{pid}/test-clips", headers=oh, json={"clip_ids": ids}
                ).raise_for_status()
                gold_csv = "file,label\n" + "".join(f"{n},{v}\n" for n, v in gold_labels.items())
                c.post(
                    f"/api/v1/projects/{pid}/gold",
                    headers=oh,
                    files={"file": ("gold.csv", gold_csv.encode(), "text/csv")},
                ).raise_for_status()
                say(
                    f"project {pid}: {clips} campaign clips ({len(seed_labels)} seeds), {len(ids)} test clips"
                )
                tokens = []
                for k in range(len(skills)):
                    user, pw = f"sim{k}_{rng.randrange(1 << 30)}", f"pw-{rng.randrange(1 << 40)}"
                    c.post("/api/v1/users", json={"username": user, "password": pw}).raise_for_status()
                    tokens.append(token_of(c, user, pw))
                deadline = time.monotonic() + max_seconds
                asyncio.run(
                    annotate(
                        server.base, pid, tokens, skills, _truth_by_audio(folder, campaign),
                        class_answer(classes), deadline, seed,
                    )
                )  # fmt: skip
                campaign_s = time.monotonic() - t0
                versions = _settled_versions(c, oh, pid, say)
        finally:
            server.stop()
            if cluster is not None:
                cluster.close()
        kept = [v for v in versions if v["downloadable"] and v["scores"]["test"] is not None]
        if not kept:
            raise ListenloopError("the campaign trained no model version with a test score")
        chosen = [kept[-1]] + ([kept[0]] if len(kept) > 1 else [])
        held_dir = Path(tmp) / "held"
        held_dir.mkdir()
        source = {Path(f).name: Path(folder) / f for f in _files(folder)}
        for n in test_names:
            shutil.copyfile(source[n], held_dir / n)
        checked = []
        for v in chosen:
            out = Path(tmp) / f"model-v{v['version']}"
            where = ["--out", str(out), "--db", url, "--data", str(data)]
            export_s, _ = _run(["model", "export", str(pid), "--version", str(v["version"]), *where])
            pred_csv = Path(tmp) / f"pred-v{v['version']}.csv"
            predict_s, _ = _run(["predict", str(out), str(held_dir), "--out", str(pred_csv)])
            with open(pred_csv, newline="") as f:
                predicted = {r["file"]: r["label"] for r in csv.DictReader(f)}
            score = uar([truth[n] for n in test_names], [predicted.get(n, "") for n in test_names])
            reported = float(v["scores"]["test"])
            checked.append(
                {
                    "version": v["version"],
                    "labels": v["labels"],
                    "reported_test_uar": round(reported, 6),
                    "predict_uar": round(score, 6),
                    "equal": abs(score - reported) < 1e-9,
                    "predicted": len(predicted),
                    "export_s": round(export_s, 1),
                    "predict_s": round(predict_s, 1),
                }
            )
            say(
                f"version {v['version']} ({v['labels']} labels): reported {reported:.4f}, predict {score:.4f}"
            )
    return {
        "clips": clips,
        "held_out": held,
        "feature_set": feature_set,
        "learner": (versions[-1]["config"] or {}).get("learner") if versions else None,
        "versions": len(versions),
        "campaign_s": round(campaign_s, 1),
        "checked": checked,
        "all_equal": all(r["equal"] for r in checked),
    }


def _cluster() -> Any:
    """A local Dask cluster of one single-threaded worker process (openSMILE is not thread-safe;
    a round's task secedes while its feature extraction runs), for the server's rounds."""
    from listenloop.features.extraction import ONE_THREAD_ENV, local_cluster

    return local_cluster(1, ONE_THREAD_ENV)


def _files(folder: Path) -> list[str]:
    with open(Path(folder) / "labels.csv", newline="") as f:
        return [r["file"] for r in csv.DictReader(f)]


def _clip_ids(c: Any, headers: dict[str, str], pid: int, names: set[str]) -> list[int]:
    """Ids of the project's clips whose file is one of `names` (the clip browser, page by page)."""
    ids: list[int] = []
    offset = 0
    while True:
        page = (
            c.get(f"/api/v1/projects/{pid}/clips", headers=headers, params={"offset": offset, "limit": 100})
            .raise_for_status()
            .json()
        )
        ids += [row["clip_id"] for row in page["clips"] if row["file"] in names]
        offset += len(page["clips"])
        if not page["clips"] or offset >= page["total"]:
            return ids


def _settled_versions(
    c: Any, headers: dict[str, str], pid: int, say: Callable[[str], None], wait: float = 900.0
) -> list[dict[str, Any]]:
    """The project's versions once the learning service is quiet (a version exists and no new
    round came for QUIET seconds), or after `wait` seconds. A learning failure is an error."""
    end = time.monotonic() + wait
    rounds, since = -1, time.monotonic()
    while time.monotonic() < end:
        status = c.get(f"/api/v1/projects/{pid}/status", headers=headers).json()
        if status.get("learning_error"):
            raise ListenloopError(f"the learning service failed: {status['learning_error']}")
        now = sum(s.get("version") is not None for s in status["model_scores"])
        if now != rounds:
            rounds, since = now, time.monotonic()
        elif now and time.monotonic() - since >= QUIET:
            break
        time.sleep(5)
    else:
        say(f"the learning service was still training after {wait:.0f} s: the versions so far are checked")
    return c.get(f"/api/v1/projects/{pid}/models", headers=headers).raise_for_status().json()
