"""Events projects (issue 20): a long recording is cut into overlapping segments, annotators
mark the classes they hear in each, and the owner exports strong soft and hard labels
(MAESTRO-Real style) computed by the crowd engine's one soft-label implementation."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import soundfile
from fastapi.testclient import TestClient

from api_support import annotator, login, zip_of
from listenloop.crowd.soft_labels import weak_to_strong
from listenloop.engine.uploads import segment_onsets


def long_wav(seconds: float, sr: int = 8000) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    soundfile.write(buf, signal.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_segment_onsets() -> None:
    assert segment_onsets(9.0, 4.0, 2.0) == [0.0, 2.0, 4.0]
    assert segment_onsets(25.5, 10.0, 1.0) == [float(k) for k in range(16)]
    assert segment_onsets(3.0, 10.0, 1.0) == [0.0]  # shorter than a segment: one segment


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
    assert up.status_code == 201 and up.json() == {"added": 3, "rejected": []}, up.text
    # Two annotators answer every segment: ann hears a car, bob a car and a bird.
    said = {"ann": ["car"], "bob": ["car", "bird"]}
    for name, tags in said.items():
        h = annotator(client, name)
        for _ in range(3):
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
    assert {"street.wav@0s", "street.wav@2s", "street.wav@4s"} <= set(clips.split(",")) | {
        line.split(",")[1] for line in clips.splitlines()[1:]
    }
    # Strong labels: sub-segments [0,2) [2,4) [4,6) [6,8); the last second is in no segment.
    soft = client.get(f"/api/v1/projects/{pid}/export/events?recording=street.wav&labels=soft", headers=oh)
    assert soft.status_code == 200, soft.text
    lines = soft.text.splitlines()
    assert lines[:2] == ["0\t2\tcar\t1", "0\t2\tbird\t0.5"] and len(lines) == 8
    hard = client.get(f"/api/v1/projects/{pid}/export/events?recording=street.wav&labels=hard", headers=oh)
    assert hard.text == "0\t8\tcar\n"
    # The same numbers as the crowd engine's weak_to_strong on the answers (equal competence).
    answers = pd.DataFrame(
        [("street.wav", on, n, "|".join(t)) for n, t in said.items() for on in (0, 2, 4)],
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
    assert client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=archive).json()["added"] == 3
    gold = b"file,label\nstreet.wav@2s,car|bird\nstreet.wav@4s,\nstreet.wav@6s,car\n"
    r = client.post(f"/api/v1/projects/{pid}/gold", headers=oh, files={"file": ("g.csv", gold)})
    assert r.status_code == 201, r.text
    assert r.json()["marked"] == 2 and [x["file"] for x in r.json()["rejected"]] == ["street.wav@6s"]
