"""tokencleaner: bootstrap-token Secrets past their expiration are deleted (upstream's
TokenCleaner); one not yet expired is looked at again when it expires."""

from __future__ import annotations

import time

from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

from .bootstraptokens import NAMESPACE, expiration, is_token_secret

SECRETS = by_gvr("", "v1", "secrets")


class TokenCleaner(Controller):
    name = "tokencleaner"

    def __init__(self, client, factory, recorder=None, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.secrets = factory.informer(SECRETS)
        self.secrets.add_handler(on_add=self._changed, on_update=lambda o, n: self._changed(n))

    def _changed(self, secret: dict) -> None:
        if is_token_secret(secret):
            self.enqueue(secret)

    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        secret = self.secrets.get(name, ns)
        if secret is None or ns != NAMESPACE or not is_token_secret(secret):
            return None
        left, expired = expiration(secret, self.clock())
        if not expired:
            return left or None
        self.log.info("deleting expired bootstrap token secret %s", key)
        try:
            await self.client.delete(SECRETS, name, ns,
                                     preconditions={"uid": secret["metadata"]["uid"]})
        except APIError as exc:
            # 404: already gone; 409: a new Secret with this name (the UID precondition).
            if exc.code not in (404, 409):
                raise
        return None
