"""`listenloop bench import`: a bulk import of a generated manifest, timed, with the importing
process's peak memory and a sample of its rejection report.

The manifest (written row by row, never held whole) points at audio files again and again:
the FSDD recordings (`--audio DIR`: every audio file under it), or `--distinct N` small
generated WAVs (0.1 s of 8 kHz noise, distinct content). Every `--broken-every`-th row is
broken in turn: a missing file, a text file named .wav, a bad label, an empty file, a name
that is not audio. The import runs as `listenloop import start` in a child process: its wall
time and peak resident memory (getrusage of the child, what `/usr/bin/time -v` reports) are
what the row gives. Rows that repeat a file are rejected as duplicates (same uri) and counted.
"""

from __future__ import annotations

import csv
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

from listenloop.audio.io import AUDIO_EXTENSIONS

BROKEN_KINDS = ("missing file", "unreadable audio", "bad label", "empty file", "not an audio file name")
BENCH_CLASSES = [str(i) for i in range(10)]


def _label_of(path: Path) -> str:
    """FSDD names start with their digit; generated files get a label from their number."""
    head = path.name.split("_", 1)[0]
    return head if head in BENCH_CLASSES else str(int(path.stem.lstrip("c") or 0) % 10)


def write_distinct(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """`n` distinct 0.1 s 8 kHz 16-bit WAVs of noise under `folder` (1,000 per subfolder)."""
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"c{i:07d}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(rng.randbytes(1600))
        paths.append(path)
    return paths


def write_manifest(path: Path, files: list[Path], rows: int, broken_every: int, work: Path) -> int:
    """A CSV manifest of `rows` rows cycling through `files` (absolute uris, labels, a group and a
    metadata column), with every `broken_every`-th row broken; the broken rows written."""
    bad = work / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "text.wav").write_text("this is not audio\n" * 10)
    (bad / "empty.wav").write_bytes(b"")
    broken = 0
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["uri", "label", "group", "row_note"])
        for i in range(rows):
            if broken_every and i % broken_every == broken_every - 1:
                kind = BROKEN_KINDS[broken % len(BROKEN_KINDS)]
                broken += 1
                uri, label = {
                    "missing file": (str(bad / f"gone-{i}.wav"), "1"),
                    "unreadable audio": (str(bad / "text.wav"), "1"),
                    "bad label": (str(files[i % len(files)]), "eleven"),
                    "empty file": (str(bad / "empty.wav"), "1"),
                    "not an audio file name": (str(bad / f"notes-{i}.txt"), "1"),
                }[kind]
                out.writerow([uri, label, "broken", kind])
                continue
            file = files[i % len(files)]
            out.writerow([str(file), _label_of(file), file.parent.name, f"r{i}"])
    return broken


def run_import_bench(
    *,
    rows: int,
    audio: Path | None,
    distinct: int,
    broken_every: int,
    workers: int,
    work: Path,
    keep: bool,
    sample: int = 10,
) -> dict[str, Any]:
    """Generate the audio and manifest under `work`, import it in a child process: the row."""
    from listenloop.engine.accounts import Principal, create_user, hash_password
    from listenloop.engine.config import ProjectConfig
    from listenloop.engine.projects import create_project
    from listenloop.store.database import Database
    from listenloop.store.models import ImportJob

    work = work.expanduser().resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    if distinct:
        files = write_distinct(work / "pool", distinct)
        source = f"{distinct:,} generated distinct 0.1 s WAVs"
    else:
        if audio is None or not audio.is_dir():
            raise SystemExit(f"--audio {audio}: not a folder")
        files = sorted(p.resolve() for p in audio.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise SystemExit(f"--audio {audio}: no audio files")
        source = f"{len(files):,} files under {audio}"
    manifest = work / "manifest.csv"
    broken = write_manifest(manifest, files, rows, broken_every, work)
    prepared = time.perf_counter() - t0
    db_url = f"sqlite:///{work / 'bench.db'}"
    db = Database(db_url)
    db.upgrade()
    with db.write() as s:
        owner = create_user(s, "bench-owner", hash_password("bench-owner-pass"), "owner")
        project = create_project(
            s,
            Principal(owner.id, "bench-owner", "owner"),
            ProjectConfig(name="bulk", task_type="classification", classes=BENCH_CLASSES),
        )
        pid = project.id
    db.dispose()
    cmd = [sys.executable, "-m", "listenloop", "import", "start", str(pid), str(manifest)]
    cmd += ["--db", db_url, "--data", str(work / "data"), "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t1 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t1
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"the import failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    db = Database(db_url)
    with db.read() as s:
        job = s.get(ImportJob, 1)
        assert job is not None
        counts = {k: getattr(job, k) for k in ("rows", "added", "duplicates", "rejected")}
    db.dispose()
    report = work / "data" / "imports" / "1" / "rejected.csv"
    examples: list[dict[str, str]] = []
    reasons: dict[str, int] = {}
    with open(report, newline="") as f:
        for r in csv.DictReader(f):
            kind = r["reason"].split(" (")[0].split(":")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
            if not r["reason"].startswith("duplicate") and len(examples) < sample:
                examples.append(r)
    disk = sum(p.stat().st_size for p in (work / "data").rglob("*") if p.is_file())
    row = {
        "rows": rows,
        "audio": source,
        "broken_rows": broken,
        **counts,
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB; the largest child so far
        "cpu_s": round(usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, 1),
        "manifest_mb": round(manifest.stat().st_size / 1e6, 1),
        "data_folder_mb": round(disk / 1e6, 2),
        "prepare_s": round(prepared, 1),
        "reasons": reasons,
        "report_sample": examples,
    }
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return row
