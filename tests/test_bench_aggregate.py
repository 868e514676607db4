"""`listenloop bench aggregate`: rows for every set and method, both sides, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from listenloop.bench.aggregate import PEER_NAMES, find_sets, run_aggregate_bench
from listenloop.errors import ListenloopError


def write_set(folder: Path, seed: int, items: int = 60) -> None:
    """Five workers of known accuracy on a two-class set; three of five answers per item."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    truth = rng.integers(2, size=items)
    acc = [0.95, 0.9, 0.8, 0.7, 0.55]
    lines = ["item,worker,label"]
    for i, t in enumerate(truth):
        for w in rng.choice(5, size=3, replace=False):
            label = t if rng.random() < acc[w] else 1 - t
            lines.append(f"q{i},w{w},{label}")
    (folder / "answers.csv").write_text("\n".join(lines) + "\n")
    (folder / "truth.csv").write_text("item,truth\n" + "".join(f"q{i},{t}\n" for i, t in enumerate(truth)))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_set(tmp_path / "crowd" / "one", 0)
    write_set(tmp_path / "crowd" / "two", 1)
    (tmp_path / "crowd" / "not-a-set").mkdir()
    return tmp_path / "crowd"


def test_rows_for_every_set_method_and_side(root: Path) -> None:
    pytest.importorskip("crowdkit", reason="crowd-kit, the peer of bench aggregate, is in the bench extra")
    methods = ("mv", "trust", "ds")  # crowd-kit's MACE and GLAD take 10 s and more even here
    rows = run_aggregate_bench(root, methods=methods)
    assert {r.dataset for r in rows} == {"one", "two"}
    ours = [r for r in rows if r.side == "listenloop"]
    assert [r.method for r in ours] == list(methods) * 2
    for r in ours:
        assert 0.5 < r.accuracy <= 1.0 and r.fit_s >= 0
    peers = {(r.dataset, r.method): r for r in rows if r.side == "crowd-kit"}
    assert set(peers) == {(d, PEER_NAMES[m]) for d in ("one", "two") for m in methods}
    for d in ("one", "two"):
        # Dawid-Skene is deterministic from majority-vote shares on both sides: same labels here.
        mine = next(r for r in ours if r.dataset == d and r.method == "ds")
        assert peers[(d, "DawidSkene")].accuracy == pytest.approx(mine.accuracy, abs=0.02)


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "listenloop", "bench", "aggregate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_command_writes_json_and_plot(root: Path, tmp_path: Path) -> None:
    out, plot = str(tmp_path / "r.json"), str(tmp_path / "r.png")
    proc = bench(
        str(root / "one"), "--no-peer", "--method", "mv", "--method", "ds", "--json", out, "--plot", plot
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [(r["dataset"], r["method"], r["side"]) for r in rows] == [
        ("one", "mv", "listenloop"),
        ("one", "ds", "listenloop"),
    ]
    assert (tmp_path / "r.png").stat().st_size > 1000
    assert "ds" in proc.stdout
    again = bench(str(root / "one"), "--no-peer", "--method", "mv", "--json", out)
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(json.loads((tmp_path / "r.json").read_text())) == 2  # the earlier result is intact


def test_missing_peer_is_a_clear_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "crowdkit", None)
    monkeypatch.setitem(sys.modules, "crowdkit.aggregation", None)
    with pytest.raises(ListenloopError, match=r"listenloop\[bench\]"):
        run_aggregate_bench(root)


def test_bad_roots_and_methods(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ListenloopError, match="no such folder"):
        find_sets(tmp_path / "nowhere")
    with pytest.raises(ListenloopError, match=r"no folder with answers\.csv"):
        find_sets(root / "not-a-set")
    with pytest.raises(ListenloopError, match="unknown method"):
        run_aggregate_bench(root, methods=("vibes",), peer=False)
