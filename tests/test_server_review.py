"""The review queue (issue 21) through the API on SQLite and PostgreSQL: its kinds and order, the
reviewer role (what a reviewer may and may not do), discarding a clip and a correction that also
becomes a control question."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import annotator, login, zip_of
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.store.database import Database
from listenloop.store.models import Clip, ModelRun, Task
from test_server_clips import DIGITS, one_per_digit


class Review:
    """Clips of digits 0 to 3 and 5, queued in that order; redundancy 2 to 3; three annotators.

    a answers 0, 1, can't tell, 3; b answers 0, 7, can't tell, 3; c then gets clip 1 (answers 3)
    and clip 2 (answers 2). So: clip 0 done (0), clip 1 low agreement (1, 7, 3), clip 2 mostly
    "can't tell", clip 3 done (3), clip 5 untouched. A learning round's map predicts 8 for clip 3
    (the model disputes the crowd) and 0 for clip 0 (agrees).
    """

    def __init__(self, c: TestClient) -> None:
        self.c = c
        self.oh = login(c, "owner", "owner-pass-1")
        body = {
            "name": "review me",
            "task_type": "classification",
            "classes": DIGITS,
            "redundancy": {"min": 2, "max": 3, "tau": 0.75},
            "control_rate": 0.0,
            "consistency_rate": 0.0,
        }
        r = c.post("/api/v1/projects", headers=self.oh, json=body)
        assert r.status_code == 201, r.text
        self.pid = r.json()["id"]
        files = one_per_digit([0, 1, 2, 3, 5])
        r = c.post(
            f"/api/v1/projects/{self.pid}/clips", headers=self.oh, files={"archive": ("a.zip", zip_of(files))}
        )
        assert r.status_code == 201, r.text
        self.db: Database = c.app.state.db
        with self.db.write() as s:
            clips = s.scalars(select(Clip).where(Clip.project_id == self.pid)).all()
            self.id = {int(clip.file_name[0]): clip.id for clip in clips}
            for clip in clips:
                clip.rank = float(clip.file_name[0])
        a, b, cc = annotator(c, "a"), annotator(c, "b"), annotator(c, "c")
        for who, answers in (
            (a, ["0", "1", CANT_TELL, "3"]),
            (b, ["0", "7", CANT_TELL, "3"]),
            (cc, ["3", "2"]),
        ):
            for answer in answers:
                task = c.get(f"/api/v1/projects/{self.pid}/next", headers=who).json()["task_id"]
                r = c.post(f"/api/v1/tasks/{task}/answer", headers=who, json={"answer": answer})
                assert r.status_code == 201, r.text
        self.a = a
        with self.db.write() as s:
            status = dict(s.execute(select(Clip.id, Clip.status).where(Clip.project_id == self.pid)).all())
            assert status[self.id[0]] == "done" and status[self.id[3]] == "done", status
            assert status[self.id[1]] == "low_agreement" and status[self.id[5]] == "queued", status
            points = [[self.id[0], 0.1, 0.2, "0", None], [self.id[3], 0.3, 0.4, "8", None]]
            s.add(
                ModelRun(
                    project_id=self.pid,
                    labels=2,
                    metric="uar",
                    strategy="margin",
                    clips=5,
                    seconds=1.0,
                    map={"method": "pca", "explained": [0.5, 0.2], "points": points},
                )
            )

    def queue(self, kind: str = "all", headers: dict[str, str] | None = None, status: int = 200) -> dict:
        r = self.c.get(f"/api/v1/projects/{self.pid}/review?kind={kind}", headers=headers or self.oh)
        assert r.status_code == status, r.text
        return r.json()

    def digits(self, kind: str = "all") -> list[int]:
        by_id = {v: k for k, v in self.id.items()}
        return [by_id[row["clip_id"]] for row in self.queue(kind)["clips"]]


def test_kinds_and_order(client: TestClient) -> None:
    k = Review(client)
    assert k.digits("low_agreement")[0] == 1 and 0 not in k.digits("low_agreement")
    assert k.digits("cant_tell") == [2]
    assert k.digits("disagreement") == [3]
    page = k.queue()
    rows = {row["clip_id"]: row for row in page["clips"]}
    assert set(rows) == {k.id[1], k.id[2], k.id[3]}  # not clip 0 (agreed), nor 5 (open, unanswered)
    scores = [row["score"] for row in page["clips"]]
    assert scores == sorted(scores, reverse=True) and "p_change" in page["score"]
    one, two, three = rows[k.id[1]], rows[k.id[2]], rows[k.id[3]]
    # clip 1: the crowd gives its label a third at most and it trains nothing yet
    assert one["reasons"][0] == "low_agreement" and one["adds_label"] is True
    assert one["p_change"] >= 0.5 and one["score"] == round(one["p_change"] + 1, 4)
    assert two["reasons"][-1] == "cant_tell" and two["cant_tell"] == 2 and two["n_answers"] == 3
    # clip 3: the crowd agreed (3), the model says 8; a correction would change little
    assert three["reasons"] == ["disagreement"] and three["predicted"] == "8" and three["label"] == "3"
    assert three["adds_label"] is False and three["score"] == three["p_change"] < one["score"]
    assert k.digits()[0] == 1 and k.digits()[-1] == 3
    # paged like the clip browser; a bad kind is 422
    r = client.get(f"/api/v1/projects/{k.pid}/review?limit=1&offset=1", headers=k.oh).json()
    assert r["total"] == 3 and [c["clip_id"] for c in r["clips"]] == [page["clips"][1]["clip_id"]]
    assert "kind 'bogus'" in k.queue("bogus", status=422)["detail"]

    # the owner's label takes a clip out of the queue, and the model's dispute goes with it
    r = client.post(f"/api/v1/projects/{k.pid}/clips/{k.id[3]}/label", headers=k.oh, json={"label": "8"})
    assert r.status_code == 200 and r.json()["source"] == "expert"
    assert k.digits("disagreement") == []


def test_discard_and_control_from_review(client: TestClient) -> None:
    k = Review(client)
    r = client.post(f"/api/v1/projects/{k.pid}/clips/{k.id[1]}/discard", headers=k.oh)
    assert r.status_code == 200 and r.json()["status"] == "discarded", r.text
    assert 1 not in k.digits()
    export = client.get(f"/api/v1/projects/{k.pid}/export?format=csv", headers=k.oh).text
    row = next(r for r in csv.DictReader(io.StringIO(export)) if r["clip_id"] == str(k.id[1]))
    assert (row["status"], row["label"], row["final"]) == ("discarded", "", "false")
    assert client.get(f"/api/v1/projects/{k.pid}/clips?status=discarded", headers=k.oh).json()["total"] == 1
    # the clip is served to nobody: a new annotator gets only clip 5
    d = annotator(client, "d")
    seen = set()
    while (r := client.get(f"/api/v1/projects/{k.pid}/next", headers=d)).status_code == 200:
        task = r.json()["task_id"]
        with k.db.read() as s:
            seen.add(s.get(Task, task).clip_id)
        client.post(f"/api/v1/tasks/{task}/answer", headers=d, json={"answer": "5"})
    assert k.id[1] not in seen
    # a correction brings it back, as an expert label that is also a control question
    r = client.post(
        f"/api/v1/projects/{k.pid}/clips/{k.id[1]}/label", headers=k.oh, json={"label": "1", "control": True}
    )
    assert r.status_code == 200 and r.json()["status"] == "control" and r.json()["gold_label"] == "1", r.text
    with k.db.read() as s:
        clip = s.get(Clip, k.id[1])
        assert (clip.is_gold, clip.gold_label, clip.expert_label) == (True, "1", "1")
    # control questions and seed clips cannot be discarded
    assert client.post(f"/api/v1/projects/{k.pid}/clips/{k.id[1]}/discard", headers=k.oh).status_code == 409


def test_reviewer_may_review_and_label_but_not_manage(client: TestClient) -> None:
    k = Review(client)
    rev = annotator(client, "rev")
    base = f"/api/v1/projects/{k.pid}"
    # before the role: an annotator may do none of it
    assert k.queue(headers=rev, status=403)["detail"].endswith("its reviewers may do this")
    assert client.post(f"{base}/clips/{k.id[1]}/label", headers=k.a, json={"label": "1"}).status_code == 403
    assert client.post(f"{base}/clips/{k.id[1]}/discard", headers=k.a).status_code == 403
    assert client.get(f"/api/v1/clips/{k.id[1]}/audio", headers=k.a).status_code == 403
    r = client.post(f"{base}/members", headers=k.oh, json={"username": "rev", "role": "reviewer"})
    assert r.status_code == 201 and r.json()["role"] == "reviewer", r.text
    members = {m["username"]: m["role"] for m in client.get(f"{base}/members", headers=k.oh).json()}
    assert members["rev"] == "reviewer" and members["a"] == "annotator"
    # allowed: the queue, the browser, a clip, its audio, a label, a discard
    assert k.queue(headers=rev)["total"] == 3
    assert client.get(f"{base}/clips", headers=rev).json()["total"] == 5
    assert client.get(f"{base}/clips/{k.id[1]}", headers=rev).status_code == 200
    assert client.get(f"/api/v1/clips/{k.id[1]}/audio", headers=rev).content[:4] == b"RIFF"
    r = client.post(f"{base}/clips/{k.id[1]}/label", headers=rev, json={"label": "1"})
    assert r.status_code == 200 and r.json()["expert"]["annotator"] == "rev"
    assert client.post(f"{base}/clips/{k.id[2]}/discard", headers=rev).status_code == 200
    # forbidden: settings, members, lifecycle, guidelines, exports, deletion
    forbidden = [
        client.patch(base, headers=rev, json={"name": "mine"}),
        client.post(f"{base}/members", headers=rev, json={"username": "a", "role": "reviewer"}),
        client.post(f"{base}/pause", headers=rev),
        client.post(f"{base}/archive", headers=rev),
        client.put(f"{base}/guidelines", headers=rev, json={"markdown": "mine"}),
        client.put(f"{base}/retention", headers=rev, json={"days": 1}),
        client.get(f"{base}/export?format=csv", headers=rev),
        client.request("DELETE", base, headers=rev, json={"confirm": "review me"}),
    ]
    assert [r.status_code for r in forbidden] == [403] * len(forbidden), [r.text for r in forbidden]
    # removing the reviewer ends it
    client.request("DELETE", f"{base}/members", headers=k.oh, json={"username": "rev"})
    assert k.queue(headers=rev, status=403)
    assert (
        client.post(f"{base}/members", headers=k.oh, json={"username": "rev", "role": "boss"}).status_code
        == 422
    )
