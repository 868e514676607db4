"""`listenloop bench serve`: annotators hammering a real `listenloop serve` on loopback.

Protocol: a fresh data folder and database (SQLite unless `--db`), an owner made with
`listenloop user create`, the server started as a child process group on a free loopback
port, one classification project with the demo's 300 FSDD clips, then for each think
time N registered annotators loop `GET /projects/{id}/next` -> `POST /tasks/{id}/answer`
(a random class) for the given seconds, pausing `think` seconds after each answer.
Latencies are measured at the client (`load_client.py`: hand-made HTTP/1.1 on one keep-alive
socket per annotator, about 0.1 ms of client CPU per request, as the acceptance checks'
`loadtest.py`, so the figures compare); the answers export is read back at the end to check
that every acknowledged answer is stored once.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from listenloop.bench.load_client import annotate
from listenloop.datasets import LABELS_FILE, read_table
from listenloop.errors import ListenloopError

OWNER, OWNER_PASSWORD = "bench-owner", "bench-owner-pass"


@dataclass
class ServeRow:
    """One load phase: its settings, throughput, latency percentiles and integrity."""

    annotators: int
    think_s: float
    seconds: float
    answers_per_s: float
    next_p50_ms: float | None
    next_p99_ms: float | None
    answer_p50_ms: float | None
    answer_p99_ms: float | None
    acked: int
    stored_once: bool
    server_errors: int
    failures: int
    codes: dict[str, int] = field(default_factory=dict)
    # CPU the server spent per acknowledged answer (one next + answer pair) during the phase: its
    # serving processes (those listening on the port), and the rest of its process tree (the
    # learning service and its Dask workers). None when nothing was answered.
    serving_cpu_ms: float | None = None
    background_cpu_ms: float | None = None
    client_cpu_ms: float | None = None  # the load client's CPU per request (it shares the machine)
    # when `next` first found nothing to do (seconds; None: never), and answers/s until then
    ran_dry_s: float | None = None
    answers_per_s_with_work: float | None = None


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clips_zip(folder: Path, limit: int | None = None) -> tuple[bytes, list[str]]:
    """A zip of the audio files in `folder`, or of those its labels.csv lists (a dataset folder),
    sorted, at most `limit`; and the classes (the ten digits)."""
    if (folder / LABELS_FILE).is_file():
        names = sorted(set(read_table(folder)["file"]))
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise ListenloopError(
                f"{folder / LABELS_FILE}: {len(missing)} listed files missing, e.g. {missing[0]}"
            )
    else:
        audio = (".wav", ".flac", ".ogg", ".mp3")
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in audio)
    if not names:
        raise ListenloopError(f"{folder}: no audio files")
    names = names[:limit] if limit else names
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.write(folder / name, name)
    return buf.getvalue(), [str(d) for d in range(10)]


def create_owner(url: str) -> None:
    """The bench owner, made as a user would: `listenloop user create` in a child process."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "listenloop",
            "user",
            "create",
            "--role",
            "owner",
            "--username",
            OWNER,
            "--password",
            OWNER_PASSWORD,
            "--db",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if made.returncode != 0:
        raise ListenloopError(f"cannot create the bench owner: {made.stderr.strip()[-300:]}")


def tree_cpu(root_pid: int, port: int) -> tuple[float, float]:
    """CPU seconds so far of a process tree: (processes listening on `port`, all the others).

    Only processes alive now count: one that ended takes its seconds with it (the server's
    workers and its learning service live as long as the server).
    """
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    serving = other = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            listens = any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in proc.net_connections("tcp")
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if listens:
            serving += times.user + times.system
        else:
            other += times.user + times.system
    return serving, other


