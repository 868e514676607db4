"""Random sampling: passive learning, the baseline every strategy is compared with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenloop.strategies.base import QueryContext
from listenloop.strategies.selection import random_k


@dataclass
class RandomSampling:
    """Queries `n` clips uniformly at random."""

    name: str = "random"

    def select(self, ctx: QueryContext, n: int) -> np.ndarray:
        """n random candidates."""
        return ctx.candidates[random_k(len(ctx.candidates), n, ctx.rng)]
