"""Remove every pod sandbox and container from the CRI runtime (``bootstrap reset``).

kubeadm reset runs ``crictl stopp``/``crictl rmp`` over every pod; the toolkit
never imports the agents, so ``bootstrap reset`` runs this module on the host
with the installed agents' interpreter::

    python -m bootstrap.agents.kubelet.cleanup [--runtime-endpoint URL] [--remove]

Without ``--remove`` it only lists (a fact: what a reset would remove); with it
every container is stopped and removed, then every sandbox (which tears down
its network namespace through CNI). Prints one JSON object: the ids it found,
and with ``--remove`` the ones it could not remove with why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
STOP_GRACE = 10  # seconds each container gets before SIGKILL, as crictl's default


async def cleanup(runtime, remove: bool, grace: int = STOP_GRACE) -> dict:
    sandboxes = [s.id for s in await runtime.list_pod_sandbox()]
    containers = [c.id for c in await runtime.list_containers()]
    out: dict = {"sandboxes": sandboxes, "containers": containers, "errors": []}
    if not remove:
        return out

    async def attempt(what: str, fn, *args) -> None:
        from bootstrap.agents.kubelet.cri import not_found

        try:
            await fn(*args)
        except Exception as exc:  # reported, and the others still go
            if not not_found(exc):
                out["errors"].append(f"{what} {args[0]}: {exc}")

    for cid in containers:
        await attempt("stop container", runtime.stop_container, cid, grace)
        await attempt("remove container", runtime.remove_container, cid)
    for sid in sandboxes:
        await attempt("stop sandbox", runtime.stop_pod_sandbox, sid)
        await attempt("remove sandbox", runtime.remove_pod_sandbox, sid)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bootstrap.agents.kubelet.cleanup",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime-endpoint", default=DEFAULT_ENDPOINT)
    p.add_argument("--remove", action="store_true", help="remove what is found (else list)")
    args = p.parse_args(argv)
    from bootstrap.agents.kubelet.cri import RuntimeClient

    async def go() -> dict:
        runtime = RuntimeClient(args.runtime_endpoint, timeout=60)
        try:
            return await cleanup(runtime, args.remove)
        finally:
            await runtime.close()

    try:
        result = asyncio.run(go())
    except Exception as exc:  # one line for the caller, who reports it
        print(f"cri cleanup: {args.runtime_endpoint}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
