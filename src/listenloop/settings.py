"""The server's operational settings, in one object read from the environment.

Every setting is `LISTENLOOP_<NAME>` (the field's name in capitals): `LISTENLOOP_TASK_LEASE_SECONDS=600`,
`LISTENLOOP_BUSY_TIMEOUT_MS=10000`, `LISTENLOOP_MAX_UPLOAD=2G`. `listenloop serve`'s options win over
the environment (it hands the result to its workers through the same variables), the environment
over the defaults here. A value that does not parse stops the server with one line naming the
variable. A server, app or database reads them once, when it is made (pydantic validates them;
pydantic-settings would add nothing this does not need).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from listenloop.errors import ListenloopError

PREFIX = "LISTENLOOP_"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.ASCII | re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """Bytes from `20G`, `500MB`, `1.5GiB`, `1048576` (powers of 1024); None for `0`, `none`,
    `off` or `unlimited` (no bound). ValueError for anything else."""
    text = text.strip()
    if text.lower() in ("0", "none", "off", "unlimited"):
        return None
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (say 20G, 500M or a number of bytes)")
    number, unit = match.groups()
    size = int(float(number) * 1024 ** ("kmgt".index(unit.lower()) + 1)) if unit else int(number)
    return size or None


def _size(value: Any) -> Any:
    """A size setting: a number of bytes, or text such as 1G (`parse_size`; 0 or none: no bound)."""
    return parse_size(value) if isinstance(value, str) else value


def _bound(value: Any) -> Any:
    """A size that must bound something (0 or none is not allowed)."""
    value = _size(value)
    if value is None:
        raise ValueError("must be a size above 0 (say 1M or 2G)")
    return value


Size = Annotated[int | None, BeforeValidator(_size)]  # None: no bound
Bytes = Annotated[int, BeforeValidator(_bound), Field(gt=0)]  # a bound there must be


class Settings(BaseModel):
    """What an operator may tune without touching code; each field is `LISTENLOOP_<FIELD>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # where the server keeps its state (also `serve --db/--data/--scheduler/--import-root`)
    db: str = Field("sqlite:///./listenloop.db", description="Database URL.")
    data: str = Field("listenloop-data", description="Folder for audio and caches.")
    scheduler: str | None = Field(None, description="Dask scheduler address for learning rounds.")
    import_root: str | None = Field(None, description="Folder that manifest uploads are relative to.")
    import_protocols: str | None = Field(
        None, description="fsspec protocols besides local files that bulk imports may fetch (e.g. s3,gs)."
    )
    learning: bool = Field(True, description="Run the background learning service (0/false/off: not).")
    # the annotators' loop
    task_lease_seconds: float = Field(
        300.0, gt=0, description="How long a task stays leased to its annotator."
    )
    token_lifetime_days: float = Field(7.0, gt=0, description="How long a sign-in (token or cookie) lasts.")
    token_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="How long a worker caches whom a token is for (an ended session may work that long).",
    )
    # the database
    busy_timeout_ms: int = Field(
        30_000, ge=0, description="SQLite: how long a writer waits for the lock (503 after)."
    )
    checkpoint_seconds: float = Field(1.0, gt=0, description="SQLite: how often the WAL is checkpointed.")
    workers: int = Field(
        0,
        ge=0,
        description="serve: server processes; 0: one per usable core, at most 2 on a SQLite file "
        "(its writers take turns) and 4 on PostgreSQL, and 1 on an in-memory database.",
    )
    worker_healthcheck_seconds: int = Field(
        60,
        ge=1,
        description="serve --workers N: how long a worker may take to start or to answer a health check "
        "before it is restarted.",
    )
    # the learning service
    learning_poll_seconds: float = Field(
        5.0, gt=0, description="How often the learning service looks for work."
    )
    learning_lease_seconds: float = Field(
        120.0, gt=0, description="A round's hold on its project (renewed while it runs)."
    )
    # owner exports
    export_process: bool = Field(
        True, description="Produce exports in a child process (0/false/off: in the server's thread pool)."
    )
    export_process_min_clips: int = Field(
        2000,
        ge=0,
        description="Projects with fewer clips export in the server's thread pool (a child's start, "
        "about 0.3 s, costs more than their export).",
    )
    export_nice: int = Field(
        19, ge=0, le=19, description="How far below the server's CPU priority the export process runs (nice)."
    )
    # what clients may send
    json_body_limit: Bytes = Field(1 << 20, description="Largest body of any route but the uploads.")
    max_upload: Bytes = Field(1 << 30, description="Largest upload (zip or manifest) body.")
    project_quota: Size = Field(20 << 30, description="Audio each project may store (0: no quota).")
    read_timeout: float = Field(
        30.0, gt=0, description="Longest wait for a request's head, and for the next bytes of a body."
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request line and headers (431 above)."
    )
    keep_alive_seconds: float = Field(75.0, gt=0, description="An idle connection is closed after this.")
    login_window_seconds: float = Field(900.0, gt=0, description="The window failed logins are counted over.")
    login_account_failures: int = Field(
        10, ge=1, description="Failed logins per account and window (429 after)."
    )
    login_address_failures: int = Field(50, ge=1, description="Failed logins per client address and window.")

    @property
    def task_lease(self) -> timedelta:
        return timedelta(seconds=self.task_lease_seconds)

    @property
    def token_lifetime(self) -> timedelta:
        return timedelta(days=self.token_lifetime_days)

    @property
    def learning_lease(self) -> timedelta:
        return timedelta(seconds=self.learning_lease_seconds)

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of the field `name`."""
        return PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from `environ` (default: this process's environment; an empty variable is
        not set); a bad value is a ListenloopError naming its variable and what it must be."""
        environ = os.environ if environ is None else environ
        values = {}
        for name in cls.model_fields:
            raw = environ.get(cls.variable(name), "").strip()
            if raw:
                values[name] = raw
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{cls.variable(str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())
            raise ListenloopError(problems) from None


def settings() -> Settings:
    """This process's settings as the environment says now (a server reads them once, at start)."""
    return Settings.from_env()


def as_environment(settings: Settings) -> dict[str, str]:
    """`settings` as LISTENLOOP_* variables that `Settings.from_env` reads back equal (a bound that
    is off, such as no project quota, as 0)."""
    env = {}
    for name, value in settings.model_dump().items():
        off = "" if Settings.model_fields[name].default is None else "0"
        env[Settings.variable(name)] = off if value is None else str(value)
    return env
