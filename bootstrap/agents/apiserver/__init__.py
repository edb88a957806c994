"""Kubernetes-compatible API server on etcd (``python -m bootstrap.agents.apiserver``)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys


def main(argv: list[str] | None = None) -> None:
    from .flags import parse_or_exit

    cfg = parse_or_exit(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if cfg.v >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(cfg))
    except _StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


class _StartupError(Exception):
    pass


async def _serve(cfg) -> None:
    from .server import Server
    from .storage.encryption import ConfigError

    try:
        server = Server(cfg)
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
    await stop.wait()
    await server.stop()
