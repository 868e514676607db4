"""`listenloop sed experiment`: 004_ end to end on synthetic soundscapes with a simulated crowd.

Soundscapes of the DCASE 2016 office events over pink noise (known onsets and offsets, EBR
-6/0/6 dB, class frequencies skewed so that some classes are rare) -> a simulated crowd
answers 10 s segments at 1 s hops -> MACE competences -> weak-to-strong soft labels (eq. 1)
-> the CRNN trained in the three set-ups, K folds over recordings -> segment-based (1 s)
scores against the true activity, KL divergence against the soft reference.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from listenloop.audio.ebr_dataset import load_events
from listenloop.audio.soundscape import Soundscape, segment_activity, synthesise
from listenloop.crowd.soft_labels import weak_to_strong
from listenloop.errors import ListenloopError
from listenloop.sed import maestro
from listenloop.sed.annotators import SegmentCrowd
from listenloop.sed.features import sed_log_mel
from listenloop.sed.labels import mace_competence
from listenloop.sed.metrics import SegmentScores, kl_divergence, segment_scores, trimmed_midrange

SEGMENT_S = 10.0
HOP_S = 1.0


@dataclass
class Settings:
    """Everything that sizes the experiment (written to summary.json and the report)."""

    recordings: int = 8
    minutes: tuple[float, float] = (3.0, 5.0)
    folds: int = 3
    epochs: int = 10
    events_per_minute: float = 24.0
    rarity: float = 1.0  # class weights ∝ 1 / rank**rarity
    workers: int = 30
    per_segment: int = 5
    poor_share: float = 0.25
    sample_rate: int = 44100
    seed: int = 0


QUICK = Settings(recordings=4, minutes=(3.0, 3.0), folds=2, epochs=12)


def _class_weights(classes: list[str], rarity: float, rng: np.random.Generator) -> dict[str, float]:
    order = rng.permutation(len(classes))
    return {classes[int(i)]: 1.0 / (rank + 1) ** rarity for rank, i in enumerate(order)}


def _mae(soft: pd.DataFrame, truth: dict[str, np.ndarray], classes: list[str]) -> float:
    errors = []
    for rec, y in truth.items():
        part = soft.xs(rec, level="recording").reindex(columns=classes)
        a = np.full(y.shape, np.nan)
        idx = (part.index.get_level_values("onset").to_numpy() / HOP_S).astype(int)
        a[idx] = part.to_numpy()
        errors.append(np.abs(a - y)[np.isfinite(a)])
    return float(np.mean(np.concatenate(errors)))


def _per_second(soft: pd.DataFrame, rec: str, n: int, classes: list[str]) -> np.ndarray:
    part = soft.xs(rec, level="recording").reindex(columns=classes)
    out = np.zeros((n, len(classes)))
    idx = (part.index.get_level_values("onset").to_numpy() / HOP_S).astype(int)
    keep = idx < n
    out[idx[keep]] = np.nan_to_num(part.to_numpy()[keep])
    return out


def _scores_dict(s: SegmentScores, kld: float | None, thresholds: dict[str, float] | None) -> dict[str, Any]:
    return {
        "f1": s.f1,
        "er": s.er,
        "kld": kld,
        "classes_detected": s.classes_detected,
        "macro_f1": s.macro_f1,
        "precision": s.precision,
        "recall": s.recall,
        "class_f1": s.class_f1,
        "class_er": s.class_er,
        "thresholds": thresholds if thresholds is not None else 0.5,
    }


def run(out: Path, settings: Settings, bank_dir: Path, log: Any = print) -> dict[str, Any]:
    """Run the experiment, write summary.json, report.md, plots and label files under `out`."""
    import torch

    from listenloop.sed.crnn import SETUPS, TrainConfig, predict, train

    torch.set_num_threads(1)  # on a shared 2-core machine one thread is ~3x faster than two
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(settings.seed)
    files, labels, bank = load_events(bank_dir, settings.sample_rate, progress=False)
    classes = sorted(set(labels))
    weights = _class_weights(classes, settings.rarity, rng)
    scapes: dict[str, Soundscape] = {}
    for i in range(settings.recordings):
        seconds = round(60 * rng.uniform(*settings.minutes))
        scapes[f"scape{i:02d}"] = synthesise(
            bank, labels, files, seconds, settings.sample_rate, rng,
            events_per_minute=settings.events_per_minute, class_weights=weights,
        )  # fmt: skip
    truth = {r: segment_activity(s.events, classes, s.duration, HOP_S) for r, s in scapes.items()}
    timing = {"synthesis_s": time.perf_counter() - t0}
    log(f"synthesised {len(scapes)} soundscapes ({sum(s.duration for s in scapes.values()) / 60:.1f} min)")

    # The crowd, MACE competences, soft labels.
    t = time.perf_counter()
    crowd = SegmentCrowd.draw(settings.workers, rng, poor_share=settings.poor_share)
    answers = crowd.annotate(
        {r: (s.events, s.duration) for r, s in scapes.items()},
        classes,
        rng,
        settings.per_segment,
        SEGMENT_S,
        HOP_S,
    )
    competence = mace_competence(answers, classes, settings.seed)
    soft = weak_to_strong(answers, competence, segment=SEGMENT_S, hop=HOP_S, classes=classes)
    plain = weak_to_strong(answers, None, segment=SEGMENT_S, hop=HOP_S, classes=classes)
    theta_true = pd.Series(crowd.theta, index=crowd.worker_ids)
    every = list(scapes)
    crowd_truth = np.concatenate([truth[r] for r in every])
    hard_scores = {
        name: segment_scores(
            crowd_truth,
            np.concatenate([_per_second(table, r, len(truth[r]), classes) > 0.5 for r in every]),
            classes,
        )
        for name, table in (("mace", soft), ("mean", plain))
    }
    soft_summary = {
        "mace_mae": _mae(soft, truth, classes),
        "mean_mae": _mae(plain, truth, classes),
        # the crowd's own hard labels (a_t > 0.5) against the truth: what training can reach
        "mace_hard_f1": hard_scores["mace"].f1,
        "mace_hard_er": hard_scores["mace"].er,
        "mean_hard_f1": hard_scores["mean"].f1,
        "mean_hard_er": hard_scores["mean"].er,
        "competence_corr": float(np.corrcoef(theta_true[competence.index], competence)[0, 1]),
        "answers": len(answers),
    }
    timing["crowd_s"] = time.perf_counter() - t
    log(f"soft labels: MAE MACE {soft_summary['mace_mae']:.3f} vs mean {soft_summary['mean_mae']:.3f}")
    maestro.export(soft, out / "labels")
    for rec, s in scapes.items():
        (out / "truth").mkdir(exist_ok=True)
        maestro.write_hard(out / "truth" / f"{rec}.txt", [(e.onset, e.offset, e.label) for e in s.events])
    answers.to_csv(out / "answers.csv", index=False)

    # Features, folds, training.
    t = time.perf_counter()
    feats = {r: sed_log_mel(s.signal, s.sample_rate) for r, s in scapes.items()}
    n_sec = {r: min(len(truth[r]), len(feats[r]) // 50) for r in scapes}
    soft_sec = {r: _per_second(soft, r, n_sec[r], classes) for r in scapes}
    timing["features_s"] = time.perf_counter() - t
    recs = list(scapes)
    folds = [recs[k :: settings.folds] for k in range(settings.folds)]
    names = [*SETUPS, "S_MSE.lin.classwise"]
    outputs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    binary: dict[str, list[np.ndarray]] = {n: [] for n in names}
    thresholds_by_fold = []
    ref_true, ref_soft = [], []
    config = TrainConfig(epochs=settings.epochs, seed=settings.seed)
    t = time.perf_counter()
    for k, test in enumerate(folds):
        train_recs = [r for r in recs if r not in test]
        stacked = np.concatenate([feats[r] for r in train_recs])
        mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
        x_train = [(feats[r] - mean) / std for r in train_recs]
        train_soft = np.concatenate([soft_sec[r] for r in train_recs])
        thresholds = {c: trimmed_midrange(train_soft[:, i]) for i, c in enumerate(classes)}
        thresholds_by_fold.append(thresholds)
        for r in test:
            ref_true.append(truth[r][: n_sec[r]])
            ref_soft.append(soft_sec[r])
        for name, (targets, _, _) in SETUPS.items():
            y = [soft_sec[r] if targets == "soft" else (soft_sec[r] > 0.5).astype(float) for r in train_recs]
            model = train(name, x_train, y, len(classes), config)
            for r in test:
                p = predict(model, name, (feats[r] - mean) / std)[: n_sec[r]]
                outputs[name].append(p)
                binary[name].append(p > 0.5)
                if name == "S_MSE.lin":
                    th = np.array([thresholds[c] for c in classes])
                    outputs["S_MSE.lin.classwise"].append(p)
                    binary["S_MSE.lin.classwise"].append(p > th)
            log(f"fold {k + 1}/{settings.folds}: trained {name} ({time.perf_counter() - t:.0f} s so far)")
    timing["training_s"] = time.perf_counter() - t
    y_true = np.concatenate(ref_true)
    y_soft = np.concatenate(ref_soft)
    setups: dict[str, Any] = {}
    for name in names:
        est = np.concatenate(binary[name])
        scores = segment_scores(y_true, est, classes)
        kld = None if name.endswith("classwise") else kl_divergence(y_soft, np.concatenate(outputs[name]))
        th = thresholds_by_fold if name.endswith("classwise") else None
        setups[name] = _scores_dict(
            scores, kld, None if th is None else {c: [f[c] for f in th] for c in classes}
        )
    instances = {c: sum(1 for s in scapes.values() for e in s.events if e.label == c) for c in classes}
    timing["total_s"] = time.perf_counter() - t0
    summary = {
        "setups": setups,
        "soft_labels": soft_summary,
        "classes": classes,
        "instances": instances,
        "settings": asdict(settings),
        "timing": timing,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    from listenloop.sed.report import write_report

    write_report(out, summary, soft, truth, scapes, classes)
    log(f"wrote {out / 'summary.json'} and {out / 'report.md'} in {timing['total_s']:.0f} s")
    return summary


def check_bank(bank_dir: Path) -> None:
    """A clear error before any work when the event bank is missing."""
    if not (bank_dir / "labels.csv").is_file():
        raise ListenloopError(
            f"--events {bank_dir}: no labels.csv (expected the DCASE 2016 office event bank)"
        )
