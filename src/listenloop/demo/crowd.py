"""`listenloop demo`'s simulated crowd: a few annotators of mixed skill who answer in the background.

With the default redundancy (at least two answers, posterior 0.95) and a newcomer's prior
trust, one or two people never finish a clip, so a demo tried alone would look frozen. The
demo therefore starts a small crowd (`--crowd N`, 6 by default, 0 turns it off): N accounts
`demo-crowd-1` ... `demo-crowd-N` who label the demo project at a human pace through the
server's own HTTP API on loopback (`GET .../next`, a pause to listen and decide, `POST
.../answer`), so every rule of the live loop (leases, control and consistency questions,
trust, redundancy, points) applies to them exactly as to the person trying the demo, whose
answers count beside theirs.

Their answers come from `crowd.simulated.SimulatedCrowd.from_skills` and the demo's ground
truth (`demo/fsdd/labels.csv`): the honest members name the true digit with probabilities
from 0.95 down to 0.7; with three or more members the last one is a spammer who answers
uniformly at random and fast, so that trust and the annotator table have something to show.
A member's pause per clip is log-normal around their own median (3 to 5 s; the spammer 1.5 s).

The crowd runs in daemon threads of the demo's process (no child process to outlive it) and
stops with the demo: `stop()` wakes every pause at once, and a thread blocked on a request
gives up after a few seconds. The accounts live in the demo's database, so a restart in the
same folder reuses them (their history, trust and points included).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from listenloop.crowd.simulated import SimulatedCrowd
from listenloop.demo import DEMO_DIR
from listenloop.engine.accounts import create_user, hash_password, issue_token
from listenloop.store.database import Database
from listenloop.store.models import Clip, Task, User

log = logging.getLogger("listenloop.demo.crowd")

DEFAULT_SIZE = 6
MAX_SIZE = 50
PREFIX = "demo-crowd-"
BEST_SKILL, WORST_SKILL = 0.95, 0.7  # the honest members' accuracies, spread evenly
FASTEST, SLOWEST = 3.0, 5.0  # the honest members' median seconds per clip (listen, decide, press a key)
SPAMMER_THINK = 1.5  # a spammer clicks without listening
THINK_SPREAD = 0.35  # log-normal sigma of one pause around a member's median
SPAMMER_FROM = 3  # a crowd of at least this many has one spammer
IDLE_SECONDS = 10.0  # pause after "nothing to do now" (204) before asking again
RETRY_SECONDS = 2.0  # pause after a refused or failed request (server starting, busy, stopping)
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Member:
    """One simulated annotator: account name, accuracy, median seconds per clip."""

    username: str
    skill: float
    think: float
    spammer: bool = False


def members(size: int, n_classes: int) -> list[Member]:
    """The demo crowd of `size` members (see the module docstring for their skills and pace)."""
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"the demo crowd has 0 to {MAX_SIZE} members, not {size}")
    spammers = 1 if size >= SPAMMER_FROM else 0
    honest = size - spammers
    skills = np.linspace(BEST_SKILL, WORST_SKILL, honest) if honest > 1 else np.full(honest, BEST_SKILL)
    thinks = np.linspace(FASTEST, SLOWEST, honest) if honest > 1 else np.full(honest, FASTEST)
    out = [
        Member(f"{PREFIX}{i + 1}", round(float(s), 4), float(t))
        for i, (s, t) in enumerate(zip(skills, thinks, strict=True))
    ]
    if spammers:
        out.append(Member(f"{PREFIX}{size}", 1.0 / n_classes, SPAMMER_THINK, spammer=True))
    return out


def describe(crowd: Sequence[Member]) -> str:
    """One line for the demo's start-up message."""
    if not crowd:
        return "demo crowd: off"
    honest = [m for m in crowd if not m.spammer]
    parts = [f"{m.username} ({m.skill:.0%} right)" for m in honest]
    parts += [f"{m.username} (a spammer: random answers)" for m in crowd if m.spammer]
    return f"demo crowd: {len(crowd)} simulated annotators answering in the background: " + ", ".join(parts)


def ensure_accounts(db: Database, crowd: Sequence[Member]) -> None:
    """Create the members' annotator accounts that do not exist yet (kept across restarts).

    Their passwords are random and never shown: the crowd signs in with tokens the demo
    issues itself (`issue_token`, what `POST /api/v1/token` does after the password check).
    """
    with db.write() as session:
        known = set(
            session.scalars(select(User.username).where(User.username.in_([m.username for m in crowd])))
        )
        for m in crowd:
            if m.username not in known:
                create_user(session, m.username, hash_password(secrets.token_urlsafe(24)), "annotator")


def token_issuer(db: Database) -> Callable[[str], str]:
    """A function that issues a new bearer token for a crowd member."""

    def issue(username: str) -> str:
        with db.write() as session:
            return issue_token(session, username)

    return issue


