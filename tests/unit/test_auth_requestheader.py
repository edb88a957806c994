"""The request-header authenticator and its place in Authenticator's order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from multidict import CIMultiDict

from bootstrap.agents.apiserver.auth.authn import Authenticator
from bootstrap.agents.apiserver.auth.requestheader import (
    NotAllowed,
    RequestHeaderAuthenticator,
    unescape_extra_key,
)
from bootstrap.api import errors
from bootstrap.pki.certs import (
    CLIENT_AUTH,
    SERVER_AUTH,
    CertSpec,
    cert_to_pem,
    create_ca,
    sign_leaf,
)
from bootstrap.pki.keys import generate_key


def _ca(tmp_path, name):
    key = generate_key("ECDSA-P256")
    cert = create_ca(CertSpec(name, is_ca=True), key, timedelta(days=1))
    path = tmp_path / f"{name}.crt"
    path.write_bytes(cert_to_pem(cert))
    return cert, key, path


def _der(ca, cn, usages=(CLIENT_AUTH,), validity=timedelta(hours=1)):
    cert = sign_leaf(CertSpec(cn, ("system:masters",), usages),
                     generate_key("ECDSA-P256").public_key(), ca[0], ca[1], validity)
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def cas(tmp_path):
    return _ca(tmp_path, "front-proxy-ca"), _ca(tmp_path, "kubernetes")


def _rh(fp, allowed=("front-proxy-client",)):
    return RequestHeaderAuthenticator(fp[2], allowed, ("X-Remote-User", "X-Other-User"),
                                      ("X-Remote-Uid",), ("X-Remote-Group",),
                                      ("X-Remote-Extra-",))


def test_proxy_checks(cas):
    fp, client = cas
    rh = _rh(fp)
    assert rh.is_proxy(_der(fp, "front-proxy-client"))
    assert not rh.is_proxy(_der(client, "front-proxy-client"))
    with pytest.raises(NotAllowed, match="cn=other is not in the allowed list"):
        rh.is_proxy(_der(fp, "other"))
    with pytest.raises(NotAllowed, match="key usage"):
        rh.is_proxy(_der(fp, "front-proxy-client", usages=(SERVER_AUTH,)))
    with pytest.raises(NotAllowed, match="expired"):
        rh.is_proxy(_der(fp, "front-proxy-client", validity=timedelta(seconds=-1)))
    assert _rh(fp, allowed=()).is_proxy(_der(fp, "anyone"))


def test_asserted_user_semantics(cas):
    rh = _rh(cas[0])
    h = CIMultiDict([("x-remote-user", ""), ("X-Other-User", "bob"),
                     ("X-Remote-Group", "a"), ("X-Remote-Group", ""), ("x-remote-group", "b"),
                     ("X-Remote-Extra-Acme.com%2FTeam", "x"), ("X-Remote-Extra-Bad%zz", "y"),
                     ("X-Remote-Uid", "u1"), ("Accept", "*/*")])
    got = rh.assert_user(h)
    assert (got.name, got.uid, got.groups) == ("bob", "u1", ["a", "b"])
    assert got.extra == {"acme.com/team": ["x"], "bad%zz": ["y"]}
    assert rh.assert_user(CIMultiDict([("X-Remote-Group", "a")])) is None
    assert sorted(rh.authentication_headers(h)) == sorted(
        k for k in h.keys() if k != "Accept")


def test_unescape_is_all_or_nothing():
    assert unescape_extra_key("a%2fb") == "a/b"
    assert unescape_extra_key("a%2fb%") == "a%2fb%"


def test_order_and_fallthrough(cas):
    fp, client = cas
    auth = Authenticator(client_ca_file=client[2], anonymous_allowed=True,
                         request_header=_rh(fp))
    headers = CIMultiDict({"X-Remote-User": "alice", "X-Remote-Group": "devs"})

    def run(der, hdrs, authz=None):
        return asyncio.run(auth.authenticate(der, authz, hdrs))

    user = run(_der(fp, "front-proxy-client"), headers)
    assert (user.name, user.groups) == ("alice", ["devs", "system:authenticated"])
    # An ordinary client's headers are ignored: it is its certificate's user.
    assert run(_der(client, "carol"), headers).name == "carol"
    # Proxy without a username header, or a refused proxy: a failed credential, so
    # 401 even though anonymous access is on (never the proxy's CN as a user).
    for der, hdrs in ((_der(fp, "front-proxy-client"), CIMultiDict()),
                      (_der(fp, "other"), headers),
                      (_der(fp, "kubernetes-admin"), CIMultiDict())):
        with pytest.raises(errors.APIError) as err:
            run(der, hdrs)
        assert err.value.code == 401
    assert run(None, headers).name == "system:anonymous"


def test_control_plane_unit_passes_front_proxy_flags_we_accept():
    import re

    import yaml

    from bootstrap.agents.apiserver import flags
    from bootstrap.config.model import ClusterConfig
    from bootstrap.engine.roles import default_roles_path, shared_templates_dir
    from bootstrap.engine.templating import LazyVars, render_file
    from bootstrap.flows import node_vars

    roles = default_roles_path()[0]
    defaults = yaml.safe_load(open(f"{roles}/control-plane/defaults/main.yml"))
    v = LazyVars([defaults, {"node_ip": "10.0.0.11", "cluster_name": "kubernetes"},
                  node_vars.control_plane_vars(ClusterConfig(), "10.0.0.11")])
    unit = render_file("kube-apiserver.service.j2",
                       [f"{roles}/control-plane/templates", *shared_templates_dir([roles])], v)
    rendered = set(re.findall(r"--(?:requestheader|proxy-client)-[a-z-]+", unit))
    assert rendered == {
        "--requestheader-client-ca-file", "--requestheader-allowed-names",
        "--requestheader-username-headers", "--requestheader-group-headers",
        "--requestheader-extra-headers-prefix", "--proxy-client-cert-file",
        "--proxy-client-key-file"}
    known = {o for a in flags._parser()._actions for o in a.option_strings}
    assert rendered <= known
    assert "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt" in unit
