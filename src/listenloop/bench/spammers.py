"""Spammer detection on simulated campaigns: how many answers each kind of spammer gives before
`crowd.trust.detect_spammers` flags it, and how many honest workers it flags.

The campaign (`campaign`) is FSDD-like, the setting of the adversarial check: clips of `k`
classes, each answered by `per_item` distinct workers among those with answers left (`quota`
each): honest one-coin workers and spammers ("random": uniform over the classes; "constant":
always "0"; "cant": always can't tell). The tests use the same campaigns.

Run as `python -m listenloop.bench.spammers [--seeds 20]`: prints the two tables of
BENCHMARKS.md ("Spammer detection in the platform").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from listenloop.crowd.redundancy import CANT_TELL
from listenloop.crowd.trust import detect_spammers

HONEST_MIX = (0.7, 0.7, 0.75, 0.8, 0.9, 0.95)


def campaign(
    seed: int,
    *,
    k: int = 10,
    items: int = 400,
    honest: tuple[float, ...] = (0.9, 0.9, 0.9, 0.9),
    spam: tuple[str, ...] = ("random", "constant", "cant"),
    quota: int = 150,
    per_item: int = 3,
) -> pd.DataFrame:
    """`item, worker, label` answers of one simulated campaign (workers `h0`.. by accuracy, then
    the spammers by name; a spammer named twice answers twice as often)."""
    rng = np.random.default_rng(seed)
    names = [f"h{i}" for i in range(len(honest))] + list(dict.fromkeys(spam))
    given = dict.fromkeys(names, 0)
    rows = []
    for item in range(items):
        free = [w for w in names if given[w] < quota]
        if len(free) < per_item:
            break
        truth = int(rng.integers(k))
        for w in rng.choice(free, size=per_item, replace=False):
            given[w] += 1
            if w.startswith("h"):
                right = rng.random() < honest[int(w[1:])]
                label = truth if right else rng.choice([c for c in range(k) if c != truth])
            elif w == "random":
                label = int(rng.integers(k))
            else:
                label = 0 if w == "constant" else CANT_TELL
            rows.append((str(item), str(w), str(label)))
    return pd.DataFrame(rows, columns=["item", "worker", "label"])


def answers_to_flag(
    seed: int, kind: str, k: int = 10, step: int = 10, most: int = 200, items: int = 400
) -> int | None:
    """The smallest quota (in steps of `step`) at which the spammer `kind` is flagged, beside 4
    honest workers at 90 % (and, on more than two classes, the other two kinds of spammer)."""
    spam = ("random", "constant", "cant") if k > 2 else (kind,)
    for quota in range(step, most + 1, step):
        found = detect_spammers(campaign(seed, k=k, spam=spam, quota=quota, items=items))
        if kind in set(found["worker"]):
            return quota
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m listenloop.bench.spammers", description=__doc__)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    seeds = range(args.seeds)
    print("| spammer | answers to be flagged: median | max | never (of seeds) |\n|---|---|---|---|")
    runs = [("random", 10, 10, 150, 400), ("constant", 10, 10, 150, 400), ("cant", 10, 10, 150, 400)]
    runs.append(("random", 2, 100, 2000, 4000))
    for kind, k, step, most, items in runs:
        found = [answers_to_flag(s, kind, k, step, most, items) for s in seeds]
        hit = [n for n in found if n is not None]
        median, top = (f"{np.median(hit):g}", str(max(hit))) if hit else ("-", "-")
        print(f"| {kind}, {k} classes | {median} | {top} | {len(found) - len(hit)} |")
    print("\n| honest crowd (6 workers, 70-95 %, 1,000 answers each) | workers flagged |\n|---|---|")
    for k in (2, 3, 10):
        flagged = sum(
            len(detect_spammers(campaign(1000 + s, k=k, honest=HONEST_MIX, spam=(), quota=1000, items=2000)))
            for s in seeds
        )
        print(f"| {k} classes | {flagged} of {len(HONEST_MIX) * len(seeds)} |")
    big = campaign(0, honest=(0.9,) * 40, spam=("random", "constant", "cant"), quota=2500, items=40000)
    start = time.perf_counter()
    detect_spammers(big)
    print(f"\ndetection over {len(big):,} answers: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
