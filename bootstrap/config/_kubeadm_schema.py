"""kubeadm's configuration kinds as data: which fields exist in which version,
and which of them bootstrap implements.

A leaf is ``IMPL`` (read and used), ``NOT`` (a real kubeadm field bootstrap does
not implement: a warning names it) or ``(V3, ...)``/``(V4, ...)`` for a field
that exists only in that version. Sub-mappings are dicts.
"""

from __future__ import annotations

V1BETA3 = "kubeadm.k8s.io/v1beta3"
V1BETA4 = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"

IMPL, NOT = "implemented", "not-implemented"


def v3(leaf):  # noqa: ANN001, ANN201 - tiny table helpers
    return ("v1beta3", leaf)


def v4(leaf):  # noqa: ANN001, ANN201
    return ("v1beta4", leaf)


_EXTRA = {"extraArgs": IMPL, "extraVolumes": NOT, "extraEnvs": v4(NOT)}

CLUSTER = {
    "clusterName": IMPL, "kubernetesVersion": IMPL, "controlPlaneEndpoint": IMPL,
    "networking": {"podSubnet": IMPL, "serviceSubnet": IMPL, "dnsDomain": IMPL},
    "etcd": {
        "local": {"dataDir": IMPL, "extraArgs": IMPL, "extraEnvs": v4(NOT),
                  "imageRepository": NOT, "imageTag": NOT, "serverCertSANs": NOT,
                  "peerCertSANs": NOT},
        "external": {"endpoints": IMPL, "caFile": IMPL, "certFile": IMPL, "keyFile": IMPL},
    },
    "apiServer": {"certSANs": IMPL, **_EXTRA, "timeoutForControlPlane": v3(NOT)},
    "controllerManager": dict(_EXTRA, extraArgs=IMPL),
    "scheduler": dict(_EXTRA, extraArgs=NOT),
    "dns": {"imageRepository": NOT, "imageTag": NOT, "disabled": v4(NOT)},
    "proxy": v4({"disabled": NOT}),
    "certificatesDir": IMPL, "imageRepository": NOT, "featureGates": NOT,
    "encryptionAlgorithm": v4(IMPL), "certificateValidityPeriod": v4(IMPL),
    "caCertificateValidityPeriod": v4(IMPL),
}
_NODE_REGISTRATION = {"name": IMPL, "criSocket": NOT, "taints": NOT, "kubeletExtraArgs": NOT,
                      "ignorePreflightErrors": NOT, "imagePullPolicy": NOT,
                      "imagePullSerial": v4(NOT)}
_TIMEOUTS = v4({k: NOT for k in ("controlPlaneComponentHealthCheck", "kubeletHealthCheck",
                                 "kubernetesAPICall", "etcdAPICall", "tlsBootstrap",
                                 "discovery", "upgradeManifests")})
INIT = {
    "bootstrapTokens": IMPL, "nodeRegistration": _NODE_REGISTRATION,
    "localAPIEndpoint": {"advertiseAddress": IMPL, "bindPort": IMPL},
    "certificateKey": NOT, "skipPhases": IMPL, "patches": {"directory": NOT},
    "timeouts": _TIMEOUTS, "dryRun": v4(NOT),
}
JOIN = {
    "nodeRegistration": _NODE_REGISTRATION, "caCertPath": NOT,
    "discovery": {
        "bootstrapToken": {"token": IMPL, "apiServerEndpoint": IMPL, "caCertHashes": IMPL,
                           "unsafeSkipCAVerification": IMPL},
        "file": {"kubeConfigPath": IMPL},
        "tlsBootstrapToken": IMPL, "timeout": v3(NOT),
    },
    "controlPlane": {"localAPIEndpoint": {"advertiseAddress": IMPL, "bindPort": IMPL},
                     "certificateKey": NOT},
    "skipPhases": IMPL, "patches": {"directory": NOT}, "timeouts": _TIMEOUTS,
    "dryRun": v4(NOT),
}
RESET = {"certificatesDir": IMPL, "cleanupTmpDir": NOT, "criSocket": NOT, "dryRun": NOT,
         "force": IMPL, "ignorePreflightErrors": NOT, "skipPhases": IMPL,
         "unmountFlags": NOT}
_UPGRADE_COMMON = {"certificateRenewal": IMPL, "dryRun": NOT, "etcdUpgrade": IMPL,
                   "ignorePreflightErrors": NOT, "patches": {"directory": NOT},
                   "skipPhases": IMPL, "imagePullPolicy": NOT, "imagePullSerial": NOT}
UPGRADE = {
    "apply": {"kubernetesVersion": IMPL, "allowExperimentalUpgrades": NOT,
              "allowRCUpgrades": NOT, "forceUpgrade": NOT, "printConfig": NOT,
              **_UPGRADE_COMMON},
    "node": dict(_UPGRADE_COMMON),
    "plan": {"kubernetesVersion": NOT, "allowExperimentalUpgrades": NOT,
             "allowRCUpgrades": NOT, "ignorePreflightErrors": NOT, "printConfig": NOT},
    "diff": {"kubernetesVersion": NOT, "contextLines": NOT},
    "timeouts": _TIMEOUTS,
}
KUBEADM_KINDS = {
    "ClusterConfiguration": (CLUSTER, ("v1beta3", "v1beta4")),
    "InitConfiguration": (INIT, ("v1beta3", "v1beta4")),
    "JoinConfiguration": (JOIN, ("v1beta3", "v1beta4")),
    "ResetConfiguration": (RESET, ("v1beta4",)),
    "UpgradeConfiguration": (UPGRADE, ("v1beta4",)),
}

# The component config fields bootstrap's kubelet and kube-proxy agents read
# (bootstrap/agents/kubelet/config.py, bootstrap/agents/proxy/config.py); the
# toolkit may not import the agents, so the lists are kept here, as data.
KUBELET = {k: IMPL for k in (
    "clusterDNS", "clusterDomain", "staticPodPath", "cgroupDriver", "rotateCertificates",
    "serverTLSBootstrap", "maxPods", "podCIDR", "syncFrequency", "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency", "nodeLeaseDurationSeconds", "fileCheckFrequency", "address",
    "port", "readOnlyPort", "healthzPort", "healthzBindAddress", "tlsCertFile",
    "tlsPrivateKeyFile", "resolvConf", "containerRuntimeEndpoint", "podLogsDir",
    "registerNode", "evictionHard")}
KUBELET["authentication"] = {"x509": {"clientCAFile": IMPL}, "webhook": NOT, "anonymous": NOT}
KUBELET["authorization"] = {"mode": NOT, "webhook": NOT}
KUBE_PROXY = {
    "mode": IMPL, "clusterCIDR": IMPL, "hostnameOverride": IMPL, "bindAddress": IMPL,
    "healthzBindAddress": IMPL, "metricsBindAddress": IMPL, "nodePortAddresses": IMPL,
    "detectLocalMode": IMPL, "clientConnection": {"kubeconfig": IMPL},
    "iptables": {k: IMPL for k in ("masqueradeBit", "masqueradeAll", "syncPeriod",
                                   "minSyncPeriod", "localhostNodePorts")},
}
COMPONENT_KINDS = {"KubeletConfiguration": (KUBELET_API, KUBELET),
                   "KubeProxyConfiguration": (PROXY_API, KUBE_PROXY)}
