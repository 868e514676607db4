"""The background learning service on a real SQLite database with the FSDD fixture clips:
rounds re-rank the queue and record model runs, leases keep rounds apart, failures are logged,
cold start orders for diversity, and the app starts and stops the service without leftovers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from sqlalchemy import select, update

from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.config import ProjectConfig
from listenloop.engine.dashboard import dashboard_summary
from listenloop.engine.learning.round import LEARNING_TASK, learning_round
from listenloop.engine.learning.service import (
    METRIC,
    LearningService,
    release_lease,
    take_lease,
    training_label,
)
from listenloop.engine.live.media import spectrogram_path
from listenloop.engine.projects import create_project, project_status
from listenloop.engine.uploads import store_clips, unpack_archive
from listenloop.store.database import Database
from listenloop.store.models import Clip, Event, ModelRun, Project, utcnow

DIGITS = [str(d) for d in range(10)]


def new_project(db: Database, fsdd_dir: Path, data: Path, seeds: int, **config: object) -> int:
    """A project of the 100 fixture clips, `seeds` of them (spread over the digits) with labels."""
    table = pd.read_csv(fsdd_dir / "labels.csv", dtype=str)
    zpath = data.parent / f"clips-{random.randrange(1 << 30)}.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in table["file"]:
            z.write(fsdd_dir / name, Path(name).name)
    table["name"] = table["file"].map(lambda f: Path(f).name)
    # labels for the first seeds // 10 clips of each digit: every class has examples
    labelled = table.groupby("label", group_keys=False).head(seeds // 10) if seeds else table.iloc[:0]
    unpacked = unpack_archive(zpath, data.parent)
    try:
        with db.write() as s:
            owner = s.scalar(select(Project.owner_id).limit(1)) or create_user(s, "owner", "x", "owner").id
            body = {"name": "digits", "task_type": "classification", "classes": DIGITS}
            body |= {"feature_set": "mfcc", "learner": "logreg", "retrain_every": 10} | config
            project = create_project(s, Principal(owner, "owner", "owner"), ProjectConfig(**body))
            labels = dict(zip(labelled["name"], labelled["label"], strict=True))
            out = store_clips(s, project, unpacked, data, labels=labels, rng=random.Random(0))
            assert out["added"] == 100 and not out["rejected"]
            return project.id
    finally:
        unpacked.cleanup()


@pytest.fixture
def world(tmp_path: Path, fsdd_dir: Path) -> Iterator[tuple[Database, Path, int, LearningService]]:
    """A database with a 100-clip digit project, 30 seed labels, and an inline service."""
    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    pid = new_project(db, fsdd_dir, data, seeds=30)
    service = LearningService(db, data, inline=True)
    yield db, data, pid, service
    service.stop()
    db.dispose()


def queue(db: Database, pid: int) -> list[int]:
    """Ids of the clips waiting for answers, in queue order."""
    with db.read() as s:
        rows = s.execute(
            select(Clip.id)
            .where(Clip.project_id == pid, Clip.status == "queued", Clip.is_gold.is_(False))
            .order_by(Clip.rank, Clip.id)
        )
        return [r.id for r in rows]


def runs(db: Database, pid: int) -> list[ModelRun]:
    with db.read() as s:
        return list(s.scalars(select(ModelRun).where(ModelRun.project_id == pid).order_by(ModelRun.id)))


def events(db: Database, pid: int, kind: str) -> list[Event]:
    with db.read() as s:
        return list(s.scalars(select(Event).where(Event.project_id == pid, Event.kind == kind)))


def lease_of(db: Database, pid: int):
    with db.read() as s:
        return s.scalar(select(Project.learning_lease_until).where(Project.id == pid))


def expected(service: LearningService, pid: int):
    """What learning_round gives for the project's current rows (it is deterministic)."""
    inputs = service._read(pid)
    inputs.pop("gold")  # the service's own: control clips whose spectrograms it draws ahead
    return learning_round(**inputs, workers=1)


def test_task_types_agree_with_the_learning_round() -> None:
    assert set(METRIC) == set(LEARNING_TASK)
    assert all((METRIC[t] == "cc") == (task == "regression") for t, task in LEARNING_TASK.items())


