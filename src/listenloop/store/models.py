"""ORM models of the platform: people, tokens, projects, clips, tasks, trust and events.

Times are naive UTC datetimes (`utcnow()`), the same on SQLite and PostgreSQL. The queue
columns (clip status and rank, task leases) are indexed: `next` and `answer` query them on
every request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from listenloop.crowd.worker_prior import PRIOR_TRUST

ROLES = ("owner", "annotator", "admin")
TASK_TYPES = ("classification", "binary", "continuous", "multilabel", "events")
# pool: arrived in a stream-mode project, not yet judged by a learning round; queued: waits
# for answers; done / low_agreement: the redundancy policy's verdicts; passed: a stream-mode
# round judged it not worth people's time.
# discarded: the owner (or a reviewer) took it out of the dataset in the review queue: no task, no
# training label, no label in exports; its answers stay.
CLIP_STATUSES = ("pool", "queued", "done", "low_agreement", "passed", "discarded")
# A project's lifecycle: active; paused (no new tasks, answers to open leases still count);
# archived (read-only: no tasks, no answers, no uploads, no learning rounds).
PROJECT_STATES = ("active", "paused", "archived")
# A member's role in one project: annotator, or reviewer (may also review and label clips in the
# clip browser's review queue; never change settings or delete).
MEMBER_ROLES = ("annotator", "reviewer")
# expert: the project owner's correction of a clip's label in the clip browser (answered at once;
# it overrides the crowd's aggregate, and neither trust nor skills read it).
TASK_KINDS = ("regular", "control", "consistency", "expert")

# Constraint names fixed by convention, so that migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time as a naive UTC datetime (what every time column holds)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person: owner (creates projects), annotator (answers tasks) or admin (everything)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="annotator")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored, so a database leak reveals no usable token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship(lazy="joined")


class Project(Base):
    """An annotation campaign and its configuration (task, learning and crowd settings)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    task_type: Mapped[str] = mapped_column(String(16))
    classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    range_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    range_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    feature_set: Mapped[str] = mapped_column(String(64), default="compare")
    learner: Mapped[str] = mapped_column(String(64), default="svm")
    strategy: Mapped[str] = mapped_column(String(64), default="auto")
    mode: Mapped[str] = mapped_column(String(16), default="pool")
    retrain_every: Mapped[int] = mapped_column(Integer, default=20)
    passive_share: Mapped[float] = mapped_column(Float, default=0.1)  # the queue's random (passive) arm
    redundancy_min: Mapped[int] = mapped_column(Integer, default=2)
    redundancy_max: Mapped[int] = mapped_column(Integer, default=7)
    redundancy_tau: Mapped[float] = mapped_column(Float, default=0.95)
    control_rate: Mapped[float] = mapped_column(Float, default=0.1)
    consistency_rate: Mapped[float] = mapped_column(Float, default=0.05)
    trust_threshold: Mapped[float] = mapped_column(Float, default=0.5)
    budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Continuous tasks: a clip closes once its mean rating's standard error is at most this
    # (rating units); None: crowd.redundancy.default_tolerance.
    rating_tolerance: Mapped[float | None] = mapped_column(Float, nullable=True)
    invite_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # Block annotators whom spammer detection flags (off: flagging and weighting down only).
    auto_block_spammers: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # False: a draft that only its owner (and admins) see; annotators can neither list it, lease
    # from it nor fetch its audio until the owner opens it (one way: an open project stays open).
    is_open: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # anything else, free-form
    answers_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Until when a learning service holds this project's learning round (None: nobody). Taken
    # with one conditional UPDATE, so one process runs a project's round at a time; it expires,
    # so a killed process does not block the project for ever.
    learning_lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The whole-project Dawid-Skene fit (background): the class prior over `classes`, and how
    # many regular answers it saw (the next refresh is due when enough new ones arrive).
    class_prior: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    skills_answers: Mapped[int] = mapped_column(Integer, default=0)
    # Running counts for the learning service's poll (so that it never counts a million-clip
    # pool every few seconds): clips uploaded, and clips that gained a training label (seed,
    # control answer, confident aggregate). Approximate by design: a clip marked as control
    # after it was labelled counts twice; rounds count their labels exactly.
    clips_count: Mapped[int] = mapped_column(Integer, default=0)
    labels_count: Mapped[int] = mapped_column(Integer, default=0)
    # Bytes of audio its clips store (their `size_bytes`), checked against the storage quota.
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # can't-tell answers of every kind (a running count: the crowd's can't-tell rate)
    cant_tell_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Lifecycle (PROJECT_STATES), the annotation guidelines (Markdown, rendered sanitised), how many
    # days raw answers of a final clip are kept (None: for ever), and whether example clips serve
    # as control questions.
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    guidelines: Mapped[str | None] = mapped_column(Text, nullable=True)
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    examples_as_controls: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    owner: Mapped[User] = relationship()


