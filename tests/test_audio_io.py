"""Decoding: wav, flac, ogg and mp3; mix-down to mono; resampling; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from listenloop.audio import load_audio
from listenloop.errors import AudioError


def tone(sr: int = 16000, seconds: float = 0.5, channels: int = 2) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    mono = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.column_stack([mono] * channels).astype(np.float32)


@pytest.mark.parametrize(
    ("ext", "fmt", "subtype"),
    [
        ("wav", "WAV", "PCM_16"),
        ("flac", "FLAC", "PCM_16"),
        ("ogg", "OGG", "VORBIS"),
        ("mp3", "MP3", "MPEG_LAYER_III"),
    ],
)
def test_formats_decode_to_mono_float32(tmp_path: Path, ext: str, fmt: str, subtype: str) -> None:
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(), 16000, format=fmt, subtype=subtype)
    signal, sr = load_audio(path)
    assert sr == 16000 and signal.ndim == 1 and signal.dtype == np.float32
    assert abs(len(signal) - 8000) < 2000  # lossy codecs pad a little
    assert 0.2 < np.sqrt(np.mean(signal**2)) < 0.5  # a sine of amplitude 0.5 has RMS 0.354


def test_resampling_and_mixdown(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    stereo = tone(sr=44100)
    stereo[:, 1] = 0.0  # mix-down averages the channels
    sf.write(path, stereo, 44100)
    signal, sr = load_audio(path, sample_rate=16000)
    assert sr == 16000 and len(signal) == 8000
    assert np.sqrt(np.mean(signal[100:-100] ** 2)) == pytest.approx(0.354 / 2, rel=0.02)


def test_bad_files_raise_audio_errors(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name in ("text.wav", "empty.wav", "missing.wav"):
        with pytest.raises(AudioError, match=name):
            load_audio(tmp_path / name)
