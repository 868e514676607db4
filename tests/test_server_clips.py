"""The owner's clip browser through the API on SQLite and PostgreSQL: filters, paging and sort,
one clip (answers, soft label, prediction), the expert correction (in exports, status and
training labels), bad filters and who may call it."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import RECORDINGS, annotator, login, zip_of
from listenloop.crowd.worker_prior import PRIOR_TRUST
from listenloop.engine import clips as browser
from listenloop.engine.accounts import Principal, create_user
from listenloop.engine.learning.service import training_label
from listenloop.store.database import Database
from listenloop.store.models import Clip, ModelRun, Project, Task, utcnow

DIGITS = [str(i) for i in range(10)]


def one_per_digit(digits: list[int]) -> dict[str, bytes]:
    """One FSDD clip of each digit asked for (the first recording of that digit by name)."""
    paths = sorted(RECORDINGS.glob("*.wav"))
    firsts = [next(p for p in paths if p.name.startswith(f"{d}_")) for d in digits]
    return {p.name: p.read_bytes() for p in firsts}


class Campaign:
    """A small campaign: clips of digits 0, 1, 2, 5 for the crowd (queued in that order), 3 a control
    question, 4 a seed label. ann answers every clip right; bob answers two clips, 1 wrongly (7).

    Redundancy min = max = 2: clip 0 ends done (0), clip 1 low-agreement (1 against 7), clips 2
    and 5 stay queued with one answer each.
    """

    def __init__(self, c: TestClient) -> None:
        self.c = c
        self.oh = login(c, "owner", "owner-pass-1")
        body = {
            "name": "digits",
            "task_type": "classification",
            "classes": DIGITS,
            "redundancy": {"min": 2, "max": 2, "tau": 0.75},
            "control_rate": 0.0,
            "consistency_rate": 0.0,
        }
        r = c.post("/api/v1/projects", headers=self.oh, json=body)
        assert r.status_code == 201, r.text
        self.pid = r.json()["id"]
        files = one_per_digit([0, 1, 2, 3, 4, 5])
        self.name = {int(n[0]): n for n in files}
        seed = f"file,label\n{self.name[4]},4\n".encode()
        r = c.post(
            f"/api/v1/projects/{self.pid}/clips",
            headers=self.oh,
            files={"archive": ("a.zip", zip_of(files)), "labels": ("s.csv", seed)},
        )
        assert r.status_code == 201 and r.json()["added"] == 6, r.text
        gold = f"file,label\n{self.name[3]},3\n".encode()
        r = c.post(f"/api/v1/projects/{self.pid}/gold", headers=self.oh, files={"file": ("g.csv", gold)})
        assert r.status_code == 201, r.text
        self.db: Database = c.app.state.db
        with self.db.write() as s:
            clips = s.scalars(select(Clip).where(Clip.project_id == self.pid)).all()
            self.id = {int(clip.file_name[0]): clip.id for clip in clips}
            for clip in clips:
                clip.rank = float(clip.file_name[0])  # the queue's order: digit 0 first
        self.ann, self.bob = annotator(c, "ann"), annotator(c, "bob")
        for digit in (0, 1, 2, 5):
            assert self.answer(self.ann, None) == digit
        assert self.answer(self.bob, None) == 0
        assert self.answer(self.bob, "7") == 1

    def lease(self, headers: dict[str, str]) -> tuple[int, int]:
        """(task id, digit of its clip) of the annotator's next task."""
        r = self.c.get(f"/api/v1/projects/{self.pid}/next", headers=headers)
        assert r.status_code == 200, r.text
        task_id = r.json()["task_id"]
        with self.db.read() as s:
            task = s.get(Task, task_id)
            return task_id, int(s.get(Clip, task.clip_id).file_name[0])

    def answer(self, headers: dict[str, str], answer: str | None) -> int:
        """Lease and answer one task (`None`: the clip's digit); the digit of the clip answered."""
        task_id, digit = self.lease(headers)
        r = self.c.post(
            f"/api/v1/tasks/{task_id}/answer", headers=headers, json={"answer": answer or str(digit)}
        )
        assert r.status_code == 201, r.text
        return digit

    def page(self, query: str = "", status: int = 200) -> dict:
        r = self.c.get(f"/api/v1/projects/{self.pid}/clips{query}", headers=self.oh)
        assert r.status_code == status, (query, r.text)
        return r.json()

    def digits(self, query: str = "") -> list[int]:
        by_id = {v: k for k, v in self.id.items()}
        return [by_id[row["clip_id"]] for row in self.page(query)["clips"]]

    def clip(self, digit: int) -> dict:
        r = self.c.get(f"/api/v1/projects/{self.pid}/clips/{self.id[digit]}", headers=self.oh)
        assert r.status_code == 200, r.text
        return r.json()

    def correct(self, digit: int, label: object, status: int = 200) -> dict:
        r = self.c.post(
            f"/api/v1/projects/{self.pid}/clips/{self.id[digit]}/label",
            headers=self.oh,
            json={"label": label},
        )
        assert r.status_code == status, r.text
        return r.json()

    def export(self) -> dict[int, dict[str, str]]:
        r = self.c.get(f"/api/v1/projects/{self.pid}/export?format=csv", headers=self.oh)
        assert r.status_code == 200, r.text
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert list(rows[0])[:8] == [
            "clip_id",
            "file",
            "label",
            "confidence",
            "soft",
            "answers",
            "status",
            "source",
        ]
        return {int(row["file"][0]): row for row in rows}


