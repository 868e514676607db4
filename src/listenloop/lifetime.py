"""Child processes that end with the process that started them, even when it is killed -9."""

from __future__ import annotations

import os
import signal


def die_with_parent(parent_pid: int) -> None:
    """Linux: this process gets SIGKILL when its parent dies; it exits now if that already happened."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent stops its children itself
        return
    if os.getppid() == 1 or not alive(parent_pid):
        os._exit(1)


def alive(pid: int) -> bool:
    """Whether process `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
