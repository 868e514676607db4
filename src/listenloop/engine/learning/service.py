"""The live loop's background learning: retrain and re-rank each project's queue when it is due.

A daemon thread polls the database every few seconds for projects that need a learning
round: never ranked and holding clips, `retrain_every` new training labels since the last
round, or clips uploaded since (from the projects' running clip and label counts, so a poll
never scans a pool). For each it takes the project's learning lease (one
conditional UPDATE, so that one process of several, or one machine of several on one
PostgreSQL, runs a project's round at a time; the lease expires, so a killed process does not
block a project), reads the clips, runs `engine.learning.round.learning_round` on Dask, writes the
new ranks in one executemany UPDATE and records a `ModelRun` (the status page's score
history). Each poll also refreshes the crowd skills of classification projects that got enough
new answers (`engine/learning/skills.py`: spammer detection, then whole-project Dawid-Skene, under the
same lease, in the service's thread; multi-label projects get the spammer detection), also
while a round computes, so that neither waits for a long round. A failed
round is an event in the project's log; the lease is released, the project is tried again
after a back-off and the thread goes on.

The server runs the service in a process of its own (`engine/learning/process.py`), so that none of
its Python work holds the GIL of the process that serves requests.

Dask: a `LocalCluster` of worker processes, started on the first round (1 worker by default,
at nice 19 and SCHED_IDLE so that the request path keeps its latency, no dashboard, quiet), or
the cluster at `--scheduler ADDRESS`. The whole round (feature extraction with the cache
under the data folder, fit, scoring, ranking) is one task there, so the service's process only
reads and writes rows and never imports scikit-learn (an import holds the GIL for seconds,
which the next poll would wait through); on a cluster of several workers
the round's task hands the feature extraction out in chunks across them. Worker processes
exit when the service's process dies, even by `kill -9` (distributed watches a pipe from its
parent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam as bp
from sqlalchemy import false, func, or_, select, update

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine import agreement as crowd_agreement
from listenloop.engine import dry_run as dry
from listenloop.engine import lifecycle
from listenloop.engine.config import DEFAULT_QUEUE, queue_of
from listenloop.engine.learning import skills as crowd_skills
from listenloop.engine.learning import spammers
from listenloop.priority import lower_priority
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, ModelRun, Project, Task, utcnow

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

log = logging.getLogger("listenloop.learning")

POLL_SECONDS = 5.0
# Renewed every quarter of itself while a round computes, so a long round keeps it, and a
# server killed mid-round (kill -9, then restarted) blocks the project for two minutes at most.
LEASE = timedelta(minutes=2)
RETRY_SECONDS = 30.0  # first back-off after a failed round; doubles up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 600.0
# task types the background skills refresh serves: Dawid-Skene, rating noise, spammer detection
REFRESH_TASKS = sorted({*crowd_skills.SKILL_TASKS, *crowd_skills.NOISE_TASKS, *spammers.SPAM_TASKS})
# Dask workers' nice value: they get the CPU the server leaves. With 10 they still took a
# visible share from a saturated 2-core server (p99 of next/answer). On Linux they also run
# under SCHED_IDLE, which yields to any other process at once (BENCHMARKS.md).
WORKER_NICE = 19
# The crowd-skill fit (read every answer, spammer detection, Dawid-Skene: 0.1 s of CPU at 3,000
# answers, seconds at 10^5) runs in a thread this much nicer than the service, so that the
# server's processes take the CPU back the moment requests come: at the same priority, a fit
# during a load put a dozen requests above the p99 of `4-serve-load.sh`. Its writes stay in the
# service's thread at its own priority (a niced writer would hold the writers' gate longer).
SKILLS_NICE = 10
LOCAL_WORKERS = 1
PRERENDER = 200  # spectrograms drawn ahead per round: the head of the new queue
WAIT_STEP = 1.0  # how often a thread waiting for a Dask result checks stop and renews its lease

# Score metric per task type that `round.learning_round` supports (its LEARNING_TASK; kept
# here so that polling never imports scikit-learn into the server process).
# Multi-label: the mean UAR of the tags' yes/no models.
METRIC = {"classification": "uar", "binary": "uar", "continuous": "cc", "multilabel": "uar", "events": "uar"}

P, C, R, T = Project.__table__, Clip.__table__, ModelRun.__table__, Task.__table__
IN_POOL = ("queued", "pool")

_TAKE = (
    update(P)
    .where(
        P.c.id == bp("project"),
        or_(P.c.learning_lease_until.is_(None), P.c.learning_lease_until < bp("now")),
    )
    .values(learning_lease_until=bp("until"))
)
_RENEW = (
    update(P)
    .where(P.c.id == bp("project"), P.c.learning_lease_until == bp("token"))
    .values(learning_lease_until=bp("until"))
)
_RELEASE = (
    update(P)
    .where(P.c.id == bp("project"), P.c.learning_lease_until == bp("token"))
    .values(learning_lease_until=None)
)
_HOLDS = select(P.c.id).where(P.c.id == bp("project"), P.c.learning_lease_until == bp("token"))
_SET_RANK = update(C).where(C.c.id == bp("cid")).values(rank=bp("new_rank"))
RANK_BATCH = 2000  # ranks written per transaction
# Seconds between two rank transactions: longer than the longest sleep of SQLite's busy handler
# (100 ms), so a request waiting for the write lock always finds it free at its next try.
RANK_PAUSE = 0.12
# Up to RANK_ALL ordered clips a round writes every rank; above, only the first RANK_HEAD (twice
# retrain.QUEUE_SIZE: the strategy's picks and the passive arm's places among them), below every
# other clip's rank. The rest of the order is random anyway, so the other clips keep theirs:
# a million ranks per round cost minutes of writes for nothing.
RANK_ALL = 20000
RANK_HEAD = 2000
READ_BATCH = 20000  # clip rows fetched at a time when a round reads its project
# Stream mode: a round's verdict on a waiting clip (admitted to the queue, or let pass).
_JUDGE = update(C).where(C.c.id == bp("cid"), C.c.status == "pool").values(status=bp("v_status"))
PASSIVE_ARM = "passive"
# The project's test clips (`engine.model_versions.set_test_clips`): never trained on nor queued by
# a round; each model version is scored on those with a label (`model_runs.test_score`).
TEST_ARM = "test"
MODELS_FOLDER = "models"  # model versions' files, under the data folder: models/project-ID/...
# Model versions whose files are kept per project; older versions keep their row (configuration,
# labels snapshot, scores) but not their files. Each linear-SVM version holds its training rows.
MODEL_FILES_KEPT = 10
_ARM = update(C).where(C.c.id == bp("cid"), C.c.arm.is_(None)).values(arm=PASSIVE_ARM)
_HAS = select(C.c.id).where(
    C.c.project_id == bp("project"), C.c.status == bp("v_status"), C.c.is_gold == false()
)
STREAM_WINDOW_ROUNDS = 2  # a stream round judges 2 × retrain_every arriving clips and admits half


def stream_window(retrain_every: int) -> int:
    """How many arriving clips a stream-mode round judges (001_: a buffer of twice the batch)."""
    return STREAM_WINDOW_ROUNDS * max(1, retrain_every)


@dataclass
class Outcome:
    """What one attempt at a project's round did: `ran`, `busy` (another holds the lease),
    `failed` (an event says why), `stopped` (the service stopped meanwhile)."""

    project_id: int
    state: str
    run_id: int | None = None
    error: str | None = None


@dataclass
class Held:
    """A project's learning lease while a job runs: `token` changes each time it is renewed."""

    project_id: int
    token: datetime


