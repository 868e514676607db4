"""Re-aggregating one clip from its regular answers and the annotators' current skills.

The request path calls this for the one clip that was just answered; the redundancy policy
(`listenloop.crowd.redundancy.DynamicPolicy`) says whether the clip is done. Whole-project
aggregation (Dawid-Skene) is background work (`engine/skills.py`): once it has run, each
answer counts with its annotator's confusion matrix and the project's class prior (the
E-step of Dawid-Skene for this one clip); before, with a one-coin model at their trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from listenloop.crowd.redundancy import CANT_TELL, DynamicPolicy
from listenloop.crowd.worker_model import stored_evidence
from listenloop.engine.labels import TAG_SEP
from listenloop.engine.views import ProjectView
from listenloop.store.models import Project


@dataclass(frozen=True)
class ClipVerdict:
    """The aggregated state of one clip after its answers so far."""

    label: str | None
    confidence: float
    soft: dict[str, float]
    done: bool
    low_agreement: bool


def policy_for(project: Project | ProjectView) -> DynamicPolicy:
    """The project's redundancy policy."""
    return DynamicPolicy(
        min_answers=project.redundancy_min,
        max_answers=project.redundancy_max,
        tau=project.redundancy_tau,
        untrusted_below=project.trust_threshold,
    )


def soft_distribution(
    labels: Sequence[str], trust: Sequence[float], classes: Sequence[str]
) -> dict[str, float]:
    """Trust-weighted share of the class answers per class (can't-tell counts for no class)."""
    weights = {c: 0.0 for c in classes}
    for label, t in zip(labels, trust, strict=True):
        if label in weights:
            weights[label] += max(float(t), 1e-6)
    total = sum(weights.values())
    return {c: round(w / total, 6) for c, w in weights.items()} if total > 0 else {}


def _tag_shares(labels: Sequence[str], trust: Sequence[float], classes: Sequence[str]) -> dict[str, float]:
    """Multi-label soft label (004_ eq. 1): trust-weighted share of annotators who marked each tag."""
    answered = [
        (set(lab.split(TAG_SEP)) - {""}, max(float(t), 1e-6))
        for lab, t in zip(labels, trust, strict=True)
        if lab != CANT_TELL
    ]
    total = sum(t for _, t in answered)
    if total <= 0:
        return {}
    return {c: round(sum(t for tags, t in answered if c in tags) / total, 6) for c in classes}


def aggregate_clip(
    project: Project | ProjectView,
    labels: Sequence[str],
    trust: Sequence[float],
    confusions: Sequence[list[list[float]] | None] | None = None,
) -> ClipVerdict:
    """Label, confidence, soft label and done/low-agreement of a clip from its answers in order.

    `confusions`: each answer's annotator's stored confusion matrix (None where not fitted);
    used with the project's `class_prior` once the background fit has set it.
    """
    n = len(labels)
    if project.task_type in ("classification", "binary"):
        classes = list(project.classes)
        evidence = log_prior = None
        prior = project.class_prior
        if prior is not None and len(prior) == len(classes) and confusions is not None:
            evidence = stored_evidence(labels, confusions, trust, classes)
            log_prior = np.log(np.maximum(np.asarray(prior, dtype=float), 1e-12))
        decision = policy_for(project).decide(
            np.asarray(labels, dtype=str), np.asarray(trust, dtype=float), classes, evidence, log_prior
        )
        return ClipVerdict(
            decision.label,
            float(decision.confidence),
            soft_distribution(labels, trust, classes),
            bool(decision.done),
            bool(decision.low_agreement),
        )
    usable = [(lab, t) for lab, t in zip(labels, trust, strict=True) if lab != CANT_TELL]
    cant = n - len(usable)
    enough = n >= project.redundancy_min
    low = enough and 2 * cant > n
    if project.task_type == "multilabel":
        shares = _tag_shares(labels, trust, project.classes)
        hard = TAG_SEP.join(c for c, s in shares.items() if s > 0.5) if shares else None
        margin = min((abs(s - 0.5) * 2 for s in shares.values()), default=0.0)
        return ClipVerdict(hard, round(margin, 6), shares, enough, low)
    # continuous: trust-weighted mean; confidence from the spread relative to the range
    if not usable:
        return ClipVerdict(None, 0.0, {}, n >= project.redundancy_max, n >= project.redundancy_max)
    values = np.array([float(lab) for lab, _ in usable])
    weights = np.array([max(float(t), 1e-6) for _, t in usable])
    mean = float(np.average(values, weights=weights))
    width = float((project.range_max or 1.0) - (project.range_min or 0.0)) or 1.0
    spread = float(np.sqrt(np.average((values - mean) ** 2, weights=weights))) / width
    confidence = max(0.0, 1.0 - 2.0 * spread)
    return ClipVerdict(f"{mean:.6g}", round(confidence, 6), {}, enough, low)
