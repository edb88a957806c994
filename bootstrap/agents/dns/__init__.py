"""bootstrap-dns: the cluster DNS add-on (docs/dns.md)."""

from __future__ import annotations

import asyncio
import logging
import sys

from bootstrap.errors import UserError


def main(argv: list[str] | None = None) -> int:
    from bootstrap.agents.dns.app import DNSApp, parser
    from bootstrap.api.agent import run_until_signal
    from bootstrap.api.client import Client, KubeconfigError
    from bootstrap.config.duration import parse_duration
    try:
        args = parser().parse_args(argv)
        try:
            parse_duration(args.forward_timeout)
        except ValueError as exc:
            raise UserError(f"invalid duration {args.forward_timeout!r}: {exc}",
                            where="--forward-timeout", hint="for example 2s") from None
        try:
            client = Client.from_kubeconfig(args.kubeconfig)
        except (KubeconfigError, OSError, ValueError) as exc:
            raise UserError(str(exc), where="--kubeconfig",
                            hint="pass a readable kubeconfig with --kubeconfig") from None
        app = DNSApp(args, client)
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        try:
            await app.run()
        finally:
            await client.close()
    try:
        asyncio.run(run_until_signal(run))
    except OSError as exc:     # a listen address in use or not ours
        print(f"error: {exc.strerror or exc}: check --listen/--health-address/--metrics-address",
              file=sys.stderr)
        return 1
    return 0
