"""A kube-proxy restart (an upgrade switches its unit) keeps the Service rules in place:
the stopping proxy leaves its iptables rules, the starting one replaces them only after
its caches synced, and traffic to a ClusterIP flows the whole time. Real iptables in a
throwaway network namespace, as test_proxy_netns. Needs root."""

from __future__ import annotations

import json
import os
import re
import threading

import pytest

from bootstrap.agents.proxy.config import ProxyConfig

from .cluster import eventually, free_port, running_cluster
from .test_proxy_netns import (  # noqa: F401  (netns: the fixture, used by name)
    EP_IP,
    RunningProxy,
    apply,
    curl,
    eslice,
    inns,
    kubectl,
    netns,
    service,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("netns"),
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]


def _rules() -> list[str]:
    # Rules without packet counters; chain declarations say nothing about content.
    out = inns("iptables-save", "-t", "nat").stdout
    return sorted(re.sub(r"\[\d+:\d+\]", "", line) for line in out.splitlines()
                  if "KUBE" in line and not line.startswith("#"))


def test_rules_survive_a_restart_and_traffic_never_stops():
    with running_cluster() as cluster:
        kc = cluster.kubeconfig("system:kube-proxy")

        def cfg() -> ProxyConfig:
            return ProxyConfig(kubeconfig=str(kc), hostname_override="node-a",
                               cluster_cidr="10.244.0.0/16",
                               healthz_bind_address=f"127.0.0.1:{free_port()}",
                               metrics_bind_address=f"127.0.0.1:{free_port()}",
                               min_sync_period=0.1)

        apply(cluster.admin, service("web", [{"name": "http", "port": 80, "targetPort": 8080}]))
        apply(cluster.admin, eslice("web-1", "web", [EP_IP]))
        ip = json.loads(kubectl(cluster.admin, "get", "svc", "web", "-o", "json"))["spec"][
            "clusterIP"]
        first = RunningProxy(cluster, cfg())
        with first:
            assert eventually(lambda: curl(f"http://{ip}/").stdout == "200", 60)
            before = _rules()
        results: list[str] = []
        done = threading.Event()

        def traffic() -> None:
            while not done.is_set():
                results.append(curl(f"http://{ip}/").stdout)

        # The first proxy has stopped: its rules are still there and serve.
        assert _rules() == before
        client = threading.Thread(target=traffic)
        client.start()
        try:
            assert curl(f"http://{ip}/").stdout == "200"
            second = RunningProxy(cluster, cfg())
            with second:
                # Its first full sync rewrites the same rules (an atomic restore).
                assert eventually(lambda: second.server is not None and
                                  second.server.proxier.services_synced, 60)
                assert eventually(lambda: _rules() == before and len(results) > 20, 60)
        finally:
            done.set()
            client.join(30)
        assert results and set(results) == {"200"}, sorted(set(results))
