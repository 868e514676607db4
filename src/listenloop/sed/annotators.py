"""A simulated crowd answering multi-label presence questions on overlapping segments.

Each worker j has a competence θ_j (MACE's model: with probability θ_j the worker reports
what they heard, otherwise they answer at random, marking each class with their own rate
ξ_j). A share of the crowd is poor (θ drawn low); the rest have θ ~ Beta(a, b). What a
truthful worker hears: a class whose event overlaps the segment by at least `min_overlap`
seconds, missed with a probability that grows as the event gets quieter (its EBR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from listenloop.audio.soundscape import PlacedEvent
from listenloop.crowd.soft_labels import SEP

#: Probability that a truthful listener misses an event, by event-to-background ratio (dB).
MISS_BY_EBR: dict[float, float] = {-6.0: 0.3, 0.0: 0.15, 6.0: 0.05}


@dataclass
class SegmentCrowd:
    """Workers (ids, competences θ, random-answer rates ξ)."""

    worker_ids: list[str]
    theta: np.ndarray
    xi: np.ndarray
    min_overlap: float = 0.25
    miss_by_ebr: Mapping[float, float] = field(default_factory=lambda: dict(MISS_BY_EBR))

    @classmethod
    def draw(
        cls,
        n_workers: int,
        rng: np.random.Generator,
        poor_share: float = 0.2,
        good: tuple[float, float] = (8.0, 2.0),
        poor_range: tuple[float, float] = (0.0, 0.3),
    ) -> SegmentCrowd:
        """`n_workers` workers: a `poor_share` with θ uniform in `poor_range`, the others θ ~ Beta(`good`);
        each worker's random-answer rate ξ uniform in [0.05, 0.5]."""
        n_poor = round(poor_share * n_workers)
        theta = np.concatenate([rng.uniform(*poor_range, n_poor), rng.beta(*good, n_workers - n_poor)])
        rng.shuffle(theta)
        xi = rng.uniform(0.05, 0.5, n_workers)
        return cls([f"w{j:03d}" for j in range(n_workers)], theta, xi)

    def heard(
        self, events: Sequence[PlacedEvent], start: float, end: float, rng: np.random.Generator
    ) -> set[str]:
        """Classes a truthful listener reports in [start, end): each audible event is heard
        unless missed (by its EBR); hearing one event of a class is enough."""
        out: set[str] = set()
        for e in events:
            overlap = min(e.offset, end) - max(e.onset, start)
            if overlap >= self.min_overlap and rng.random() >= self.miss_by_ebr.get(e.ebr_db, 0.1):
                out.add(e.label)
        return out

    def annotate(
        self,
        recordings: Mapping[str, tuple[Sequence[PlacedEvent], float]],
        classes: Sequence[str],
        rng: np.random.Generator,
        per_segment: int = 5,
        segment: float = 10.0,
        hop: float = 1.0,
    ) -> pd.DataFrame:
        """Answers `recording, onset, worker, label` for every `segment`-second segment at `hop`
        steps of each recording ({id: (events, duration)}), `per_segment` distinct workers each."""
        rows: list[tuple[str, float, str, str]] = []
        classes = list(classes)
        for rec, (events, duration) in recordings.items():
            n_segments = int(np.floor((duration - segment) / hop + 1e-9)) + 1
            for k in range(max(0, n_segments)):
                start = k * hop
                near = [e for e in events if e.offset > start and e.onset < start + segment]
                for j in rng.choice(len(self.worker_ids), size=per_segment, replace=False):
                    if rng.random() < self.theta[j]:
                        named = self.heard(near, start, start + segment, rng)
                    else:
                        named = {c for c in classes if rng.random() < self.xi[j]}
                    rows.append((rec, start, self.worker_ids[j], SEP.join(sorted(named))))
        return pd.DataFrame(rows, columns=["recording", "onset", "worker", "label"])
