"""OCI images built by the toolkit, and the registry they are pushed to.

``build(busybox_spec(), dir)`` / ``build(pause_spec(), dir)`` write plain OCI
image archives (``oci.write_archive``); ``push(archive, ref, ca)`` copies one
into a registry with skopeo; ``registry_cert`` issues the registry's serving
certificate from the cluster CA. A leaf: it uses only config, pki and errors.
"""

from bootstrap.images.busybox import (
    BUSYBOX_REF,
    PAUSE_REF,
    archive_name,
    build,
    busybox_spec,
    pause_spec,
)
from bootstrap.images.oci import Entry, ImageSpec, archive_refs, read_index, write_archive

__all__ = [
    "BUSYBOX_REF", "PAUSE_REF", "Entry", "ImageSpec", "archive_name", "archive_refs", "build",
    "busybox_spec", "pause_spec", "read_index", "write_archive",
]