def test_training_label_rule() -> None:
    assert training_label("3", "done", False, None, "3") == "3"
    assert training_label(None, "queued", True, "4", None) == "4"  # a control clip's known answer
    assert training_label(None, "done", False, None, "5") == "5"
    assert training_label(None, "low_agreement", False, None, "5") is None
    assert training_label(None, "queued", False, None, None) is None


def test_round_reranks_the_queue_and_records_a_run(world) -> None:
    db, data, pid, service = world
    assert service.due_projects() == [pid]  # never ranked, has clips
    with db.read() as s:
        project = s.get(Project, pid)
    assert (project.clips_count, project.labels_count) == (100, 30)  # kept by store_clips
    want = expected(service, pid)
    assert not want.cold_start and want.labels == 30
    outcomes = service.run_once()
    assert [(o.project_id, o.state) for o in outcomes] == [(pid, "ran")]
    assert queue(db, pid) == want.order  # the strategy's order, best first
    # the queue's head has its spectrograms drawn ahead (70 queued clips < PRERENDER)
    with db.read() as s:
        shas = [s.get(Clip, cid).sha256 for cid in want.order]
    assert all((data / spectrogram_path(sha)).is_file() for sha in shas)
    (run,) = runs(db, pid)
    assert run.labels == 30 and run.clips == 100 and run.metric == "uar" and run.strategy == "auto"
    assert not run.cold_start and run.skipped == 0 and run.score is not None and 0.0 <= run.score <= 1.0
    # the dashboard's map: every clip of the round (100 < MAP_POINTS), predicted labels from the model
    assert run.map["method"] == "pca" and len(run.map["explained"]) == 2
    points = run.map["points"]
    assert sorted(p[0] for p in points) == sorted(want.order + [p[0] for p in points if p[4] is not None])
    assert {p[3] for p in points} <= set(DIGITS) and sum(p[4] is not None for p in points) == 30
    with db.read() as s:
        status = project_status(s, s.get(Project, pid))
    (score,) = status["model_scores"]
    assert score["labels"] == 30 and score["score"] == run.score and score["metric"] == "uar"
    assert score["at"].endswith("Z")
    assert len(events(db, pid, "model_trained")) == 1 and lease_of(db, pid) is None
    assert service.due_projects() == []  # nothing new since

    # retrain_every=10 new confident labels make it due again; low-agreement clips do not count
    ids = queue(db, pid)
    # (as the request path does: it counts each clip that becomes done in labels_count)
    with db.write() as s:
        s.execute(update(Clip).where(Clip.id.in_(ids[:9])).values(status="done", label="1"))
        s.execute(update(Clip).where(Clip.id.in_(ids[9:20])).values(status="low_agreement", label="2"))
        s.execute(update(Project).where(Project.id == pid).values(labels_count=Project.labels_count + 9))
    assert service.due_projects() == []
    with db.write() as s:
        s.execute(update(Clip).where(Clip.id == ids[20]).values(status="done", label="3"))
        s.execute(update(Project).where(Project.id == pid).values(labels_count=Project.labels_count + 1))
    assert service.due_projects() == [pid]
    service.run_once()
    assert [r.labels for r in runs(db, pid)] == [30, 40]
    assert set(queue(db, pid)) == set(ids[21:])


def test_new_clips_make_a_round_due_and_rank_after(world, fsdd_dir: Path) -> None:
    db, _, pid, service = world
    service.run_once()
    with db.write() as s:
        s.add(
            Clip(
                project_id=pid,
                file_name="late.wav",
                sha256="f" * 64,
                path="audio/late.wav",
                duration=1.0,
                sample_rate=8000,
                status="queued",
                rank=0.5,
            )
        )
        s.execute(
            update(Project).where(Project.id == pid).values(clips_count=Project.clips_count + 1)
        )  # as store_clips
    late = max(queue(db, pid))
    assert queue(db, pid)[-1] == late  # uploaded after the round: after every ranked clip
    assert service.due_projects() == [pid]  # new clips since the last round


def test_the_lease_keeps_rounds_apart(world) -> None:
    db, _, pid, service = world
    token = take_lease(db, pid)
    assert token is not None and take_lease(db, pid) is None  # one holder at a time
    assert service.due_projects() == []  # a held lease: not due here
    assert service.run_project(pid).state == "busy" and runs(db, pid) == []
    # a lease left by a killed process expires
    later = utcnow() + timedelta(minutes=11)
    stolen = take_lease(db, pid, now=later)
    assert stolen is not None
    release_lease(db, pid, token)  # no longer ours: left alone
    assert lease_of(db, pid) == stolen
    release_lease(db, pid, stolen)
    assert lease_of(db, pid) is None
    assert service.run_project(pid).state == "ran"


