"""The server under attack: 16 annotators' latency, 5xx and memory beside each attack of issue 15.

Protocol, per phase: a fresh data folder and SQLite database, the bench owner made with
`listenloop user create`, `listenloop serve` (learning on, as by default) as a child process
group on a free loopback port, then the acceptance check's load client (`loadtest.py`,
16 annotators looping `next` -> `answer`) for `--seconds`. In an attack phase the attack
starts when the load client's timed loop does (its `acked.txt` appears) and runs beside it
until the loop ends, repeated within bounds of count and time. Baseline phases (the same load,
no attack) are interleaved with the attack phases, and each attack is compared with the
median of the baselines. The server's resident memory is the sum over its process group
(psutil, every 0.2 s); its growth is the peak during the timed loop less the value when the
loop started. Loopback only; the attacker streams its large bodies and never holds them.

Run as `python -m listenloop.bench.attacks OUT [--seconds 30] [--loadtest PATH]`: writes
OUT/attacks.json and OUT/attacks.md (the table) and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from listenloop.bench.serve import OWNER, OWNER_PASSWORD, Server, clips_zip, create_owner

ANNOTATORS = 16
MiB = 1 << 20
P99_RATIO_TARGET = 2.0
RSS_GROWTH_TARGET_MB = 300.0
END_OF_HEAD = b"\r\n\r\n"


@dataclass
class Target:
    """Where the attacker aims: the server's loopback address and the time its attack must end."""

    host: str
    port: int
    stop: float  # time.monotonic() at which the load ends

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def left(self) -> float:
        return self.stop - time.monotonic()


@dataclass
class Phase:
    """One load phase: the annotators' figures, the server's memory and what the attacker saw."""

    attack: str
    next_p99_ms: float | None
    answer_p99_ms: float | None
    answers_per_s: float
    annotator_5xx: int
    failures: int
    codes: dict[str, int]
    rss_start_mb: float
    rss_peak_mb: float
    stored_mb: float  # growth of the data folder during the timed loop
    attacker: dict[str, int] = field(default_factory=dict)

    @property
    def rss_growth_mb(self) -> float:
        return round(self.rss_peak_mb - self.rss_start_mb, 1)

    @property
    def attacker_5xx(self) -> int:
        return sum(n for k, n in self.attacker.items() if k.rsplit(" ", 1)[-1].startswith("5"))


# --- the attacks: each runs in a thread until `t.stop`, bounded in count, and returns what it saw


def _status_of(sock: socket.socket, wait: float) -> str:
    """The status code of the reply on `sock` ("no reply" / "closed" / "reset" otherwise)."""
    sock.settimeout(max(0.5, wait))
    try:
        head = sock.recv(64 * 1024)
    except TimeoutError:
        return "no reply"
    except OSError:
        return "reset"
    if not head:
        return "closed"
    parts = head.split(b" ", 2)
    return parts[1].decode(errors="replace") if len(parts) > 1 else "garbled"


def _stream(t: Target, head: bytes, size: int, tail: bytes, limit_s: float = 25.0) -> str:
    """Send `head`, `size` bytes of filler 1 MiB at a time and `tail` on one connection, stopping
    as soon as the server replies or stops reading; the reply's status (the filler is never held)."""
    deadline = min(time.monotonic() + limit_s, t.stop + 5)
    chunk = b"a" * MiB
    try:
        sock = socket.create_connection((t.host, t.port), timeout=5)
    except OSError:
        return "connect failed"
    with sock:
        try:
            sock.sendall(head)
            sent = 0
            while sent < size and time.monotonic() < deadline:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered (413/431/401) before the end of the body
                n = min(MiB, size - sent)
                sock.sendall(chunk[:n])
                sent += n
            if sent >= size:
                sock.sendall(tail)
        except OSError:
            pass  # the server stopped reading or closed: read its reply, if any
        return _status_of(sock, deadline - time.monotonic())


def _multipart(path: str, size: int, auth: str = "") -> tuple[bytes, bytes]:
    """Head and tail of a multipart upload of `size` filler bytes to `path` (no body in memory)."""
    boundary = "attackboundary"
    pre = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    post = f"\r\n--{boundary}--\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(pre) + size + len(post)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + pre, post


def attack_bodies(t: Target) -> Counter[str]:
    """Finding 1: a 700 MiB multipart POST /users and a 100 MiB upload without an account, in turn
    (≤ 3 rounds)."""
    seen: Counter[str] = Counter()
    for _ in range(3):
        if t.left() <= 1:
            break
        head, tail = _multipart("/api/v1/users", 700 * MiB)
        seen[f"700 MiB users {_stream(t, head, 700 * MiB, tail)}"] += 1
        if t.left() <= 1:
            break
        head, tail = _multipart("/api/v1/projects/1/clips", 100 * MiB)
        seen[f"100 MiB upload {_stream(t, head, 100 * MiB, tail)}"] += 1
    return seen


