"""bootstrap: stand up and run a Kubernetes-style cluster on your own hosts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bootstrap")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
