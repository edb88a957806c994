"""Schema validation (fieldValidation modes), semantic checks, immutability, defaulting."""

import copy

import pytest

from bootstrap.api import defaults, schema
from bootstrap.api.errors import APIError

POD = ("", "v1", "Pod")
DEPLOY = ("apps", "v1", "Deployment")
SVC = ("", "v1", "Service")
CM = ("", "v1", "ConfigMap")
JOB = ("batch", "v1", "Job")


def deployment(**spec_overrides):
    d = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                         "ports": [{"containerPort": 80}],
                                         "resources": {"limits": {"cpu": "500m", "memory": 128974848}}}]},
            },
        },
    }
    d["spec"].update(spec_overrides)
    return d


def pod(**container):
    c = {"name": "c", "image": "busybox"}
    c.update(container)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [c]}}


def test_schema_version_pinned_and_lookup():
    assert schema.SCHEMA_VERSION.startswith("v1.32")
    assert schema.definition_name(DEPLOY) == "io.k8s.api.apps.v1.Deployment"
    assert schema.definition_name(("", "v1", "NoSuchKind")) is None
    containers = schema.field_schema(schema.field_schema(schema.root_schema(POD), "spec"), "containers")
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"


def test_valid_deployment_passes_all_modes():
    for mode in ("Strict", "Warn", "Ignore"):
        assert schema.validate(deployment(), DEPLOY, mode=mode) == []


def test_unknown_field_strict_is_400_with_path():
    d = deployment(replicass=3)
    with pytest.raises(APIError) as ei:
        schema.validate(d, DEPLOY, mode="Strict")
    e = ei.value
    assert e.code == 400 and e.reason == "BadRequest"
    assert e.message == ('Deployment in version "v1" cannot be handled as a Deployment: '
                         'strict decoding error: unknown field "spec.replicass"')


def test_unknown_field_warn_and_ignore_prune():
    d = deployment(replicass=3)
    d["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    warnings = schema.validate(d, DEPLOY, mode="Warn")
    assert warnings == ['unknown field "spec.replicass"', 'unknown field "spec.template.spec.containers[0].bogus"']
    assert "replicass" not in d["spec"]
    d2 = deployment(replicass=3)
    assert schema.validate(d2, DEPLOY, mode="Ignore") == []
    assert "replicass" not in d2["spec"]


def test_type_error_is_bad_request():
    d = deployment(replicas="three")
    with pytest.raises(APIError) as ei:
        schema.validate(d, DEPLOY, mode="Ignore")
    assert ei.value.code == 400 and "spec.replicas" in ei.value.message


def test_int_or_string_and_quantity_accept_both():
    d = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
    assert schema.validate(d, DEPLOY) == []


def test_missing_image_is_invalid_with_field_path():
    p = pod()
    del p["spec"]["containers"][0]["image"]
    with pytest.raises(APIError) as ei:
        schema.validate(p, POD)
    e = ei.value
    assert e.code == 422 and e.reason == "Invalid"
    assert e.message == 'Pod "p" is invalid: spec.containers[0].image: Required value'
    assert e.details["causes"][0]["field"] == "spec.containers[0].image"


def test_bad_names_and_labels():
    p = pod()
    p["metadata"]["name"] = "Bad_Name"
    p["metadata"]["labels"] = {"ok": "fine", "bad key": "v", "k": "-bad-"}
    with pytest.raises(APIError) as ei:
        schema.validate(p, POD)
    fields = [c["field"] for c in ei.value.details["causes"]]
    assert fields.count("metadata.labels") == 2 and "metadata.name" in fields
    assert "a lowercase RFC 1123 subdomain must consist of" in ei.value.message


def test_name_rules_per_kind():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1abc"},
           "spec": {"ports": [{"port": 80}]}}
    with pytest.raises(APIError) as ei:
        schema.validate(svc, SVC)
    assert "DNS-1035 label" in ei.value.message
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "system:controller:foo"}, "rules": []}
    assert schema.validate(role, ("rbac.authorization.k8s.io", "v1", "ClusterRole")) == []
    missing = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}
    with pytest.raises(APIError) as ei:
        schema.validate(missing, CM)
    assert ei.value.message.endswith("metadata.name: Required value: name or generateName is required")


def test_generate_name_allowed():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}
    assert schema.validate(cm, CM) == []


