"""The CRNN (torch, the `deep` extra) and the experiment end to end on a tiny bank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from listenloop.sed.crnn import CRNN, TrainConfig, predict, train  # noqa: E402
from listenloop.sed.experiment import Settings, run  # noqa: E402
from listenloop.sed.features import sed_log_mel  # noqa: E402


def test_crnn_shapes_one_step_per_second() -> None:
    model = CRNN(3)
    y = model(torch.zeros(2, 500, 64))
    assert tuple(y.shape) == (2, 10, 3)


def test_training_learns_a_loud_band_and_linear_output_follows_soft_targets() -> None:
    rng = np.random.default_rng(0)
    feats, targets = [], []
    for _ in range(2):
        active = rng.random(40) < 0.4
        f = rng.normal(0, 1, (40 * 50, 64)).astype(np.float32)
        f[np.repeat(active, 50), 10:20] += 3.0  # class 0 lights up bands 10-19 in its seconds
        feats.append(f)
        targets.append(np.stack([active * 0.8, np.zeros(40)], axis=1))
    config = TrainConfig(epochs=20, batch_size=2, learning_rate=1e-2, seed=0)
    for setup in ("S_BCE.sig", "S_MSE.lin"):
        model = train(setup, feats, targets, 2, config)
        out = predict(model, setup, feats[0])
        assert out.shape == (40, 2)
        on = targets[0][:, 0] > 0
        assert out[on, 0].mean() - out[~on, 0].mean() > 0.3, setup
    # The linear set-up regresses towards the 0.8 target, not towards 1.
    assert abs(out[on, 0].mean() - 0.8) < 0.25


def test_log_mel_input_of_the_paper() -> None:
    sr = 44100
    x = np.random.default_rng(0).normal(0, 0.1, sr * 2).astype(np.float32)
    assert sed_log_mel(x, sr).shape == (len(range(0, len(x) - 2048 + 1, 882)), 64)


def _tiny_bank(root: Path) -> Path:
    sr = 16000
    (root / "events").mkdir(parents=True)
    rows = ["file,label"]
    t = np.arange(int(0.8 * sr)) / sr
    for label, f in (("beep", 800.0), ("buzz", 3000.0)):
        for k in range(2):
            sig = 0.5 * np.sin(2 * np.pi * (f + 50 * k) * t) * np.hanning(len(t))
            sf.write(root / "events" / f"{label}{k}.wav", sig.astype(np.float32), sr)
            rows.append(f"events/{label}{k}.wav,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_experiment_writes_the_contracted_summary(tmp_path: Path) -> None:
    bank = _tiny_bank(tmp_path / "bank")
    settings = Settings(
        recordings=2, minutes=(0.5, 0.5), folds=2, epochs=2, workers=6, per_segment=3, sample_rate=16000
    )
    summary = run(tmp_path / "out", settings, bank, log=lambda m: None)
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["setups"].keys() == {"H_BCE.sig", "S_BCE.sig", "S_MSE.lin", "S_MSE.lin.classwise"}
    for row in on_disk["setups"].values():
        assert {"f1", "er", "kld", "classes_detected"} <= row.keys()
        assert 0 <= row["f1"] <= 1 and 0 <= row["classes_detected"] <= 2
    assert on_disk["soft_labels"]["mace_mae"] == summary["soft_labels"]["mace_mae"]
    assert {"mace_mae", "mean_mae", "mace_hard_f1", "mean_hard_er"} <= on_disk["soft_labels"].keys()
    for name in ("report.md", "class_f1.png", "soft_labels.png", "answers.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "out" / "labels" / "soft").iterdir()) == [
        "scape00.txt",
        "scape01.txt",
    ]
    assert "| H_BCE.sig | 0.5 |" in (tmp_path / "out" / "report.md").read_text()