def attack_header(t: Target) -> Counter[str]:
    """Finding 2: one connection at a time sending an 80 MiB header (≤ 5 rounds)."""
    seen: Counter[str] = Counter()
    for _ in range(5):
        if t.left() <= 1:
            break
        head = b"GET /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        seen[f"80 MiB header {_stream(t, head, 80 * MiB, END_OF_HEAD)}"] += 1
    return seen


def attack_slow(
    t: Target, idle: int = 200, half: int = 50, max_opens: int = 2000, watch_s: float = 85.0
) -> Counter[str]:
    """Finding 3: `idle` connections that send nothing and `half` slowloris requests (a header line
    every 2 s). While the load runs, one the server closes is counted and opened again; after it,
    the first ones are watched until `watch_s` from the start (past the 75 s keep-alive) to see
    whether the server closes them, and after how many seconds at most."""
    seen: Counter[str] = Counter()
    half_head = b"GET /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    conns: dict[socket.socket, tuple[str, float]] = {}
    opens = 0
    started = time.monotonic()
    watch_until = max(t.stop, started + watch_s)

    def open_one(kind: str) -> None:
        nonlocal opens
        opens += 1
        try:
            s = socket.create_connection((t.host, t.port), timeout=5)
            if kind == "half":
                s.sendall(half_head)
            s.setblocking(False)
            conns[s] = (kind, time.monotonic())
        except OSError:
            seen[f"{kind} connect failed"] += 1

    for _ in range(idle):
        open_one("idle")
    for _ in range(half):
        open_one("half")
    next_drip = time.monotonic() + 2
    while conns and time.monotonic() < watch_until:
        ready = select.select(list(conns), [], [], 0.5)[0]
        for s in ready:
            kind, opened = conns.pop(s)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            status = data.split(b" ", 2)[1].decode(errors="replace") if data.count(b" ") >= 2 else ""
            seen[f"{kind} closed by server{' ' + status if status else ''}"] += 1
            age = round(time.monotonic() - opened)
            seen[f"{kind} closed after max s"] = max(seen[f"{kind} closed after max s"], age)
            s.close()
            if opens < max_opens and t.left() > 1:
                open_one(kind)
        if time.monotonic() >= next_drip:
            next_drip += 2
            for s, (kind, _) in list(conns.items()):
                if kind == "half":
                    with contextlib.suppress(OSError):  # closed by the server: select sees that next
                        s.send(b"X-Slow: 1\r\n")
    for kind in ("idle", "half"):
        seen[f"{kind} open after {watch_s:.0f} s"] = sum(1 for k, _ in conns.values() if k == kind)
    for s in conns:
        s.close()
    return seen


def attack_logins(t: Target) -> Counter[str]:
    """Finding 4: 80 parallel wrong logins, then 200 sequential wrong logins to the owner (≤ 3 rounds)."""
    import httpx

    seen: Counter[str] = Counter()

    async def run() -> None:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=t.base, timeout=30, limits=limits) as c:

            async def wrong(kind: str, user: str) -> None:
                try:
                    r = await c.post("/api/v1/token", data={"username": user, "password": "wrong-guess-1"})
                    seen[f"{kind} {r.status_code}"] += 1
                except httpx.HTTPError as e:
                    seen[f"{kind} {type(e).__name__}"] += 1

            for round_ in range(3):
                if t.left() <= 1:
                    return
                await asyncio.gather(*(wrong("parallel", f"victim{round_}_{i}") for i in range(80)))
                for _ in range(200):
                    if t.left() <= 0:
                        return
                    await wrong("sequential", OWNER)

    asyncio.run(run())
    return seen


def _owner_token(c: Any) -> str:
    r = c.post("/api/v1/token", data={"username": OWNER, "password": OWNER_PASSWORD})
    r.raise_for_status()
    return str(r.json()["access_token"])


def zip_bomb(entries: int = 300, size: int = MiB) -> bytes:
    """A zip of `entries` WAV files of `size` bytes of silence each (16-bit mono, 16 kHz): valid
    audio that compresses about 1000-fold, each entry under the per-entry ratio check's 1 MiB."""
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(size - 44))  # 44: the WAV header
    data = wav.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(entries):
            z.writestr(f"silence{i:03d}.wav", data)
    return buf.getvalue()


