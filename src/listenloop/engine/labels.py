"""Checking labels and answers against a project's task type, and reading `file,label` CSVs."""

from __future__ import annotations

import csv
import io
from typing import Any

from listenloop.crowd.aggregation.continuous import parse_rating
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError
from listenloop.engine.live.views import ProjectView
from listenloop.store.models import Project

TAG_SEP = "|"


def normalize_label(project: Project | ProjectView, value: Any, *, allow_cant_tell: bool = False) -> str:
    """The stored text of a label or answer; InvalidError when it does not fit the project.

    Classes come back verbatim ("0" stays "0"); multi-label answers (a list, or tags joined by
    "|") become their tags in class order joined by "|" ("" = nothing present); continuous
    answers keep their text once it parses as a number inside the range.
    """
    if allow_cant_tell and isinstance(value, str) and value.strip() == CANT_TELL:
        return CANT_TELL
    if project.task_type == "continuous":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidError(f"expected a number in [{project.range_min:g}, {project.range_max:g}]")
        text = str(value).strip()
        try:
            number = parse_rating(text)
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise InvalidError(f"{shown!r} is not a plain decimal number (like 3 or 2.5)") from None
        lo, hi = float(project.range_min or 0.0), float(project.range_max or 0.0)
        if not lo <= number <= hi:
            raise InvalidError(f"{text} is outside the range [{lo:g}, {hi:g}]")
        return text
    classes = list(project.classes)
    if project.task_type in TAG_TASKS:
        if isinstance(value, list):
            tags = [str(v).strip() for v in value]
        elif isinstance(value, str):
            tags = [t.strip() for t in value.split(TAG_SEP)] if value.strip() else []
        else:
            raise InvalidError("expected a list of tags")
        unknown = [t for t in tags if t not in classes]
        if unknown:
            raise InvalidError(f"tag {unknown[0]!r} is not one of {classes}")
        return TAG_SEP.join(c for c in classes if c in set(tags))
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidError(f"expected one of {classes}")
    text = str(value).strip()
    if text not in classes:
        extra = f" or {CANT_TELL!r}" if allow_cant_tell else ""
        raise InvalidError(f"{text!r} is not one of {classes}{extra}")
    return text


def read_label_csv(data: bytes, what: str, *, labels_required: bool = True) -> dict[str, str]:
    """`file,label` rows of an uploaded CSV as {file: label}; InvalidError names the bad line.

    With `labels_required=False` (a manifest) the label column may be missing or empty: such
    files map to "" (no label).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidError(f"{what}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    if "file" not in fields or (labels_required and "label" not in fields):
        header = "file,label" if labels_required else "file (and optionally label)"
        raise InvalidError(f"{what}: expected a header with columns {header}")
    reader.fieldnames = fields
    out: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        name = (row.get("file") or "").strip()
        label = row.get("label")
        if not name:
            raise InvalidError(f"{what} line {line}: no file")
        if label is None and labels_required:
            raise InvalidError(f"{what} line {line}: no label")
        if name in out:
            raise InvalidError(f"{what} line {line}: {name} is listed twice")
        out[name] = (label or "").strip()
    if not out:
        raise InvalidError(f"{what}: no rows")
    return out
