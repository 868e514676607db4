"""Projects: creation from a ProjectConfig, who may see or run them, members, progress."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from listenloop.engine.accounts import Principal
from listenloop.engine.config import (
    DEFAULT_HOP_S,
    DEFAULT_QUEUE,
    DEFAULT_SEGMENT_S,
    ProjectConfig,
    Redundancy,
    queue_of,
)
from listenloop.engine.errors import ForbiddenError, InvalidError, NotFoundError
from listenloop.engine.live.views import ProjectView
from listenloop.store.clip_tallies import tallies
from listenloop.store.events import newest_event
from listenloop.store.models import MEMBER_ROLES, Event, ModelRun, Project, ProjectMember, Task, User, utcnow


def create_project(session: Session, owner: Principal, config: ProjectConfig) -> Project:
    """Store a new project owned by `owner` (an owner or admin)."""
    if owner.role not in ("owner", "admin"):
        raise ForbiddenError("only owners create projects")
    project = Project(
        name=config.name,
        owner_id=owner.id,
        task_type=config.task_type,
        classes=list(config.classes or []),
        range_min=config.range[0] if config.range else None,
        range_max=config.range[1] if config.range else None,
        feature_set=config.feature_set,
        learner=config.learner or ("svr" if config.task_type == "continuous" else "svm"),
        strategy=config.strategy,
        mode=config.mode,
        retrain_every=config.retrain_every,
        passive_share=config.passive_share,
        redundancy_min=config.redundancy.min,
        redundancy_max=config.redundancy.max,
        redundancy_tau=config.redundancy.tau,
        control_rate=config.control_rate,
        consistency_rate=config.consistency_rate,
        trust_threshold=config.trust_threshold,
        budget=config.budget,
        rating_tolerance=config.rating_tolerance,
        invite_only=config.invite_only,
        auto_block_spammers=config.auto_block_spammers,
        is_open=config.open,
        settings=(
            {"segment_seconds": config.segment_seconds, "hop_seconds": config.hop_seconds}
            if config.task_type == "events"
            else {}
        )
        | ({"queue": config.queue} if config.queue != DEFAULT_QUEUE else {}),
        answers_used=0,
    )
    session.add(project)
    session.flush()
    session.add(
        Event(
            project_id=project.id,
            user_id=owner.id,
            kind="project_created",
            data={"name": config.name, "open": config.open},
        )
    )
    return project


def segmenting(project: Project | ProjectView) -> tuple[float, float]:
    """An events project's (segment length, hop) in seconds; the defaults for any other."""
    settings = getattr(project, "settings", None) or {}
    return (
        float(settings.get("segment_seconds") or DEFAULT_SEGMENT_S),
        float(settings.get("hop_seconds") or DEFAULT_HOP_S),
    )


def project_config(project: Project) -> ProjectConfig:
    """The configuration a project was made with (defaults filled in)."""
    return ProjectConfig(
        name=project.name,
        task_type=project.task_type,  # type: ignore[arg-type]
        classes=list(project.classes) or None,
        range=(project.range_min, project.range_max) if project.range_min is not None else None,  # type: ignore[arg-type]
        feature_set=project.feature_set,
        learner=project.learner,
        strategy=project.strategy,
        mode=project.mode,  # type: ignore[arg-type]
        queue=queue_of(project.settings),  # type: ignore[arg-type]
        retrain_every=project.retrain_every,
        passive_share=project.passive_share,
        redundancy=Redundancy(
            min=project.redundancy_min, max=project.redundancy_max, tau=project.redundancy_tau
        ),
        control_rate=project.control_rate,
        consistency_rate=project.consistency_rate,
        trust_threshold=project.trust_threshold,
        budget=project.budget,
        rating_tolerance=project.rating_tolerance,
        invite_only=project.invite_only,
        auto_block_spammers=bool(project.auto_block_spammers),
        open=project.is_open,
        segment_seconds=(project.settings or {}).get("segment_seconds"),
        hop_seconds=(project.settings or {}).get("hop_seconds"),
    )


