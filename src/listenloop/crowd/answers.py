"""The answers table: who answered what about which item, encoded once for the vectorised maths.

Ids and class labels stay strings ("0" stays "0"); aggregators work on integer codes and
map back to the original strings at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from listenloop.errors import ListenloopError

KINDS = ("regular", "control", "consistency")
REQUIRED = ("item", "worker", "label")


@dataclass
class EncodedAnswers:
    """Answers as integer codes: row i says worker `workers[i]` gave `labels[i]` to item `items[i]`."""

    items: np.ndarray  # int64 codes into item_ids
    workers: np.ndarray  # int64 codes into worker_ids
    labels: np.ndarray  # int64 codes into classes
    item_ids: np.ndarray  # str, sorted
    worker_ids: np.ndarray  # str, sorted
    classes: np.ndarray  # str, sorted

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_workers(self) -> int:
        return len(self.worker_ids)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def counts(self, weights: np.ndarray | None = None) -> np.ndarray:
        """(n_items, n_classes) votes per item and class, each answer weighted by `weights`."""
        flat = self.items * self.n_classes + self.labels
        size = self.n_items * self.n_classes
        return np.bincount(flat, weights=weights, minlength=size).reshape(self.n_items, self.n_classes)


def encode(answers: pd.DataFrame, classes: list[str] | None = None) -> EncodedAnswers:
    """Integer codes of an `item, worker, label` table (strings); `classes` fixes the class list."""
    item_ids, items = np.unique(answers["item"].to_numpy(dtype=str), return_inverse=True)
    worker_ids, workers = np.unique(answers["worker"].to_numpy(dtype=str), return_inverse=True)
    raw = answers["label"].to_numpy(dtype=str)
    if classes is None:
        class_ids, labels = np.unique(raw, return_inverse=True)
    else:
        class_ids = np.asarray(classes, dtype=str)
        lookup = {c: i for i, c in enumerate(class_ids)}
        unknown = sorted(set(raw) - set(lookup))
        if unknown:
            raise ListenloopError(f"answers name classes outside {list(class_ids)}: {unknown[:5]}")
        labels = np.array([lookup[v] for v in raw], dtype=np.int64)
    return EncodedAnswers(
        items.astype(np.int64),
        workers.astype(np.int64),
        labels.astype(np.int64),
        item_ids,
        worker_ids,
        class_ids,
    )


def read_answers(path: str | Path) -> pd.DataFrame:
    """Read an answers CSV (`item,worker,label[,kind,time]`) as strings, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ListenloopError(f"{path}: empty file (expected columns {', '.join(REQUIRED)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ListenloopError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ListenloopError(
            f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(table.columns)})"
        )
    if table.empty:
        raise ListenloopError(f"{path}: no answers")
    for col in REQUIRED:
        empty = np.flatnonzero(table[col].str.strip() == "")
        if len(empty):
            raise ListenloopError(f"{path} line {empty[0] + 2}: no {col}")
    if "kind" in table.columns:
        bad = np.flatnonzero(~table["kind"].isin((*KINDS, "")))
        if len(bad):
            raise ListenloopError(
                f"{path} line {bad[0] + 2}: kind '{table['kind'][bad[0]]}' is not one of {', '.join(KINDS)}"
            )
    return table


CANT_TELL = "can't tell"
"""The answer that names no class (`crowd.redundancy` re-exports it): it counts toward no class."""
TAG_SEP = "|"
"""Separator of the tags of a multi-label cell: a cell is a set, `a|b` is `b|a` (`crowd.soft_labels`)."""


def is_cant_tell(labels: pd.Series) -> pd.Series:
    """Which label cells are "can't tell" (case, spaces and a typographic apostrophe aside)."""
    text = labels.astype(str).str.strip().str.lower().str.replace("\u2019", "'", regex=False)
    return text == CANT_TELL


def is_multilabel(labels: pd.Series) -> bool:
    """Whether any cell names several tags (`a|b`): then every cell is a set of tags."""
    return bool(labels.astype(str).str.contains(TAG_SEP, regex=False).any())
