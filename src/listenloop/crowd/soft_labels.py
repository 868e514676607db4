"""Soft labels from several annotators' answers, weighted by annotator competence: the one
implementation that the platform's live re-aggregation, `listenloop aggregate` and the exports use.

Martín-Morató, Harju, Ahokas & Mesaros, "Training Sound Event Detection with Soft Labels from
Crowdsourced Annotations", sec. 2.1, eq. 1: for each item t and class,
a_t = sum_j theta_j v_j / sum_j theta_j over the annotators j who answered t, v_j = 1 when
j marked the class present and 0 otherwise. A reliable minority (2 of 5 at theta 0.9 against
3 at 0.2) can reach a_t > 0.5: that is the point of weighting by competence.

A single-class answer is a vote for its class and against every other (so for classification
a_t is the competence-weighted share of the answers per class); a multi-label answer
("cough|speech") votes for each tag it names; "can't tell" counts toward no class and is left
out of the denominator too (it is no opinion on the classes). The paper estimates theta with
MACE; here it is whatever the caller's worker model gives (the platform: the background
Dawid-Skene skills, or control-question trust before a fit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from listenloop.crowd.aggregation.trust_weighted_vote import trust_lookup
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.errors import ListenloopError

SEP = "|"


class ZeroCompetenceError(ListenloopError):
    """Every annotator who gave an item a class answer has competence 0 (eq. 1 divides by 0)."""

    def __init__(self, item: int) -> None:
        super().__init__(f"item #{item}: all its annotators have competence 0")
        self.item = item


def answer_tags(cell: str, sep: str | None = SEP) -> set[str]:
    """The classes an answer names: its tags (`sep`-separated, blanks dropped), or the whole
    cell as one class when `sep` is None; none for can't-tell."""
    if cell == CANT_TELL:
        return set()
    parts = [cell] if sep is None else cell.split(sep)
    return {p.strip() for p in parts} - {""}