class RoundStoppedError(Exception):
    """The service was stopped while a round was computing."""


class LeaseLostError(Exception):
    """Another process took the project's lease (ours expired): our results are not written."""


def take_lease(
    db: Database, project_id: int, *, now: datetime | None = None, lease: timedelta = LEASE
) -> datetime | None:
    """Take the project's learning lease; its expiry time is the token to renew or release it
    with, None when another process holds it. One conditional UPDATE: atomic on every backend."""
    now = now or utcnow()
    until = now + lease
    with db.write() as session:
        taken = session.connection().execute(_TAKE, {"project": project_id, "now": now, "until": until})
    return until if taken.rowcount == 1 else None


def renew_lease(
    db: Database, project_id: int, token: datetime, *, lease: timedelta = LEASE
) -> datetime | None:
    """Extend our lease (long rounds); the new token, or None when it is no longer ours."""
    until = max(utcnow() + lease, token + timedelta(microseconds=1))
    with db.write() as session:
        done = session.connection().execute(_RENEW, {"project": project_id, "token": token, "until": until})
    return until if done.rowcount == 1 else None


def release_lease(db: Database, project_id: int, token: datetime) -> None:
    """Give our lease back (a lease someone else holds now is left alone)."""
    with db.write() as session:
        session.connection().execute(_RELEASE, {"project": project_id, "token": token})


def training_label(
    seed: str | None,
    status: str,
    is_gold: bool,
    gold: str | None,
    label: str | None,
    expert: str | None = None,
) -> str | None:
    """The label a clip trains the model with, or None: the owner's correction (`expert`, unless
    the clip is a control question), a seed label, a known answer (control clip) or the aggregated
    label of a done (confident) clip; low-agreement clips have none.
    (The request path counts the same clips in `projects.labels_count`.) A clip discarded in
    the review queue has none."""
    if status == "discarded":
        return None
    if expert is not None and not (is_gold and gold is not None):
        return expert
    if seed is not None:
        return seed
    if is_gold and gold is not None:
        return gold
    if status == "done" and label is not None and label != CANT_TELL:
        return label
    return None


def dask_setup(worker: Any) -> None:
    """Dask preload of the local cluster's workers: run at a lower CPU priority than the server,
    and leave Ctrl+C to the server (a terminal signals the whole process group; the worker ends
    with the server anyway, and its KeyboardInterrupt traceback would only alarm)."""
    _lower_priority()
    with contextlib.suppress(ValueError):  # ValueError: not the process's main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _lower_priority(tids: list[int] | None = None) -> None:
    """Nice threads `tids` (default: every thread of this process) to WORKER_NICE and, where the
    OS has it, SCHED_IDLE (on Linux both are per thread; threads and processes started later
    inherit them from the thread that starts them; tid 0 is the calling thread)."""
    idle = getattr(os, "SCHED_IDLE", None)
    if tids is None:
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tids = [0]
    for tid in tids:
        lower_priority(at_least=WORKER_NICE, tid=tid)
        if idle is not None:
            with contextlib.suppress(OSError):  # a thread that just ended, or no permission
                os.sched_setscheduler(tid, idle, os.sched_param(0))


