"""csrcleaner: CertificateSigningRequests do not pile up (upstream's CSRCleanerController).
Once an hour every CSR is checked and deleted when it is

- approved and issued, and the approval is older than 1 h (or the certificate expired);
- denied or failed for more than 1 h;
- still pending 24 h after it was created.
"""

from __future__ import annotations

import base64
import time

from cryptography import x509

from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError

from .certificates import CSRS
from .util import find_condition, timestamp

PERIOD = 3600.0
KEY = "csrcleaner"
ISSUED_FOR, DENIED_FOR, FAILED_FOR, PENDING_FOR = 3600.0, 3600.0, 3600.0, 24 * 3600.0


def _since(csr: dict, type_: str) -> float | None:
    c = find_condition((csr.get("status") or {}).get("conditions"), type_)
    if c is None or c.get("status", "True") != "True":
        return None
    return timestamp(c.get("lastUpdateTime") or c.get("lastTransitionTime"),
                     timestamp(csr["metadata"].get("creationTimestamp")))


def _cert_expired(csr: dict, now: float) -> bool:
    pem = (csr.get("status") or {}).get("certificate")
    if not pem:
        return False
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(pem))
    except ValueError:
        return False
    return cert.not_valid_after_utc.timestamp() <= now


def expired(csr: dict, now: float) -> str | None:
    """Why ``csr`` should go now, or None."""
    issued = bool((csr.get("status") or {}).get("certificate"))
    approved = _since(csr, "Approved")
    if issued and (_cert_expired(csr, now) or (approved is not None and
                                               now - approved > ISSUED_FOR)):
        return "issued"
    for type_, limit in (("Denied", DENIED_FOR), ("Failed", FAILED_FOR)):
        since = _since(csr, type_)
        if since is not None and now - since > limit:
            return type_.lower()
    if not issued and approved is None and _since(csr, "Denied") is None and \
            _since(csr, "Failed") is None:
        created = timestamp(csr["metadata"].get("creationTimestamp"))
        if created is not None and now - created > PENDING_FOR:
            return "pending"
    return None


class CSRCleanerController(Controller):
    name = "csrcleaner"

    def __init__(self, client, factory, recorder=None, *, period: float = PERIOD,
                 clock=time.time):
        super().__init__(client, factory, recorder)
        self.period = period
        self.clock = clock
        self.csrs = factory.informer(CSRS)
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        now = self.clock()
        for csr in self.csrs.list():
            why = expired(csr, now)
            if why is None:
                continue
            md = csr["metadata"]
            self.log.info("deleting %s certificate signing request %s", why, md["name"])
            try:
                await self.client.delete(CSRS, md["name"], preconditions={"uid": md["uid"]})
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise
        return self.period
