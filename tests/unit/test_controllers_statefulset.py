"""StatefulSet controller on the FakeClient (with a test kubelet)."""

import copy

import pytest
from ctlharness import kubelet, running, template, until

from bootstrap.agents.controllers import statefulset as stc
from bootstrap.agents.controllers.statefulset import StatefulSetController
from bootstrap.api.defaults import apply_defaults

pytestmark = pytest.mark.timeout(60)
STATEFULSETS = ("apps", "v1", "statefulsets")


def sts(name="db", replicas=3, image="x", **spec):
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"replicas": replicas, "serviceName": name,
                    "selector": {"matchLabels": {"app": name}},
                    "template": template({"app": name}, image), **spec}}
    return apply_defaults(obj, ("apps", "v1", "StatefulSet"))


def live(client):
    return sorted((p for p in client.objects("pods")
                   if not p["metadata"].get("deletionTimestamp")),
                  key=lambda p: p["metadata"]["name"])


def names(client):
    return [p["metadata"]["name"] for p in live(client)]


def status(client):
    return client.objects("statefulsets")[0].get("status") or {}


async def test_ordered_ready_creates_one_at_a_time():
    async with running(StatefulSetController, sts()) as (client, ctl, rec):
        await until(lambda: names(client) == ["db-0"])
        for _ in range(3):
            await ctl.process("default/db")
        assert names(client) == ["db-0"]        # db-0 is not Running and Ready yet
        pod = live(client)[0]
        assert pod["spec"]["hostname"] == "db-0" and pod["spec"]["subdomain"] == "db"
        labels = pod["metadata"]["labels"]
        assert labels[stc.POD_NAME_LABEL] == "db-0" and labels[stc.POD_INDEX_LABEL] == "0"
        async with kubelet(client):
            await until(lambda: names(client) == ["db-0", "db-1", "db-2"])
            await until(lambda: status(client).get("readyReplicas") == 3)
        creates = [r.body["metadata"]["name"] for r in client.requests_for("create", "pods")]
        assert creates == ["db-0", "db-1", "db-2"]
        st = status(client)
        assert st["currentRevision"] == st["updateRevision"] and st["currentReplicas"] == 3


async def test_parallel_scale_down_from_highest_ordinal():
    async with running(StatefulSetController, sts(podManagementPolicy="Parallel")) as (
            client, ctl, rec):
        await until(lambda: names(client) == ["db-0", "db-1", "db-2"])
        s = copy.deepcopy(client.objects("statefulsets")[0])
        s["spec"]["replicas"] = 1
        await client.update(STATEFULSETS, s)
        await until(lambda: names(client) == ["db-0"])


async def test_rolling_update_with_partition():
    s = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}})
    async with running(StatefulSetController, s) as (client, ctl, rec), kubelet(client):
        await until(lambda: status(client).get("readyReplicas") == 3)
        old_rev = status(client)["currentRevision"]
        s = copy.deepcopy(client.objects("statefulsets")[0])
        s["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
        await client.update(STATEFULSETS, s)

        def images():
            return [p["spec"]["containers"][0]["image"] for p in live(client)]
        await until(lambda: images() == ["x", "y", "y"] and
                    status(client).get("updatedReplicas") == 2 and
                    status(client).get("readyReplicas") == 3)
        st = status(client)
        assert st["currentRevision"] == old_rev != st["updateRevision"]
        deletes = [r.name for r in client.requests_for("delete", "pods")
                   if r.body.get("gracePeriodSeconds") is None]
        assert deletes == ["db-2", "db-1"]      # highest ordinal first
        # partition 0 finishes the rollout and the update revision becomes current
        s = copy.deepcopy(client.objects("statefulsets")[0])
        s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 0
        await client.update(STATEFULSETS, s)
        await until(lambda: images() == ["y", "y", "y"] and
                    status(client).get("currentRevision") == status(client).get(
                        "updateRevision"))
        assert len(client.objects("controllerrevisions")) == 2


async def test_volume_claim_templates_are_refused_clearly():
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    async with running(StatefulSetController, s) as (client, ctl, rec):
        await until(lambda: any(c["type"] == "ReplicaFailure"
                                for c in status(client).get("conditions") or []))
        cond = status(client)["conditions"][0]
        assert cond["reason"] == stc.VCT_REASON and "volumeClaimTemplates" in cond["message"]
        assert ("StatefulSet/db", "Warning", "FailedCreate") == rec.events[0][:3]
        assert client.objects("pods") == []
