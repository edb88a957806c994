"""Volumes: the atomic writer (..data swap) and the per-type payloads."""

from __future__ import annotations

import base64
import os

import pytest

from bootstrap.agents.kubelet import atomic_writer as aw
from bootstrap.agents.kubelet.translate import NodeContext, PodInputs
from bootstrap.agents.kubelet.volumes import NoMounter, VolumeError, VolumeManager


def test_atomic_writer_swaps_data_and_drops_removed_keys(tmp_path):
    target = tmp_path / "vol"
    assert aw.write(target, {"a": aw.FileProjection(b"1"), "dir/b": aw.FileProjection(b"2", 0o600)})
    first = os.readlink(target / "..data")
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert os.readlink(target / "a") == "..data/a"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600
    assert not aw.write(target, {"a": aw.FileProjection(b"1"),
                                 "dir/b": aw.FileProjection(b"2", 0o600)})
    assert aw.write(target, {"a": aw.FileProjection(b"changed")})
    assert os.readlink(target / "..data") != first
    assert (target / "a").read_text() == "changed"
    assert not (target / "dir").exists() and not (target / first).exists()
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(["..data", "a", os.readlink(target / "..data")])


@pytest.mark.parametrize("bad", ["/abs", "../up", "a/../b", "..hidden"])
def test_atomic_writer_refuses_escaping_paths(tmp_path, bad):
    with pytest.raises(aw.PayloadError):
        aw.write(tmp_path / "v", {bad: aw.FileProjection(b"x")})


def pod(volumes) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1",
                         "labels": {"app": "x"}},
            "spec": {"serviceAccountName": "sa", "volumes": volumes,
                     "containers": [{"name": "c", "image": "i",
                                     "resources": {"limits": {"memory": "32Mi"}}}]},
            "status": {"podIP": "10.244.0.4"}}


class Clock:
    t = 1000.0

    def __call__(self):
        return self.t


def manager(tmp_path, objects=None, tokens=None):
    objects = objects or {}
    tokens = tokens if tokens is not None else []

    async def fetch(kind, ns, name):
        return objects.get((kind, ns, name))

    async def request_token(ns, sa, body):
        tokens.append((ns, sa, body))
        return {"status": {"token": f"tok{len(tokens)}",
                           "expirationTimestamp": "2099-01-01T00:00:00Z"}}
    clock = Clock()
    vm = VolumeManager(tmp_path, fetch, request_token, NodeContext("n"), NoMounter(), clock)
    return vm, clock, tokens


async def test_configmap_secret_downward_emptydir_hostpath(tmp_path):
    objects = {("configMap", "ns", "cfg"): {"metadata": {"name": "cfg"},
                                           "data": {"a.conf": "A", "b": "B"},
                                           "binaryData": {"bin": base64.b64encode(b"\0").decode()}},
               ("secret", "ns", "sec"): {"metadata": {"name": "sec"},
                                         "data": {"pw": base64.b64encode(b"s3").decode()}}}
    vm, _, _ = manager(tmp_path, objects)
    host = tmp_path / "host"
    inputs = PodInputs()
    await vm.setup(pod([
        {"name": "cm", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "x/a"}]}},
        {"name": "allcm", "configMap": {"name": "cfg", "defaultMode": 0o400}},
        {"name": "s", "secret": {"secretName": "sec"}},
        {"name": "d", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c",
                                                 "resource": "limits.memory",
                                                 "divisor": "1Mi"}}]}},
        {"name": "e", "emptyDir": {}},
        {"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}]), inputs)
    base = tmp_path / "pods" / "uid-1" / "volumes"
    assert (base / "kubernetes.io~configmap" / "cm" / "x" / "a").read_text() == "A"
    allcm = base / "kubernetes.io~configmap" / "allcm"
    assert sorted(p.name for p in allcm.iterdir() if not p.name.startswith("..")) == \
        ["a.conf", "b", "bin"]
    assert (allcm / "b").stat().st_mode & 0o777 == 0o400
    assert (base / "kubernetes.io~secret" / "s" / "pw").read_bytes() == b"s3"
    d = base / "kubernetes.io~downward-api" / "d"
    assert (d / "labels").read_text() == 'app="x"' and (d / "mem").read_text() == "32"
    assert (base / "kubernetes.io~empty-dir" / "e").is_dir()
    assert host.is_dir()
    assert inputs.mounts["h"] == str(host)
    assert inputs.readonly_volumes == {"cm", "allcm", "s", "d"}
    # An update to the ConfigMap reaches the volume on the next setup.
    objects[("configMap", "ns", "cfg")]["data"]["a.conf"] = "A2"
    await vm.setup(pod([{"name": "cm", "configMap": {"name": "cfg", "items": [
        {"key": "a.conf", "path": "x/a"}]}}]), PodInputs())
    assert (base / "kubernetes.io~configmap" / "cm" / "x" / "a").read_text() == "A2"
    vm.teardown("uid-1")
    assert not (tmp_path / "pods" / "uid-1").exists()


async def test_missing_sources(tmp_path):
    vm, _, _ = manager(tmp_path)
    with pytest.raises(VolumeError, match='configmap "nope" not found'):
        await vm.setup(pod([{"name": "cm", "configMap": {"name": "nope"}}]), PodInputs())
    await vm.setup(pod([{"name": "cm", "configMap": {"name": "nope", "optional": True}}]),
                   PodInputs())
    with pytest.raises(VolumeError, match="not a file"):
        await vm.setup(pod([{"name": "h", "hostPath": {"path": str(tmp_path), "type": "File"}}]),
                       PodInputs())
    with pytest.raises(VolumeError, match="unsupported volume type 'nfs'"):
        await vm.setup(pod([{"name": "n", "nfs": {"server": "x", "path": "/"}}]), PodInputs())


async def test_projected_token_is_bound_and_refreshed_at_80_percent(tmp_path):
    objects = {("configMap", "ns", "kube-root-ca.crt"): {"metadata": {}, "data": {"ca.crt": "CA"}}}
    vm, clock, tokens = manager(tmp_path, objects)
    vol = [{"name": "api", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600,
                                 "audience": "vault"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                              "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "fieldPath": "metadata.namespace"}}]}}]}}]

    async def issue(expires_in):
        async def request_token(ns, sa, body):
            tokens.append((ns, sa, body))
            from datetime import UTC, datetime
            exp = datetime.fromtimestamp(clock.t + expires_in, UTC)
            return {"status": {"token": f"tok{len(tokens)}",
                               "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}
        vm.request_token = request_token
    await issue(3600)
    await vm.setup(pod(vol), PodInputs())
    d = tmp_path / "pods" / "uid-1" / "volumes" / "kubernetes.io~projected" / "api"
    assert (d / "token").read_text() == "tok1" and (d / "ca.crt").read_text() == "CA"
    assert (d / "namespace").read_text() == "ns"
    ns, sa, body = tokens[0]
    assert (ns, sa) == ("ns", "sa")
    assert body["spec"]["audiences"] == ["vault"] and body["spec"]["expirationSeconds"] == 3600
    assert body["spec"]["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "p",
                                              "uid": "uid-1"}
    assert vm.next_token_refresh("uid-1") == pytest.approx(2880)
    clock.t += 2000
    await vm.setup(pod(vol), PodInputs())
    assert len(tokens) == 1  # still fresh
    clock.t += 900           # past 80% of the hour
    await vm.setup(pod(vol), PodInputs())
    assert len(tokens) == 2 and (d / "token").read_text() == "tok2"
