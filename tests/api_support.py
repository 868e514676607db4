"""What the API tests share: the FSDD fixture clips as bytes, zips of them, and signing in."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile
from fastapi.testclient import TestClient

RECORDINGS = Path(__file__).parent / "fixtures" / "fsdd" / "recordings"


def wavs(n: int) -> dict[str, bytes]:
    """The first `n` FSDD clips by name (names like 0_jackson_0.wav: the digit comes first)."""
    return {p.name: p.read_bytes() for p in sorted(RECORDINGS.glob("*.wav"))[:n]}


def tone_wav(freq: float, seed: int, sr: int = 16000) -> bytes:
    """Half a second of a tone with a little noise, as 16-bit wav bytes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.5 * sr)) / sr
    signal = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    soundfile.write(buf, signal.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    """A zip archive of `files` (name: bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def login(c: TestClient, user: str, password: str) -> dict[str, str]:
    """Bearer headers of `user`."""
    r = c.post("/api/v1/token", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def annotator(c: TestClient, name: str) -> dict[str, str]:
    """Register an annotator (password NAME-password) and sign in."""
    r = c.post("/api/v1/users", json={"username": name, "password": f"{name}-password"})
    assert r.status_code == 201, r.text
    return login(c, name, f"{name}-password")


def wait_http(base: str, path: str = "/docs", tries: int = 120) -> None:
    """Wait until a server started in another process answers `path` (about a minute at most)."""
    for _ in range(tries):
        try:
            if httpx.get(f"{base}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"the server at {base} did not answer")


def count_transactions(db: Any, monkeypatch: Any) -> list[int]:
    """A list that grows by one for each write transaction `db.direct()` opens from now on."""
    opened: list[int] = []
    real = db.direct

    def counted() -> Any:
        opened.append(1)
        return real()

    monkeypatch.setattr(db, "direct", counted)
    return opened
