"""A project as Label Studio tasks (export), and Label Studio tasks into a project (import).

Export (`iter_labelstudio`): one task per clip, streamed as a JSON list a chunk of clips at a
time (the clips by id, their answers in one query per chunk), so that a large project costs the
memory of one chunk. Each stored answer is one annotation (`completed_by`: the annotator's user
id; `meta`: their username, the answer's kind and listenloop's task and clip ids); an expert
answer (the owner's correction) is marked `ground_truth`, a "can't tell" answer is a skipped
annotation (`was_cancelled`, no result: Label Studio's own way to say "no label"); a clip's
final label (`engine.exports.final_label`: gold, expert, seed or the crowd's aggregate) is its
one prediction, with the confidence as `score` and the source as `model_version`. Multi-label
projects give several choices per result.

Import: see `import_tasks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.config import TAG_TASKS
from listenloop.engine.errors import InvalidError
from listenloop.engine.exports import CHUNK, final_label
from listenloop.engine.labels import TAG_SEP
from listenloop.engine.labelstudio_format import DATA_KEY, FROM_NAME, TO_NAME
from listenloop.store.models import Clip, Project, Task, User

# Task types whose answers are classes or tag sets: what Label Studio's choices can hold.
LABELSTUDIO_TASKS = ("classification", "binary", *TAG_TASKS)

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
    Clip.created_at,
)


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds") + "Z"


def choices_of(project: Project, label: str) -> list[str]:
    """A stored label or answer as Label Studio choices: tags of a multi-label one, else the class."""
    if project.task_type in TAG_TASKS:
        return label.split(TAG_SEP) if label else []
    return [label]


def _result(project: Project, label: str, rid: str) -> dict[str, Any]:
    return {
        "id": rid,
        "type": "choices",
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "origin": "manual",
        "value": {"choices": choices_of(project, label)},
    }


def labelling_config(project: Project) -> str:
    """The Label Studio labelling config (XML) that the exported tasks fit."""
    multiple = ' choice="multiple"' if project.task_type in TAG_TASKS else ""
    lines = [
        "<View>",
        f'  <Audio name="{TO_NAME}" value="${DATA_KEY}"/>',
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}"{multiple} showInline="true">',
        *(f'    <Choice value="{_xml(c)}"/>' for c in project.classes),
        "  </Choices>",
        "</View>",
    ]
    return "\n".join(lines) + "\n"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def require_choices(project: Project) -> None:
    """InvalidError (422) for a project whose answers Label Studio's choices cannot hold."""
    if project.task_type not in LABELSTUDIO_TASKS:
        raise InvalidError(
            f"project {project.id} is a {project.task_type} project: Label Studio tasks hold "
            f"{', '.join(LABELSTUDIO_TASKS)} projects"
        )


def _annotation(project: Project, row: Any) -> dict[str, Any]:
    task_id, clip_id, user_id, username, answer, kind, answered_at = row
    cancelled = answer == CANT_TELL
    when = _when(answered_at)
    return {
        "id": task_id,
        "completed_by": user_id,
        "result": [] if cancelled else [_result(project, answer, f"ll-{task_id}")],
        "was_cancelled": cancelled,
        "ground_truth": kind == "expert",
        "created_at": when,
        "updated_at": when,
        "task": clip_id,
        "meta": {
            "annotator": username,
            "kind": kind,
            "listenloop_task_id": task_id,
            "listenloop_clip_id": clip_id,
        },
    }


def _answers(session: Session, clip_ids: list[int]) -> dict[int, list[Any]]:
    rows = session.execute(
        select(
            Task.id, Task.clip_id, Task.annotator_id, User.username, Task.answer, Task.kind, Task.answered_at
        )
        .join(User, User.id == Task.annotator_id)
        .where(Task.clip_id.in_(clip_ids), Task.answered_at.is_not(None))
        .order_by(Task.clip_id, Task.answered_at, Task.id)
    )
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(row.clip_id, []).append(row)
    return out


def labelstudio_tasks(
    session: Session,
    project: Project,
    audio_url: str = "/api/v1/clips/{clip_id}/audio",
    chunk: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The project's clips as Label Studio tasks, by clip id (`audio_url` formats the audio's URL)."""
    require_choices(project)
    chunk = chunk or CHUNK
    last = 0
    while True:
        clips = session.execute(
            select(*_CLIP_FIELDS)
            .where(Clip.project_id == project.id, Clip.id > last)
            .order_by(Clip.id)
            .limit(chunk)
        ).all()
        if not clips:
            return
        answers = _answers(session, [c.id for c in clips])
        for clip in clips:
            final = final_label(clip)
            anns = [_annotation(project, row) for row in answers.get(clip.id, [])]
            predictions = []
            if final is not None and final.label is not None and final.label != CANT_TELL:
                predictions.append(
                    {
                        "model_version": f"listenloop-{final.source}",
                        "score": final.confidence,
                        "result": [_result(project, final.label, f"ll-clip-{clip.id}")],
                    }
                )
            yield {
                "id": clip.id,
                "data": {DATA_KEY: audio_url.format(clip_id=clip.id)},
                "annotations": anns,
                "predictions": predictions,
                "file_upload": clip.file_name,
                "meta": {
                    "listenloop_clip_id": clip.id,
                    "listenloop_project_id": project.id,
                    "file": clip.file_name,
                    "status": "gold" if clip.is_gold else clip.status,
                    "label": final.label if final else None,
                    "source": final.source if final else None,
                },
                "created_at": _when(clip.created_at),
                "project": project.id,
                "total_annotations": sum(not a["was_cancelled"] for a in anns),
                "cancelled_annotations": sum(a["was_cancelled"] for a in anns),
                "total_predictions": len(predictions),
            }
        last = clips[-1].id


def iter_labelstudio(
    session: Session, project: Project, audio_url: str = "/api/v1/clips/{clip_id}/audio"
) -> Iterator[str]:
    """`labelstudio_tasks` as the text of one JSON list, in pieces of about `CHUNK` tasks."""
    require_choices(project)  # before the first piece: a refusal is a 422, not a broken stream
    return _pieces(labelstudio_tasks(session, project, audio_url))


def _pieces(tasks: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    lines: list[str] = []
    first = True
    for task in tasks:
        lines.append(("\n" if first else ",\n") + json.dumps(task, separators=(",", ":")))
        first = False
        if len(lines) >= CHUNK:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines) + "\n]\n"
