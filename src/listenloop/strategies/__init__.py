"""Query strategies: measures (uncertainty.py), selection (selection.py), and one module per strategy."""

from listenloop.strategies.base import QueryContext, Strategy
from listenloop.strategies.registry import STRATEGIES, make_strategy

__all__ = ["STRATEGIES", "QueryContext", "Strategy", "make_strategy"]
