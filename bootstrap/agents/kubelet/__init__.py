"""bootstrap-kubelet: the node agent (see docs/kubelet.md).

``main(argv)`` parses the flags and the KubeletConfiguration file, runs TLS
bootstrap when only a bootstrap kubeconfig exists, connects to the CRI runtime
and runs: the pod controller (kubelet.py), the PLEG, static pods, node
registration/status/Lease (node.py), certificate rotation, the HTTPS server on
:10250 (server.py) and plain /healthz on 127.0.0.1:10248.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web

from bootstrap.errors import UserError

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    from bootstrap.agents.kubelet import config

    try:
        cfg = config.load(argv)
    except UserError as exc:
        print(f"bootstrap-kubelet: {exc.line()}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(cfg))
    except UserError as exc:
        print(f"bootstrap-kubelet: {exc.line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _node_ip(cfg, server: str) -> str:
    """--node-ip, else the source address of the route to the API server (the
    address other nodes reach this one at, in a flat node network)."""
    if cfg.node_ip:
        return cfg.node_ip
    url = urlparse(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((url.hostname or "127.0.0.1", url.port or 443))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


async def _wait_runtime(runtime, endpoint: str, timeout: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await runtime.version()
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise UserError(f"container runtime not reachable: {exc}",
                                where="--container-runtime-endpoint " + endpoint,
                                hint="is containerd running?") from None
            await asyncio.sleep(1)


async def _healthz(host: str, port: int) -> web.AppRunner | None:
    if not port:
        return None

    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/healthz", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _reload_client_cert(client, path: Path) -> None:
    """New connections use the rotated certificate; open ones finish on the old."""
    ctx = getattr(client, "_ssl", None)
    if ctx is not None:
        ctx.load_cert_chain(str(path), str(path))


def _reload_serving_cert(ctx, path: Path) -> None:
    """New handshakes present the rotated serving certificate."""
    ctx.load_cert_chain(str(path), str(path))


async def run(cfg) -> int:
    from bootstrap.agents.kubelet import server as srv
    from bootstrap.agents.kubelet import tlsbootstrap as tb
    from bootstrap.agents.kubelet.cri import RuntimeClient
    from bootstrap.agents.kubelet.kubelet import Kubelet
    from bootstrap.api.agent import configure_logging
    from bootstrap.api.client import Client, KubeconfigError
    from bootstrap.api.events import EventRecorder
    from bootstrap.api.informer import SharedInformerFactory

    configure_logging(cfg.verbosity, "bootstrap.agents.kubelet")
    kubeconfig = Path(cfg.kubeconfig)
    cert_dir = Path(cfg.cert_dir)
    if not tb.kubeconfig_usable(kubeconfig):
        if not cfg.bootstrap_kubeconfig:
            raise UserError(f"no usable kubeconfig at {kubeconfig}", where="--kubeconfig",
                            hint="give a kubeconfig or --bootstrap-kubeconfig for TLS bootstrap")
        try:
            await tb.bootstrap_client_cert(Client.from_kubeconfig, cfg.node_name,
                                           Path(cfg.bootstrap_kubeconfig), kubeconfig, cert_dir)
        except KubeconfigError as exc:
            raise UserError(str(exc), where="--bootstrap-kubeconfig") from None
    try:
        client = Client.from_kubeconfig(kubeconfig)
    except KubeconfigError as exc:
        raise UserError(str(exc), where="--kubeconfig") from None
    runtime = RuntimeClient(cfg.runtime_endpoint)
    version = await _wait_runtime(runtime, cfg.runtime_endpoint)
    log.info("container runtime %s %s (CRI %s)", version.runtime_name,
             version.runtime_version, version.runtime_api_version)
    node_ip = _node_ip(cfg, client.server)
    factory = SharedInformerFactory(client)
    recorder = EventRecorder(client, "kubelet", cfg.node_name)
    kubelet = Kubelet(client, factory, recorder, cfg, runtime, node_ip)
    tasks: list[asyncio.Task] = []

    def spawn(coro, name: str) -> None:
        tasks.append(asyncio.create_task(coro, name=name))

    if cfg.rotate_certificates and (cert_dir / "kubelet-client-current.pem").exists():
        mgr = tb.CertificateManager(client, cfg.node_name, cert_dir, "kubelet-client",
                                    tb.CLIENT_SIGNER, tb.CLIENT_USAGES,
                                    on_rotate=lambda p: _reload_client_cert(client, p))
        spawn(mgr.run(), "client-cert-rotation")
    serving = None
    if cfg.tls_cert_file:
        cert, key = cfg.tls_cert_file, cfg.tls_private_key_file
    elif cfg.server_tls_bootstrap:
        serving = tb.CertificateManager(client, cfg.node_name, cert_dir, "kubelet-server",
                                        tb.SERVING_SIGNER, tb.SERVING_USAGES,
                                        dns=[cfg.node_name], ips=[node_ip],
                                        on_rotate=lambda p: _reload_serving_cert(server_ctx, p))
        # Requested in the background: a pending CSR (nothing approves serving
        # certificates by default) must not hold up pods and node status.
        have = tb.load_cert(serving.current) is not None
        cert = key = str(serving.current) if have else None
        if not have:
            log.warning("no serving certificate available for the kubelet yet: requested "
                        "one (signer %s); approve its CSR", tb.SERVING_SIGNER)
    else:
        c, k = tb.self_signed(cert_dir, cfg.node_name, [node_ip])
        cert, key = str(c), str(k)
    server_ctx = srv.server_context(cert, key, cfg.client_ca_file)
    if serving is not None:
        spawn(serving.run(), "serving-cert-rotation")
    auth = srv.Auth(client, cfg.node_name, webhook_authn=cfg.webhook_authn,
                    anonymous=cfg.anonymous_auth, mode=cfg.authorization_mode)
    source = srv.PodSource(kubelet.all_pods, runtime)
    app = srv.build_app(auth, source, runtime_channel=runtime.channel)
    runner = await srv.serve(app, cfg.address, cfg.port, server_ctx)
    health = await _healthz(cfg.healthz_bind_address, cfg.healthz_port)
    log.info("kubelet %s serving on %s:%d (node IP %s)", cfg.node_name, cfg.address, cfg.port,
             node_ip)
    spawn(kubelet.run(), "pod-workers")
    spawn(kubelet.pleg(), "pleg")
    if cfg.static_pod_path:
        spawn(kubelet.static_loop(), "static-pods")
    if cfg.register_node:
        spawn(kubelet.node_agent.run(), "node-status")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    rc = 0
    try:
        done, _ = await asyncio.wait({stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is stopper:
                continue
            # Every loop runs until cancelled: one that ends is a failure.
            if t.exception() is not None:
                log.error("%s failed: %s", t.get_name(), t.exception(), exc_info=t.exception())
            else:
                log.error("%s ended unexpectedly", t.get_name())
            rc = 1
    finally:
        # Pods keep running across a kubelet restart (the next one adopts them).
        for t in (*tasks, stopper):
            t.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        await kubelet.close()
        await recorder.close()
        await factory.stop()
        await runner.cleanup()
        if health is not None:
            await health.cleanup()
        await client.close()
        await runtime.close()
    return rc
