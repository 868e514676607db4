"""Keeps a blocked torch blocked without breaking SciPy.

`sys.modules["torch"] = None` is the usual way to forbid `import torch`, but SciPy 1.17's
array-API helpers read `sys.modules["torch"].Tensor` and crash on the None. We swap the
None for an import hook with the same meaning: `import torch` still raises ImportError.
"""

from __future__ import annotations

import importlib.abc
import sys


class _Blocked(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ImportError(f"import of {fullname} is blocked")
        return None


def keep_blocked_imports_blocked() -> None:
    """Replace None entries for torch in sys.modules by an equivalent import blocker."""
    blocked = {name for name in ("torch",) if name in sys.modules and sys.modules[name] is None}
    if not blocked:
        return
    for name in blocked:
        del sys.modules[name]
    sys.meta_path.insert(0, _Blocked(blocked))
