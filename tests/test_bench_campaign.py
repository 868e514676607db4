"""`listenloop bench campaign`: a small campaign through the API, scored against the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def test_small_campaign_labels_every_clip(fsdd_dir: Path, tmp_path: Path) -> None:
    """With Chromium present, also the pages' screenshots taken during the campaign."""
    out = tmp_path / "c.json"
    shots = tmp_path / "shots"
    extra = ["--screenshots", str(shots), "--screenshot-after", "2"] if CHROMIUM.is_file() else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "listenloop",
            "bench",
            "campaign",
            str(fsdd_dir),
            "--limit",
            "40",
            "--skills",
            "0.95,0.9,0.85,0.8",
            "--seeds",
            "1",
            "--gold",
            "1",
            "--feature-set",
            "mfcc",
            "--max-seconds",
            "120",
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if extra:
        names = sorted(p.name for p in shots.glob("*.png"))
        assert names == [
            "clip-browser.png",
            "dashboard-desktop.png",
            "dashboard-phone.png",
            "label-desktop.png",
            "label-phone.png",
        ]
        assert all(p.stat().st_size > 10_000 for p in shots.glob("*.png"))
    result = json.loads(out.read_text())
    assert result["clips"] == 40 and result["crowd_clips"] > 0
    assert result["labelled"] == result["crowd_clips"]  # the annotators ran out of work: all done
    assert result["accuracy"] >= 0.9
    assert 2 <= result["answers_per_clip"] <= 7  # within the redundancy policy's min and max
    assert result["answers_total"] >= result["regular_answers"]


def test_bad_skills_is_one_line(fsdd_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "listenloop", "bench", "campaign", str(fsdd_dir), "--skills", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--skills" in proc.stderr and "Traceback" not in proc.stderr


def test_screenshots_without_a_browser_is_one_line(fsdd_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "listenloop",
            "bench",
            "campaign",
            str(fsdd_dir),
            "--screenshots",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LISTENLOOP_CHROMIUM": str(tmp_path / "no-chromium")},
    )
    assert proc.returncode != 0 and "Chromium" in proc.stderr and "Traceback" not in proc.stderr


def test_task_campaign_mixes_tags_and_scores_the_export(office_dir: Path, tmp_path: Path) -> None:
    """`--task multilabel`: tagged mixtures of office events labelled through the API with
    dynamic redundancy; every crowd clip ends with a label and fewer answers than the max."""
    out = tmp_path / "t.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "listenloop", "bench", "campaign", str(office_dir), "--task", "multilabel",
            "--clips", "30", "--tags", "3", "--skills", "0.95,0.9,0.9,0.85,0.9,0.95,0.9", "--seeds", "3",
            "--gold", "3", "--feature-set", "mfcc", "--max-seconds", "120", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["clips"] == 30 and result["crowd_clips"] == 24 and result["labelled"] == 24, result
    assert result["exact"] >= 0.9 and result["answers_per_clip"] < 7


def test_simulated_answers_and_scores() -> None:
    import random

    from listenloop.bench.campaign_tasks import score, simulated_answer

    rng = random.Random(0)
    tags = ["a", "b", "c"]
    assert simulated_answer("multilabel", "a|c", 1.0, tags, rng) == "a|c"
    wrong = [simulated_answer("multilabel", "a|c", 0.5, tags, rng) for _ in range(400)]
    assert 0.4 < sum(w != "a|c" for w in wrong) / 400 < 0.6
    assert all(len(set(w.split("|")) ^ {"a", "c"}) == 1 for w in wrong if w != "a|c")  # one tag off
    ratings = [float(simulated_answer("continuous", "5", 0.9, [], rng)) for _ in range(2000)]
    assert abs(sum(ratings) / 2000 - 5) < 0.2 and all(-20 <= r <= 20 for r in ratings)
    rows = [
        {"file": "x", "source": "crowd", "final": "true", "label": "1.5", "status": "done", "answers": "3"},
        {"file": "y", "source": "crowd", "final": "true", "label": "-2", "status": "low_agreement",
         "answers": "7"},
        {"file": "z", "source": "seed", "final": "true", "label": "0", "status": "done", "answers": "0"},
    ]  # fmt: skip
    s = score("continuous", rows, {"x": "1.0", "y": "0.0", "z": "0"}, [])
    assert (s["mae"], s["answers_per_clip"], s["low_agreement"], s["crowd_clips"]) == (1.25, 5.0, 1, 2)


def test_inline_campaign_spends_its_budget_and_scores_the_model_per_answer(fsdd_dir: Path) -> None:
    """`--inline`: the engine in this process, a learning round whenever due, the model scored
    against the truth after each round; the budget stops the crowd."""
    from listenloop.bench.inline_campaign import run_inline_campaign

    result = run_inline_campaign(
        fsdd_dir,
        skills=(0.95, 0.9, 0.8),
        seeds=2,
        gold=1,
        limit=50,
        feature_set="mfcc",
        retrain_every=5,
        queue="relabel_or_new",
        budget=60,
        heldout=20,
    )
    assert result.queue == "relabel_or_new" and result.budget == 60
    assert result.answers_total == 60  # every answer of every kind counts, and it stops there
    answers = [p["answers"] for p in result.curve]
    assert len(answers) >= 2 and answers == sorted(answers) and answers[-1] == 60
    assert all(p["uar"] is not None and 0.0 <= p["uar"] <= 1.0 for p in result.curve)
    # the curve scores the clips each round did not train on: fewer as labels come in
    clips = [p["clips"] for p in result.curve]
    assert clips == sorted(clips, reverse=True) and clips[0] == 20 and clips[-1] < 20
    assert result.model_uar_clips == 20  # the final export's guesses, trained clips included
    # the final labels' model on clips outside the campaign
    assert result.heldout_clips == 20 and 0.0 <= result.heldout_uar <= 1.0
    assert result.correct is not None and result.answers_per_correct is not None
