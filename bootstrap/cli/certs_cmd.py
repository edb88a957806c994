"""``bootstrap certs``: check-expiration, renew, certificate-key."""

from __future__ import annotations

import shutil

import click
from rich import box
from rich.console import Console
from rich.table import Table

from bootstrap.cli import main
from bootstrap.errors import UserError
from bootstrap.flows.init import DEFAULT_CERT_DIR, DEFAULT_KUBECONFIG_DIR
from bootstrap.pki.expiry import RENEWABLE, check_expiration, renew, renew_all, short_duration
from bootstrap.pki.tokens import generate_certificate_key

_cert_dir = click.option("--cert-dir", default=DEFAULT_CERT_DIR, show_default=True,
                         metavar="DIR", help="The path where the certificates are stored.")
_kubeconfig_dir = click.option("--kubeconfig-dir", default=DEFAULT_KUBECONFIG_DIR,
                               show_default=True, metavar="DIR",
                               help="The path where the kubeconfig files are stored.")
_config = click.option("--config", metavar="PATH",
                       help="Cluster configuration file (validity period, key algorithm).")


def _console() -> Console:
    # Tables must not wrap when piped; rich assumes 80 columns without a terminal.
    return Console(width=max(120, shutil.get_terminal_size((120, 24)).columns),
                   highlight=False, soft_wrap=True)


def _load_config(path: str | None):
    from bootstrap.config.cluster import load_cluster_config

    return load_cluster_config(path)


@main.group("certs")
def certs() -> None:
    """Commands related to handling Kubernetes certificates."""


@certs.command("check-expiration")
@_cert_dir
@_kubeconfig_dir
@_config
def check_expiration_cmd(cert_dir: str, kubeconfig_dir: str, config: str | None) -> None:
    """Check certificates expiration for the cluster's local PKI."""
    if config:
        _load_config(config)  # validates the file like every other command does
    rows, cas = check_expiration(cert_dir, kubeconfig_dir)
    console = _console()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY",
                "EXTERNALLY MANAGED"):
        table.add_column(col, no_wrap=True)
    missing = []
    for r in rows:
        if r.missing:
            missing.append(r)
            continue
        table.add_row(r.name, f"{r.expires:%b %d, %Y %H:%M} UTC", short_duration(r.residual),
                      r.ca, "yes" if r.externally_managed else "no")
    console.print(table)
    ca_table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"):
        ca_table.add_column(col, no_wrap=True)
    for r in cas:
        if r.missing:
            missing.append(r)
            continue
        ca_table.add_row(r.name, f"{r.expires:%b %d, %Y %H:%M} UTC", short_duration(r.residual),
                         "yes" if r.externally_managed else "no")
    console.print(ca_table)
    for r in missing:
        click.echo(f"!MISSING! {r.name} ({r.path})", err=True)


@certs.command("renew", help=(
    "Renew a certificate (or all) with the existing CA, keeping subject, SANs and usages.\n\n"
    "NAME is one of: " + ", ".join(RENEWABLE) + "."))
@click.argument("name", type=click.Choice((*RENEWABLE, "all")), metavar="NAME|all")
@click.option("--new-key", is_flag=True, help="Generate a new private key instead of keeping it.")
@_cert_dir
@_kubeconfig_dir
@_config
def renew_cmd(name: str, new_key: bool, cert_dir: str, kubeconfig_dir: str,
              config: str | None) -> None:
    cfg = _load_config(config)
    if name == "all":
        renewed, skipped = renew_all(cert_dir, kubeconfig_dir, cfg, new_key)
        if not renewed:
            raise UserError(f"no certificates or kubeconfigs to renew under {cert_dir} and "
                            f"{kubeconfig_dir}", where="certs renew all",
                            hint="point --cert-dir and --kubeconfig-dir at the cluster's "
                                 "PKI, e.g. /etc/kubernetes/pki")
        for p in renewed:
            click.echo(f"[renew] {p} renewed")
        for n in skipped:
            click.echo(f"[renew] {n}: not present, skipped")
    else:
        click.echo(f"[renew] {renew(name, cert_dir, kubeconfig_dir, cfg, new_key)} renewed")
    click.echo("Done renewing certificates. Restart kube-apiserver, kube-controller-manager, "
               "kube-scheduler and etcd so that they use the new certificates.")


@certs.command("certificate-key")
def certificate_key_cmd() -> None:
    """Generate a certificate key (32 random bytes, hex) for sharing the CA files on join."""
    click.echo(generate_certificate_key())