def encode_votes(
    cells: Sequence[str], classes: Sequence[str] | None = None, sep: str | None = SEP
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Answers as (answered, vote rows, vote classes, classes).

    `answered[i]` is False for can't-tell; each (row, class) pair is one class that answer i
    marked present. `classes` fixes the class order (a tag outside it is an error); None takes
    the sorted classes the answers name.
    """
    cells = [str(c) for c in cells]
    tags = [answer_tags(c, sep) for c in cells]
    answered = np.array([c != CANT_TELL for c in cells], dtype=bool)
    if classes is None:
        classes = sorted(set().union(*tags)) if tags else []
    classes = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    rows: list[int] = []
    codes: list[int] = []
    for i, named in enumerate(tags):
        for tag in named:
            code = index.get(tag)
            if code is None:
                raise ListenloopError(f"answer {cells[i]!r}: {tag!r} is not one of {classes}")
            rows.append(i)
            codes.append(code)
    return answered, np.array(rows, dtype=np.int64), np.array(codes, dtype=np.int64), classes


def tag_matrix(answered: np.ndarray, rows: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(answers, classes) 0/1 votes from `encode_votes` (can't-tell rows are all 0)."""
    votes = np.zeros((len(answered), n_classes))
    votes[rows, codes] = 1.0
    return votes


def activity(
    item_codes: np.ndarray,
    n_items: int,
    answered: np.ndarray,
    rows: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    theta: np.ndarray,
) -> np.ndarray:
    """004_ eq. 1 over encoded answers: (items, classes) a_t; NaN for items no class answer reached.

    `item_codes[i]` is answer i's item, `theta[i]` its annotator's competence (>= 0). An item
    whose class answers all have competence 0 raises ZeroCompetenceError.
    """
    weight = np.where(answered, np.asarray(theta, dtype=float), 0.0)
    numer = np.bincount(
        item_codes[rows] * n_classes + codes, weights=weight[rows], minlength=n_items * n_classes
    ).reshape(n_items, n_classes)
    denom = np.bincount(item_codes, weights=weight, minlength=n_items)
    reached = np.bincount(item_codes, weights=answered.astype(float), minlength=n_items) > 0
    zero = np.flatnonzero(reached & (denom <= 0))
    if len(zero):
        raise ZeroCompetenceError(int(zero[0]))
    out = np.full((n_items, n_classes), np.nan)
    out[reached] = numer[reached] / denom[reached, None]
    return out


def soft_label(
    labels: Sequence[str], competence: Sequence[float], classes: Sequence[str], sep: str | None = SEP
) -> dict[str, float]:
    """One item's soft label {class: a_t} over `classes` (rounded to 6 places); {} when no
    answer names a class (none yet, or only can't-tell). The request path's call."""
    answered, rows, codes, classes = encode_votes(labels, classes, sep)
    if not answered.any():
        return {}
    theta = np.asarray(competence, dtype=float)
    a = activity(np.zeros(len(answered), dtype=np.int64), 1, answered, rows, codes, len(classes), theta)[0]
    return {c: round(float(v), 6) for c, v in zip(classes, a, strict=True)}


def soft_labels(
    answers: pd.DataFrame,
    competence: Mapping[str, float] | pd.Series | None = None,
    default_competence: float = 1.0,
    sep: str | None = SEP,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Items × classes DataFrame of a_t in [0, 1] (004_ eq. 1); index `item`, columns `classes`
    (default: the classes the answers name, sorted).

    A label cell may name several classes separated by `sep` ("cough|speech"): each is
    present (v=1) for that annotator, every other class absent (v=0); an empty cell says
    "nothing present"; `sep=None` reads each cell as one class (classification). "Can't tell"
    counts toward no class and is no opinion: an item with only can't-tell answers gets NaN.
    `competence` maps worker id -> theta (default 1 for everyone, i.e. the plain share of
    annotators); workers it does not name get `default_competence`.
    """
    items = answers["item"].astype(str).to_numpy()
    cells = answers["label"].astype(str).to_numpy()
    worker_ids, workers = np.unique(answers["worker"].astype(str).to_numpy(), return_inverse=True)
    theta = trust_lookup(worker_ids, competence, default_competence, what="competence")[workers]
    item_ids, item_codes = np.unique(items, return_inverse=True)
    answered, rows, codes, classes = encode_votes(list(cells), classes, sep)
    try:
        a = activity(item_codes, len(item_ids), answered, rows, codes, len(classes), theta)
    except ZeroCompetenceError as exc:
        raise ListenloopError(f"item {item_ids[exc.item]!r}: all its annotators have competence 0") from None
    return pd.DataFrame(a, index=pd.Index(item_ids, name="item"), columns=pd.Index(classes, name="class"))


def hard_labels(soft: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Boolean activity per item and class: True where the soft label is above `threshold`.

    As in 004_ (sec. 2.1), a value exactly at the threshold counts as inactive.
    """
    return soft > threshold


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., n_i - 1 for each count n_i in turn, concatenated."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def weak_to_strong(
    answers: pd.DataFrame,
    competence: Mapping[str, float] | pd.Series | None = None,
    default_competence: float = 1.0,
    segment: float = 10.0,
    hop: float = 1.0,
    classes: Sequence[str] | None = None,
    sep: str | None = SEP,
) -> pd.DataFrame:
    """Temporally strong soft labels from weak answers on overlapping segments (004_ sec. 2.1).

    `answers` has columns `recording, onset, worker, label`: one multi-label presence answer
    (`sep`-separated classes, "" for none) per annotation segment [onset, onset + `segment`)
    seconds. Each `hop`-second sub-segment t takes eq. 1 over the answers of every segment
    that overlaps it, so the same `activity` as `soft_labels` does the sums. Onsets are
    multiples of the hop except a recording's final segment, which ends at the recording's
    end (`engine.uploads.segment_onsets`): it votes on every sub-segment it overlaps, so the
    file's last seconds are labelled too. Returns a frame indexed by (recording, onset,
    offset) of the sub-segments some answer overlaps, one column per class; sub-segments with
    only can't-tell answers are NaN.
    """
    for column in ("recording", "onset", "worker", "label"):
        if column not in answers.columns:
            raise ListenloopError(f"answers: no {column!r} column")
    if hop <= 0 or segment <= 0:
        raise ListenloopError(f"segment ({segment}) and hop ({hop}) must be positive")
    per = segment / hop
    if abs(per - round(per)) > 1e-9:
        raise ListenloopError(f"segment length {segment} s is not a whole number of {hop} s hops")
    per = round(per)
    onsets = pd.to_numeric(answers["onset"], errors="coerce").to_numpy(dtype=float)
    steps = onsets / hop
    bad = np.flatnonzero(~np.isfinite(steps) | (steps < 0))
    if len(bad):
        raise ListenloopError(
            f"answers row {int(bad[0]) + 1}: onset {answers['onset'].iloc[bad[0]]} is not a time in seconds"
        )
    # The first sub-segment a segment overlaps; an onset off the hop grid (a final segment)
    # overlaps one sub-segment more than `per`.
    first = np.floor(steps + 1e-6).astype(np.int64)
    ragged = np.abs(steps - np.round(steps)) > 1e-6
    per_answer = np.where(ragged, per + 1, per)
    recordings, rec_codes = np.unique(answers["recording"].astype(str).to_numpy(), return_inverse=True)
    worker_ids, workers = np.unique(answers["worker"].astype(str).to_numpy(), return_inverse=True)
    theta = trust_lookup(worker_ids, competence, default_competence, what="competence")[workers]
    answered, rows, codes, classes = encode_votes(list(answers["label"].astype(str)), classes, sep)
    # Every answer votes on each of the sub-segments its segment overlaps.
    rep = np.repeat(np.arange(len(answers)), per_answer)
    starts = np.cumsum(per_answer) - per_answer  # each answer's first position in `rep`
    offsets = _ranks(per_answer)
    sub = first[rep] + offsets
    span = int(sub.max()) + 1 if len(sub) else 1
    keys, item_codes = np.unique(rec_codes[rep] * span + sub, return_inverse=True)
    votes_per = per_answer[rows]  # each vote (answer, class) counts on its answer's sub-segments
    rows_x = np.repeat(starts[rows], votes_per) + _ranks(votes_per)
    codes_x = np.repeat(codes, votes_per)
    try:
        a = activity(item_codes, len(keys), answered[rep], rows_x, codes_x, len(classes), theta[rep])
    except ZeroCompetenceError as exc:
        rec, t = divmod(int(keys[exc.item]), span)
        raise ListenloopError(
            f"recording {recordings[rec]!r} at {t * hop:g} s: all its annotators have competence 0"
        ) from None
    rec_of, t_of = np.divmod(keys, span)
    index = pd.MultiIndex.from_arrays(
        [recordings[rec_of], t_of * hop, (t_of + 1) * hop], names=["recording", "onset", "offset"]
    )
    return pd.DataFrame(a, index=index, columns=pd.Index(classes, name="class"))


def activity_events(
    hard: pd.DataFrame,
) -> list[tuple[str, float, float, str]]:
    """Events (recording, onset, offset, class) from boolean sub-segment activity indexed by
    (recording, onset, offset): runs of consecutive active sub-segments of a class merge into one."""
    events: list[tuple[str, float, float, str]] = []
    for recording, part in hard.groupby(level="recording", sort=True):
        part = part.sort_index(level="onset")
        onsets = part.index.get_level_values("onset").to_numpy(dtype=float)
        offsets = part.index.get_level_values("offset").to_numpy(dtype=float)
        for label in part.columns:
            on = part[label].fillna(False).to_numpy(dtype=bool)
            start: float | None = None
            end = 0.0
            for active, t0, t1 in zip(on, onsets, offsets, strict=True):
                if active and start is not None and abs(t0 - end) < 1e-9:
                    end = t1
                    continue
                if start is not None:
                    events.append((str(recording), start, end, str(label)))
                    start = None
                if active:
                    start, end = t0, t1
            if start is not None:
                events.append((str(recording), start, end, str(label)))
    return sorted(events, key=lambda e: (e[0], e[1], e[3]))


def presence_items(answers: pd.DataFrame, classes: Sequence[str], sep: str | None = SEP) -> pd.DataFrame:
    """Multi-label segment answers (`recording, onset, worker, label`) as binary `item, worker,
    label` rows, one item per (segment, class) with label "1" (marked) or "0": the table from
    which MACE estimates one competence per worker (004_ uses MACE for θ only). Can't-tell
    answers are left out (no opinion)."""
    answers = answers[answers["label"].astype(str) != CANT_TELL]
    named = [answer_tags(str(c), sep) for c in answers["label"]]
    segment = (answers["recording"].astype(str) + "@" + answers["onset"].astype(str)).to_numpy()
    workers = answers["worker"].astype(str).to_numpy()
    parts = [
        pd.DataFrame(
            {
                "item": segment + "#" + str(c),
                "worker": workers,
                "label": np.array(["1" if c in tags else "0" for tags in named], dtype=object),
            }
        )
        for c in classes
    ]
    return pd.concat(parts, ignore_index=True)


def presence_competence(
    binary: pd.DataFrame, gold: Mapping[str, str] | None = None, seed: int = 0
) -> pd.Series:
    """θ per worker (004_ sec. 2.1: MACE's competence, the probability that a worker answers
    from what they hear rather than at random), fitted on binary presence rows `item, worker,
    label` ("1" marked / "0" not; `presence_items`, or one item per clip and tag): the one
    estimate behind `listenloop sed labels`, `listenloop aggregate --multilabel --method mace`
    and an events project's background refresh. `gold`: binary items clamped at "0"/"1"."""
    from listenloop.crowd.aggregation.mace import MACE

    fit = MACE(n_restarts=3, random_state=seed).fit(binary, classes=["0", "1"], gold=dict(gold or {}))
    return fit.competence_