def test_filters_sort_and_pages(client: TestClient) -> None:
    k = Campaign(client)
    everything = k.page()
    assert everything["total"] == 6 and everything["offset"] == 0 and everything["limit"] == 50
    assert everything["prediction_run"] is None
    rows = {row["clip_id"]: row for row in everything["clips"]}
    assert [row["clip_id"] for row in everything["clips"]] == sorted(rows)
    first = rows[k.id[0]]
    assert (first["status"], first["source"], first["label"], first["n_answers"]) == ("done", "crowd", "0", 2)
    assert first["file"] == k.name[0] and first["predicted"] is None and first["duration"] > 0
    assert (rows[k.id[3]]["status"], rows[k.id[3]]["source"], rows[k.id[3]]["label"]) == (
        "control",
        "gold",
        "3",
    )
    assert (rows[k.id[4]]["status"], rows[k.id[4]]["source"], rows[k.id[4]]["confidence"]) == (
        "done",
        "seed",
        1.0,
    )
    assert rows[k.id[1]]["status"] == "low_agreement"
    assert rows[k.id[2]]["status"] == "queued" and rows[k.id[2]]["n_answers"] == 1

    # status: the engine's clip states, and control questions apart
    assert k.digits("?status=queued") == [2, 5]
    assert k.digits("?status=low_agreement") == [1]
    assert k.digits("?status=control") == [3]
    assert k.digits("?status=done,control") == [0, 3, 4]
    assert k.page("?status=queued")["total"] == 2
    # class: the label the clip carries (crowd, seed, gold or expert)
    assert k.digits("?label=0") == [0]
    assert k.digits("?label=4") == [4]
    assert k.digits("?label=3") == [3]
    assert k.digits("?label=9") == []
    # confidence: seed and control labels count as certain; unanswered clips have none
    confident = {r["clip_id"] for r in everything["clips"] if (r["confidence"] or -1) >= 0.9}
    assert {k.id[d] for d in k.digits("?min_confidence=0.9")} == confident >= {k.id[3], k.id[4]}
    unsure = k.digits("?max_confidence=0.999")
    assert 3 not in unsure and 4 not in unsure and all(rows[k.id[d]]["confidence"] <= 0.999 for d in unsure)
    assert k.digits("?min_confidence=0&max_confidence=1") == [0, 1, 2, 3, 4, 5]
    # annotator: the clips that person answered
    assert k.digits("?annotator=ann") == [0, 1, 2, 5]
    assert k.digits("?annotator=bob") == [0, 1]
    assert k.digits("?annotator=owner") == []
    assert k.digits("?annotator=bob&status=done") == [0]
    assert k.digits("?source=seed") == [4]
    # sorted and paged, with the total of the whole filter
    assert k.digits("?sort=-answers")[:2] == [1, 0]  # two answers each; ties in the same direction
    assert k.digits("?sort=-id") == [5, 4, 3, 2, 1, 0]
    assert k.digits("?sort=file") == [0, 1, 2, 3, 4, 5]
    page = k.page("?sort=-id&offset=2&limit=2")
    assert page["total"] == 6 and [k.digits("?sort=-id")[i] for i in (2, 3)] == k.digits(
        "?sort=-id&offset=2&limit=2"
    )
    assert k.page("?offset=10")["clips"] == [] and k.page("?offset=10")["total"] == 6