def test_a_failed_round_is_logged_and_releases_the_lease(world) -> None:
    db, data, pid, service = world
    with db.write() as s:
        s.execute(update(Project).where(Project.id == pid).values(feature_set="no-such-set"))
    (outcome,) = service.run_once()
    assert outcome.state == "failed" and "no-such-set" in outcome.error
    (event,) = events(db, pid, "learning_failed")
    assert "no-such-set" in event.data["error"]
    assert lease_of(db, pid) is None and runs(db, pid) == []
    assert service.due_projects() == []  # backing off: no failure loop
    assert service.run_once() == []
    with db.read() as s:
        shown = project_status(s, s.get(Project, pid))["learning_error"]
    assert shown["kind"] == "learning_failed" and "no-such-set" in shown["error"] and shown["retry_in_s"] > 0

    # a missing audio file is not a failure: that clip is skipped and goes to the end
    with db.write() as s:
        s.execute(update(Project).where(Project.id == pid).values(feature_set="mfcc"))
    gone = queue(db, pid)[0]
    with db.read() as s:
        (data / s.get(Clip, gone).path).unlink()
    assert service.run_project(pid).state == "ran"
    (run,) = runs(db, pid)
    assert run.skipped == 1 and queue(db, pid)[-1] == gone
    with db.read() as s:
        assert project_status(s, s.get(Project, pid))["learning_error"] is None  # a success since


