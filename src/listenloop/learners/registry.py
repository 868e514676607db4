"""Learner registry: names on the command line to scikit-learn estimators.

Every learner follows scikit-learn's fit / predict / predict_proba and accepts
`sample_weight` in `fit`. Features are expected standardised (the simulation and the
engine fit a StandardScaler on the whole pool, which needs no labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from listenloop.errors import ListenloopError
from listenloop.learners.svm import SVMClassifier
from listenloop.learners.upsampling import Upsampled


def _svm(**p: Any) -> BaseEstimator:
    return SVMClassifier(**p)


def _logreg(**p: Any) -> BaseEstimator:
    p.setdefault("C", 0.01)
    p.setdefault("max_iter", 2000)
    return LogisticRegression(**p)


def _rf(**p: Any) -> BaseEstimator:
    p.setdefault("n_estimators", 200)
    return RandomForestClassifier(**p)


def _svr(**p: Any) -> BaseEstimator:
    p.pop("random_state", None)
    p.setdefault("kernel", "rbf")
    # Standardised targets let one C / epsilon serve labels of any scale.
    return TransformedTargetRegressor(regressor=SVR(**p), transformer=StandardScaler())


def _rf_regressor(**p: Any) -> BaseEstimator:
    p.setdefault("n_estimators", 200)
    return RandomForestRegressor(**p)


def _ridge(**p: Any) -> BaseEstimator:
    p.pop("random_state", None)
    return Ridge(**p)


CLASSIFIERS: dict[str, Callable[..., BaseEstimator]] = {"svm": _svm, "logreg": _logreg, "rf": _rf}
REGRESSORS: dict[str, Callable[..., BaseEstimator]] = {"svr": _svr, "rf": _rf_regressor, "ridge": _ridge}
DEFAULT_LEARNER = {"classification": "svm", "regression": "svr"}


def make_learner(
    name: str | None,
    task: str = "classification",
    *,
    upsample: bool = False,
    random_state: int | None = 0,
    **params: Any,
) -> BaseEstimator:
    """A fresh, unfitted learner `name` for `task`; `upsample` balances classes before fitting."""
    table = CLASSIFIERS if task == "classification" else REGRESSORS
    name = name or DEFAULT_LEARNER[task]
    if name not in table:
        raise ListenloopError(f"unknown {task} learner '{name}' (known: {', '.join(sorted(table))})")
    learner = table[name](random_state=random_state, **params)
    if upsample:
        if task != "classification":
            raise ListenloopError("--upsample balances classes: it needs a classification task")
        learner = Upsampled(learner, random_state=random_state)
    return learner


def parse_params(text: str | None) -> dict[str, Any]:
    """`"C=0.1,kernel=rbf"` → {"C": 0.1, "kernel": "rbf"}: numbers parsed, the rest kept as strings."""
    out: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise ListenloopError(f"--learner-params: '{item}' is not NAME=VALUE")
        key, value = (s.strip() for s in item.split("=", 1))
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"none": None, "true": True, "false": False}.get(value.lower(), value)
    return out


def describe_learner(name: str | None, task: str, params: dict[str, Any]) -> str:
    """A short human description of the learner a command will use, its parameters included."""
    model = make_learner(name, task, **params)
    inner = getattr(model, "regressor", model)
    shown = {
        k: v for k, v in inner.get_params(deep=False).items() if k in ("kernel", "C", "n_estimators", "alpha")
    }
    return (
        f"{name or DEFAULT_LEARNER[task]} ({type(inner).__name__}"
        + "".join(f", {k}={v}" for k, v in shown.items())
        + ")"
    )
