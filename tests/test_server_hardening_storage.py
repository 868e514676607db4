"""Issue 15 (storage and membership): a removed member's leases end, CSV exports escape formulas,
start-up cleans what a crash left, and uploads are bounded by whole-archive expansion and a
per-project storage quota."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from api_support import annotator, login, wavs, zip_of

DIGITS = [str(i) for i in range(10)]


def _project(c: TestClient, oh: dict[str, str], n_clips: int, **extra: object) -> int:
    body = {"name": "digits", "task_type": "classification", "classes": DIGITS, **extra}
    pid = c.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    if n_clips:
        files = {"archive": ("a.zip", zip_of(wavs(n_clips)))}
        assert c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).status_code == 201
    return pid


def test_a_removed_member_cannot_answer_their_open_lease(client: TestClient) -> None:
    """Finding 12: DELETE …/members ends the removed member's open leases, as blocking does."""
    oh = login(client, "owner", "owner-pass-1")
    pid = _project(client, oh, 2, invite_only=True)
    ah = annotator(client, "ann")
    client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
    r = client.request("DELETE", f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    assert r.status_code == 200 and r.json()["active"] is False
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 403, r.text
    assert "blocked" in r.json()["detail"]
    answers = client.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text
    assert list(csv.DictReader(io.StringIO(answers))) == []
    # invited again: the old lease stays ended (no answer to it), a new task works
    client.post(f"/api/v1/projects/{pid}/members", headers=oh, json={"username": "ann"})
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 409, r.text
    task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "1"})
    assert r.status_code == 201, r.text


FORMULAS = ["=1+1", "+SUM(1)", "-2+3", "@A1"]


def test_csv_exports_escape_formulas_in_text_cells(client: TestClient) -> None:
    """Finding 11: file names, classes and answers that start like a formula get a leading `'`."""
    oh = login(client, "owner", "owner-pass-1")
    body = {"name": "f", "task_type": "classification", "classes": FORMULAS, "redundancy": {"min": 1}}
    pid = client.post("/api/v1/projects", headers=oh, json=body).json()["id"]
    audio = list(wavs(4).values())
    names = ["=HYPERLINK(1).wav", "@cmd.wav", "+x.wav", "-y.wav"]
    files = {"archive": ("a.zip", zip_of(dict(zip(names, audio, strict=True))))}
    seeds = "file,label\n" + "".join(f"{n},{c}\n" for n, c in zip(names[:2], FORMULAS, strict=False))
    r = client.post(f"/api/v1/projects/{pid}/clips", headers=oh, files={**files, "labels": ("l.csv", seeds)})
    assert r.status_code == 201 and r.json()["added"] == 4, r.text
    ah = annotator(client, "ann")
    task = client.get(f"/api/v1/projects/{pid}/next", headers=ah).json()
    r = client.post(f"/api/v1/tasks/{task['task_id']}/answer", headers=ah, json={"answer": "@A1"})
    assert r.status_code == 201, r.text

    text = client.get(f"/api/v1/projects/{pid}/export?format=csv", headers=oh).text
    rows = {row["file"]: row for row in csv.DictReader(io.StringIO(text))}
    assert set(rows) == {"'" + n for n in names}, text
    assert rows["'=HYPERLINK(1).wav"]["label"] == "'=1+1"
    assert rows["'@cmd.wav"]["label"] == "'+SUM(1)"
    assert rows["'@cmd.wav"]["confidence"] == "1.0"  # numbers stay numbers
    answers = client.get(f"/api/v1/projects/{pid}/answers?format=csv", headers=oh).text
    assert next(csv.DictReader(io.StringIO(answers)))["answer"] == "'@A1"
    # JSONL is data for programs, not spreadsheets: unchanged
    jsonl = client.get(f"/api/v1/projects/{pid}/export?format=jsonl", headers=oh).text
    assert '"file":"=HYPERLINK(1).wav"' in jsonl


def test_csv_escapes_text_cells_only() -> None:
    """Numbers (also negative ones, and decimal text like a continuous answer) stay numbers."""
    from listenloop.engine.exports import escape_formula, to_csv

    cells = {
        "a": -0.5,
        "b": "-0.5",
        "c": "-1e3",
        "d": "+7",
        "e": "-",
        "f": "-x",
        "i": "=1",
        "j": "a=1",
        "k": -3,
        "l": "@",
    }
    row = next(csv.DictReader(io.StringIO(to_csv([cells], list(cells)))))
    assert row == {
        "a": "-0.5",
        "b": "-0.5",
        "c": "-1e3",
        "d": "+7",
        "e": "'-",
        "f": "'-x",
        "i": "'=1",
        "j": "a=1",
        "k": "-3",
        "l": "'@",
    }
    # tab and CR cannot reach a cell today (names refuse control characters, classes are
    # stripped), but they start formulas too
    assert escape_formula("\tx") == "'\tx" and escape_formula("\r=1") == "'\r=1"
