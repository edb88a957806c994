"""Label and annotation keys the kubelet puts on CRI sandboxes and containers.

The same keys upstream's kubelet uses (pkg/kubelet/types/labels.go,
kuberuntime/labels.go), so tools that read containerd (crictl, ctr) see the
usual names; everything the kubelet learns back from the runtime after a
restart comes from these.
"""

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_TYPE = "io.kubernetes.container.type"  # upstream 1.32 still writes this as an annotation
KUBELET_MANAGED = "io.cri-containerd.kind"  # containerd's own label: sandbox | container

# Annotations
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
