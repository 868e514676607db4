"""Search by example: a project's clips nearest to one of its clips, or to uploaded audio, in the
project's feature space (`features/search_index.py`), to seed rare classes before active
learning has anything to go on.

The index lives next to the project's feature matrix (what the learning rounds fill in) and the
learning service rebuilds it after a round that changed the matrix. A small pool (at most
`EXACT_MAX` clips) whose index is missing or stale is indexed on the spot; a large one uses the
index it has (the reply says `stale`) until the rebuilt one is on disk, and 409 before it has one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from listenloop.engine.clips import clip_confidence, clip_label, clip_source, clip_status
from listenloop.engine.errors import ConflictError, InvalidError, NotFoundError
from listenloop.features.matrix import FeatureMatrix, stored_name
from listenloop.features.registry import get_extractor
from listenloop.features.search_index import EXACT_MAX, SearchIndex, build_index, is_fresh
from listenloop.store.models import Clip, Project

MATRICES = Path("features") / "matrices"  # under the data folder: engine.learning.round's MATRIX_FOLDER
MAX_K = 100
DEFAULT_K = 10
_CACHE: dict[str, tuple[int, SearchIndex]] = {}  # matrix file -> (its rows, the loaded index)
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def matrix_of(data_dir: Path, project: Project) -> FeatureMatrix | None:
    """The project's feature matrix (None: no learning round has computed features yet)."""
    ext = get_extractor(project.feature_set)
    token = ext.cache_token()
    root = Path(data_dir) / MATRICES
    name = stored_name(f"project-{project.id}", token)
    if not (root / f"{name}.json").exists():
        return None
    import json

    try:
        dim = int(json.loads((root / f"{name}.json").read_text())["dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    matrix = FeatureMatrix(root, name, dim, token)
    return matrix if matrix.rows else None


def _index_for(matrix: FeatureMatrix) -> tuple[SearchIndex, bool]:
    """The matrix's search index and whether it is stale; built now for a small pool."""
    key = str(matrix.data_path)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == matrix.rows:
            return cached[1], False
        index = SearchIndex.load(matrix.root, matrix.name)
        if not is_fresh(index, matrix) and matrix.live <= EXACT_MAX:
            index = build_index(matrix)
            index.save(matrix.root, matrix.name)
        if index is None:
            raise ConflictError(
                "the search index of this project is being built (the learning service builds it after "
                "a round): try again in a few minutes"
            )
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (index.built_rows, index)
        return index, not is_fresh(index, matrix)


def _vector_of(matrix: FeatureMatrix, clip_id: int) -> np.ndarray | None:
    """The clip's feature row (its newest), or None."""
    rows = np.flatnonzero(matrix.index["id"] == clip_id)
    if not len(rows):
        return None
    return np.array(matrix.array()[int(rows[-1])], dtype=np.float32)


def _neighbours(
    session: Session, project: Project, index: SearchIndex, vector: np.ndarray, k: int
) -> list[dict[str, Any]]:
    """The `k` nearest clips of the project to `vector`, nearest first, with what the browser shows."""
    extra = max(5, k // 2)  # clips deleted since the index was built are skipped
    dist, ids = index.search(vector[None, :], k + extra)
    found = [(int(i), float(d)) for i, d in zip(ids[0], dist[0], strict=True) if i >= 0]
    if not found:
        return []
    rows = {
        r.id: r
        for r in session.execute(
            select(
                Clip.id,
                Clip.file_name,
                clip_status.label("status"),
                clip_source.label("source"),
                clip_label.label("label"),
                clip_confidence.label("confidence"),
                Clip.duration,
            ).where(Clip.project_id == project.id, Clip.id.in_([i for i, _ in found]))
        )
    }
    out = []
    for clip_id, d in found:
        r = rows.get(clip_id)
        if r is None:
            continue
        out.append(
            {
                "clip_id": clip_id,
                "file": r.file_name,
                "distance": round(float(np.sqrt(max(d, 0.0))), 4),
                "status": r.status,
                "source": r.source,
                "label": r.label,
                "confidence": None if r.confidence is None else float(r.confidence),
                "duration": round(float(r.duration), 3),
            }
        )
        if len(out) == k:
            break
    return out


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidError(f"k must be from 1 to {MAX_K}, not {k}")


def _reply(index: SearchIndex, stale: bool, neighbours: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "index": {"kind": index.kind, "clips": index.clips, "stale": stale},
        "neighbours": neighbours,
    }


def similar_to_clip(
    session: Session, project: Project, data_dir: Path, clip_id: int, k: int = DEFAULT_K
) -> dict:
    """The project's `k` clips nearest to its clip `clip_id` (the clip itself first, at distance 0).
    NotFoundError for a clip of another project; ConflictError while it has no features yet."""
    _check_k(k)
    clip = session.get(Clip, clip_id)
    if clip is None or clip.project_id != project.id:
        raise NotFoundError(f"project {project.id} has no clip {clip_id}")
    matrix = matrix_of(data_dir, project)
    if matrix is None:
        raise ConflictError("no features yet: the first learning round computes them (search comes after)")
    try:
        vector = _vector_of(matrix, clip_id)
        if vector is None:
            raise ConflictError(f"clip {clip_id} has no features yet: the next learning round computes them")
        index, stale = _index_for(matrix)
        return _reply(index, stale, _neighbours(session, project, index, vector, k), clip_id=clip_id, k=k)
    finally:
        matrix.close()


def embed_audio(project: Project, audio: Path) -> np.ndarray:
    """Features of an uploaded audio file with the project's extractor (InvalidError: not audio)."""
    from listenloop.audio.io import load_audio
    from listenloop.errors import AudioError

    ext = get_extractor(project.feature_set)
    try:
        signal, sr = load_audio(audio, ext.sample_rate)
    except AudioError as exc:
        raise InvalidError(str(exc).replace(f"{audio}: ", "")) from None
    if len(signal) < 0.05 * sr:
        raise InvalidError("the audio is too short to compare (under 50 ms)")
    return np.asarray(ext.extract(signal, sr), dtype=np.float32)


def similar_to_vector(
    session: Session, project: Project, data_dir: Path, vector: np.ndarray, k: int = DEFAULT_K
) -> dict:
    """The project's `k` clips nearest to a feature vector (of uploaded audio)."""
    _check_k(k)
    matrix = matrix_of(data_dir, project)
    if matrix is None:
        raise ConflictError("no features yet: the first learning round computes them (search comes after)")
    try:
        if vector.shape != (matrix.dim,):
            raise InvalidError(f"features of {vector.shape} values, the project's have {matrix.dim}")
        index, stale = _index_for(matrix)
        return _reply(index, stale, _neighbours(session, project, index, vector, k), k=k)
    finally:
        matrix.close()
