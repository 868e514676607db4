"""Which query strategy to use, in plain words, from a simulation's curves: the one verdict of
`listenloop simulate --recommend` and of the platform's dry run on a project's own labels.

Per strategy: the labels it needs to reach a target score (TARGET_SHARE of passive learning's best
mean score), read off the mean learning curve, with an 80 % interval from a paired bootstrap over
the (split, run) pairs, and the same for its labels as a share of random's. A strategy "needs
fewer" labels than random when the whole 80 % interval of that share is below 1, "more" when it
is above, and is "about the same" otherwise. The recommended strategy is the one that needs the
fewest labels (random where none reaches the target sooner). The verdict says the seed set is too
small to tell when there are fewer than MIN_LABELS_TO_TELL labelled clips, or when the interval
of the recommended strategy's share is wider than MAX_SHARE_WIDTH or open (the target not reached
in more than a tenth of the resamples).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError
from listenloop.sim.experiment import ExperimentResult
from listenloop.sim.metrics import MAIN_METRIC
from listenloop.sim.summary import _aligned

TARGET_SHARE = 0.95  # the target: this share of random's best mean score
MIN_LABELS_TO_TELL = 100  # fewer labelled clips than this: too small to tell, whatever the curves say
MAX_SHARE_WIDTH = 1.0  # an 80 % interval of the share wider than this: too small to tell
LEVEL = 0.8
RESAMPLES = 1000
METRIC_NAMES = {"uar": "UAR", "cc": "CC", "f1": "F1"}


def labels_to_reach(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """Labels at which the curve first reaches `target` (linear between its points); inf: never."""
    labels, scores = np.asarray(labels, float), np.asarray(scores, float)
    hit = np.flatnonzero(scores >= target - 1e-12)
    if len(hit) == 0:
        return math.inf
    i = int(hit[0])
    if i == 0 or scores[i] == scores[i - 1]:
        return float(labels[i])
    frac = (target - scores[i - 1]) / (scores[i] - scores[i - 1])
    return float(labels[i - 1] + frac * (labels[i] - labels[i - 1]))


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The central LEVEL interval of bootstrap values (inf for an end that is not reached)."""
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], method="nearest")  # no inf - inf
    return float(low), float(high)


def verdict(result: ExperimentResult, clips: int, seed: int = 0) -> dict[str, Any]:
    """The verdict document: target, per strategy labels to reach it (80 % interval) and their share
    of random's, the recommended strategy, `too_small` and the plain-words `text`.

    `clips` is how many labelled clips the simulation ran on (training and test together)."""
    metric = MAIN_METRIC[result.config.task]
    by: dict[str, list[Any]] = {}
    for run in result.runs:  # (split, run, strategy) order: the same pair index across strategies
        by.setdefault(run.strategy, []).append(run)
    if "random" not in by:
        raise ListenloopError("a recommendation compares with random: add random to --strategies")
    curves = {}
    for name, runs in by.items():
        lab, sc = _aligned([(np.array(r.curve.labels), r.curve.metric(metric)) for r in runs])
        curves[name] = (lab.mean(axis=0), sc)
    best_random = float(np.max(curves["random"][1].mean(axis=0)))
    target = TARGET_SHARE * best_random
    rng = np.random.default_rng(seed)
    pairs = len(by["random"])
    picks = rng.integers(pairs, size=(RESAMPLES, pairs))
    boot = {
        name: np.array([labels_to_reach(lab, sc[p].mean(axis=0), target) for p in picks])
        for name, (lab, sc) in curves.items()
    }
    strategies: dict[str, dict[str, Any]] = {}
    for name, (lab, sc) in curves.items():
        need = labels_to_reach(lab, sc.mean(axis=0), target)
        point_random = labels_to_reach(*_mean(curves["random"]), target)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = boot[name] / boot["random"]
        shares = np.where(np.isnan(shares), 1.0, shares)  # neither reached: no difference to tell
        low, high = _interval(boot[name])
        share_low, share_high = _interval(shares)
        if name == "random":
            compared = "baseline"
        elif share_high < 1:
            compared = "fewer"
        elif share_low > 1:
            compared = "more"
        else:
            compared = "same"
        strategies[name] = {
            "labels_to_target": _finite(need),
            "labels_ci80": [_finite(low), _finite(high)],  # None: not reached at that end
            "share_of_random": _finite(need / point_random) if math.isfinite(point_random) else None,
            "share_ci80": [_finite(share_low), _finite(share_high)],
            "compared_with_random": compared,
            "aulc": float(np.mean([_area(lab, s) for s in sc])),
        }
    recommended = min(
        strategies,
        key=lambda k: (
            strategies[k]["labels_to_target"] if strategies[k]["labels_to_target"] is not None else math.inf,
            k != "random",  # a tie goes to random: nothing to gain
            -strategies[k]["aulc"],
        ),
    )
    rec = strategies[recommended]
    open_share = rec["share_ci80"][1] is None or rec["share_ci80"][0] is None
    wide = not open_share and rec["share_ci80"][1] - rec["share_ci80"][0] > MAX_SHARE_WIDTH
    too_small = clips < MIN_LABELS_TO_TELL or (recommended != "random" and (open_share or wide))
    out = {
        "metric": metric,
        "target": target,
        "target_share": TARGET_SHARE,
        "random_best": best_random,
        "clips": clips,
        "strategies": strategies,
        "recommended": recommended,
        "certain": recommended != "random" and rec["compared_with_random"] == "fewer" and not too_small,
        "too_small": too_small,
    }
    out["text"] = verdict_text(out)
    return out


