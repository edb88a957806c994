"""Protobuf field tables for the workload kinds kubectl's generators send.

``kubectl create deployment|service <type>|job`` post apps/v1 Deployment,
core/v1 Service and batch/v1 Job as protobuf. Field numbers are upstream's
(the ``protobuf:"..."`` tags in k8s.io/api core/v1, apps/v1, batch/v1); the
kinds are those understood by protobuf._decode. Fields not listed here are
skipped, as proto3 skips unknown fields: list whole sub-messages or nothing.
"""

from __future__ import annotations

# Pointer fields (Go *T) are written only when set, so their zero value is
# meaningful: "optint", "optbool", "optintorstr". Plain fields are always
# written and their zero value means unset (JSON's omitempty).

LABEL_SELECTOR = {"matchLabels": (1, "stringmap"), "matchExpressions": (2, ("repeated", {
    "key": (1, "string"), "operator": (2, "string"), "values": (3, "strings")}))}

_OBJECT_FIELD_SELECTOR = {"apiVersion": (1, "string"), "fieldPath": (2, "string")}
_RESOURCE_FIELD_SELECTOR = {"containerName": (1, "string"), "resource": (2, "string"),
                            "divisor": (3, "quantity")}
_KEY_SELECTOR = {"name": (1, "string"), "key": (2, "string"), "optional": (3, "optbool")}
_ENV_VAR = {"name": (1, "string"), "value": (2, "string"), "valueFrom": (3, {
    "fieldRef": (1, _OBJECT_FIELD_SELECTOR), "resourceFieldRef": (2, _RESOURCE_FIELD_SELECTOR),
    "configMapKeyRef": (3, _KEY_SELECTOR), "secretKeyRef": (4, _KEY_SELECTOR)})}
_ENV_FROM = {"prefix": (1, "string"),
             "configMapRef": (2, {"name": (1, "string"), "optional": (2, "optbool")}),
             "secretRef": (3, {"name": (1, "string"), "optional": (2, "optbool")})}
_CONTAINER_PORT = {"name": (1, "string"), "hostPort": (2, "int"), "containerPort": (3, "int"),
                   "protocol": (4, "string"), "hostIP": (5, "string")}
_RESOURCES = {"limits": (1, ("map", "quantity")), "requests": (2, ("map", "quantity")),
              "claims": (3, ("repeated", {"name": (1, "string"), "request": (2, "string")}))}
_VOLUME_MOUNT = {"name": (1, "string"), "readOnly": (2, "bool"), "mountPath": (3, "string"),
                 "subPath": (4, "string"), "mountPropagation": (5, "string"),
                 "subPathExpr": (6, "string")}

CONTAINER = {
    "name": (1, "string"), "image": (2, "string"), "command": (3, "strings"),
    "args": (4, "strings"), "workingDir": (5, "string"),
    "ports": (6, ("repeated", _CONTAINER_PORT)), "env": (7, ("repeated", _ENV_VAR)),
    "resources": (8, _RESOURCES), "volumeMounts": (9, ("repeated", _VOLUME_MOUNT)),
    "terminationMessagePath": (13, "string"), "imagePullPolicy": (14, "string"),
    "stdin": (16, "bool"), "stdinOnce": (17, "bool"), "tty": (18, "bool"),
    "envFrom": (19, ("repeated", _ENV_FROM)), "terminationMessagePolicy": (20, "string"),
    "restartPolicy": (24, "string"),
}

_TOLERATION = {"key": (1, "string"), "operator": (2, "string"), "value": (3, "string"),
               "effect": (4, "string"), "tolerationSeconds": (5, "optint")}

POD_SPEC = {
    "containers": (2, ("repeated", CONTAINER)), "restartPolicy": (3, "string"),
    "terminationGracePeriodSeconds": (4, "optint"), "activeDeadlineSeconds": (5, "optint"),
    "dnsPolicy": (6, "string"), "nodeSelector": (7, "stringmap"),
    "serviceAccountName": (8, "string"), "serviceAccount": (9, "string"),
    "nodeName": (10, "string"), "hostNetwork": (11, "bool"), "hostPID": (12, "bool"),
    "hostIPC": (13, "bool"), "imagePullSecrets": (15, ("repeated", {"name": (1, "string")})),
    "hostname": (16, "string"), "subdomain": (17, "string"), "schedulerName": (19, "string"),
    "initContainers": (20, ("repeated", CONTAINER)),
    "automountServiceAccountToken": (21, "optbool"),
    "tolerations": (22, ("repeated", _TOLERATION)), "priorityClassName": (24, "string"),
    "priority": (25, "optint"), "enableServiceLinks": (30, "optbool"),
}


def pod_template(object_meta: dict) -> dict:
    return {"metadata": (1, object_meta), "spec": (2, POD_SPEC)}


def deployment(object_meta: dict) -> dict:
    return {"metadata": (1, object_meta), "spec": (2, {
        "replicas": (1, "optint"), "selector": (2, LABEL_SELECTOR),
        "template": (3, pod_template(object_meta)),
        "strategy": (4, {"type": (1, "string"), "rollingUpdate": (2, {
            "maxUnavailable": (1, "optintorstr"), "maxSurge": (2, "optintorstr")})}),
        "minReadySeconds": (5, "int"), "revisionHistoryLimit": (6, "optint"),
        "paused": (7, "bool"), "progressDeadlineSeconds": (9, "optint")})}


def job(object_meta: dict) -> dict:
    return {"metadata": (1, object_meta), "spec": (2, {
        "parallelism": (1, "optint"), "completions": (2, "optint"),
        "activeDeadlineSeconds": (3, "optint"), "selector": (4, LABEL_SELECTOR),
        "manualSelector": (5, "optbool"), "template": (6, pod_template(object_meta)),
        "backoffLimit": (7, "optint"), "ttlSecondsAfterFinished": (8, "optint"),
        "completionMode": (9, "string"), "suspend": (10, "optbool"),
        "backoffLimitPerIndex": (12, "optint"), "maxFailedIndexes": (13, "optint"),
        "podReplacementPolicy": (14, "string"), "managedBy": (15, "string")})}


def service(object_meta: dict) -> dict:
    port = {"name": (1, "string"), "protocol": (2, "string"), "port": (3, "int"),
            "targetPort": (4, "intorstr"), "nodePort": (5, "int"),
            "appProtocol": (6, "string")}
    return {"metadata": (1, object_meta), "spec": (2, {
        "ports": (1, ("repeated", port)), "selector": (2, "stringmap"),
        "clusterIP": (3, "string"), "type": (4, "string"), "externalIPs": (5, "strings"),
        "sessionAffinity": (7, "string"), "loadBalancerIP": (8, "string"),
        "loadBalancerSourceRanges": (9, "strings"), "externalName": (10, "string"),
        "externalTrafficPolicy": (11, "string"), "healthCheckNodePort": (12, "int"),
        "publishNotReadyAddresses": (13, "bool"), "ipFamilyPolicy": (17, "string"),
        "clusterIPs": (18, "strings"), "ipFamilies": (19, "strings"),
        "allocateLoadBalancerNodePorts": (20, "optbool"), "loadBalancerClass": (21, "string"),
        "internalTrafficPolicy": (22, "string")})}
