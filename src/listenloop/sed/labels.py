"""Crowd answers on overlapping segments -> strong labels, and scoring label files (the
library side of `listenloop sed labels` and `listenloop sed score`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from listenloop.audio.soundscape import PlacedEvent, segment_activity
from listenloop.crowd.soft_labels import SEP, answer_tags, presence_competence, presence_items, weak_to_strong
from listenloop.errors import ListenloopError
from listenloop.sed import maestro
from listenloop.sed.metrics import SegmentScores, segment_scores

COLUMNS = ("recording", "onset", "worker", "label")


def read_segment_answers(path: Path) -> pd.DataFrame:
    """`recording,onset,worker,label` rows (label: classes joined by |, empty for none), as
    strings, with a clear error naming the file and line."""
    if not Path(path).is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ListenloopError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ListenloopError(
            f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})"
        )
    if table.empty:
        raise ListenloopError(f"{path}: no answers")
    for col in ("recording", "onset", "worker"):
        empty = np.flatnonzero(table[col].str.strip() == "")
        if len(empty):
            raise ListenloopError(f"{path} line {empty[0] + 2}: no {col}")
    onsets = pd.to_numeric(table["onset"], errors="coerce")
    bad = np.flatnonzero(onsets.isna().to_numpy())
    if len(bad):
        raise ListenloopError(f"{path} line {bad[0] + 2}: onset {table['onset'][bad[0]]!r} is not a number")
    return table.assign(onset=onsets.astype(float))


def mace_competence(answers: pd.DataFrame, classes: Sequence[str], seed: int = 0) -> pd.Series:
    """One MACE competence θ per worker from their presence marks (one binary item per segment
    and class, `presence_items`): 004_ uses MACE for θ only."""
    return presence_competence(presence_items(answers, classes), seed=seed)


def crowd_soft_labels(
    answers: pd.DataFrame,
    classes: Sequence[str] | None = None,
    weights: str = "mace",
    segment: float = 10.0,
    hop: float = 1.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Strong soft labels (`weak_to_strong`) and the competences used (`weights` "mace"; None
    for "equal", the plain share of annotators)."""
    if weights not in ("mace", "equal"):
        raise ListenloopError(f"--weights {weights!r}: expected mace or equal")
    if classes is None:
        named = set().union(*(answer_tags(str(c), SEP) for c in answers["label"]))
        classes = sorted(named)
    if not classes:
        raise ListenloopError("no class is named in the answers: pass --classes")
    theta = mace_competence(answers, classes, seed) if weights == "mace" else None
    soft = weak_to_strong(answers, theta, segment=segment, hop=hop, classes=classes)
    return soft, theta


def score_folders(reference: Path, estimate: Path, hop: float = 1.0) -> tuple[SegmentScores, list[str]]:
    """Segment-based scores of the hard-label files in `estimate` against those in `reference`
    (one `NAME.txt` per recording; a recording missing from `estimate` has no events there)."""
    refs = sorted(Path(reference).glob("*.txt"))
    if not refs:
        raise ListenloopError(f"{reference}: no *.txt hard-label files")
    if not Path(estimate).is_dir():
        raise ListenloopError(f"{estimate}: no such folder")
    pairs = []
    for ref in refs:
        est = Path(estimate) / ref.name
        pairs.append((maestro.read_hard(ref), maestro.read_hard(est) if est.is_file() else []))
    classes = sorted({lab for r, e in pairs for _, _, lab in (*r, *e)})
    truth, guess = [], []
    for ref_events, est_events in pairs:
        end = max([off for _, off, _ in (*ref_events, *est_events)], default=hop)
        truth.append(
            segment_activity([PlacedEvent(a, b, c, 0.0, "") for a, b, c in ref_events], classes, end, hop)
        )
        guess.append(
            segment_activity([PlacedEvent(a, b, c, 0.0, "") for a, b, c in est_events], classes, end, hop)
        )
    return segment_scores(np.concatenate(truth), np.concatenate(guess), classes), classes
