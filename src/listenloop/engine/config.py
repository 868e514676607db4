"""A project's configuration: what to ask (task type, classes or range), how to learn and how
to spend answers. Only `name`, `task_type` and `classes` (or `range`) are needed; every other
field has a default."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from listenloop.crowd.redundancy import CANT_TELL

TaskType = Literal["classification", "binary", "continuous", "multilabel", "events"]
#: Task types whose answer is a set of tags ("a|b"): events projects ask the multi-label
#: presence question of each segment of a long recording (004_).
TAG_TASKS = ("multilabel", "events")
#: Task types whose annotators are weighted by MACE competence fitted on presence marks per
#: segment and class (004_ sec. 2.1; `engine/learning/skills.py`).
PRESENCE_TASKS = ("events",)
#: An events project's default annotation segment and hop, seconds (004_ sec. 2.1).
DEFAULT_SEGMENT_S, DEFAULT_HOP_S = 10.0, 1.0
MAX_SEGMENT_S = 600.0
MAX_COUNT = 2**31 - 1  # the largest count an INTEGER column holds on every backend (PostgreSQL's is 32-bit)

# What a valid value of each setting is, as the web form says it: the sentence of a field's
# problem (a missing, mistyped or out-of-range value). Rules between fields have their own.
RULES = {
    "name": "Give the project a name of 1 to 200 characters.",
    "task_type": "One of classification, binary, continuous, multilabel or events.",
    "segment_seconds": "Events projects: the annotation segment's length in seconds (above 0, at most 600).",
    "hop_seconds": "Events projects: seconds between segment onsets (above 0, at most the segment).",
    "classes": "A list of class names.",
    "range": "Two numbers: the lowest and the highest rating.",
    "feature_set": "The name of a feature set (see /api/v1/project-options).",
    "learner": "The name of a learner (see /api/v1/project-options), or null for the default.",
    "strategy": "The name of a query strategy (see /api/v1/project-options).",
    "mode": "pool or stream.",
    "queue": "redundancy or relabel_or_new.",
    "retrain_every": "A whole number, at least 1 (at most 2,147,483,647).",
    "passive_share": "A share from 0 to 0.5.",
    "redundancy": "An object with min, max and tau.",
    "redundancy.min": "A whole number from 1 to 100.",
    "redundancy.max": "A whole number from 1 to 100.",
    "redundancy.tau": "A number above 0 and at most 1.",
    "control_rate": "A share from 0 to 0.5.",
    "consistency_rate": "A share from 0 to 0.5.",
    "trust_threshold": "A number from 0 to 1.",
    "rating_tolerance": "A number above 0 in the rating's units, or null: what redundancy.max answers "
    "of an unknown annotator reach (an eighth of the range / sqrt(max)).",
    "budget": "A whole number of answers, at least 1 (at most 2,147,483,647), or null: no limit.",
    "invite_only": "true or false.",
    "auto_block_spammers": "true or false.",
    "open": "true (open to annotators) or false (a draft).",
}
Problem = tuple[str, str]  # (field, sentence) of a rule between fields


def _sentence(error: Any, prefix: str) -> tuple[tuple[Any, ...], str]:
    """A pydantic error's location and a plain sentence for it (`prefix`: the model's place in
    RULES, e.g. "redundancy.")."""
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if ctx.get("plain"):  # already a sentence (a nested model's, or a rule between fields)
        return loc, str(ctx["message"])
    field = prefix + ".".join(str(x) for x in loc if isinstance(x, str))
    if error["type"] == "extra_forbidden":
        return loc, "Not a project setting: remove it (or check its spelling)."
    if error["type"] == "missing":
        return loc, f"Required. {RULES.get(field, '')}".strip()
    while field and field not in RULES:  # e.g. classes.0 → classes
        field = field.rpartition(".")[0]
    return loc, RULES.get(field) or str(error["msg"]).removeprefix("Value error, ")


def _plain(loc: tuple[Any, ...], message: str, value: Any, kind: str = "config") -> InitErrorDetails:
    error = PydanticCustomError(kind, "{message}", {"message": message, "plain": True})
    return InitErrorDetails(type=error, loc=loc, input=value)


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


class _EveryProblem(BaseModel):
    """A model that reports every problem of its input at once, each at its field with a plain
    sentence: the fields' own checks and the rules between fields (`_rules`), which run on the
    fields that are valid by themselves even when others are not."""

    _rules_at: ClassVar[str] = ""  # the model's fields' prefix in RULES

    @classmethod
    def _rules(cls, values: dict[str, Any]) -> Iterable[Problem]:
        """Problems between fields, given the values that are valid on their own."""
        return ()

    def _normalize(self) -> None:
        """Tidy a valid input (e.g. strip class names)."""

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            model = handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            lines = [_plain(*_sentence(e, cls._rules_at), e.get("input"), e["type"]) for e in errors]
            if isinstance(data, dict):
                bad = {e["loc"][0] for e in errors if e["loc"]}
                lines += [_plain((f,), m, data) for f, m in cls._rules(cls._valid_values(data, bad))]
            raise ValidationError.from_exception_data(cls.__name__, lines) from None
        problems = list(cls._rules(dict(model)))
        if problems:
            lines = [_plain(tuple(f.split(".")), m, data) for f, m in problems]
            raise ValidationError.from_exception_data(cls.__name__, lines)
        model._normalize()
        return model

    @classmethod
    def _valid_values(cls, data: dict[str, Any], bad: set[Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            if name in bad:
                continue
            if name not in data:
                if not info.is_required():
                    values[name] = info.get_default(call_default_factory=True)
                continue
            try:
                values[name] = _adapter(cls, name).validate_python(data[name])
            except ValidationError:
                continue
        return values


class Redundancy(_EveryProblem):
    """Dynamic redundancy: ask until the clip's posterior reaches `tau` (at least `min`
    answers), or `max` answers are in (then the clip is low-agreement)."""

    model_config = ConfigDict(extra="forbid")
    _rules_at: ClassVar[str] = "redundancy."

    min: int = Field(2, ge=1, le=100)
    max: int = Field(7, ge=1, le=100)
    tau: float = Field(0.95, gt=0.0, le=1.0)

    @classmethod
    def _rules(cls, values: dict[str, Any]) -> Iterable[Problem]:
        if "min" in values and "max" in values and values["min"] > values["max"]:
            yield "max", f"The maximum must be at least the minimum ({values['min']})."


class ProjectConfig(_EveryProblem):
    """The body of `POST /api/v1/projects` (and what `GET` shows back).

    An invalid one raises a ValidationError that lists every problem at once, each at its
    field with a plain sentence (`RULES` and the rules between fields in `_rules`).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    task_type: TaskType
    classes: list[str] | None = Field(None, description="Class names (not for continuous tasks).")
    range: tuple[float, float] | None = Field(None, description="[low, high] of a continuous rating.")
    feature_set: str = "compare"
    learner: str | None = Field(None, description="Default: svm (classes) or svr (continuous).")
    strategy: str = Field(
        "auto",
        description="Any query strategy of the learning core (auto: a bandit over the uncertainty rules).",
    )
    mode: Literal["pool", "stream"] = "pool"
    queue: Literal["redundancy", "relabel_or_new"] = Field(
        "redundancy",
        description="How answers are spent: redundancy (the strategy orders new clips, each asked until "
        "the redundancy policy is done) or relabel_or_new (classification and binary, pool mode: heard "
        "and new clips on one ActiveLab scale, the model counted as one annotator).",
    )
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
    rating_tolerance: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="Continuous tasks: a clip closes once the standard error of its trust-weighted "
        "mean rating is at most this, in the rating's units (with at least redundancy.min answers; "
        "at redundancy.max it is low-agreement). null: the standard error of redundancy.max answers at an "
        "unknown annotator's noise, an eighth of the range / sqrt(redundancy.max).",
    )
    segment_seconds: float | None = Field(
        None,
        gt=0.0,
        le=MAX_SEGMENT_S,
        allow_inf_nan=False,
        description="Events projects: each long file is cut into segments this long (default 10 s).",
    )
    hop_seconds: float | None = Field(
        None,
        gt=0.0,
        le=MAX_SEGMENT_S,
        allow_inf_nan=False,
        description="Events projects: one segment starts every this many seconds (default 1 s); the "
        "soft labels have this resolution.",
    )
    invite_only: bool = False
    auto_block_spammers: bool = Field(
        False,
        description="Block annotators whom spammer detection flags (off: they are flagged and their "
        "answers count at chance level; blocking is the owner's decision).",
    )
    open: bool = Field(
        True,
        description="Open to annotators at once (true, the default) or a draft that only its owner sees "
        "until they open it (false; the web form creates drafts).",
    )

    @classmethod
    def _rules(cls, values: dict[str, Any]) -> Iterable[Problem]:
        yield from _label_rules(values)
        control, consistency = values.get("control_rate"), values.get("consistency_rate")
        if control is not None and consistency is not None and control + consistency > 0.5 + 1e-12:
            yield "consistency_rate", "Control and consistency rates together must not exceed 0.5."

    def _normalize(self) -> None:
        if self.task_type == "events":
            self.segment_seconds = self.segment_seconds or DEFAULT_SEGMENT_S
            self.hop_seconds = self.hop_seconds or DEFAULT_HOP_S
        if self.task_type == "continuous":
            if self.strategy in ("margin", "auto"):  # the classification defaults: ratings' own rule
                self.strategy = "regression_binary_confidence"
        else:
            self.classes = [str(c).strip() for c in self.classes or []]


