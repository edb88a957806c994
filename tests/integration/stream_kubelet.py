"""A minimal kubelet HTTPS server for the streaming tests: only the streaming endpoints.

Serves ``bootstrap.agents.kubelet.streaming`` on --listen with mTLS (client
certificates from --client-ca, i.e. the API server's kubelet-client pair) over
the CRI at --runtime-endpoint; pods and containers are found by the labels the
kubelet puts on them (io.kubernetes.pod.namespace / .name,
io.kubernetes.container.name). Run inside a sandbox host's network namespace so
containerd's loopback-only streaming server is reachable:

    nsenter --net=/run/netns/<host netns> python -m tests.integration.stream_kubelet ...
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl

import grpc
from aiohttp import web
from cri_api.v1 import api_pb2 as cri
from cri_api.v1 import api_pb2_grpc as cri_grpc

from bootstrap.agents.kubelet.streaming import setup_streaming

POD_NS, POD_NAME = "io.kubernetes.pod.namespace", "io.kubernetes.pod.name"
CONTAINER_NAME = "io.kubernetes.container.name"


def _matches(labels, namespace: str, pod: str) -> bool:
    return labels.get(POD_NS) == namespace and labels.get(POD_NAME) == pod


def build_app(channel: grpc.aio.Channel) -> web.Application:
    runtime = cri_grpc.RuntimeServiceStub(channel)

    async def resolve_sandbox(namespace: str, pod: str) -> str | None:
        ready = cri.PodSandboxFilter(state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY))
        items = (await runtime.ListPodSandbox(cri.ListPodSandboxRequest(filter=ready),
                                              timeout=30)).items
        return next((s.id for s in items if _matches(s.labels, namespace, pod)), None)

    async def resolve_container(namespace: str, pod: str, container: str) -> str | None:
        running = cri.ContainerFilter(state=cri.ContainerStateValue(state=cri.CONTAINER_RUNNING))
        items = (await runtime.ListContainers(cri.ListContainersRequest(filter=running),
                                              timeout=30)).containers
        return next((c.id for c in items if _matches(c.labels, namespace, pod)
                     and c.labels.get(CONTAINER_NAME) == container), None)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    setup_streaming(app, channel, resolve_container, resolve_sandbox)
    return app


async def main(args) -> None:
    channel = grpc.aio.insecure_channel(f"unix:{args.runtime_endpoint}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.client_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(build_app(channel), handle_signals=False, access_log=None)
    await runner.setup()
    host, port = args.listen.rsplit(":", 1)
    await web.TCPSite(runner, host, int(port), ssl_context=ctx).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await channel.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runtime-endpoint", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca", required=True)
    asyncio.run(main(p.parse_args()))
