"""Labelling audio with an exported model version (`listenloop predict`).

Features come from the extractor the version names, with its parameters, through the same
function that extracts a project's clips for a learning round (`features.extraction.extract_one`),
and are standardised with the mean and std stored with the model: a clip gets exactly the
features, and so the prediction, it would have had in the round that trained the model.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from listenloop.audio.io import AUDIO_EXTENSIONS
from listenloop.errors import ListenloopError


@dataclass
class Predictions:
    """Rows written (`file,label,confidence`) and the inputs that gave no features, with why."""

    rows: list[tuple[str, str, float | None]]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def audio_inputs(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(path, name to report) of every audio file given: a file as given, a folder's audio files
    (recursively, sorted) by their path relative to that folder."""
    out: list[tuple[Path, str]] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            out.extend((p, p.relative_to(path).as_posix()) for p in found)
        elif path.is_file():
            out.append((path, str(given)))
        else:
            raise ListenloopError(f"{given}: no such file or folder")
    if not out:
        raise ListenloopError(
            f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {', '.join(map(str, inputs))}"
        )
    return out


def predict_files(
    model_dir: Path, inputs: Sequence[str | Path], log: Callable[[str], None] | None = None
) -> Predictions:
    """The exported model in `model_dir` applied to the audio `inputs` (files or folders)."""
    from listenloop.features.extraction import extract_one
    from listenloop.features.registry import get_extractor
    from listenloop.learners.model_files import load_model

    model = load_model(Path(model_dir))
    features = model.meta.get("features") or {}
    extractor = get_extractor(str(model.meta.get("feature_set")), **(features.get("params") or {}))
    if features and extractor.cache_token() != _token(features):
        raise ListenloopError(
            f"{model_dir}: the model's features ({_token(features)}) differ from what this listenloop "
            f"computes ({extractor.cache_token()}): use the listenloop version that trained it"
        )
    files = audio_inputs(inputs)
    vectors: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    for path, name in files:
        out = extract_one(extractor, str(path))
        if isinstance(out, str):
            skipped.append((name, out))
            if log is not None:
                log(f"skipped {name}: {out}")
            continue
        vectors.append(out)
        names.append(name)
    if not vectors:
        return Predictions([], skipped)
    labels, confidence = model.predict(np.stack(vectors))
    conf = [None] * len(names) if confidence is None else [float(c) for c in confidence]
    return Predictions([(n, str(lab), c) for n, lab, c in zip(names, labels, conf, strict=True)], skipped)


def _token(features: dict) -> str:
    import json

    return json.dumps(features, sort_keys=True, default=str)


def write_predictions(path: Path, predictions: Predictions) -> None:
    """`file,label,confidence` (confidence empty for ratings)."""
    try:
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["file", "label", "confidence"])
            for name, label, conf in predictions.rows:
                out.writerow([name, label, "" if conf is None else f"{conf:.6f}"])
    except OSError as exc:
        raise ListenloopError(f"--out {path}: {exc.strerror or exc}") from None