def test_cold_start_orders_for_diversity(tmp_path: Path, fsdd_dir: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    pid = new_project(db, fsdd_dir, data, seeds=0)
    service = LearningService(db, data, inline=True)
    want = expected(service, pid)
    assert want.cold_start
    assert [o.state for o in service.run_once()] == ["ran"]
    assert queue(db, pid) == want.order
    (run,) = runs(db, pid)
    assert run.cold_start and run.score is None and run.labels == 0 and run.strategy == "diverse"
    db.dispose()


def test_multilabel_projects_get_rounds_ranked_tag_by_tag(tmp_path: Path, fsdd_dir: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    pid = new_project(db, fsdd_dir, data, seeds=0, task_type="multilabel", classes=["low", "even"])
    with db.write() as s:  # 30 clips with their digit's tags as seed labels (as an upload leaves them)
        for clip in s.scalars(select(Clip).where(Clip.project_id == pid).order_by(Clip.id).limit(30)):
            digit = int(Path(clip.file_name).name[0])
            clip.seed_label = clip.label = "|".join(
                t for t, on in (("low", digit < 5), ("even", digit % 2 == 0)) if on
            )
            clip.status = "done"
    service = LearningService(db, data, inline=True)
    assert [o.state for o in service.run_once()] == ["ran"]
    (run,) = runs(db, pid)
    assert not run.cold_start and run.labels == 30 and run.score is not None and run.metric == "uar"
    assert len(queue(db, pid)) == 70 and events(db, pid, "learning_skipped") == []
    db.dispose()


def test_the_app_runs_the_service_in_its_own_process_on_a_local_cluster(
    tmp_path: Path, fsdd_dir: Path
) -> None:
    from fastapi.testclient import TestClient

    from listenloop.engine.learning.process import LearningProcess
    from listenloop.server import create_app

    data = tmp_path / "data"
    app = create_app(f"sqlite:///{tmp_path / 'a.db'}", data)
    pid = new_project(app.state.db, fsdd_dir, data, seeds=30)
    service = app.state.learning
    assert isinstance(service, LearningProcess)
    service.poll_seconds = 0.1
    with TestClient(app) as client:
        assert service.running and service.pid != os.getpid()
        # ~25 s on an idle 2-core machine; a loaded one (CI beside other jobs) may take minutes
        deadline = time.monotonic() + 300
        while not runs(app.state.db, pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        child = psutil.Process(service.pid)
        workers = [p for p in child.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 1 and workers[0].nice() >= 10  # one niced Dask worker process
        assert os.sched_getscheduler(workers[0].pid) == os.SCHED_IDLE  # it yields to the server at once
        assert child.nice() == os.nice(0)  # not niced past the server: it holds the write lock
        assert client.get("/api/v1/projects/1/status").status_code == 401
    assert not service.running
    done = runs(app.state.db, pid)
    assert len(done) == 1, f"the learning process finished {len(done)} rounds in 300 s (expected 1)"
    (run,) = done
    assert run.score is not None and not run.cold_start
    _, alive = psutil.wait_procs([child, *workers], timeout=10)
    assert not alive  # they ended with the app
    assert (
        create_app(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "d2", learning=False).state.learning is None
    )


def test_the_learning_process_ends_with_its_parent_even_on_kill_9(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from listenloop.engine.learning.process import LearningProcess\n"
        "from listenloop.store.database import Database\n"
        "if __name__ == '__main__':\n"
        f"    Database('sqlite:///{tmp_path / 'k.db'}').upgrade()\n"
        f"    p = LearningProcess('sqlite:///{tmp_path / 'k.db'}', '{tmp_path / 'd'}', poll_seconds=0.1)\n"
        "    p.start(); print(p.pid, flush=True); time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert child.is_running()
    finally:
        parent.kill()  # SIGKILL: no clean-up code runs in the parent
        parent.wait()
    _, alive = psutil.wait_procs([child], timeout=10)
    assert not alive


def test_stop_returns_when_a_group_sigterm_killed_the_child_first(tmp_path: Path) -> None:
    """systemd's stop (or `kill -- -PGID`) reaches the child too; the parent must still end."""
    import signal
    import threading

    from listenloop.engine.learning.process import LearningProcess

    url = f"sqlite:///{tmp_path / 'g.db'}"
    Database(url).upgrade()
    process = LearningProcess(url, tmp_path / "d", poll_seconds=0.1)
    process.start()
    child = psutil.Process(process.pid)
    deadline = time.monotonic() + 60
    while child.num_threads() < 2 and time.monotonic() < deadline:  # the service's thread runs ...
        time.sleep(0.1)
    time.sleep(3)  # ... and the child's main thread waits for the word to stop
    os.kill(child.pid, signal.SIGTERM)
    stopper = threading.Thread(target=process.stop, daemon=True)
    stopper.start()
    stopper.join(15)
    assert not stopper.is_alive(), "stop() hung on the dead child"
    assert not process.running and process.restarts == 0  # a stopped child is not started again


def statuses(db: Database, pid: int) -> dict[int, str]:
    with db.read() as s:
        return dict(s.execute(select(Clip.id, Clip.status).where(Clip.project_id == pid)).all())


def test_stream_mode_judges_arrivals_in_windows(tmp_path: Path, fsdd_dir: Path) -> None:
    """001_'s stream-based AL live: a round judges the next 2 × retrain_every arrivals, queues the
    more informative half, lets the rest pass; people only ever get queued clips."""
    from listenloop.engine.live.tasks import next_task

    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    pid = new_project(db, fsdd_dir, data, seeds=30, mode="stream", retrain_every=10)
    service = LearningService(db, data, inline=True)
    arrived = sorted(cid for cid, st in statuses(db, pid).items() if st == "pool")
    assert len(arrived) == 70  # nothing is served before a round judged it
    with db.write() as s:
        people = create_user(s, "ann", "x")
        ann = Principal(people.id, "ann", "annotator")
        assert next_task(s, pid, ann) is None
    assert [o.state for o in service.run_once()] == ["ran"]
    now = statuses(db, pid)
    window = arrived[:20]
    assert sorted(now[c] for c in window) == ["passed"] * 10 + ["queued"] * 10
    assert all(now[c] == "pool" for c in arrived[20:])
    with db.write() as s:
        task = next_task(s, pid, ann)
    assert now[task.clip_id] == "queued"
    assert service.due_projects() == []
    # the queue runs dry without new labels (all low agreement): the next window is judged
    with db.write() as s:
        s.execute(
            update(Clip).where(Clip.project_id == pid, Clip.status == "queued").values(status="low_agreement")
        )
    assert service.due_projects() == [pid]
    service.run_once()
    now = statuses(db, pid)
    assert sorted(now[c] for c in arrived[20:40]) == ["passed"] * 10 + ["queued"] * 10
    with db.read() as s:
        status = project_status(s, s.get(Project, pid))
    assert status["clips_by_status"]["passed"] == 20 and status["clips_by_status"]["pool"] == 30
    service.stop()
    db.dispose()


def test_interleave_passive_gives_every_kth_place_to_a_random_clip() -> None:
    import numpy as np

    from listenloop.engine.learning.round import interleave_passive

    order = np.arange(40)
    in_arm = np.zeros(40, dtype=bool)
    in_arm[[35, 36]] = True  # drawn by an earlier round: they keep their arm
    new_order, drawn = interleave_passive(order, in_arm, 0.25, np.random.default_rng(0))
    assert sorted(new_order.tolist()) == list(range(40))  # a permutation of the pool
    arm = set(drawn.tolist()) | {35, 36}
    assert len(arm) == 10 and not ({35, 36} & set(drawn.tolist()))  # 25 % of 40, two already there
    assert {int(new_order[i]) for i in range(3, 40, 4)} == arm  # every 4th place
    rest = [int(r) for r in new_order if r not in arm]
    assert rest == sorted(rest)  # the strategy's order kept between them
    same, none = interleave_passive(order, np.zeros(40, dtype=bool), 0.0, np.random.default_rng(0))
    assert same.tolist() == order.tolist() and none.size == 0


def test_the_passive_arm_and_its_score(world) -> None:
    """A round draws 10 % of the queue at random and marks those clips. Once they are labelled,
    the model (every label) and the passive arm (the randomly chosen labels: seeds and arm) are
    scored on the same held-out clips, the arm's labelled ones, which neither fit saw."""
    db, _, pid, service = world
    assert [o.state for o in service.run_once()] == ["ran"]
    with db.read() as s:
        arm = s.scalars(select(Clip.id).where(Clip.project_id == pid, Clip.arm == "passive")).all()
        (run,) = s.scalars(select(ModelRun).where(ModelRun.project_id == pid)).all()
    assert len(arm) == 7  # ceil(10 % of the 70 queued clips)
    order = queue(db, pid)
    assert {order[i] for i in range(9, 70, 10)} == set(arm)
    # no arm clip is labelled yet: nothing held out to compare on (the seeds were not drawn at random
    # from the pool, and cross-validating each arm on its own labels compared different clips)
    assert run.passive_labels == 30 and run.heldout_size is None and run.passive_score is None
    with db.write() as s:  # the crowd finishes the arm's clips (FSDD names start with the digit)
        for clip in s.scalars(select(Clip).where(Clip.id.in_(arm))):
            clip.status, clip.label = "done", clip.file_name[0]
    assert service.run_project(pid).state == "ran"
    with db.read() as s:
        run = s.scalars(
            select(ModelRun).where(ModelRun.project_id == pid).order_by(ModelRun.id.desc())
        ).first()
        status = project_status(s, s.get(Project, pid))
        summary = dashboard_summary(s, s.get(Project, pid))
    assert run.labels == 37 and run.passive_labels == 37 and run.heldout_size == 7
    assert 0 <= run.heldout_score <= 1 and 0 <= run.passive_score <= 1
    score = status["model_scores"][-1]
    assert (score["heldout_size"], score["heldout_score"], score["passive_score"]) == (
        7,
        run.heldout_score,
        run.passive_score,
    )
    passive = summary["passive"]
    assert passive["heldout_size"] == 7 and passive["model_score"] == run.heldout_score
    assert passive["model_labels"] == 37 and passive["passive_score"] == run.passive_score


def test_self_training_trains_on_pseudo_labels_that_never_become_labels(tmp_path: Path) -> None:
    """self_training's confident predictions join the round's fit (it ran as least confidence);
    they are counted on the run, marked on the map, and stored or exported as labels nowhere.
    (Low and high tones: a forest is sure of clips of both classes after ten seeds of each.)"""
    from api_support import tone_wav, zip_of

    db = Database(f"sqlite:///{tmp_path / 'st.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    names = {
        f"{kind}-{i:02d}.wav": (kind, freq)
        for kind, freq in (("low", 300), ("high", 2500))
        for i in range(20)
    }
    zpath = tmp_path / "tones.zip"
    zpath.write_bytes(zip_of({n: tone_wav(freq, i) for i, (n, (_, freq)) in enumerate(names.items())}))
    seeds = {n: kind for n, (kind, _) in names.items() if int(n[-6:-4]) < 10}
    unpacked = unpack_archive(zpath, tmp_path)
    with db.write() as s:
        owner = create_user(s, "owner", "x", "owner").id
        body = {"name": "tones", "task_type": "binary", "classes": ["low", "high"], "feature_set": "logmel"}
        body |= {"learner": "rf", "strategy": "self_training", "passive_share": 0.0}
        project = create_project(s, Principal(owner, "owner", "owner"), ProjectConfig(**body))
        store_clips(s, project, unpacked, data, labels=seeds, rng=random.Random(0))
        pid = project.id
    unpacked.cleanup()
    service = LearningService(db, data, inline=True)
    try:
        assert [o.state for o in service.run_once()] == ["ran"]
        with db.read() as s:
            (run,) = s.scalars(select(ModelRun).where(ModelRun.project_id == pid)).all()
            project = s.get(Project, pid)
            clips = s.scalars(select(Clip).where(Clip.project_id == pid)).all()
            (event,) = s.scalars(select(Event).where(Event.project_id == pid, Event.kind == "model_trained"))
        assert run.strategy == "self_training" and run.pseudo_labels and run.pseudo_labels >= 2
        assert event.data["pseudo_labels"] == run.pseudo_labels
        marked = [p for p in run.map["points"] if p[5]]
        assert len(marked) == run.pseudo_labels  # 40 clips: the whole pool is on the map
        assert all(p[4] is None for p in marked)  # pseudo-labelled clips have no training label
        kind = {c.id: names[c.file_name][0] for c in clips}
        assert all(p[3] == kind[p[0]] for p in marked)  # what the model was sure of
        assert project.labels_count == 20
        unlabelled = [c for c in clips if c.seed_label is None]
        assert {c.status for c in unlabelled} == {"queued"} and {c.label for c in unlabelled} == {None}
    finally:
        service.stop()
        db.dispose()


def test_ranks_are_written_in_short_transactions(world, monkeypatch) -> None:
    """No transaction updates more than RANK_BATCH ranks (one held SQLite's write lock for all of
    them), and the queue comes out in the round's order all the same."""
    from sqlalchemy import event

    from listenloop.engine.learning import service as learning_service

    db, _, pid, service = world
    monkeypatch.setattr(learning_service, "RANK_BATCH", 16)
    monkeypatch.setattr(learning_service, "RANK_PAUSE", 0.0)
    want = expected(service, pid)
    sizes: list[int] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE CLIPS SET RANK"):
            sizes.append(len(parameters) if executemany else 1)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert [o.state for o in service.run_once()] == ["ran"]
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert queue(db, pid) == want.order and len(want.order) == 70
    assert sum(sizes) == 70 and max(sizes) <= 16 and len(sizes) == 5


def test_a_round_whose_lease_is_taken_mid_write_stops_writing(world, monkeypatch) -> None:
    """Each rank transaction checks the lease: once another process holds it, the round fails."""
    from listenloop.engine.learning import service as learning_service

    db, _, pid, service = world
    monkeypatch.setattr(learning_service, "RANK_BATCH", 16)
    monkeypatch.setattr(learning_service, "RANK_PAUSE", 0.0)
    calls = {"n": 0}
    real = learning_service.time.sleep

    def steal(seconds: float) -> None:  # between the first and second batch, another takes the lease
        calls["n"] += 1
        if calls["n"] == 1:
            with db.write() as s:
                s.execute(update(Project).where(Project.id == pid).values(learning_lease_until=utcnow()))
        real(seconds)

    monkeypatch.setattr(learning_service.time, "sleep", steal)
    (outcome,) = service.run_once()
    assert outcome.state == "failed" and "LeaseLostError" in (outcome.error or "")
    assert runs(db, pid) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_projects_round_runs_on_an_existing_dask_cluster(
    database_url: str, tmp_path: Path, fsdd_dir: Path
) -> None:
    """`--scheduler ADDRESS`: the round (features and scoring) runs on a cluster whose scheduler and
    worker are processes of their own, started with Dask's own command-line programs."""
    import json

    from distributed import Client

    started = []
    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    local = ("--host", "127.0.0.1", "--no-dashboard")
    scheduler = [
        "distributed.cli.dask_scheduler",
        *local,
        "--port",
        "0",
        "--scheduler-file",
        str(scheduler_file),
    ]
    started.append(subprocess.Popen([sys.executable, "-m", *scheduler], **quiet))
    db = Database(database_url)
    service = None
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = ["distributed.cli.dask_worker", address, *local, "--nthreads", "1", "--no-nanny"]
        started.append(subprocess.Popen([sys.executable, "-m", *worker], **quiet))
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(1, timeout=180)
            db.upgrade()
            data = tmp_path / "data"
            data.mkdir()
            pid = new_project(db, fsdd_dir, data, seeds=30)
            service = LearningService(db, data, scheduler=address)
            want = expected(LearningService(db, data, inline=True), pid)
            outcome = service.run_project(pid)
            assert outcome.state == "ran", outcome.error
            assert queue(db, pid) == want.order
            # the round ran in the worker's process (this test never imports the round's module there)
            ran_there = client.run(lambda: "listenloop.engine.learning.round" in sys.modules)
            assert list(ran_there.values()) == [True]
            (run,) = runs(db, pid)
            assert run.score is not None and not run.cold_start
    finally:
        if service is not None:
            service.stop()
        db.dispose()
        for proc in reversed(started):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_big_pool_gets_only_its_queues_head_ranked_ahead_of_every_clip(world, monkeypatch) -> None:
    """Above RANK_ALL ordered clips a round writes the head's ranks only, below all others."""
    from sqlalchemy import event

    from listenloop.engine.learning import service as learning_service

    db, _, pid, service = world
    service.run_once()  # every rank written
    before = queue(db, pid)
    with db.write() as s:  # 10 new labels: due again
        s.execute(update(Clip).where(Clip.id.in_(before[:10])).values(status="done", label="1"))
        s.execute(update(Project).where(Project.id == pid).values(labels_count=Project.labels_count + 10))
    monkeypatch.setattr(learning_service, "RANK_ALL", 20)
    monkeypatch.setattr(learning_service, "RANK_HEAD", 12)
    monkeypatch.setattr(learning_service, "RANK_BATCH", 5)
    monkeypatch.setattr(learning_service, "RANK_PAUSE", 0.0)
    want = expected(service, pid)
    sizes: list[int] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE CLIPS SET RANK"):
            sizes.append(len(parameters) if executemany else 1)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert [o.state for o in service.run_once()] == ["ran"]
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert sizes == [5, 5, 2]
    now = queue(db, pid)
    assert now[:12] == want.order[:12]  # the strategy's head first
    rest = [c for c in before[10:] if c not in set(want.order[:12])]
    assert now[12:] == rest  # the others keep the order they had


def test_an_auto_project_keeps_its_bandit_across_rounds(tmp_path: Path, fsdd_dir: Path) -> None:
    """Strategy auto live: each round stores the bandit's state (weights, the head it is waiting
    on, clips by id) and the next round goes on from it; once answers came back for two rounds'
    heads, the weights have moved off the prior."""
    from listenloop.strategies.auto import AutoStrategy

    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade()
    data = tmp_path / "data"
    data.mkdir()
    pid = new_project(db, fsdd_dir, data, seeds=30, strategy="auto", passive_share=0.0)
    service = LearningService(db, data, inline=True)
    prior = AutoStrategy().probabilities()
    try:
        for round_no in range(3):
            assert [o.state for o in service.run_once()] == ["ran"]
            run = runs(db, pid)[-1]
            assert run.strategy == "auto" and not run.cold_start
            state = run.strategy_state
            assert state["arms"] == list(AutoStrategy().arms)
            head = queue(db, pid)
            assert state["pending"]["rows"] == head  # the whole (small) pool, clips by id, in queue order
            assert len(state["pending"]["q"]) == len(head)
            if round_no == 2:
                assert (
                    len(state["rewards"]) == 1
                )  # round 3 scored the model that trained on round 1's answers
                now = AutoStrategy()
                now.load_state(state)
                assert not np.allclose(now.probabilities(), prior)
            # people answer the head of the queue with the true digits
            with db.read() as s:
                names = {c.id: c.file_name for c in s.scalars(select(Clip).where(Clip.id.in_(head[:12])))}
            with db.write() as s:
                for cid, name in names.items():
                    s.execute(
                        update(Clip).where(Clip.id == cid).values(status="done", label=name.split("_")[0])
                    )
                s.execute(
                    update(Project).where(Project.id == pid).values(labels_count=Project.labels_count + 12)
                )
    finally:
        service.stop()
        db.dispose()