def attack_zip(t: Target, bomb: bytes) -> Counter[str]:
    """Finding 5: the owner uploads the small-entry zip bomb to a project of their own (≤ 3 times)."""
    import httpx

    seen: Counter[str] = Counter()
    with httpx.Client(base_url=t.base, timeout=60) as c:
        h = {"Authorization": f"Bearer {_owner_token(c)}"}
        r = c.post(
            "/api/v1/projects", headers=h, json={"name": "bomb", "task_type": "binary", "classes": ["a", "b"]}
        )
        r.raise_for_status()
        pid = r.json()["id"]
        for _ in range(3):
            if t.left() <= 1:
                break
            try:
                files = {"archive": ("bomb.zip", bomb, "application/zip")}
                r = c.post(f"/api/v1/projects/{pid}/clips", headers=h, files=files)
                seen[f"zip bomb {r.status_code}"] += 1
            except httpx.HTTPError as e:
                seen[f"zip bomb {type(e).__name__}"] += 1
    return seen


def _bad_bodies(pid: int) -> list[tuple[str, str, str, bool]]:
    """(method, path, raw JSON, with the owner's token) of findings 9 and 10: NaN, Infinity, 1e400,
    integers beyond 64 bits and beyond Python's digit limit, a range of infinite width, odd numerals."""
    project = '{"name": "j", "task_type": "classification", "classes": ["a", "b"], '
    huge = "9" * 5000
    return [
        ("POST", "/api/v1/users", '{"username": "nan-user", "password": NaN}', False),
        (
            "POST",
            "/api/v1/users",
            '{"username": "inf-user", "password": "long-enough-pw", "x": Infinity}',
            False,
        ),
        (
            "POST",
            "/api/v1/users",
            f'{{"username": "big-user", "password": "long-enough-pw", "x": {huge}}}',
            False,
        ),
        ("POST", "/api/v1/projects", project + '"retrain_every": 100000000000000000000000000000}', True),
        ("POST", "/api/v1/projects", project + '"control_rate": NaN}', True),
        ("POST", "/api/v1/projects", project + '"passive_share": 1e400}', True),
        (
            "POST",
            "/api/v1/projects",
            '{"name": "r", "task_type": "continuous", "range": [-1e308, 1e308]}',
            True,
        ),
        ("PATCH", f"/api/v1/projects/{pid}", '{"retrain_every": 1e400}', True),
        ("PATCH", f"/api/v1/projects/{pid}", f'{{"budget": {huge}}}', True),
        ("POST", f"/api/v1/projects/{pid}/members", '{"username": -Infinity}', True),
        ("POST", "/api/v1/tasks/1/answer", '{"answer": NaN}', True),
        ("POST", "/api/v1/tasks/1/answer", '{"answer": true}', True),
    ]


def attack_json(t: Target, limit: int = 600) -> Counter[str]:
    """Findings 9/10: a burst of malformed JSON bodies to several routes, in turn (≤ `limit` requests)."""
    import httpx

    seen: Counter[str] = Counter()
    with httpx.Client(base_url=t.base, timeout=30) as c:
        h = {"Authorization": f"Bearer {_owner_token(c)}", "Content-Type": "application/json"}
        r = c.post(
            "/api/v1/projects", headers=h, json={"name": "json", "task_type": "binary", "classes": ["a", "b"]}
        )
        r.raise_for_status()
        bodies = _bad_bodies(int(r.json()["id"]))
        for i in range(limit):
            if t.left() <= 0:
                break
            method, path, raw, auth = bodies[i % len(bodies)]
            headers = h if auth else {"Content-Type": "application/json"}
            try:
                r = c.request(method, path, content=raw.encode(), headers=headers)
                seen[f"{method} {path.split('/')[3]} {r.status_code}"] += 1
            except httpx.HTTPError as e:
                seen[f"{method} {path.split('/')[3]} {type(e).__name__}"] += 1
    return seen


# --- the runner


class RSSSampler:
    """The summed resident memory of a process group, sampled every `every` seconds in a thread."""

    def __init__(self, pgid: int, every: float = 0.2) -> None:
        self.pgid, self.every = pgid, every
        self.samples: list[tuple[float, float]] = []  # (monotonic time, MB)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss_mb(self) -> float:
        import psutil

        total = 0
        for p in psutil.process_iter():
            try:
                if os.getpgid(p.pid) == self.pgid:
                    total += p.memory_info().rss
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        return total / MiB

    def _run(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.monotonic(), self.rss_mb()))
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def peak_since(self, t0: float) -> float:
        return max((mb for t, mb in self.samples if t >= t0), default=0.0)


