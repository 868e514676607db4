"""What an owner takes home: labels per clip, trust per annotator, and every stored answer.

Exports stream: `iter_export_project` and `iter_export_answers` yield the text in pieces of
about `CHUNK` rows, reading clips by id in chunks (with their answers' soft labels per chunk)
and answers through one streamed cursor, so that a 1M-clip project takes the memory of one
chunk, not of the whole file. `export_project` and `export_answers` join the pieces.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.agreement import AGREEMENT_TASKS, project_agreement
from listenloop.engine.clips import newest_predictions
from listenloop.engine.live.aggregate import soft_by_clip
from listenloop.store.models import Clip, Project, Task, User, WorkerTrust

# The first eight columns are the original contract; `final` and `model_label` came after, so
# readers that pick columns by name (or the first eight by position) keep working.
CLIP_COLUMNS = [
    "clip_id",
    "file",
    "label",
    "confidence",
    "soft",
    "answers",
    "status",
    "source",
    "final",
    "model_label",
]
ANNOTATOR_COLUMNS = ["annotator", "trust", "answers", "checked", "passed", "points"]
ANSWER_COLUMNS = ["task_id", "clip_id", "annotator", "answer", "kind", "answered_at"]
FORMATS = ("csv", "jsonl")
# A text cell starting with one of these is a formula to a spreadsheet (`=cmd|' /C calc'!A0`,
# `@SUM(…)`; tab and CR too, OWASP's CSV injection list): such cells get a leading `'`, which
# spreadsheets show as text. Numbers, and text that is a plain decimal number ("-0.5", a
# continuous answer), stay as they are: a spreadsheet reads them as numbers, never as formulas.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# Statuses whose crowd label is final: the redundancy policy stopped asking (low_agreement: it
# stopped at the most answers without agreement; `confidence` says how little). Queued clips
# are still being answered, pool and passed ones were never asked.
FINISHED = ("done", "low_agreement")
CHUNK = 2000  # rows per piece of a streamed export (and per query of clips)


class ClipLabel(NamedTuple):
    """A clip's final label, its confidence and where it comes from."""

    label: str | None
    confidence: float | None
    source: str


def final_label(clip: Clip | Row[Any]) -> ClipLabel | None:
    """The clip's final label, or None while it has none (the crowd has not finished with it).

    The first source that has a label wins: a control question's known answer (gold), the
    owner's correction in the clip browser (expert, which overrides seed and crowd), the
    owner's seed label, then the crowd's aggregate once the clip is finished. A new source of
    final labels is one more line here, in its place in that order.
    """
    if clip.is_gold:
        return ClipLabel(clip.gold_label, 1.0, "gold")
    if clip.expert_label is not None:
        return ClipLabel(clip.expert_label, 1.0, "expert")
    if clip.seed_label is not None:
        return ClipLabel(clip.seed_label, 1.0, "seed")
    if clip.status in FINISHED:
        return ClipLabel(clip.label, clip.confidence, "crowd")
    return None


_CLIP_FIELDS = (
    Clip.id,
    Clip.file_name,
    Clip.is_gold,
    Clip.gold_label,
    Clip.expert_label,
    Clip.seed_label,
    Clip.status,
    Clip.label,
    Clip.confidence,
    Clip.n_answers,
)


def clip_rows(session: Session, project: Project, chunk: int | None = None) -> Iterator[dict[str, Any]]:
    """Per clip: file, final label, confidence, soft label (`soft_by_clip`), regular answers,
    status, source, final, model_label.

    Only a final label fills `label` (`final` true): an unfinished clip (queued, still in the
    pool, or passed over) has an empty `label`, `confidence` and `source` however its answers
    lean so far (`soft` and `answers` show the evidence), and `model_label` holds the model's
    guess where the newest round predicted one (for every clip, final or not). `source` says
    where a final label comes from: crowd (aggregated answers), seed (the owner's initial
    labelled set), expert (the owner's correction in the clip browser) or gold (a control
    question's known answer).
    """
    guesses = newest_predictions(session, project)[1]  # a pool map's sample: 2,000 clips at most
    chunk = chunk or CHUNK
    last = 0
    while True:  # by id, `chunk` clips at a time (ix_clips_project_id): bounded memory
        # the columns only (rows, not ORM objects: a third of the time on 100,000 clips)
        query = (
            select(*_CLIP_FIELDS)
            .where(Clip.project_id == project.id, Clip.id > last)
            .order_by(Clip.id)
            .limit(chunk)
        )
        clips = session.execute(query).all()
        if not clips:
            return
        soft = soft_by_clip(session, project, [c.id for c in clips])
        for clip in clips:
            final = final_label(clip)
            yield {
                "clip_id": clip.id,
                "file": clip.file_name,
                "label": final.label if final else None,
                "confidence": final.confidence if final else None,
                "soft": soft.get(clip.id, {}),
                "answers": clip.n_answers,
                "status": "gold" if clip.is_gold else clip.status,
                "source": final.source if final else None,
                "final": final is not None,
                "model_label": guesses.get(clip.id),
            }
        last = clips[-1].id


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
    """CSV text with a header; dict cells (soft labels) as compact JSON, booleans as true/false
    (as in JSONL), None as an empty cell, text that a spreadsheet would run as a formula escaped
    with a leading `'` (`escape_formula`)."""
    return "".join(iter_csv(rows, columns))


