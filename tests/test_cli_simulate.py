"""`listenloop simulate` end to end on the bundled fixtures: files, schema, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from listenloop.sim.summary import STRATEGY_KEYS

# A small leave-one-group-out run on the fixture: 3 folds x 2 runs, 4 strategies.
SMALL_RUN = (
    *("--label-column", "label", "--features", "egemaps", "--group-column", "speaker", "--folds", "3"),
    *("--strategies", "random,least_confidence,medium_certainty,margin", "--initial", "10", "--batch", "10"),
    *("--iterations", "3", "--runs", "2", "--seed", "0"),
)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def fsdd_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    fsdd_dir = Path(__file__).parent / "fixtures" / "fsdd"
    out = tmp_path_factory.mktemp("sim")
    cache = tmp_path_factory.mktemp("cache")
    proc = run_cli(
        "simulate", str(fsdd_dir), *SMALL_RUN, "--cache-dir", str(cache), "--out", str(out / "res"), "--quiet"
    )
    return out / "res", proc


def test_simulate_writes_summary_plot_and_report(fsdd_run) -> None:
    out, proc = fsdd_run
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "classification" and summary["metric"] == "uar"
    assert isinstance(summary["full_pool_score"], float)
    assert set(summary["strategies"]) == {"random", "least_confidence", "medium_certainty", "margin"}
    for st in summary["strategies"].values():
        assert set(st) >= set(STRATEGY_KEYS)
        assert st["labels"] == [10, 20, 30, 40]
        assert len(st["aulc_runs"]) == 3 * 2
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| strategy |" in report and "margin" in report
    # the areas' shared range and the corrected test's caveat, on stdout and in the report
    assert summary["aulc_range"] == [10, 40] and "AULC over 10..40 labels" in proc.stdout
    assert "share data" in proc.stdout and "Nadeau and Bengio" in report


def test_simulate_same_seed_same_numbers(fsdd_run, fsdd_dir: Path, tmp_path: Path) -> None:
    out, _ = fsdd_run
    proc = run_cli(
        "simulate",
        str(fsdd_dir),
        *SMALL_RUN,
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "again"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    a = json.loads((out / "summary.json").read_text())["strategies"]
    b = json.loads((tmp_path / "again" / "summary.json").read_text())["strategies"]
    assert a == b


def test_simulate_refuses_to_overwrite(fsdd_run, fsdd_dir: Path) -> None:
    out, _ = fsdd_run
    before = (out / "summary.json").read_bytes()
    proc = run_cli("simulate", str(fsdd_dir), "--out", str(out), "--features", "egemaps")
    assert proc.returncode != 0
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    assert (out / "summary.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label-column", "nope"], "no column 'nope'"),
        (["--strategies", "random,psychic"], "unknown strategy"),
        (["--folds", "3", "--test-groups", "theo", "--group-column", "speaker"], "exclude each other"),
        (["--features", "nope"], "nope"),
        (["--learner", "nope"], "unknown classification learner"),
    ],
)
def test_simulate_bad_input_is_one_clear_line(
    fsdd_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    proc = run_cli(
        "simulate",
        str(fsdd_dir),
        "--out",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--quiet",
        "--iterations",
        "1",
        "--runs",
        "1",
        *args,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error:") and message in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "summary.json").exists()


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("simulate", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert proc.returncode != 0 and "no such dataset folder" in proc.stderr


def test_regression_with_mixed_office_events(office_dir: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "ebr"
    proc = run_cli("mix", str(office_dir), str(mixed), "--clips", "80", "--duration", "1.0", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "simulate",
        str(mixed),
        "--label-column",
        "ebr",
        "--task",
        "regression",
        "--features",
        "egemaps",
        "--strategies",
        "random,regression_binary_confidence",
        "--initial",
        "10",
        "--batch",
        "5",
        "--iterations",
        "3",
        "--runs",
        "2",
        "--test-fraction",
        "0.25",
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "res"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["task"] == "regression" and summary["metric"] == "cc"
    assert summary["strategies"]["regression_binary_confidence"]["labels"] == [10, 15, 20, 25]


def test_stream_mode(fsdd_dir: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "simulate",
        str(fsdd_dir),
        "--features",
        "egemaps",
        "--strategies",
        "random,margin,auto",
        "--stream",
        "--buffer",
        "20",
        "--initial",
        "10",
        "--iterations",
        "2",
        "--runs",
        "1",
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "s"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["strategies"]["margin"]["labels"] == [10, 20, 30]
    # auto in the stream: half of each buffer, a random share, the source of every clip logged
    assert summary["strategies"]["auto"]["labels"] == [10, 20, 30]
    assert summary["strategies"]["auto"]["sources"]["shares"]["random_share"][1] == 0.1
    rows = (tmp_path / "s" / "sources.csv").read_text().splitlines()
    assert rows[0] == "strategy,split,run,step,clip,source" and len(rows) == 1 + 20
    assert {r.split(",")[0] for r in rows[1:]} == {"auto"} and "warmup" in rows[1]


def test_simulate_refuses_a_binary_strategy_on_many_classes(fsdd_dir: Path, tmp_path: Path) -> None:
    """Checked before any feature is extracted (it failed mid-run)."""
    proc = run_cli(
        "simulate", str(fsdd_dir), "--strategies", "random,least_confidence_tuned",
        "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--quiet",
    )  # fmt: skip
    assert proc.returncode != 0 and proc.stderr.startswith("error:") and "needs a binary task" in proc.stderr
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # no features computed
