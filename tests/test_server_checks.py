"""Checks cannot be told from regular tasks through the API (issue 16): `next` and `answer`
replies have one shape and one points rule for every kind, a repeated clip comes under a new
task-addressed URL, and a task's audio is its annotator's (and the owner's) alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api_support import annotator, login, wavs
from listenloop.crowd.redundancy import CANT_TELL
from listenloop.engine.gamification import CANT_TELL_POINTS, POINTS_PER_ANSWER
from listenloop.engine.live import tasks as engine_tasks
from listenloop.store.models import Task
from test_server_api import answers_csv, new_project, upload


def test_replies_have_one_shape_and_one_points_rule_for_every_kind(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_tasks, "CONSISTENCY_DELAY", timedelta(0))  # repeats at once
    oh = login(client, "owner", "owner-pass-1")
    pid = new_project(client, oh, control_rate=0.3, consistency_rate=0.1, redundancy={"min": 1, "max": 1})
    files = wavs(40)
    upload(client, oh, pid, files)
    gold = "file,label\n" + "".join(f"{n},{n.split('_')[0]}\n" for n in list(files)[:5])
    r = client.post(f"/api/v1/projects/{pid}/gold", headers=oh, files={"file": ("g.csv", gold.encode())})
    assert r.status_code == 201, r.text
    ah, other = annotator(client, "ann"), annotator(client, "bob")
    db = client.app.state.db  # type: ignore[attr-defined]
    seen: dict[str, list[tuple[dict, dict]]] = {"regular": [], "control": [], "consistency": []}
    urls, clips_of_urls = set(), {}
    for i in range(30):
        r = client.get(f"/api/v1/projects/{pid}/next", headers=ah)
        if r.status_code == 204:
            break
        task = r.json()
        with db.read() as s:
            stored = s.get(Task, task["task_id"])
            kind, clip = stored.kind, stored.clip_id
        answer = CANT_TELL if i % 4 == 3 else "3"
        reply = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": answer})
        assert reply.status_code == 201, reply.text
        seen[kind].append((task, {**reply.json(), "answer": answer}))
        assert task["audio_url"] not in urls  # a repeated clip comes under a URL never seen before
        urls.add(task["audio_url"])
        clips_of_urls[task["audio_url"]] = clip
        assert client.get(task["audio_url"], headers=other).status_code == 403
        if i < 3:  # undated: a control clip uploaded apart, or a picture rendered earlier, is dated apart
            for url in (task["audio_url"], task["spectrogram_url"]):
                heard = client.get(url, headers=ah)
                assert heard.status_code == 200 and not {"last-modified", "etag"} & set(heard.headers)
    assert all(seen[k] for k in seen), {k: len(v) for k, v in seen.items()}
    shapes = {(tuple(sorted(t)), tuple(sorted(set(a) - {"answer"}))) for v in seen.values() for t, a in v}
    assert shapes == {
        (
            ("audio_url", "leased_until", "question", "spectrogram_url", "task_id"),
            ("level", "points", "task_id", "total_points"),
        )
    }
    for kind, pairs in seen.items():
        for _, reply in pairs:
            expected = CANT_TELL_POINTS if reply["answer"] == CANT_TELL else POINTS_PER_ANSWER
            assert reply["points"] == expected, (kind, reply)
    assert len(set(clips_of_urls.values())) < len(clips_of_urls)  # some clip did come back
    # owners keep the real clip ids
    assert {int(r["clip_id"]) for r in answers_csv(client, oh, pid)} == set(clips_of_urls.values())
