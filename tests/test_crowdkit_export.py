"""The crowd-kit answers table (`?format=crowdkit`): `task,worker,label`, regular answers only,
"can't tell" left out, ids verbatim; crowd-kit's own aggregators read it as it is."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of


def _answer(c: TestClient, pid: int, h: dict[str, str], value: str) -> None:
    task = c.get(f"/api/v1/projects/{pid}/next", headers=h).json()
    r = c.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=h, json={"answer": value})
    assert r.status_code == 201, r.text


def _campaign(c: TestClient) -> tuple[int, dict[str, str]]:
    oh = login(c, "owner", "owner-pass-1")
    body = {
        "name": "ck", "task_type": "classification", "classes": ["0", "1", "2"], "control_rate": 0.0,
        "consistency_rate": 0.0, "redundancy": {"min": 3, "max": 3, "tau": 0.99},
    }  # fmt: skip
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(2)))})
    assert r.status_code == 201, r.text
    for k, value in enumerate(["0", "0", "can't tell"]):
        h = annotator(c, f"ck{k}")
        _answer(c, pid, h, value)
        _answer(c, pid, h, "1" if k else "0")
    return pid, oh


def test_crowdkit_table(client: TestClient) -> None:
    pid, oh = _campaign(client)
    r = client.get(f"/api/v1/projects/{pid}/export", params={"format": "crowdkit"}, headers=oh)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "task,worker,label"
    table = pd.read_csv(io.StringIO(r.text), dtype=str)
    assert len(table) == 5  # six answers, one of them can't tell
    assert set(table["worker"]) == {"ck0", "ck1", "ck2"} and "can't tell" not in set(table["label"])
    answers = client.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text
    every = pd.read_csv(io.StringIO(answers), dtype=str)
    regular = every[(every["kind"] == "regular") & (every["answer"] != "can't tell")]
    assert sorted(zip(regular["clip_id"], regular["annotator"], regular["answer"], strict=True)) == sorted(
        zip(table["task"], table["worker"], table["label"], strict=True)
    )
    r = client.get(f"/api/v1/projects/{pid}/export", params={"format": "crowd-kit"}, headers=oh)
    assert r.status_code == 422


def test_crowdkit_reads_it(client: TestClient) -> None:
    crowdkit = pytest.importorskip("crowdkit.aggregation", reason="crowd-kit is in the bench extra")
    pid, oh = _campaign(client)
    text = client.get(f"/api/v1/projects/{pid}/export", params={"format": "crowdkit"}, headers=oh).text
    table = pd.read_csv(io.StringIO(text), dtype=str)
    labels = crowdkit.MajorityVote().fit_predict(table)
    assert set(labels.index) == set(table["task"]) and set(labels) <= {"0", "1"}