def test_selector_must_match_template():
    d = deployment()
    d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(APIError) as ei:
        schema.validate(d, DEPLOY)
    assert "`selector` does not match template `labels`" in ei.value.message
    d = deployment()
    del d["spec"]["selector"]
    with pytest.raises(APIError) as ei:
        schema.validate(d, DEPLOY)
    assert "spec.selector: Required value" in ei.value.message


def test_service_port_checks():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "Bogus", "ports": [{"port": 70000}, {"port": 80, "name": "a"}]}}
    with pytest.raises(APIError) as ei:
        schema.validate(svc, SVC)
    fields = {c["field"] for c in ei.value.details["causes"]}
    assert {"spec.type", "spec.ports[0].port", "spec.ports[0].name"} <= fields


def test_configmap_key_syntax():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"bad/key": "v"}}
    with pytest.raises(APIError) as ei:
        schema.validate(cm, CM)
    assert ei.value.details["causes"][0]["field"] == "data[bad/key]"


def test_immutable_fields():
    old_svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "uid": "u"},
               "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}
    new_svc = copy.deepcopy(old_svc)
    new_svc["spec"]["clusterIP"] = "10.96.0.11"
    with pytest.raises(APIError) as ei:
        schema.validate_update(new_svc, old_svc, SVC)
    assert "spec.clusterIPs[0]" in ei.value.message and "may not change once set" in ei.value.message

    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web", "tier": "x"}})
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(APIError) as ei:
        schema.validate_update(new, old, DEPLOY)
    assert "spec.selector" in ei.value.message and "field is immutable" in ei.value.message
    schema.validate_update(deployment(replicas=5), old, DEPLOY)  # spec.replicas is mutable

    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "a"}]}}}}
    job2 = copy.deepcopy(job)
    job2["spec"]["template"]["spec"]["containers"][0]["image"] = "b"
    with pytest.raises(APIError) as ei:
        schema.validate_update(job2, job, JOB)
    assert "spec.template" in ei.value.message

    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"},
          "immutable": True}
    cm2 = copy.deepcopy(cm)
    cm2["data"]["a"] = "2"
    with pytest.raises(APIError) as ei:
        schema.validate_update(cm2, cm, CM)
    assert "data: Forbidden: field is immutable when `immutable` is set" in ei.value.message
    mutable = dict(cm, immutable=False)
    schema.validate_update(dict(copy.deepcopy(mutable), data={"a": "2"}), mutable, CM)


def test_pod_spec_mostly_immutable_but_image_changes():
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:2"
    schema.validate_update(new, old, POD)
    new["spec"]["containers"][0]["command"] = ["sh"]
    with pytest.raises(APIError) as ei:
        schema.validate_update(new, old, POD)
    assert "pod updates may not change fields other than" in ei.value.message


def test_pod_defaults():
    p = defaults.apply_defaults(pod(image="nginx", ports=[{"containerPort": 80}]), POD)
    spec = p["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30 and spec["schedulerName"] == "default-scheduler"
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Always"
    assert c["terminationMessagePath"] == "/dev/termination-log" and c["terminationMessagePolicy"] == "File"
    assert c["ports"][0]["protocol"] == "TCP"
    assert p["status"]["phase"] == "Pending" and p["status"]["qosClass"] == "BestEffort"
    again = defaults.apply_defaults(copy.deepcopy(p), POD)
    assert again == p


def test_volume_without_source_defaults_to_empty_dir():
    """SetDefaults_Volume: a volume naming no source (or only null ones) is an emptyDir,
    in pods and in every workload's pod template; a named source is left alone."""
    named = [{"name": "s", "secret": {"secretName": "s"}}, {"name": "c", "configMap": {"name": "c"}},
             {"name": "h", "hostPath": {"path": "/x"}}, {"name": "d", "downwardAPI": {}},
             {"name": "pvc", "persistentVolumeClaim": {"claimName": "p"}},
             {"name": "n", "nfs": {"server": "a", "path": "/"}}, {"name": "e", "emptyDir": {"medium": "Memory"}}]
    vols = [{"name": "bare"}, {"name": "nulls", "emptyDir": None, "secret": None}] + named
    p = pod()
    p["spec"]["volumes"] = copy.deepcopy(vols)
    defaults.apply_defaults(p, POD)
    got = p["spec"]["volumes"]
    assert got[0] == {"name": "bare", "emptyDir": {}}
    assert got[1] == {"name": "nulls", "emptyDir": {}}
    assert got[2] == {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o644}}
    assert got[4] == {"name": "h", "hostPath": {"path": "/x", "type": ""}}
    assert all("emptyDir" not in v for v in got[2:-1])
    assert got[6:] == named[4:]
    assert defaults.apply_defaults(copy.deepcopy(p), POD) == p
    d = deployment()
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "bare"}]
    defaults.apply_defaults(d, DEPLOY)
    assert d["spec"]["template"]["spec"]["volumes"] == [{"name": "bare", "emptyDir": {}}]
    cj = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "a"}], "volumes": [{"name": "bare"}]}}}}}}
    defaults.apply_defaults(cj, ("batch", "v1", "CronJob"))
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"] == [
        {"name": "bare", "emptyDir": {}}]


