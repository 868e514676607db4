"""A project's configuration: what to ask (task type, classes or range), how to learn and how
to spend answers. Only `name`, `task_type` and `classes` (or `range`) are needed; every other
field has a default."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from listenloop.crowd.redundancy import CANT_TELL

TaskType = Literal["classification", "binary", "continuous", "multilabel"]
MAX_COUNT = 2**31 - 1  # the largest count an INTEGER column holds on every backend (PostgreSQL's is 32-bit)


class Redundancy(BaseModel):
    """Dynamic redundancy: ask until the clip's posterior reaches `tau` (at least `min`
    answers), or `max` answers are in (then the clip is low-agreement)."""

    model_config = ConfigDict(extra="forbid")

    min: int = Field(2, ge=1, le=100)
    max: int = Field(7, ge=1, le=100)
    tau: float = Field(0.95, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Redundancy:
        if self.min > self.max:
            raise ValueError(f"redundancy: min ({self.min}) must not exceed max ({self.max})")
        return self


class ProjectConfig(BaseModel):
    """The body of `POST /api/v1/projects` (and what `GET` shows back)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    task_type: TaskType
    classes: list[str] | None = Field(None, description="Class names (not for continuous tasks).")
    range: tuple[float, float] | None = Field(None, description="[low, high] of a continuous rating.")
    feature_set: str = "compare"
    learner: str | None = Field(None, description="Default: svm (classes) or svr (continuous).")
    strategy: str = Field("margin", description="Any query strategy of the learning core.")
    mode: Literal["pool", "stream"] = "pool"
    retrain_every: int = Field(20, ge=1, le=MAX_COUNT, description="Retrain after this many new labels (K).")
    passive_share: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        description="Share of the queue drawn at random instead of by the strategy (the passive arm): "
        "the dashboard compares the model with what these random labels alone reach. 0 turns it off.",
    )
    redundancy: Redundancy = Field(default_factory=Redundancy)
    control_rate: float = Field(0.1, ge=0.0, le=0.5, description="Share of tasks that are control questions.")
    consistency_rate: float = Field(0.05, ge=0.0, le=0.5, description="Share of tasks that repeat a clip.")
    trust_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Below it, answers cannot close a clip.")
    budget: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="Most answers to collect (all kinds count)."
    )
    invite_only: bool = False
    open: bool = Field(
        True,
        description="Open to annotators at once (true, the default) or a draft that only its owner sees "
        "until they open it (false; the web form creates drafts).",
    )

    @model_validator(mode="after")
    def _labels(self) -> ProjectConfig:
        if self.task_type == "continuous":
            if self.range is None:
                raise ValueError("a continuous task needs range [low, high]")
            if not self.range[0] < self.range[1]:
                raise ValueError(f"range: low must be below high, not {list(self.range)}")
            if self.classes:
                raise ValueError("a continuous task has a range, not classes")
            if self.strategy == "margin":
                self.strategy = "regression_binary_confidence"
            return self
        if self.range is not None:
            raise ValueError(f"range is for continuous tasks, not {self.task_type}")
        if self.classes is None:
            raise ValueError(f"a {self.task_type} task needs classes")
        classes = [str(c).strip() for c in self.classes]
        if any(not c for c in classes):
            raise ValueError("classes: empty class name")
        if len(set(classes)) != len(classes):
            raise ValueError("classes: a class is named twice")
        if CANT_TELL in classes:
            raise ValueError(f"classes: {CANT_TELL!r} is always offered; do not list it")
        if any("|" in c for c in classes):
            raise ValueError("classes: '|' separates tags and cannot be part of a class name")
        least = {"classification": 2, "binary": 2, "multilabel": 1}[self.task_type]
        if len(classes) < least:
            raise ValueError(f"a {self.task_type} task needs at least {least} classes")
        if self.task_type == "binary" and len(classes) != 2:
            raise ValueError("a binary task has exactly two classes")
        self.classes = classes
        return self

    @model_validator(mode="after")
    def _rates(self) -> ProjectConfig:
        if self.control_rate + self.consistency_rate > 0.5:
            raise ValueError("control_rate + consistency_rate must not exceed 0.5")
        return self


def check_learning_setup(config: ProjectConfig) -> None:
    """Feature set, learner and strategy must name entries of the learning core's registries.

    Imports scikit-learn and openSMILE (seconds the first time): call it off the event loop.
    """
    from listenloop.engine.errors import InvalidError
    from listenloop.errors import ListenloopError
    from listenloop.features.registry import EXTRACTORS
    from listenloop.learners.registry import CLASSIFIERS, REGRESSORS
    from listenloop.strategies.registry import make_strategy

    task = "regression" if config.task_type == "continuous" else "classification"
    learners = REGRESSORS if task == "regression" else CLASSIFIERS
    if config.learner is not None and config.learner not in learners:
        raise InvalidError(f"learner {config.learner!r}: one of {', '.join(sorted(learners))}")
    if config.feature_set not in EXTRACTORS:
        raise InvalidError(f"feature_set {config.feature_set!r}: one of {', '.join(sorted(EXTRACTORS))}")
    try:
        make_strategy(config.strategy, task)
    except ListenloopError as exc:
        raise InvalidError(str(exc)) from None


class RedundancyPatch(BaseModel):
    """Redundancy fields to change; the ones left out keep their values."""

    model_config = ConfigDict(extra="forbid")

    min: int | None = None
    max: int | None = None
    tau: float | None = None


class ProjectPatch(BaseModel):
    """The body of `PATCH /api/v1/projects/{id}`: the settings to change; the rest stay as they are.

    The project's configuration after the change is checked as a whole, by the same rules as
    `ProjectConfig` at creation (limits, classes, rates). Which settings may still change once
    clips, labels or answers exist is `engine.project_settings.locked_settings`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    task_type: TaskType | None = None
    classes: list[str] | None = None
    range: tuple[float, float] | None = None
    feature_set: str | None = None
    learner: str | None = Field(None, description="null: the default learner of the task type.")
    strategy: str | None = None
    mode: Literal["pool", "stream"] | None = None
    retrain_every: int | None = None
    passive_share: float | None = None
    redundancy: RedundancyPatch | None = None
    control_rate: float | None = None
    consistency_rate: float | None = None
    trust_threshold: float | None = None
    budget: int | None = Field(None, description="null: no limit.")
    invite_only: bool | None = None
    open: bool | None = Field(None, description="true opens a draft to annotators (one way).")
