"""Request and response bodies of REST API v1 (the project config is `engine.config.ProjectConfig`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr


class UserCreate(BaseModel):
    """Self-registration of an annotator."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(BaseModel):
    """A new password for the caller: the current one proves it is them."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class SessionsEnded(BaseModel):
    """How many other sessions (tokens, cookies) of the caller were ended."""

    ended: int


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: int
    username: str
    role: str


class SessionOut(BaseModel):
    """The pages' session: the signed-in user, or null."""

    user: UserOut | None


class TokenOut(BaseModel):
    """A bearer token for the `Authorization: Bearer ...` header."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class MemberIn(BaseModel):
    """Who to invite to (or remove from) a project."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: Literal["annotator", "reviewer"] | None = Field(
        None, description="reviewer: may also review and label clips (null: keep the member's role)."
    )


class MemberOut(BaseModel):
    """A membership after the change."""

    project_id: int
    username: str
    active: bool
    role: str = "annotator"


class Rejected(BaseModel):
    """One file that was not taken, and why."""

    file: str
    reason: str


class UploadOut(BaseModel):
    """Result of a clip upload."""

    added: int
    rejected: list[Rejected]


class GoldOut(BaseModel):
    """Result of a control-question upload."""

    marked: int
    rejected: list[Rejected]


class Question(BaseModel):
    """What the annotator is asked: the choices (or the range) of the project's task."""

    type: str
    text: str
    choices: list[str] | None = None
    multiple: bool = False
    range: tuple[float, float] | None = None


class NextOut(BaseModel):
    """The next task. It never says whether it is a regular, a repeated or a check question, nor
    which clip it is: the audio and spectrogram URLs are addressed by the task."""

    task_id: int
    audio_url: str
    spectrogram_url: str
    question: Question
    leased_until: datetime


class AnswerIn(BaseModel):
    """An answer: a class (or "can't tell"), a list of tags, or a number for ratings."""

    model_config = ConfigDict(extra="forbid")

    # Strict: JSON true is not the number 1, nor a class "True" (a lax union took it for either).
    answer: StrictStr | StrictInt | StrictFloat | list[StrictStr]


class AnswerOut(BaseModel):
    """What an answer earned: the same points for the same answer on every kind of task."""

    task_id: int
    points: int
    total_points: int
    level: int


class UndoOut(BaseModel):
    """What taking an answer back cost: the task (now open again), the points taken back and the
    annotator's new total in the project."""

    task_id: int
    project_id: int
    points: int
    total_points: int
    level: int


class StorageOut(BaseModel):
    """Bytes of audio a project stores, and the most it may (the server's per-project quota)."""

    used_bytes: int
    quota_bytes: int | None = Field(None, description="None: no quota on this server.")
    left_bytes: int | None = Field(None, description="What the project may still upload (None: no bound).")


class StatusOut(BaseModel):
    """A project's progress."""

    project_id: int
    clips: int
    clips_by_status: dict[str, int]
    progress: float
    answers_used: int
    labels_done: int
    low_agreement: int
    model_scores: list[Any]
    learning_error: dict[str, Any] | None = Field(
        None, description="The background learning's last failure since its last success: {kind, error, at}."
    )
    budget: int | None
    budget_left: int | None
    storage: StorageOut | None = Field(None, description="The project's audio storage and its quota.")