def run_round(kwargs: dict[str, Any], scheduler: str | None = None) -> dict[str, Any]:
    """`learning_round` with the service's inputs; its RoundResult as a plain dict, so that the
    server process unpickles it without importing scikit-learn (seconds holding the GIL)."""
    from dataclasses import asdict

    from listenloop.engine.learning.round import learning_round

    kwargs = dict(kwargs)
    gold = kwargs.pop("gold", None)  # the service's own input: which clips are control questions
    result = asdict(learning_round(**kwargs, scheduler=scheduler, workers=1))
    if gold is not None:
        wanted = set(result["order"][:PRERENDER])  # the queue's head and the control clips, no more
        media = {
            cid: (path, sha, bool(g))
            for cid, path, sha, g in zip(
                kwargs["clip_ids"], kwargs["paths"], kwargs["digests"], gold, strict=True
            )
            if g or cid in wanted
        }
        prerender_spectrograms(kwargs["root"], result["order"], media)
    return result


def prerender_spectrograms(root: Path, order: list[int], media: dict[int, tuple[str, str, bool]]) -> int:
    """Draw the spectrograms of the clips people hear next (the queue's head and the control
    clips) ahead of time, here on the niced worker: otherwise the first annotator to get a clip
    waits for matplotlib on the request path. Returns how many were drawn."""
    from listenloop.engine.live.media import render_spectrogram, spectrogram_path

    wanted = order[:PRERENDER] + [cid for cid, (_, _, gold) in media.items() if gold]
    drawn = 0
    for cid in dict.fromkeys(wanted):
        if cid not in media:
            continue
        path, sha, _ = media[cid]
        dest = root / spectrogram_path(sha)
        if dest.exists():
            continue
        try:
            render_spectrogram(root / path, dest)
        except Exception:  # an undecodable clip: the request path reports it when asked
            log.debug("pre-rendering the spectrogram of clip %s failed", cid, exc_info=True)
            continue
        drawn += 1
    return drawn


def _round_task(kwargs: dict[str, Any], fan_out: str | None) -> dict[str, Any]:
    """The Dask task of a round. With `fan_out` (a scheduler address) it leaves its worker's
    thread pool and extracts features in chunks on that cluster's workers. (The local cluster's
    workers are niced by their preload; an external cluster's priorities are its own.)"""
    if fan_out is not None:
        from distributed import secede

        secede()  # a task waiting for tasks must not hold a worker thread (1-thread workers)
    return run_round(kwargs, fan_out)