def _folder_mb(folder: Path) -> float:
    total = 0
    for p in folder.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total / MiB


def run_phase(
    name: str,
    attack: Callable[[Target], Counter[str]] | None,
    seconds: float,
    loadtest: Path,
    blob: bytes,
    classes: list[str],
    say: Callable[[str], None],
) -> Phase:
    """A fresh server, the 16-annotator load for `seconds`, and `attack` beside it (None: baseline)."""
    with tempfile.TemporaryDirectory(prefix="listenloop-attacks-") as tmp:
        folder = Path(tmp)
        data, out = folder / "data", folder / "load"
        data.mkdir()
        out.mkdir()
        (folder / "clips.zip").write_bytes(blob)
        url = f"sqlite:///{data / 'listenloop.db'}"
        create_owner(url)
        server = Server(url, data, 1, folder / "server.log")
        sampler: RSSSampler | None = None
        try:
            server.wait()
            sampler = RSSSampler(server.proc.pid)
            cmd = [
                sys.executable,
                str(loadtest),
                server.base,
                OWNER,
                OWNER_PASSWORD,
                str(folder / "clips.zip"),
            ]
            cmd += [
                ",".join(classes),
                "--annotators",
                str(ANNOTATORS),
                "--seconds",
                str(seconds),
                "--out",
                str(out),
            ]
            load = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while not (out / "acked.txt").exists():  # the load client's set-up is done
                if load.poll() is not None:
                    raise RuntimeError(f"{name}: the load client ended early: {load.stderr.read()[-800:]}")
                time.sleep(0.05)
            t0 = time.monotonic()
            rss_start, stored_start = sampler.rss_mb(), _folder_mb(data)
            say(f"{name}: load running on {server.base}")
            seen: Counter[str] = Counter()
            thread = None
            if attack is not None:
                target = Target("127.0.0.1", server.port, t0 + seconds)

                def run_attack() -> None:
                    try:
                        seen.update(attack(target))
                    except Exception as e:  # the attacker's own failure is a finding to report
                        seen[f"attacker error {type(e).__name__}: {e}"[:120]] += 1

                thread = threading.Thread(target=run_attack, daemon=True)
                thread.start()
            stdout, stderr = load.communicate(timeout=seconds + 120)
            if thread is not None:
                thread.join(timeout=120)
            if load.returncode != 0 or not stdout.strip():
                raise RuntimeError(f"{name}: the load client failed: {stderr[-800:]}")
            result = json.loads(stdout.strip().splitlines()[-1])
            peak = sampler.peak_since(t0)
            codes = result["codes"]
            return Phase(
                attack=name,
                next_p99_ms=result["next_p99_ms"],
                answer_p99_ms=result["answer_p99_ms"],
                answers_per_s=result["answers_per_s"],
                annotator_5xx=sum(n for k, n in codes.items() if k.rsplit(" ", 1)[-1].startswith("5")),
                failures=result["failures"],
                codes=codes,
                rss_start_mb=round(rss_start, 1),
                rss_peak_mb=round(max(peak, rss_start), 1),
                stored_mb=round(_folder_mb(data) - stored_start, 1),
                attacker=dict(sorted(seen.items())),
            )
        finally:
            if sampler is not None:
                sampler.stop()
            server.stop()


def attacks(bomb: bytes) -> list[tuple[str, Callable[[Target], Counter[str]]]]:
    """The attacks of issue 15, by finding, in the order they run."""
    return [
        ("1 700 MiB body + 100 MiB upload, no account", attack_bodies),
        ("2 80 MiB header", attack_header),
        ("3 200 idle + 50 slowloris connections", attack_slow),
        ("4 80 parallel + 200 sequential wrong logins", attack_logins),
        ("5 small-entry zip bomb (300 × 1 MiB)", lambda t: attack_zip(t, bomb)),
        ("9/10 malformed JSON burst", attack_json),
    ]


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 1) if known else None


