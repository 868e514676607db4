"""One learning round over real clips: cold start, then the strategy's order and a model score."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from listenloop.engine.learning.round import learning_round
from listenloop.errors import ListenloopError


@pytest.fixture
def clips(fsdd_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str)
    table["path"] = "recordings/" + table["file"].str.replace("recordings/", "", regex=False)
    return table.reset_index(drop=True)


def run(fsdd_dir: Path, clips: pd.DataFrame, known: int, tmp_path: Path, **kw: object):
    labels = [lab if i < known else None for i, lab in enumerate(clips["label"])]
    return learning_round(
        fsdd_dir,
        list(range(100, 100 + len(clips))),
        list(clips["path"]),
        labels,
        [True] * len(clips),
        task_type="classification",
        classes=[str(d) for d in range(10)],
        feature_set="mfcc",
        learner="logreg",
        cache_dir=tmp_path / "cache",
        **kw,
    )


def test_cold_start_then_ranked_with_a_score(fsdd_dir: Path, clips: pd.DataFrame, tmp_path: Path) -> None:
    clips = clips.sort_values("label", kind="stable").reset_index(drop=True)
    cold = run(fsdd_dir, clips, 5, tmp_path)  # only digit 0 known
    assert cold.cold_start and cold.score is None and cold.labels == 5
    assert sorted(cold.order) == list(range(105, 200))  # every unlabelled clip, once
    shuffled = clips.sample(frac=1.0, random_state=0).reset_index(drop=True)
    warm = run(fsdd_dir, shuffled, 60, tmp_path, strategy="margin")
    assert not warm.cold_start and warm.labels == 60 and len(warm.order) == 40
    assert warm.score is not None and 0.0 <= warm.score <= 1.0


def test_unsupported_task_is_a_clear_error(fsdd_dir: Path, clips: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ListenloopError, match="ranking"):
        learning_round(fsdd_dir, [1], ["x.wav"], [None], [True], task_type="ranking", classes=["a"])


def test_multilabel_round_ranks_by_tags(fsdd_dir: Path, clips: pd.DataFrame, tmp_path: Path) -> None:
    """Tags of the digits ("low": 0-4, "even"): a round ranks the pool and scores the tags' models."""
    clips = clips.sample(frac=1.0, random_state=0).reset_index(drop=True)

    def tags(d: str) -> str:
        return "|".join(t for t, on in (("low", int(d) < 5), ("even", int(d) % 2 == 0)) if on)

    labels = [tags(d) if i < 60 else None for i, d in enumerate(clips["label"])]
    kw = {"task_type": "multilabel", "classes": ["low", "even"], "feature_set": "mfcc", "learner": "logreg"}
    ids = list(range(100, 100 + len(clips)))
    res = learning_round(
        fsdd_dir, ids, list(clips["path"]), labels, [True] * len(clips), cache_dir=tmp_path / "c", **kw
    )
    assert not res.cold_start and res.labels == 60 and sorted(res.order) == ids[60:]
    assert res.score is not None and 0.5 < res.score <= 1.0  # better than chance on both tags
    nothing = ["" if i < 5 else None for i in range(len(clips))]  # five clips heard with no tag
    cold = learning_round(
        fsdd_dir, ids, list(clips["path"]), nothing, [True] * len(clips), cache_dir=tmp_path / "c", **kw
    )
    assert cold.cold_start and cold.score is None and sorted(cold.order) == ids[5:]