DEFAULT_QUEUE = "redundancy"


def queue_of(settings: dict[str, Any] | None) -> str:
    """A project's queue (`engine.learning.relabel`), kept in its free-form settings; the default
    when unset."""
    return str((settings or {}).get("queue") or DEFAULT_QUEUE)


def _label_rules(values: dict[str, Any]) -> Iterable[Problem]:
    """What a task type asks of `classes` and `range`."""
    task = values.get("task_type")
    if task is None:
        return
    classes, rng = values.get("classes"), values.get("range")
    yield from _segment_rules(task, values.get("segment_seconds"), values.get("hop_seconds"))
    if values.get("queue") == "relabel_or_new" and task not in ("classification", "binary"):
        yield "queue", f"relabel_or_new is for classification and binary projects, not {task}."
    if values.get("queue") == "relabel_or_new" and values.get("mode") == "stream":
        yield "queue", "relabel_or_new orders a pool; a stream project keeps the redundancy queue."
    tolerance = values.get("rating_tolerance")
    if tolerance is not None and task != "continuous":
        yield "rating_tolerance", f"A rating tolerance is for continuous tasks, not {task}."
    elif tolerance is not None and rng is not None and rng[0] < rng[1] and tolerance > rng[1] - rng[0]:
        yield "rating_tolerance", f"At most the range's width ({rng[1] - rng[0]:g})."
    if task == "continuous":
        if "range" in values and rng is None:
            yield "range", "A continuous task needs a range: [low, high]."
        elif rng is not None and not rng[0] < rng[1]:
            yield "range", f"Low must be below high, not [{rng[0]:g}, {rng[1]:g}]."
        elif rng is not None and not math.isfinite(rng[1] - rng[0]):  # the dashboard's bins divide it
            why = "low and high must be finite, and so must high - low"
            yield "range", f"The range [{rng[0]:g}, {rng[1]:g}] is too wide: {why}."
        if classes:
            yield "classes", "A continuous task has a range, not classes."
        return
    if rng is not None:
        yield "range", f"A range is for continuous tasks, not {task}."
    if "classes" not in values:
        return  # invalid on its own: reported at its field
    if classes is None:
        yield "classes", f"A {task} task needs classes."
        return
    names = [str(c).strip() for c in classes]
    least = {"classification": 2, "binary": 2, "multilabel": 1, "events": 1}[task]
    if any(not c for c in names):
        yield "classes", "A class name is empty."
    elif len(set(names)) != len(names):
        yield "classes", "A class is named twice."
    elif CANT_TELL in names:
        yield "classes", f"{CANT_TELL!r} is always offered; do not list it."
    elif any("|" in c for c in names):
        yield "classes", "'|' separates tags and cannot be part of a class name."
    elif len(names) < least:
        yield "classes", f"A {task} task needs at least {least} class{'es' if least > 1 else ''}."
    elif task == "binary" and len(names) != 2:
        yield "classes", "A binary task has exactly two classes."


