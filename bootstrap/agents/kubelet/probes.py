"""Probe semantics (pure): thresholds, initial delays, results per probe kind.

As upstream's prober worker (pkg/kubelet/prober/worker.go): liveness starts as
Success, readiness as Failure, startup as Unknown; a result is published only
after ``successThreshold`` / ``failureThreshold`` equal results in a row; a
liveness or startup failure puts the worker on hold until the container is
replaced; liveness and readiness wait for the startup probe; nothing is probed
before ``initialDelaySeconds`` after the container started.
"""

from __future__ import annotations

from dataclasses import dataclass

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"
KINDS = {LIVENESS: "livenessProbe", READINESS: "readinessProbe", STARTUP: "startupProbe"}
SUCCESS, FAILURE, UNKNOWN = "success", "failure", "unknown"
INITIAL = {LIVENESS: SUCCESS, READINESS: FAILURE, STARTUP: UNKNOWN}


@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    handler: dict             # {"exec": ...} | {"httpGet": ...} | {"tcpSocket": ...} | {"grpc": ...}
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_container(cls, container: dict, kind: str) -> ProbeSpec | None:
        p = container.get(KINDS[kind])
        if not p:
            return None
        handler = {k: p[k] for k in ("exec", "httpGet", "tcpSocket", "grpc") if p.get(k)}
        success = int(p.get("successThreshold") or 1)
        if kind in (LIVENESS, STARTUP):
            success = 1  # validation requires 1; upstream forces it
        return cls(kind, handler, float(p.get("initialDelaySeconds") or 0),
                   float(p.get("periodSeconds") or 10), float(p.get("timeoutSeconds") or 1),
                   success, int(p.get("failureThreshold") or 3))


class ProbeState:
    """One probe of one container: feed results in, get published results out."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self.container_id = ""
        self.result = INITIAL[spec.kind]
        self.run = 0
        self.last = UNKNOWN
        self.on_hold = False

    def reset(self, container_id: str) -> None:
        self.container_id = container_id
        self.result = INITIAL[self.spec.kind]
        self.run = 0
        self.last = UNKNOWN
        self.on_hold = False

    def due(self, container_id: str, started_at: float, now: float, started: bool) -> bool:
        """Should the probe run now for this container instance?"""
        if container_id != self.container_id:
            self.reset(container_id)
        if not container_id or self.on_hold:
            return False
        if now - started_at < self.spec.initial_delay:
            return False
        if self.spec.kind == STARTUP:
            return self.result != SUCCESS
        return started

    def observe(self, outcome: str) -> bool:
        """Record one probe outcome; True when the published result changed."""
        self.run = self.run + 1 if outcome == self.last else 1
        self.last = outcome
        if outcome == FAILURE and self.run < self.spec.failure_threshold:
            return False
        if outcome == SUCCESS and self.run < self.spec.success_threshold:
            return False
        changed = outcome != self.result
        self.result = outcome
        if outcome == FAILURE and self.spec.kind in (LIVENESS, STARTUP):
            self.on_hold = True  # the container will be restarted; wait for the new one
            self.run = 0
        return changed

    def container_stopped(self) -> bool:
        """A readiness probe of a container that is not running reads Failure."""
        if self.spec.kind == READINESS and self.result != FAILURE:
            self.result = FAILURE
            return True
        return False