def iter_csv(rows: Iterable[dict[str, Any]], columns: list[str], chunk: int | None = None) -> Iterator[str]:
    """`to_csv` in pieces: the header, then about `chunk` rows per piece."""
    chunk = chunk or CHUNK
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for n, row in enumerate(rows, 1):
        writer.writerow({k: _cell(v) for k, v in row.items()})
        if n % chunk == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def escape_formula(text: str) -> str:
    """`text` as a spreadsheet shows it literally: a leading `'` when it starts like a formula
    (FORMULA_START) and is not a plain decimal number."""
    if text.startswith(FORMULA_START) and not _DECIMAL.fullmatch(text):
        return "'" + text
    return text


def _cell(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return escape_formula(value)
    return value


def to_jsonl(records: Iterable[dict[str, Any]]) -> str:
    """One JSON object per line."""
    return "".join(iter_jsonl(records))


def iter_jsonl(records: Iterable[dict[str, Any]], chunk: int | None = None) -> Iterator[str]:
    """`to_jsonl` in pieces of about `chunk` lines."""
    chunk = chunk or CHUNK
    lines: list[str] = []
    for record in records:
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
        if len(lines) >= chunk:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def iter_export_project(session: Session, project: Project, fmt: str, table: str = "clips") -> Iterator[str]:
    """The labels export in pieces: CSV of `table` (clips or annotators), or JSONL of both
    (`record` says which: every clip, then every annotator, then the crowd's agreement)."""
    if fmt == "csv":
        if table == "annotators":
            return iter_csv(annotator_rows(session, project), ANNOTATOR_COLUMNS)
        return iter_csv(clip_rows(session, project), CLIP_COLUMNS)
    clips = ({"record": "clip", **row} for row in clip_rows(session, project))
    people = ({"record": "annotator", **row} for row in annotator_rows(session, project))
    return iter_jsonl(itertools.chain(clips, people, _agreement_record(session, project)))


def _agreement_record(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    """The JSONL export's last line: the crowd's agreement (`engine.agreement`), for projects
    whose answers are classes or tag sets."""
    if project.task_type in AGREEMENT_TASKS:
        yield {"record": "agreement", **project_agreement(session, project)}


def export_project(session: Session, project: Project, fmt: str, table: str = "clips") -> str:
    """The labels export as one text (`iter_export_project` joined)."""
    return "".join(iter_export_project(session, project, fmt, table))


def iter_export_answers(session: Session, project: Project, fmt: str = "csv") -> Iterator[str]:
    """Every stored answer in pieces: `task_id,clip_id,annotator,answer,kind,answered_at`."""
    if fmt == "csv":
        return iter_csv(answer_rows(session, project), ANSWER_COLUMNS)
    return iter_jsonl(answer_rows(session, project))


def export_answers(session: Session, project: Project, fmt: str = "csv") -> str:
    """Every stored answer as one text (`iter_export_answers` joined)."""
    return "".join(iter_export_answers(session, project, fmt))


CROWDKIT_COLUMNS = ["task", "worker", "label"]


def crowdkit_rows(session: Session, project: Project) -> Iterator[dict[str, Any]]:
    """The crowd's regular answers as crowd-kit's answers table (`task` the clip id, `worker` the
    username, `label` the answer; tags of a multi-label answer joined by "|"), in the order they
    came. Control, consistency and expert answers are left out (a clip's aggregate never reads
    them), and so is "can't tell" (it counts toward no class; crowd-kit would make it one)."""
    rows = session.execute(
        select(Task.clip_id, User.username, Task.answer)
        .join(User, User.id == Task.annotator_id)
        .where(
            Task.project_id == project.id,
            Task.answered_at.is_not(None),
            Task.kind == "regular",
            Task.answer != CANT_TELL,
        )
        .order_by(Task.answered_at, Task.id)
        .execution_options(yield_per=CHUNK)
    )
    for clip_id, username, answer in rows:
        yield {"task": clip_id, "worker": username, "label": answer}


def iter_export_crowdkit(session: Session, project: Project) -> Iterator[str]:
    """`crowdkit_rows` as CSV text in pieces: `task,worker,label`."""
    return iter_csv(crowdkit_rows(session, project), CROWDKIT_COLUMNS)
