"""`listenloop features` and `listenloop bench features` end to end, through `main`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from listenloop.cli import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI; (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_features_no_cache_one_worker(fsdd_dir: Path, tmp_path: Path, capsys) -> None:
    args = ["features", str(fsdd_dir), "--set", "egemaps", "--workers", "1", "--no-cache"]
    code, out, _ = run([*args, "--cache-dir", str(tmp_path), "--no-progress"], capsys)
    assert code == 0
    assert "extracted 100 files (0 from cache, 100 computed, 0 skipped) with egemaps in " in out
    assert out.strip().endswith(" s")
    assert not list(tmp_path.rglob("*.f32"))


def test_features_cache_dir_second_run(fsdd_dir: Path, tmp_path: Path, capsys) -> None:
    args = ["features", str(fsdd_dir), "--set", "mfcc", "--cache-dir", str(tmp_path), "--no-progress"]
    assert "(0 from cache, 100 computed, 0 skipped)" in run(args, capsys)[1]
    assert "(100 from cache, 0 computed, 0 skipped)" in run(args, capsys)[1]


def test_out_csv_round_trips_file_ids(fsdd_dir: Path, tmp_path: Path, capsys) -> None:
    out_csv = tmp_path / "feats.csv"
    args = ["features", str(fsdd_dir), "--set", "mfcc", "--workers", "1", "--no-cache", "--out", str(out_csv)]
    code, out, _ = run([*args, "--no-progress"], capsys)
    assert code == 0 and f"wrote {out_csv}" in out
    table = pd.read_csv(out_csv, dtype={"file": str})
    labels = pd.read_csv(fsdd_dir / "labels.csv", dtype=str)
    assert table["file"].tolist() == labels["file"].tolist()
    assert table.shape == (100, 1 + 273)
    assert table.columns[1] == "mfcc0_min"
    before = out_csv.read_bytes()
    code, _, err = run([*args, "--no-progress"], capsys)  # a second run must not overwrite silently
    assert code != 0 and "exists" in err and out_csv.read_bytes() == before
    assert run([*args, "--no-progress", "--force"], capsys)[0] == 0


def test_out_npy_with_file_ids(fsdd_dir: Path, tmp_path: Path, capsys) -> None:
    out_npy = tmp_path / "feats.npy"
    args = ["features", str(fsdd_dir), "--set", "logmel", "--workers", "1", "--cache-dir", str(tmp_path)]
    assert run([*args, "--out", str(out_npy), "--no-progress"], capsys)[0] == 0
    X = np.load(out_npy)
    assert X.dtype == np.float32 and X.shape == (100, 240)
    files = pd.read_csv(tmp_path / "feats.files.csv", dtype=str)["file"].tolist()
    assert files == pd.read_csv(fsdd_dir / "labels.csv", dtype=str)["file"].tolist()
    assert len((tmp_path / "feats.names.txt").read_text().split()) == 240


def test_bad_files_reported_run_goes_on(bad_dir: Path, tmp_path: Path, capsys) -> None:
    args = ["features", str(bad_dir), "--set", "mfcc", "--workers", "1", "--cache-dir", str(tmp_path)]
    code, out, err = run(args, capsys)
    assert code == 0
    assert "extracted 2 of 6 files (0 from cache, 2 computed, 4 skipped) with mfcc" in out
    assert "skipped missing.wav: no such file" in err
    assert "skipped empty.wav: " in err and "skipped notaudio.wav: " in err
    assert "skipped truncated.wav: empty audio (0 samples)" in err
    assert "4 files skipped" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", "/no/such/folder", "--set", "mfcc"], "no such dataset folder"),
        (
            ["features", "{fsdd}", "--set", "wav2vec"],
            "unknown feature set 'wav2vec' (known: compare, egemaps",
        ),
        (["features", "{fsdd}", "--set", "mfcc", "--out", "x.parquet"], "use a .csv or .npy file"),
        (["features", "{fsdd}", "--set", "mfcc", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_input_is_one_error_line(args: list[str], message: str, fsdd_dir: Path, capsys) -> None:
    code, _out, err = run([a.format(fsdd=fsdd_dir) for a in args], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_bench_features(fsdd_dir: Path, tmp_path: Path, capsys) -> None:
    out_json = tmp_path / "bench.json"
    args = [
        "bench",
        "features",
        str(fsdd_dir),
        "--sets",
        "egemaps,mfcc",
        "--limit",
        "6",
        "--json",
        str(out_json),
    ]
    code, out, _ = run(args, capsys)
    assert code == 0
    assert "listenloop_rtf" in out and "egemaps" in out
    result = json.loads(out_json.read_text())
    assert result["files"] == 6
    rows = {r["set"]: r for r in result["rows"]}
    assert rows["egemaps"]["max_rel_diff"] == 0.0  # the very same values as openSMILE's
    assert rows["egemaps"]["opensmile_rtf"] > 0 and rows["egemaps"]["listenloop_rtf"] > 0
    assert rows["mfcc"]["opensmile_s"] is None