def _mean(curve: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return curve[0], curve[1].mean(axis=0)


def _area(labels: np.ndarray, scores: np.ndarray) -> float:
    """The curve's mean height over its own label range (an ordering key, not the summary's AULC)."""
    if labels[-1] <= labels[0]:
        return float(scores[-1])
    return float(np.trapezoid(scores, labels) / (labels[-1] - labels[0]))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _words(name: str) -> str:
    return name.replace("_", " ")


def verdict_text(v: dict[str, Any]) -> str:
    """The verdict in plain words, e.g. "On your data, margin needs about 40 % fewer labels than
    random to reach UAR 0.71 (80 % interval: 25 % to 55 % fewer); medium certainty needs more."."""
    metric = METRIC_NAMES.get(v["metric"], v["metric"])
    goal = f"to reach {metric} {v['target']:.2f} ({v['target_share']:.0%} of random's best)"
    rec, st = v["recommended"], v["strategies"]
    if rec == "random":
        head = f"On your data, no strategy needs fewer labels than random {goal}: keep random"
    else:
        share = st[rec]["share_of_random"]
        low, high = st[rec]["share_ci80"]
        saving = f"about {round((1 - share) * 100)} % fewer labels than random {goal}"
        band = (
            f"80 % interval: {_pct(high)} to {_pct(low)}"
            if low is not None and high is not None
            else "80 % interval open: the target is not always reached"
        )
        if st[rec]["compared_with_random"] == "fewer":
            head = f"On your data, {_words(rec)} needs {saving} ({band})"
        else:
            head = f"On your data, {_words(rec)} may need {saving}, but its {band} includes no saving"
    others = []
    for kind, one, many in (
        ("fewer", "also needs fewer", "also need fewer"),
        ("same", "needs about as many", "need about as many"),
        ("more", "needs more", "need more"),
    ):
        names = [_words(k) for k, s in st.items() if k != rec and s["compared_with_random"] == kind]
        if names:
            others.append(f"{_join(names)} {one if len(names) == 1 else many}")
    text = head + ("; " + "; ".join(others) if others else "") + "."
    if v["too_small"]:
        text += (
            f" But {v['clips']} labelled clips are too few to tell the strategies apart with certainty: "
            f"label more clips at random (at least {MIN_LABELS_TO_TELL}) and run the dry run again."
        )
    elif rec != "random" and not v["certain"]:
        text += " Certainty needs more labels."
    return text


def _pct(share: float) -> str:
    """A share of random's labels as a saving in words: 0.6 -> "40 % fewer", 1.1 -> "10 % more"."""
    d = round((1 - share) * 100)
    return f"{d} % fewer" if d >= 0 else f"{-d} % more"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
