"""MAESTRO-Real style annotation files (004_ sec. 2.2), one per recording.

Hard labels: `onset<TAB>offset<TAB>label` per event (`2	11	car`). Soft labels:
`onset<TAB>offset<TAB>label<TAB>value` per 1 s sub-segment and class (`2	3	car	0.9`).
Labels may hold spaces ("people talking"): fields are tab-separated; a file without tabs is
read as whitespace-separated with the label in the middle.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from listenloop.crowd.soft_labels import activity_events, hard_labels
from listenloop.errors import ListenloopError


def _fields(line: str, n_numbers_after: int) -> list[str]:
    if "\t" in line:
        return [f.strip() for f in line.rstrip("\n").split("\t")]
    parts = line.split()
    if len(parts) < 3 + n_numbers_after:
        return parts
    head, tail = parts[:2], parts[len(parts) - n_numbers_after :] if n_numbers_after else []
    label = " ".join(parts[2 : len(parts) - n_numbers_after])
    return [*head, label, *tail]


def _number(text: str, path: Path, line_no: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ListenloopError(f"{path} line {line_no}: {what} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ListenloopError(f"{path} line {line_no}: {what} {text!r} is not finite")
    return value


def read_hard(path: Path) -> list[tuple[float, float, str]]:
    """Events (onset, offset, label) of a hard-label file."""
    out = []
    for no, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        f = _fields(line, 0)
        if len(f) != 3 or not f[2]:
            raise ListenloopError(f"{path} line {no}: expected 'onset offset label', got {line!r}")
        on, off = _number(f[0], path, no, "onset"), _number(f[1], path, no, "offset")
        if not 0 <= on < off:
            raise ListenloopError(f"{path} line {no}: onset {f[0]} must be >= 0 and before offset {f[1]}")
        out.append((on, off, f[2]))
    return out


def read_soft(path: Path, recording: str | None = None) -> pd.DataFrame:
    """A soft-label file as a frame indexed by (recording, onset, offset), one column per class
    (classes a segment does not list are NaN); `recording` defaults to the file's stem."""
    rec = recording if recording is not None else Path(path).stem
    rows = []
    for no, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        f = _fields(line, 1)
        if len(f) != 4 or not f[2]:
            raise ListenloopError(f"{path} line {no}: expected 'onset offset label value', got {line!r}")
        on, off = _number(f[0], path, no, "onset"), _number(f[1], path, no, "offset")
        value = _number(f[3], path, no, "value")
        if not 0 <= value <= 1:
            raise ListenloopError(f"{path} line {no}: soft label {f[3]} is outside [0, 1]")
        if not 0 <= on < off:
            raise ListenloopError(f"{path} line {no}: onset {f[0]} must be >= 0 and before offset {f[1]}")
        rows.append((rec, on, off, f[2], value))
    if not rows:
        raise ListenloopError(f"{path}: no soft labels")
    table = pd.DataFrame(rows, columns=["recording", "onset", "offset", "class", "value"])
    if table.duplicated(["onset", "offset", "class"]).any():
        dup = table[table.duplicated(["onset", "offset", "class"])].iloc[0]
        raise ListenloopError(f"{path}: {dup['class']!r} at {dup['onset']:g} s is listed twice")
    soft = table.pivot(index=["recording", "onset", "offset"], columns="class", values="value")
    soft.columns.name = "class"
    return soft


def hard_text(events: Iterable[tuple[float, float, str]]) -> str:
    """A hard-label file's text: one `onset<TAB>offset<TAB>label` line per event."""
    return "".join(f"{on:g}\t{off:g}\t{label}\n" for on, off, label in events)


def soft_text(soft: pd.DataFrame) -> str:
    """A soft-label file's text from one recording's frame (index (…, onset, offset)); NaN cells
    are skipped."""
    lines = []
    onsets = soft.index.get_level_values("onset")
    offsets = soft.index.get_level_values("offset")
    for (on, off), values in zip(zip(onsets, offsets, strict=True), soft.to_numpy(), strict=True):
        for label, v in zip(soft.columns, values, strict=True):
            if np.isfinite(v):
                lines.append(f"{on:g}\t{off:g}\t{label}\t{round(float(v), 6):g}\n")
    return "".join(lines)


def write_hard(path: Path, events: Iterable[tuple[float, float, str]]) -> None:
    """A hard-label file (`hard_text`)."""
    Path(path).write_text(hard_text(events))


def write_soft(path: Path, soft: pd.DataFrame) -> None:
    """A soft-label file (`soft_text`)."""
    Path(path).write_text(soft_text(soft))


def files(soft: pd.DataFrame, threshold: float = 0.5) -> dict[str, str]:
    """`{"soft/REC.txt": text, "hard/REC.txt": text}` for every recording of `soft`: the soft
    labels, and the hard events (soft > `threshold`, runs merged)."""
    events = activity_events(hard_labels(soft, threshold))
    out: dict[str, str] = {}
    for rec, part in soft.groupby(level="recording", sort=True):
        out[f"soft/{rec}.txt"] = soft_text(part)
        out[f"hard/{rec}.txt"] = hard_text([(on, off, lab) for r, on, off, lab in events if r == rec])
    return out


def export(soft: pd.DataFrame, out: Path, threshold: float = 0.5) -> list[Path]:
    """`files` written under `out` (`out/soft/REC.txt`, `out/hard/REC.txt`); returns the paths."""
    written = []
    for rel, text in files(soft, threshold).items():
        path = Path(out) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def import_soft(folder: Path) -> pd.DataFrame:
    """Every `*.txt` soft-label file of `folder` (recording = file stem) in one frame."""
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise ListenloopError(f"{folder}: no *.txt soft-label files")
    return pd.concat([read_soft(f) for f in files]).sort_index()
