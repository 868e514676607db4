"""Events projects (issue 20): a long recording is cut into overlapping segments, annotators
mark the classes they hear in each, and the owner exports strong soft and hard labels
(MAESTRO-Real style) computed by the crowd engine's one soft-label implementation."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import annotator, login, zip_of
from listenloop.crowd.redundancy import MIN_WEIGHT
from listenloop.crowd.soft_labels import soft_labels, weak_to_strong
from listenloop.engine.learning.service import LearningService
from listenloop.engine.uploads import segment_name, segment_onsets
from listenloop.sed.labels import mace_competence
from listenloop.store.models import Clip, Task, User, WorkerTrust


def long_wav(seconds: float, sr: int = 8000) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    soundfile.write(buf, signal.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_segment_onsets() -> None:
    """Every second of the file is in a segment: the hops leave a remainder, a final segment
    ends at the end."""
    assert segment_onsets(9.0, 4.0, 2.0) == [0.0, 2.0, 4.0, 5.0]
    assert segment_onsets(9.0, 5.0, 2.0) == [0.0, 2.0, 4.0]  # 4 + 5 = 9: no remainder
    assert segment_onsets(25.5, 10.0, 1.0) == [*(float(k) for k in range(16)), 15.5]
    assert segment_onsets(20.0004, 10.0, 1.0) == [float(k) for k in range(11)]  # < 1 ms: no segment
    assert segment_onsets(3.0, 10.0, 1.0) == [0.0]  # shorter than a segment: one segment
    assert segment_name("a.wav", 15.5) == "a.wav@15.5s" and segment_name("a.wav", 2.0) == "a.wav@2s"
    assert segment_name("a.wav", 290.0126) == "a.wav@290.013s"


def test_events_config_rules(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    base = {"name": "street", "task_type": "events", "classes": ["car", "bird"]}
    r = client.post("/api/v1/projects", headers=oh, json={**base, "segment_seconds": 4, "hop_seconds": 3})
    assert r.status_code == 422 and "whole number of hops" in r.text
    r = client.post(
        "/api/v1/projects", headers=oh, json={**base, "task_type": "multilabel", "segment_seconds": 4}
    )
    assert r.status_code == 422 and "Segments are for events projects" in r.text
    r = client.post("/api/v1/projects", headers=oh, json=base)
    assert r.status_code == 201, r.text
    project = client.get(f"/api/v1/projects/{r.json()['id']}", headers=oh).json()
    assert (project["segment_seconds"], project["hop_seconds"]) == (10.0, 1.0)


def test_events_project_end_to_end(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {
        "name": "street",
        "task_type": "events",
        "classes": ["car", "bird"],
        "segment_seconds": 4,
        "hop_seconds": 2,
        "redundancy": {"min": 2, "max": 2, "tau": 0.9},
        "control_rate": 0.0,
        "consistency_rate": 0.0,
    }
    r = client.post("/api/v1/projects", headers=oh, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    up = client.post(
        f"/api/v1/projects/{pid}/clips",
        headers=oh,
        files={"archive": ("a.zip", zip_of({"street.wav": long_wav(9.0)}))},
    )
    assert up.status_code == 201 and up.json() == {"added": 4, "rejected": []}, up.text
    # Two annotators answer every segment: ann hears a car, bob a car and a bird.
    said = {"ann": ["car"], "bob": ["car", "bird"]}
    for name, tags in said.items():
        h = annotator(client, name)
        for _ in range(4):
            task = client.get(f"/api/v1/projects/{pid}/next", headers=h)
            assert task.status_code == 200, task.text
            q = task.json()["question"]
            assert q["type"] == "multilabel" and q["choices"] == ["car", "bird"]
            assert client.get(task.json()["spectrogram_url"], headers=h).status_code == 200
            audio = client.get(task.json()["audio_url"], headers=h)
            assert audio.status_code == 200
            seg, sr = soundfile.read(io.BytesIO(audio.content))
            assert len(seg) == 4 * sr  # the segment, not the whole recording
            ok = client.post(
                f"/api/v1/tasks/{task.json()['task_id']}/answer", headers=h, json={"answer": tags}
            )
            assert ok.status_code == 201, ok.text
        assert client.get(f"/api/v1/projects/{pid}/next", headers=h).status_code == 204
    clips = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    assert {"street.wav@0s", "street.wav@2s", "street.wav@4s", "street.wav@5s"} <= set(clips.split(",")) | {
        line.split(",")[1] for line in clips.splitlines()[1:]
    }
    # Strong labels: sub-segments [0,2) [2,4) [4,6) [6,8) [8,9): the final segment [5,9)
    # covers the last second.
    soft = client.get(f"/api/v1/projects/{pid}/export/events?recording=street.wav&labels=soft", headers=oh)
    assert soft.status_code == 200, soft.text
    lines = soft.text.splitlines()
    assert lines[:2] == ["0\t2\tcar\t1", "0\t2\tbird\t0.5"] and len(lines) == 10
    assert lines[-2:] == ["8\t9\tcar\t1", "8\t9\tbird\t0.5"]
    hard = client.get(f"/api/v1/projects/{pid}/export/events?recording=street.wav&labels=hard", headers=oh)
    assert hard.text == "0\t9\tcar\n"
    # The same numbers as the crowd engine's weak_to_strong on the answers (equal competence).
    answers = pd.DataFrame(
        [("street.wav", on, n, "|".join(t)) for n, t in said.items() for on in (0, 2, 4, 5)],
        columns=["recording", "onset", "worker", "label"],
    )
    expected = weak_to_strong(answers, segment=4, hop=2, classes=["car", "bird"])
    assert [float(line.split("\t")[3]) for line in lines] == list(expected.to_numpy().ravel())
    z = client.get(f"/api/v1/projects/{pid}/export/events", headers=oh)
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert sorted(names) == ["hard/street.wav.txt", "soft/street.wav.txt"]
    # Bad requests are 4xx: an unknown recording, a project of another type, an annotator.
    r = client.get(f"/api/v1/projects/{pid}/export/events?recording=nope.wav", headers=oh)
    assert r.status_code == 404
    other = client.post(
        "/api/v1/projects", headers=oh, json={"name": "m", "task_type": "multilabel", "classes": ["a"]}
    ).json()["id"]
    assert client.get(f"/api/v1/projects/{other}/export/events", headers=oh).status_code == 422
    assert (
        client.get(f"/api/v1/projects/{pid}/export/events", headers=annotator(client, "eve")).status_code
        == 403
    )


def test_events_control_segments_by_name(client: TestClient) -> None:
    """A segment is a clip like any other: the owner marks control segments by their names."""
    oh = login(client, "owner", "owner-pass-1")
    body = {
        "name": "s",
        "task_type": "events",
        "classes": ["car", "bird"],
        "segment_seconds": 4,
        "hop_seconds": 2,
    }
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    archive = {"archive": ("a.zip", zip_of({"street.wav": long_wav(9.0)}))}
    assert client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=archive).json()["added"] == 4
    gold = b"file,label\nstreet.wav@2s,car|bird\nstreet.wav@4s,\nstreet.wav@6s,car\n"
    r = client.post(f"/api/v1/projects/{pid}/gold", headers=oh, files={"file": ("g.csv", gold)})
    assert r.status_code == 201, r.text
    assert r.json()["marked"] == 2 and [x["file"] for x in r.json()["rejected"]] == ["street.wav@6s"]


def test_events_soft_labels_weight_annotators_by_mace_competence(client: TestClient, tmp_path) -> None:
    """The background refresh fits MACE on an events project's presence marks and stores each
    annotator's θ as their skill; the export's soft labels (strong and per segment) then weight
    by it: an annotator who marks at random counts for almost nothing, unlike in the plain mean.
    Before the refresh everyone is at the unknown worker's prior (the plain mean)."""
    oh = login(client, "owner", "owner-pass-1")
    body = {
        "name": "street",
        "task_type": "events",
        "classes": ["car", "bird"],
        "segment_seconds": 4,
        "hop_seconds": 2,
        "redundancy": {"min": 4, "max": 4, "tau": 0.99},
        "control_rate": 0.0,
        "consistency_rate": 0.0,
    }
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    archive = {"archive": ("a.zip", zip_of({"street.wav": long_wav(60.0, sr=2000)}))}
    onsets = segment_onsets(60.0, 4.0, 2.0)
    assert client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=archive).json()["added"] == len(
        onsets
    )
    rng = np.random.default_rng(1)
    truth = {on: [c for c in ("car", "bird") if rng.random() < 0.5] for on in onsets}
    noise = {on: [c for c in ("car", "bird") if rng.random() < 0.5] for on in onsets}  # rnd's marks
    db = client.app.state.db
    said = []
    for name in ("ann", "bob", "cat", "rnd"):
        h = annotator(client, name)
        while (task := client.get(f"/api/v1/projects/{pid}/next", headers=h)).status_code == 200:
            task_id = task.json()["task_id"]
            with db.read() as s:
                onset = s.scalar(
                    select(Clip.onset).join(Task, Task.clip_id == Clip.id).where(Task.id == task_id)
                )
            tags = noise[onset] if name == "rnd" else truth[onset]
            said.append(("street.wav", onset, name, "|".join(tags)))
            r = client.post(f"/api/v1/tasks/{task_id}/answer", headers=h, json={"answer": tags})
            assert r.status_code == 201, r.text
    answers = pd.DataFrame(said, columns=["recording", "onset", "worker", "label"])
    assert len(answers) == 4 * len(onsets)
    plain = weak_to_strong(answers, segment=4, hop=2, classes=["car", "bird"])

    def exported() -> np.ndarray:
        text = client.get(f"/api/v1/projects/{pid}/export/events?recording=street.wav", headers=oh).text
        return np.array([float(line.split("\t")[3]) for line in text.splitlines()])

    np.testing.assert_allclose(exported(), plain.to_numpy().ravel(), atol=1e-6)  # prior for all
    service = LearningService(db, tmp_path, inline=True)
    assert pid in service.skills_due_projects()
    outcome = service.refresh_skills(pid)
    assert outcome.state == "ran", outcome.error
    with db.read() as s:
        rows = s.execute(
            select(User.username, WorkerTrust.skill, WorkerTrust.confusion)
            .join(WorkerTrust, WorkerTrust.user_id == User.id)
            .where(WorkerTrust.project_id == pid)
        ).all()
    theta = {name: skill for name, skill, _ in rows}
    assert all(confusion is None for *_, confusion in rows)  # MACE: a competence, no matrix
    assert theta["rnd"] < 0.25 and min(theta["ann"], theta["bob"], theta["cat"]) > 0.9, theta
    # The same θ as `listenloop sed labels` fits on the same answers (one implementation).
    cli = mace_competence(answers, ["car", "bird"])
    assert {n: float(cli[n]) for n in theta} == pytest.approx(theta, abs=0.02)
    # The random annotator is also flagged by spammer detection (weight at the floor); once the
    # owner clears the flag, their MACE θ is their weight.
    members = client.get(f"/api/v1/projects/{pid}/annotators", headers=oh)
    assert members.status_code == 200, members.text
    flagged = {a["username"] for a in members.json() if a["flagged"]}
    assert flagged == {"rnd"}
    floor = {n: (MIN_WEIGHT if n in flagged else t) for n, t in theta.items()}
    np.testing.assert_allclose(
        exported(),
        weak_to_strong(answers, floor, segment=4, hop=2, classes=["car", "bird"]).to_numpy().ravel(),
        atol=1e-5,
    )
    r = client.patch(f"/api/v1/projects/{pid}/annotators/rnd", headers=oh, json={"flagged": False})
    assert r.status_code == 200, r.text
    weighted = weak_to_strong(answers, theta, segment=4, hop=2, classes=["car", "bird"])
    after = exported()
    np.testing.assert_allclose(after, weighted.to_numpy().ravel(), atol=1e-5)
    assert np.abs(after - plain.to_numpy().ravel()).max() > 0.1  # not the plain mean
    true_strong = (
        weak_to_strong(
            pd.DataFrame(
                [("street.wav", on, "t", "|".join(t)) for on, t in truth.items()], columns=answers.columns
            ),
            segment=4,
            hop=2,
            classes=["car", "bird"],
        )
        .to_numpy()
        .ravel()
    )
    assert np.abs(after - true_strong).mean() < np.abs(plain.to_numpy().ravel() - true_strong).mean() / 2
    # Per segment, the clip export's soft labels weight by the same θ.
    per_clip = soft_labels(answers.assign(item=answers["onset"].astype(str)), theta, classes=["car", "bird"])
    jsonl = client.get(f"/api/v1/projects/{pid}/export?format=jsonl", headers=oh)
    assert jsonl.status_code == 200, jsonl.text
    exported_clips = [json.loads(line) for line in jsonl.text.splitlines() if line.strip()]
    got = {row["file"]: row["soft"] for row in exported_clips if row.get("file")}
    assert len(got) == len(onsets)
    for onset in onsets:
        want = per_clip.loc[str(onset)]
        assert got[segment_name("street.wav", onset)] == pytest.approx(want.to_dict(), abs=1e-5)
