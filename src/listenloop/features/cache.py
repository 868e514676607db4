"""On-disk feature cache: one checked entry per (file content, extractor, parameters, version).

Entries are keyed by content, not path, so a renamed or copied file still hits, and an
edited one misses. Each entry carries a sha256 of its payload: a truncated, overwritten or
half-written entry is detected on read and recomputed, never used.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from listenloop.features.registry import Extractor

#: Environment variable that overrides the default cache folder.
CACHE_ENV = "LISTENLOOP_CACHE"

_MAGIC = b"LLFEAT01"
_HEADER = struct.Struct("<8sI32s")  # magic, number of float32 values, sha256 of the payload
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """`$LISTENLOOP_CACHE`, else `~/.cache/listenloop/features`."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "listenloop" / "features"


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


class FeatureCache:
    """Feature vectors stored under `root/<first 2 hex of key>/<key>.f32`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def key(self, digest: str, extractor: Extractor) -> str:
        """Entry key of a file with content `digest` under `extractor` (its name, params, version)."""
        return hashlib.sha256(f"{digest}\n{extractor.cache_token()}".encode()).hexdigest()

    def keys(self, digests: list[str], extractor: Extractor) -> list[str]:
        """`key` of many files at once (the extractor's token is made once, not per file)."""
        token = extractor.cache_token()
        return [hashlib.sha256(f"{d}\n{token}".encode()).hexdigest() for d in digests]

    def path(self, key: str) -> Path:
        """Where the entry `key` lives (sharded by its first two hex characters)."""
        return self.root / key[:2] / f"{key}.f32"

    def get(self, key: str, dim: int | None = None) -> np.ndarray | None:
        """The stored vector, or None when absent or damaged (bad magic, size, length or checksum)."""
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        return decode_entry(data, dim)

    def put(self, key: str, values: np.ndarray) -> None:
        """Store `values` (cast to float32) atomically: a temporary file, then os.replace."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encode_entry(values))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def encode_entry(values: np.ndarray) -> bytes:
    """Header (magic, length, sha256 of the payload) + little-endian float32 payload."""
    payload = np.ascontiguousarray(values, dtype="<f4").ravel().tobytes()
    return _HEADER.pack(_MAGIC, len(payload) // 4, hashlib.sha256(payload).digest()) + payload


def decode_entry(data: bytes, dim: int | None = None) -> np.ndarray | None:
    """The vector in `data`, or None if anything about it does not check out."""
    if len(data) < _HEADER.size:
        return None
    magic, n, digest = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if magic != _MAGIC or len(payload) != 4 * n or (dim is not None and n != dim):
        return None
    if hashlib.sha256(payload).digest() != digest:
        return None
    return np.frombuffer(payload, dtype="<f4").astype(np.float32)
