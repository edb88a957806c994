"""CRI translation of pod specs (pure): pod spec in, CRI messages out."""

from __future__ import annotations

import base64

import pytest
from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet import translate as T


def node(**kw) -> T.NodeContext:
    base = dict(node_name="n1", node_ip="10.0.0.5", cluster_dns=("10.96.0.10",),
                cluster_domain="cluster.local",
                host_dns=T.ResolvConf(("192.168.1.1",), ("corp.example",), ("edns0",)),
                memory_capacity=8 * 2 ** 30, milli_cpu_capacity=4000)
    base.update(kw)
    return T.NodeContext(**base)


def pod(**spec) -> dict:
    containers = spec.pop("containers", [{"name": "c", "image": "busybox:1.35"}])
    return {"metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"containers": containers, **spec}}


def test_sandbox_labels_hostname_logdir_and_cgroup():
    cfg = T.sandbox_config(pod(), node(), attempt=2)
    assert cfg.metadata.name == "web" and cfg.metadata.attempt == 2
    assert dict(cfg.labels) == {"app": "web", "io.kubernetes.pod.name": "web",
                                "io.kubernetes.pod.namespace": "prod",
                                "io.kubernetes.pod.uid": "u-1"}
    assert cfg.hostname == "web"
    assert cfg.log_directory == "/var/log/pods/prod_web_u-1"
    assert cfg.linux.cgroup_parent == "/kubepods/besteffort/podu-1"
    assert cfg.linux.security_context.namespace_options.network == cri.POD


@pytest.mark.parametrize("resources, qos, parent", [
    ({}, "BestEffort", "/kubepods/besteffort/podu-1"),
    ({"requests": {"cpu": "100m"}}, "Burstable", "/kubepods/burstable/podu-1"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed", "/kubepods/podu-1"),
])
def test_qos_class_and_cgroup_parent(resources, qos, parent):
    p = pod(containers=[{"name": "c", "image": "i", "resources": resources}])
    assert T.qos_class(p) == qos
    assert T.cgroup_parent(p, "cgroupfs") == parent


def test_systemd_cgroup_parent_is_a_slice():
    p = pod(containers=[{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}])
    assert T.cgroup_parent(p, "systemd") == "kubepods-burstable-podu_1.slice"


def test_cluster_first_dns():
    dns = T.dns_config(pod(), node())
    assert list(dns.servers) == ["10.96.0.10"]
    assert list(dns.searches) == ["prod.svc.cluster.local", "svc.cluster.local",
                                  "cluster.local", "corp.example"]
    assert list(dns.options) == ["ndots:5"]


def test_host_network_cluster_first_falls_back_to_the_host_resolver():
    p = pod(hostNetwork=True)
    dns = T.dns_config(p, node())
    assert list(dns.servers) == ["192.168.1.1"] and list(dns.options) == ["edns0"]
    cfg = T.sandbox_config(p, node())
    assert cfg.linux.security_context.namespace_options.network == cri.NODE
    assert cfg.hostname == "n1"
    with_host_net = T.dns_config(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"),
                                 node())
    assert list(with_host_net.servers) == ["10.96.0.10"]


def test_dns_none_uses_only_the_pod_config_and_options_merge():
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.b"],
                                         "options": [{"name": "ndots", "value": "2"},
                                                     {"name": "rotate"}]})
    dns = T.dns_config(p, node())
    assert list(dns.servers) == ["1.1.1.1"] and list(dns.searches) == ["a.b"]
    assert list(dns.options) == ["ndots:2", "rotate"]
    merged = T.dns_config(pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}]}), node())
    assert list(merged.options) == ["ndots:1"]


def test_empty_cluster_dns_falls_back_to_default():
    dns = T.dns_config(pod(), node(cluster_dns=()))
    assert list(dns.servers) == ["192.168.1.1"]


def test_resolv_conf_parsing():
    rc = T.ResolvConf.parse("# c\nnameserver 1.2.3.4\nsearch a b\nsearch c\noptions x y\n")
    assert rc == T.ResolvConf(("1.2.3.4",), ("c",), ("x", "y"))


def test_port_mappings_only_for_host_ports():
    p = pod(containers=[{"name": "c", "image": "i", "ports": [
        {"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP",
                                                   "hostPort": 53, "hostIP": "10.0.0.5"},
        {"containerPort": 9000}]}])
    maps = T.port_mappings(p)
    assert [(m.container_port, m.host_port, m.protocol, m.host_ip) for m in maps] == [
        (80, 8080, cri.TCP, ""), (53, 53, cri.UDP, "10.0.0.5")]


def _inputs(**kw) -> T.PodInputs:
    return T.PodInputs(**kw)


def test_env_sources_and_expansion():
    c = {"name": "c", "image": "i",
         "env": [{"name": "A", "value": "x"},
                 {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"},
                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {
                     "fieldPath": "metadata.labels['app']"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                     "resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                                     "divisor": "1m"}}},
                 {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                 {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}}],
         "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cfg"}}],
         "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
         "command": ["echo", "$(A)"], "args": ["$(POD)", "$(UNSET)"]}
    p = pod(containers=[c])
    inputs = _inputs(configmaps={"cfg": {"metadata": {"name": "cfg"}, "data": {"k": "v"}}},
                     secrets={"sec": {"metadata": {"name": "sec"},
                                      "data": {"pw": base64.b64encode(b"hunter2").decode()}}},
                     service_env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, pod_ip="10.244.0.7")
    env = dict(T.container_env(p, c, node(), inputs))
    assert env["B"] == "x-$(MISSING)-$(A)"
    assert env["POD"] == "web" and env["IP"] == "10.244.0.7" and env["APP"] == "web"
    assert env["MEM"] == "64" and env["CPU"] == "250"
    assert env["CM"] == "v" and env["S"] == "hunter2" and env["P_k"] == "v"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    cfg = T.container_config(p, c, 0, node(), inputs)
    assert list(cfg.command) == ["echo", "x"] and list(cfg.args) == ["web", "$(UNSET)"]


