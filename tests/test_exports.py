"""The per-clip export: only final labels fill `label`; unfinished clips say so (`final` false,
empty label) and carry the model's guess in `model_label`, never a provisional label."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of
from listenloop.engine.exports import CLIP_COLUMNS
from listenloop.store.models import ModelRun

DIGITS = [str(i) for i in range(10)]
CONTRACT = ["clip_id", "file", "label", "confidence", "soft", "answers", "status", "source"]


def _answer(c: TestClient, pid: int, headers: dict[str, str], value: str) -> None:
    task = c.get(f"/api/v1/projects/{pid}/next", headers=headers).json()
    r = c.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=headers, json={"answer": value})
    assert r.status_code == 201, r.text


def _add_run(c: TestClient, pid: int, points: list[list[object]] | None) -> None:
    with c.app.state.db.write() as session:
        session.add(
            ModelRun(
                project_id=pid, labels=2, score=None, metric="uar", strategy="margin", clips=4, seconds=0.1,
                map=None if points is None else {"method": "pca", "explained": [0.5, 0.2], "points": points},
            )
        )  # fmt: skip


def test_unfinished_clips_have_no_label_and_say_so(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {
        "name": "digits",
        "task_type": "classification",
        "classes": DIGITS,
        "redundancy": {"min": 2, "max": 3, "tau": 0.75},
        "control_rate": 0.0,
        "consistency_rate": 0.0,
    }
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    files = wavs(5)
    names = list(files)
    seed = f"file,label\n{names[4]},4\n"
    r = client.post(
        f"/api/v1/projects/{pid}/clips",
        headers=oh,
        files={"archive": ("a.zip", zip_of(files)), "labels": ("l.csv", seed)},
    )
    assert r.status_code == 201, r.text
    ann, bob = annotator(client, "ann"), annotator(client, "bob")
    for _ in range(2):
        _answer(client, pid, ann, "0")
    _answer(client, pid, bob, "0")  # one clip has two agreeing answers (finished), one has one

    text = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    assert text.splitlines()[0].split(",") == CLIP_COLUMNS and CLIP_COLUMNS[:8] == CONTRACT
    rows = list(csv.DictReader(io.StringIO(text)))
    finished = [r for r in rows if r["answers"] == "2"]
    begun = [r for r in rows if r["answers"] == "1"]
    assert len(finished) == 1 and len(begun) == 1, rows
    f = finished[0]
    assert (f["label"], f["status"], f["source"], f["final"]) == ("0", "done", "crowd", "true")
    assert float(f["confidence"]) >= 0.75
    b = begun[0]  # its one answer says "0": no provisional label, the evidence stays in soft
    assert (b["label"], b["confidence"], b["source"], b["status"], b["final"]) == (
        "",
        "",
        "",
        "queued",
        "false",
    )
    assert json.loads(b["soft"]) == {**dict.fromkeys(DIGITS, 0.0), "0": 1.0}
    s = next(r for r in rows if r["file"] == names[4])
    assert (s["label"], s["source"], s["final"]) == ("4", "seed", "true")
    assert [r for r in rows if r["final"] == "false"] == [
        r for r in rows if r["status"] in ("queued", "pool")
    ]
    assert all(r["model_label"] == "" for r in rows)  # no learning round yet

    # the newest round with a pool map predicts; a later round without a map does not hide it
    ids = [int(r["clip_id"]) for r in rows]
    _add_run(client, pid, [[ids[0], 0.1, 0.2, "7", None], [ids[1], 0.3, 0.1, "0", "0"]])
    _add_run(client, pid, None)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/v1/projects/{pid}/export", headers=oh).text)))
    assert [r["model_label"] for r in rows] == ["7", "0", "", "", ""]
    assert all(r["label"] == "" for r in rows if r["final"] == "false")

    records = [
        json.loads(x)
        for x in client.get(f"/api/v1/projects/{pid}/export?format=jsonl", headers=oh).text.splitlines()
    ]
    clips = {r["clip_id"]: r for r in records if r["record"] == "clip"}
    queued = clips[int(b["clip_id"])]
    assert queued["final"] is False and queued["label"] is None and queued["source"] is None
    assert clips[int(f["clip_id"])]["final"] is True and clips[ids[0]]["model_label"] == "7"


def test_export_soft_labels_weigh_annotators_by_their_fitted_skill(client: TestClient) -> None:
    """The export's `soft` is 004_ eq. 1 (crowd.soft_labels) with each annotator's competence
    now: the background fit's skill where there is one (here set by hand), else trust."""
    from sqlalchemy import update

    from listenloop.store.models import ProjectMember, User, WorkerTrust

    oh = login(client, "owner", "owner-pass-1")
    for task_type, classes, answers, expected in (
        ("classification", DIGITS, ("0", "1"), {**dict.fromkeys(DIGITS, 0.0), "0": 0.75, "1": 0.25}),
        ("multilabel", ["a", "b"], ("a|b", "b"), {"a": 0.75, "b": 1.0}),
    ):
        body = {
            "name": task_type, "task_type": task_type, "classes": classes, "control_rate": 0.0,
            "consistency_rate": 0.0, "redundancy": {"min": 3, "max": 3, "tau": 0.95},
        }  # fmt: skip
        pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
        files = dict(list(wavs(1).items()))
        r = client.post(
            f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(files))}
        )
        assert r.status_code == 201, r.text
        people = [annotator(client, f"{task_type[:4]}{k}") for k in range(2)]
        for who, value in zip(people, answers, strict=True):
            _answer(client, pid, who, value)
        with client.app.state.db.write() as session:
            for k, skill in enumerate((0.9, 0.3)):
                user = session.query(User).filter_by(username=f"{task_type[:4]}{k}").one()
                session.execute(
                    update(WorkerTrust)
                    .where(WorkerTrust.project_id == pid, WorkerTrust.user_id == user.id)
                    .values(skill=skill)
                )
        rows = list(
            csv.DictReader(
                io.StringIO(client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text)
            )
        )
        assert len(rows) == 1 and json.loads(rows[0]["soft"]) == expected, rows
    # a detected spammer (flag_auto) counts at the floor there too, as in the live aggregate
    with client.app.state.db.write() as session:
        user = session.query(User).filter_by(username="mult1").one()
        session.execute(
            update(ProjectMember)
            .where(ProjectMember.project_id == pid, ProjectMember.user_id == user.id)
            .values(flag_auto=True)
        )
    text = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    soft = json.loads(next(csv.DictReader(io.StringIO(text)))["soft"])
    assert soft == pytest.approx({"a": 1.0, "b": 1.0}, abs=1e-5)
