"""Datasets: a folder with `labels.csv` (a `file` column relative to the folder, label columns).

Labels and groups are read as strings so that ids and classes round-trip verbatim
("0" stays "0"); regression targets are parsed to floats on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from listenloop.errors import ListenloopError

LABELS_FILE = "labels.csv"


@dataclass
class Dataset:
    """A labelled audio folder: `files[i]` (relative path) has `labels[i]` and `groups[i]`."""

    root: Path
    files: list[str]
    labels: np.ndarray  # str (classification) or float (regression), one per file
    groups: np.ndarray | None = None  # str per file, or None
    label_column: str = "label"
    table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def paths(self) -> list[Path]:
        """Absolute paths of the files, in dataset order."""
        return [self.root / f for f in self.files]

    def subset(self, keep: np.ndarray) -> Dataset:
        """The dataset restricted to the rows `keep` (indices or a boolean mask)."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        return Dataset(
            root=self.root,
            files=[self.files[i] for i in idx],
            labels=self.labels[idx],
            groups=None if self.groups is None else self.groups[idx],
            label_column=self.label_column,
            table=self.table.iloc[idx].reset_index(drop=True),
        )


def read_table(root: str | Path) -> pd.DataFrame:
    """Read `root/labels.csv` with every column as a string; clear errors for a bad table."""
    root = Path(root)
    if not root.is_dir():
        raise ListenloopError(f"{root}: no such dataset folder")
    csv = root / LABELS_FILE
    if not csv.is_file():
        raise ListenloopError(f"{csv}: missing (a dataset folder needs labels.csv with a 'file' column)")
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ListenloopError(f"{csv}: not a readable CSV ({exc})") from exc
    if "file" not in table.columns:
        raise ListenloopError(f"{csv}: no 'file' column (columns: {', '.join(table.columns)})")
    empty = np.flatnonzero(table["file"].str.strip() == "")
    if len(empty):
        raise ListenloopError(f"{csv} line {empty[0] + 2}: empty 'file'")
    return table


def load_dataset(
    root: str | Path,
    label_column: str = "label",
    group_column: str | None = None,
    task: str = "classification",
    positive: list[str] | None = None,
) -> Dataset:
    """Load a dataset folder for `task` ("classification" or "regression").

    `positive` turns the label column into a binary task: those classes ("1") against the
    rest ("0"). Rows whose label is empty are unlabelled and dropped here.
    """
    root = Path(root)
    table = read_table(root)
    csv = root / LABELS_FILE
    for col in (label_column, group_column):
        if col is not None and col not in table.columns:
            raise ListenloopError(f"{csv}: no column '{col}' (columns: {', '.join(table.columns)})")
    table = table[table[label_column].str.strip() != ""].reset_index(drop=True)
    if table.empty:
        raise ListenloopError(f"{csv}: no labelled rows in column '{label_column}'")
    raw = table[label_column].to_numpy(dtype=str)
    if task == "regression":
        try:
            labels = raw.astype(float)
        except ValueError:
            bad = next(i for i, v in enumerate(raw) if not _is_float(v))
            raise ListenloopError(
                f"{csv}: column '{label_column}' row for {table['file'][bad]}: '{raw[bad]}' is not a number"
            ) from None
    elif task == "classification":
        labels = raw
        if positive:
            unknown = sorted(set(positive) - set(raw))
            if unknown:
                raise ListenloopError(f"--positive: no class {', '.join(unknown)} in column '{label_column}'")
            labels = np.where(np.isin(raw, positive), "1", "0")
    else:
        raise ListenloopError(f"unknown task '{task}' (classification or regression)")
    groups = None if group_column is None else table[group_column].to_numpy(dtype=str)
    return Dataset(root, table["file"].tolist(), labels, groups, label_column, table)


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
