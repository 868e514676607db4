"""A 2-D map of a project's pool for the dashboard (002_ Figure 4): the clips' features projected
by PCA, each point coloured by the model's predicted label at that learning round.

PCA rather than t-SNE or UMAP: it is deterministic, linear (maps of successive rounds share
axes when the features do not change much), and costs milliseconds for thousands of clips
inside a round that already holds the features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAP_POINTS = 2000  # clips drawn per map: enough to see the structure, small enough to store as JSON


def pool_map(
    X: np.ndarray,
    rows: np.ndarray,
    clip_ids: np.ndarray,
    labels: list[str | None],
    *,
    mean: np.ndarray,
    std: np.ndarray,
    model: Any = None,
    rng: np.random.Generator,
    max_points: int = MAP_POINTS,
    pseudo: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """`{"method", "explained", "points": [[clip_id, x, y, predicted, label, pseudo], ...]}` or None.

    `rows` index X (standardised with `mean`/`std`, as the model was fitted); `clip_ids[i]`
    and `labels[i]` (the training label or None) belong to `rows[i]`. `predicted` is the
    model's label (a number, as text, for ratings), None before there is a model. `pseudo`
    is true for the rows in `pseudo` (X's rows the model also trained on with its own
    confident prediction: self-training's pseudo-labels, which are not labels).
    """
    from sklearn.decomposition import PCA

    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 3:
        return None
    pick = np.sort(rng.choice(len(rows), size=min(max_points, len(rows)), replace=False))
    Z = (np.asarray(X[rows[pick]], dtype=np.float64) - mean) / std
    pca = PCA(n_components=2, random_state=0).fit(Z)
    xy = pca.transform(Z)
    predicted: list[str | None] = [None] * len(pick)
    if model is not None:
        out = model.predict(Z.astype(np.float32))
        predicted = [f"{v:.4g}" if isinstance(v, float | np.floating) else str(v) for v in out]
    marked = np.isin(rows[pick], np.asarray(pseudo if pseudo is not None else [], dtype=np.int64))
    points = [
        [int(clip_ids[i]), round(float(x), 4), round(float(y), 4), p, labels[i], bool(m)]
        for i, (x, y), p, m in zip(pick, xy, predicted, marked, strict=True)
    ]
    return {
        "method": "pca",
        "explained": [round(float(v), 4) for v in pca.explained_variance_ratio_],
        "points": points,
    }