def describe_project(project: Project, who: Principal | None = None) -> dict[str, Any]:
    """`{id, name, task_type, ...}` as the API shows a project.

    Its owner (and admins; `who` None) see the whole configuration, the answers used and the
    settings that can no longer change (`locked`: {field: reason}); annotators see what they
    need to take part, and nothing about how answers are checked.
    """
    config = project_config(project).model_dump(mode="json")
    state = project.state or "active"
    if who is not None and not is_owner(project, who):
        public = ("name", "task_type", "classes", "range", "invite_only")
        return {"id": project.id, **{k: config[k] for k in public}, "state": state}
    return {
        "id": project.id,
        **config,
        "answers_used": project.answers_used,
        "locked": locked_settings(project),
        "state": state,
        "retention_days": project.retention_days,
        "examples_as_controls": bool(project.examples_as_controls),
    }


def locked_settings(project: Project) -> dict[str, str]:
    """The settings that can no longer change, each with the reason (`{field: reason}`).

    The rule, field by field: the task type never changes (answers, labels and exports are in
    its format); the classes (or the range) change only while the project has no answer and
    no label (seed, control or crowd), since every stored label names one of them; the mode
    changes only while no clip is uploaded (clips enter a stream-mode project unqueued); an
    open project never goes back to draft. Everything else (name, learning, redundancy,
    quality control, budget, invite-only) may change at any time and applies from then on.
    """
    locked = {
        "task_type": "the task type is fixed when a project is created: its answers, labels and exports "
        "are in that format; create a new project for another task type"
    }
    if project.answers_used or project.labels_count:
        key = "range" if project.task_type == "continuous" else "classes"
        locked[key] = (
            f"the {'range' if key == 'range' else 'class list'} cannot change: the project already has "
            f"{project.answers_used} answers and {project.labels_count} labels that use it; create a new "
            "project for another one"
        )
    if project.clips_count:
        locked["mode"] = (
            "the mode cannot change once clips are uploaded: pool and stream mode queue clips differently"
        )
    if project.is_open:
        locked["open"] = (
            "an open project cannot go back to draft; make it invite-only to keep new annotators out"
        )
    return locked


def load_project(session: Session, project_id: int) -> Project:
    """The project, or NotFoundError."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"project {project_id} does not exist")
    return project


def is_owner(project: Project | ProjectView, who: Principal) -> bool:
    """The project's owner, or an admin."""
    return who.is_admin or project.owner_id == who.id


def require_owner(project: Project, who: Principal) -> None:
    """ForbiddenError unless `who` owns the project (or is an admin)."""
    if not is_owner(project, who):
        raise ForbiddenError(f"only the owner of project {project.id} may do this")


def may_review(session: Session, project: Project, who: Principal) -> bool:
    """The owner (or an admin), or an active member with the `reviewer` role: who may use the
    review queue and the clip browser, label and discard clips (never change settings or delete)."""
    if is_owner(project, who):
        return True
    member = _membership(session, project, who)
    return member is not None and member.active and member.role == "reviewer"


def reviewed_projects(session: Session, who: Principal) -> set[int]:
    """Ids of the projects where `who` is an active member with the reviewer role."""
    rows = session.scalars(
        select(ProjectMember.project_id).where(
            ProjectMember.user_id == who.id, ProjectMember.active.is_(True), ProjectMember.role == "reviewer"
        )
    )
    return set(rows)


def require_reviewer(session: Session, project: Project, who: Principal) -> None:
    """ForbiddenError unless `who` may review the project's clips (`may_review`)."""
    if not may_review(session, project, who):
        raise ForbiddenError(f"only the owner of project {project.id} and its reviewers may do this")


def draft_reason(project: Project | ProjectView) -> str:
    """Why annotators are refused everything of a draft project."""
    return f"project {project.id} is a draft: its owner has not opened it to annotators yet"


def require_not_draft(project: Project | ProjectView, who: Principal) -> None:
    """ForbiddenError for anyone but its owner (or an admin) while the project is a draft."""
    if not project.is_open and not is_owner(project, who):
        raise ForbiddenError(draft_reason(project))


def _membership(session: Session, project: Project, who: Principal) -> ProjectMember | None:
    return session.get(ProjectMember, (project.id, who.id))


def blocked_reason(project_id: int) -> str:
    """Why a blocked (or removed) annotator is refused: their membership row is inactive."""
    return f"you are blocked from project {project_id}: its owner removed you from its annotators"


