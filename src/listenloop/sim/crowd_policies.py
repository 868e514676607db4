"""Comparing redundancy policies on a crowd: replay real answers or simulate a calibrated crowd."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from listenloop.crowd.redundancy import Policy, replay, replay_items
from listenloop.crowd.simulated import SimulatedCrowd
from listenloop.crowd.worker_model import WorkerModel
from listenloop.errors import ListenloopError

MODES = ("replay", "simulate")
TRUST_SOURCES = ("ds", "skills", "none")


def read_truth(path: str | Path) -> dict[str, str]:
    """`item,truth` (or `item,label`) as a dict of strings."""
    path = Path(path)
    if not path.is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ListenloopError(f"{path}: empty file (expected columns item, truth)") from None
    column = "truth" if "truth" in table.columns else "label" if "label" in table.columns else None
    if "item" not in table.columns or column is None:
        raise ListenloopError(f"{path}: needs columns item and truth (columns: {', '.join(table.columns)})")
    return dict(zip(table["item"], table[column], strict=True))


def worker_trust(answers: pd.DataFrame, source: str) -> WorkerModel | pd.Series | None:
    """What the policies know of the workers, estimated from the answers alone (no truth).

    `ds`: the Dawid-Skene worker model (confusion matrices, class prior, skills as trust);
    `skills`: Dawid-Skene skills only, as one-coin accuracies; `none`: nothing. A live
    platform knows such estimates from its running aggregation and control questions.
    """
    if source == "none":
        return None
    if source in ("ds", "skills"):
        from listenloop.crowd.aggregation.dawid_skene import DawidSkene

        ds = DawidSkene().fit(answers)
        return WorkerModel.from_dawid_skene(ds) if source == "ds" else ds.skills_
    raise ListenloopError(f"--trust must be one of {', '.join(TRUST_SOURCES)}, not '{source}'")


def compare_policies(
    answers: pd.DataFrame,
    truth: Mapping[str, str],
    policies: Mapping[str, Policy],
    *,
    runs: int = 20,
    mode: str = "replay",
    trust: str = "ds",
    seed: int = 0,
    progress: bool = True,
    task: str = "classification",
) -> dict[str, Any]:
    """Accuracy and answers per item of each policy over `runs` paired runs (same orders / crowds).

    Replay feeds each item's real answers in a random order; an item with fewer answers than a
    policy asks for uses all it has (`short_items`). Simulate draws answers from a crowd
    calibrated on `answers` (per-worker confusion, item difficulty).

    `task` "multilabel" ("a|b" answers) or "continuous" (ratings): replay only, workers alike
    (`trust` "none"), through the policies' tag and rating rules (`replay_items`); ratings
    report `mae` (accuracy is nan).
    """
    if mode not in MODES:
        raise ListenloopError(f"--mode must be one of {', '.join(MODES)}, not '{mode}'")
    if task not in ("classification", "multilabel", "continuous"):
        raise ListenloopError(f"--task must be classification, multilabel or continuous, not '{task}'")
    if task != "classification" and (mode != "replay" or trust != "none"):
        raise ListenloopError(f"--task {task}: only --mode replay with --trust none")
    unknown = set(truth) - set(answers["item"])
    if len(unknown) == len(truth):
        raise ListenloopError("no truth item occurs among the answers")
    weights = worker_trust(answers, trust) if task == "classification" else None
    crowd = SimulatedCrowd.from_answers(answers, truth) if mode == "simulate" else None
    out: dict[str, Any] = {}
    bar = tqdm(total=runs * len(policies), desc=mode, unit="run", disable=not progress, leave=False)
    for name, policy in policies.items():
        results = []
        for run in range(runs):
            rng = np.random.default_rng([seed, run])
            if task != "classification":
                results.append(replay_items(answers, truth, policy, rng, task))  # type: ignore[arg-type]
            elif crowd is None:
                results.append(replay(answers, truth, policy, rng, trust=weights))
            else:
                results.append(crowd.simulate(truth, policy, rng, trust=weights))
            bar.update(1)
        acc = np.array([r.accuracy for r in results])
        used = np.array([r.answers_per_item for r in results])
        out[name] = {
            "accuracy": float(acc.mean()),
            "accuracy_std": float(acc.std()),
            "answers_per_item": float(used.mean()),
            "short_items": float(np.mean([r.short_items for r in results])),
            "low_agreement": float(np.mean([r.low_agreement.sum() for r in results])),
            "runs": runs,
        }
        if task == "continuous":
            mae = np.array([r.mae for r in results], dtype=float)
            out[name].update(mae=float(mae.mean()), mae_std=float(mae.std()))
    bar.close()
    return out