class LearningService:
    """Runs learning rounds for the projects of one database in a background thread.

    `scheduler`: the address of a running Dask scheduler (None: a local cluster of
    `local_workers` processes, started on the first round). `inline=True` runs rounds in the
    calling thread without Dask (tests, tiny installs).
    """

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        scheduler: str | None = None,
        *,
        poll_seconds: float = POLL_SECONDS,
        lease: timedelta = LEASE,
        retry_seconds: float = RETRY_SECONDS,
        local_workers: int = LOCAL_WORKERS,
        inline: bool = False,
    ) -> None:
        self.db = db
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.scheduler = scheduler or None
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.retry_seconds = retry_seconds
        self.local_workers = max(1, local_workers)
        self.inline = inline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dry_thread: threading.Thread | None = None
        self._dask_lock = threading.Lock()
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._retry: dict[int, tuple[int, float]] = {}  # project -> (failures, monotonic retry time)
        self._next_retention = 0.0  # monotonic time of the next retention sweep
        self._search: dict[int, Any] = {}  # project -> the Dask future rebuilding its search index
        self._skills: ThreadPoolExecutor | None = None
        self._skills_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the polling thread (a daemon: it never keeps the process alive)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="listenloop-learning", daemon=True)
        self._thread.start()
        # dry runs (minutes of simulation) in a thread of their own: rounds do not wait for them
        self._dry_thread = threading.Thread(target=self._dry_loop, name="listenloop-dry-run", daemon=True)
        self._dry_thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread (a computing round is abandoned and its lease released), close Dask."""
        self._stop.set()
        for thread in (self._thread, self._dry_thread):
            if thread is not None:
                thread.join(timeout)
        self._thread = self._dry_thread = None
        if self._skills is not None:
            self._skills.shutdown(wait=False, cancel_futures=True)
            self._skills = None
        self._close_dask()

    @property
    def running(self) -> bool:
        """The polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        """Poll until stopped; nothing that goes wrong in a poll ends the thread."""
        try:
            if not self.inline:
                # Imported now, at start-up, not under load: an import holds the GIL for ~0.6 s,
                # which the request path on the event loop would wait through.
                import distributed  # noqa: F401
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.run_once()
                except Exception:  # e.g. the database stayed busy: try again at the next poll
                    log.exception("learning service: poll failed")
        finally:
            self._close_dask()

    def _dry_loop(self) -> None:
        """Poll for queued dry runs until stopped; nothing that goes wrong in a poll ends the thread."""
        while not self._stop.wait(self.poll_seconds):
            try:
                self.run_dry_runs_once()
            except Exception:  # e.g. the database stayed busy: try again at the next poll
                log.exception("learning service: dry-run poll failed")

    def run_dry_runs_once(self) -> list[int]:
        """Run every queued dry run, one after the other, here (the service's process, never the
        server's event loop); returns their ids. Progress is written after each simulated
        (fold, run) pair; a failure is stored with the run; a stop puts the run back in the queue."""
        ran: list[int] = []
        while not self._stop.is_set():
            claimed = dry.claim_dry_run(self.db)
            if claimed is None:
                break

            def progress(done: int, total: int, run_id: int = claimed.run_id) -> None:
                if self._stop.is_set():
                    raise RoundStoppedError
                dry.record_progress(self.db, run_id, done, total)

            try:
                inputs = dry.read_inputs(self.db, claimed, self.data_dir)
                result = dry.compute_dry_run(inputs, progress)
            except RoundStoppedError:
                dry.requeue_dry_run(self.db, claimed.run_id)
                break
            except Exception as exc:
                log.warning("dry run %s of project %s failed: %s", claimed.run_id, claimed.project_id, exc)
                dry.finish_dry_run(self.db, claimed.run_id, error=f"{type(exc).__name__}: {exc}")
            else:
                dry.finish_dry_run(self.db, claimed.run_id, result=result)
            ran.append(claimed.run_id)
        return ran

    # -- polling ---------------------------------------------------------------------------

    def run_once(self) -> list[Outcome]:
        """One poll: run the round of every project that is due (what the thread does), and the
        retention sweep of raw answers when it is due (every `lifecycle.RETENTION_EVERY`)."""
        self.sweep_retention()
        outcomes = []
        for project_id in self.due_projects():
            if self._stop.is_set():
                break
            outcomes.append(self.run_project(project_id))
        for project_id in self.skills_due_projects():
            if self._stop.is_set():
                break
            outcomes.append(self.refresh_skills(project_id))
        if not self._stop.is_set():
            try:  # the dashboard's agreement statistics (no lease: they only add an event)
                crowd_agreement.refresh(self.db)
            except Exception:
                log.exception("learning service: agreement refresh failed")
        return outcomes

    def sweep_retention(self, force: bool = False) -> dict[int, int]:
        """Delete the raw answers past their projects' retention (`lifecycle.apply_retention`), at
        most once per `RETENTION_EVERY` unless `force`: `{project_id: answers deleted}`."""
        tick = time.monotonic()
        if not force and tick < self._next_retention:
            return {}
        self._next_retention = tick + lifecycle.RETENTION_EVERY.total_seconds()
        with self.db.write() as session:
            deleted = lifecycle.apply_retention(session)
        for project_id, count in deleted.items():
            log.info("retention: deleted %d raw answers of project %s", count, project_id)
        return deleted

    def skills_due_projects(self) -> list[int]:
        """Projects with classes whose crowd skills (and spammer detection) are due a refresh and
        whose lease is free."""
        now = utcnow()
        query = select(P.c.id, P.c.answers_used, P.c.skills_answers, P.c.learning_lease_until).where(
            P.c.task_type.in_(REFRESH_TASKS), P.c.state != "archived"
        )
        with self.db.read() as session:
            rows = session.connection().execute(query).all()
        tick = time.monotonic()
        return [
            r.id
            for r in rows
            if crowd_skills.skills_due(int(r.answers_used or 0), int(r.skills_answers or 0))
            and (r.learning_lease_until is None or r.learning_lease_until <= now)
            and self._retry.get(-r.id, (0, 0.0))[1] <= tick
        ]

    def _fit_skills(self, project_id: int) -> tuple[Any, Any, Any]:
        """Read the project's answers, detect spammers and fit the skills (no writes)."""
        inputs = crowd_skills.read_skill_inputs(self.db, project_id)
        spam = spammers.read_spam_inputs(self.db, project_id)
        return inputs, spam, crowd_skills.refresh(inputs, spam)

    def _skills_thread(self) -> ThreadPoolExecutor:
        """The thread that fits skills, at SKILLS_NICE (started on first use)."""
        with self._skills_lock:
            if self._skills is None:
                self._skills = ThreadPoolExecutor(
                    1, "listenloop-skills", initializer=lower_priority, initargs=(SKILLS_NICE,)
                )
            return self._skills

    def refresh_skills(self, project_id: int) -> Outcome:
        """Take the lease, detect spammers and fit Dawid-Skene over the project's answers, release,
        store the skills and flag the spammers."""

        def work(held: Held) -> None:
            self._refresh_skills_held(held, release=True)

        return self._under_lease(project_id, work, key=-project_id, failure="skills_failed")

    def _refresh_skills_held(self, held: Held, *, release: bool) -> None:
        """The refresh under a lease this service holds (`release`: give it back before writing).

        It runs here, not as a Dask task: it is numpy work (Dawid-Skene over 105,000 answers
        took 9.6 s and detection 2.6 s at load average 14 on the 2-core machine; a few hundred
        answers take milliseconds), in the service's own process (not the server's), while the
        Dask workers may be busy with a learning round for minutes, behind which a refresh, and
        so spammer detection, would wait. The round's lease is renewed every quarter lease."""
        start = time.perf_counter()
        inputs, spam, found = self._skills_thread().submit(self._fit_skills, held.project_id).result()
        if release:
            release_lease(self.db, held.project_id, held.token)
        crowd_skills.write_skills(
            self.db, inputs, found.skills, time.perf_counter() - start, found.competence, found.noise
        )
        spammers.write_flags(self.db, spam, found.spammers)

    def _skills_meanwhile(self, held: Held) -> None:
        """While a learning round computes: the skills refreshes that are due, the round's own
        project's under the lease the round holds, the others' under their own leases."""
        with self.db.read() as session:
            row = (
                session.connection()
                .execute(
                    select(P.c.task_type, P.c.answers_used, P.c.skills_answers).where(
                        P.c.id == held.project_id
                    )
                )
                .first()
            )
        if (
            row is not None
            and row.task_type in REFRESH_TASKS
            and crowd_skills.skills_due(int(row.answers_used or 0), int(row.skills_answers or 0))
            and self._retry.get(-held.project_id, (0, 0.0))[1] <= time.monotonic()
        ):
            try:
                self._refresh_skills_held(held, release=False)
                self._retry.pop(-held.project_id, None)
            except Exception as exc:
                failures = self._retry.get(-held.project_id, (0, 0.0))[0] + 1
                wait = min(self.retry_seconds * 2 ** (failures - 1), MAX_RETRY_SECONDS)
                self._retry[-held.project_id] = (failures, time.monotonic() + wait)
                log.warning("skills_failed in project %s: %s: %s", held.project_id, type(exc).__name__, exc)
        for project_id in self.skills_due_projects():
            if self._stop.is_set():
                return
            self.refresh_skills(project_id)

    def due_projects(self, now: datetime | None = None) -> list[int]:
        """Projects that need a round now and whose lease is free, oldest first."""
        now = now or utcnow()
        newest = select(R.c.project_id, func.max(R.c.id).label("run_id")).group_by(R.c.project_id).subquery()
        query = (
            select(
                P.c.id,
                P.c.retrain_every,
                P.c.mode,
                P.c.learning_lease_until,
                P.c.clips_count.label("clips"),
                P.c.labels_count.label("labels"),
                R.c.clips.label("run_clips"),
                R.c.labels.label("run_labels"),
            )
            .outerjoin(newest, newest.c.project_id == P.c.id)
            .outerjoin(R, R.c.id == newest.c.run_id)
            .where(P.c.state != "archived")  # read-only: no rounds
            .order_by(P.c.id)
        )
        with self.db.read() as session:
            rows = session.connection().execute(query).all()
        due = []
        tick = time.monotonic()
        for row in rows:
            if not row.clips:
                continue
            if row.learning_lease_until is not None and row.learning_lease_until > now:
                continue
            if self._retry.get(row.id, (0, 0.0))[1] > tick:
                continue
            if (
                row.run_clips is None
                or int(row.labels or 0) - row.run_labels >= max(1, row.retrain_every)
                or row.clips > row.run_clips
                or (row.mode == "stream" and self._stream_starved(row.id))
            ):
                due.append(row.id)
        return due

    def _stream_starved(self, project_id: int) -> bool:
        """Stream mode: the queue ran dry while arrived clips wait to be judged (two indexed lookups)."""
        with self.db.read() as session:
            conn = session.connection()
            queued = conn.execute(_HAS.limit(1), {"project": project_id, "v_status": "queued"}).first()
            waiting = conn.execute(_HAS.limit(1), {"project": project_id, "v_status": "pool"}).first()
        return queued is None and waiting is not None

    # -- one round -------------------------------------------------------------------------

    def run_project(self, project_id: int) -> Outcome:
        """Take the lease, run the project's round, write ranks and a ModelRun, release the lease."""

        def work(held: Held) -> int:
            start = time.perf_counter()
            inputs = self._read(project_id)
            result = self._compute(held, _round_task, (inputs, None), fan_out=True)
            try:
                run_id = self._write(project_id, inputs, result, held.token, time.perf_counter() - start)
            except BaseException:
                self._drop_files([result.get("model_files")])  # no row refers to them
                raise
            self._refresh_search(project_id, inputs)
            return run_id

        return self._under_lease(project_id, work, key=project_id, failure="learning_failed")

    def _refresh_search(self, project_id: int, inputs: dict[str, Any]) -> None:
        """Rebuild the project's search-by-example index next to its feature matrix when the round
        changed the matrix (`features.search_index`): inline, or as a Dask task not waited for (the
        lease is already released; a build still running for the project is left to finish)."""
        from listenloop.engine.learning.round import MATRIX_FOLDER
        from listenloop.features.matrix import stored_name
        from listenloop.features.registry import get_extractor

        root = Path(inputs["cache_dir"]) / MATRIX_FOLDER
        name = stored_name(inputs["matrix"], get_extractor(inputs["feature_set"]).cache_token())
        if self.inline:
            try:
                refresh_index(root, name)
            except Exception:
                log.exception("learning service: the search index of project %s failed", project_id)
            return
        pending = self._search.get(project_id)
        if pending is not None and not pending.done():
            return
        client, _ = self._dask()
        self._search[project_id] = client.submit(refresh_index, root, name, pure=False)

    def _under_lease(
        self, project_id: int, work: Callable[[Held], int | None], *, key: int, failure: str
    ) -> Outcome:
        """Run `work` holding the project's learning lease: `busy` when another holds it; a failure
        is an event (`failure`), releases the lease and backs off (`key` names the back-off)."""
        token = take_lease(self.db, project_id, lease=self.lease)
        if token is None:
            return Outcome(project_id, "busy")
        held = Held(project_id, token)
        try:
            run_id = work(held)
        except RoundStoppedError:
            release_lease(self.db, project_id, held.token)
            return Outcome(project_id, "stopped")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._failed(project_id, held.token, error, key=key, kind=failure)
            return Outcome(project_id, "failed", error=error)
        self._retry.pop(key, None)
        return Outcome(project_id, "ran", run_id=run_id)

    def _read(self, project_id: int) -> dict[str, Any]:
        """The project's learning settings and its clips, as `learning_round` takes them."""
        with self.db.read() as session:
            conn = session.connection()
            project = conn.execute(
                select(
                    P.c.task_type,
                    P.c.classes,
                    P.c.feature_set,
                    P.c.learner,
                    P.c.strategy,
                    P.c.mode,
                    P.c.retrain_every,
                    P.c.passive_share,
                    P.c.settings,
                ).where(P.c.id == project_id)
            ).one()
            queue = queue_of(project.settings)
            query = (
                select(
                    C.c.id,
                    C.c.path,
                    C.c.sha256,
                    C.c.seed_label,
                    C.c.status,
                    C.c.is_gold,
                    C.c.gold_label,
                    C.c.label,
                    C.c.arm,
                    C.c.expert_label,
                )
                .where(C.c.project_id == project_id)
                .order_by(C.c.id)
            )
            iteration = conn.execute(select(func.count()).where(R.c.project_id == project_id)).scalar_one()
            # a strategy that learns across rounds (auto) goes on from the newest run's state
            state = conn.execute(
                select(R.c.strategy_state)
                .where(R.c.project_id == project_id)
                .order_by(R.c.id.desc())
                .limit(1)
            ).scalar()
            names = ("ids", "paths", "digests", "labels", "pool", "waiting", "arm", "random", "gold", "test")
            columns: dict[str, list[Any]] = {k: [] for k in names}
            # streamed in batches: a million-clip project never holds a million row objects at once
            for batch in conn.execution_options(yield_per=READ_BATCH).execute(query).partitions():
                for r in batch:
                    label = training_label(
                        r.seed_label, r.status, r.is_gold, r.gold_label, r.label, r.expert_label
                    )
                    columns["ids"].append(r.id)
                    columns["paths"].append(r.path)
                    columns["digests"].append(r.sha256)
                    columns["labels"].append(label)
                    columns["pool"].append(r.status in IN_POOL and not r.is_gold)
                    columns["waiting"].append(r.status == "pool" and not r.is_gold)
                    columns["arm"].append(r.arm == PASSIVE_ARM)
                    # chosen at random, not by the strategy: seed and control clips, the passive arm
                    columns["random"].append(r.seed_label is not None or r.is_gold or r.arm == PASSIVE_ARM)
                    columns["gold"].append(bool(r.is_gold))
                    columns["test"].append(r.arm == TEST_ARM)
            answers = None
            if queue != DEFAULT_QUEUE:  # the relabel-or-new queue weighs every regular answer so far
                answers = [
                    (int(a.clip_id), str(a.annotator_id), a.answer)
                    for a in conn.execute(
                        select(T.c.clip_id, T.c.annotator_id, T.c.answer).where(
                            T.c.project_id == project_id,
                            T.c.kind == "regular",
                            T.c.answered_at.is_not(None),
                            T.c.answer.is_not(None),
                        )
                    )
                ]
        return {
            "root": self.data_dir,
            "clip_ids": columns["ids"],
            "paths": columns["paths"],
            "digests": columns["digests"],
            "labels": columns["labels"],
            "in_pool": columns["pool"],
            "waiting": columns["waiting"],
            "window": stream_window(project.retrain_every) if project.mode == "stream" else 0,
            "passive_share": float(project.passive_share or 0.0),
            "in_arm": columns["arm"],
            "random_label": columns["random"],
            "task_type": project.task_type,
            "classes": list(project.classes or []) or None,
            "feature_set": project.feature_set,
            "learner": project.learner,
            "strategy": project.strategy,
            "strategy_state": state if project.strategy == "auto" else None,
            "iteration": int(iteration),
            "cache_dir": self.data_dir / "features",
            "matrix": f"project-{project_id}",
            "queue": queue,
            "answers": answers,
            "held_out": columns["test"],
            "model_dir": self.data_dir / MODELS_FOLDER / f"project-{project_id}",
            # the service's own: control clips, whose spectrograms are drawn ahead with the queue's head
            "gold": columns["gold"],
        }

    def _compute(self, held: Held, fn: Any, args: tuple[Any, ...], *, fan_out: bool = False) -> Any:
        """`fn(*args)` in this thread (inline) or as one Dask task, renewing `held` meanwhile.

        With `fan_out`, the last argument is replaced by the address the task may hand work out to.
        """
        if self.inline:
            return fn(*args)
        from distributed import TimeoutError as DaskTimeout

        client, address = self._dask()
        if fan_out:
            args = (*args[:-1], address)
        future = client.submit(fn, *args, pure=False)
        renew_every = max(WAIT_STEP, self.lease.total_seconds() / 4)
        renewed = side = time.monotonic()
        try:
            while True:
                try:
                    return future.result(timeout=WAIT_STEP)
                except (TimeoutError, DaskTimeout):
                    pass
                if self._stop.is_set():
                    raise RoundStoppedError
                if time.monotonic() - side >= self.poll_seconds:  # skills keep up with the answers
                    self._skills_meanwhile(held)
                    side = time.monotonic()
                if time.monotonic() - renewed >= renew_every:
                    new = renew_lease(self.db, held.project_id, held.token, lease=self.lease)
                    if new is None:
                        raise LeaseLostError("the learning lease expired and another process took it")
                    held.token, renewed = new, time.monotonic()
        finally:
            future.cancel()

    def _write(
        self, project_id: int, inputs: dict[str, Any], result: dict[str, Any], token: datetime, seconds: float
    ) -> int:
        """New ranks, the ModelRun, an event and the lease's release, in one transaction.

        Ranks are position − n (negative): clips the round did not order (uploaded meanwhile,
        at a random rank in [0, 1)) keep theirs and come after the ordered ones. Above RANK_ALL
        ordered clips only the head is written, below the lowest rank there is.
        """
        order = result["order"]
        n = len(order)
        first = -float(n)  # every rank written: position - n
        if n > RANK_ALL:
            order = order[:RANK_HEAD]
            first = self._lowest_rank(project_id) - len(order)
        metric = METRIC[inputs["task_type"]]
        labels = sum(label is not None for label in inputs["labels"])
        # Ranks in short transactions, each under our lease: the write lock is held for one batch
        # at a time (a million ranks in one transaction held it for many seconds while requests
        # waited), and a pause between batches lets waiting writers in.
        for start in range(0, len(order), RANK_BATCH):
            if start:
                time.sleep(RANK_PAUSE)
            batch = order[start : start + RANK_BATCH]
            ranks = [{"cid": cid, "new_rank": first + start + i} for i, cid in enumerate(batch)]
            with self.db.write() as session:
                conn = session.connection()
                if conn.execute(_HOLDS, {"project": project_id, "token": token}).first() is None:
                    raise LeaseLostError("the learning lease expired and another process took it")
                conn.execute(_SET_RANK, ranks)
        with self.db.write() as session:
            conn = session.connection()
            if conn.execute(_RELEASE, {"project": project_id, "token": token}).rowcount != 1:
                raise LeaseLostError("the learning lease expired and another process took it")
            if result.get("passive"):
                conn.execute(_ARM, [{"cid": cid} for cid in result["passive"]])
            for status, ids in (("queued", result.get("admitted")), ("passed", result.get("passed"))):
                if ids:
                    conn.execute(_JUDGE, [{"cid": cid, "v_status": status} for cid in ids])
            run = ModelRun(
                project_id=project_id,
                labels=labels,
                score=result["score"],
                metric=metric,
                strategy="diverse" if result["cold_start"] else inputs["strategy"],
                cold_start=result["cold_start"],
                clips=len(inputs["clip_ids"]),
                skipped=result["skipped"],
                seconds=round(seconds, 3),
                created_at=utcnow(),
                map=result.get("map"),
                passive_score=result.get("passive_score"),
                passive_labels=result.get("passive_labels"),
                heldout_score=result.get("heldout_score"),
                heldout_size=result.get("heldout_size"),
                pseudo_labels=len(result.get("pseudo_labelled") or []),
                strategy_state=result.get("strategy_state"),
                config=result.get("config"),
                labels_snapshot=result.get("labels_snapshot"),
                test_score=result.get("test_score"),
                test_size=result.get("test_size"),
            )
            retired: list[str | None] = []
            if result.get("model_files"):
                run.model_files = result["model_files"]
                run.version = (self._newest_version(conn, project_id) or 0) + 1
                retired = self._retire_files(conn, project_id)
            session.add(run)
            session.flush()
            session.add(
                Event(
                    project_id=project_id,
                    kind="model_trained",
                    data={
                        "run": run.id,
                        "labels": labels,
                        "score": result["score"],
                        "metric": metric,
                        "cold_start": result["cold_start"],
                        "ranked": n,
                        "skipped": result["skipped"],
                        "pseudo_labels": run.pseudo_labels,
                        "seconds": run.seconds,
                        "version": run.version,
                    },
                )
            )
        self._drop_files(retired)
        return run.id

    @staticmethod
    def _newest_version(conn: Any, project_id: int) -> int | None:
        """The project's newest model version number (None: none yet)."""
        return conn.execute(select(func.max(R.c.version)).where(R.c.project_id == project_id)).scalar()

    @staticmethod
    def _retire_files(conn: Any, project_id: int) -> list[str | None]:
        """Forget the files of the versions beyond the newest MODEL_FILES_KEPT - 1 (the new one
        makes it MODEL_FILES_KEPT); their folders, to delete once the transaction commits."""
        old = conn.execute(
            select(R.c.id, R.c.model_files)
            .where(R.c.project_id == project_id, R.c.model_files.is_not(None))
            .order_by(R.c.version.desc())
            .offset(MODEL_FILES_KEPT - 1)
        ).all()
        if old:
            conn.execute(update(R).where(R.c.id.in_([r.id for r in old])).values(model_files=None))
        return [r.model_files for r in old]

    def _drop_files(self, folders: list[str | None]) -> None:
        """Delete model folders (relative to the data folder) that no row refers to any more."""
        import shutil

        for rel in folders:
            if not rel:
                continue
            path = (self.data_dir / rel).resolve()
            if self.data_dir / MODELS_FOLDER in path.parents:  # never anything outside models/
                shutil.rmtree(path, ignore_errors=True)

    def _lowest_rank(self, project_id: int) -> float:
        """The lowest rank of the project's waiting clips, at most 0 (one index seek per status)."""
        lowest = 0.0
        with self.db.read() as session:
            conn = session.connection()
            for status in IN_POOL:
                query = select(func.min(C.c.rank)).where(
                    C.c.project_id == project_id, C.c.status == status, C.c.is_gold == false()
                )
                value = conn.execute(query).scalar()
                if value is not None:
                    lowest = min(lowest, float(value))
        return lowest

    def _failed(self, project_id: int, token: datetime, error: str, *, key: int, kind: str) -> None:
        """Log the failure as an event, release the lease, back off before the next try.

        `key` names the back-off (the project id for rounds, minus it for skill refreshes).
        """
        failures = self._retry.get(key, (0, 0.0))[0] + 1
        wait = min(self.retry_seconds * 2 ** (failures - 1), MAX_RETRY_SECONDS)
        self._retry[key] = (failures, time.monotonic() + wait)
        log.warning("%s in project %s: %s", kind, project_id, error)
        try:
            with self.db.write() as session:
                session.connection().execute(_RELEASE, {"project": project_id, "token": token})
                data = {"error": error[:2000], "failures": failures, "retry_in_s": round(wait, 1)}
                session.add(Event(project_id=project_id, kind=kind, data=data))
        except Exception:  # the database itself failed: the lease expires on its own
            log.exception("learning service: cannot record the failure of project %s", project_id)

    # -- Dask ------------------------------------------------------------------------------

    def _dask(self) -> tuple[Client, str | None]:
        """The client (started on first use) and the address a round fans feature work out to."""
        with self._dask_lock:
            if self._client is None:
                _quiet_dask()
                from distributed import Client

                if self.scheduler is not None:
                    self._client = Client(self.scheduler, timeout="10s", set_as_default=False)
                else:
                    self._cluster = _local_cluster(self.local_workers)
                    self._client = Client(self._cluster, set_as_default=False)
            if self.scheduler is not None:
                return self._client, self.scheduler
            fan_out = self._cluster.scheduler_address if self.local_workers > 1 and self._cluster else None
            return self._client, fan_out

    def _close_dask(self) -> None:
        """Close the client and the local cluster (its worker processes end)."""
        with self._dask_lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        for thing in (client, cluster):
            if thing is None:
                continue
            try:
                thing.close()
            except Exception:  # closing at shutdown: nothing else to do
                log.debug("learning service: closing Dask failed", exc_info=True)