def summarise(phases: list[Phase]) -> dict[str, Any]:
    """Each attack against the median of the baselines, and whether it meets the issue's targets."""
    base = [p for p in phases if p.attack == "baseline"]
    b_next = _median([p.next_p99_ms for p in base])
    b_answer = _median([p.answer_p99_ms for p in base])
    rows = []
    for p in phases:
        if p.attack == "baseline":
            continue
        ratios = [
            w / b for w, b in ((p.next_p99_ms, b_next), (p.answer_p99_ms, b_answer)) if w is not None and b
        ]
        ratio = round(max(ratios), 2) if ratios else None
        fivexx = p.annotator_5xx + p.attacker_5xx
        meets = ratio is not None and ratio <= P99_RATIO_TARGET and fivexx == 0
        meets = meets and p.rss_growth_mb <= RSS_GROWTH_TARGET_MB and p.failures == 0
        rows.append(
            {**asdict(p), "rss_growth_mb": p.rss_growth_mb, "ratio": ratio, "all_5xx": fivexx, "meets": meets}
        )
    return {
        "baseline": {
            "next_p99_ms": b_next,
            "answer_p99_ms": b_answer,
            "runs": [{**asdict(p), "rss_growth_mb": p.rss_growth_mb} for p in base],
        },
        "attacks": rows,
        "targets": {"p99_ratio": P99_RATIO_TARGET, "rss_growth_mb": RSS_GROWTH_TARGET_MB, "5xx": 0},
    }


def markdown(summary: dict[str, Any]) -> str:
    """The table: attack | p99 next/answer without | with | ratio | 5xx | RSS growth | attacker saw | met."""

    def ms(v: float | None) -> str:
        return "n<100" if v is None else f"{v:.0f}"

    b = summary["baseline"]
    lines = [
        "| attack | p99 next / answer without (ms) | with (ms) | ratio | 5xx | failures | RSS growth (MB) "
        "| stored (MB) | attacker saw | targets met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["attacks"]:
        saw = ", ".join(f"{k}: {n}" for k, n in r["attacker"].items()) or "-"
        lines.append(
            f"| {r['attack']} | {ms(b['next_p99_ms'])} / {ms(b['answer_p99_ms'])} | {ms(r['next_p99_ms'])} / "
            f"{ms(r['answer_p99_ms'])} | {r['ratio'] if r['ratio'] is not None else '-'} | {r['all_5xx']} | "
            f"{r['failures']} | {r['rss_growth_mb']:.0f} | {r['stored_mb']:.0f} | {saw} | "
            f"{'yes' if r['meets'] else '**no**'} |"
        )
    runs = "; ".join(
        f"next/answer p99 {ms(p['next_p99_ms'])}/{ms(p['answer_p99_ms'])} ms, "
        f"stored {p['stored_mb']:.0f} MB, RSS growth {p['rss_growth_mb']:.0f} MB, "
        f"{p['answers_per_s']} answers/s"
        for p in b["runs"]
    )
    lines.append("")
    lines.append(f"Baselines (no attack; the 'without' column is their median): {runs}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="folder for attacks.json and attacks.md")
    ap.add_argument("--seconds", type=float, default=30.0, help="timed load per phase (default 30)")
    ap.add_argument(
        "--loadtest",
        type=Path,
        default=Path("../shared/checks/loadtest.py"),
        help="the acceptance check's load client (default ../shared/checks/loadtest.py)",
    )
    ap.add_argument(
        "--only", nargs="*", help="run only the attacks whose name starts with one of these (e.g. 2 9/10)"
    )
    ap.add_argument(
        "--baselines", type=int, default=3, help="baseline phases, spread among the attacks (default 3)"
    )
    a = ap.parse_args()
    if not a.loadtest.is_file():
        ap.error(f"{a.loadtest}: no such load client (give --loadtest)")
    if a.seconds < 5 or a.baselines < 1:
        ap.error("--seconds must be at least 5 and --baselines at least 1")
    from listenloop.demo import DEMO_DIR

    def say(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    blob, classes = clips_zip(DEMO_DIR / "recordings")
    chosen = [
        (n, f) for n, f in attacks(zip_bomb()) if not a.only or any(n.startswith(o + " ") for o in a.only)
    ]
    # baselines first, last and evenly between (the machine's load drifts)
    plan: list[tuple[str, Callable[[Target], Counter[str]] | None]] = []
    step = max(1, round(len(chosen) / max(1, a.baselines - 1))) if a.baselines > 1 else len(chosen) + 1
    for i, item in enumerate(chosen):
        if i % step == 0 and sum(1 for n, _ in plan if n == "baseline") < a.baselines - 1:
            plan.append(("baseline", None))
        plan.append(item)
    plan.append(("baseline", None))
    phases = [run_phase(n, f, a.seconds, a.loadtest.resolve(), blob, classes, say) for n, f in plan]
    summary = summarise(phases)
    summary["command"] = " ".join(["python -m listenloop.bench.attacks", *sys.argv[1:]])
    summary["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "attacks.json").write_text(json.dumps(summary, indent=2))
    table = markdown(summary)
    (a.out / "attacks.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
