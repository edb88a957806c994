"""Token discovery, as ``kubeadm join --token --discovery-token-ca-cert-hash`` does it.

1. Fetch the public ``cluster-info`` ConfigMap from the endpoint without
   trusting its TLS certificate (there is no CA yet) and without credentials.
2. Its ``jws-kubeconfig-<token-id>`` key must be the detached JWS of the
   kubeconfig, signed with the token (the controller manager's bootstrapsigner
   writes it): proof that the server knows the token.
3. The CA in that kubeconfig must hash (sha256 over its public key) to one of
   the pins, unless pinning was switched off explicitly.
4. Fetch cluster-info again, now verifying TLS with that CA, and check it is
   the same document.
Each failure is one line saying what could not be trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

import yaml
from cryptography import x509

from bootstrap.errors import UserError
from bootstrap.pki.keys import public_key_der
from bootstrap.pki.tokens import detached_jws_valid, parse_token

CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


@dataclass(frozen=True)
class Discovered:
    server: str     # the API endpoint cluster-info names
    ca_pem: bytes
    reached: str = ""  # https://<the endpoint discovery talked to>

    def __post_init__(self):
        if not self.reached:
            object.__setattr__(self, "reached", self.server)


def parse_pins(pins: list[str] | tuple[str, ...]) -> list[str]:
    out = []
    for pin in pins:
        pin = pin.strip().lower()
        kind, _, value = pin.partition(":")
        if kind != "sha256" or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise UserError(f"--discovery-token-ca-cert-hash {pin!r} is not sha256:<64 hex>",
                            hint="copy it from `bootstrap token create --print-join-command`")
        out.append(pin)
    return out


def _fetch(endpoint: str, context: ssl.SSLContext, timeout: float) -> dict:
    url = f"https://{endpoint}{CLUSTER_INFO_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise UserError(f"cannot read cluster-info from {endpoint}: HTTP {exc.code}",
                        where="discovery",
                        hint="is this a bootstrap control plane that ran `init`?") from None
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise UserError(f"cannot reach {endpoint} for cluster-info: "
                        f"{getattr(exc, 'reason', exc)}", where="discovery",
                        hint="check the API server endpoint") from None


def ca_hash(ca_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(ca_pem)
    return "sha256:" + hashlib.sha256(public_key_der(cert.public_key())).hexdigest()


def verify_cluster_info(cm: dict, token: str, pins: list[str], skip_ca_verification: bool
                        ) -> Discovered:
    """Steps 2 and 3 on an already fetched ConfigMap (pure: unit-tested as data)."""
    token_id, secret = parse_token(token)
    data = cm.get("data") or {}
    kubeconfig = data.get("kubeconfig")
    if not kubeconfig:
        raise UserError("the cluster-info ConfigMap has no kubeconfig", where="discovery")
    signature = data.get(f"jws-kubeconfig-{token_id}")
    if not signature:
        raise UserError(f"there is no JWS signed token in the cluster-info ConfigMap: token id "
                        f"{token_id!r} is invalid for this cluster or it has expired",
                        where="discovery",
                        hint="create a new token with `bootstrap token create` on a control-plane host")
    if not detached_jws_valid(signature, kubeconfig, token_id, secret):
        raise UserError("failed to verify JWS signature of received cluster info object, "
                        "can't trust this API server", where="discovery",
                        hint="check the --token; a wrong secret or a forged cluster-info fails here")
    try:
        doc = yaml.safe_load(kubeconfig)
        cluster = doc["clusters"][0]["cluster"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        server = cluster["server"]
        got = ca_hash(ca_pem)
    except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
        raise UserError("the kubeconfig in cluster-info is malformed", where="discovery") from None
    if not skip_ca_verification and got not in pins:
        raise UserError(f"cluster CA found in cluster-info ConfigMap is invalid: none of the public "
                        f"keys \"{got}\" are pinned", where="discovery",
                        hint="check --discovery-token-ca-cert-hash")
    return Discovered(server=server, ca_pem=ca_pem)


def discover(endpoint: str, token: str, pins: list[str], skip_ca_verification: bool = False,
             timeout: float = 10) -> Discovered:
    if not pins and not skip_ca_verification:
        raise UserError("using token-based discovery without --discovery-token-ca-cert-hash can "
                        "be unsafe", where="join",
                        hint="pass --discovery-token-ca-cert-hash, or "
                             "--discovery-token-unsafe-skip-ca-verification to skip pinning")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    first = _fetch(endpoint, insecure, timeout)
    found = verify_cluster_info(first, token, pins, skip_ca_verification)
    with tempfile.NamedTemporaryFile(suffix=".crt") as ca:
        ca.write(found.ca_pem)
        ca.flush()
        trusted = ssl.create_default_context(cafile=ca.name)
        # The endpoint may be an IP or name outside the certificate's SANs only if
        # the CA did not sign it for that name: then this fetch fails, as it should.
        second = _fetch(endpoint, trusted, timeout)
    if (second.get("data") or {}).get("kubeconfig") != (first.get("data") or {}).get("kubeconfig"):
        raise UserError("cluster-info changed between the untrusted and the trusted fetch",
                        where="discovery", hint="try again; if it persists, do not trust this endpoint")
    return Discovered(found.server, found.ca_pem, reached=f"https://{endpoint}")


def from_file(path: str) -> Discovered:
    """File discovery: a kubeconfig the operator trusts, naming the server and the CA."""
    try:
        doc = yaml.safe_load(open(path).read())
        cluster = doc["clusters"][0]["cluster"]
        if cluster.get("certificate-authority-data"):
            ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        else:
            ca_pem = open(cluster["certificate-authority"], "rb").read()
        x509.load_pem_x509_certificate(ca_pem)
        return Discovered(server=cluster["server"], ca_pem=ca_pem)
    except OSError as exc:
        raise UserError(f"cannot read the discovery file: {exc.strerror}", where=path) from None
    except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError):
        raise UserError("the discovery file is not a kubeconfig with a server and a CA",
                        where=path) from None
