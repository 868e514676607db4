"""What an owner takes home: labels per clip, trust per annotator, and every stored answer."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.store.models import Clip, Project, Task, User, WorkerTrust

CLIP_COLUMNS = ["clip_id", "file", "label", "confidence", "soft", "answers", "status", "source"]
ANNOTATOR_COLUMNS = ["annotator", "trust", "answers", "checked", "passed", "points"]
ANSWER_COLUMNS = ["task_id", "clip_id", "annotator", "answer", "kind", "answered_at"]
FORMATS = ("csv", "jsonl")


def clip_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    """Per clip: file, hard label, confidence, soft distribution, regular answers, status, source.

    `source` says where the label comes from: crowd (aggregated answers), seed (the owner's
    initial labelled set) or gold (a control question's known answer).
    """
    for clip in session.scalars(select(Clip).where(Clip.project_id == project.id).order_by(Clip.id)):
        if clip.is_gold:
            label, confidence, source, status = clip.gold_label, 1.0, "gold", "gold"
        elif clip.seed_label is not None:
            label, confidence, source, status = clip.seed_label, 1.0, "seed", clip.status
        else:
            label, confidence, source, status = clip.label, clip.confidence, "crowd", clip.status
        yield {
            "clip_id": clip.id,
            "file": clip.file_name,
            "label": label,
            "confidence": confidence,
            "soft": clip.soft or {},
            "answers": clip.n_answers,
            "status": status,
            "source": source,
        }


def annotator_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    """Per annotator who answered: trust, answers, checks taken and passed, points."""
    rows = session.execute(
        select(User.username, WorkerTrust)
        .join(WorkerTrust, WorkerTrust.user_id == User.id)
        .where(WorkerTrust.project_id == project.id)
        .order_by(User.username)
    )
    for username, trust in rows:
        yield {
            "annotator": username,
            "trust": round(trust.trust, 6),
            "answers": trust.n_answers,
            "checked": trust.n_checked,
            "passed": trust.n_right,
            "points": trust.points,
        }


def answer_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    """Every stored answer, in the order they came."""
    rows = session.execute(
        select(Task.id, Task.clip_id, User.username, Task.answer, Task.kind, Task.answered_at)
        .join(User, User.id == Task.annotator_id)
        .where(Task.project_id == project.id, Task.answered_at.is_not(None))
        .order_by(Task.answered_at, Task.id)
        .execution_options(yield_per=2000)
    )
    for task_id, clip_id, username, answer, kind, answered_at in rows:
        yield {
            "task_id": task_id,
            "clip_id": clip_id,
            "annotator": username,
            "answer": answer,
            "kind": kind,
            "answered_at": answered_at.isoformat(timespec="milliseconds") + "Z",
        }


def to_csv(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """CSV text with a header; dict cells (soft labels) as compact JSON."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v for k, v in row.items()}
        )
    return out.getvalue()


def to_jsonl(records: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


def export_project(session: Session, project: Project, fmt: str, table: str = "clips") -> str:
    """The labels export: CSV of `table` (clips or annotators), or JSONL of both (`record` says which)."""
    if fmt == "csv":
        if table == "annotators":
            return to_csv(annotator_rows(session, project), ANNOTATOR_COLUMNS)
        return to_csv(clip_rows(session, project), CLIP_COLUMNS)
    clips = ({"record": "clip", **row} for row in clip_rows(session, project))
    people = ({"record": "annotator", **row} for row in annotator_rows(session, project))
    return to_jsonl(list(clips) + list(people))


def export_answers(session: Session, project: Project, fmt: str = "csv") -> str:
    """Every stored answer: `task_id,clip_id,annotator,answer,kind,answered_at`."""
    if fmt == "csv":
        return to_csv(answer_rows(session, project), ANSWER_COLUMNS)
    return to_jsonl(answer_rows(session, project))
