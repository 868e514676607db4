"""The CRNN of 004_ sec. 3.1 (after Adavanne et al. 2017) in torch, and its training set-ups.

Three convolution blocks (3×3 conv, batch norm, ReLU, max pooling over time and frequency),
two bidirectional GRU layers and a dense output per 1 s step: the pooling takes the 50 frames
of a second down to one step, the resolution of the labels. Set-ups: H_BCE.sig (hard targets,
BCE, sigmoid), S_BCE.sig (soft targets, BCE, sigmoid), S_MSE.lin (soft targets, MSE, linear).
Needs the `deep` extra (torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

SETUPS: dict[str, tuple[str, str, str]] = {
    # name: (targets, loss, output)
    "H_BCE.sig": ("hard", "bce", "sigmoid"),
    "S_BCE.sig": ("soft", "bce", "sigmoid"),
    "S_MSE.lin": ("soft", "mse", "linear"),
}


class CRNN(nn.Module):
    """(batch, frames, mels) log-mel -> (batch, frames // 50, classes) activity (logits for the
    sigmoid set-ups, values for the linear one)."""

    def __init__(
        self, n_classes: int, n_mels: int = 64, filters: int = 16, hidden: int = 32, dropout: float = 0.2
    ):
        super().__init__()
        pools = [(5, 4), (5, 4), (2, 2)]  # time × frequency: 50 frames -> 1 step, 64 mels -> 2
        blocks: list[nn.Module] = []
        channels = 1
        for pool in pools:
            blocks += [
                nn.Conv2d(channels, filters, 3, padding=1),
                nn.BatchNorm2d(filters),
                nn.ReLU(),
                nn.MaxPool2d(pool),
                nn.Dropout(dropout),
            ]
            channels = filters
        self.conv = nn.Sequential(*blocks)
        freq = n_mels // (4 * 4 * 2)
        self.gru = nn.GRU(
            filters * freq, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=dropout
        )
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        h = h.permute(0, 2, 1, 3).flatten(2)  # (B, T', C·F')
        h, _ = self.gru(h)
        return self.out(h)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 2e-3
    chunk_seconds: int = 10
    filters: int = 16
    hidden: int = 32
    seed: int = 0


def _chunks(
    feats: list[np.ndarray], targets: list[np.ndarray], seconds: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training examples: `seconds`-long windows at a random start offset per epoch, whole seconds."""
    xs, ys = [], []
    frames = 50 * seconds
    for f, y in zip(feats, targets, strict=True):
        n_sec = min(len(f) // 50, len(y))
        start = int(rng.integers(0, seconds)) if n_sec > 2 * seconds else 0
        for s in range(start, n_sec - seconds + 1, seconds):
            xs.append(f[50 * s : 50 * s + frames])
            ys.append(y[s : s + seconds])
    return np.stack(xs), np.stack(ys).astype(np.float32)


def train(
    setup: str,
    feats: list[np.ndarray],
    targets: list[np.ndarray],
    n_classes: int,
    config: TrainConfig,
) -> CRNN:
    """A CRNN trained on normalised features (per recording: frames × mels) and per-second
    targets (seconds × classes, in [0, 1]) with `setup`'s loss."""
    _, loss_name, _ = SETUPS[setup]
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = CRNN(n_classes, feats[0].shape[1], config.filters, config.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss() if loss_name == "bce" else nn.MSELoss()
    for _ in range(config.epochs):
        x, y = _chunks(feats, targets, config.chunk_seconds, rng)
        order = rng.permutation(len(x))
        model.train()
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def predict(model: CRNN, setup: str, feats: np.ndarray, chunk_seconds: int = 60) -> np.ndarray:
    """Per-second activity (seconds, classes) of one recording's features: sigmoid
    probabilities, or the raw linear output for S_MSE.lin."""
    model.eval()
    n_sec = len(feats) // 50
    outs = []
    for s in range(0, n_sec, chunk_seconds):
        part = feats[50 * s : 50 * min(n_sec, s + chunk_seconds)]
        outs.append(model(torch.from_numpy(part[None]))[0])
    y = torch.cat(outs).numpy()
    return 1 / (1 + np.exp(-y)) if SETUPS[setup][2] == "sigmoid" else y
