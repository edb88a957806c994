"""Token discovery: a wrong token, a forged cluster-info, a wrong CA pin each fail in one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bootstrap import pki
from bootstrap.cli import main
from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, discovery
from bootstrap.pki.certs import cert_to_pem
from bootstrap.pki.tokens import detached_jws

TOKEN = "abcdef.0123456789abcdef"


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    """Two unrelated cluster CAs: ours and an attacker's."""
    out = []
    for name in ("ours", "theirs"):
        d = tmp_path_factory.mktemp(name)
        pki.ensure_cas(d, ClusterConfig())
        out.append(cert_to_pem(pki.store.load_ca(d, "ca").cert))
    return out


def cluster_info(ca_pem: bytes, sign_with: str | None = TOKEN, server="https://10.0.0.1:6443"):
    cm = apiobjects.cluster_info(server, ca_pem)
    if sign_with:
        tid, secret = sign_with.split(".")
        cm["data"][f"jws-kubeconfig-{tid}"] = detached_jws(cm["data"]["kubeconfig"], tid, secret)
    return cm


def test_signed_info_with_the_pinned_ca_is_trusted(cas):
    ours, _ = cas
    found = discovery.verify_cluster_info(cluster_info(ours), TOKEN, [discovery.ca_hash(ours)],
                                          False)
    assert found.server == "https://10.0.0.1:6443" and found.ca_pem == ours


def test_wrong_token_secret_fails_the_signature(cas):
    ours, _ = cas
    with pytest.raises(UserError) as ei:
        discovery.verify_cluster_info(cluster_info(ours), "abcdef.ffffffffffffffff",
                                      [discovery.ca_hash(ours)], False)
    assert "failed to verify JWS signature" in ei.value.line()
    assert "\n" not in ei.value.line()


def test_unknown_token_id_has_no_signature(cas):
    ours, _ = cas
    with pytest.raises(UserError, match="no JWS signed token.*'zzzzzz'"):
        discovery.verify_cluster_info(cluster_info(ours), "zzzzzz.0123456789abcdef",
                                      [discovery.ca_hash(ours)], False)


def test_forged_cluster_info_signed_without_the_token_fails(cas):
    ours, theirs = cas
    # An attacker serves their own CA, with a signature made from a guessed secret.
    forged = cluster_info(theirs, sign_with="abcdef.guessedsecret000")
    with pytest.raises(UserError, match="failed to verify JWS signature"):
        discovery.verify_cluster_info(forged, TOKEN, [discovery.ca_hash(ours)], False)
    # Or swaps the kubeconfig under a valid signature of the real one.
    real = cluster_info(ours)
    real["data"]["kubeconfig"] = apiobjects.cluster_info_kubeconfig("https://6.6.6.6:6443",
                                                                     theirs)
    with pytest.raises(UserError, match="failed to verify JWS signature"):
        discovery.verify_cluster_info(real, TOKEN, [discovery.ca_hash(ours)], False)


def test_wrong_ca_pin_is_refused_unless_pinning_is_skipped(cas):
    ours, theirs = cas
    info = cluster_info(ours)
    with pytest.raises(UserError, match="none of the public keys .* are pinned"):
        discovery.verify_cluster_info(info, TOKEN, [discovery.ca_hash(theirs)], False)
    assert discovery.verify_cluster_info(info, TOKEN, [], True).ca_pem == ours


def test_no_pin_without_the_unsafe_flag_is_refused():
    with pytest.raises(UserError, match="can be unsafe"):
        discovery.discover("10.0.0.1:6443", TOKEN, [], False)


@pytest.mark.parametrize("pin", ["md5:abc", "sha256:xyz", "sha256:" + "a" * 63])
def test_malformed_pins_are_one_line(pin):
    with pytest.raises(UserError, match="is not sha256:<64 hex>"):
        discovery.parse_pins([pin])


@pytest.mark.parametrize("args, needle", [
    (["1.2.3.4:6443", "--token", "nope"], "wrong format"),
    (["1.2.3.4:6443"], "join needs --token"),
    (["--token", TOKEN], "API server endpoint"),
    (["1.2.3.4:6443", "--token", TOKEN, "--discovery-token-ca-cert-hash", "sha1:00"],
     "is not sha256"),
    (["1.2.3.4:6443", "--token", TOKEN, "--skip-phases", "nope"], "unknown phase"),
])
def test_malformed_join_flags_are_one_line_exit_2(args, needle):
    res = CliRunner().invoke(main, ["join", *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and res.output.count("\n") == 1, res.output


def test_file_discovery_reads_server_and_ca(tmp_path, cas):
    ours, _ = cas
    path = tmp_path / "discovery.conf"
    path.write_text(apiobjects.cluster_info_kubeconfig("https://10.0.0.9:6443", ours))
    found = discovery.from_file(str(path))
    assert found.server == "https://10.0.0.9:6443" and found.ca_pem == ours
    path.write_text("kind: Config\n")
    with pytest.raises(UserError, match="not a kubeconfig with a server and a CA"):
        discovery.from_file(str(path))