def refresh_index(root: Path, name: str) -> bool:
    """`features.search_index.refresh_index` (imported where it runs: a Dask worker)."""
    from listenloop.features.search_index import refresh_index as refresh

    return refresh(root, name)


def _quiet_dask() -> None:
    """Dask logs every worker start, stop and heartbeat at INFO: keep errors only."""
    for name in ("distributed", "dask", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _local_cluster(workers: int) -> LocalCluster:
    """Extraction's local cluster (single-threaded workers, quiet), started at a low priority.

    It is built in a thread of its own that first lowers itself (`_lower_priority([0])`): the
    cluster's event-loop thread and the worker processes it spawns inherit nice 19 and
    SCHED_IDLE from birth. Niced only by their preload, the workers spent their first second or
    two (spawning, importing listenloop, scipy, distributed) at the server's priority, and a
    project's first round, which starts the cluster, fell on the start of a load: the first
    second's p99 of `next` doubled (BENCHMARKS.md, issue 17). The preload still nices them, for
    a worker the nanny restarts.
    """
    from concurrent.futures import ThreadPoolExecutor

    def build() -> LocalCluster:
        _lower_priority([0])
        from listenloop.features.extraction import ONE_THREAD_ENV, local_cluster

        return local_cluster(workers, ONE_THREAD_ENV, preload=[__name__])

    with ThreadPoolExecutor(1, thread_name_prefix="listenloop-dask-start") as starter:
        return starter.submit(build).result()