def test_missing_config_key_is_a_config_error_unless_optional():
    c = {"name": "c", "image": "i", "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(T.ConfigError, match='configmap "nope" not found'):
        T.container_env(pod(containers=[c]), c, node(), _inputs(configmaps={"nope": None}))
    c["env"][0]["valueFrom"]["configMapKeyRef"]["optional"] = True
    assert "X" not in dict(T.container_env(pod(containers=[c]), c, node(), _inputs()))
    c2 = {"name": "c", "image": "i", "env": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "missing"}}}]}
    with pytest.raises(T.ConfigError, match="couldn't find key missing in Secret prod/s"):
        T.container_env(pod(containers=[c2]), c2, node(), _inputs(
            secrets={"s": {"metadata": {"name": "s", "namespace": "prod"}, "data": {}}}))


def test_service_links_env():
    svcs = [{"metadata": {"name": "redis-main", "namespace": "prod"},
             "spec": {"clusterIP": "10.96.3.4", "ports": [{"name": "db", "port": 6379,
                                                           "protocol": "TCP"}]}},
            {"metadata": {"name": "kubernetes", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}},
            {"metadata": {"name": "other", "namespace": "elsewhere"},
             "spec": {"clusterIP": "10.96.9.9", "ports": [{"port": 1}]}},
            {"metadata": {"name": "headless", "namespace": "prod"},
             "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}]
    env = T.service_env(svcs, "prod")
    assert env["REDIS_MAIN_SERVICE_HOST"] == "10.96.3.4"
    assert env["REDIS_MAIN_SERVICE_PORT_DB"] == "6379"
    assert env["REDIS_MAIN_PORT"] == "tcp://10.96.3.4:6379"
    assert env["REDIS_MAIN_PORT_6379_TCP_ADDR"] == "10.96.3.4"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(k.startswith(("OTHER_", "HEADLESS_")) for k in env)


def test_resources_and_oom_score():
    c = {"name": "c", "image": "i", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                                                   "limits": {"cpu": "500m", "memory": "2Gi"}}}
    p = pod(containers=[c])
    r = T.linux_resources(p, c, node())
    assert r.cpu_shares == 256 and r.cpu_period == 100000 and r.cpu_quota == 50000
    assert r.memory_limit_in_bytes == 2 * 2 ** 30
    assert r.oom_score_adj == 1000 - 1000 * 2 ** 30 // (8 * 2 ** 30)
    best = {"name": "c", "image": "i"}
    assert T.linux_resources(pod(containers=[best]), best, node()).cpu_shares == 2
    assert T.linux_resources(pod(containers=[best]), best, node()).oom_score_adj == 1000


def test_security_context_and_mounts_and_log_path():
    c = {"name": "c", "image": "i",
         "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": True,
                             "privileged": False, "allowPrivilegeEscalation": False,
                             "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
         "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "x"},
                          {"name": "cfg", "mountPath": "/etc/cfg"}]}
    p = pod(containers=[c], securityContext={"runAsGroup": 3000, "fsGroup": 2000})
    inputs = _inputs(mounts={"data": "/var/lib/kubelet/pods/u-1/volumes/d",
                             "cfg": "/var/lib/kubelet/pods/u-1/volumes/c"},
                     readonly_volumes=frozenset({"cfg"}), etc_hosts="/var/lib/kubelet/h")
    cfg = T.container_config(p, c, 3, node(), inputs)
    sec = cfg.linux.security_context
    assert sec.run_as_user.value == 1000 and sec.run_as_group.value == 3000
    assert sec.readonly_rootfs and sec.no_new_privs and list(sec.supplemental_groups) == [2000]
    assert list(sec.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sec.capabilities.drop_capabilities) == ["ALL"]
    mounts = {m.container_path: m for m in cfg.mounts}
    assert mounts["/data"].host_path.endswith("/volumes/d/x") and not mounts["/data"].readonly
    assert mounts["/etc/cfg"].readonly
    assert mounts["/etc/hosts"].host_path == "/var/lib/kubelet/h"
    assert cfg.log_path == "c/3.log" and cfg.metadata.attempt == 3
    assert cfg.labels["io.kubernetes.container.name"] == "c"
    assert cfg.annotations["io.kubernetes.container.restartCount"] == "3"


def test_unknown_volume_mount_is_a_config_error():
    c = {"name": "c", "image": "i", "volumeMounts": [{"name": "ghost", "mountPath": "/g"}]}
    with pytest.raises(T.ConfigError, match="cannot find volume 'ghost'"):
        T.container_config(pod(containers=[c]), c, 0, node(), _inputs())


def test_container_hash_changes_with_the_spec():
    a = {"name": "c", "image": "busybox:1.35"}
    assert T.container_hash(a) == T.container_hash(dict(a))
    assert T.container_hash(a) != T.container_hash({**a, "image": "busybox:1.36"})


def test_etc_hosts():
    text = T.etc_hosts(pod(hostname="h", subdomain="s",
                           hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x", "y"]}]),
                       node(), ("10.244.0.9",))
    assert "10.244.0.9\th.s.prod.svc.cluster.local\th" in text
    assert "1.2.3.4\tx\ty" in text and text.startswith("# Kubernetes-managed hosts file.")
