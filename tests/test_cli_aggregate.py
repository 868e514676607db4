"""`listenloop aggregate`: outputs and every malformed input as one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


ANSWERS = "item,worker,label\n1,a,0\n1,b,0\n1,c,1\n2,a,1\n2,b,1\n2,c,1\n3,a,0\n3,b,1\n3,c,0\n"


@pytest.mark.parametrize("method", ["mv", "trust", "ds", "mace", "glad"])
def test_categorical_methods_write_labels_and_workers(tmp_path: Path, method: str) -> None:
    (tmp_path / "a.csv").write_text(ANSWERS)
    proc = run_cli(
        "aggregate", "a.csv", "--method", method, "--out", "o.csv", "--workers-out", "w.csv", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    labels = pd.read_csv(tmp_path / "o.csv", dtype={"item": str, "label": str})
    assert list(labels.columns[:3]) == ["item", "label", "confidence"]
    assert {"p_0", "p_1"} <= set(labels.columns)
    assert labels["item"].tolist() == ["1", "2", "3"]  # ids round-trip as strings
    assert labels.set_index("item")["label"]["2"] == "1"
    workers = pd.read_csv(tmp_path / "w.csv", dtype={"worker": str})
    assert list(workers.columns) == ["worker", "skill", "answers"] and workers["answers"].tolist() == [
        3,
        3,
        3,
    ]


def test_continuous_methods(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("item,worker,label\nx,a,1\nx,b,3\nx,c,8\ny,a,2\n")
    for method, expected in (("mean", 4.0), ("median", 3.0)):
        proc = run_cli("aggregate", "r.csv", "--method", method, "--out", f"{method}.csv", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        table = pd.read_csv(tmp_path / f"{method}.csv", dtype={"item": str})
        assert list(table.columns) == ["item", "value"]
        assert table.set_index("item")["value"]["x"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("content", "args"),
    [
        ("item,worker,label\n", ["--method", "mv"]),  # no answers
        ("item,worker\n1,a\n", ["--method", "mv"]),  # no label column
        ("item,worker,label\n1,a,x\n1,b,y\n", ["--method", "mean"]),  # not numbers
        (
            "item,worker,label\n1,a,0\n1,b,1\n",
            ["--method", "mv", "--gold", "gold.csv"],
        ),  # gold item 999 absent
        ("", ["--method", "ds"]),  # zero bytes
        ("item,worker,label\n1,a,0\n1,b\n", ["--method", "mv"]),  # a row without label
        ("item,worker,label\n1,a,0\n", ["--method", "nosuchmethod"]),
    ],
)
def test_malformed_input_is_one_clear_line(tmp_path: Path, content: str, args: list[str]) -> None:
    (tmp_path / "a.csv").write_text(content)
    (tmp_path / "gold.csv").write_text("item,label\n999,1\n")
    proc = run_cli("aggregate", "a.csv", *args, "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.csv").exists()


def test_missing_answers_file(tmp_path: Path) -> None:
    proc = run_cli("aggregate", "missing.csv", "--method", "mv", "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_output_folder_must_exist_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(ANSWERS)
    proc = run_cli("aggregate", "a.csv", "--out", "o.csv", "--workers-out", "nodir/w.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "nodir" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.csv").exists()


def test_trust_without_checks_warns(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(ANSWERS)
    proc = run_cli("aggregate", "a.csv", "--method", "trust", "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode == 0 and "equals majority vote" in proc.stderr


def test_no_arguments_shows_help(tmp_path: Path) -> None:
    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 0 and "aggregate" in proc.stdout and "error" not in proc.stderr
