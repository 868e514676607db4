"""CPU time of one DAL iteration (stage I plus stage II) on a synthetic 8,000-clip pool.

`python -m listenloop.bench.dal_iteration [DIMS] [CLASSES]`: a seeded Gaussian mixture of
8,000 pool clips plus 3 labelled clips per class, DAL at 003_ Table 1's defaults, one torch
thread; prints the initialisation's CPU time and the median over 5 iterations of the
iteration's, stage I's (`select`: posterior, vote entropy, query) and stage II's (`fit_round`).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from listenloop.strategies.base import QueryContext
from listenloop.strategies.dal import DAL


def time_iterations(dims: int = 240, classes: int = 10, pool: int = 8000, iterations: int = 5) -> dict:
    """Median CPU seconds of DAL's iterations (and of its initialisation) on the synthetic pool."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=0.35, size=(classes, dims))
    y = rng.integers(classes, size=pool + 3 * classes)
    y[: 3 * classes] = np.repeat(np.arange(classes), 3)
    X = (centres[y] + rng.standard_normal((len(y), dims))).astype(np.float32)
    labelled = np.arange(3 * classes)
    rest = np.arange(3 * classes, len(y))
    dal = DAL(t0=0)
    t = time.process_time()
    dal.fit_round(None, X, labelled, y[labelled], rest, iteration=0, rng=rng)
    init = time.process_time() - t
    rows = []
    for it in range(1, iterations + 1):
        t0 = time.process_time()
        picked = dal.select(QueryContext(dal.model_, X, rest, labelled, y[labelled], it, rng), 1)
        t1 = time.process_time()
        labelled = np.concatenate([labelled, picked])
        rest = np.setdiff1d(rest, picked)
        dal.fit_round(None, X, labelled, y[labelled], rest, iteration=it, rng=rng)
        rows.append((time.process_time() - t0, t1 - t0, time.process_time() - t1))
    med = np.median(np.array(rows), axis=0)
    return {"init_s": init, "iteration_s": med[0], "stage1_s": med[1], "stage2_s": med[2]}


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    r = time_iterations(*args)
    print(
        f"init {r['init_s']:.2f} s; iteration {r['iteration_s']:.3f} s CPU "
        f"(stage I {r['stage1_s']:.3f} s, stage II {r['stage2_s']:.3f} s)"
    )
