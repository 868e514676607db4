"""A fitted model as files: what a model version's folder holds, and how it is read back safely.

A folder holds `model.json` (what the model is: its kind, task, classes, feature set and the
rest of its configuration), `standardise.npz` (the mean and std the features were standardised
with before the model saw them) and the model itself:

- scikit-learn models as `model.skops` (skops, not pickle: loading a pickle runs whatever code
  the file names, and a model folder may come from anyone). Loading lists the types it trusts
  beyond skops' own defaults explicitly (`TRUSTED_TYPES`) and refuses a file holding any other.
- DAL's MC-dropout network (`learners/mc_dropout.py`) as `model.pt`: the dense layer's torch
  state dict (read with `weights_only=True`: tensors only), its constructor parameters in
  `model.json`. Its predictions depend only on those (its masks are drawn from `random_state`).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from listenloop.errors import ListenloopError

#: Bumped when the folder's layout changes in a way an older reader cannot follow.
FORMAT = 1
META = "model.json"
STANDARDISE = "standardise.npz"
SKOPS_FILE = "model.skops"
TORCH_FILE = "model.pt"
SKLEARN, MC_DROPOUT = "sklearn", "mc_dropout"
#: Types a model file may hold beyond skops' defaults (scikit-learn's estimators, numpy): the
#: learners of `learners/registry.py` that are listenloop's own, and the trees of the forests.
TRUSTED_TYPES = [
    "listenloop.learners.svm.SVMClassifier",
    "listenloop.learners.upsampling.Upsampled",
    "listenloop.learners.sign_classifier.SignClassifier",
    "sklearn.tree._tree.Tree",
]
_MC_PARAMS = ("p", "masks", "steps", "per_class_batch", "lr", "weight_decay", "random_state")


class LoadedModel:
    """A model read back from its folder: `predict`, and `confidence` (the predicted class's
    probability; None for ratings), on raw (unstandardised) feature rows."""

    def __init__(self, meta: dict[str, Any], model: Any, mean: np.ndarray, std: np.ndarray) -> None:
        self.meta = meta
        self.model = model
        self.mean = mean
        self.std = std

    def standardised(self, X: np.ndarray) -> np.ndarray:
        """Rows standardised exactly as the learning round did (`rows.Standardised`)."""
        from listenloop.rows import Standardised

        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.mean):
            raise ListenloopError(
                f"features have {X.shape[-1]} values per clip, the model expects {len(self.mean)}"
            )
        return Standardised(X, self.mean, self.std)[np.arange(len(X))]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, confidences or None) of raw feature rows `X`."""
        Z = self.standardised(X)
        pred = np.asarray(self.model.predict(Z))
        if self.meta.get("task") != "classification" or not hasattr(self.model, "predict_proba"):
            return pred, None
        proba = np.asarray(self.model.predict_proba(Z))
        classes = [str(c) for c in self.model.classes_]
        at = np.array([classes.index(str(p)) for p in pred], dtype=np.int64)
        return pred, proba[np.arange(len(pred)), at]


def save_model(folder: Path, model: Any, mean: np.ndarray, std: np.ndarray, meta: dict[str, Any]) -> None:
    """Write `model` (fitted), its standardisation and `meta` into `folder` (created)."""
    from listenloop.learners.mc_dropout import MCDropoutClassifier

    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, format=FORMAT)
    if isinstance(model, MCDropoutClassifier):
        from listenloop.learners.mc_dropout import require_torch

        torch = require_torch()
        torch.save(model.layer_.state_dict(), folder / TORCH_FILE)
        meta |= {
            "kind": MC_DROPOUT,
            "file": TORCH_FILE,
            "params": {k: getattr(model, k) for k in _MC_PARAMS},
            "model_classes": [str(c) for c in model.classes_],
        }
    else:
        import skops.io as sio

        sio.dump(model, folder / SKOPS_FILE, compression=zipfile.ZIP_DEFLATED)
        meta |= {"kind": SKLEARN, "file": SKOPS_FILE, "estimator": type(model).__name__}
    np.savez(folder / STANDARDISE, mean=np.asarray(mean, np.float64), std=np.asarray(std, np.float64))
    (folder / META).write_text(json.dumps(meta, indent=1, default=str) + "\n")


def read_meta(folder: Path) -> dict[str, Any]:
    """`model.json` of a model folder, or a clear error when it is not one."""
    path = Path(folder) / META
    if not path.is_file():
        raise ListenloopError(
            f"{folder}: not a model folder (no {META}; write one with `listenloop model export`)"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ListenloopError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ListenloopError(
            f"{path}: format {meta.get('format') if isinstance(meta, dict) else '?'} "
            f"is not {FORMAT}, which this listenloop reads"
        )
    return meta


def load_model(folder: Path) -> LoadedModel:
    """The model of `folder`. A skops file holding a type outside skops' defaults and
    TRUSTED_TYPES is refused (ListenloopError naming the types), never loaded."""
    folder = Path(folder)
    meta = read_meta(folder)
    try:
        with np.load(folder / STANDARDISE, allow_pickle=False) as z:
            mean, std = np.asarray(z["mean"], np.float64), np.asarray(z["std"], np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise ListenloopError(f"{folder / STANDARDISE}: unreadable ({exc})") from None
    kind = meta.get("kind")
    if kind == SKLEARN:
        model = _load_skops(folder / SKOPS_FILE)
    elif kind == MC_DROPOUT:
        model = _load_mc_dropout(folder / TORCH_FILE, meta)
    else:
        raise ListenloopError(f"{folder / META}: unknown model kind {kind!r}")
    return LoadedModel(meta, model, mean, std)


def _load_skops(path: Path) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    if not path.is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        return sio.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        raise ListenloopError(
            f"{path}: refused, it holds types listenloop does not trust: {', '.join(untrusted) or exc}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise ListenloopError(f"{path}: not a readable skops file ({type(exc).__name__}: {exc})") from None


def _load_mc_dropout(path: Path, meta: dict[str, Any]) -> Any:
    from listenloop.learners.mc_dropout import MCDropoutClassifier, require_torch

    torch = require_torch()
    if not path.is_file():
        raise ListenloopError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, no code
        weight = state["weight"]
        params = {k: meta["params"][k] for k in _MC_PARAMS}
        classes = np.asarray(meta["model_classes"])
    except Exception as exc:  # torch's unpickler raises many kinds: all mean an unusable file
        raise ListenloopError(
            f"{path}: not a readable MC-dropout state dict ({type(exc).__name__}: {exc})"
        ) from None
    model = MCDropoutClassifier(**params)
    model._init(int(weight.shape[1]), classes)
    model.layer_.load_state_dict(state)
    return model
