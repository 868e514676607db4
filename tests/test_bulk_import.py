"""Bulk imports of manifests (CSV and JSONL): referenced in place, deduplicated by content,
with a per-row rejection report, resumable after an interruption, through the API and the engine."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import time
from pathlib import Path

import fsspec
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_support import RECORDINGS, annotator
from listenloop.engine import bulk_import as bulk
from listenloop.engine.accounts import create_user, hash_password
from listenloop.server import create_app
from listenloop.store.models import Clip, ImportJob

FILES = sorted(RECORDINGS.glob("*.wav"))


@pytest.fixture
def setup(tmp_path: Path):
    data = tmp_path / "data"
    pool = tmp_path / "pool"
    pool.mkdir()
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", data, learning=False, import_root=pool)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with TestClient(app) as c:
        tok = c.post("/api/v1/token", data={"username": "owner", "password": "owner-pass-1"}).json()
        headers = {"Authorization": f"Bearer {tok['access_token']}"}
        body = {"name": "d", "task_type": "classification", "classes": [str(i) for i in range(10)]}
        pid = c.post("/api/v1/projects", headers=headers, json=body).json()["id"]
        yield c, headers, pid, data, pool


def wait_done(c: TestClient, h: dict[str, str], pid: int, job: int) -> dict:
    for _ in range(300):
        r = c.get(f"/api/v1/projects/{pid}/imports/{job}", headers=h)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("done", "failed"):
            return r.json()
        time.sleep(0.1)
    raise AssertionError(f"import {job} did not finish: {r.json()}")


def report(c: TestClient, h: dict[str, str], pid: int, job: int) -> list[dict[str, str]]:
    r = c.get(f"/api/v1/projects/{pid}/imports/{job}/rejected", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.text)))


def clips_of(db, pid: int) -> dict[str, Clip]:
    with db.read() as session:
        return {c.file_name: c for c in session.scalars(select(Clip).where(Clip.project_id == pid))}


def test_csv_manifest_is_imported_in_place_with_a_rejection_report(setup) -> None:
    c, h, pid, data, pool = setup
    for f in FILES[:4]:
        shutil.copy(f, pool / f.name)
    shutil.copy(FILES[0], pool / "copy-of-first.wav")  # same content, another name
    (pool / "text.wav").write_text("not audio at all\n" * 20)
    outside = pool.parent / "outside.wav"
    shutil.copy(FILES[5], outside)
    a, b, d, e = (f.name for f in FILES[:4])
    rows = [
        ["uri", "label", "group", "mic"],
        [a, a[0], "george", "m1"],  # row 1: relative to the import root, a seed label
        [str(pool / b), "", "jackson", "m2"],  # row 2: absolute path under the root
        [f"file://{pool / d}", "", "", ""],  # row 3: a file:// uri
        ["nowhere.wav", "", "", ""],  # row 4: missing file
        ["text.wav", "", "", ""],  # row 5: unreadable audio
        [e, "eleven", "", ""],  # row 6: bad label
        ["copy-of-first.wav", "", "", ""],  # row 7: duplicate content
        [a, "", "", ""],  # row 8: the same uri again
        [str(outside), "", "", ""],  # row 9: outside the import root
        ["notes.txt", "", "", ""],  # row 10: not an audio file name
    ]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    r = c.post(f"/api/v1/projects/{pid}/imports", headers=h, files={"manifest": ("m.csv", buf.getvalue())})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running", "done") and job["format"] == "csv"
    done = wait_done(c, h, pid, job["id"])
    assert done["status"] == "done", done
    assert (done["rows"], done["added"], done["rejected"], done["duplicates"]) == (10, 3, 7, 2)
    assert done["progress"] == 1.0 and done["bytes_read"] == done["size_bytes"]
    reasons = {int(x["row"]): (x["uri"], x["reason"]) for x in report(c, h, pid, job["id"])}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 10]
    assert reasons[4] == ("nowhere.wav", "missing file")
    assert reasons[5][1].startswith("unreadable audio")
    assert reasons[6][1].startswith("bad label")
    assert "same audio" in reasons[7][1] and "uri" in reasons[8][1]
    assert reasons[9][1] == "outside the import root"
    assert reasons[10][1].startswith("not an audio file name")
    clips = clips_of(c.app.state.db, pid)
    assert set(clips) == {a, str(pool / b), f"file://{pool / d}"}
    # referenced in place: the clip's path is the file itself, nothing copied into the data folder
    assert clips[a].path == str((pool / a).resolve())
    assert not (data / "audio").exists() or not any((data / "audio").rglob("*.wav"))
    assert clips[a].seed_label == a[0] and clips[a].status == "done"
    assert clips[a].meta == {"group": "george", "mic": "m1"}
    second = clips[str(pool / b)]
    assert second.meta == {"group": "jackson", "mic": "m2"} and second.status == "queued"
    assert clips[f"file://{pool / d}"].meta is None
    # files referenced in place take none of the project's storage quota
    assert c.get(f"/api/v1/projects/{pid}/status", headers=h).json()["storage"]["used_bytes"] == 0
    # the owner hears a referenced clip like any other
    audio = c.get(f"/api/v1/clips/{clips[a].id}/audio", headers=h)
    assert audio.status_code == 200 and audio.content == (pool / a).read_bytes()
    listed = c.get(f"/api/v1/projects/{pid}/imports", headers=h).json()
    assert [j["id"] for j in listed] == [job["id"]]
    # a second import of the same files adds nothing: every row is a duplicate
    again_csv = f"uri\n{a}\n{d}\n"
    r = c.post(f"/api/v1/projects/{pid}/imports", headers=h, files={"manifest": ("again.csv", again_csv)})
    again = wait_done(c, h, pid, r.json()["id"])
    assert (again["added"], again["duplicates"]) == (0, 2)


def test_jsonl_from_an_fsspec_store_is_fetched_once_and_deduplicated(setup, tmp_path: Path) -> None:
    c, _, pid, data, _ = setup
    fs = fsspec.filesystem("memory")
    base = f"memory://bulk-{pid}-{tmp_path.name}"
    for f in FILES[:3]:
        fs.pipe(f"{base}/{f.name}", f.read_bytes())
    fs.pipe(f"{base}/again.wav", FILES[0].read_bytes())
    lines = [
        {"uri": f"{base}/{FILES[0].name}", "label": FILES[0].name[0], "group": "g1", "take": 3},
        {"uri": f"{base}/{FILES[1].name}", "meta_note": "quiet"},
        "not an object",
        {"label": "1"},
        {"uri": f"{base}/again.wav"},
        {"uri": f"{base}/missing.wav"},
        {"uri": f"{base}/{FILES[2].name}"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    db = c.app.state.db
    with db.write() as session:
        from listenloop.engine.projects import load_project

        job = bulk.create_job(
            session,
            load_project(session, pid),
            manifest,
            source="m.jsonl",
            fmt="jsonl",
            sources=bulk.Sources(protocols=frozenset({"memory"})),
            user_id=None,
        )
        job_id = job.id
    assert bulk.run_job(db, data, job_id, chunk_rows=3) == "done"
    with db.read() as session:
        j = session.get(ImportJob, job_id)
        assert (j.rows, j.added, j.duplicates, j.rejected) == (7, 3, 1, 4)
    clips = clips_of(db, pid)
    first = clips[f"{base}/{FILES[0].name}"]
    assert first.meta == {"group": "g1", "take": 3} and first.seed_label == FILES[0].name[0]
    # fetched into the content store (the server cannot open a memory:// or s3:// file itself)
    assert first.path == f"audio/{first.sha256[:2]}/{first.sha256}.wav"
    assert (data / first.path).read_bytes() == FILES[0].read_bytes()
    assert len(list((data / "audio").rglob("*.wav"))) == 3
    with db.read() as session:  # fetched audio counts toward the quota
        from listenloop.store.models import Project

        assert session.get(Project, pid).stored_bytes == sum(f.stat().st_size for f in FILES[:3])
    text = (bulk.job_dir(data, job_id) / bulk.REPORT_NAME).read_text().splitlines()
    rows = {int(r[0]): r[2] for r in csv.reader(text[1:])}
    assert rows[3] == "not a JSON object" and rows[4] == "no uri"
    assert "same audio" in rows[5] and rows[6] == "missing file"


def test_an_interrupted_import_resumes_where_it_stopped(setup, tmp_path: Path) -> None:
    c, h, pid, data, pool = setup
    names = []
    for f in FILES[:9]:
        shutil.copy(f, pool / f.name)
        names.append(f.name)
    uris = [*names[:4], "gone-1.wav", *names[4:], "gone-2.wav"]  # rows 5 and 11 missing
    manifest = tmp_path / "m.csv"
    manifest.write_text("uri\n" + "\n".join(uris) + "\n")
    db = c.app.state.db
    c.app.state.imports.stop()  # this test runs the job itself
    with db.write() as session:
        from listenloop.engine.projects import load_project

        job_id = bulk.create_job(
            session,
            load_project(session, pid),
            manifest,
            source="m.csv",
            fmt="csv",
            sources=bulk.Sources(root=pool.resolve(), base=pool.resolve()),
            user_id=None,
        ).id
    stop = threading.Event()
    seen: list[dict] = []

    def progress(p: dict) -> None:
        seen.append(p)
        if p["rows"] >= 6:
            stop.set()  # interrupted after two chunks of three rows

    token = bulk.take_job(db, job_id)
    assert token is not None and bulk.take_job(db, job_id) is None  # held: nobody else runs it
    run = bulk.ImportRun(db, data, job_id, token, chunk_rows=3, stop=stop, progress=progress)
    assert run.run() == "running"
    with db.read() as session:
        j = session.get(ImportJob, job_id)
        assert (j.status, j.rows, j.added, j.rejected) == ("running", 6, 5, 1)
        offset = j.offset
    assert manifest.read_bytes()[:offset].decode().splitlines()[-1] == uris[5]
    # a crash after writing a chunk's rejections but before committing them: the resume drops them
    with open(bulk.job_dir(data, job_id) / bulk.REPORT_NAME, "a") as f:
        f.write("99,ghost.wav,never committed\n")
    # the process died: its lease runs out, and a new one takes the job over
    assert bulk.due_jobs(db) == []
    with db.write() as session:
        session.get(ImportJob, job_id).lease_until = None
    assert bulk.due_jobs(db) == [job_id]
    assert bulk.run_job(db, data, job_id, chunk_rows=3) == "done"
    with db.read() as session:
        j = session.get(ImportJob, job_id)
        assert (j.status, j.rows, j.added, j.rejected, j.duplicates) == ("done", 11, 9, 2, 0)
    assert set(clips_of(db, pid)) == set(names)
    rows = report(c, h, pid, job_id)
    assert [(r["row"], r["uri"], r["reason"]) for r in rows] == [
        ("5", "gone-1.wav", "missing file"),
        ("11", "gone-2.wav", "missing file"),
    ]


def test_bad_manifests_and_callers_are_refused(setup) -> None:
    c, h, pid, _, _ = setup
    url = f"/api/v1/projects/{pid}/imports"
    r = c.post(url, headers=h, files={"manifest": ("m.csv", "name,label\nx.wav,1\n")})
    assert r.status_code == 422 and "uri column" in r.json()["detail"]
    r = c.post(url, headers=h, files={"manifest": ("m.csv", "")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = c.post(url, headers=h, files={"manifest": ("m.csv", "uri\nx.wav\n")}, data={"format": "xml"})
    assert r.status_code == 422
    with c.app.state.db.read() as session:
        assert session.scalars(select(ImportJob)).all() == []  # nothing queued by a refused request
    who = annotator(c, "ann")
    assert c.post(url, headers=who, files={"manifest": ("m.csv", "uri\nx.wav\n")}).status_code == 403
    assert c.get(f"{url}/1", headers=h).status_code == 404
    assert c.get(f"{url}/0", headers=h).status_code == 422
    assert c.get(f"/api/v1/projects/{pid + 100}/imports", headers=h).status_code == 404
    job = c.post(url, headers=h, files={"manifest": ("m.csv", "uri\nx.wav\n")}).json()["id"]
    assert c.get(f"{url}/{job}", headers=who).status_code == 403
    assert c.get(f"{url}/{job}/rejected", headers=who).status_code == 403
    c.app.state.import_root = None
    r = c.post(url, headers=h, files={"manifest": ("m.csv", "uri\nx.wav\n")})
    assert r.status_code == 422 and "--import-root" in r.json()["detail"]


def test_locate_keeps_uris_to_what_the_job_allows(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    sources = bulk.Sources(root=root, base=root)
    assert bulk.locate("a/b.wav", sources) == (str(root / "a/b.wav"), False)
    for bad, why in [
        ("../x.wav", "outside the import root"),
        ("/etc/passwd.wav", "outside the import root"),
        ("s3://bucket/x.wav", "not allowed"),
        ("x" * 600 + ".wav", "longer than"),
    ]:
        with pytest.raises(ValueError, match=why):
            bulk.locate(bad, sources)
    (tmp_path / "link.wav").symlink_to("/etc/hostname")
    with pytest.raises(ValueError, match="outside"):
        bulk.locate("link.wav", sources)
    anywhere = bulk.Sources(base=root, protocols=frozenset({"*"}))
    assert bulk.locate("s3://bucket/x.wav", anywhere) == ("s3://bucket/x.wav", True)
    assert bulk.locate("/etc/x.wav", anywhere) == ("/etc/x.wav", False)


def test_deleting_the_project_leaves_files_referenced_in_place(setup) -> None:
    c, h, pid, _, pool = setup
    a, b = FILES[0].name, FILES[1].name
    for f in FILES[:2]:
        shutil.copy(f, pool / f.name)
    listing = f"uri\n{a}\n{b}\n"
    r = c.post(f"/api/v1/projects/{pid}/imports", headers=h, files={"manifest": ("m.csv", listing)})
    assert wait_done(c, h, pid, r.json()["id"])["added"] == 2
    r = c.request("DELETE", f"/api/v1/projects/{pid}", headers=h, json={"confirm": "d"})
    assert r.status_code == 200, r.text
    assert r.json()["files_removed"] == 0
    assert (pool / a).read_bytes() == FILES[0].read_bytes() and (pool / b).exists()  # the owner's files
