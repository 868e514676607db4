"""The owner's dashboard: known answers for the histogram, savings, label distribution and
control accuracy; flag and block; the API's routes and who may call them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import RECORDINGS, annotator, login, zip_of
from listenloop.engine import dashboard as dash
from listenloop.engine.accounts import Principal, create_user
from listenloop.store.database import Database
from listenloop.store.models import (
    Clip,
    Event,
    ModelRun,
    Project,
    ProjectMember,
    Task,
    User,
    WorkerTrust,
    utcnow,
)

CLASSES = ["a", "b", "c"]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'd.db'}")
    database.upgrade()
    return database


def _clip(pid: int, i: int, **values: object) -> Clip:
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    base = {"file_name": f"c{i}.wav", "sha256": digest, "path": f"x/{digest}.wav", "duration": 1.0}
    return Clip(project_id=pid, sample_rate=16000, **{**base, **values})


def _project(db: Database, **values: object) -> tuple[int, Principal]:
    """An owner and a project with clips of every kind the dashboard tells apart."""
    with db.write() as s:
        owner = create_user(s, "own", "x", "owner")
        p = Project(name="p", owner_id=owner.id, task_type="classification", classes=CLASSES, **values)
        s.add(p)
        s.flush()
        s.add_all(
            [
                _clip(p.id, 1, status="done", n_answers=2, label="a"),
                _clip(p.id, 2, status="done", n_answers=3, label="b"),
                _clip(p.id, 3, status="low_agreement", n_answers=3, label="b"),
                _clip(p.id, 4, status="queued", n_answers=1),
                _clip(p.id, 5, status="queued", n_answers=0),
                _clip(p.id, 6, status="done", n_answers=0, seed_label="a"),
                _clip(p.id, 7, status="queued", is_gold=True, gold_label="c", n_answers=0),
            ]
        )
        return p.id, Principal(id=owner.id, username="own", role="owner")


def test_histogram_savings_and_distribution(db: Database) -> None:
    pid, _ = _project(db, redundancy_max=3, answers_used=11)
    with db.write() as s:
        ann = create_user(s, "ann", "x", "annotator")
        answered = [(1, "regular"), (2, "regular"), (3, "regular"), (4, "regular")]
        answered += [(7, "control"), (1, "consistency")]
        for clip, kind in answered:
            s.add(
                Task(
                    project_id=pid,
                    clip_id=clip,
                    annotator_id=ann.id,
                    kind=kind,
                    leased_until=utcnow(),
                    answered_at=utcnow(),
                    answer="a",
                )
            )
    with db.read() as s:
        project = s.get(Project, pid)
        bars = dash.answers_histogram(s, project)
        saved = dash.savings(s, project)
        dist = dash.label_distribution(s, project)
        summary = dash.dashboard_summary(s, project)
    assert bars == [
        {"answers": 1, "done": 0, "low_agreement": 0, "open": 1},
        {"answers": 2, "done": 1, "low_agreement": 0, "open": 0},
        {"answers": 3, "done": 1, "low_agreement": 1, "open": 0},
    ]
    # Finished crowd clips 1, 2, 3 took 2 + 3 + 3 = 8 answers; fixed 3 would take 9, fixed 5 15.
    assert saved["finished_clips"] == 3 and saved["answers_on_finished"] == 8
    assert saved["mean_answers"] == pytest.approx(8 / 3, abs=1e-4)
    assert saved["fixed"] == [
        {"k": 3, "answers": 9, "saved": 1, "saved_share": pytest.approx(1 / 9, abs=1e-4)},
        {"k": 5, "answers": 15, "saved": 7, "saved_share": pytest.approx(7 / 15, abs=1e-4)},
    ]
    # Labels: seed clip 6 + done clips 1, 2 = 3 of 6 non-control clips.
    assert (saved["labels"], saved["pool"], saved["labels_share"]) == (3, 6, 0.5)
    assert saved["regular_answers"] == 4 and saved["quality_answers"] == 2 and saved["answers_used"] == 11
    assert dist == [
        {"label": "a", "crowd": 1, "seed": 1, "expert": 0},
        {"label": "b", "crowd": 1, "seed": 0, "expert": 0},
        {"label": "c", "crowd": 0, "seed": 0, "expert": 0},
    ]
    assert summary["status"]["labels_done"] == 3 and summary["newest_run"] is None


def test_continuous_distribution_bins(db: Database) -> None:
    with db.write() as s:
        owner = create_user(s, "own", "x", "owner")
        p = Project(
            name="r", owner_id=owner.id, task_type="continuous", classes=[], range_min=0.0, range_max=10.0
        )
        s.add(p)
        s.flush()
        s.add_all(
            [
                _clip(p.id, 1, status="done", label="0"),
                _clip(p.id, 2, status="done", label="9.5"),
                _clip(p.id, 3, status="done", label="10"),
                _clip(p.id, 4, status="done", seed_label="4.2"),
            ]
        )
    with db.read() as s:
        dist = dash.label_distribution(s, s.get(Project, p.id))
    assert len(dist) == 10 and dist[0] == {"label": "0–1", "crowd": 1, "seed": 0, "expert": 0}
    assert dist[4]["seed"] == 1 and dist[9]["crowd"] == 2


def test_control_accuracy_flag_and_block(db: Database) -> None:
    pid, owner = _project(db)
    with db.write() as s:
        ann = create_user(s, "ann", "x", "annotator")
        create_user(s, "idle", "x", "annotator")
        s.add(
            WorkerTrust(
                project_id=pid, user_id=ann.id, trust=0.6, n_checked=5, n_right=3, n_answers=9, points=90
            )
        )
        s.add(ProjectMember(project_id=pid, user_id=ann.id, active=True))
        checks = [("control", True), ("control", True), ("control", False), ("control", None)]
        checks += [("consistency", True), ("consistency", False), ("regular", None), ("control", True)]
        tasks = [
            Task(
                project_id=pid,
                clip_id=1 + i % 7,
                annotator_id=ann.id,
                kind=kind,
                leased_until=utcnow(),
                answered_at=utcnow(),
                answer="a",
                passed=passed,
            )
            for i, (kind, passed) in enumerate(checks)
        ]
        s.add_all(tasks)
        s.flush()
        # the last control answer is undone (what undo_answer writes): its check no longer counts
        tasks[-1].answered_at, tasks[-1].answer, tasks[-1].passed = None, None, None
    with db.read() as s:
        [row] = dash.annotator_table(s, s.get(Project, pid))
    assert row["username"] == "ann" and row["trust"] == 0.6 and row["answers"] == 9
    assert row["control"] == {"checked": 3, "right": 2, "accuracy": pytest.approx(0.6667)}
    assert row["consistency"] == {"checked": 2, "agreed": 1, "agreement": 0.5}
    assert (row["flagged"], row["blocked"], row["active"], row["owner"]) == (False, False, True, False)
    with db.write() as s:
        project = s.get(Project, pid)
        out = dash.set_member_flags(s, project, owner, "ann", flagged=True)
        assert out == {"username": "ann", "flagged": True, "blocked": False, "active": True}
        out = dash.set_member_flags(s, project, owner, "ann", blocked=True)
        assert out == {"username": "ann", "flagged": True, "blocked": True, "active": False}
        dash.set_member_flags(s, project, owner, "ann", blocked=True)  # no change, no event
        out = dash.set_member_flags(s, project, owner, "idle", blocked=True)  # never joined: a member row
        assert out["blocked"] is True
    with db.read() as s:
        kinds = s.scalars(select(Event.kind).where(Event.kind.like("member_%")).order_by(Event.id)).all()
        rows = {r["username"]: r for r in dash.annotator_table(s, s.get(Project, pid))}
    assert kinds == ["member_flagged", "member_blocked", "member_blocked"]
    assert rows["ann"]["blocked"] and rows["ann"]["flagged"] and rows["idle"]["blocked"]
    with db.write() as s:
        project = s.get(Project, pid)
        with pytest.raises(Exception, match="say what to change"):
            dash.set_member_flags(s, project, owner, "ann")
        with pytest.raises(Exception, match="does not exist"):
            dash.set_member_flags(s, project, owner, "nobody", flagged=True)
        with pytest.raises(Exception, match="owner cannot"):
            dash.set_member_flags(s, project, owner, "own", flagged=True)
        other = Principal(
            id=s.scalar(select(User.id).where(User.username == "idle")), username="idle", role="annotator"
        )
        with pytest.raises(Exception, match="only the owner"):
            dash.set_member_flags(s, project, other, "ann", flagged=False)


def test_runs_and_maps(db: Database) -> None:
    pid, _ = _project(db)
    with db.write() as s:
        common = {"project_id": pid, "metric": "uar", "strategy": "margin", "clips": 7, "seconds": 1.0}
        s.add(ModelRun(labels=3, score=None, **common))
        s.add(ModelRun(labels=6, score=0.5, map=None, **common))
        # maps of earlier versions had four or five fields; a sixth marks self-training's pseudo-labels
        points = [[1, 0.5, -1.0, "a", "a"], [2, 1.5, 2.0, "b", None, True], [3, 0.0, 0.0, None]]
        s.add(
            ModelRun(
                labels=9,
                score=0.75,
                map={"method": "pca", "explained": [0.4, 0.2], "points": points},
                **common,
            )
        )
    with db.read() as s:
        project = s.get(Project, pid)
        runs = dash.model_runs(s, project)
        assert [r["has_map"] for r in runs] == [False, False, True]
        assert [r["labels"] for r in runs] == [3, 6, 9]
        m = dash.run_map(s, project, runs[2]["id"])
        assert (
            m["points"] == [[*points[0], False], points[1], [3, 0.0, 0.0, None, None, False]]
            and m["explained"] == [0.4, 0.2]
            and m["score"] == 0.75
        )
        with pytest.raises(Exception, match="has no map"):
            dash.run_map(s, project, runs[1]["id"])
        with pytest.raises(Exception, match="has no model run"):
            dash.run_map(s, project, 999)


# -- the API -----------------------------------------------------------------------------------


def test_api_dashboard_access_and_flags(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    o2 = login(client, "owner2", "owner-pass-2")
    body = {"name": "digits", "task_type": "classification", "classes": [str(i) for i in range(10)]}
    body |= {"control_rate": 0.5, "consistency_rate": 0.0, "redundancy": {"min": 1, "max": 3, "tau": 0.5}}
    r = client.post("/api/v1/projects", headers=oh, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    files = {p.name: p.read_bytes() for p in sorted(RECORDINGS.glob("*.wav"))[:30]}
    r = client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(files))})
    assert r.status_code == 201, r.text
    gold_files = list(files)[:4]
    gold = "file,label\n" + "".join(f"{n},{n.split('_')[0]}\n" for n in gold_files)
    r = client.post(f"/api/v1/projects/{pid}/gold", headers=oh, files={"file": ("g.csv", gold.encode())})
    assert r.status_code == 201, r.text
    ah = annotator(client, "ann")
    app_db: Database = client.app.state.db  # type: ignore[attr-defined]
    controls = answered = 0
    # three control answers (the first one wrong; control_rate 0.5) and at least one regular one
    while controls < 3 or answered == controls:
        r = client.get(f"/api/v1/projects/{pid}/next", headers=ah)
        assert r.status_code == 200, "the regular clips ran out before three control questions"
        task = r.json()
        with app_db.read() as s:
            kind = s.get(Task, task["task_id"]).kind
            name = s.get(Task, task["task_id"]).clip.file_name
        answer = name.split("_")[0]
        if kind == "control":
            controls += 1
            if controls == 1:
                answer = "1" if answer != "1" else "2"
        r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": answer})
        assert r.status_code == 201, r.text
        answered += 1

    paths = ["dashboard", "annotators", "runs"]
    for path in paths:
        assert client.get(f"/api/v1/projects/{pid}/{path}", headers=ah).status_code == 403
        assert client.get(f"/api/v1/projects/{pid}/{path}", headers=o2).status_code == 403
        assert client.get(f"/api/v1/projects/9999/{path}", headers=oh).status_code == 404
    assert client.get(f"/api/v1/projects/{pid}/runs/1/map", headers=ah).status_code == 403
    assert (
        client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=ah, json={"flagged": True}).status_code
        == 403
    )
    assert client.get("/api/v1/project-options", headers=ah).status_code == 403

    d = client.get(f"/api/v1/projects/{pid}/dashboard", headers=oh)
    assert d.status_code == 200, d.text
    body = d.json()
    assert body["savings"]["pool"] == 26 and body["status"]["clips"] == 26
    assert body["savings"]["quality_answers"] == controls
    assert body["savings"]["regular_answers"] + controls == body["status"]["answers_used"] == answered
    assert sum(bar["done"] + bar["low_agreement"] + bar["open"] for bar in body["answers_histogram"]) > 0
    [row] = client.get(f"/api/v1/projects/{pid}/annotators", headers=oh).json()
    assert row["username"] == "ann" and row["answers"] == answered
    assert row["control"]["checked"] == controls and row["control"]["right"] == controls - 1
    assert row["checked"] == controls and row["right"] == controls - 1  # the same checks as trust saw

    r = client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={})
    assert r.status_code == 422 and "flagged and/or blocked" in r.json()["detail"]
    r = client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={"blocked": "maybe"})
    assert r.status_code == 422
    assert (
        client.patch(
            f"/api/v1/projects/{pid}/annotators/ghost", headers=oh, json={"flagged": True}
        ).status_code
        == 404
    )
    held = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
    r = client.patch(
        f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={"flagged": True, "blocked": True}
    )
    assert r.status_code == 200 and r.json() == {
        "username": "ann",
        "flagged": True,
        "blocked": True,
        "active": False,
    }
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code == 403  # blocked: no more tasks
    r = client.post(f"/api/v1/tasks/{held['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 403 and "blocked" in r.json()["detail"]  # the block ended the held task's lease
    r = client.patch(f"/api/v1/projects/{pid}/annotators/ann", headers=oh, json={"blocked": False})
    assert r.json()["blocked"] is False and r.json()["flagged"] is True
    assert client.get(f"/api/v1/projects/{pid}/next", headers=ah).status_code in (200, 204)

    assert client.get(f"/api/v1/projects/{pid}/runs", headers=oh).json() == []
    r = client.get(f"/api/v1/projects/{pid}/runs/5/map", headers=oh)
    assert r.status_code == 404 and "no model run" in r.json()["detail"]
    assert client.get(f"/api/v1/projects/{pid}/runs/0/map", headers=oh).status_code == 422
    opts = client.get("/api/v1/project-options", headers=oh).json()
    assert "compare" in opts["feature_sets"] and "margin" in opts["strategies"]["classification"]
    assert (
        "regression_binary_confidence" in opts["strategies"]["regression"] and "properties" in opts["schema"]
    )


def test_passive_comparison_reads_the_measured_curves() -> None:
    """The model's held-out score (not its cross-validated one, on labels the strategy chose)
    against the passive arm's on the same held-out clips; rounds without held-out scores (before
    0011: the passive arm cross-validated on its own clips) are left out."""

    def row(labels, score, held, n, passive_labels, passive):
        return {"labels": labels, "score": score, "heldout_score": held, "heldout_size": n} | {
            "passive_labels": passive_labels,
            "passive_score": passive,
        }

    scores = [
        row(20, 0.9, None, None, 20, 0.99),  # an old round: its passive score is not comparable
        row(30, None, None, None, 20, None),
        row(40, 0.70, 0.66, 5, 22, 0.55),
        row(60, 0.80, 0.75, 6, 24, 0.62),
    ]
    out = dash.passive_comparison(scores, 0.1)
    assert out == {
        "share": 0.1,
        "model_labels": 60,
        "model_score": 0.75,  # held out, not the cross-validated 0.80
        "passive_labels": 24,
        "passive_score": 0.62,
        "passive_labels_needed": None,  # not reached: no extrapolation (the old round's 0.99 is ignored)
        "heldout_size": 6,
    }
    scores.append(row(80, 0.81, 0.77, 8, 40, 0.76))
    scores.append(row(90, 0.82, 0.78, 9, 45, 0.79))
    assert dash.passive_comparison(scores, 0.1)["passive_labels_needed"] == 45
    assert dash.passive_comparison([], 0.0)["model_score"] is None