def _segment_rules(task: str, segment: float | None, hop: float | None) -> Iterable[Problem]:
    """Segments are for events projects; the hop fits a whole number of times in the segment."""
    if task != "events":
        for name, value in (("segment_seconds", segment), ("hop_seconds", hop)):
            if value is not None:
                yield name, f"Segments are for events projects, not {task}."
        return
    seg = DEFAULT_SEGMENT_S if segment is None else segment
    step = DEFAULT_HOP_S if hop is None else hop
    if not (isinstance(seg, int | float) and isinstance(step, int | float)) or seg <= 0 or step <= 0:
        return  # reported at its field
    if step > seg:
        yield "hop_seconds", f"At most the segment's length ({seg:g} s)."
    elif abs(seg / step - round(seg / step)) > 1e-9:
        yield "hop_seconds", f"The segment ({seg:g} s) must be a whole number of hops ({step:g} s)."


def problems_of(exc: ValidationError) -> list[dict[str, Any]]:
    """A ProjectConfig's ValidationError as `[{loc, field, msg, type}]`: `field` is the dotted
    setting (redundancy.max), `msg` a plain sentence."""
    problems: dict[tuple[str, str], dict[str, Any]] = {}
    for e in exc.errors():
        field = ".".join(str(x) for x in e["loc"] if isinstance(x, str))
        # one sentence per field and problem, not one per list item (classes.0, classes.1)
        problems.setdefault(
            (field, e["msg"]), {"loc": [], "field": field, "msg": e["msg"], "type": e["type"]}
        )
        problems[field, e["msg"]]["loc"] = list(e["loc"])[: len(field.split(".")) if field else 0]
    return list(problems.values())


