"""`priority.lower_priority`: background threads only ever lower their own CPU priority."""

from __future__ import annotations

import os
import threading

import pytest

from listenloop.priority import NICEST, lower_priority


def _in_thread(**kwargs: int) -> tuple[int, int]:
    """(nice before, nice after) of a fresh thread that calls lower_priority(**kwargs)."""
    seen: list[int] = []

    def run() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, 0))
        lower_priority(**kwargs)
        seen.append(os.getpriority(os.PRIO_PROCESS, 0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0], seen[1]


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are a POSIX feature")
def test_it_lowers_by_a_step_or_to_a_floor_never_above_nicest_and_never_raises() -> None:
    before, after = _in_thread(by=3)
    assert after == min(NICEST, before + 3)
    before, after = _in_thread(at_least=NICEST)
    assert after == NICEST
    before, after = _in_thread(by=50)
    assert after == NICEST
    before, after = _in_thread(at_least=-20)  # a floor below it: no change (no privilege asked)
    assert after == before
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # the calling thread kept its own
