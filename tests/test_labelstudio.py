"""Label Studio interop: the export (`?format=labelstudio`) as Label Studio tasks that validate
against the format model, and the import of a hand-written Label Studio export (round trip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of
from listenloop.engine.errors import InvalidError
from listenloop.engine.labelstudio_format import parse_tasks

DIGITS = [str(i) for i in range(10)]
FIXTURE = Path(__file__).parent / "fixtures" / "labelstudio"


def _project(
    c: TestClient, oh: dict[str, str], task_type: str, classes: list[str], n: int, **extra: object
) -> int:
    body = {
        "name": task_type, "task_type": task_type, "classes": classes, "control_rate": 0.0,
        "consistency_rate": 0.0, "redundancy": {"min": 2, "max": 3, "tau": 0.75}, **extra,
    }  # fmt: skip
    r = c.post("/api/v1/projects", headers=oh, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(wavs(n)))})
    assert r.status_code == 201, r.text
    return pid


def _answer(c: TestClient, pid: int, h: dict[str, str], value: object) -> int:
    task = c.get(f"/api/v1/projects/{pid}/next", headers=h).json()
    r = c.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=h, json={"answer": value})
    assert r.status_code == 201, r.text
    return task["task_id"]


def _export(c: TestClient, pid: int, oh: dict[str, str]) -> list[dict]:
    r = c.get(f"/api/v1/projects/{pid}/export", params={"format": "labelstudio"}, headers=oh)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    tasks = json.loads(r.text)
    parse_tasks(r.text)  # the same format model the import reads
    return tasks


def test_labelstudio_export_has_one_annotation_per_answer(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, "classification", DIGITS, 3)
    ann, bob = annotator(client, "ann"), annotator(client, "bob")
    _answer(client, pid, ann, "3")
    _answer(client, pid, ann, "can't tell")
    _answer(client, pid, bob, "3")
    tasks = _export(client, pid, oh)
    assert len(tasks) == 3
    assert all(t["data"]["audio"].startswith("http") and t["data"]["audio"].endswith("/audio") for t in tasks)
    anns = [a for t in tasks for a in t["annotations"]]
    assert len(anns) == 3
    by_name = {}
    for a in anns:
        by_name.setdefault(a["meta"]["annotator"], []).append(a)
    assert sorted(by_name) == ["ann", "bob"] and len(by_name["ann"]) == 2
    labelled = [a for a in anns if not a["was_cancelled"]]
    assert len(labelled) == 2
    for a in labelled:
        (res,) = a["result"]
        assert (res["type"], res["from_name"], res["to_name"], res["value"]) == (
            "choices", "label", "audio", {"choices": ["3"]}
        )  # fmt: skip
        assert a["meta"]["kind"] == "regular" and a["created_at"].endswith("Z")
    skipped = [a for a in anns if a["was_cancelled"]]
    assert len(skipped) == 1 and skipped[0]["result"] == []
    # the two agreeing answers finished their clip: its label is the prediction
    done = [t for t in tasks if t["predictions"]]
    assert len(done) == 1
    (pred,) = done[0]["predictions"]
    assert pred["result"][0]["value"]["choices"] == ["3"] and 0 < pred["score"] <= 1
    assert pred["model_version"] == "listenloop-crowd"
    assert {t["meta"]["file"] for t in tasks} == set(wavs(3))

    # the owner's correction is a ground-truth annotation, and the new final label
    clip = done[0]["id"]
    r = client.post(f"/api/v1/projects/{pid}/clips/{clip}/label", headers=oh, json={"label": "4"})
    assert r.status_code == 200, r.text
    task = next(t for t in _export(client, pid, oh) if t["id"] == clip)
    expert = [a for a in task["annotations"] if a["ground_truth"]]
    assert len(expert) == 1 and expert[0]["meta"]["annotator"] == "owner"
    assert task["predictions"][0]["result"][0]["value"]["choices"] == ["4"]
    assert task["predictions"][0]["model_version"] == "listenloop-expert"


def test_labelstudio_export_multilabel_has_several_choices(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, "multilabel", ["cough", "door", "speech"], 1)
    people = [annotator(client, f"tag{k}") for k in range(2)]
    for h in people:
        _answer(client, pid, h, ["speech", "cough"])
    (task,) = _export(client, pid, oh)
    choices = [a["result"][0]["value"]["choices"] for a in task["annotations"]]
    assert choices == [["cough", "speech"], ["cough", "speech"]]
    assert task["predictions"][0]["result"][0]["value"]["choices"] == ["cough", "speech"]


def test_labelstudio_export_refusals(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, "classification", DIGITS, 1)
    r = client.get(f"/api/v1/projects/{pid}/export", params={"format": "labelstud"}, headers=oh)
    assert r.status_code == 422
    ann = annotator(client, "ann")
    r = client.get(f"/api/v1/projects/{pid}/export", params={"format": "labelstudio"}, headers=ann)
    assert r.status_code == 403
    r = client.get("/api/v1/projects/999/export", params={"format": "labelstudio"}, headers=oh)
    assert r.status_code == 404
    body = {"name": "r", "task_type": "continuous", "range": [0, 10]}
    rid = client.post("/api/v1/projects", headers=oh, json=body)
    assert rid.status_code == 201, rid.text
    r = client.get(
        f"/api/v1/projects/{rid.json()['id']}/export", params={"format": "labelstudio"}, headers=oh
    )
    assert r.status_code == 422 and "continuous" in r.text


def test_format_model_refuses_what_is_not_labelstudio() -> None:
    with pytest.raises(InvalidError, match="data"):
        parse_tasks(b'[{"annotations": []}]')
    bad = [{"data": {"audio": "a.wav"}, "annotations": [{"result": [
        {"type": "choices", "from_name": "l", "to_name": "a", "value": {"choices": "3"}}]}]}]  # fmt: skip
    with pytest.raises(InvalidError, match=r"0\.annotations\.0\.result\.0\.value\.choices"):
        parse_tasks(json.dumps(bad))
    with pytest.raises(InvalidError):
        parse_tasks(b"{}")
