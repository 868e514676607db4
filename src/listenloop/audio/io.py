"""Decoding audio files to mono float32 at a chosen sample rate (soundfile + soxr)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from listenloop.errors import AudioError

#: Extensions we try to decode; soundfile (libsndfile >= 1.1) reads all of them, mp3 included.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def load_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode `path` to a mono float32 signal, resampled to `sample_rate` when given.

    Raises AudioError with the reason when the file is unreadable, not audio or empty.
    """
    path = Path(path)
    try:
        signal, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError as exc:
        raise AudioError(f"{path}: no such file") from exc
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{path}: not readable as audio ({exc})") from exc
    if signal.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    mono = signal.mean(axis=1) if signal.shape[1] > 1 else signal[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: audio holds non-finite samples")
    if sample_rate is not None and sample_rate != sr:
        mono = soxr.resample(mono, sr, sample_rate).astype(np.float32, copy=False)
        sr = sample_rate
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)
