"""root-ca-cert-publisher: the kube-root-ca.crt ConfigMap in every namespace, holding
the --root-ca-file bundle under ca.crt (what projected service-account volumes mount)."""

from __future__ import annotations

import copy
from pathlib import Path

from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr
from bootstrap.errors import UserError

from .serviceaccount import active

NAMESPACES = by_gvr("", "v1", "namespaces")
CONFIGMAPS = by_gvr("", "v1", "configmaps")
NAME = "kube-root-ca.crt"
DATA_KEY = "ca.crt"
DESCRIPTION_KEY = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when "
               "using internal endpoints such as the internal service IP or "
               "kubernetes.default.svc. No other usage is guaranteed across distributions "
               "of Kubernetes clusters.")


def read_bundle(path: str) -> str:
    """The PEM bundle of --root-ca-file (at least one certificate in it)."""
    try:
        pem = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {getattr(exc, 'strerror', exc)}",
                        where="--root-ca-file") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise UserError(f"{path} holds no PEM certificate", where="--root-ca-file",
                        hint="e.g. /etc/kubernetes/pki/ca.crt")
    return pem


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def __init__(self, client, factory, recorder=None, root_ca: str = ""):
        super().__init__(client, factory, recorder)
        self.root_ca = root_ca
        self.namespaces = factory.informer(NAMESPACES)
        # The shared ConfigMap informer (one watch per resource per process).
        self.configmaps = factory.informer(CONFIGMAPS)
        self.namespaces.add_handler(on_add=self.enqueue,
                                    on_update=lambda o, n: self.enqueue(n))
        self.configmaps.add_handler(on_update=lambda o, n: self._changed(n),
                                    on_delete=self._changed)

    @classmethod
    def from_options(cls, client, factory, recorder, options):
        if not options.root_ca_file:
            return None  # upstream skips the publisher without a root CA
        return cls(client, factory, recorder, read_bundle(options.root_ca_file))

    def _changed(self, cm: dict) -> None:
        if cm["metadata"]["name"] == NAME:
            self.enqueue(cm["metadata"]["namespace"])

    async def reconcile(self, key: str) -> float | None:
        if not active(self.namespaces.get(key)):
            return None
        cm = self.configmaps.get(NAME, key)
        data = {DATA_KEY: self.root_ca}
        if cm is None:
            try:
                await self.client.create(CONFIGMAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": NAME, "namespace": key,
                                 "annotations": {DESCRIPTION_KEY: DESCRIPTION}},
                    "data": data}, key)
            except APIError as exc:
                if exc.code not in (409, 403):
                    raise
            return None
        annotations = cm["metadata"].get("annotations") or {}
        if cm.get("data") == data and annotations.get(DESCRIPTION_KEY) == DESCRIPTION:
            return None
        updated = copy.deepcopy(cm)
        updated["data"] = data
        updated.pop("binaryData", None)
        updated["metadata"].setdefault("annotations", {})[DESCRIPTION_KEY] = DESCRIPTION
        await self.client.update(CONFIGMAPS, updated)
        return None