def refusal(project: Project | ProjectView, who: Principal, member_active: bool | None) -> str | None:
    """Why `who` may not take part in `project`, or None when they may.

    `member_active` is their membership row's `active` (None: no row). One place for the
    reasons, so that every route refuses with the true one: a draft first (nobody but its owner
    may see it), then blocked (whatever the project's access), then an invite-only project
    they were not invited to.
    """
    if is_owner(project, who):
        return None
    if not project.is_open:
        return draft_reason(project)
    if member_active is not None and not member_active:
        return blocked_reason(project.id)
    if member_active is None and project.invite_only:
        return f"project {project.id} is invite-only and you are not invited: ask its owner to add you"
    return None


def access_refusal(session: Session, project: Project, who: Principal) -> str | None:
    """`refusal` with the membership looked up: why `who` may not see or work on `project`."""
    if is_owner(project, who):
        return None
    member = _membership(session, project, who)
    return refusal(project, who, None if member is None else member.active)


def is_member(session: Session, project: Project, who: Principal) -> bool:
    """Owner, admin, or an active member (an annotator who joined or was invited) of an open project."""
    if is_owner(project, who):
        return True
    if not project.is_open:
        return False
    member = _membership(session, project, who)
    return member is not None and member.active


def can_see(session: Session, project: Project, who: Principal) -> bool:
    """Members see a project; so does everyone for one that is not invite-only, unless blocked
    from it. Nobody but its owner sees a draft."""
    return access_refusal(session, project, who) is None


def require_visible(session: Session, project: Project, who: Principal) -> None:
    """ForbiddenError, with the true reason, when `who` may not see the project."""
    reason = access_refusal(session, project, who)
    if reason is not None:
        raise ForbiddenError(reason)


def require_member(session: Session, project: Project, who: Principal, otherwise: str) -> None:
    """ForbiddenError unless `who` is an active member (or the owner): blocked or not invited
    where that is why, else `otherwise` (e.g. an open project they have not joined yet)."""
    if not is_member(session, project, who):
        raise ForbiddenError(access_refusal(session, project, who) or otherwise)


def join(session: Session, project: Project, who: Principal) -> None:
    """Make `who` a member on their first task (open projects); ForbiddenError where they may not."""
    if is_owner(project, who):
        return
    member = _membership(session, project, who)
    reason = refusal(project, who, None if member is None else member.active)
    if reason is not None:
        raise ForbiddenError(reason)
    if member is not None:
        return
    session.add(ProjectMember(project_id=project.id, user_id=who.id, active=True))
    session.add(Event(project_id=project.id, user_id=who.id, kind="member_joined", data={}))


def visible_projects(session: Session, who: Principal) -> list[Project]:
    """Every project `who` may see, oldest first."""
    query = select(Project).order_by(Project.id)
    if not who.is_admin:
        member = select(ProjectMember.project_id).where(ProjectMember.user_id == who.id)
        active = member.where(ProjectMember.active.is_(True))
        query = query.where(
            or_(
                Project.owner_id == who.id,
                Project.is_open.is_(True)
                & or_(Project.id.in_(active), Project.invite_only.is_(False) & Project.id.not_in(member)),
            )
        )
    return list(session.scalars(query))


def set_member(
    session: Session,
    project: Project,
    who: Principal,
    username: str,
    active: bool,
    role: str | None = None,
) -> dict[str, Any]:
    """Invite (`active`) or remove a user; a removed user gets no more tasks from the project.
    `role` (annotator or reviewer; None: keep theirs) delegates review of the clips."""
    require_owner(project, who)
    if role is not None and role not in MEMBER_ROLES:
        raise InvalidError(f"role {role!r} is not one of {', '.join(MEMBER_ROLES)}")
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFoundError(f"user {username!r} does not exist")
    member = session.get(ProjectMember, (project.id, user_id))
    if member is None:
        member = ProjectMember(project_id=project.id, user_id=user_id, active=active)
        session.add(member)
    member.active = active
    if role is not None:
        member.role = role
    if not active:
        end_leases(session, project.id, user_id)
    kind = "member_added" if active else "member_removed"
    data = {"username": username, **({"role": role} if role is not None else {})}
    session.add(Event(project_id=project.id, user_id=who.id, kind=kind, data=data))
    session.flush()
    role_now = member.role or "annotator"
    return {"project_id": project.id, "username": username, "active": active, "role": role_now}


