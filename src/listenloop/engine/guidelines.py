"""A project's annotation guidelines and example clips per class.

The guidelines are Markdown, rendered to HTML on the server with markdown-it-py (CommonMark and
tables) with raw HTML off: a `<script>` or an `onerror=` attribute in the text comes out as text,
links to `javascript:`, `vbscript:`, `file:` and `data:` are not made (markdown-it's link
validation) and images are not rendered (nothing is fetched from elsewhere). The annotator app
shows that HTML as it is; it never renders the Markdown itself.

Examples are clips of the project marked with the class they illustrate (`Clip.example_label`).
With `examples_as_controls` they also serve as control questions (gold) with that class as the
known answer (`Clip.example_control` records that they became controls this way, so turning the
option off, or removing the example, undoes exactly that). An example heard in the guidelines
and met again as a control checks whether the annotator applies the guidelines, not whether
they can tell an unseen clip: keep uploaded (unseen) control questions beside them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.accounts import Principal
from listenloop.engine.errors import ConflictError, InvalidError, NotFoundError
from listenloop.engine.labels import normalize_label
from listenloop.engine.lifecycle import require_writable
from listenloop.engine.projects import is_owner, require_owner, require_visible
from listenloop.store.models import Clip, Event, Project

MAX_GUIDELINES = 100_000  # characters of Markdown
MAX_EXAMPLES = 200  # per project


@cache
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").disable("image")


def render_guidelines(markdown: str | None) -> str:
    """Safe HTML of the guidelines' Markdown (raw HTML escaped; see the module's docstring)."""
    return _renderer().render(markdown or "")


def guide(session: Session, project: Project, who: Principal) -> dict[str, Any]:
    """What the annotator app shows before the first task and on demand: `{project_id, markdown,
    html, examples: [{example_id, label, audio_url}]}` (anyone who may see the project), with
    `examples_as_controls` for the owner."""
    require_visible(session, project, who)
    rows = session.execute(
        select(Clip.id, Clip.example_label)
        .where(Clip.project_id == project.id, Clip.example_label.is_not(None))
        .order_by(Clip.id)
        .limit(MAX_EXAMPLES)
    ).all()
    order = {c: i for i, c in enumerate(project.classes or [])}
    examples = sorted(
        (
            {
                "example_id": int(r.id),
                "label": r.example_label,
                "audio_url": f"/api/v1/projects/{project.id}/examples/{r.id}/audio",
            }
            for r in rows
        ),
        key=lambda e: (order.get(e["label"], len(order)), e["example_id"]),
    )
    out: dict[str, Any] = {
        "project_id": project.id,
        "markdown": project.guidelines or "",
        "html": render_guidelines(project.guidelines),
        "examples": examples,
    }
    if is_owner(project, who):
        out["examples_as_controls"] = bool(project.examples_as_controls)
    return out


def _make_control(clip: Clip) -> None:
    if not clip.is_gold and clip.example_label is not None:
        clip.is_gold = True
        clip.gold_label = clip.example_label
        clip.example_control = True


def _unmake_control(clip: Clip) -> None:
    if clip.example_control:
        clip.is_gold = False
        clip.gold_label = None
        clip.example_control = False


def set_guidelines(
    session: Session,
    project: Project,
    who: Principal,
    markdown: str | None,
    examples_as_controls: bool | None = None,
) -> dict[str, Any]:
    """Store the guidelines (owner; None keeps them, "" clears them) and the examples-as-controls
    option (None keeps it); turning the option on makes every example a control question, off
    undoes what it did. Returns `guide`."""
    require_owner(project, who)
    require_writable(project)
    if markdown is not None:
        if len(markdown) > MAX_GUIDELINES:
            raise InvalidError(
                f"the guidelines take {len(markdown):,} characters; at most {MAX_GUIDELINES:,}"
            )
        project.guidelines = markdown or None
    if examples_as_controls is not None and examples_as_controls != bool(project.examples_as_controls):
        if examples_as_controls and project.task_type == "continuous":
            raise InvalidError("a rating project's control questions come from the control-question upload")
        project.examples_as_controls = examples_as_controls
        examples = session.scalars(
            select(Clip).where(Clip.project_id == project.id, Clip.example_label.is_not(None))
        )
        for clip in examples:
            (_make_control if examples_as_controls else _unmake_control)(clip)
    session.add(
        Event(
            project_id=project.id,
            user_id=who.id,
            kind="guidelines_changed",
            data={
                "characters": len(project.guidelines or ""),
                "examples_as_controls": bool(project.examples_as_controls),
            },
        )
    )
    session.flush()
    return guide(session, project, who)


def _clip(session: Session, project: Project, clip_id: int) -> Clip:
    clip = session.get(Clip, clip_id)
    if clip is None or clip.project_id != project.id:
        raise NotFoundError(f"project {project.id} has no clip {clip_id}")
    return clip


def add_example(
    session: Session, project: Project, who: Principal, clip_id: int, value: Any
) -> dict[str, Any]:
    """Mark a clip as an example of a class (owner); a control question where the option is on.
    InvalidError: not a class of this project; ConflictError: a control question whose known
    answer is another class. Returns `guide`."""
    require_owner(project, who)
    require_writable(project)
    if project.task_type == "continuous":
        raise InvalidError("examples illustrate classes; a rating project's guidelines describe the scale")
    label = normalize_label(project, value)
    if label == CANT_TELL:
        raise InvalidError('an example shows a class, not "can\'t tell"')
    clip = _clip(session, project, clip_id)
    if clip.is_gold and not clip.example_control and clip.gold_label != label:
        raise ConflictError(f"clip {clip_id} is a control question whose known answer is {clip.gold_label!r}")
    count = (
        session.query(Clip.id).filter(Clip.project_id == project.id, Clip.example_label.is_not(None)).count()
    )
    if clip.example_label is None and count >= MAX_EXAMPLES:
        raise InvalidError(f"a project has at most {MAX_EXAMPLES} examples")
    if clip.example_control:
        clip.gold_label = label
    clip.example_label = label
    if project.examples_as_controls:
        _make_control(clip)
    session.add(
        Event(
            project_id=project.id,
            user_id=who.id,
            kind="example_added",
            data={"clip": clip.id, "label": label},
        )
    )
    session.flush()
    return guide(session, project, who)


def remove_example(session: Session, project: Project, who: Principal, clip_id: int) -> dict[str, Any]:
    """Unmark an example (owner); a control question it became for being one goes back to the
    queue's ordinary clips. Returns `guide`."""
    require_owner(project, who)
    require_writable(project)
    clip = _clip(session, project, clip_id)
    if clip.example_label is None:
        raise NotFoundError(f"clip {clip_id} is not an example")
    _unmake_control(clip)
    clip.example_label = None
    session.add(Event(project_id=project.id, user_id=who.id, kind="example_removed", data={"clip": clip.id}))
    session.flush()
    return guide(session, project, who)


def example_media(session: Session, project: Project, who: Principal, clip_id: int) -> tuple[str, str]:
    """(path, sha256) of an example's audio for anyone who may see the project."""
    require_visible(session, project, who)
    clip = session.get(Clip, clip_id)
    if clip is None or clip.project_id != project.id or clip.example_label is None:
        raise NotFoundError(f"project {project.id} has no example {clip_id}")
    return clip.path, clip.sha256
