"""CPU priority of background work: threads and processes that yield to the request path.

On Linux a nice value belongs to a thread (tid 0: the calling one), and threads and processes
started later inherit it from the thread that starts them: a thread that lowers itself before
it starts a pool or a fork server lowers them too.
"""

from __future__ import annotations

import contextlib
import os

NICEST = 19  # the lowest priority a nice value gives


def lower_priority(by: int = 0, at_least: int = 0, tid: int = 0) -> None:
    """Raise thread `tid`'s nice value by `by`, and to at least `at_least` (at most NICEST);
    never raise its priority, and keep it where the OS has no priorities or forbids the change."""
    with contextlib.suppress(AttributeError, OSError):
        current = os.getpriority(os.PRIO_PROCESS, tid)
        wanted = min(NICEST, max(current + by, at_least))
        if wanted > current:
            os.setpriority(os.PRIO_PROCESS, tid, wanted)
