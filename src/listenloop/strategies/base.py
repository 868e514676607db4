"""What a query strategy sees, and the interface every strategy follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from listenloop.rows import rows_per_chunk

#: Most rows per predict_proba call over a pool, so a memory-mapped million-clip pool is read in
#: pieces (fewer for wide features: `listenloop.rows.rows_per_chunk`).
CHUNK_ROWS = 65536


def predict_proba_chunked(
    model: Any, X: np.ndarray, rows: np.ndarray, chunk_rows: int | None = None
) -> np.ndarray:
    """`model.predict_proba(X[rows])`, computed chunk by chunk (X may be a np.memmap or lazy rows)."""
    chunk_rows = chunk_rows or rows_per_chunk(X.shape[1], most=CHUNK_ROWS)
    parts = [
        model.predict_proba(np.asarray(X[rows[i : i + chunk_rows]])) for i in range(0, len(rows), chunk_rows)
    ]
    return np.vstack(parts) if parts else np.empty((0, len(getattr(model, "classes_", [0, 1]))))


@dataclass
class QueryContext:
    """One query step: the fitted model, the whole feature matrix and which rows may be asked.

    `X` holds every clip (it may be memory-mapped); `candidates` are the row indices of
    the unlabelled clips on offer (the whole pool, a stream buffer, or a random subset of
    a huge pool); `labelled` are the rows with labels `y_labelled`. Strategies return row
    indices into `X`, drawn from `candidates`, most informative first.
    """

    model: Any
    X: np.ndarray
    candidates: np.ndarray
    labelled: np.ndarray
    y_labelled: np.ndarray
    iteration: int
    rng: np.random.Generator
    task: str = "classification"
    extra: dict[str, Any] = field(default_factory=dict)
    planned: int | None = None  # labels this run still plans to ask (None: open-ended, the platform)

    @property
    def X_labelled(self) -> np.ndarray:
        """Feature rows of the labelled set."""
        return np.asarray(self.X[self.labelled])

    def proba(self, model: Any = None) -> np.ndarray:
        """Class probabilities of the candidates under `model` (default: the context's model)."""
        return predict_proba_chunked(self.model if model is None else model, self.X, self.candidates)


class Strategy(Protocol):
    """A query strategy: `select` returns `n` row indices from `ctx.candidates`, most informative first."""

    name: str

    def select(self, ctx: QueryContext, n: int) -> np.ndarray: ...


class PseudoLabeller(Protocol):
    """A strategy that also proposes pseudo-labels for unlabelled clips (semi-supervised AL)."""

    def pseudo_labels(self, ctx: QueryContext, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
