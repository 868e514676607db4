"""A load client light enough to measure the server, not itself: HTTP/1.1 on one keep-alive socket
per simulated annotator, requests written by hand and responses parsed with asyncio streams.

It costs about 0.1 ms of client CPU per request where an httpx client took 4.4 ms; on a 2-core
machine that shares its cores with the server, the difference decided the figures. The design is
that of the acceptance checks' `loadtest.py`, so `bench serve` and the checks measure alike.
Loopback HTTP only (no TLS, no redirects): a benchmark's client, not a general one.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 30.0


class GoneError(Exception):
    """The server closed or refused the connection."""


class Conn:
    """One annotator's keep-alive HTTP/1.1 connection to `base` (http://HOST:PORT)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request; GoneError when the connection was refused or lost."""
        if self.w is None:
            try:
                self.r, self.w = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                raise GoneError(exc) from exc
        assert self.r is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.auth}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            self.w.write(head.encode() + b"\r\n" + body)
            status_line = await self.r.readline()
            if not status_line:
                raise GoneError("closed")
            status = int(status_line.split(b" ", 2)[1])
            length, chunked, close = 0, False, False
            while True:
                line = await self.r.readline()
                if line in (b"\r\n", b""):
                    break
                key, _, value = line.partition(b":")
                key, value = key.strip().lower(), value.strip()
                if key == b"content-length":
                    length = int(value)
                elif key == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif key == b"connection" and value.lower() == b"close":
                    close = True
            if chunked:
                parts = []
                while True:
                    n = int((await self.r.readline()).strip(), 16)
                    parts.append(await self.r.readexactly(n + 2))
                    if n == 0:
                        break
                data = b"".join(p[:-2] for p in parts)
            else:
                data = await self.r.readexactly(length) if length else b""
        except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
            self.close()
            raise GoneError(exc) from exc
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


def percentile_ms(values: list[float], q: int) -> float | None:
    """q-th percentile in ms (None below 100 samples, where a p99 means little)."""
    if len(values) < 100:
        return None
    return round(1000 * statistics.quantiles(values, n=100)[q - 1], 1)


@dataclass
class LoadResult:
    """What one load phase saw: latencies (seconds) per kind, status counts, acknowledged task ids."""

    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    acked: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    # When `next` first answered 204 (seconds into the phase; None: never) and the answers
    # acknowledged by then. A project has answers for so many pairs (clips x their maximum
    # answers): a fast enough server runs it dry before the phase ends, and answers/s over
    # the whole phase then counts the idle rest too.
    ran_dry_s: float | None = None
    acked_before_dry: int = 0

    @property
    def failures(self) -> int:
        return self.codes.get("timeout", 0) + self.codes.get("connection error", 0)

    @property
    def server_errors(self) -> int:
        return sum(v for k, v in self.codes.items() if k.split()[-1].startswith("5"))

    def summary(self) -> dict[str, Any]:
        lat = self.latencies
        n = sum(len(v) for v in lat.values())
        return {
            "answers_per_s": round(len(self.acked) / self.seconds, 1) if self.seconds else 0.0,
            "next_p50_ms": percentile_ms(lat.get("next", []), 50),
            "next_p99_ms": percentile_ms(lat.get("next", []), 99),
            "answer_p50_ms": percentile_ms(lat.get("answer", []), 50),
            "answer_p99_ms": percentile_ms(lat.get("answer", []), 99),
            "client_cpu_ms_per_request": round(1000 * self.client_cpu_s / max(n, 1), 3),
            "ran_dry_s": None if self.ran_dry_s is None else round(self.ran_dry_s, 2),
            "answers_per_s_with_work": self.answers_per_s_with_work,
        }

    @property
    def answers_per_s_with_work(self) -> float | None:
        """Answers a second until the project ran dry (None: it never did, or at once)."""
        if self.ran_dry_s is None or self.ran_dry_s <= 0:
            return None
        return round(self.acked_before_dry / self.ran_dry_s, 1)


async def annotate(
    base: str,
    pid: int,
    tokens: Iterable[str],
    classes: list[str],
    seconds: float,
    think: float = 0.0,
    owner_polls: list[tuple[str, str, float]] | None = None,
    owner_timeout: float = TIMEOUT,
) -> LoadResult:
    """Every token's annotator loops `GET /projects/{pid}/next` -> `POST /tasks/{id}/answer` (a random
    class) for `seconds`, pausing `think` seconds after each answer. `owner_polls`: (token, path,
    every seconds) loops of GETs beside them (an owner's dashboard, an export), timed as `owner`,
    each given `owner_timeout` seconds (an export of a big project takes longer than a `next`)."""
    result = LoadResult(seconds=0.0, latencies={"next": [], "answer": [], "owner": []})

    def count(key: str) -> None:
        result.codes[key] = result.codes.get(key, 0) + 1

    async def timed(
        conn: Conn, kind: str, method: str, path: str, body: bytes = b""
    ) -> tuple[int | None, bytes]:
        t = time.perf_counter()
        limit = owner_timeout if kind == "owner" else TIMEOUT
        try:
            status, data = await asyncio.wait_for(conn.request(method, path, body), limit)
        except TimeoutError:  # a failure, and a latency sample of the limit
            conn.close()
            count("timeout")
            result.latencies[kind].append(limit)
            return None, b""
        result.latencies[kind].append(time.perf_counter() - t)
        count(f"{kind} {status}")
        return status, data

    async def annotator(token: str, stop: float) -> None:
        conn, rng = Conn(base, token), random.Random(token)
        try:
            while time.monotonic() < stop:
                status, data = await timed(conn, "next", "GET", f"/api/v1/projects/{pid}/next")
                if status != 200:  # 204: nothing to do now; anything else: do not hammer
                    if status == 204 and result.ran_dry_s is None:
                        result.ran_dry_s = time.monotonic() - t0
                        result.acked_before_dry = len(result.acked)
                    await asyncio.sleep(0.05)
                    continue
                task = json.loads(data)["task_id"]
                body = json.dumps({"answer": rng.choice(classes)}).encode()
                status, _ = await timed(conn, "answer", "POST", f"/api/v1/tasks/{task}/answer", body)
                if status == 201:
                    result.acked.append(str(task))
                elif status is None or status >= 400:
                    await asyncio.sleep(0.05)
                if think:
                    await asyncio.sleep(think)
        except GoneError:
            count("connection error")
        finally:
            conn.close()

    async def poller(token: str, path: str, every: float, stop: float) -> None:
        conn = Conn(base, token)
        try:
            while time.monotonic() < stop:
                await timed(conn, "owner", "GET", path)
                await asyncio.sleep(every)
        except GoneError:
            count("connection error")
        finally:
            conn.close()

    cpu0, t0 = time.process_time(), time.monotonic()
    stop = t0 + seconds
    await asyncio.gather(
        *(annotator(t, stop) for t in tokens),
        *(poller(t, path, every, stop) for t, path, every in owner_polls or ()),
    )
    result.seconds = time.monotonic() - t0
    result.client_cpu_s = time.process_time() - cpu0
    return result
