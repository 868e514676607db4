"""`listenloop simulate-crowd`: summary schema, both modes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture
def crowd_files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    truth = {f"i{k}": str(rng.integers(2)) for k in range(60)}
    rows = []
    for item, label in truth.items():
        for w in range(9):
            right = rng.random() < 0.8
            rows.append((item, f"w{w}", label if right else str(1 - int(label))))
    pd.DataFrame(rows, columns=["item", "worker", "label"]).to_csv(tmp_path / "answers.csv", index=False)
    pd.DataFrame({"item": list(truth), "truth": list(truth.values())}).to_csv(
        tmp_path / "truth.csv", index=False
    )
    return tmp_path


@pytest.mark.parametrize("mode", ["replay", "simulate"])
def test_simulate_crowd_writes_summary(crowd_files: Path, mode: str) -> None:
    proc = run_cli(
        "simulate-crowd",
        "--answers",
        "answers.csv",
        "--truth",
        "truth.csv",
        "--mode",
        mode,
        "--policy",
        "fixed:7",
        "--policy",
        "dynamic:min=2,max=9,tau=0.95",
        "--runs",
        "3",
        "--out",
        "res",
        "--quiet",
        cwd=crowd_files,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((crowd_files / "res" / "summary.json").read_text())
    fixed, dyn = summary["policies"]["fixed:7"], summary["policies"]["dynamic:min=2,max=9,tau=0.95"]
    assert fixed["answers_per_item"] == pytest.approx(7.0)
    assert 2.0 <= dyn["answers_per_item"] < 7.0
    assert 0.5 <= dyn["accuracy"] <= 1.0 and 0.5 <= fixed["accuracy"] <= 1.0
    assert (crowd_files / "res" / "report.md").exists()
    assert (crowd_files / "res" / "accuracy_vs_answers.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "sometimes"], "fixed:K"),
        (["--policy", "fixed:7", "--mode", "guess"], "--mode"),
        (["--policy", "fixed:7", "--trust", "vibes"], "--trust"),
    ],
)
def test_simulate_crowd_bad_input(crowd_files: Path, args: list[str], message: str) -> None:
    proc = run_cli(
        "simulate-crowd",
        "--answers",
        "answers.csv",
        "--truth",
        "truth.csv",
        "--out",
        "res",
        *args,
        cwd=crowd_files,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert not (crowd_files / "res" / "summary.json").exists()
