"""Learners with scikit-learn's interface: svm, logreg, rf (classification); svr, rf, ridge (regression)."""

from listenloop.learners.registry import CLASSIFIERS, REGRESSORS, describe_learner, make_learner, parse_params
from listenloop.learners.sign_classifier import SignClassifier
from listenloop.learners.svm import SVMClassifier
from listenloop.learners.upsampling import Upsampled, upsample_indices

__all__ = [
    "CLASSIFIERS",
    "REGRESSORS",
    "SVMClassifier",
    "SignClassifier",
    "Upsampled",
    "describe_learner",
    "make_learner",
    "parse_params",
    "upsample_indices",
]
