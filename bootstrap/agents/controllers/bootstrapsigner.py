"""bootstrapsigner: kube-public/cluster-info carries ``jws-kubeconfig-<token id>``, a
detached JWS of its ``kubeconfig`` for every bootstrap token allowed to sign
(upstream's Signer), so a joining node can trust the CA it downloads with
nothing but its token. Signatures of tokens that are gone are removed."""

from __future__ import annotations

import copy
import time

from bootstrap.api.controller import Controller
from bootstrap.api.resources import by_gvr
from bootstrap.pki.tokens import detached_jws

from .bootstraptokens import expiration, is_token_secret, signing_token

CONFIGMAPS = by_gvr("", "v1", "configmaps")
SECRETS = by_gvr("", "v1", "secrets")
NAMESPACE, NAME = "kube-public", "cluster-info"
KUBECONFIG_KEY = "kubeconfig"
SIGNATURE_PREFIX = "jws-kubeconfig-"
KEY = f"{NAMESPACE}/{NAME}"


def signed(cm: dict, tokens: dict[str, str]) -> dict | None:
    """The ConfigMap with exactly one valid signature per token, or None when it
    already is (or has no kubeconfig to sign)."""
    content = (cm.get("data") or {}).get(KUBECONFIG_KEY)
    if content is None:
        return None
    data = {k: v for k, v in cm["data"].items() if not k.startswith(SIGNATURE_PREFIX)}
    for token_id, secret in sorted(tokens.items()):
        data[SIGNATURE_PREFIX + token_id] = detached_jws(content, token_id, secret)
    if data == cm["data"]:
        return None
    out = copy.deepcopy(cm)
    out["data"] = data
    return out


class BootstrapSigner(Controller):
    name = "bootstrapsigner"

    def __init__(self, client, factory, recorder=None, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.configmaps = factory.informer(CONFIGMAPS)
        self.secrets = factory.informer(SECRETS)
        self.configmaps.add_handler(on_add=self._cm, on_update=lambda o, n: self._cm(n))
        self.secrets.add_handler(on_add=self._secret, on_update=lambda o, n: self._secret(n),
                                 on_delete=self._secret)

    def _cm(self, cm: dict) -> None:
        md = cm["metadata"]
        if (md.get("namespace"), md["name"]) == (NAMESPACE, NAME):
            self.enqueue(KEY)

    def _secret(self, secret: dict) -> None:
        if is_token_secret(secret):
            self.enqueue(KEY)

    def tokens(self) -> tuple[dict[str, str], float | None]:
        """Signing tokens by id, and the seconds until the first of them expires."""
        now = self.clock()
        out: dict[str, str] = {}
        first: float | None = None
        for secret in self.secrets.list("kube-system"):
            found = signing_token(secret, now)
            if found:
                out[found[0]] = found[1]
                left, _ = expiration(secret, now)
                if left and (first is None or left < first):
                    first = left
        return out, first

    async def reconcile(self, key: str) -> float | None:
        cm = self.configmaps.get(NAME, NAMESPACE)
        if cm is None:
            return None
        tokens, expires = self.tokens()
        new = signed(cm, tokens)
        if new is not None:
            await self.client.update(CONFIGMAPS, new)  # resourceVersion from the cache
        # An expiring token's signature must go even if the token cleaner is off.
        return expires
