"""bootstrap-kube-proxy: Services and EndpointSlices as iptables rules (docs/proxy.md)."""

from __future__ import annotations

import asyncio
import logging
import sys

from bootstrap.errors import UserError


def main(argv: list[str] | None = None) -> int:
    from bootstrap.agents.proxy.config import from_args
    try:
        cfg = from_args(argv)
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if cfg.verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bootstrap.agents.proxy.app import ProxyServer
    from bootstrap.agents.proxy.iptables import Runner
    from bootstrap.agents.proxy.proxier import Proxier
    from bootstrap.agents.proxy.routes import NodeRoutes
    from bootstrap.agents.proxy.rules import Options
    from bootstrap.api.agent import run_until_signal
    if cfg.cleanup:
        runner = Runner()
        Proxier("", Options(), runner).cleanup()
        NodeRoutes("", runner).cleanup()
        return 0
    from bootstrap.api.client import Client, KubeconfigError
    try:
        client = Client.from_kubeconfig(cfg.kubeconfig)
    except (KubeconfigError, OSError, ValueError) as exc:
        print(f"error: {cfg.kubeconfig}: {exc} (pass a readable kubeconfig with --kubeconfig)",
              file=sys.stderr)
        return 2

    async def run() -> None:
        try:
            await ProxyServer(cfg, client).run()
        finally:
            await client.close()
    asyncio.run(run_until_signal(run))
    return 0