def end_leases(session: Session, project_id: int, user_id: int) -> None:
    """End the open leases `user_id` holds in the project (removed or blocked): an answer to one
    is refused (403, `blocked_reason`) and those clips go back to the other annotators."""
    now = utcnow()
    session.execute(
        update(Task)
        .where(
            Task.project_id == project_id,
            Task.annotator_id == user_id,
            Task.answered_at.is_(None),
            Task.leased_until > now,
        )
        .values(leased_until=now)
    )


def list_members(session: Session, project: Project) -> list[dict[str, Any]]:
    """`{username, active, role}` of every member row."""
    rows = session.execute(
        select(User.username, ProjectMember.active, ProjectMember.role)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.username)
    )
    return [{"username": r.username, "active": r.active, "role": r.role or "annotator"} for r in rows]


def project_status(session: Session, project: Project) -> dict[str, Any]:
    """Progress, answers used, labels done, model score history and budget left."""
    counts: dict[str, int] = {"pool": 0, "queued": 0, "done": 0, "low_agreement": 0, "passed": 0}
    for tally in tallies(session, project.id):
        if not tally.is_gold:  # control clips are not part of the work (and annotators must not count them)
            counts[tally.status] = counts.get(tally.status, 0) + tally.clips
    clips = sum(counts.values())
    finished = counts["done"] + counts["low_agreement"] + counts["passed"]
    budget_left = None if project.budget is None else max(project.budget - project.answers_used, 0)
    return {
        "project_id": project.id,
        "clips": clips,
        "clips_by_status": counts,
        "progress": round(finished / clips, 4) if clips else 0.0,
        "answers_used": project.answers_used,
        "labels_done": counts["done"],
        "low_agreement": counts["low_agreement"],
        "model_scores": model_scores(session, project.id),
        "learning_error": learning_error(session, project.id),
        "budget": project.budget,
        "budget_left": budget_left,
    }


LEARNING_FAILURES = ("learning_failed", "skills_failed")
LEARNING_SUCCESSES = ("model_trained", "skills_refreshed")


def learning_error(session: Session, project_id: int) -> dict[str, Any] | None:
    """The background learning's newest failure (`{kind, error, at}`) unless a success came after
    it: what the owner needs to see when the model score history stops growing."""
    row = newest_event(session, project_id, LEARNING_FAILURES + LEARNING_SUCCESSES)
    if row is None or row[0] not in LEARNING_FAILURES:
        return None
    kind, data, at = row
    return {
        "kind": kind,
        "error": data.get("error"),
        "retry_in_s": data.get("retry_in_s"),
        "at": at.isoformat(timespec="seconds") + "Z",
    }


def model_scores(session: Session, project_id: int) -> list[dict[str, Any]]:
    """The project's model score history, oldest first: `{labels, score, metric, cold_start, at,
    passive_labels, passive_score, heldout_score, heldout_size, pseudo_labels}` per learning round
    (`score` None while too few labels to cross-validate; `passive_*`: the same learner on the
    randomly chosen labels only; it and `heldout_score`, the round's model, are scored on the
    same `heldout_size` held-out random clips; `pseudo_labels`: clips self-training trained on
    with the model's own prediction; `version`: the model version the round kept (None: none),
    scored `test_score` on `test_size` labelled test clips)."""
    rows = session.execute(
        select(
            ModelRun.labels,
            ModelRun.score,
            ModelRun.metric,
            ModelRun.cold_start,
            ModelRun.created_at,
            ModelRun.passive_labels,
            ModelRun.passive_score,
            ModelRun.heldout_score,
            ModelRun.heldout_size,
            ModelRun.pseudo_labels,
            ModelRun.version,
            ModelRun.test_score,
            ModelRun.test_size,
        )
        .where(ModelRun.project_id == project_id)
        .order_by(ModelRun.id)
    )
    return [
        {
            "labels": r.labels,
            "score": r.score,
            "metric": r.metric,
            "cold_start": r.cold_start,
            "at": r.created_at.isoformat(timespec="seconds") + "Z",
            "passive_labels": r.passive_labels,
            "passive_score": r.passive_score,
            "heldout_score": r.heldout_score,
            "heldout_size": r.heldout_size,
            "pseudo_labels": r.pseudo_labels,
            "version": r.version,
            "test_score": r.test_score,
            "test_size": r.test_size,
        }
        for r in rows
    ]
