"""Every ``kubectl create <kind>`` subcommand of kubectl 1.32, plus ``run`` and
``expose``: their typed clients post protobuf bodies, which the API server decodes
from the generated table (ADR 0001). Each case checks fields that only arrive if
the body was decoded with the right field numbers and JSON names."""

from __future__ import annotations

import base64
import json

import pytest

from .test_kubectl import get_json, run

NS = "mk"


@pytest.fixture(scope="module")
def admin(cluster):
    run(cluster.admin, "create", "namespace", NS)
    run(cluster.admin, "create", "serviceaccount", "default", "-n", NS)
    return cluster.admin


def _created(admin, *args) -> dict:
    """Run ``kubectl create ...`` and return the object the server stored (-o json)."""
    args = list(args)
    at = args.index("--") if "--" in args else len(args)  # flags go before a command
    out = run(admin, "create", *args[:at], "-o", "json", *args[at:]).stdout
    return json.loads(out)


def test_cluster_scoped_kinds(admin):
    ns = _created(admin, "namespace", "team-a")
    assert ns["metadata"]["name"] == "team-a" and ns["status"]["phase"] == "Active"

    cr = _created(admin, "clusterrole", "pod-reader", "--verb=get,list,watch",
                  "--resource=pods,deployments.apps", "--resource-name=web")
    assert cr["rules"] == [
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"],
         "resourceNames": ["web"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": ["apps"],
         "resources": ["deployments"], "resourceNames": ["web"]}]
    agg = _created(admin, "clusterrole", "monitoring", "--aggregation-rule=rbac.x/agg=true")
    assert agg["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"rbac.x/agg": "true"}}]}

    crb = _created(admin, "clusterrolebinding", "readers", "--clusterrole=pod-reader",
                   "--user=alice", "--group=devs", f"--serviceaccount={NS}:default")
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "pod-reader"}
    assert {(s["kind"], s["name"], s.get("namespace")) for s in crb["subjects"]} == {
        ("User", "alice", None), ("Group", "devs", None),
        ("ServiceAccount", "default", NS)}

    pc = _created(admin, "priorityclass", "high", "--value=1000", "--global-default=false",
                  "--description=important", "--preemption-policy=Never")
    assert (pc["value"], pc["description"], pc["preemptionPolicy"]) == (
        1000, "important", "Never")
    zero = _created(admin, "priorityclass", "zero", "--value=0")
    assert zero["value"] == 0  # a required int written as zero is kept


def test_namespaced_rbac_and_config(admin):
    role = _created(admin, "role", "cm-editor", "-n", NS, "--verb=get,update",
                    "--resource=configmaps")
    assert role["rules"] == [{"verbs": ["get", "update"], "apiGroups": [""],
                              "resources": ["configmaps"]}]
    rb = _created(admin, "rolebinding", "cm-editors", "-n", NS, "--role=cm-editor",
                  "--user=bob")
    assert rb["roleRef"]["kind"] == "Role" and rb["subjects"][0]["name"] == "bob"

    cm = _created(admin, "configmap", "settings", "-n", NS, "--from-literal=mode=fast",
                  "--from-literal=empty=")
    assert cm["data"] == {"mode": "fast", "empty": ""}

    sa = _created(admin, "serviceaccount", "robot", "-n", NS)
    assert sa["metadata"]["namespace"] == NS
    token = run(admin, "create", "token", "robot", "-n", NS, "--duration=10m",
                "--audience=api").stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == ["api"] and claims["exp"] - claims["iat"] == 600
    assert claims["sub"] == f"system:serviceaccount:{NS}:robot"

    quota = _created(admin, "quota", "small", "-n", NS, "--hard=pods=5,requests.cpu=2",
                     "--scopes=NotTerminating")
    assert quota["spec"]["hard"] == {"pods": "5", "requests.cpu": "2"}
    assert quota["spec"]["scopes"] == ["NotTerminating"]