def patch_problems(data: Any) -> list[dict[str, Any]]:
    """Every problem of a settings change as sent (a ProjectPatch body), with plain sentences.
    The configuration it makes is checked afterwards, as a whole (`problems_of`)."""
    if not isinstance(data, dict):
        return [{"loc": [], "field": "", "msg": "Send the settings as a JSON object.", "type": "model_type"}]
    try:
        ProjectPatch.model_validate(data)
    except ValidationError as exc:
        return [
            {"loc": list(loc), "field": ".".join(str(x) for x in loc if isinstance(x, str)), "msg": msg,
             "type": e["type"]}
            for e in exc.errors()
            for loc, msg in [_sentence(e, "")]
        ]  # fmt: skip
    return []


def live_strategy_task(task_type: str, classes: list[str] | None) -> tuple[str, int | None]:
    """The learning core's task and number of classes a project's strategy runs on: multi-label
    projects rank tag by tag with yes/no models (binary relevance), ratings are regression."""
    if task_type == "continuous":
        return "regression", None
    if task_type in ("binary", *TAG_TASKS):
        return "classification", 2
    return "classification", len(classes) if classes else None


def strategy_problems(task_type: str, strategy: str, classes: list[str] | None) -> list[tuple[str, str]]:
    """The strategy's problem for this project (name, task type, what is allowed), or none."""
    from listenloop.strategies.registry import (
        DEEP_STRATEGIES,
        SIMULATION_STRATEGIES,
        STRATEGIES,
        allowed_strategies,
        strategy_problem,
    )

    if strategy not in STRATEGIES:
        return [("strategy", f"{strategy!r} is not a query strategy: use one of {', '.join(STRATEGIES)}.")]
    task, count = live_strategy_task(task_type, classes)
    problem = strategy_problem(strategy, task, count, platform=True)
    if problem is None:
        return []
    if strategy in DEEP_STRATEGIES | SIMULATION_STRATEGIES and task == "classification":
        return [("strategy", f"{problem}.")]
    if task == "regression":
        why = "it needs class probabilities, and a model of ratings has none"
    elif strategy == "regression_binary_confidence":
        why = "it is for ratings (continuous projects)"
    else:
        why = f"it needs a yes/no model (two classes), and this project has {count} classes"
    what = f"a {task_type} project" + (f" with {count} classes" if task_type == "classification" else "")
    allowed = ", ".join(allowed_strategies(task, count, platform=True))
    return [("strategy", f"{strategy!r} cannot run on {what}: {why}. Use one of {allowed}.")]


