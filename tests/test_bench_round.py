"""`listenloop bench round` end to end on a small pool: the round is measured under a load and
the work folder (the pool's matrix) is deleted."""

from __future__ import annotations

from pathlib import Path

from listenloop.bench.round import run_round_bench


def test_a_small_round_is_measured_under_load_and_its_pool_deleted(tmp_path: Path) -> None:
    lines: list[str] = []
    row, errors = run_round_bench(
        clips=3000,
        feature_set="mfcc",
        labels=60,
        annotators=2,
        think=0.1,
        warmup=3,
        timeout=600,
        inline=True,
        workdir=tmp_path,
        progress=lines.append,
    )
    assert row.clips == 3000 and row.labels == 80 and row.skipped == 0  # every row read from the matrix
    assert not row.cold_start and row.score is not None
    assert row.round_wall_s > 0 and row.round_service_s is not None and row.round_service_s > 0
    assert row.learning_peak_rss_mb is not None and row.learning_peak_rss_mb > 0
    assert row.requests_before > 0 and row.requests_during > 0 and row.max_during_ms is not None
    assert not [k for k in errors if k.split()[-1].startswith("5")]
    assert list(tmp_path.iterdir()) == []  # the pool and its database are gone
    assert any("due" in line for line in lines)