def test_bad_filters_are_422(client: TestClient) -> None:
    k = Campaign(client)
    for query, words in (
        ("?status=finished", "status 'finished'"),
        ("?label=eleven", "label 'eleven'"),
        ("?annotator=nobody", "annotator 'nobody'"),
        ("?min_confidence=0.8&max_confidence=0.2", "above max_confidence"),
        ("?sort=colour", "sort 'colour'"),
        ("?source=crowds", "source 'crowds'"),
    ):
        detail = k.page(query, status=422)["detail"]
        assert words in detail, (query, detail)
    for query in ("?min_confidence=1.5", "?max_confidence=-1", "?limit=0", "?limit=1000", "?offset=-1"):
        k.page(query, status=422)
    k.page("?min_confidence=abc", status=422)


def test_one_clip_answers_soft_label_and_prediction(client: TestClient) -> None:
    k = Campaign(client)
    clip = k.clip(1)
    assert (clip["status"], clip["source"], clip["label"]) == (
        "low_agreement",
        "crowd",
        clip["crowd"]["label"],
    )
    assert [(a["annotator"], a["answer"], a["kind"]) for a in clip["answers"]] == [
        ("ann", "1", "regular"),
        ("bob", "7", "regular"),
    ]
    assert clip["answers_total"] == 2
    assert all(a["trust"] == PRIOR_TRUST and a["answered_at"] for a in clip["answers"])
    # the soft label is the one the labels export carries
    assert clip["soft"] == json.loads(k.export()[1]["soft"]) and set(clip["soft"]) == set(DIGITS)
    assert clip["soft"]["1"] == pytest.approx(0.5) and clip["soft"]["7"] == pytest.approx(0.5)
    assert clip["prediction"] is None and clip["expert"] is None
    assert clip["audio_url"] == f"/api/v1/clips/{k.id[1]}/audio"
    assert client.get(clip["audio_url"], headers=k.oh).content[:4] == b"RIFF"
    assert client.get(clip["spectrogram_url"], headers=k.oh).status_code == 200
    assert k.clip(4)["seed_label"] == "4" and k.clip(3)["gold_label"] == "3"

    # a learning round's map gives the model's prediction for the clips in its sample
    with k.db.write() as s:
        for labels, predicted in ((3, "9"), (5, "1")):
            points = [[k.id[0], 0.1, 0.2, "0", "0"], [k.id[1], 0.3, 0.4, predicted, None]]
            s.add(
                ModelRun(
                    project_id=k.pid,
                    labels=labels,
                    score=0.5,
                    metric="uar",
                    strategy="margin",
                    clips=6,
                    seconds=1.0,
                    map={"method": "pca", "explained": [0.5, 0.2], "points": points},
                )
            )
        s.add(ModelRun(project_id=k.pid, labels=6, metric="uar", strategy="margin", clips=6, seconds=1.0))
    prediction = k.clip(1)["prediction"]
    assert prediction["label"] == "1" and prediction["round"] == 2 and prediction["labels"] == 5
    assert prediction["in_sample"] is True
    assert k.clip(2)["prediction"]["label"] is None and k.clip(2)["prediction"]["in_sample"] is False
    page = k.page()
    assert page["prediction_run"]["round"] == 2
    assert {r["clip_id"]: r["predicted"] for r in page["clips"]} == {
        k.id[0]: "0",
        k.id[1]: "1",
        k.id[2]: None,
        k.id[3]: None,
        k.id[4]: None,
        k.id[5]: None,
    }