def truth_oracle(
    db: Database, project_id: int, labels_csv: Path = DEMO_DIR / "labels.csv"
) -> Callable[[int], str | None]:
    """A function from a task id to its clip's true label (the demo's ground truth), None if unknown.

    The crowd hears a clip the way a person does, so it must not rely on what `next` says
    about the clip: the task's clip is looked up in the database, its file in `labels.csv`.
    """
    table = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    # by stem: the project holds the bundled FLAC files as WAV (demo/setup.py)
    by_stem = {Path(f).stem: label for f, label in zip(table["file"], table["label"], strict=True)}
    with db.read() as session:
        rows = session.execute(select(Clip.id, Clip.file_name).where(Clip.project_id == project_id)).all()
    by_clip = {int(cid): by_stem[Path(name).stem] for cid, name in rows if Path(name).stem in by_stem}

    def truth(task_id: int) -> str | None:
        with db.read() as session:
            clip_id = session.scalar(select(Task.clip_id).where(Task.id == task_id))
        return None if clip_id is None else by_clip.get(int(clip_id))

    return truth


class DemoCrowd:
    """The crowd's threads: `start()`, then `stop()` (idempotent; returns once they have ended)."""

    def __init__(
        self,
        base_url: str,
        project_id: int,
        crowd: Sequence[Member],
        classes: Sequence[str],
        truth: Callable[[int], str | None],
        token_for: Callable[[str], str],
        *,
        speed: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"the crowd's speed must be above 0, not {speed}")
        self.base_url = base_url
        self.project_id = project_id
        self.crowd = list(crowd)
        self.simulated = SimulatedCrowd.from_skills(
            [m.skill for m in self.crowd], classes, [m.username for m in self.crowd]
        )
        self.truth = truth
        self.token_for = token_for
        self.speed = speed
        self.seed = secrets.randbits(32) if seed is None else seed
        self.answered: dict[str, int] = {m.username: 0 for m in self.crowd}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """One daemon thread per member."""
        for k, m in enumerate(self.crowd):
            t = threading.Thread(target=self._run, args=(k,), name=f"demo-crowd-{m.username}", daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float = REQUEST_TIMEOUT + 2) -> bool:
        """Stop every member; True when all threads ended within `timeout` seconds."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    @property
    def alive(self) -> int:
        """How many member threads still run."""
        return sum(t.is_alive() for t in self._threads)

    def _pause(self, member: Member, rng: np.random.Generator) -> float:
        """Seconds to listen and decide: log-normal around the member's median, within a factor 3."""
        raw = member.think * float(np.exp(rng.normal(0.0, THINK_SPREAD)))
        return min(max(raw, member.think / 3), 3 * member.think) / self.speed

    def _run(self, k: int) -> None:
        member = self.crowd[k]
        rng = np.random.default_rng([self.seed, k])
        wait = self._stop.wait
        try:
            with httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT) as client:
                headers: dict[str, str] | None = None
                while not self._stop.is_set():
                    try:
                        if headers is None:
                            headers = {"Authorization": f"Bearer {self.token_for(member.username)}"}
                        headers = self._one(client, k, headers, rng)
                    except (httpx.HTTPError, OperationalError):
                        # the server is starting, stopping or busy, or the demo's SQLite file is
                        # locked past its busy timeout (a token or a truth lookup): try again
                        wait(RETRY_SECONDS)
        except Exception:  # a member who fails must not take the demo down; say why once
            log.exception("demo crowd member %s stopped", member.username)

    def _one(
        self, client: httpx.Client, k: int, headers: dict[str, str], rng: np.random.Generator
    ) -> dict[str, str] | None:
        """One task: ask, listen, answer. Returns the headers to go on with (None: sign in again)."""
        member, wait = self.crowd[k], self._stop.wait
        r = client.get(f"/api/v1/projects/{self.project_id}/next", headers=headers)
        if r.status_code == 401:
            return None
        if r.status_code == 204:
            wait(IDLE_SECONDS / self.speed)
            return headers
        if r.status_code != 200:
            wait(RETRY_SECONDS)
            return headers
        task_id = int(r.json()["task_id"])
        truth = self.truth(task_id)
        if wait(self._pause(member, rng)) or truth is None:
            return headers  # stopping (the lease simply runs out), or a clip the demo does not know
        answer = self.simulated.answer_of(k, truth, rng)
        r = client.post(f"/api/v1/tasks/{task_id}/answer", headers=headers, json={"answer": answer})
        if r.status_code == 201:
            self.answered[member.username] += 1
        elif r.status_code == 401:
            return None
        return headers  # 409 (the lease ran out meanwhile) and the like: ask for the next task


def start_crowd(
    db_url: str,
    base_url: str,
    project_id: int,
    classes: Sequence[str],
    size: int,
    *,
    speed: float = 1.0,
    seed: int | None = None,
) -> tuple[DemoCrowd, Database]:
    """Accounts, tokens and truth for `size` members, and their threads started.

    Returns the crowd and the database handle it uses; stop the crowd, then dispose of it.
    """
    crowd = members(size, len(classes))
    db = Database(db_url)
    ensure_accounts(db, crowd)
    demo_crowd = DemoCrowd(
        base_url,
        project_id,
        crowd,
        classes,
        truth_oracle(db, project_id),
        token_issuer(db),
        speed=speed,
        seed=seed,
    )
    demo_crowd.start()
    return demo_crowd, db
