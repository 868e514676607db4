"""Label Studio interop: the export (`?format=labelstudio`) as Label Studio tasks that validate
against the format model, and the import of a hand-written Label Studio export (round trip)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

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
    # the labelling config these tasks fit
    r = client.get(f"/api/v1/projects/{pid}/labelstudio-config", headers=oh)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    config = ElementTree.fromstring(r.text)
    audio, choices_tag = config.find("Audio"), config.find("Choices")
    assert audio.get("name") == "audio" and audio.get("value") == "$audio"
    assert (choices_tag.get("name"), choices_tag.get("toName"), choices_tag.get("choice")) == (
        "label", "audio", "multiple"
    )  # fmt: skip
    assert [c.get("value") for c in choices_tag.findall("Choice")] == ["cough", "door", "speech"]


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
    r = client.get(f"/api/v1/projects/{rid.json()['id']}/labelstudio-config", headers=oh)
    assert r.status_code == 422
    single = ElementTree.fromstring(client.get(f"/api/v1/projects/{pid}/labelstudio-config", headers=oh).text)
    assert single.find("Choices").get("choice") is None and len(single.findall("Choices/Choice")) == 10


def test_format_model_refuses_what_is_not_labelstudio() -> None:
    with pytest.raises(InvalidError, match="data"):
        parse_tasks(b'[{"annotations": []}]')
    bad = [{"data": {"audio": "a.wav"}, "annotations": [{"result": [
        {"type": "choices", "from_name": "l", "to_name": "a", "value": {"choices": "3"}}]}]}]  # fmt: skip
    with pytest.raises(InvalidError, match=r"0\.annotations\.0\.result\.0\.value\.choices"):
        parse_tasks(json.dumps(bad))
    with pytest.raises(InvalidError):
        parse_tasks(b"{}")


RECORDINGS = Path(__file__).parent / "fixtures" / "fsdd" / "recordings"
FIXTURE_AUDIO = [f"{d}_jackson_0.wav" for d in range(6)]


def _audio_zip() -> bytes:
    return zip_of({f"recordings/{n}": (RECORDINGS / n).read_bytes() for n in FIXTURE_AUDIO})


def _import(c: TestClient, pid: int, oh: dict[str, str], tasks: bytes, archive: bytes | None) -> dict:
    files = {"tasks": ("export.json", tasks, "application/json")}
    if archive is not None:
        files["archive"] = ("audio.zip", archive, "application/zip")
    r = c.post(f"/api/v1/projects/{pid}/import/labelstudio", headers=oh, files=files)
    assert r.status_code == 201, r.text
    return r.json()


def _answers_by_file(tasks: list[dict]) -> dict[str, list[tuple[str, tuple[str, ...], bool]]]:
    """Per clip file: (annotator, choices, ground truth) of every annotation, sorted."""
    out = {}
    for t in tasks:
        anns = [
            (
                a["meta"]["annotator"],
                tuple(a["result"][0]["value"]["choices"]) if a["result"] else (),
                a["ground_truth"],
            )
            for a in t["annotations"]
        ]
        out[t["meta"]["file"]] = sorted(anns)
    return out


def test_labelstudio_round_trip(client: TestClient) -> None:
    fixture = (FIXTURE / "digits-export.json").read_bytes()
    assert len(parse_tasks(fixture)) == 6  # the hand-written export fits the format model
    oh = login(client, "owner", "owner-pass-1")
    body = {
        "name": "imported", "task_type": "classification", "classes": DIGITS, "control_rate": 0.0,
        "consistency_rate": 0.0, "redundancy": {"min": 2, "max": 4, "tau": 0.75},
    }  # fmt: skip
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    report = _import(client, pid, oh, fixture, _audio_zip())
    assert report["rejected"] == [] and report["audio_rejected"] == []
    assert (report["tasks"], report["clips_added"], report["answers"], report["cant_tell"]) == (6, 6, 11, 1)
    assert report["expert_labels"] == 1 and report["predictions_ignored"] == 2
    assert report["annotators"] == ["ls-1", "ls-2", "ls-3"]
    # imported annotators cannot sign in
    r = client.post("/api/v1/token", data={"username": "ls-1", "password": "!labelstudio-import"})
    assert r.status_code == 401

    clips = client.get(f"/api/v1/projects/{pid}/clips", headers=oh, params={"limit": 50}).json()["clips"]
    by_file = {c["file"]: c for c in clips}
    assert set(by_file) == {f"recordings/{n}" for n in FIXTURE_AUDIO}
    zero = by_file["recordings/0_jackson_0.wav"]
    assert (zero["status"], zero["label"], zero["n_answers"]) == ("done", "0", 3)
    three = by_file["recordings/3_jackson_0.wav"]
    assert (three["label"], three["source"]) == ("3", "expert")

    # label further through the API
    first = _export(client, pid, oh)
    before = sum(len(t["annotations"]) for t in first)
    assert before == 12  # 11 answers and the ground truth
    answered = 0
    for name in ("ann", "bob"):
        h = annotator(client, name)
        for _ in range(3):
            n = client.get(f"/api/v1/projects/{pid}/next", headers=h)
            if n.status_code != 200:
                break
            r = client.post(f"/api/v1/tasks/{n.json()['task_id']}/answer", headers=h, json={"answer": "4"})
            assert r.status_code == 201, r.text
            answered += 1
    assert answered >= 3
    # export back: it validates against the same format model, with every answer as an annotation
    tasks = _export(client, pid, oh)
    assert sum(len(t["annotations"]) for t in tasks) == before + answered
    imported = {a["meta"]["annotator"] for t in tasks for a in t["annotations"]}
    assert {"ls-1", "ls-2", "ls-3", "ann", "bob", "owner"} >= imported >= {"ls-1", "ls-2", "ls-3", "owner"}
    skipped = [a for t in tasks for a in t["annotations"] if a["was_cancelled"]]
    assert [a["meta"]["annotator"] for a in skipped] == ["ls-2"]

    # and into a new project again: the same answers on the same files
    pid2 = client.post("/api/v1/projects", headers=oh, json={**body, "name": "again"}).json()["id"]
    text = client.get(f"/api/v1/projects/{pid}/export", params={"format": "labelstudio"}, headers=oh).content
    again = _import(client, pid2, oh, text, _audio_zip())
    assert again["rejected"] == [] and again["clips_added"] == 6
    assert again["expert_labels"] == 1 and again["predictions_ignored"] == len(
        [t for t in tasks if t["predictions"]]
    )
    rename = {
        "owner": "owner",
        "ls-1": "ls-1",
        "ls-2": "ls-2",
        "ls-3": "ls-3",
        "ann": "ls-ann",
        "bob": "ls-bob",
    }
    expected = {
        f: sorted((rename[a], ch, gt) for a, ch, gt in anns) for f, anns in _answers_by_file(tasks).items()
    }
    assert _answers_by_file(_export(client, pid2, oh)) == expected


def test_labelstudio_import_rejections(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "bad", "task_type": "classification", "classes": DIGITS}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    tasks = json.loads((FIXTURE / "digits-export.json").read_text())
    tasks[0]["annotations"][1]["result"][0]["value"]["choices"] = ["eleven"]  # not a class
    tasks[1]["annotations"][2]["completed_by"] = 1  # user 1 twice on one task
    tasks[2]["annotations"][0]["result"][0]["type"] = "labels"  # a region, no choice
    tasks[3]["data"]["audio"] = "/data/upload/3/ffffffff-missing.wav"
    tasks[3].pop("file_upload")
    tasks[4]["annotations"][0]["completed_by"] = {"id": 9, "email": "ana@example.org"}  # the older export
    report = _import(client, pid, oh, json.dumps(tasks).encode(), _audio_zip())
    reasons = {(r["task"], r.get("annotation")): r["reason"] for r in report["rejected"]}
    assert "'eleven' is not one of" in reasons[(0, 1)]
    assert "second annotation by 1" in reasons[(1, 2)]
    assert "no choices result" in reasons[(2, 0)]
    assert "audio not found" in reasons[(3, None)]
    assert report["clips_added"] == 5 and "ls-ana@example.org" in report["annotators"]

    # refused as a whole, nothing stored: not Label Studio tasks, no audio, a ratings project, not the owner
    for bad in (b"{}", b"not json", json.dumps([{"annotations": []}]).encode()):
        r = client.post(
            f"/api/v1/projects/{pid}/import/labelstudio", headers=oh,
            files={"tasks": ("t.json", bad), "archive": ("a.zip", _audio_zip())},
        )  # fmt: skip
        assert r.status_code == 422, r.text
    r = client.post(
        f"/api/v1/projects/{pid}/import/labelstudio", headers=oh, files={"tasks": ("t.json", b"[]")}
    )
    assert r.status_code == 422 and "--import-root" in r.text
    rating = client.post(
        "/api/v1/projects", headers=oh, json={"name": "r", "task_type": "continuous", "range": [0, 1]}
    )
    r = client.post(
        f"/api/v1/projects/{rating.json()['id']}/import/labelstudio", headers=oh,
        files={"tasks": ("t.json", b"[]"), "archive": ("a.zip", _audio_zip())},
    )  # fmt: skip
    assert r.status_code == 422 and "continuous" in r.text
    other = login(client, "owner2", "owner-pass-2")
    r = client.post(
        f"/api/v1/projects/{pid}/import/labelstudio", headers=other,
        files={"tasks": ("t.json", b"[]"), "archive": ("a.zip", _audio_zip())},
    )  # fmt: skip
    assert r.status_code == 403
    clips = client.get(f"/api/v1/projects/{pid}/clips", headers=oh).json()
    assert clips["total"] == 5


def test_plan_reads_tags_refs_and_people() -> None:
    from listenloop.engine.labelstudio_import import audio_refs, identity, plan_import
    from listenloop.store.models import Project

    def task(audio: str, *choices: list[str], **extra: object) -> dict:
        anns = [
            {"completed_by": k + 1, "result": [
                {"type": "choices", "from_name": "tags", "to_name": "audio", "value": {"choices": c}}]}
            for k, c in enumerate(choices)
        ]  # fmt: skip
        return {"data": {"audio": audio}, "annotations": anns, **extra}

    tags = Project(id=1, task_type="multilabel", classes=["cough", "door", "speech"])
    tasks = parse_tasks(json.dumps([task("/data/upload/2/0a1b2c3d-x.wav", ["speech", "cough"], [])]))
    plan = plan_import(tags, tasks)
    assert [a.value for a in plan.tasks[0].answers] == ["cough|speech", ""] and plan.rejected == []
    single = Project(id=2, task_type="classification", classes=["a", "b"])
    plan = plan_import(single, parse_tasks(json.dumps([task("x.wav", ["a", "b"], ["b"])])))
    assert [a.value for a in plan.tasks[0].answers] == ["b"]
    assert plan.rejected == [{"task": 0, "annotation": 0, "reason": "2 choices in a single-label project"}]

    refs = audio_refs(
        parse_tasks(json.dumps([task("/data/upload/2/0a1b2c3d-x.wav", file_upload="0a1b2c3d-x.wav")]))[0]
    )
    assert refs == ["data/upload/2/0a1b2c3d-x.wav", "0a1b2c3d-x.wav", "x.wav"]
    local = audio_refs(parse_tasks(json.dumps([task("/data/local-files/?d=sub/dir/y%20z.wav")]))[0])
    assert local[0] == "sub/dir/y z.wav"
    s3 = audio_refs(parse_tasks(json.dumps([task("s3://bucket/clips/q.flac")]))[0])
    assert s3 == ["clips/q.flac", "q.flac"]
    (ann,) = parse_tasks(json.dumps([{"data": {"audio": "a"}, "annotations": [
        {"result": [], "completed_by": {"id": 4, "email": "kim@example.org"}}]}]))[0].annotations  # fmt: skip
    assert identity(ann) == "kim@example.org"
