"""Versions of bootstrap installs and the upgrade skew policy (pure: strings in, verdicts out).

Our components are versioned together as bootstrap's own release,
MAJOR.MINOR.PATCH (semver, an optional -prerelease and +build). Every agent
reports it after "-bootstrap." in its Kubernetes version string
(``bootstrap.component_version``: ``v1.32.0-bootstrap.0.2.0``); an install
lives in ``/opt/bootstrap/<version>`` and a unit runs the agents of one
install (``ExecStart=/opt/bootstrap/<version>/bin/...``).

The policy is upstream's (kubernetes.io/releases/version-skew-policy and
kubeadm's phases/upgrade/policy.go) applied to those versions:

* the control plane is upgraded before the nodes: ``upgrade node`` refuses a
  target newer than the version kubeadm-config records (``upgrade apply`` sets
  it) and, on a worker, newer than the API server it talks to ("no node newer
  than the API server");
* one minor step at a time: a target more than one minor above the cluster (or
  more than one below, a downgrade), or in another major, needs ``--force``;
* the toolkit doing the upgrade must know the target: a toolkit of an older
  minor than the target is refused outright, an older patch needs ``--force``
  (kubeadm's "kubeadm version ... is lower than the upgrade version");
* kubelets more than three minors behind the target need ``--force``.

``Verdict.mandatory`` problems refuse even with --force; ``skippable`` ones
refuse unless --force.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

PREFIX = "/opt/bootstrap"
# Upstream's MaximumAllowedMinorVersion{Upgrade,Downgrade,Kubelet}Skew.
UPGRADE_MINOR_SKEW = 1
DOWNGRADE_MINOR_SKEW = 1
KUBELET_MINOR_SKEW = 3

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")
_COMPONENT = re.compile(r"-bootstrap\.(.+)$")
_BIN = re.compile(re.escape(PREFIX) + r"/([^/\s]+)/bin/")


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""
    build: str = ""

    def __str__(self) -> str:
        out = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            out += f"-{self.pre}"
        if self.build:
            out += f"+{self.build}"
        return out

    def _key(self) -> tuple:
        # semver precedence: a release sorts after its prereleases; build is ignored.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre.split("."))
        return (self.major, self.minor, self.patch, not self.pre, pre if self.pre else ())

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def parse(text: str) -> Version | None:
    """A bootstrap version ("0.2.0", "v0.2.0") or a component's Kubernetes version
    string ("v1.32.0-bootstrap.0.2.0"); None when it is neither."""
    text = (text or "").strip()
    m = _COMPONENT.search(text)
    if m:
        text = m.group(1)
    m = _SEMVER.match(text)
    if not m:
        return None
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4) or "",
                   m.group(5) or "")


def parse_component(text: str) -> Version | None:
    """Our part of a component's version string; None for anything not of ours."""
    return parse(text) if _COMPONENT.search(text or "") else None


def install_dir(version: str) -> str:
    return f"{PREFIX}/{version}"


def agents_bin(version: str) -> str:
    """Where a unit's agent executables are for one install."""
    return f"{install_dir(version)}/bin"


def unit_install(unit_text: str, current_target: str = "") -> str | None:
    """The install a unit's ExecStart runs from ("0.1.0"); ``current`` resolves to
    ``current_target`` (where /opt/bootstrap/current points). None: not ours."""
    for line in unit_text.splitlines():
        if line.startswith("ExecStart="):
            m = _BIN.search(line)
            if not m:
                return None
            name = m.group(1)
            return (current_target or None) if name == "current" else name
    return None


def switch_unit(unit_text: str, version: str) -> str:
    """The unit with its ExecStart moved to another install, nothing else changed."""
    out = []
    for line in unit_text.splitlines(keepends=True):
        if line.startswith("ExecStart="):
            line = _BIN.sub(agents_bin(version) + "/", line, count=1)
        out.append(line)
    return "".join(out)


@dataclass
class Verdict:
    mandatory: list[str] = field(default_factory=list)
    skippable: list[str] = field(default_factory=list)

    def blocking(self, force: bool) -> list[str]:
        return self.mandatory + ([] if force else self.skippable)


def _v(text: str, what: str, verdict: Verdict) -> Version | None:
    v = parse(text)
    if v is None:
        verdict.mandatory.append(f"{what} {text!r} is not a version (MAJOR.MINOR.PATCH)")
    return v


def _step(current: Version, target: Version, what: str, verdict: Verdict) -> None:
    if target.major != current.major:
        verdict.skippable.append(f"{what} {current} -> {target} crosses a major version")
    elif target.minor > current.minor + UPGRADE_MINOR_SKEW:
        verdict.skippable.append(f"{what} {current} -> {target} skips a minor version; "
                                 f"upgrade one minor version at a time")
    elif target.minor < current.minor - DOWNGRADE_MINOR_SKEW:
        verdict.skippable.append(f"{what} {current} -> {target} downgrades more than "
                                 f"{DOWNGRADE_MINOR_SKEW} minor version")


def check_apply(cluster: str, target: str, toolkit: str,
                kubelets: dict[str, str] | None = None) -> Verdict:
    """``upgrade apply``: the cluster's recorded version -> target, by this toolkit."""
    out = Verdict()
    c, t, k = (_v(cluster, "the cluster version", out), _v(target, "the target version", out),
               _v(toolkit, "this toolkit's version", out))
    if c is None or t is None or k is None:
        return out
    _step(c, t, "upgrade", out)
    if k < t:
        if (k.major, k.minor) < (t.major, t.minor):
            out.mandatory.append(f"this toolkit ({k}) can only upgrade to {k.major}.{k.minor}.x; "
                                 f"run the target's own /opt/bootstrap/{t}/bin/bootstrap")
        else:
            out.skippable.append(f"this toolkit ({k}) is older than the upgrade version {t}")
    for node, text in sorted((kubelets or {}).items()):
        kv = parse_component(text)
        if kv is None:
            continue  # a kubelet not of ours: nothing to compare
        if kv.major != t.major or kv.minor < t.minor - KUBELET_MINOR_SKEW:
            out.skippable.append(f"the kubelet of {node} ({kv}) would be more than "
                                 f"{KUBELET_MINOR_SKEW} minor versions behind {t}")
    return out


def check_node(target: str, recorded: str, apiserver: str | None = None,
               current: str | None = None) -> Verdict:
    """``upgrade node``: control plane first, no node newer than the API server."""
    out = Verdict()
    t = _v(target, "the target version", out)
    r = _v(recorded, "the cluster version recorded in kubeadm-config", out)
    if t is None or r is None:
        return out
    if r < t:
        out.skippable.append(f"the control plane is at {r}, older than {t}: run "
                             f"`bootstrap upgrade apply {t}` on the first control-plane host first")
    if apiserver:
        a = parse_component(apiserver)
        if a is not None and a < t:
            out.skippable.append(f"the API server answers with {a}, older than {t}: no node "
                                 f"may be newer than the API server")
    if current:
        cv = parse(current)
        if cv is not None:
            _step(cv, t, "node upgrade", out)
    return out
