"""Per-kind behaviour of the API server, one strategy object per kind (upstream's
REST strategies): what a create or update prepares, validates and keeps, whether
an update may create, how a delete proceeds, and the transaction extras a write
carries (Service IP and port claims).

The registry looks a strategy up by group-version-kind and knows no kind by name;
a kind without its own strategy gets ``Strategy``, the generic behaviour.
"""

from __future__ import annotations

from bootstrap.api.resources import Resource

from .apiservice import APIServiceStrategy
from .base import DEFAULT, Extras, Strategy
from .custom import strategy_for
from .kinds import STRATEGIES
from .service import RetryAllocation, ServiceStrategy

__all__ = ["DEFAULT", "Extras", "RetryAllocation", "Strategy", "Table"]

# kinds.py holds the small ones; kinds with a module of their own join here.
_STRATEGIES = {**STRATEGIES, ("apiregistration.k8s.io", "v1", "APIService"): APIServiceStrategy}


class Table:
    """The strategy of every kind, built once per server (some hold the allocator)."""

    def __init__(self, allocator=None):
        self._by_gvk: dict[tuple[str, str, str], Strategy] = {}
        self._allocator = allocator

    def __call__(self, res: Resource) -> Strategy:
        if res.custom is not None:
            # A CRD's schema changes at run time: its strategy is built from the live entry.
            return strategy_for(res)
        st = self._by_gvk.get(res.gvk)
        if st is None:
            if res.gvk == ("", "v1", "Service"):
                st = ServiceStrategy(res, self._allocator)
            elif strategy_for(res) is not None:
                st = strategy_for(res)
            else:
                st = _STRATEGIES.get(res.gvk, Strategy)(res)
            self._by_gvk[res.gvk] = st
        return st
