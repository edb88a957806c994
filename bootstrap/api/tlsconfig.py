"""TLS settings with the names the Kubernetes components' flags use.

``--tls-cipher-suites`` takes Go's cipher suite names and ``--tls-min-version``
Go's version names; Python's ssl module speaks OpenSSL names, so the mapping is
kept here as data, once, for every server we run.
"""

from __future__ import annotations

import ssl

# Go name -> OpenSSL name, for TLS 1.0-1.2. TLS 1.3 suites are fixed by OpenSSL (as in
# Go, they cannot be configured) and accepted for compatibility.
_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
# The default: AEAD suites with forward secrecy only (no CBC, no RSA key exchange).
DEFAULT_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)
VERSIONS = {"VersionTLS10": ssl.TLSVersion.TLSv1, "VersionTLS11": ssl.TLSVersion.TLSv1_1,
            "VersionTLS12": ssl.TLSVersion.TLSv1_2, "VersionTLS13": ssl.TLSVersion.TLSv1_3}
DEFAULT_MIN_VERSION = "VersionTLS12"


def parse_cipher_suites(text: str) -> tuple[str, ...]:
    """Validate a comma-separated list of Go suite names; ValueError names the bad one."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for n in names:
        if n not in _SUITES and n not in _TLS13:
            raise ValueError(f"cipher suite {n} not supported or doesn't exist")
    return names


def parse_min_version(text: str) -> str:
    if text not in VERSIONS:
        raise ValueError(f"unknown tls version {text!r}; supported: {', '.join(VERSIONS)}")
    return text


def apply(ctx: ssl.SSLContext, suites: tuple[str, ...] = DEFAULT_SUITES,
          min_version: str = DEFAULT_MIN_VERSION) -> None:
    """Restrict a server context to the given suites (TLS <= 1.2) and minimum version."""
    ctx.minimum_version = VERSIONS[min_version]
    openssl = [_SUITES[n] for n in suites if n in _SUITES]
    if openssl:
        ctx.set_ciphers(":".join(dict.fromkeys(openssl)))
    elif min_version != "VersionTLS13":
        # Only TLS 1.3 suites named: nothing below 1.3 can be negotiated.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
