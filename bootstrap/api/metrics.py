"""The process's Prometheus registry: every agent metric registers here and the
agent's /metrics serves it (one registry per process, as component-base's legacyregistry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
