"""The SED input of 004_ sec. 3.1: 64 log-mel bands, 2048-sample window, 20 ms hop, 50 Hz-14 kHz."""

from __future__ import annotations

import numpy as np

from listenloop.features.spectral import log_mel

FRAME_HOP_S = 0.02  # 50 frames per second
N_MELS = 64


def sed_log_mel(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, 64) float32 log-mel energies; frame i starts at i * 20 ms."""
    params = {
        "win_ms": 2048 * 1000.0 / sample_rate,
        "hop_ms": FRAME_HOP_S * 1000.0,
        "n_mels": N_MELS,
        "fmin": 50.0,
        "fmax": min(14000.0, sample_rate / 2),
    }
    return log_mel(signal, sample_rate, params).astype(np.float32)