def learning_problems(
    task_type: str,
    feature_set: str | None,
    learner: str | None,
    strategy: str | None,
    classes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Feature set, learner and strategy that name no entry of the learning core's registries,
    or that the live loop cannot run for this task type (and number of `classes`), all of them
    (None: not checked). Imports scikit-learn and openSMILE (seconds the first time): call it
    off the event loop."""
    from listenloop.features.registry import platform_feature_sets
    from listenloop.learners.registry import CLASSIFIERS, REGRESSORS

    task = "regression" if task_type == "continuous" else "classification"
    learners = REGRESSORS if task == "regression" else CLASSIFIERS
    found: list[tuple[str, str]] = []
    sets = platform_feature_sets()
    if feature_set is not None and feature_set not in sets:
        found.append(
            (
                "feature_set",
                f"{feature_set!r} is not a feature set: use one of {', '.join(sorted(sets))}.",
            )
        )
    if learner is not None and learner not in learners:
        kind = "ratings" if task == "regression" else "classes"
        found.append(
            ("learner", f"{learner!r} is not a learner for {kind}: use one of {', '.join(sorted(learners))}.")
        )
    if strategy is not None:
        found += strategy_problems(task_type, strategy, classes)
    return [{"loc": [f], "field": f, "msg": m, "type": "config"} for f, m in found]


def config_problems(data: Any) -> list[dict[str, Any]]:
    """Every problem of a project config as sent (a JSON body), at once: the model's checks
    and the learning core's names. Empty when it is valid. Off the event loop (see above)."""
    if not isinstance(data, dict):
        return [{"loc": [], "field": "", "msg": "Send the settings as a JSON object.", "type": "model_type"}]
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        problems = problems_of(exc)
        bad = {p["loc"][0] for p in problems if p["loc"]}

        def named(key: str) -> str | None:
            value = data.get(key)
            return value if key not in bad and isinstance(value, str) else None

        task = data.get("task_type") if "task_type" not in bad else None
        if task is None:  # the learner and strategy depend on it
            return problems + learning_problems("classification", named("feature_set"), None, None)
        classes = data.get("classes") if "classes" not in bad else None
        classes = classes if isinstance(classes, list) else None
        more = learning_problems(task, named("feature_set"), named("learner"), named("strategy"), classes)
        return problems + more
    return learning_problems(
        config.task_type, config.feature_set, config.learner, config.strategy, config.classes
    )


def check_learning_setup(config: ProjectConfig) -> None:
    """ProblemsError (422) listing every feature set, learner and strategy that names no entry
    of the learning core's registries, or a strategy the live loop cannot run for the project's
    task type. Imports scikit-learn: call it off the event loop."""
    from listenloop.engine.errors import ProblemsError

    problems = learning_problems(
        config.task_type, config.feature_set, config.learner, config.strategy, config.classes
    )
    if problems:
        raise ProblemsError(problems)


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
    queue: Literal["redundancy", "relabel_or_new"] | None = None
    retrain_every: int | None = None
    passive_share: float | None = None
    redundancy: RedundancyPatch | None = None
    control_rate: float | None = None
    consistency_rate: float | None = None
    trust_threshold: float | None = None
    budget: int | None = Field(None, description="null: no limit.")
    rating_tolerance: float | None = Field(
        None, description="null: an eighth of the range / sqrt(redundancy.max)."
    )
    invite_only: bool | None = None
    auto_block_spammers: bool | None = None
    open: bool | None = Field(None, description="true opens a draft to annotators (one way).")