def test_expert_correction(client: TestClient) -> None:
    k = Campaign(client)
    status = client.get(f"/api/v1/projects/{k.pid}/status", headers=k.oh).json()
    assert status["labels_done"] == 2 and status["low_agreement"] == 1  # clip 0 and the seed clip
    with k.db.read() as s:
        labels_before = s.get(Project, k.pid).labels_count

    fixed = k.correct(1, "1")
    assert (fixed["status"], fixed["source"], fixed["label"], fixed["confidence"]) == (
        "done",
        "expert",
        "1",
        1.0,
    )
    assert fixed["expert"]["label"] == "1" and fixed["expert"]["annotator"] == "owner"
    assert fixed["crowd"]["label"] is not None  # the crowd's aggregate is kept beside it
    assert [(a["annotator"], a["answer"], a["kind"]) for a in fixed["answers"]][-1] == (
        "owner",
        "1",
        "expert",
    )
    # in the status, the exports, the browser's filters and the training labels
    status = client.get(f"/api/v1/projects/{k.pid}/status", headers=k.oh).json()
    assert status["labels_done"] == 3 and status["low_agreement"] == 0
    row = k.export()[1]
    assert (row["label"], row["source"], row["status"], row["confidence"]) == ("1", "expert", "done", "1.0")
    assert k.export()[0]["source"] == "crowd" and k.export()[4]["source"] == "seed"
    answers = client.get(f"/api/v1/projects/{k.pid}/answers?format=csv", headers=k.oh).text
    expert = [r for r in csv.DictReader(io.StringIO(answers)) if r["kind"] == "expert"]
    assert [(r["clip_id"], r["annotator"], r["answer"]) for r in expert] == [(str(k.id[1]), "owner", "1")]
    assert k.digits("?source=expert") == [1] and k.digits("?annotator=owner") == [1]
    assert k.digits("?status=done&label=1") == [1]
    with k.db.read() as s:
        assert s.get(Project, k.pid).labels_count == labels_before + 1
    dist = client.get(f"/api/v1/projects/{k.pid}/dashboard", headers=k.oh).json()["label_distribution"]
    assert {d["label"]: d["expert"] for d in dist if d["expert"]} == {"1": 1}

    # a second correction replaces the first (one expert answer per clip and owner)
    assert k.correct(1, "7")["label"] == "7"
    answers = client.get(f"/api/v1/projects/{k.pid}/answers?format=csv", headers=k.oh).text
    expert = [r for r in csv.DictReader(io.StringIO(answers)) if r["kind"] == "expert"]
    assert [r["answer"] for r in expert] == ["7"] and k.export()[1]["label"] == "7"

    # a queued clip: corrected while bob holds it; his answer counts for the crowd, not the label
    task_id, digit = k.lease(k.bob)
    assert digit == 2
    assert k.correct(2, "8")["status"] == "done"
    r = client.post(f"/api/v1/tasks/{task_id}/answer", headers=k.bob, json={"answer": "2"})
    assert r.status_code == 201
    clip = k.clip(2)
    assert (clip["label"], clip["source"], clip["status"], clip["crowd"]["label"]) == (
        "8",
        "expert",
        "done",
        "2",
    )
    assert clip["n_answers"] == 2 and k.export()[2]["label"] == "8"
    # a seed label may be corrected too; a control question's answer may not
    assert k.correct(4, "9")["source"] == "expert"
    assert "control question" in k.correct(3, "5", status=409)["detail"]
    assert k.correct(5, "eleven", status=422)["detail"]
    assert k.correct(5, "can't tell", status=422)["detail"]
    r = client.post(f"/api/v1/projects/{k.pid}/clips/{k.id[5]}/label", headers=k.oh, json={"tag": "5"})
    assert r.status_code == 422
    assert k.clip(5)["status"] == "queued"  # nothing stored by the refusals


