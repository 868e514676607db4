"""Changing a project's settings after creation, and opening a draft to annotators.

`merged_config` applies a `ProjectPatch` to the project's configuration and checks the result
by the rules a new project passes (`ProjectConfig`); `update_project` also refuses a change
to a setting that `projects.locked_settings` names (the reason per field is there), stores the
rest and logs what changed. A draft opens with `{"open": true}`; an open project stays open.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from listenloop.engine.accounts import Principal
from listenloop.engine.config import ProjectConfig, ProjectPatch, queue_of
from listenloop.engine.errors import InvalidError
from listenloop.engine.projects import locked_settings, project_config, require_owner
from listenloop.store.models import Event, Project

# Settings that the learning service reads from the project's row at each round: checking them
# against the learning core's registries imports scikit-learn (`config.check_learning_setup`).
LEARNING_FIELDS = ("feature_set", "learner", "strategy")


def default_learner(task_type: str) -> str:
    """The learner a project gets when none is named: an SVM, or an SVR for ratings."""
    return "svr" if task_type == "continuous" else "svm"


def merged_config(project: Project, patch: ProjectPatch) -> ProjectConfig:
    """The project's configuration with `patch` applied, checked as a whole.

    pydantic's ValidationError lists every problem (field and reason), as at creation.
    """
    data = project_config(project).model_dump()
    changes = patch.model_dump(exclude_unset=True)
    if changes.get("redundancy") is not None:
        sent = {k: v for k, v in changes.pop("redundancy").items() if v is not None}
        data["redundancy"] = {**data["redundancy"], **sent}
    data.update(changes)
    config = ProjectConfig.model_validate(data)
    if config.learner is None:
        config.learner = default_learner(config.task_type)
    return config


def touches_learning(patch: ProjectPatch) -> bool:
    """Whether the patch names a feature set, learner or strategy, or changes the classes (which
    strategies can run depends on their number): to check off the event loop."""
    return any(k in patch.model_fields_set for k in (*LEARNING_FIELDS, "classes"))


def _flat(config: ProjectConfig) -> dict[str, Any]:
    out = config.model_dump(mode="json")
    for key, value in out.pop("redundancy").items():
        out[f"redundancy.{key}"] = value
    return out


def update_project(session: Session, project: Project, who: Principal, patch: ProjectPatch) -> Project:
    """Apply `patch` to `project` (its owner or an admin) and log the change.

    ValidationError: the resulting configuration breaks a rule of `ProjectConfig`.
    InvalidError: a changed setting is locked (every such reason at once). A setting sent with
    its current value is no change and is never refused. Nothing is stored on either error.
    """
    require_owner(project, who)
    before = project_config(project)
    after = merged_config(project, patch)
    old, new = _flat(before), _flat(after)
    changed = {key: [old[key], new[key]] for key in new if new[key] != old[key]}
    locked = locked_settings(project)
    refused = [f"{key}: {locked[key]}" for key in changed if key in locked]
    if refused:
        raise InvalidError("; ".join(refused))
    if not changed:
        return project
    project.name = after.name
    project.classes = list(after.classes or [])
    project.range_min = after.range[0] if after.range else None
    project.range_max = after.range[1] if after.range else None
    project.feature_set = after.feature_set
    project.learner = after.learner or default_learner(after.task_type)
    project.strategy = after.strategy
    project.mode = after.mode
    if after.queue != queue_of(project.settings):  # a new dict: the JSON column sees the change
        project.settings = {**(project.settings or {}), "queue": after.queue}
    project.retrain_every = after.retrain_every
    project.passive_share = after.passive_share
    project.redundancy_min = after.redundancy.min
    project.redundancy_max = after.redundancy.max
    project.redundancy_tau = after.redundancy.tau
    project.control_rate = after.control_rate
    project.consistency_rate = after.consistency_rate
    project.trust_threshold = after.trust_threshold
    project.budget = after.budget
    project.rating_tolerance = after.rating_tolerance
    project.invite_only = after.invite_only
    project.auto_block_spammers = after.auto_block_spammers
    project.is_open = after.open
    if project.class_prior is not None and "classes" in changed:
        project.class_prior = None  # fitted over the old class list
    opened = changed.pop("open", None)
    if changed:
        session.add(Event(project_id=project.id, user_id=who.id, kind="project_updated", data=changed))
    if opened is not None:
        session.add(Event(project_id=project.id, user_id=who.id, kind="project_opened", data={}))
    session.flush()
    return project
