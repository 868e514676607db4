"""Log-mel band statistics and MFCC functionals, in numpy/scipy alone.

The mel filterbank is written here in a few lines of numpy on purpose: librosa would pull
numba/llvmlite (seconds of import in every worker process) and python_speech_features is
not available, while a triangular filterbank on the STFT bins is all either would give us.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.fft
import scipy.signal

from listenloop.features.registry import Extractor, register

_TINY = 1e-10  # floor of the mel energies before the log: silence gives log(1e-10), not -inf


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, sr: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular filters (n_mels × n_fft//2+1), equally spaced on the mel scale, peak 1.

    The triangles are evaluated at each bin's exact frequency (not snapped to bins), so even
    narrow low-frequency filters never come out empty.
    """
    fmax = sr / 2.0 if fmax is None else min(float(fmax), sr / 2.0)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling))


def power_spectrogram(signal: np.ndarray, n_fft: int, win_length: int, hop_length: int) -> np.ndarray:
    """|STFT|² (frames × n_fft//2+1) with a Hann window; a signal shorter than a frame is zero-padded."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    if x.size < win_length:
        x = np.pad(x, (0, win_length - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, win_length)[::hop_length]
    window = scipy.signal.get_window("hann", win_length, fftbins=True)
    spec = scipy.fft.rfft(frames * window, n=n_fft, axis=1)
    return spec.real**2 + spec.imag**2


def deltas(series: np.ndarray, width: int = 2) -> np.ndarray:
    """HTK regression deltas along frames (axis 0), edges repeated; one frame gives zeros."""
    n = series.shape[0]
    padded = np.pad(series, ((width, width), (0, 0)), mode="edge")
    out = np.zeros_like(series)
    for k in range(1, width + 1):
        out += k * (padded[width + k : width + k + n] - padded[width - k : width - k + n])
    return out / (2.0 * sum(k * k for k in range(1, width + 1)))


def log_mel(signal: np.ndarray, sr: int, params: dict[str, Any]) -> np.ndarray:
    """Log mel energies (frames × n_mels) of `signal` at `sr` with the window/hop/mel `params`."""
    win = round(params["win_ms"] * sr / 1000)
    hop = round(params["hop_ms"] * sr / 1000)
    n_fft = 1 << max(win - 1, 1).bit_length()  # next power of two ≥ the window
    power = power_spectrogram(signal, n_fft, win, hop)
    fb = mel_filterbank(params["n_mels"], n_fft, sr, params["fmin"], params["fmax"])
    return np.log(np.maximum(power @ fb.T, _TINY))


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Variance, skewness and excess kurtosis per column; a constant column gives 0, 0, 0."""
    centred = x - x.mean(axis=0)
    m2 = np.mean(centred**2, axis=0)
    m3 = np.mean(centred**3, axis=0)
    m4 = np.mean(centred**4, axis=0)
    flat = m2 <= 1e-12 * np.maximum(1.0, np.mean(x**2, axis=0))
    safe = np.where(flat, 1.0, m2)
    skew = np.where(flat, 0.0, m3 / safe**1.5)
    kurt = np.where(flat, 0.0, m4 / safe**2 - 3.0)
    return m2, skew, kurt


class _Spectral(Extractor):
    """Shared parameters: analysis rate, window and hop (ms), mel band range."""

    @property
    def sample_rate(self) -> int:
        return int(self.params["sample_rate"])


@register
class LogMel(_Spectral):
    """Per mel band: mean, std, min, max of the log energy, and mean, std of its deltas."""

    name = "logmel"
    description = "log-mel band statistics (6 per band)"
    defaults: ClassVar[dict[str, Any]] = {
        "sample_rate": 16000,
        "n_mels": 40,
        "win_ms": 25.0,
        "hop_ms": 10.0,
        "fmin": 0.0,
        "fmax": None,
    }
    stats = ("mean", "std", "min", "max", "delta_mean", "delta_std")

    @property
    def dim(self) -> int:
        return len(self.stats) * int(self.params["n_mels"])

    @property
    def names(self) -> list[str]:
        return [f"logmel{b}_{s}" for s in self.stats for b in range(int(self.params["n_mels"]))]

    def extract(self, signal: np.ndarray, sr: int) -> np.ndarray:
        lm = log_mel(signal, sr, self.params)
        d = deltas(lm)
        parts = [lm.mean(0), lm.std(0), lm.min(0), lm.max(0), d.mean(0), d.std(0)]
        return np.concatenate(parts).astype(np.float32)


@register
class MFCC(_Spectral):
    """13 MFCCs with deltas and delta-deltas; per series min, max, median, mean, variance,
    skewness, kurtosis (the medoid baseline features)."""

    name = "mfcc"
    description = "MFCC + deltas functionals (7 per series)"
    defaults: ClassVar[dict[str, Any]] = {
        "sample_rate": 16000,
        "n_mfcc": 13,
        "n_mels": 26,
        "win_ms": 25.0,
        "hop_ms": 10.0,
        "fmin": 0.0,
        "fmax": None,
    }
    stats = ("min", "max", "median", "mean", "var", "skew", "kurt")

    @property
    def dim(self) -> int:
        return len(self.stats) * 3 * int(self.params["n_mfcc"])

    @property
    def names(self) -> list[str]:
        n = int(self.params["n_mfcc"])
        series = [f"mfcc{i}" for i in range(n)] + [f"mfcc{i}_d" for i in range(n)]
        series += [f"mfcc{i}_dd" for i in range(n)]
        return [f"{c}_{s}" for s in self.stats for c in series]

    def extract(self, signal: np.ndarray, sr: int) -> np.ndarray:
        lm = log_mel(signal, sr, self.params)
        c = scipy.fft.dct(lm, type=2, norm="ortho", axis=1)[:, : int(self.params["n_mfcc"])]
        d = deltas(c)
        series = np.concatenate([c, d, deltas(d)], axis=1)
        var, skew, kurt = _moments(series)
        parts = [series.min(0), series.max(0), np.median(series, 0), series.mean(0), var, skew, kurt]
        return np.concatenate(parts).astype(np.float32)


def mfcc_gaussians(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip means and variances of the MFCCs and their deltas, read from rows of the `mfcc`
    set (the `mean` and `var` functionals of each series): MAL's per-clip Gaussians."""
    table = np.asarray(table, dtype=np.float64)
    series, rest = divmod(table.shape[1], len(MFCC.stats))
    if rest or series == 0:
        raise ValueError(f"{table.shape[1]} columns are not a table of the mfcc set")
    at = {s: i for i, s in enumerate(MFCC.stats)}
    return (
        table[:, at["mean"] * series : (at["mean"] + 1) * series],
        table[:, at["var"] * series : (at["var"] + 1) * series],
    )
