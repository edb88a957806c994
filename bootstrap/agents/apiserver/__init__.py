"""Kubernetes-compatible API server on etcd (``python -m bootstrap.agents.apiserver``)."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys


def main(argv: list[str] | None = None) -> None:
    from .flags import parse_or_exit

    cfg = parse_or_exit(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if cfg.v >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for warning in cfg.admission_warnings:
        logging.getLogger(__name__).warning("%s", warning)
    primary = True
    children: list[int] = []
    if cfg.processes > 1:
        primary, children = _fork_workers(cfg.processes - 1)
    try:
        # After the fork: every process makes its own loop.
        with asyncio.Runner(loop_factory=loop_factory(cfg.event_loop)) as runner:
            runner.run(_serve(cfg, primary, children))
    except _StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        _stop_workers(children)


def loop_factory(event_loop: str):
    """The new-loop callable for asyncio.Runner: None is asyncio's default loop."""
    if event_loop == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return None


def _fork_workers(count: int) -> tuple[bool, list[int]]:
    """Fork before any event loop exists. Workers serve requests only; the primary also
    runs the singletons (bootstrap objects, endpoint lease, compaction). A worker dies
    with its primary (PR_SET_PDEATHSIG), so systemd only ever supervises one process."""
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # the primary died between fork and prctl
                os._exit(1)
            return False, []
        children.append(pid)
    return True, children


def _stop_workers(children: list[int]) -> None:
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


class _StartupError(Exception):
    pass


async def _serve(cfg, primary: bool = True, children: list[int] | None = None) -> None:
    from .server import Server
    from .storage.encryption import ConfigError

    try:
        server = Server(cfg, primary=primary)
    except (ConfigError, ValueError, OSError) as exc:
        raise _StartupError(str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except (RuntimeError, OSError) as exc:
        await server.stop()
        raise _StartupError(str(exc)) from None
    watch = asyncio.create_task(_watch_workers(children or [], stop))
    await stop.wait()
    watch.cancel()
    await server.shutdown(cfg.shutdown_delay_duration)
    await server.stop()


async def _watch_workers(children: list[int], stop: asyncio.Event) -> None:
    """A worker that exits takes the whole server down, so the unit restarts whole
    instead of serving on fewer processes unnoticed."""
    while children:
        for pid in list(children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                logging.getLogger(__name__).error("worker process %d exited; stopping", pid)
                children.remove(pid)
                stop.set()
                return
        await asyncio.sleep(1)
