"""Uploads: good zips (with seed labels), control questions, every bad kind refused with nothing stored."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_support import wavs, zip_of
from listenloop.engine.accounts import create_user, hash_password
from listenloop.engine.uploads import UploadLimits
from listenloop.server import create_app


def noise(n: int, seed: int) -> bytes:
    """Incompressible bytes."""
    return random.Random(seed).randbytes(n)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, dict[str, str], int, Path]:
    data = tmp_path / "data"
    limits = UploadLimits(max_upload_bytes=2_000_000, max_unpacked_bytes=50_000_000)
    pool = tmp_path / "pool"  # the import root of manifest uploads
    pool.mkdir()
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", data, limits=limits, learning=False, import_root=pool)
    with app.state.db.write() as session:
        create_user(session, "owner", hash_password("owner-pass-1"), "owner")
    with TestClient(app) as c:
        tok = c.post("/api/v1/token", data={"username": "owner", "password": "owner-pass-1"}).json()
        headers = {"Authorization": f"Bearer {tok['access_token']}"}
        body = {"name": "d", "task_type": "classification", "classes": [str(i) for i in range(10)]}
        pid = c.post("/api/v1/projects", headers=headers, json=body).json()["id"]
        yield c, headers, pid, data


def clip_rows(c: TestClient, h: dict[str, str], pid: int) -> list[dict[str, str]]:
    text = c.get(f"/api/v1/projects/{pid}/export?format=csv", headers=h).text
    return list(csv.DictReader(io.StringIO(text)))


def stored_audio(data: Path) -> list[Path]:
    return sorted((data / "audio").rglob("*")) if (data / "audio").exists() else []


def test_good_zip_is_stored_content_addressed_with_seed_labels(setup) -> None:
    c, h, pid, data = setup
    files = wavs(4)
    labels = "file,label\n" + "".join(f"{n},{n[0]}\n" for n in list(files)[:2]) + "nowhere.wav,3\n"
    r = c.post(
        f"/api/v1/projects/{pid}/clips",
        headers=h,
        files={
            "archive": ("a.zip", zip_of({f"sub/{n}": b for n, b in files.items()})),
            "labels": ("l.csv", labels),
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["added"] == 4 and body["rejected"] == [
        {"file": "nowhere.wav", "reason": "labels: no such clip in this upload"}
    ]
    paths = [p for p in stored_audio(data) if p.is_file()]
    assert len(paths) == 4
    for p in paths:
        assert p.parent.name == p.name[:2] and len(p.stem) == 64 and p.suffix == ".wav"
    rows = clip_rows(c, h, pid)
    seeds = [r for r in rows if r["source"] == "seed"]
    assert [(r["file"], r["label"], r["status"]) for r in seeds] == [
        (f"sub/{n}", n[0], "done") for n in list(files)[:2]
    ]
    # the same files again: duplicates, nothing added
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=h, files={"archive": ("a.zip", zip_of(files))})
    assert r.status_code == 422 and r.json()["added"] == 0
    assert {x["reason"] for x in r.json()["rejected"]} == {"the same audio is already in the project"}


def test_mixed_zip_adds_the_audio_and_names_the_rest(setup) -> None:
    c, h, pid, _ = setup
    files = {**wavs(2), "notes.txt": b"hello", "fake.wav": b"not audio" * 20, "__MACOSX/._x.wav": b"junk"}
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=h, files={"archive": ("a.zip", zip_of(files))})
    assert r.status_code == 201
    body = r.json()
    assert body["added"] == 2 and sorted(x["file"] for x in body["rejected"]) == ["fake.wav", "notes.txt"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("zip-slip", 422),
        ("absolute path", 422),
        ("text as wav", 422),
        ("truncated wav", 422),
        ("empty wav", 422),
        ("zip bomb", 422),
        ("not a zip", 422),
        ("empty zip", 422),
        ("over the size limit", 413),
        ("expands over the limit", 413),
    ],
)
def test_bad_uploads_store_nothing(setup, kind: str, expected: int) -> None:
    c, h, pid, data = setup
    good = next(iter(wavs(1).values()))
    blob = {
        "zip-slip": lambda: zip_of({"../../evil.wav": good}),
        "absolute path": lambda: zip_of({"/evil-absolute.wav": good}),
        "text as wav": lambda: zip_of({"notaudio.wav": b"this is not audio at all\n" * 50}),
        "truncated wav": lambda: zip_of({"cut.wav": good[:60]}),
        "empty wav": lambda: zip_of({"empty.wav": b""}),
        "zip bomb": lambda: zip_of({"bomb.wav": b"\0" * (20 << 20)}),
        "not a zip": lambda: b"PK\x03\x04 broken archive",
        "empty zip": lambda: zip_of({}),
        "over the size limit": lambda: zip_of({"big.wav": bytes(range(256)) * 10_000}) + b"\0" * 2_000_000,
        "expands over the limit": lambda: zip_of(
            {f"{i}.wav": noise(60_000, i) + b"\0" * 3_000_000 for i in range(20)}
        ),
    }[kind]()
    r = c.post(f"/api/v1/projects/{pid}/clips", headers=h, files={"archive": ("x.zip", blob)})
    assert r.status_code == expected, r.text
    assert r.json().get("added", 0) == 0 and r.json()["detail"]
    assert clip_rows(c, h, pid) == []
    assert [p for p in stored_audio(data) if p.is_file()] == []
    assert not any((data / "tmp").glob("upload-*"))  # temporary files are gone too
    assert not (data.parent / "evil.wav").exists() and not Path("/evil-absolute.wav").exists()


def test_gold_upload_marks_clips_and_rejects_unknown(setup) -> None:
    c, h, pid, _ = setup
    files = wavs(3)
    c.post(f"/api/v1/projects/{pid}/clips", headers=h, files={"archive": ("a.zip", zip_of(files))})
    names = list(files)
    gold = f"file,label\n{names[0]},0\n{names[1]},eleven\nmissing.wav,1\n"
    r = c.post(f"/api/v1/projects/{pid}/gold", headers=h, files={"file": ("g.csv", gold)})
    assert r.status_code == 201
    assert r.json()["marked"] == 1 and [x["file"] for x in r.json()["rejected"]] == [names[1], "missing.wav"]
    rows = {r["file"]: r for r in clip_rows(c, h, pid)}
    assert rows[names[0]]["source"] == "gold" and rows[names[0]]["label"] == "0"
    r = c.post(f"/api/v1/projects/{pid}/gold", headers=h, files={"file": ("g.csv", "no,header\n")})
    assert r.status_code == 422


def manifest_upload(c: TestClient, h: dict[str, str], pid: int, text: str):
    return c.post(f"/api/v1/projects/{pid}/clips", headers=h, files={"manifest": ("m.csv", text.encode())})


def test_manifest_copies_listed_files_from_the_import_root(setup, tmp_path: Path) -> None:
    c, h, pid, data = setup
    pool = tmp_path / "pool"
    (pool / "day1").mkdir()
    files = wavs(3)
    for name, body in files.items():
        (pool / "day1" / name).write_bytes(body)
    (pool / "notes.wav").write_text("not audio")
    a, b, third = list(files)
    text = f"file,label\nday1/{a},{a[0]}\nday1/{b},\nday1/{third}\nnotes.wav,\nday1/gone.wav,\nreadme.txt,\n"
    r = manifest_upload(c, h, pid, text)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["added"] == 3
    reasons = {x["file"]: x["reason"] for x in body["rejected"]}
    assert set(reasons) == {"notes.wav", "day1/gone.wav", "readme.txt"}
    assert "no such file" in reasons["day1/gone.wav"] and "not an audio file name" in reasons["readme.txt"]
    rows = {row["file"]: row for row in clip_rows(c, h, pid)}
    assert rows[f"day1/{a}"]["label"] == a[0]  # a label in the manifest makes a seed
    assert rows[f"day1/{b}"]["label"] == ""
    assert sum(p.is_file() for p in stored_audio(data)) == 3 and all(
        (pool / "day1" / n).exists() for n in files
    )  # copied, not moved


def test_manifest_paths_that_leave_the_root_refuse_everything(setup, tmp_path: Path) -> None:
    c, h, pid, data = setup
    pool = tmp_path / "pool"
    name, body = next(iter(wavs(1).items()))
    (pool / name).write_bytes(body)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(body)
    (pool / "link.wav").symlink_to(outside)
    for bad in ("/etc/passwd", "../secret.wav", "link.wav"):
        r = manifest_upload(c, h, pid, f"file\n{name}\n{bad}\n")
        assert r.status_code == 422 and r.json()["added"] == 0, (bad, r.text)
    assert stored_audio(data) == [] and clip_rows(c, h, pid) == []


def test_manifest_needs_an_import_root_and_one_source(setup) -> None:
    c, h, pid, _ = setup
    both = c.post(
        f"/api/v1/projects/{pid}/clips",
        headers=h,
        files={"archive": ("a.zip", zip_of(wavs(1))), "manifest": ("m.csv", b"file\nx.wav\n")},
    )
    assert both.status_code == 422 and "exactly one" in both.json()["detail"]
    assert c.post(f"/api/v1/projects/{pid}/clips", headers=h).status_code == 422
    assert "header" in manifest_upload(c, h, pid, "path\nx.wav\n").json()["detail"]
    c.app.state.import_root = None
    off = manifest_upload(c, h, pid, "file\nx.wav\n")
    assert off.status_code == 422 and "--import-root" in off.json()["detail"]