def test_only_the_owner_browses_and_corrects(client: TestClient) -> None:
    k = Campaign(client)
    other = login(client, "owner2", "owner-pass-2")
    clip = f"/api/v1/projects/{k.pid}/clips/{k.id[1]}"
    for headers in (k.ann, other):
        assert client.get(f"/api/v1/projects/{k.pid}/clips", headers=headers).status_code == 403
        assert client.get(clip, headers=headers).status_code == 403
        assert client.post(f"{clip}/label", headers=headers, json={"label": "1"}).status_code == 403
    assert client.get(f"/api/v1/projects/{k.pid}/clips").status_code == 401
    assert client.get("/api/v1/projects/999/clips", headers=k.oh).status_code == 404
    assert client.get(f"/api/v1/projects/{k.pid}/clips/999999", headers=k.oh).status_code == 404
    r = client.post(f"/api/v1/projects/{k.pid}/clips/999999/label", headers=k.oh, json={"label": "1"})
    assert r.status_code == 404
    # a clip of another project is not found through this one
    r = client.post(
        "/api/v1/projects", headers=other, json={"name": "x", "task_type": "binary", "classes": ["a", "b"]}
    )
    assert client.get(f"/api/v1/projects/{r.json()['id']}/clips/{k.id[1]}", headers=other).status_code == 404
    assert k.clip(1)["expert"] is None
    # a cookie session needs the CSRF header to correct
    pages = {"X-Requested-With": "listenloop"}  # the pages' sign-in sends it too
    assert (
        client.post(
            "/api/v1/session", headers=pages, data={"username": "owner", "password": "owner-pass-1"}
        ).status_code
        == 200
    )
    assert client.post(f"{clip}/label", json={"label": "1"}).status_code == 403
    r = client.post(f"{clip}/label", json={"label": "1"}, headers={"X-Requested-With": "listenloop"})
    assert r.status_code == 200


def test_training_label_prefers_the_expert() -> None:
    assert training_label(None, "low_agreement", False, None, "2", "8") == "8"
    assert training_label("4", "done", False, None, None, "9") == "9"
    assert training_label(None, "queued", True, "3", None, "5") == "3"  # a control clip's known answer
    assert training_label(None, "done", False, None, "2") == "2"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    database.upgrade()
    return database


def test_multilabel_tag_filter_and_correction(db: Database) -> None:
    with db.write() as s:
        owner = create_user(s, "own", "x", "owner")
        p = Project(name="tags", owner_id=owner.id, task_type="multilabel", classes=["a_b", "c", "a%"])
        s.add(p)
        s.flush()
        for i, (label, status) in enumerate(
            (("a_b|c", "done"), ("c", "done"), ("", "done"), (None, "queued"))
        ):
            s.add(
                Clip(
                    project_id=p.id,
                    file_name=f"c{i}.wav",
                    sha256=f"{i:064x}",
                    path="x",
                    duration=1.0,
                    sample_rate=8000,
                    status=status,
                    label=label,
                    updated_at=utcnow() + timedelta(seconds=i),
                )
            )
        pid, who = p.id, Principal(id=owner.id, username="own", role="owner")
    with db.read() as s:
        project = s.get(Project, pid)
        ids = [c["clip_id"] for c in browser.browse_clips(s, project, who)["clips"]]

        def files(**kw: object) -> list[str]:
            return [c["file"] for c in browser.browse_clips(s, project, who, **kw)["clips"]]

        assert files(label="c") == ["c0.wav", "c1.wav"]
        assert files(label="a_b") == ["c0.wav"]
        assert files(label="a%") == []  # LIKE wildcards in a tag name are matched literally
        assert files(sort="-updated")[0] == "c3.wav"
    with db.write() as s:
        out = browser.correct_label(s, s.get(Project, pid), who, ids[3], ["c", "a%"])
        assert out["label"] == "c|a%" and out["status"] == "done"
    with db.read() as s:
        assert [
            c["file"] for c in browser.browse_clips(s, s.get(Project, pid), who, label="a%")["clips"]
        ] == ["c3.wav"]
