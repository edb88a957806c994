"""KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) -> profiles.

Field names, defaults and the plugin merge rules are upstream's: each profile
starts from the default MultiPoint set; ``disabled`` removes plugins ("*" all of
that point's defaults), ``enabled`` adds them or replaces a default in place
(keeping its position), and a weight given at ``score`` wins over the one at
``multiPoint``. preFilter/preScore follow their plugin's filter/score. Decoding
is strict, as upstream's: an unknown field is an error. Every error is one
ConfigError line naming the field.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bootstrap.errors import UserError

from .framework import Framework, Plugin
from .plugins import ABSENT, BUILTIN, DEFAULT_PLUGINS, REGISTRY
from .plugins.noderesources import STRATEGIES

API_VERSION = "kubescheduler.config.k8s.io/v1"
KIND = "KubeSchedulerConfiguration"
DEFAULT_SCHEDULER_NAME = "default-scheduler"
EXTENSION_POINTS = ("preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore",
                    "score", "reserve", "permit", "preBind", "bind", "postBind", "multiPoint")
# (healthzBindAddress / metricsBindAddress left with v1beta2: unknown in v1.)
_TOP_FIELDS = {"apiVersion", "kind", "parallelism", "leaderElection", "clientConnection",
               "enableProfiling", "enableContentionProfiling", "percentageOfNodesToScore",
               "podInitialBackoffSeconds", "podMaxBackoffSeconds", "profiles", "extenders",
               "delayCacheUntilActive"}
_PROFILE_FIELDS = {"schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"}
_LEADER_FIELDS = {"leaderElect", "leaseDuration", "renewDeadline", "retryPeriod",
                  "resourceLock", "resourceName", "resourceNamespace"}
_CLIENT_FIELDS = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}
_WEIGHTS = {name: w for name, w in DEFAULT_PLUGINS if w is not None}


class ConfigError(UserError):
    pass


@dataclass
class Profile:
    scheduler_name: str
    filters: list[str]
    scores: list[tuple[str, int]]
    preemption: bool = True
    gates: bool = True
    plugin_args: dict[str, dict] = field(default_factory=dict)
    percentage: int | None = None


@dataclass
class LeaderElection:
    leader_elect: bool | None = None
    lease_duration: float | None = None
    renew_deadline: float | None = None
    retry_period: float | None = None
    resource_name: str | None = None
    resource_namespace: str | None = None


@dataclass
class SchedulerConfig:
    profiles: list[Profile]
    kubeconfig: str | None = None
    leader_election: LeaderElection = field(default_factory=LeaderElection)
    percentage: int | None = None
    initial_backoff: float = 1.0
    max_backoff: float = 10.0


def _filters(name: str) -> bool:
    return callable(getattr(REGISTRY.get(name), "filter", None))


def _scores(name: str) -> bool:
    return callable(getattr(REGISTRY.get(name), "score", None))


_IMPLEMENTS = {
    "filter": _filters, "preFilter": _filters, "score": _scores, "preScore": _scores,
    "postFilter": lambda n: n == "DefaultPreemption",
    "queueSort": lambda n: n == "PrioritySort",
    "bind": lambda n: n == "DefaultBinder",
    "preEnqueue": lambda n: n == "SchedulingGates",
}


def default_config() -> SchedulerConfig:
    return parse({"apiVersion": API_VERSION, "kind": KIND}, "<defaults>")


def load(path: str) -> SchedulerConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the scheduler configuration: {exc.strerror}",
                          where=path) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{at}: {getattr(exc, 'problem', exc)}",
                          where=path) from None
    return parse(doc, path)


def _unknown(obj: dict, allowed: set, where: str, path: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ConfigError(f'strict decoding error: unknown field "{where}{extra[0]}"',
                          where=path, hint="field names are upstream's, case-sensitive")


def _percentage(value, where: str, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigError(f"{where}: Invalid value: {value!r}: not in valid range [0-100]",
                          where=path)
    return value


def parse(doc, path: str) -> SchedulerConfig:
    if not isinstance(doc, dict):
        raise ConfigError("the scheduler configuration must be a YAML mapping", where=path)
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ConfigError(f"apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} is not "
                          f"{API_VERSION}/{KIND}", where=path,
                          hint="only the v1 API of KubeSchedulerConfiguration is served")
    _unknown(doc, _TOP_FIELDS, "", path)
    if doc.get("extenders"):
        raise ConfigError("extenders: scheduler extenders are not supported", where=path)
    cfg = SchedulerConfig(profiles=[])
    cc = doc.get("clientConnection") or {}
    _unknown(cc, _CLIENT_FIELDS, "clientConnection.", path)
    cfg.kubeconfig = cc.get("kubeconfig") or None
    cfg.leader_election = _leader_election(doc.get("leaderElection") or {}, path)
    cfg.percentage = _percentage(doc.get("percentageOfNodesToScore"),
                                 "percentageOfNodesToScore", path)
    par = doc.get("parallelism")
    if par is not None and (isinstance(par, bool) or not isinstance(par, int) or par <= 0):
        # accepted for compatibility: one event loop evaluates the nodes
        raise ConfigError(f"parallelism: Invalid value: {par!r}: should be an integer value "
                          f"greater than zero", where=path)
    for key, attr in (("podInitialBackoffSeconds", "initial_backoff"),
                      ("podMaxBackoffSeconds", "max_backoff")):
        value = doc.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{key}: Invalid value: {value!r}: must be greater than 0",
                                  where=path)
            setattr(cfg, attr, float(value))
    if cfg.max_backoff < cfg.initial_backoff:
        raise ConfigError("podMaxBackoffSeconds: must be greater than or equal to "
                          "podInitialBackoffSeconds", where=path)
    profiles = doc.get("profiles") or [{}]
    if not isinstance(profiles, list):
        raise ConfigError("profiles: must be a list", where=path)
    seen: set[str] = set()
    for i, prof in enumerate(profiles):
        p = _profile(prof, i, len(profiles), path)
        if p.scheduler_name in seen:
            raise ConfigError(f'profiles[{i}].schedulerName: Duplicate value: '
                              f'"{p.scheduler_name}"', where=path)
        seen.add(p.scheduler_name)
        if p.percentage is None:
            p.percentage = cfg.percentage
        cfg.profiles.append(p)
    return cfg


def _leader_election(le: dict, path: str) -> LeaderElection:
    from bootstrap.api.agent import parse_duration

    _unknown(le, _LEADER_FIELDS, "leaderElection.", path)
    out = LeaderElection()
    if "leaderElect" in le:
        if not isinstance(le["leaderElect"], bool):
            raise ConfigError("leaderElection.leaderElect: must be true or false", where=path)
        out.leader_elect = le["leaderElect"]
    for key, attr in (("leaseDuration", "lease_duration"), ("renewDeadline", "renew_deadline"),
                      ("retryPeriod", "retry_period")):
        if key in le:
            try:
                setattr(out, attr, parse_duration(str(le[key])))
            except ValueError as exc:
                raise ConfigError(f"leaderElection.{key}: {exc}", where=path,
                                  hint="use Go duration syntax: 15s, 1m30s") from None
    if le.get("resourceLock", "leases") != "leases":
        raise ConfigError(f'leaderElection.resourceLock: Unsupported value: '
                          f'"{le["resourceLock"]}": supported values: "leases"', where=path)
    out.resource_name = le.get("resourceName") or None
    out.resource_namespace = le.get("resourceNamespace") or None
    return out


def _plugin_list(items, where: str, path: str) -> list[dict]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(x, dict) and x.get("name")
                                              for x in items):
        raise ConfigError(f"{where}: must be a list of {{name: ..., weight: ...}}", where=path)
    for j, item in enumerate(items):
        _unknown(item, {"name", "weight"}, f"{where}[{j}].", path)
    return items


def _merge(defaults: list[tuple[str, int | None]], point: dict, name: str, where: str,
           path: str) -> list[tuple[str, int | None]]:
    enabled = _plugin_list(point.get("enabled"), f"{where}.enabled", path)
    disabled = _plugin_list(point.get("disabled"), f"{where}.disabled", path)
    off = {d["name"] for d in disabled}
    result = [] if "*" in off else [(n, w) for n, w in defaults if n not in off]
    for j, item in enumerate(enabled):
        pname = item["name"]
        if pname in ABSENT:
            raise ConfigError(f'{where}.enabled[{j}]: plugin "{pname}" is not supported: '
                              f'this cluster has no volumes or dynamic resources', where=path)
        if pname not in REGISTRY and pname not in BUILTIN:
            known = ", ".join(sorted(set(REGISTRY) | BUILTIN))
            raise ConfigError(f'{where}.enabled[{j}]: plugin "{pname}" does not exist',
                              where=path, hint=f"known plugins: {known}")
        if name != "multiPoint" and not _IMPLEMENTS[name](pname):
            raise ConfigError(f'{where}.enabled[{j}]: plugin "{pname}" does not extend '
                              f'{name} plugin', where=path)
        weight = item.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int)
                                   or weight < 0):
            raise ConfigError(f"{where}.enabled[{j}].weight: Invalid value: {weight!r}: "
                              f"must be a non-negative integer", where=path)
        names = [n for n, _ in result]
        if pname in names:
            result[names.index(pname)] = (pname, weight)  # replaces the default in place
        else:
            result.append((pname, weight))
    return result


def _profile(prof, i: int, count: int, path: str) -> Profile:
    where = f"profiles[{i}]"
    if not isinstance(prof, dict):
        raise ConfigError(f"{where}: must be a mapping", where=path)
    _unknown(prof, _PROFILE_FIELDS, f"{where}.", path)
    name = prof.get("schedulerName")
    if not name:
        if count > 1:
            raise ConfigError(f"{where}.schedulerName: Required value", where=path)
        name = DEFAULT_SCHEDULER_NAME
    plugins = prof.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise ConfigError(f"{where}.plugins: must be a mapping", where=path)
    _unknown(plugins, set(EXTENSION_POINTS), f"{where}.plugins.", path)
    points = {}
    for point in EXTENSION_POINTS:
        value = plugins.get(point) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}.plugins.{point}: must be a mapping", where=path)
        _unknown(value, {"enabled", "disabled"}, f"{where}.plugins.{point}.", path)
        points[point] = value
    multi = _merge(list(DEFAULT_PLUGINS), points["multiPoint"], "multiPoint",
                   f"{where}.plugins.multiPoint", path)

    def at(point: str) -> list[tuple[str, int | None]]:
        base = [(n, w) for n, w in multi if _IMPLEMENTS[point](n)]
        return _merge(base, points[point], point, f"{where}.plugins.{point}", path)

    filters = [n for n, _ in at("filter")]
    multi_weights = dict(multi)
    scores = []
    for n, w in at("score"):
        weight = w if w is not None else multi_weights.get(n)
        # Upstream defaults an unset (or zero) score weight to 1.
        scores.append((n, weight or 1))
    args = {}
    for j, pc in enumerate(prof.get("pluginConfig") or []):
        pwhere = f"{where}.pluginConfig[{j}]"
        if not isinstance(pc, dict) or not pc.get("name"):
            raise ConfigError(f"{pwhere}: must be a mapping with a name", where=path)
        _unknown(pc, {"name", "args"}, f"{pwhere}.", path)
        pname = pc["name"]
        if pname not in REGISTRY and pname not in BUILTIN:
            raise ConfigError(f'{pwhere}.name: plugin "{pname}" does not exist', where=path)
        if pname in args:
            raise ConfigError(f'{pwhere}.name: Duplicate value: "{pname}"', where=path)
        args[pname] = _plugin_args(pname, pc.get("args") or {}, f"{pwhere}.args", path)
    return Profile(
        scheduler_name=name, filters=filters, scores=scores,
        preemption=bool(at("postFilter")), gates=bool(at("preEnqueue")), plugin_args=args,
        percentage=_percentage(prof.get("percentageOfNodesToScore"),
                               f"{where}.percentageOfNodesToScore", path))


def _plugin_args(name: str, args, where: str, path: str) -> dict:
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: must be a mapping", where=path)
    args = {k: v for k, v in args.items() if k not in ("apiVersion", "kind")}
    if name == "NodeResourcesFit":
        _unknown(args, {"ignoredResources", "ignoredResourceGroups", "scoringStrategy"},
                 f"{where}.", path)
        strategy = args.get("scoringStrategy") or {}
        _unknown(strategy, {"type", "resources", "requestedToCapacityRatio"},
                 f"{where}.scoringStrategy.", path)
        kind = strategy.get("type", "LeastAllocated")
        if kind not in STRATEGIES:
            raise ConfigError(f'{where}.scoringStrategy.type: Unsupported value: "{kind}": '
                              f'supported values: {", ".join(repr(s) for s in STRATEGIES)}'
                              .replace("'", '"'), where=path)
        for k, r in enumerate(strategy.get("resources") or []):
            w = r.get("weight", 1) if isinstance(r, dict) else None
            if not isinstance(r, dict) or not r.get("name") or not isinstance(w, int) \
                    or not 1 <= w <= 100:
                raise ConfigError(f"{where}.scoringStrategy.resources[{k}]: needs a name and "
                                  f"a weight in the range [1, 100]", where=path)
    elif name == "InterPodAffinity":
        _unknown(args, {"hardPodAffinityWeight", "ignorePreferredTermsOfExistingPods"},
                 f"{where}.", path)
        w = args.get("hardPodAffinityWeight", 1)
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
            raise ConfigError(f"{where}.hardPodAffinityWeight: Invalid value: {w!r}: not in "
                              f"valid range [0-100]", where=path)
    elif name == "PodTopologySpread":
        _unknown(args, {"defaultConstraints", "defaultingType"}, f"{where}.", path)
        kind = args.get("defaultingType", "System")
        if kind not in ("System", "List"):
            raise ConfigError(f'{where}.defaultingType: Unsupported value: "{kind}": supported '
                              f'values: "System", "List"', where=path)
        defaults = args.get("defaultConstraints") or []
        if kind == "System" and defaults:
            raise ConfigError(f"{where}.defaultConstraints: Invalid value: when .defaultingType "
                              f'is "System", .defaultConstraints must be empty', where=path)
        for k, c in enumerate(defaults):
            cwhere = f"{where}.defaultConstraints[{k}]"
            if not isinstance(c, dict) or not c.get("topologyKey"):
                raise ConfigError(f"{cwhere}.topologyKey: Required value", where=path)
            if "labelSelector" in c:
                raise ConfigError(f"{cwhere}.labelSelector: Forbidden: constraint must not define "
                                  f"a selector, as they deduced for each pod", where=path)
            if c.get("whenUnsatisfiable") not in ("DoNotSchedule", "ScheduleAnyway"):
                raise ConfigError(f'{cwhere}.whenUnsatisfiable: Unsupported value: '
                                  f'"{c.get("whenUnsatisfiable")}": supported values: '
                                  f'"DoNotSchedule", "ScheduleAnyway"', where=path)
    elif name == "NodeResourcesBalancedAllocation":
        _unknown(args, {"resources"}, f"{where}.", path)
    return args


def frameworks(cfg: SchedulerConfig, rng: random.Random | None = None) -> dict[str, Framework]:
    """One Framework per profile, keyed by schedulerName."""
    out = {}
    for prof in cfg.profiles:
        # One instance per plugin, shared by its filter and score points.
        instances: dict[str, Plugin] = {
            n: REGISTRY[n](prof.plugin_args.get(n))
            for n in dict.fromkeys(prof.filters + [s for s, _ in prof.scores]) if n in REGISTRY}
        filters = [instances[n] for n in prof.filters if n in instances]
        scorers = [(instances[n], w) for n, w in prof.scores if n in instances]
        out[prof.scheduler_name] = Framework(
            prof.scheduler_name, filters, scorers, preemption=prof.preemption,
            gates=prof.gates, percentage_of_nodes_to_score=prof.percentage, rng=rng)
    return out
