"""The in-tree plugins by upstream name, and upstream's default profile as data."""

from __future__ import annotations

from ..framework import Plugin
from .basic import (
    ImageLocality,
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeUnschedulable,
    TaintToleration,
)
from .interpodaffinity import InterPodAffinity
from .noderesources import NodeResourcesBalancedAllocation, NodeResourcesFit
from .podtopologyspread import PodTopologySpread

REGISTRY: dict[str, type[Plugin]] = {p.name: p for p in (
    NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
    PodTopologySpread, InterPodAffinity, NodeResourcesBalancedAllocation, ImageLocality)}

# Upstream's default MultiPoint set in its order, with score weights (None: the
# plugin does not score). PrioritySort, DefaultPreemption and DefaultBinder are
# the queue, preemption.py and the binder; SchedulingGates is the queue's gate.
DEFAULT_PLUGINS: tuple[tuple[str, int | None], ...] = (
    ("SchedulingGates", None),
    ("PrioritySort", None),
    ("NodeUnschedulable", None),
    ("NodeName", None),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", None),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", None),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", None),
)
BUILTIN = frozenset({"SchedulingGates", "PrioritySort", "DefaultPreemption", "DefaultBinder"})

# Upstream defaults whose subject (volumes, DRA) this cluster does not have: a
# configuration may disable them; enabling one is refused.
ABSENT = frozenset({"VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "VolumeZone",
                    "DynamicResources", "EBSLimits", "GCEPDLimits", "AzureDiskLimits"})