@pytest.mark.parametrize("image,policy", [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("registry:5000/app", "Always"), ("registry:5000/app:v1", "IfNotPresent"),
    ("nginx@sha256:abc", "IfNotPresent"),
])
def test_image_pull_policy_default(image, policy):
    p = defaults.apply_defaults(pod(image=image), POD)
    assert p["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_deployment_service_job_namespace_defaults():
    d = deployment()
    del d["spec"]["replicas"]
    defaults.apply_defaults(d, DEPLOY)
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["strategy"] == {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert d["spec"]["revisionHistoryLimit"] == 10 and d["spec"]["progressDeadlineSeconds"] == 600
    assert d["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    res = d["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"] == res["limits"]

    s = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP",
                                                                       "targetPort": "dns"}]}}
    defaults.apply_defaults(s, SVC)
    assert s["spec"]["type"] == "ClusterIP" and s["spec"]["sessionAffinity"] == "None"
    assert s["spec"]["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert s["spec"]["ports"][1]["targetPort"] == "dns"
    assert s["spec"]["ipFamilyPolicy"] == "SingleStack" and s["spec"]["ipFamilies"] == ["IPv4"]

    j = {"metadata": {"name": "j", "uid": "1234"},
         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}}
    defaults.apply_defaults(j, JOB)
    assert (j["spec"]["backoffLimit"], j["spec"]["completions"], j["spec"]["parallelism"]) == (6, 1, 1)
    assert j["spec"]["completionMode"] == "NonIndexed"
    assert j["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}}
    assert j["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"

    ns = defaults.apply_defaults({"metadata": {"name": "team"}}, ("", "v1", "Namespace"))
    assert ns["spec"]["finalizers"] == ["kubernetes"] and ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team"


def test_owner_references_checked():
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "c", "ownerReferences": [
              {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "1", "controller": True},
              {"apiVersion": "v1", "kind": "Pod", "name": "q", "uid": "", "controller": True}]}}
    with pytest.raises(APIError) as ei:
        schema.validate(cm, CM)
    msg = ei.value.message
    assert "metadata.ownerReferences[1].uid: Required value" in msg
    assert "Only one reference can have Controller set to true" in msg


def test_service_update_without_cluster_ip_is_allowed():
    old = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}
    new = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 81}]}}
    schema.validate_update(new, old, SVC)


def test_type_error_reads_like_go_decoder():
    with pytest.raises(APIError) as ei:
        schema.validate(deployment(replicas="2"), DEPLOY)
    assert ei.value.message == ('Deployment in version "v1" cannot be handled as a Deployment: json: cannot '
                                "unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32")
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    with pytest.raises(APIError) as ei:
        schema.validate(d, DEPLOY)
    assert ei.value.message.endswith("Go struct field ContainerPort.spec.template.spec.containers.ports"
                                     ".containerPort of type int32")


def test_pod_template_and_downward_api_volumes_are_defaulted():
    # SetDefaults_PodTemplate runs the pod defaults on .template.spec, and
    # SetDefaults_DownwardAPIVolumeSource gives defaultMode 0644 as for secrets.
    pt = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
          "template": {"spec": {"containers": [{"name": "c", "image": "a:1"}],
                                "volumes": [{"name": "bare"}, {"name": "d", "downwardAPI": {}}]}}}
    defaults.apply_defaults(pt, ("", "v1", "PodTemplate"))
    spec = pt["template"]["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert spec["volumes"] == [{"name": "bare", "emptyDir": {}},
                               {"name": "d", "downwardAPI": {"defaultMode": 0o644}}]
    assert defaults.apply_defaults(copy.deepcopy(pt), ("", "v1", "PodTemplate")) == pt
