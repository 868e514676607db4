"""An owner's export of a large project while annotators work: their latency, the server's memory.

Protocol: a fresh `listenloop serve` (SQLite unless `--db`, learning on unless
LISTENLOOP_LEARNING=0) with an import root of N distinct short WAVs (0.1 s, 8 kHz noise, as
the acceptance check `4-serve-scale.sh` makes them), one classification project imported by
manifest (chunks of 50,000 rows), then two load phases of `--annotators` annotators pausing
`--think` seconds (the light client of `bench serve`): one without an export, and one in which
the owner downloads the labels export (CSV) again and again, a second apart. Meanwhile the
resident memory of the serving process(es) is sampled every 50 ms. Prints one JSON object:
the import time, each phase's answers/s and p50/p99 of next and answer, the exports' count,
size and time, the serving processes' memory before the phases and at their peak, and the
peak memory of an export process (exports are produced by a child of the server:
`engine/export_process.py`).

usage: python -m listenloop.bench.export_load --clips 100000 --seconds 30 [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

from listenloop.bench.load_client import Conn, annotate
from listenloop.bench.serve import OWNER, OWNER_PASSWORD, Server, create_owner, token_of
from listenloop.engine.export_process import PROCESS_NAME

CLASSES = [str(d) for d in range(10)]
MANIFEST_ROWS = 50_000
EXPORT_TIMEOUT = 600.0  # an export of a big project on a busy machine may take minutes


def write_pool(root: Path, n: int) -> list[str]:
    """`n` distinct WAVs under `root` (1,000 per folder); their paths relative to it."""
    names = []
    for i in range(n):
        folder = root / f"{i // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        with wave.open(str(folder / f"c{i:07d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(random.Random(i).randbytes(1600))
        names.append(f"{i // 1000:04d}/c{i:07d}.wav")
    return names


def serving_processes(root_pid: int, port: int) -> list[Any]:
    """The processes of the server's tree that serve `port` (psutil.Process)."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in procs:
        try:
            conns = proc.net_connections("tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
            found.append(proc)
    return found


def serving_rss(procs: list[Any]) -> int:
    """Resident bytes of `procs` now."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except Exception:  # psutil.NoSuchProcess: it ended
            continue
    return total


def export_children(root_pid: int) -> list[Any]:
    """The export processes in the server's tree now (`engine/export_process.py`'s children)."""
    import psutil

    try:
        procs = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in procs:
        try:
            if proc.name() == PROCESS_NAME:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


class MemoryWatch:
    """The peak of the serving processes' resident memory, sampled every `every` seconds in a
    thread until stopped (the processes are found once: sampling costs the client little CPU),
    and the peak of any export process's, whose set is looked up every `EXPORTS_EVERY` samples."""

    EXPORTS_EVERY = 4

    def __init__(self, root_pid: int, port: int, every: float = 0.05) -> None:
        self.peak = 0
        self.export_peak = 0
        self._root = root_pid
        self._procs = serving_processes(root_pid, port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        exporters: list[Any] = []
        sample = 0
        while not self._stop.wait(every):
            self.peak = max(self.peak, serving_rss(self._procs))
            if sample % self.EXPORTS_EVERY == 0:
                exporters = export_children(self._root)
            sample += 1
            for proc in exporters:
                self.export_peak = max(self.export_peak, serving_rss([proc]))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _phase(
    base: str, pid: int, tokens: list[str], seconds: float, think: float, export_token: str | None
) -> Any:
    polls = [(export_token, f"/api/v1/projects/{pid}/export", 1.0)] if export_token else None
    return asyncio.run(
        annotate(base, pid, tokens, CLASSES, seconds, think, owner_polls=polls, owner_timeout=EXPORT_TIMEOUT)
    )


def _export_size(base: str, token: str, pid: int) -> int:
    async def get() -> int:
        conn = Conn(base, token)
        status, body = await conn.request("GET", f"/api/v1/projects/{pid}/export")
        conn.close()
        assert status == 200, status
        return len(body)

    return asyncio.run(get())


def run(
    clips: int, seconds: float, annotators: int, think: float, db: str | None, workers: int
) -> dict[str, Any]:
    """The benchmark (see the module's docstring); its figures."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="listenloop-bench-export-") as tmp:
        work = Path(tmp)
        pool, data = work / "pool", work / "data"
        data.mkdir()
        say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        say(f"writing {clips:,} WAVs ...")
        names = write_pool(pool, clips)
        url = db or f"sqlite:///{data / 'listenloop.db'}"
        create_owner(url)
        server = Server(url, data, workers, work / "server.log", extra=("--import-root", str(pool)))
        try:
            server.wait()
            with httpx.Client(base_url=server.base, timeout=1800) as c:
                owner = token_of(c, OWNER, OWNER_PASSWORD)
                oh = {"Authorization": f"Bearer {owner}"}
                body = {"name": "export", "task_type": "classification", "classes": CLASSES}
                pid = c.post("/api/v1/projects", headers=oh, json=body).raise_for_status().json()["id"]
                t0 = time.monotonic()
                for k in range(0, clips, MANIFEST_ROWS):
                    rows = "file\n" + "\n".join(names[k : k + MANIFEST_ROWS]) + "\n"
                    files = {"manifest": ("m.csv", rows.encode(), "text/csv")}
                    c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).raise_for_status()
                import_s = time.monotonic() - t0
                say(f"imported {clips:,} clips in {import_s:.0f} s")
                tokens = []
                for i in range(annotators):
                    user, pw = f"exp{i}_{random.randrange(1 << 30)}", f"pw-{random.randrange(1 << 40):x}"
                    c.post("/api/v1/users", json={"username": user, "password": pw}).raise_for_status()
                    tokens.append(token_of(c, user, pw))
            size = _export_size(server.base, owner, pid)  # warm: every clip once, before the phases
            rss_before = serving_rss(serving_processes(server.proc.pid, server.port))
            phases = {}
            for name, exporting in (("no_export", None), ("exporting", owner)):
                say(f"{annotators} annotators, think {think} s, {seconds:.0f} s, {name} ...")
                with MemoryWatch(server.proc.pid, server.port) as watch:
                    result = _phase(server.base, pid, tokens, seconds, think, exporting)
                exports = result.latencies["owner"]
                phases[name] = {
                    **result.summary(),
                    "server_errors": result.server_errors,
                    "failures": result.failures,
                    "exports": len(exports),
                    "export_s_max": round(max(exports), 2) if exports else None,
                    "serving_rss_peak_mb": round(watch.peak / 2**20, 1),
                    "export_process_rss_peak_mb": round(watch.export_peak / 2**20, 1),
                }
        finally:
            server.stop()
    return {
        "clips": clips,
        "import_s": round(import_s, 1),
        "export_mb": round(size / 2**20, 2),
        "serving_rss_before_mb": round(rss_before / 2**20, 1),
        "workers": workers,
        **phases,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--annotators", type=int, default=64)
    ap.add_argument("--think", type=float, default=0.5)
    ap.add_argument("--db", default=None, help="Database URL (default: SQLite in a temporary folder).")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    a = ap.parse_args()
    figures = run(a.clips, a.seconds, a.annotators, a.think, a.db, a.workers)
    text = json.dumps(figures)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
