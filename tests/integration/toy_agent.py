"""A minimal agent on the shared machinery, run as a process by
test_controller_machinery: while leading it creates ConfigMap ``main-<pid>`` in
namespace ``agents`` and runs a controller stamping data.seen on ConfigMaps there."""

from __future__ import annotations

import copy
import os
import sys

from bootstrap.api.agent import agent_parser, cli
from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.resources import by_gvr

CONFIGMAPS = by_gvr("", "v1", "configmaps")
NAMESPACE = "agents"


class Stamp(Controller):
    name = "toy"

    def __init__(self, client, factory, recorder):
        super().__init__(client, factory, recorder)
        self.cms = factory.informer(CONFIGMAPS, NAMESPACE)
        self.cms.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n))

    async def reconcile(self, key):
        ns, name = split_key(key)
        cm = self.cms.get(name, ns)
        if cm is None or name.startswith("main-") or (cm.get("data") or {}).get("seen"):
            return None
        cm = copy.deepcopy(cm)
        cm.setdefault("data", {})["seen"] = str(os.getpid())
        await self.client.update(CONFIGMAPS, cm)
        return None


async def main(client, factory, recorder):
    await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": f"main-{os.getpid()}", "namespace": NAMESPACE}})
    await Stamp(client, factory, recorder).run()


if __name__ == "__main__":
    parser = agent_parser("toy-agent", "test agent", secure_port=10257)
    sys.exit(cli(parser, "kube-controller-manager", main))
