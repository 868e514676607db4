"""What stands between a stranger and the password hash: failure throttles and a hashing gate.

Every login (`POST /token`, `POST /session`) and every password check of a signed-in user
costs an argon2id hash (64 MiB, several cores for a fraction of a second): unbounded, a few
dozen parallel wrong logins took gigabytes and stalled the annotators. So:

- `LoginThrottle` counts failed logins per account and per client address over a sliding
  window; past the limit the login is refused with 429 and `Retry-After` *before* any hash
  (a correct password too, so that the refusal tells a guesser nothing). An attempt counts
  while it runs (parallel guesses cannot slip past the limit) and is forgiven when it
  succeeds. IPv6 clients are counted by their /64, which one host usually owns whole.
- `HashGate` lets only a few hashes run at once; a few more requests wait briefly for a slot,
  the rest get 429 at once: the queue never grows without bound. The hashes run in threads of
  their own at a lower CPU priority (nice +10, which argon2's lane threads inherit), so that
  the annotators' requests on the event loop come first when both want the CPU.

The counters live in each server process: with `serve --workers N` a guesser who reaches
every worker gets N times the budget (still a few dozen guesses per account an hour), and
each worker's gate bounds its own hashing. Unknown users cost one hash of a dummy, like
known ones (engine/accounts.verify_password), and count against their name the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from fastapi import HTTPException, Request, status

from listenloop.priority import lower_priority

T = TypeVar("T")

WINDOW_SECONDS = 15 * 60.0
ACCOUNT_FAILURES = 10  # per account and window
ADDRESS_FAILURES = 50  # per client address and window: a classroom behind one NAT mistypes too
MAX_KEYS = 100_000  # counters kept at most (the oldest go first)
# One argon2id hash runs 4 lanes (threads): a slot per 4 cores keeps cores for the annotators.
HASH_SLOTS = max(1, (os.cpu_count() or 1) // 4)
HASH_QUEUE = 16  # waiting per slot, at most
HASH_WAIT_SECONDS = 5.0
HASH_NICE = 10  # added to the hashing threads' nice value (Linux: per thread, inherited)


def too_many(detail: str, retry_after: float) -> HTTPException:
    """429 with Retry-After in whole seconds (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS, f"{detail}; retry in {seconds} s", {"Retry-After": str(seconds)}
    )


def client_address(request: Request) -> str:
    """The client's address as a throttle key (IPv6: its /64)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class FailureCounter:
    """Failures per key within the last `window` seconds, `limit` at most counted."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._times: dict[str, deque[float]] = {}

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: it may now)."""
        times = self._times.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._times[key]
            return 0.0
        return times[0] + self.window - now if len(times) >= self.limit else 0.0

    def add(self, key: str, now: float) -> None:
        """Count one failure (or attempt in flight) of `key`."""
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= self.max_keys:
                for old in list(self._times)[: self.max_keys // 10 + 1]:
                    del self._times[old]
            times = self._times[key] = deque(maxlen=self.limit)
        times.append(now)

    def forgive(self, key: str, when: float) -> None:
        """Take back the attempt counted at `when` (it succeeded, or never reached the hash)."""
        times = self._times.get(key)
        if times is None:
            return
        try:
            times.remove(when)
        except ValueError:
            return
        if not times:
            del self._times[key]


@dataclass(frozen=True)
class Attempt:
    """One login attempt in flight: its keys and when it was counted."""

    account: str
    address: str
    at: float


class LoginThrottle:
    """Failed logins per account and per client address (see the module's docstring)."""

    def __init__(
        self,
        account_limit: int = ACCOUNT_FAILURES,
        address_limit: int = ADDRESS_FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = FailureCounter(account_limit, window)
        self.addresses = FailureCounter(address_limit, window)
        self.clock = clock

    def begin(self, account: str, address: str) -> Attempt:
        """Count an attempt before its hash; 429 (HTTPException) when either key is over its limit."""
        now = self.clock()
        wait = max(self.accounts.wait(account, now), self.addresses.wait(address, now))
        if wait > 0:
            raise too_many("too many failed sign-ins for this account or from this address", wait)
        self.accounts.add(account, now)
        self.addresses.add(address, now)
        return Attempt(account, address, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the attempt no longer counts."""
        self.cancelled(attempt)

    def cancelled(self, attempt: Attempt) -> None:
        """The attempt never reached the hash (the gate was full): it does not count."""
        self.accounts.forgive(attempt.account, attempt.at)
        self.addresses.forgive(attempt.address, attempt.at)


class HashGate:
    """At most `slots` password hashes at once; `queue` more wait up to `wait` seconds, the
    rest are refused at once (429)."""

    def __init__(
        self, slots: int = HASH_SLOTS, queue: int | None = None, wait: float = HASH_WAIT_SECONDS
    ) -> None:
        self.slots = slots
        self.queue = HASH_QUEUE * slots if queue is None else queue
        self.wait = wait
        self.waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(slots)
        self._threads = ThreadPoolExecutor(
            slots, "password-hash", initializer=lower_priority, initargs=(HASH_NICE,)
        )  # the hashes yield the CPU to the event loop

    def _gate(self) -> asyncio.Semaphore:
        # One semaphore per event loop: tests may run one app under several loops in turn.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._semaphore = loop, asyncio.Semaphore(self.slots)
        return self._semaphore

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a hashing thread once a slot is free; 429 (HTTPException) when busy."""
        gate = self._gate()
        if gate.locked():
            if self.waiting >= self.queue:
                raise too_many("the server is busy checking passwords", 1)
            self.waiting += 1
            try:
                await asyncio.wait_for(gate.acquire(), self.wait)
            except TimeoutError:
                raise too_many("the server is busy checking passwords", 1) from None
            finally:
                self.waiting -= 1
        else:
            await gate.acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, partial(fn, *args))
        finally:
            gate.release()
