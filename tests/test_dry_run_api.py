"""The dry run through the API (`POST`/`GET /api/v1/projects/{id}/dry-run`) on SQLite and
PostgreSQL: owner only, clear 4xx for too few labels, progress while it runs, and a verdict that
matches a full `listenloop simulate --recommend` on the same labels."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api_support import annotator, login, zip_of
from listenloop.engine import dry_run as dry
from listenloop.engine.learning.service import LearningService
from listenloop.store.models import Clip

FSDD = Path(__file__).parent / "fixtures" / "fsdd"
DIGITS = [str(i) for i in range(10)]


def labelled_project(c: TestClient, headers: dict[str, str], per_digit: int, **extra: object) -> int:
    """A digits project (mfcc, logreg: fast) of the 100 fixture clips, `per_digit` of each uploaded
    with its label (the seed set)."""
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS, "feature_set": "mfcc"}
    r = c.post("/api/v1/projects", headers=headers, json=body | {"learner": "logreg"} | extra)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    table = pd.read_csv(FSDD / "labels.csv", dtype=str)
    files = {Path(f).name: (FSDD / f).read_bytes() for f in table["file"]}
    seed = table.groupby("label").head(per_digit)
    labels = "file,label\n" + "".join(
        f"{Path(f).name},{lab}\n" for f, lab in zip(seed["file"], seed["label"], strict=True)
    )
    upload = {"archive": ("a.zip", zip_of(files))}
    if per_digit:
        upload["labels"] = ("labels.csv", labels.encode())
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=headers, files=upload)
    assert r.status_code == 201, r.text
    return pid


def test_dry_run_end_to_end_matches_simulate(client: TestClient, tmp_path: Path) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = labelled_project(client, oh, per_digit=10, strategy="margin")  # 6 strategies, as measured
    assert client.get(f"/api/v1/projects/{pid}/dry-run", headers=oh).status_code == 404
    r = client.post(f"/api/v1/projects/{pid}/dry-run", headers=oh)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["status"] == "queued" and queued["labels"] == 100 and queued["progress"]["done"] == 0
    # one at a time
    assert client.post(f"/api/v1/projects/{pid}/dry-run", headers=oh).status_code == 409
    db = client.app.state.db
    data = tmp_path / "data"
    seen: list[tuple[int, int]] = []
    record = dry.record_progress

    def spy(db_, run_id: int, done: int, total: int) -> None:
        record(db_, run_id, done, total)
        body = client.get(f"/api/v1/projects/{pid}/dry-run", headers=oh).json()
        assert body["status"] == "running"
        seen.append((body["progress"]["done"], body["progress"]["total"]))

    service = LearningService(db, data, inline=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dry, "record_progress", spy)
        assert service.run_dry_runs_once() == [queued["id"]]
    total = seen[0][1]
    assert seen[0][0] == 0 and seen[-1] == (total, total) and total >= 6
    done = client.get(f"/api/v1/projects/{pid}/dry-run", headers=oh).json()
    assert done["status"] == "done", done["error"]
    assert done["progress"]["share"] == 1.0 and done["seconds"] > 0
    result = done["result"]
    verdict = result["verdict"]
    assert set(verdict["strategies"]) >= {"random", "margin", "medium_certainty"}
    for st in verdict["strategies"].values():
        assert {"labels_to_target", "labels_ci80", "share_of_random", "compared_with_random"} <= set(st)
    assert verdict["recommended"] in verdict["strategies"]
    assert verdict["text"].startswith("On your data, ")
    assert isinstance(verdict["too_small"], bool) and verdict["clips"] == 100
    assert result["plan"]["cold_start"] == "kmeans"

    # the same labels through `listenloop simulate --recommend` (the command the dry run reports)
    with db.read() as session:
        rows = session.execute(
            select(Clip.path, Clip.seed_label).where(Clip.project_id == pid).order_by(Clip.id)
        ).all()
    with open(data / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label"])
        w.writerows([(r.path, r.seed_label) for r in rows])
    args = shlex.split(result["command"])[2:]
    args[args.index("DATASET")] = str(data)
    args[args.index("OUT")] = str(tmp_path / "sim")
    args += ["--jobs", "1", "--quiet", "--cache-dir", str(data / "features")]
    from listenloop.cli.app import app

    out = CliRunner().invoke(app, ["simulate", *args])
    assert out.exit_code == 0, out.output
    assert f"recommended: {verdict['recommended']}" in out.output
    assert verdict["text"] in out.output


def test_dry_run_refusals(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    other = login(client, "owner2", "owner-pass-2")
    ann = annotator(client, "ann")
    pid = labelled_project(client, oh, per_digit=3)
    url = f"/api/v1/projects/{pid}/dry-run"
    assert client.post(url).status_code == 401
    assert client.get(url).status_code == 401
    assert client.post(url, headers=ann).status_code == 403
    assert client.post(url, headers=other).status_code == 403
    assert client.get(url, headers=other).status_code == 403
    assert client.post("/api/v1/projects/99999/dry-run", headers=oh).status_code == 404
    assert client.post("/api/v1/projects/0/dry-run", headers=oh).status_code == 422
    # 30 labels, 3 per digit: enough
    assert client.post(url, headers=oh).status_code == 202
    few = labelled_project(client, oh, per_digit=1)  # 10 labels
    r = client.post(f"/api/v1/projects/{few}/dry-run", headers=oh)
    assert r.status_code == 422 and "at least 20 labelled clips" in r.json()["detail"]
    none = labelled_project(client, oh, per_digit=0)
    r = client.post(f"/api/v1/projects/{none}/dry-run", headers=oh)
    assert r.status_code == 422 and "this project has 0" in r.json()["detail"]
    r = client.post(
        "/api/v1/projects", headers=oh, json={"name": "r", "task_type": "continuous", "range": [0, 10]}
    )
    assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/projects/{r.json()['id']}/dry-run", headers=oh)
    assert r.status_code == 422 and "classification or binary" in r.json()["detail"]


def test_a_failed_dry_run_says_why_and_a_stale_one_is_taken_over(client: TestClient, tmp_path: Path) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = labelled_project(client, oh, per_digit=3)
    assert client.post(f"/api/v1/projects/{pid}/dry-run", headers=oh).status_code == 202
    db = client.app.state.db
    claimed = dry.claim_dry_run(db)
    assert claimed is not None and claimed.project_id == pid
    assert dry.claim_dry_run(db) is None  # running: nobody else takes it
    from datetime import timedelta

    from listenloop.store.models import utcnow

    assert dry.claim_dry_run(db, now=utcnow() + dry.STALE + timedelta(seconds=1)) is not None  # stale
    dry.record_progress(db, claimed.run_id, 2, 8)
    body = client.get(f"/api/v1/projects/{pid}/dry-run", headers=oh).json()
    assert body["status"] == "running" and body["progress"] == {"done": 2, "total": 8, "share": 0.25}
    dry.finish_dry_run(db, claimed.run_id, error="ValueError: no features")
    body = client.get(f"/api/v1/projects/{pid}/dry-run", headers=oh).json()
    assert (
        body["status"] == "failed" and body["error"] == "ValueError: no features" and body["result"] is None
    )
    assert client.post(f"/api/v1/projects/{pid}/dry-run", headers=oh).status_code == 202  # a new one
