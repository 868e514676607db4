"""`listenloop bench query` on a tiny pool: rows with the documented schema."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from listenloop.bench.query import OWN_STRATEGIES, STRATEGIES, make_pool, run_query_bench
from listenloop.cli import app
from listenloop.errors import ListenloopError
from listenloop.strategies.registry import torch_missing

KEYS = {"pool", "strategy", "listenloop_s", "modal_s", "peak_mb", "modal_peak_mb", "same_batch", "ratio"}


def test_bench_query_writes_rows(tmp_path) -> None:
    out = tmp_path / "x.json"
    result = CliRunner().invoke(
        app, ["bench", "query", "--pool-sizes", "2000", "--repeats", "2", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    dal = [] if torch_missing() else ["dal"]  # DAL's row needs the deep extra
    assert [r["strategy"] for r in rows] == [*STRATEGIES, *OWN_STRATEGIES, *dal]
    for r in rows:
        assert set(r) == KEYS
        assert r["pool"] == 2000 and r["listenloop_s"] >= 0 and r["peak_mb"] >= 0
        if r["strategy"] in ("random", "dal", *OWN_STRATEGIES):
            assert r["modal_s"] is None and r["same_batch"] is None and r["ratio"] is None
        else:
            assert r["modal_s"] > 0 and r["modal_peak_mb"] >= 0 and r["ratio"] > 0
            assert r["same_batch"] is True
    assert "least_confidence" in result.stdout


def test_missing_modal_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "modAL", None)
    monkeypatch.setitem(sys.modules, "modAL.uncertainty", None)
    with pytest.raises(ListenloopError, match=r"modAL, which is not installed: pip install 'listenloop\["):
        run_query_bench((2000,), repeats=1)


def test_bench_query_rejects_bad_sizes() -> None:
    result = CliRunner().invoke(app, ["bench", "query", "--pool-sizes", "10,x"])
    assert result.exit_code != 0


def test_make_pool_is_float32_and_seeded() -> None:
    X, y = make_pool(500, 88, 7, seed=3)
    assert X.dtype == np.float32 and X.shape == (500, 88) and set(np.unique(y)) <= set(range(7))
    np.testing.assert_array_equal(X, make_pool(500, 88, 7, seed=3)[0])


def test_dal_query_asks_the_most_disputed_clips() -> None:
    """The dal row times DAL's stage I over the whole pool: the batch has the highest vote entropy."""
    pytest.importorskip("torch")
    from listenloop.bench.query import dal_query, fit_dal_model

    model = fit_dal_model(seed=1)
    X, _ = make_pool(3000, seed=1)
    picked = dal_query(model, X, 30)
    entropy = model.mc_scores(X, seed=0)[1]
    assert len(set(picked.tolist())) == 30 and entropy[picked].mean() > np.quantile(entropy, 0.9)
