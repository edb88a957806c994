"""Open connections to many hosts at once, and run work across them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bootstrap.errors import RemoteError
from bootstrap.remote.local import LocalConnection
from bootstrap.remote.ssh import SSHConnection

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Iterable[T], max_parallel: int = 10) -> list[R]:
    """``[fn(x) for x in items]`` with at most ``max_parallel`` running at once.

    Order is kept. Every item runs even if some fail; then the first exception
    (in item order) is raised, so one bad host does not hide behind a thread.
    """
    items = list(items)
    if not items:
        return []
    if len(items) == 1 or max_parallel <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(max_parallel, len(items))) as pool:
        futures = [pool.submit(fn, x) for x in items]
    results: list[R] = []
    for fut in futures:
        results.append(fut.result())
    return results


def connect_all(
    hosts: Iterable[Any],
    max_parallel: int = 10,
    *,
    known_hosts: str | None = None,
    known_hosts_policy: str | None = None,
    connect_timeout: float = 10,
) -> dict[str, SSHConnection]:
    """Open one SSH connection per host, in parallel, keyed by host name.

    ``known_hosts``/``known_hosts_policy`` left unset follow each host's
    ansible_ssh_common_args (UserKnownHostsFile, StrictHostKeyChecking), else
    accept-new with ~/.ssh/known_hosts.

    If any host cannot be reached, the ones that did connect are closed and
    one ``RemoteError`` lists every unreachable host (each on its own clause).
    """
    conns, errors = _open_all(hosts, max_parallel, known_hosts=known_hosts,
                              known_hosts_policy=known_hosts_policy,
                              connect_timeout=connect_timeout)
    if errors:
        close_all(conns)
        if len(errors) == 1:
            raise next(iter(errors.values()))
        raise RemoteError("; ".join(e.line() for e in errors.values()))
    return conns


def connect_reachable(
    hosts: Iterable[Any],
    max_parallel: int = 10,
    *,
    remember_host_keys: bool = True,
    connect_timeout: float = 10,
) -> tuple[dict[str, SSHConnection], dict[str, RemoteError]]:
    """Like ``connect_all`` but keeps going: (connections, unreachable host -> error).

    For runs that report unreachable hosts and carry on with the others (a dry
    run, as ansible's UNREACHABLE); ``remember_host_keys=False`` leaves
    known_hosts untouched.
    """
    return _open_all(list(hosts), max_parallel, remember_host_keys=remember_host_keys,
                     connect_timeout=connect_timeout)


def _open_all(hosts: list[Any], max_parallel: int, *, known_hosts: str | None = None,
              known_hosts_policy: str | None = None, connect_timeout: float = 10,
              remember_host_keys: bool = True,
              ) -> tuple[dict[str, SSHConnection], dict[str, RemoteError]]:
    def _open(host: Any) -> SSHConnection | RemoteError:
        try:
            conn = connection_for(host, known_hosts_policy=known_hosts_policy,
                                  connect_timeout=connect_timeout, known_hosts=known_hosts,
                                  remember_host_keys=remember_host_keys)
            return conn.open()
        except RemoteError as exc:
            return exc

    opened = parallel_map(_open, hosts, max_parallel)
    conns = {h.name: c for h, c in zip(hosts, opened, strict=True)
             if not isinstance(c, RemoteError)}
    errors = {h.name: c for h, c in zip(hosts, opened, strict=True) if isinstance(c, RemoteError)}
    return conns, errors


def connection_for(host: Any, **kwargs: Any) -> SSHConnection | LocalConnection:
    """The connection an inventory host asks for: ansible_connection=local runs on this
    machine without SSH (with become through sudo), anything else is SSH."""
    if getattr(host, "connection", "ssh") == "local":
        become_user = (getattr(host, "become_user", None) or "root") \
            if getattr(host, "become", False) else None
        return LocalConnection(host.name, become_user=become_user)
    return SSHConnection(host, **kwargs)


def close_all(connections: dict[str, Any]) -> None:
    for conn in connections.values():
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
