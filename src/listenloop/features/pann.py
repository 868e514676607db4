"""PANN embeddings: the CNN14 network of Kong et al. (2020), its 2048-d penultimate activations.

The architecture is written here; the weights come from a checkpoint file the user gives
(`--checkpoint PATH`, e.g. PANN's `Cnn14_mAP=0.431.pth`). Nothing is downloaded. The front
end follows CNN14's: 32 kHz, a 1024-point STFT (Hann, hop 320, centred with reflection),
64 mel bands from 50 Hz to 14 kHz (the checkpoint's own `logmel_extractor.melW` when it has
one, else Slaney-style filters computed here), 10·log10 power; then bn0 over the mel bands,
six conv blocks, mean over frequency, max plus mean over time, and ReLU(fc1): the embedding.
Needs torch (`pip install 'listenloop[deep]'`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.signal

from listenloop.errors import ListenloopError
from listenloop.features.registry import FEATURE_VERSION, Extractor, register

SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 320
N_MELS = 64
FMIN, FMAX = 50.0, 14000.0
EMBEDDING_DIM = 2048
#: Checkpoint entries CNN14 does not need for embeddings (the STFT as convolutions, the AudioSet head).
IGNORED_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.", "fc_audioset.")
#: Shortest input, in samples: five time poolings by 2 need at least 32 frames (one second is safe).
MIN_SAMPLES = SAMPLE_RATE


def _slaney_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _slaney_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def slaney_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_fft//2+1 × n_mels) triangular filters on the Slaney mel scale, area-normalised (as
    librosa's default `filters.mel`, which PANN's front end uses)."""
    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = _slaney_hz(np.linspace(_slaney_mel(FMIN), _slaney_mel(FMAX), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - lower) / (centre - lower)
    down = (upper - bins[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (upper - lower))
    return fb.T.astype(np.float32)


def log_mel_frames(signal: np.ndarray, mel_w: np.ndarray) -> np.ndarray:
    """CNN14's input: 10·log10 mel power (frames × mel bands) of a 32 kHz signal."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    if x.size < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - x.size))
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spec = np.fft.rfft(frames * scipy.signal.get_window("hann", N_FFT, fftbins=True), axis=1)
    power = spec.real**2 + spec.imag**2
    return (10.0 * np.log10(np.maximum(power @ mel_w, 1e-10))).astype(np.float32)


def build_cnn14() -> Any:
    """A CNN14 network without its STFT front end (torch `nn.Module`), randomly initialised."""
    from listenloop.learners.mc_dropout import require_torch

    torch = require_torch()
    nn, F = torch.nn, torch.nn.functional

    class ConvBlock(nn.Module):
        def __init__(self, cin: int, cout: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.bn2 = nn.BatchNorm2d(cout)

        def forward(self, x: Any, pool: tuple[int, int]) -> Any:
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            return F.avg_pool2d(x, kernel_size=pool)

    class Cnn14(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn0 = nn.BatchNorm2d(N_MELS)
            widths = [1, 64, 128, 256, 512, 1024, 2048]
            for i in range(6):
                self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
            self.fc1 = nn.Linear(2048, EMBEDDING_DIM)

        def forward(self, x: Any) -> Any:  # x: batch × 1 × frames × mel
            x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
            for i in range(6):
                x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < 5 else (1, 1))
            x = x.mean(dim=3)
            x = x.max(dim=2).values + x.mean(dim=2)
            return F.relu(self.fc1(x))

    return Cnn14()


def load_cnn14(path: str | Path) -> tuple[Any, np.ndarray]:
    """CNN14 with the weights of checkpoint `path` (PANN's `{"model": state_dict}` or a bare state
    dict), in eval mode, and the mel filters to use. Clear errors for a missing file or keys that
    are not CNN14's."""
    from listenloop.learners.mc_dropout import require_torch

    torch = require_torch()
    path = Path(path)
    if not path.is_file():
        raise ListenloopError(f"pann: checkpoint {path} not found (give CNN14 weights with --checkpoint)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ListenloopError(f"pann: checkpoint {path} cannot be read by torch.load: {exc}") from None
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ListenloopError(f"pann: checkpoint {path} holds no state dict")
    model = build_cnn14()
    wanted = set(model.state_dict())
    given = {k for k in state if not k.startswith(IGNORED_PREFIXES)}
    missing, unexpected = sorted(wanted - given), sorted(given - wanted)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) ({', '.join(missing[:3])}…)")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) ({', '.join(unexpected[:3])}…)")
        raise ListenloopError(f"pann: checkpoint {path} is not a CNN14 checkpoint: {'; '.join(parts)}")
    try:
        model.load_state_dict({k: state[k] for k in wanted})
    except RuntimeError as exc:
        raise ListenloopError(f"pann: checkpoint {path}: {str(exc).splitlines()[0]}") from None
    model.eval()
    mel = state.get("logmel_extractor.melW")
    mel_w = np.asarray(mel, dtype=np.float32) if mel is not None else slaney_filterbank()
    if mel_w.shape != (N_FFT // 2 + 1, N_MELS):
        raise ListenloopError(f"pann: checkpoint {path}: logmel_extractor.melW has shape {mel_w.shape}")
    return model, mel_w


@register
class PANN(Extractor):
    """CNN14 (PANN) embeddings: the 2048 activations of fc1, from a checkpoint the user provides."""

    name = "pann"
    description = "CNN14 (PANN) embeddings, 2048-d, from --checkpoint weights"
    defaults: ClassVar[dict[str, Any]] = {"checkpoint": None}
    needs_file: ClassVar[bool] = True  # weights from the user: not a project's feature set

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    @property
    def names(self) -> list[str]:
        return [f"pann{i}" for i in range(EMBEDDING_DIM)]

    def _path(self) -> Path:
        if not self.params["checkpoint"]:
            raise ListenloopError(
                "feature set 'pann' needs CNN14 weights: pass --checkpoint PATH (nothing is downloaded)"
            )
        return Path(str(self.params["checkpoint"]))

    @property
    def version(self) -> str:
        """listenloop's feature version plus the checkpoint's content hash: other weights, other cache."""
        digest = getattr(self, "_digest", None)
        if digest is None:
            from listenloop.learners.mc_dropout import require_torch

            require_torch()  # say which extra to install before any file is read
            path = self._path()
            if not path.is_file():
                raise ListenloopError(f"pann: checkpoint {path} not found")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            self._digest = digest
        return f"{FEATURE_VERSION}:cnn14:{digest}"

    def extract(self, signal: np.ndarray, sr: int) -> np.ndarray:
        from listenloop.learners.mc_dropout import require_torch

        torch = require_torch()
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            loaded = self._loaded = load_cnn14(self._path())
        model, mel_w = loaded
        frames = log_mel_frames(signal, mel_w)
        with torch.no_grad():
            out = model(torch.from_numpy(frames)[None, None])
        return out[0].numpy().astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for Dask workers: the network is loaded again where it runs."""
        state = self.__dict__.copy()
        state.pop("_loaded", None)
        return state
