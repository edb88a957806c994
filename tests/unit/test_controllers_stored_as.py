"""Versions served over another version's storage are the same objects: the
garbage collector and the namespace controller must act on them once, not
once per version (an autoscaling/v1 and a v2 watch of the same HPAs)."""

from __future__ import annotations

from bootstrap.agents.controllers.garbagecollector import collected_resources
from bootstrap.agents.controllers.namespace import namespaced_resources


def _gvrs(resources):
    return [(r.group, r.version, r.plural) for r in resources]


def test_gc_watches_each_stored_kind_once():
    got = _gvrs(collected_resources())
    assert ("autoscaling", "v2", "horizontalpodautoscalers") in got
    assert ("autoscaling", "v1", "horizontalpodautoscalers") not in got
    assert ("events.k8s.io", "v1", "events") not in got
    assert len({(g, p) for g, _, p in got if g != "events.k8s.io"}) == len(got)


def test_namespace_controller_empties_each_stored_kind_once():
    got = _gvrs(namespaced_resources())
    assert ("autoscaling", "v1", "horizontalpodautoscalers") not in got
    assert ("events.k8s.io", "v1", "events") not in got
    assert ("", "v1", "events") in got
