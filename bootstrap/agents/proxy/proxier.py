"""The proxier: cached Services and EndpointSlices -> one iptables-restore per sync.

Informer handlers only record objects and mark their service dirty; ``sync()``
recomputes the rules of dirty services (each service's share is cached as a
``ServiceRules`` fragment) and writes them. A partial sync rewrites the dirty
services' own chains plus those shared chains whose content changed; a full sync (the first, every
syncPeriod, and after any failure) rewrites everything, re-checks the jump rules
and deletes KUBE-SVC/SEP/... chains that nothing owns any more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.agents.proxy import rules
from bootstrap.agents.proxy.conntrack import stale_entries
from bootstrap.agents.proxy.iptables import Runner
from bootstrap.agents.proxy.model import (
    SERVICE_NAME_LABEL,
    Endpoint,
    ServicePort,
    endpoints_map,
    service_ports,
)

log = logging.getLogger(__name__)
Key = tuple[str, str, str, str]


def _key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def _slice_service(obj: dict) -> str | None:
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace', 'default')}/{name}" if name else None


@dataclass
class _ServiceState:
    ports: dict[Key, ServicePort]
    endpoints: dict[Key, tuple[Endpoint, ...]]
    fragments: list[rules.ServiceRules]


@dataclass
class _Plan:
    full: bool
    start: float
    dirty: set[str]
    fragments: list[rules.ServiceRules]
    owned: set[str]
    stale: set[str]
    write: set[str] | None
    conntrack: list[list[str]]
    services: int
    shared: rules.Shared
    unchanged: set


@dataclass
class SyncResult:
    full: bool
    seconds: float
    text: str
    services_written: int


class Proxier:
    def __init__(self, node_name: str, opts: rules.Options, runner: Runner, *,
                 clock: Callable[[], float] = time.monotonic):
        self.node_name = node_name
        self.opts = opts
        self.runner = runner
        self.clock = clock
        self.services: dict[str, dict] = {}
        self.slices: dict[str, dict[str, dict]] = {}      # service key -> slice key -> slice
        self._state: dict[str, _ServiceState] = {}
        self._dirty: set[str] = set()
        self._owned: set[str] = set()                     # nat chains written so far
        self._shared: rules.Shared = {}                   # shared chains as last written
        self.need_full = True
        self.services_synced = self.slices_synced = False

    # informer handlers ------------------------------------------------------------

    def on_service(self, obj: dict) -> None:
        key = _key(obj)
        self.services[key] = obj
        self._dirty.add(key)

    def on_service_delete(self, obj: dict) -> None:
        key = _key(obj)
        self.services.pop(key, None)
        self._dirty.add(key)

    def on_slice(self, obj: dict) -> None:
        svc = _slice_service(obj)
        if svc:
            self.slices.setdefault(svc, {})[_key(obj)] = obj
            self._dirty.add(svc)

    def on_slice_delete(self, obj: dict) -> None:
        svc = _slice_service(obj)
        if svc and svc in self.slices:
            self.slices[svc].pop(_key(obj), None)
            if not self.slices[svc]:
                del self.slices[svc]
            self._dirty.add(svc)

    @property
    def pending(self) -> bool:
        return bool(self._dirty) or self.need_full

    @property
    def ready(self) -> bool:
        return self.services_synced and self.slices_synced

    # sync -------------------------------------------------------------------------

    def _recompute(self, key: str) -> _ServiceState | None:
        svc = self.services.get(key)
        if svc is None:
            return None
        ports = {sp.key: sp for sp in service_ports(svc)}
        emap = endpoints_map(list((self.slices.get(key) or {}).values()), self.node_name)
        eps = {k: emap.get(k, ()) for k in ports}
        frags = [rules.service_rules(sp, eps[k], self.opts) for k, sp in ports.items()]
        return _ServiceState(ports, eps, frags)

    def prepare(self, force_full: bool = False) -> _Plan:
        """Compute one sync's restore input from the caches (cheap; on the event loop)."""
        start = self.clock()
        full = force_full or self.need_full
        dirty = set(self.services) | set(self._state) if full else set(self._dirty)
        self._dirty.clear()
        old_states = {k: self._state.get(k) for k in dirty}
        for key in dirty:
            st = self._recompute(key)
            if st is None:
                self._state.pop(key, None)
            else:
                self._state[key] = st
        fragments = [f for st in self._state.values() for f in st.fragments]
        owned = rules.owned_chains(fragments)
        write = None if full else {f.name for k in dirty if (st := self._state.get(k))
                                   for f in st.fragments}
        shared = rules.shared_chains(fragments, self.opts)
        unchanged = set() if full else {k for k, v in shared.items() if self._shared.get(k) == v}
        conntrack = []
        for key in dirty:
            old, new = old_states.get(key), self._state.get(key)
            conntrack += stale_entries(old.ports if old else {}, old.endpoints if old else {},
                                       new.ports if new else {}, new.endpoints if new else {})
        return _Plan(full, start, dirty, fragments, owned, self._owned - owned, write,
                     conntrack, len(self._state) if full else len(dirty), shared, unchanged)

    def apply(self, plan: _Plan) -> str:
        """Run the commands (blocking; callers may run it in a thread). Returns the text."""
        stale = set(plan.stale)
        saved: dict[str, list[str]] = {}
        if plan.full:
            saved = self.runner.save()
            existing = {line[1:].split()[0] for line in saved.get("nat", ())
                        if line.startswith(":")}
            stale |= {c for c in existing if rules.service_chain(c) and c not in plan.owned}
        jumps = rules.missing_jumps(rules.jump_rules(self.opts), saved) if plan.full else []
        text = rules.render(plan.fragments, self.opts, write=plan.write, stale=stale,
                            shared=plan.shared, unchanged=plan.unchanged, jumps=jumps)
        if text:
            self.runner.restore(text)
        for args in plan.conntrack:
            self.runner.conntrack_delete(args)
        return text

    def finish(self, plan: _Plan, ok: bool) -> None:
        if ok:
            self._owned = plan.owned
            self._shared = plan.shared
            self.need_full = False
        else:
            # Our idea of the tables is now unknown: the next sync rewrites all.
            self.need_full = True
            self._dirty |= plan.dirty

    def sync(self, force_full: bool = False) -> SyncResult:
        """prepare + apply + finish in one call (tests, the benchmark, --cleanup)."""
        plan = self.prepare(force_full)
        try:
            text = self.apply(plan)
        except Exception:
            self.finish(plan, False)
            raise
        self.finish(plan, True)
        return SyncResult(plan.full, self.clock() - plan.start, text, plan.services)

    # teardown ---------------------------------------------------------------------

    def cleanup(self) -> None:
        """Upstream's --cleanup: remove the jump rules, then every KUBE chain we make."""
        for jump in rules.jump_rules():
            self.runner.delete_jump(jump)
        for table in ("nat", "filter"):
            try:
                chains = self.runner.save_chains(table)
            except Exception as exc:
                log.debug("iptables-save %s: %s", table, exc)
                continue
            ours = set(rules.NAT_CHAINS if table == "nat" else rules.FILTER_CHAINS)
            ours.add(rules.FIREWALL)
            doomed = sorted(c for c in chains if c in ours or (table == "nat" and
                                                               rules.service_chain(c)))
            self.runner.flush_delete_chains(table, doomed)
        self._owned.clear()
        self._shared = {}
        self.need_full = True
