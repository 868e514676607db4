"""Feature extractors: one base class, and a registry that maps a set's name to its class.

An extractor turns one mono float32 signal into one float32 vector of known length. Its
`name`, `params` and `version` make up the cache key, so any change that alters the values
must change one of them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from listenloop.errors import ListenloopError

#: Bumped whenever listenloop's own feature code changes values: invalidates every cache entry.
FEATURE_VERSION = "1"

#: name -> extractor class; filled by `register` when `listenloop.features` is imported.
EXTRACTORS: dict[str, type[Extractor]] = {}


class Extractor:
    """Base of all feature extractors.

    Subclasses set `name`, `defaults` (their parameters and default values) and implement
    `extract`; `sample_rate` is the rate signals are resampled to before `extract` (None: the
    file's own rate), `dim` the vector length and `names` one name per value.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ListenloopError(
                f"feature set '{self.name}': unknown parameter {', '.join(unknown)} (known: {known})"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}

    @property
    def sample_rate(self) -> int | None:
        """Rate the signal is resampled to before extraction; None keeps the file's rate."""
        return None

    @property
    def dim(self) -> int | None:
        """Length of the feature vector, when known before extracting anything."""
        return None

    @property
    def names(self) -> list[str]:
        """One name per feature value."""
        raise NotImplementedError

    @property
    def version(self) -> str:
        """Version of the code behind the values (listenloop's, plus a backend's if any)."""
        return FEATURE_VERSION

    def cache_token(self) -> str:
        """Canonical text of everything that determines the values: part of the cache key."""
        return json.dumps(
            {"name": self.name, "params": self.params, "version": self.version},
            sort_keys=True,
            default=str,
        )

    def extract(self, signal: np.ndarray, sr: int) -> np.ndarray:
        """Features of a mono float32 `signal` at `sr` Hz, as a float32 1-D array of `dim` values."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Extractor) and other.cache_token() == self.cache_token()

    def __hash__(self) -> int:
        return hash(self.cache_token())


def register(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: make `cls` available to `get_extractor` under `cls.name`."""
    EXTRACTORS[cls.name] = cls
    return cls


def platform_feature_sets() -> list[str]:
    """The sets a project can use: those that need no file from the user (pann needs --checkpoint)."""
    return [name for name, cls in EXTRACTORS.items() if not getattr(cls, "needs_file", False)]


def get_extractor(name: str, **params: Any) -> Extractor:
    """The extractor called `name` with `params` overriding its defaults.

    Raises ListenloopError naming the known sets when `name` is unknown.
    """
    cls = EXTRACTORS.get(str(name).strip().lower())
    if cls is None:
        raise ListenloopError(f"unknown feature set '{name}' (known: {', '.join(sorted(EXTRACTORS))})")
    return cls(**params)