class ProjectMember(Base):
    """Membership: invited by the owner, or joined an open project; `active` False = removed."""

    __tablename__ = "project_members"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # marked for review (owner or detection)
    # Spammer detection (engine/learning/spammers.py): the flag was set by detection (their answers then count
    # at chance level) and why; the owner's last flag decision (detection judges only later answers).
    flag_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    flag_auto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    flag_reviewed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    role: Mapped[str] = mapped_column(String(16), default="annotator", server_default="annotator")


class Clip(Base):
    """One audio clip of a project, stored content-addressed under the data folder."""

    __tablename__ = "clips"
    __table_args__ = (
        UniqueConstraint("project_id", "file_name"),
        Index("ix_clips_queue", "project_id", "status", "is_gold", "rank"),
        Index("ix_clips_project_sha256", "project_id", "sha256"),
        # the clip browser's pages in clip order (LIMIT/OFFSET without sorting the whole project)
        Index("ix_clips_project_id", "project_id", "id"),
        Index("ix_clips_sha256", "sha256"),  # start-up: which clips does a stored audio file serve
        # the control clips (gold or silver): a control draw walks these, never the whole project
        Index(
            "ix_clips_controls",
            "project_id",
            "id",
            sqlite_where=text("is_gold = 1 OR silver = 1"),
            postgresql_where=text("is_gold = true OR silver = true"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    file_name: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(512))  # relative to the data folder
    # bytes of its audio file (None: stored before sizes were counted; start-up fills it in)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    rank: Mapped[float] = mapped_column(Float, default=0.0)  # queue order: lowest first
    seed_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    n_answers: Mapped[int] = mapped_column(Integer, default=0)  # regular answers stored
    label: Mapped[str | None] = mapped_column(Text, nullable=True)  # aggregated (hard) label
    # "passive": a learning round queued it at random, not by the strategy (the passive arm that
    # the dashboard's passive-learning curve is trained on); None: the strategy's pick or upload order.
    arm: Mapped[str | None] = mapped_column(String(8), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    soft: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    # The owner's correction (an `expert` task holds it as an answer): overrides `label`, which
    # stays the crowd's aggregate, as `seed_label` does for seed clips.
    expert_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A "silver" control question: a clip the crowd finished with high confidence and agreement
    # among trusted annotators (`crowd.checks.is_silver`); its label is the truth it checks against.
    silver: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Events projects: the long recording this segment was cut from (its uploaded name) and the
    # segment's onset in it, seconds; None for clips of other projects.
    recording: Mapped[str | None] = mapped_column(String(512), nullable=True)
    onset: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The class this clip is an example of in the project's guidelines (None: no example), and
    # whether it became a control question for that reason (examples_as_controls).
    example_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    example_control: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A manifest import's other columns of the clip's row (`group` among them); None for uploads.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    project: Mapped[Project] = relationship()


class ClipTally(Base):
    """How many clips of a project have one (status, is_gold, seeded, n_answers): what `status`
    and the dashboard count, without reading the clips.

    Kept by database triggers on `clips` (migration 0013: insert, delete, and updates of those
    columns), so every writer keeps it right. A migration that rebuilds `clips` (a SQLite batch
    copy) drops the triggers with the old table and must create them again.
    """

    __tablename__ = "clip_tallies"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    is_gold: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    seeded: Mapped[bool] = mapped_column(Boolean, primary_key=True)  # seed_label IS NOT NULL
    n_answers: Mapped[int] = mapped_column(Integer, primary_key=True)
    clips: Mapped[int] = mapped_column(Integer)


class LabelTally(Base):
    """How many clips of a project carry `label` from one `source` (crowd, seed or expert): the
    dashboard's label distribution, without reading the clips.

    Kept by database triggers on `clips` (migration 0014), like `clip_tallies`: control clips
    are left out; a clip counts once it is seeded or done, under its expert label where the
    owner corrected it, else its seed label, else the crowd's.
    """

    __tablename__ = "label_tallies"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(8), primary_key=True)
    label: Mapped[str] = mapped_column(Text, primary_key=True)
    clips: Mapped[int] = mapped_column(Integer)


class AnswerTally(Base):
    """One annotator's answered tasks of one kind in a project: how many, how many a check judged
    (`tasks.passed` set) and how many passed. What the savings panel and the annotator table
    count, without reading tasks or events.

    Kept by database triggers on `tasks` (migration 0014): an answer, an undo, a deleted task.
    """

    __tablename__ = "answer_tallies"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    answers: Mapped[int] = mapped_column(Integer)
    checked: Mapped[int] = mapped_column(Integer)
    passed: Mapped[int] = mapped_column(Integer)


class Task(Base):
    """One clip leased to one annotator; answered at most once (the UNIQUE constraint and a
    conditional update on `answered_at` make a retried answer store nothing)."""

    __tablename__ = "tasks"
    __table_args__ = (
        # one task per clip, annotator and kind, except control questions: a control clip comes
        # back to the same annotator after a delay (checks must last as long as they work)
        Index(
            "ux_tasks_clip_annotator_kind",
            "clip_id",
            "annotator_id",
            "kind",
            unique=True,
            sqlite_where=text("kind != 'control'"),
            postgresql_where=text("kind != 'control'"),
        ),
        # whether an annotator had a clip (of any kind): what the unique constraint's index served
        Index("ix_tasks_clip_annotator", "clip_id", "annotator_id"),
        # open leases: a range seek on leased_until, however many expired ones wait to be reclaimed
        Index("ix_tasks_open", "project_id", "annotator_id", "answered_at", "leased_until"),
        Index("ix_tasks_clip_lease", "clip_id", "answered_at", "leased_until"),
        Index("ix_tasks_project_answered", "project_id", "answered_at", "leased_until"),
        # an annotator's tasks of a project in id order (control delay, consistency draw), and
        # their answer times over every project (progress: an index-only read)
        Index("ix_tasks_annotator_project", "annotator_id", "project_id", "id", "answered_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="regular")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    leased_until: Mapped[datetime] = mapped_column(DateTime)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    points: Mapped[int] = mapped_column(Integer, default=0)
    # what a control or consistency answer's check gave (None: nothing checked), kept so that an
    # undo takes back exactly the trust update it made
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)

    clip: Mapped[Clip] = relationship()
    annotator: Mapped[User] = relationship()


class WorkerTrust(Base):
    """An annotator's trust, checks and points within one project."""

    __tablename__ = "worker_trust"
    __table_args__ = (Index("ix_worker_trust_user_id", "user_id"),)  # one annotator over every project

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    trust: Mapped[float] = mapped_column(Float, default=PRIOR_TRUST)
    n_checked: Mapped[int] = mapped_column(Integer, default=0)
    n_right: Mapped[int] = mapped_column(Integer, default=0)
    n_answers: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    # the weight of the checks `trust` rests on (`crowd.trust.check_weight`), and how many of
    # the annotator's answers were "can't tell" (`crowd.checks.cant_tell_fails`)
    evidence: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    n_cant_tell: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # From the background Dawid-Skene fit: P(answer | true class) over the project's classes
    # (rows: answered class, columns: true class; shrunk towards one-coin at `trust`), and the
    # worker's expected accuracy. None until the first fit that saw this worker.
    confusion: Mapped[list[list[float]] | None] = mapped_column(JSON, nullable=True)
    skill: Mapped[float | None] = mapped_column(Float, nullable=True)
    # A rating project's: the annotator's noise sd from the background fit over all their answers
    # (`crowd.aggregation.continuous.fit_rating_noise`); None until a fit saw them.
    noise: Mapped[float | None] = mapped_column(Float, nullable=True)


class ModelRun(Base):
    """One learning round of a project: how many labels it trained on, its score, how it ranked.

    The newest run per project is also what the learning service compares with to decide
    when the next round is due (new labels, new clips).
    """

    __tablename__ = "model_runs"
    __table_args__ = (
        Index("ix_model_runs_project_id", "project_id", "id"),
        Index("ux_model_runs_project_version", "project_id", "version", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    labels: Mapped[int] = mapped_column(Integer)  # training labels handed to the round
    score: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: too few labels to score
    metric: Mapped[str] = mapped_column(String(8))  # "uar" (classes) or "cc" (continuous)
    strategy: Mapped[str] = mapped_column(String(64))
    cold_start: Mapped[bool] = mapped_column(Boolean, default=False)
    clips: Mapped[int] = mapped_column(Integer)  # clips of the project the round read
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # clips whose audio gave no features
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A 2-D map of the pool for the dashboard: {"method": "pca", "explained": [..],
    # "points": [[clip_id, x, y, predicted label], ...]} (a sample of at most MAP_POINTS clips).
    map: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The same learner trained only on randomly chosen labelled clips (seed, control and passive
    # arm): what passive learning reached with `passive_labels` labels (None: too few to score).
    # Since 0011 it is scored on the `heldout_size` held-out passive-arm clips, like the round's
    # model (`heldout_score`); before, it was cross-validated on the random clips themselves.
    passive_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    passive_labels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heldout_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    heldout_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # self_training: clips the model also trained on with its own confident prediction (not labels)
    pseudo_labels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # auto's bandit after the round (strategies/auto.py: arm weights, the batch waiting for answers,
    # clips by id): the next round goes on from it. NULL for strategies that keep no state.
    strategy_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The model version this round trained (None: no model, at cold start or for multi-label
    # projects): its number within the project (1, 2, ...), its folder under the data folder
    # (`learners.model_files`; None once retired, keeping only this row), the configuration it
    # was trained with, and the snapshot id of its training labels (`engine.learning.round.labels_snapshot`).
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_files: Mapped[str | None] = mapped_column(String(512), nullable=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    labels_snapshot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The model itself on the project's labelled test clips (held out of every fit), and how many.
    test_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    test_size: Mapped[int | None] = mapped_column(Integer, nullable=True)


class DryRun(Base):
    """A dry run: `listenloop simulate` on the project's labelled clips, queued by its owner and run
    by the learning service (`engine/dry_run.py`).

    `status` goes queued -> running -> done (or failed, with `error`); `done` of `total`
    simulated (fold, run) pairs is its progress, `updated_at` its heartbeat (a running one whose
    process died is taken over after a while). `result` holds the per-strategy figures and the
    verdict (`sim.dry_run.run_dry_run`).
    """

    __tablename__ = "dry_runs"
    __table_args__ = (
        Index("ix_dry_runs_project_id", "project_id", "id"),
        Index("ix_dry_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued")
    labels: Mapped[int] = mapped_column(Integer)  # labelled clips when it was asked for
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class PendingAggregate(Base):
    """A clip whose aggregate (label, soft label, status) waits for its newest answer: an answer
    taken while other requests queued leaves it here, and the server re-aggregates it in the
    next lull (engine/live/settle.py). A row left by a crash is settled at start-up."""

    __tablename__ = "pending_aggregates"

    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # who answered last: the annotator a "clip_done" event names
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    since: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Event(Base):
    """Append-only log of what happened (uploads, tasks, answers, decisions)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_project_time", "project_id", "created_at"),
        Index("ix_events_project_kind", "project_id", "kind", "id"),  # the newest event of a kind
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


IMPORT_STATUSES = ("queued", "running", "done", "failed")


class ImportJob(Base):
    """A manifest import running in the background (`engine/bulk_import.py`).

    `offset` (the manifest's byte offset after the last row processed) and the counts are
    committed with each chunk's clips, and `report_bytes` is the length of the rejection report
    they account for: a restart truncates the report there and reads on from `offset`.
    `lease_until` is held by the one process that runs the job (it expires if that one dies).
    """

    __tablename__ = "import_jobs"
    __table_args__ = (
        Index("ix_import_jobs_project_id", "project_id", "id"),
        Index("ix_import_jobs_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    source: Mapped[str] = mapped_column(String(512))  # the manifest's name as the owner gave it
    manifest: Mapped[str] = mapped_column(String(1024))  # where it is read from (absolute path)
    format: Mapped[str] = mapped_column(String(8))  # csv or jsonl
    # where its uris may point: {"root": dir | None, "base": dir | None, "protocols": [...]}
    sources: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)  # duplicates included
    report_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
