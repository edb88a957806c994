"""bootstrap: stand up and run a Kubernetes-style cluster on your own hosts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bootstrap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"

# The Kubernetes API surface the agents serve and are tested against. Clients
# (kubectl's skew warning, the official client) compare its major.minor; our
# own release follows "-bootstrap." so every agent reports the install it runs
# from, and the upgrade skew policy (bootstrap.flows.versions) reads it back.
KUBE_API_VERSION = "1.32.0"


def component_version(own: str | None = None) -> str:
    """What every agent reports as its version (kubeletVersion, /version's gitVersion,
    ``--version``): e.g. v1.32.0-bootstrap.0.1.0 for bootstrap 0.1.0."""
    return f"v{KUBE_API_VERSION}-bootstrap.{own or __version__}"
