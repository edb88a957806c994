"""csrapproving: kubelet client CSRs are approved automatically when the requester
may ask for them (upstream's sarapprove):

- selfnodeclient: a node renewing its own client certificate (the requester is
  the CN of the request), allowed by ``create certificatesigningrequests/selfnodeclient``;
- nodeclient: a new node's first certificate, typically from a bootstrap token,
  allowed by ``create certificatesigningrequests/nodeclient``.

Both are checked with a SubjectAccessReview for the requester recorded by the API
server (spec.username, groups, uid, extra), and only for the
kube-apiserver-client-kubelet signer with the request shaped as a kubelet client
certificate (CN system:node:<name>, O system:nodes, client usages, no SANs).
Serving certificates are never approved here: upstream leaves them to another
approver. A recognised request whose review is denied stays pending and is
reviewed again every 30 s (RBAC may allow it later).
"""

from __future__ import annotations

import copy
import time

from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

from .certificates import (
    CSRS,
    KUBELET_CLIENT,
    CSRError,
    has_condition,
    parse_request,
    validate_kubelet_client,
)
from .util import rfc3339

SUBJECT_ACCESS_REVIEWS = by_gvr("authorization.k8s.io", "v1", "subjectaccessreviews")

RECHECK = 30.0
SELF_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."
NODE_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."


def is_node_client(csr: dict) -> bool:
    spec = csr.get("spec") or {}
    if spec.get("signerName") != KUBELET_CLIENT:
        return False
    try:
        validate_kubelet_client(parse_request(spec.get("request", "")),
                                list(spec.get("usages") or []))
    except CSRError:
        return False
    return True


def is_self_node_client(csr: dict) -> bool:
    if not is_node_client(csr):
        return False
    req = parse_request((csr.get("spec") or {}).get("request", ""))
    return (csr.get("spec") or {}).get("username") == req.common_name


# (recognise, SAR subresource, approval message), in upstream's order.
RECOGNIZERS = (
    (is_self_node_client, "selfnodeclient", SELF_MESSAGE),
    (is_node_client, "nodeclient", NODE_MESSAGE),
)


def review_for(csr: dict, subresource: str) -> dict:
    spec = csr.get("spec") or {}
    sar_spec = {"user": spec.get("username", ""), "groups": list(spec.get("groups") or []),
                "resourceAttributes": {"group": "certificates.k8s.io",
                                       "resource": "certificatesigningrequests",
                                       "subresource": subresource, "verb": "create",
                                       "version": "*"}}
    if spec.get("uid"):
        sar_spec["uid"] = spec["uid"]
    if spec.get("extra"):
        sar_spec["extra"] = spec["extra"]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": sar_spec}


class CSRApprovingController(Controller):
    name = "csrapproving"

    def __init__(self, client, factory, recorder=None, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.csrs = factory.informer(CSRS)
        self.csrs.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None or (csr.get("status") or {}).get("certificate"):
            return None
        if has_condition(csr, "Approved") or has_condition(csr, "Denied"):
            return None
        tried = []
        for recognize, subresource, message in RECOGNIZERS:
            if not recognize(csr):
                continue
            tried.append(subresource)
            review = await self.client.create(SUBJECT_ACCESS_REVIEWS,
                                              review_for(csr, subresource))
            if (review.get("status") or {}).get("allowed"):
                await self._approve(csr, message)
                return None
        if tried:
            # Upstream retries such a request with backoff: RBAC may grant it later.
            self.log.info("csr %s recognized as %s but the subject access review was not "
                          "approved", key, "/".join(tried))
            return RECHECK
        return None

    async def _approve(self, csr: dict, message: str) -> None:
        updated = copy.deepcopy(csr)
        now = rfc3339(self.clock())
        updated.setdefault("status", {}).setdefault("conditions", []).append({
            "type": "Approved", "status": "True", "reason": "AutoApproved",
            "message": message, "lastUpdateTime": now, "lastTransitionTime": now})
        try:
            await self.client.update(CSRS, updated, subresource="approval")
        except APIError as exc:
            if exc.code != 404:
                raise
        self.log.info("csr %s: %s", csr["metadata"]["name"], message)
