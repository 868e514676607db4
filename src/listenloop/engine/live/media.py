"""Spectrogram pictures of clips, rendered once and cached next to the audio."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from listenloop.audio.io import load_audio

_render_lock = threading.Lock()  # matplotlib's Agg canvas is not safe to share across threads
MAX_SECONDS = 60.0


def spectrogram_path(sha256: str) -> str:
    """Where a clip's spectrogram PNG is cached, relative to the data folder."""
    return f"spectrograms/{sha256[:2]}/{sha256}.png"


def render_spectrogram(audio: Path, dest: Path) -> Path:
    """Write a log-power spectrogram PNG of `audio` to `dest` (atomically); returns `dest`.

    Slow (decoding and plotting): call it off the event loop. At most the first minute is drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    signal, sr = load_audio(audio)
    signal = signal[: int(MAX_SECONDS * sr)]
    nfft = 512 if sr >= 16000 else 256
    with _render_lock:
        fig = Figure(figsize=(6, 2.4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.08, 0.18, 0.9, 0.78))
        ax.specgram(
            signal if len(signal) >= nfft else np.pad(signal, (0, nfft - len(signal))),
            NFFT=nfft,
            Fs=sr,
            noverlap=nfft // 2,
            cmap="magma",
            scale="dB",
        )
        ax.set_xlabel("time (s)")
        ax.set_ylabel("Hz")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".png", dir=dest.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, format="png")
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dest
