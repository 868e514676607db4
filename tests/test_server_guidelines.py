"""Guidelines and examples (issue 21) through the API on SQLite and PostgreSQL: Markdown rendered
without raw HTML or script links, who may read and change them, example clips (audio for
annotators) and examples as control questions (served and checked like uploaded ones)."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import annotator, login, zip_of
from listenloop.engine.accounts import Principal
from listenloop.engine.guidelines import render_guidelines
from listenloop.engine.live.tasks import next_task
from listenloop.store.models import Clip, Task, User, WorkerTrust
from test_server_clips import DIGITS, one_per_digit

ATTACKS = """# Listen for digits

Say **which digit** you hear. <script>alert(1)</script>
<img src=x onerror="alert(2)"> [click](javascript:alert(3)) ![pic](https://evil.example/x.png)
<a href="https://evil.example" onclick="alert(4)">x</a>

| digit | sounds like |
|---|---|
| 7 | seven |
"""


def test_markdown_is_rendered_without_html_or_script() -> None:
    html = render_guidelines(ATTACKS)
    assert "<h1>Listen for digits</h1>" in html and "<strong>which digit</strong>" in html
    assert "<table>" in html and "<td>seven</td>" in html
    for bad in (
        "<script",
        "<img",
        'onerror="',
        'javascript:alert(3)"',
        'href="javascript',
        'onclick="',
    ):
        assert bad not in html, bad
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html
    assert 'href="javascript' not in render_guidelines("[x](JaVaScRiPt:alert(1)) [y](data:text/html,hi)")
    assert render_guidelines(None) == ""


def test_guidelines_and_examples_as_controls(client: TestClient) -> None:
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "guided", "task_type": "classification", "classes": DIGITS, "control_rate": 0.0}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    files = one_per_digit([0, 1, 2, 3])
    r = client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={"archive": ("a.zip", zip_of(files))})
    assert r.status_code == 201, r.text
    db = client.app.state.db
    with db.read() as s:
        ids = {int(c.file_name[0]): c.id for c in s.scalars(select(Clip).where(Clip.project_id == pid))}
    base = f"/api/v1/projects/{pid}"
    ann = annotator(client, "ann")
    # nothing yet; only the owner may change them
    empty = client.get(f"{base}/guidelines", headers=ann).json()
    assert empty["markdown"] == "" and empty["html"] == "" and empty["examples"] == []
    assert empty["examples_as_controls"] is None
    assert client.put(f"{base}/guidelines", headers=ann, json={"markdown": "x"}).status_code == 403
    r = client.put(f"{base}/guidelines", headers=oh, json={"markdown": ATTACKS})
    assert r.status_code == 200 and "<script" not in r.json()["html"], r.text
    assert client.get(f"{base}/guidelines", headers=ann).json()["html"] == render_guidelines(ATTACKS)
    too_long = {"markdown": "x" * 100_001}
    assert client.put(f"{base}/guidelines", headers=oh, json=too_long).status_code == 422
    # examples: a clip per class; annotators hear them through the guidelines
    for digit in (0, 1):
        r = client.post(f"{base}/examples", headers=oh, json={"clip_id": ids[digit], "label": str(digit)})
        assert r.status_code == 201, r.text
    assert (
        client.post(f"{base}/examples", headers=oh, json={"clip_id": ids[2], "label": "eleven"}).status_code
        == 422
    )
    assert (
        client.post(f"{base}/examples", headers=ann, json={"clip_id": ids[2], "label": "2"}).status_code
        == 403
    )
    guide = client.get(f"{base}/guidelines", headers=ann).json()
    assert [(e["example_id"], e["label"]) for e in guide["examples"]] == [(ids[0], "0"), (ids[1], "1")]
    assert client.get(guide["examples"][0]["audio_url"], headers=ann).content[:4] == b"RIFF"
    assert client.get(f"{base}/examples/{ids[2]}/audio", headers=ann).status_code == 404  # not an example
    # as control questions: the examples become gold with their class as the known answer
    r = client.put(f"{base}/guidelines", headers=oh, json={"examples_as_controls": True})
    assert r.status_code == 200 and r.json()["examples_as_controls"] is True
    assert r.json()["markdown"] == ATTACKS  # left out: kept
    with db.read() as s:
        gold = {
            c.id: c.gold_label for c in s.scalars(select(Clip).where(Clip.project_id == pid, Clip.is_gold))
        }
    assert gold == {ids[0]: "0", ids[1]: "1"}

    # served as a control question (a draw under the control rate) and checked against its class
    class Draw(random.Random):
        def random(self) -> float:
            return 0.0  # under any control rate

    r = client.patch(base, headers=oh, json={"control_rate": 0.45})
    assert r.status_code == 200, r.text
    with db.read() as s:
        user = s.scalars(select(User).where(User.username == "ann")).one()
    who = Principal(id=user.id, username="ann", role=user.role)
    with db.write() as s:
        assignment = next_task(s, pid, who, rng=Draw(1))
        t = s.get(Task, assignment.task_id)
        assert t.kind == "control" and t.clip_id in gold, (t.kind, t.clip_id)
    r = client.post(f"/api/v1/tasks/{assignment.task_id}/answer", headers=ann, json={"answer": "9"})
    assert r.status_code == 201, r.text
    with db.read() as s:
        trust = s.scalars(select(WorkerTrust).where(WorkerTrust.project_id == pid)).one()
        assert (trust.n_checked, trust.n_right) == (1, 0)  # 9 is wrong for an example of 0 or 1
    # off again: exactly what the option made goes back; removing an example too
    client.put(f"{base}/guidelines", headers=oh, json={"examples_as_controls": False})
    with db.read() as s:
        assert not s.scalars(select(Clip.id).where(Clip.project_id == pid, Clip.is_gold)).all()
    r = client.request("DELETE", f"{base}/examples/{ids[1]}", headers=oh)
    assert r.status_code == 200 and [e["label"] for e in r.json()["examples"]] == ["0"]
