"""report.md and plots of `listenloop sed experiment`: 004_'s table 2 and figure 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

FIGURE_SETUPS = ["H_BCE.sig", "S_BCE.sig", "S_MSE.lin", "S_MSE.lin.classwise"]


def plot_class_f1(summary: dict[str, Any], path: Path) -> Path:
    """Per-class F1 per set-up, classes ordered from most to fewest event instances (fig. 2)."""
    inst = summary["instances"]
    classes = sorted(inst, key=lambda c: (-inst[c], c))
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=120)
    x = np.arange(len(classes))
    width = 0.8 / len(FIGURE_SETUPS)
    for i, name in enumerate(FIGURE_SETUPS):
        f1 = [summary["setups"][name]["class_f1"][c] for c in classes]
        ax.bar(x + (i - (len(FIGURE_SETUPS) - 1) / 2) * width, f1, width, label=name)
    ax.set_xticks(x, [f"{c}\n({inst[c]})" for c in classes], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("segment-based F1 (1 s)")
    ax.set_ylim(0, 1)
    ax.set_title("Per-class F1 against the true activity (classes by event instances)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_soft_example(
    soft: pd.DataFrame,
    truth: dict[str, np.ndarray],
    recording: str,
    classes: list[str],
    path: Path,
    seconds: int = 120,
) -> Path:
    """The first `seconds` of one recording: true activity and MACE soft labels per class."""
    part = soft.xs(recording, level="recording").reindex(columns=classes)
    onsets = part.index.get_level_values("onset").to_numpy()
    y = truth[recording]
    seconds = min(seconds, len(y))
    active = [c for i, c in enumerate(classes) if y[:seconds, i].any()][:6] or classes[:1]
    fig, axes = plt.subplots(len(active), 1, figsize=(9, 1.2 * len(active) + 0.8), dpi=120, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, c in zip(axes, active, strict=True):
        i = classes.index(c)
        ax.fill_between(
            np.arange(seconds), y[:seconds, i], step="post", alpha=0.25, color="black", label="truth"
        )
        keep = onsets < seconds
        ax.step(onsets[keep], part[c].to_numpy()[keep], where="post", label="soft label (MACE)")
        ax.axhline(0.5, color="0.5", linewidth=0.6, linestyle=":")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(c, rotation=0, ha="right", fontsize=8)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel(f"seconds ({recording})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f} %" if pct else f"{v:.3f}"


def write_report(
    out: Path,
    summary: dict[str, Any],
    soft: pd.DataFrame,
    truth: dict[str, np.ndarray],
    scapes: dict[str, Any],
    classes: list[str],
) -> Path:
    """report.md with the set-up table, the soft-label accuracy and the two plots."""
    plot_class_f1(summary, out / "class_f1.png")
    first = next(iter(truth))
    plot_soft_example(soft, truth, first, classes, out / "soft_labels.png")
    s = summary["settings"]
    sl = summary["soft_labels"]
    rows = []
    for name, r in summary["setups"].items():
        th = "class-wise" if name.endswith("classwise") else "0.5"
        label = name.removesuffix(".classwise")
        rows.append(
            f"| {label} | {th} | {r['er']:.3f} | {_fmt(r['f1'], True)} | {_fmt(r['kld'])} | "
            f"{r['classes_detected']}/{len(classes)} | {_fmt(r['macro_f1'], True)} |"
        )
    inst = summary["instances"]
    by_inst = sorted(inst, key=lambda c: (-inst[c], c))
    class_rows = [
        f"| {c} | {inst[c]} | "
        + " | ".join(f"{summary['setups'][n]['class_f1'][c]:.3f}" for n in FIGURE_SETUPS)
        + " |"
        for c in by_inst
    ]
    hb, sc = summary["setups"]["H_BCE.sig"], summary["setups"]["S_MSE.lin.classwise"]
    verdict = (
        "more" if sc["classes_detected"] > hb["classes_detected"]
        else "as many" if sc["classes_detected"] == hb["classes_detected"] else "fewer"
    )  # fmt: skip
    t = summary["timing"]
    text = f"""# Sound event detection from crowdsourced weak labels (004_)

Settings: {s["recordings"]} soundscapes of {s["minutes"][0]:g}-{s["minutes"][1]:g} min
at {s["sample_rate"]} Hz (DCASE 2016 office events over pink noise, EBR -6/0/6 dB,
{s["events_per_minute"]:g} events per minute,
class weights 1/rank^{s["rarity"]:g}); {s["workers"]} simulated annotators
({100 * s["poor_share"]:.0f} % poor),
{s["per_segment"]} answers per 10 s segment at 1 s hops; CRNN trained {s["epochs"]} epochs per set-up,
{s["folds"]}-fold cross-validation over recordings; seed {s["seed"]}.
Run time {t["total_s"]:.0f} s (training {t["training_s"]:.0f} s).

## Soft labels against the true activity

Mean absolute error of a_t (per 1 s and class) against the true 0/1 activity over
{sl["answers"]} answers: **MACE-weighted {sl["mace_mae"]:.4f}**, plain mean {sl["mean_mae"]:.4f}.
Correlation of MACE competences with the simulated ones: {sl["competence_corr"]:.3f}.
The crowd's hard labels (a_t > 0.5) against the truth, segment-based: F1 {sl["mace_hard_f1"]:.3f},
ER {sl["mace_hard_er"]:.3f} with MACE; F1 {sl["mean_hard_f1"]:.3f}, ER {sl["mean_hard_er"]:.3f} with the
plain mean.
A 10 s weak label smears an event over the seconds around it, so even a perfect crowd
leaves an error: the labels are triangular ramps around short events (`soft_labels.png`).

## Detection (segment-based, 1 s, micro-averaged; against the true activity)

KLD: mean Bernoulli KL divergence from the soft reference (MACE soft labels of the test
recordings) to the system's soft output (linear outputs clipped to [1e-7, 1 - 1e-7]).
Class-wise thresholds: the 10 % trimmed midrange of each class's non-zero training soft labels.

| Set-up | Threshold | ER | F1 | KLD | classes detected | class-average F1 |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

S_MSE.lin with class-wise thresholds detects **{verdict}** classes (F1 > 0) than H_BCE.sig
({sc["classes_detected"]} against {hb["classes_detected"]} of {len(classes)}).

## Per-class F1 (figure 2: `class_f1.png`)

| class | instances | {" | ".join(FIGURE_SETUPS)} |
|---|---|{"---|" * len(FIGURE_SETUPS)}
{chr(10).join(class_rows)}

![per-class F1](class_f1.png)

![soft labels](soft_labels.png)

Files: `summary.json`, `answers.csv` (the crowd's answers), `labels/soft|hard/*.txt` (MAESTRO-Real
style crowd labels), `truth/*.txt` (true events).
"""
    path = out / "report.md"
    path.write_text(text)
    return path
