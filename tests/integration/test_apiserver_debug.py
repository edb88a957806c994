"""/debug/pprof/ behind --profiling and non-resource authorization, and the audit
record of impersonated requests, on a real API server + etcd with the real kubectl."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from .cluster import APIServer, eventually, running_cluster


def kubectl(kubeconfig, *args, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, timeout=90)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    with running_cluster([f"--audit-log-path={audit}"]) as c:
        c.audit_path = audit
        yield c


def test_index_and_goroutine_for_admin(cluster):
    index = kubectl(cluster.admin, "get", "--raw", "/debug/pprof/").stdout
    for name in ("profile", "goroutine", "heap", "cmdline"):
        assert f"{name}:" in index
    stacks = kubectl(cluster.admin, "get", "--raw", "/debug/pprof/goroutine").stdout
    assert "asyncio tasks:" in stacks and "threads:" in stacks
    # The handler answering is itself one of the tasks listed.
    assert "debug.py" in stacks


def test_cpu_profile_shows_our_request_path(cluster):
    ctx = cluster.ssl_context()
    prof = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={cluster.admin}", "get",
                             "--raw", "/debug/pprof/profile?seconds=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Keep the server busy until the profile is back, so the window holds requests.
        while prof.poll() is None:
            with urllib.request.urlopen(cluster.server.url + "/api/v1/namespaces",
                                        context=ctx, timeout=30) as r:
                r.read()
        out, err = prof.communicate(timeout=60)
    finally:
        if prof.poll() is None:
            prof.kill()
            prof.wait()
    assert prof.returncode == 0, err
    assert "sorted by cumulative time" in out
    assert "bootstrap/agents/apiserver/app.py" in out and "(entry)" in out


def test_heap_starts_tracemalloc_lazily(cluster):
    first = kubectl(cluster.admin, "get", "--raw", "/debug/pprof/heap").stdout
    assert "has been started by this request" in first
    second = kubectl(cluster.admin, "get", "--raw", "/debug/pprof/heap?gc=1").stdout
    assert "has been started" not in second and "top 50 allocation sites" in second


def test_profile_rejects_too_long_durations(cluster):
    refused = kubectl(cluster.admin, "get", "--raw", "/debug/pprof/profile?seconds=61",
                      check=False)
    assert refused.returncode != 0 and "exceeds the maximum of 60s" in refused.stderr


def test_pprof_needs_a_non_resource_rule(cluster):
    eve = cluster.kubeconfig("eve")
    refused = kubectl(eve, "get", "--raw", "/debug/pprof/", check=False)
    assert refused.returncode != 0
    assert ('Error from server (Forbidden): forbidden: User "eve" cannot get path '
            '"/debug/pprof/"') in refused.stderr
    kubectl(cluster.admin, "create", "clusterrole", "pprof-reader", "--verb=get",
            "--non-resource-url=/debug/pprof/*")
    kubectl(cluster.admin, "create", "clusterrolebinding", "eve-pprof",
            "--clusterrole=pprof-reader", "--user=eve")
    allowed = eventually(lambda: kubectl(eve, "get", "--raw", "/debug/pprof/goroutine",
                                         check=False).returncode == 0, timeout=30)
    assert allowed
    # The rule covers /debug/pprof/* only, not the rest of the non-resource paths.
    assert kubectl(eve, "get", "--raw", "/metrics", check=False).returncode != 0


def test_profiling_false_is_404(cluster):
    server = APIServer(cluster.base, cluster.pki, cluster.etcd,
                       [*cluster.extra, "--profiling=false"])
    cluster.servers.append(server)  # stopped with the cluster, even if start fails
    server.start()
    admin = cluster.kubeconfig("kubernetes-admin", ("system:masters",), server=server)
    for path in ("/debug/pprof/", "/debug/pprof/profile?seconds=1"):
        gone = kubectl(admin, "get", "--raw", path, check=False)
        assert gone.returncode != 0
        assert "Error from server (NotFound)" in gone.stderr
    # The same request on the server with the default keeps working.
    kubectl(cluster.admin, "get", "--raw", "/debug/pprof/")


def test_audit_names_impersonator_and_impersonated(cluster):
    kubectl(cluster.admin, "--as=bob", "--as-group=system:masters", "get", "namespaces",
            "-o", "name")
    events = [json.loads(line) for line in cluster.audit_path.read_text().splitlines()]
    impersonated = [e for e in events if e.get("impersonatedUser", {}).get("username") == "bob"
                    and e.get("objectRef", {}).get("resource") == "namespaces"]
    assert impersonated, "no audit event for the impersonated request"
    ev = impersonated[-1]
    assert ev["user"]["username"] == "kubernetes-admin"
    assert "system:masters" in ev["user"]["groups"]
    assert "system:masters" in ev["impersonatedUser"]["groups"]
    assert ev["responseStatus"]["code"] == 200
    # A plain request has no impersonatedUser.
    plain = [e for e in events if e["user"]["username"] == "kubernetes-admin"
             and "impersonatedUser" not in e]
    assert plain