class Server:
    """`listenloop serve` (or the yardstick) as a child process group on loopback, killed as a group."""

    def __init__(
        self,
        db: str,
        data: Path,
        workers: int,
        log: Path,
        *,
        yardstick: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        if yardstick:  # the same load on a server that does no work (bench/yardstick.py)
            cmd = [sys.executable, "-m", "listenloop.bench.yardstick", "--port", str(self.port)]
        else:
            cmd = [sys.executable, "-m", "listenloop", "serve", "--host", "127.0.0.1"]
            cmd += ["--port", str(self.port), "--db", db, "--data", str(data), "--workers", str(workers)]
            cmd += list(extra)  # more `serve` options (e.g. --import-root)
        self._log = log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 90.0) -> None:
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise ListenloopError(f"the server exited with code {self.proc.returncode} (see its log)")
            try:
                if httpx.get(f"{self.base}/docs", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ListenloopError(f"the server did not answer on {self.base} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


async def _phase(
    base: str, pid: int, tokens: list[str], classes: list[str], seconds: float, think: float
) -> tuple[ServeRow, list[str]]:
    """One load phase (`load_client.annotate`): every annotator loops next -> answer until
    `seconds` are up; also the acked ids."""
    result = await annotate(base, pid, tokens, classes, seconds, think)
    figures = result.summary()
    row = ServeRow(
        annotators=len(tokens),
        think_s=think,
        seconds=round(result.seconds, 1),
        answers_per_s=figures["answers_per_s"],
        next_p50_ms=figures["next_p50_ms"],
        next_p99_ms=figures["next_p99_ms"],
        answer_p50_ms=figures["answer_p50_ms"],
        answer_p99_ms=figures["answer_p99_ms"],
        acked=len(result.acked),
        stored_once=False,
        server_errors=result.server_errors,
        failures=result.failures,
        codes=result.codes,
        client_cpu_ms=figures["client_cpu_ms_per_request"],
        ran_dry_s=figures["ran_dry_s"],
        answers_per_s_with_work=figures["answers_per_s_with_work"],
    )
    return row, result.acked


def _stored_once(base: str, owner_token: str, pid: int, acked: list[str]) -> bool:
    """Every acknowledged task id appears exactly once in the answers export."""
    import csv

    import httpx

    r = httpx.get(
        f"{base}/api/v1/projects/{pid}/answers",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {owner_token}"},
        timeout=120,
    )
    r.raise_for_status()
    ids = [row["task_id"] for row in csv.DictReader(io.StringIO(r.text))]
    return len(ids) == len(set(ids)) and set(acked) <= set(ids) and len(acked) == len(set(acked))


def run_serve_bench(
    annotators: int = 64,
    seconds: float = 30.0,
    thinks: tuple[float, ...] = (0.5, 0.0),
    db: str | None = None,
    workers: int = 1,
    clips: Path | None = None,
    progress: Callable[[str], None] | None = None,
    yardstick: bool = False,
) -> list[ServeRow]:
    """Start a server, set up one project and `annotators` users, run one load phase per think time.

    `yardstick`: the same load against `bench/yardstick.py`, a server that does no work.
    """
    import httpx

    from listenloop.demo import DEMO_DIR

    say = progress or (lambda _line: None)
    blob, classes = clips_zip(Path(clips) if clips else DEMO_DIR / "recordings")
    with tempfile.TemporaryDirectory(prefix="listenloop-bench-serve-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        url = db or f"sqlite:///{data / 'listenloop.db'}"
        if not yardstick:
            create_owner(url)
        server = Server(url, data, workers, Path(tmp) / "server.log", yardstick=yardstick)
        try:
            server.wait()
            what = "the yardstick (no work)" if yardstick else f"{workers} worker(s), {url.split(':')[0]}"
            say(f"server up on {server.base} ({what})")
            with httpx.Client(base_url=server.base, timeout=120) as c:
                token = token_of(c, OWNER, OWNER_PASSWORD)
                rows: list[ServeRow] = []
                for think in thinks:
                    pid, tokens = setup_project(c, token, f"bench think {think}", blob, classes, annotators)
                    say(f"{annotators} annotators, think {think} s, {seconds:.0f} s ...")
                    before = tree_cpu(server.proc.pid, server.port)
                    row, acked = asyncio.run(_phase(server.base, pid, tokens, classes, seconds, think))
                    after = tree_cpu(server.proc.pid, server.port)
                    if row.acked:
                        row.serving_cpu_ms = round(1000 * (after[0] - before[0]) / row.acked, 2)
                        row.background_cpu_ms = round(1000 * (after[1] - before[1]) / row.acked, 2)
                    row.stored_once = _stored_once(server.base, token, pid, acked)
                    rows.append(row)
        finally:
            server.stop()
    return rows


def setup_project(
    c: Any, owner_token: str, name: str, blob: bytes, classes: list[str], annotators: int
) -> tuple[int, list[str]]:
    """Through the API (`c`: an httpx or Starlette test client): a classification project with the
    clips of the zip `blob`, and `annotators` newly registered annotators; (project id, their tokens)."""
    oh = {"Authorization": f"Bearer {owner_token}"}
    r = c.post(
        "/api/v1/projects", headers=oh, json={"name": name, "task_type": "classification", "classes": classes}
    )
    r.raise_for_status()
    pid = int(r.json()["id"])
    files = {"archive": ("clips.zip", blob, "application/zip")}
    c.post(f"/api/v1/projects/{pid}/clips", headers=oh, files=files).raise_for_status()
    tokens = []
    for i in range(annotators):
        user, pw = f"bench{i}_{random.randrange(1 << 30)}", "pw-" + os.urandom(6).hex()
        c.post("/api/v1/users", json={"username": user, "password": pw}).raise_for_status()
        tokens.append(token_of(c, user, pw))
    return pid, tokens


def token_of(c: Any, user: str, password: str) -> str:
    r = c.post("/api/v1/token", data={"username": user, "password": password})
    r.raise_for_status()
    return str(r.json()["access_token"])


def format_row(r: ServeRow) -> str:
    def ms(v: float | None) -> str:
        return "n<100" if v is None else f"{v:.1f}"  # no percentile from fewer than 100 requests

    return (
        f"annotators {r.annotators} think {r.think_s:g} s: {r.answers_per_s} answers/s, "
        f"next p50/p99 {ms(r.next_p50_ms)}/{ms(r.next_p99_ms)} ms, answer p50/p99 "
        f"{ms(r.answer_p50_ms)}/{ms(r.answer_p99_ms)} ms, 5xx {r.server_errors}, failures {r.failures}, "
        f"acked {r.acked}, stored once {r.stored_once}, server CPU per answer "
        f"{_ms(r.serving_cpu_ms)} ms serving + {_ms(r.background_cpu_ms)} ms background, "
        f"client CPU {_ms(r.client_cpu_ms)} ms/request" + _dry(r)
    )


def _dry(r: ServeRow) -> str:
    """When the project ran dry, and the rate until then (the phase's rate counts the idle rest)."""
    if r.ran_dry_s is None:
        return ""
    rate = r.answers_per_s_with_work
    return f"; the project ran out of work at {r.ran_dry_s:g} s ({rate} answers/s until then)"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def rows_as_dicts(rows: list[ServeRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
