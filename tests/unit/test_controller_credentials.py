"""--use-service-account-credentials: service accounts, TokenRequest tokens on disk,
renewal, and clients that present only the token."""

import base64
import os
import stat

import pytest
import yaml
from cmharness import until

from bootstrap.agents.controllers import credentials
from bootstrap.agents.controllers.credentials import ServiceAccountClients
from bootstrap.api.errors import APIError
from bootstrap.api.fake import FakeClient

pytestmark = pytest.mark.timeout(20)


class TokenClient(FakeClient):
    """Answers serviceaccounts/<name>/token with numbered tokens."""

    def __init__(self, lifetime):
        super().__init__()
        self.server = "https://127.0.0.1:6443"
        self.lifetime = lifetime
        self.issued = 0

    async def create(self, resource, obj, namespace=None, *, subresource=None, name=None,
                     **kw):
        if subresource == "token":
            self._current(self._res(resource), namespace, name)  # 404 without the SA
            self.issued += 1
            return {**obj, "spec": {"expirationSeconds": self.lifetime},
                    "status": {"token": f"token-{name}-{self.issued}"}}
        return await super().create(resource, obj, namespace, subresource=subresource,
                                    name=name, **kw)

    @staticmethod
    def _res(resource):
        from bootstrap.api.client import _resource
        return _resource(resource)


def kubeconfig(tmp_path):
    path = tmp_path / "cm.conf"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {
            "server": "https://10.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(b"not a real CA").decode()}}],
        "users": [{"name": "u", "user": {"client-certificate": "cm.crt",
                                         "client-key": "cm.key"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return path


def test_cluster_part_of_the_kubeconfig_only(tmp_path):
    out = credentials._cluster_of(str(kubeconfig(tmp_path)))
    assert out == {"server": "https://10.0.0.1:6443", "insecure": False,
                   "tls_server_name": None, "ca_data": b"not a real CA"}


async def test_account_created_token_written_privately_and_renewed(tmp_path, monkeypatch):
    made = []

    class Recording:
        def __init__(self, **kw):
            made.append(kw)

        async def close(self):
            pass

    monkeypatch.setattr(credentials, "Client", Recording)
    client = TokenClient(lifetime=0.05)
    client.seed({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "node-controller", "namespace": "kube-system"}})
    accounts = ServiceAccountClients(client, str(kubeconfig(tmp_path)))
    try:
        c1 = await accounts.client("node-controller")
        assert await accounts.client("node-controller") is c1  # one client per account
        await accounts.client("certificate-controller")  # created on the way
        assert sorted(s["metadata"]["name"] for s in client.objects("serviceaccounts")) == [
            "certificate-controller", "node-controller"]
        (kw, _) = made
        # the token only: no client certificate travels with it
        assert set(kw) == {"token_file", "server", "insecure", "tls_server_name", "ca_data"}
        assert kw["server"] == "https://127.0.0.1:6443"
        path = kw["token_file"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        first = open(path).read()
        assert first.startswith("token-node-controller-")
        await until(lambda: open(path).read() != first)  # renewed before it expires
        # a deleted account is made again at the next renewal
        await client.delete(("", "v1", "serviceaccounts"), "node-controller", "kube-system")
        await until(lambda: any(s["metadata"]["name"] == "node-controller"
                                for s in client.objects("serviceaccounts")))
    finally:
        await accounts.close()
    assert not os.path.exists(os.path.dirname(path))


async def test_token_request_failure_surfaces(tmp_path):
    client = TokenClient(lifetime=3600)
    client.fail("create", "serviceaccounts", APIError(403, "Forbidden", "no"))
    accounts = ServiceAccountClients(client, str(kubeconfig(tmp_path)))
    try:
        with pytest.raises(APIError):
            await accounts.client("node-controller")
    finally:
        await accounts.close()