def test_secrets(admin, cluster):
    generic = _created(admin, "secret", "generic", "creds", "-n", NS,
                       "--from-literal=user=admin", "--type=Opaque")
    assert base64.b64decode(generic["data"]["user"]) == b"admin"
    assert generic["type"] == "Opaque"

    tls = _created(admin, "secret", "tls", "web-tls", "-n", NS,
                   f"--cert={cluster.pki.path('apiserver.crt')}",
                   f"--key={cluster.pki.path('apiserver.key')}")
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE")

    reg = _created(admin, "secret", "docker-registry", "pull", "-n", NS,
                   "--docker-server=registry.example", "--docker-username=u",
                   "--docker-password=p")
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(reg["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.example"]["username"] == "u"


def test_services(admin):
    cip = _created(admin, "service", "clusterip", "api", "-n", NS, "--tcp=80:8080")
    assert cip["spec"]["type"] == "ClusterIP"
    assert cip["spec"]["ports"][0]["port"] == 80
    assert cip["spec"]["ports"][0]["targetPort"] == 8080
    headless = _created(admin, "service", "clusterip", "db", "-n", NS, "--clusterip=None")
    assert headless["spec"]["clusterIP"] == "None"
    np = _created(admin, "service", "nodeport", "np", "-n", NS, "--tcp=81:8081",
                  "--node-port=30081")
    assert (np["spec"]["type"], np["spec"]["ports"][0]["nodePort"]) == ("NodePort", 30081)
    lb = _created(admin, "service", "loadbalancer", "lb", "-n", NS, "--tcp=82:8082")
    assert lb["spec"]["type"] == "LoadBalancer"
    ext = _created(admin, "service", "externalname", "ext", "-n", NS,
                   "--external-name=db.example.com")
    assert (ext["spec"]["type"], ext["spec"]["externalName"]) == (
        "ExternalName", "db.example.com")


def test_workloads(admin):
    dep = _created(admin, "deployment", "web", "-n", NS, "--image=nginx:1.25", "--replicas=0",
                   "--port=80")
    assert dep["spec"]["replicas"] == 0  # a pointer field: zero was sent on purpose
    job = _created(admin, "job", "once", "-n", NS, "--image=busybox", "--", "echo", "hi")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    cron = _created(admin, "cronjob", "nightly", "-n", NS, "--image=busybox",
                    "--schedule=0 3 * * *", "--restart=OnFailure", "--", "date")
    assert cron["spec"]["schedule"] == "0 3 * * *"
    tmpl = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert tmpl["restartPolicy"] == "OnFailure"
    assert tmpl["containers"][0]["command"] == ["date"]
    manual = _created(admin, "job", "nightly-now", "-n", NS, "--from=cronjob/nightly")
    assert manual["metadata"]["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    owner = manual["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronJob", "nightly", cron["metadata"]["uid"], True)

    pdb = _created(admin, "poddisruptionbudget", "web-pdb", "-n", NS, "--selector=app=web",
                   "--min-available=50%")
    assert pdb["spec"]["minAvailable"] == "50%"
    assert pdb["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    pdb0 = _created(admin, "pdb", "none-down", "-n", NS, "--selector=app=db",
                    "--max-unavailable=0")
    assert pdb0["spec"]["maxUnavailable"] == 0  # a pointer IntOrString set to 0

    ing = _created(admin, "ingress", "site", "-n", NS, "--class=default",
                   "--rule=foo.example/bar*=api:80,tls=web-tls",
                   "--annotation=team=web")
    assert ing["spec"]["ingressClassName"] == "default"
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "foo.example"
    path = rule["http"]["paths"][0]
    assert (path["path"], path["pathType"]) == ("/bar", "Prefix")
    assert path["backend"]["service"] == {"name": "api", "port": {"number": 80}}
    assert ing["spec"]["tls"] == [{"hosts": ["foo.example"], "secretName": "web-tls"}]
    assert ing["metadata"]["annotations"] == {"team": "web"}


def test_run_and_expose(admin):
    out = run(admin, "run", "box", "-n", NS, "--image=busybox", "--labels=app=box",
              "--env=MODE=test", "--port=8080", "--restart=Never", "--", "sleep", "3600").stdout
    assert "pod/box created" in out
    pod = get_json(admin, "pod", "box", "-n", NS)
    c = pod["spec"]["containers"][0]
    assert c["args"] == ["sleep", "3600"] and c["env"] == [{"name": "MODE", "value": "test"}]
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert pod["spec"]["restartPolicy"] == "Never"

    out = run(admin, "expose", "pod", "box", "-n", NS, "--port=80", "--target-port=8080",
              "--name=box-svc").stdout
    assert "service/box-svc exposed" in out
    svc = get_json(admin, "service", "box-svc", "-n", NS)
    assert svc["spec"]["selector"] == {"app": "box"}
    assert svc["spec"]["ports"][0]["targetPort"] == 8080

    run(admin, "create", "deployment", "backend", "-n", NS, "--image=nginx", "--port=80")
    out = run(admin, "expose", "deployment", "backend", "-n", NS, "--port=8000",
              "--target-port=80", "--type=NodePort").stdout
    assert "service/backend exposed" in out
    svc = get_json(admin, "service", "backend", "-n", NS)
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["selector"] == {"app": "backend"}


def test_bad_protobuf_body_is_400(admin, cluster):
    """A truncated protobuf body is a client error, not a 500."""
    import ssl
    import urllib.error
    import urllib.request

    ctx: ssl.SSLContext = cluster.ssl_context()
    body = b"k8s\x00" + b"\x0a\x0e\x0a\x02v1\x12\x08ConfigMap\x12\x40\x0a\x10"
    req = urllib.request.Request(f"{cluster.server.url}/api/v1/namespaces/{NS}/configmaps",
                                 data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert exc.value.code == 400
    status = json.loads(exc.value.read())
    assert status["reason"] == "BadRequest" and "protobuf" in status["message"]
