"""Aggregators with crowd-kit's interface: `fit_predict(answers)` over an item, worker, label table."""
