"""``bootstrap certs``: check-expiration, renew, certificate-key."""

from __future__ import annotations

import json
import shutil

import click
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from bootstrap.cli import main
from bootstrap.errors import RemoteError, UserError
from bootstrap.flows.init import DEFAULT_CERT_DIR, DEFAULT_KUBECONFIG_DIR
from bootstrap.pki.expiry import (
    RENEWABLE,
    check_expiration,
    expiration_info,
    renew,
    renew_all,
    short_duration,
)
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


def _expiry_tables(rows, cas) -> tuple[Table, Table, list]:
    """kubeadm's two tables (certificates, CAs) and the rows that are missing."""
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
    ca_table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"):
        ca_table.add_column(col, no_wrap=True)
    for r in cas:
        if r.missing:
            missing.append(r)
            continue
        ca_table.add_row(r.name, f"{r.expires:%b %d, %Y %H:%M} UTC", short_duration(r.residual),
                         "yes" if r.externally_managed else "no")
    return table, ca_table, missing


def _dump(doc, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(yaml.safe_dump(doc, sort_keys=False), nl=False)


@certs.command("check-expiration")
@_cert_dir
@_kubeconfig_dir
@_config
@click.option("-o", "--output", type=click.Choice(("text", "json", "yaml")), default="text",
              show_default=True, help="Output format (json/yaml: kubeadm's "
              "CertificateExpirationInfo; with -i, one per host).")
@click.option("-i", "--inventory", type=click.Path(exists=True, dir_okay=False),
              help="Check every host of this inventory over SSH instead of this machine.")
def check_expiration_cmd(cert_dir: str, kubeconfig_dir: str, config: str | None, output: str,
                         inventory: str | None) -> None:
    """Check certificates expiration for the cluster's local PKI (or every host's)."""
    if config:
        _load_config(config)  # validates the file like every other command does
    if inventory:
        _check_inventory(inventory, cert_dir, kubeconfig_dir, output)
        return
    rows, cas = check_expiration(cert_dir, kubeconfig_dir)
    if output != "text":
        _dump(expiration_info(rows, cas), output)
        return
    table, ca_table, missing = _expiry_tables(rows, cas)
    console = _console()
    console.print(table)
    console.print(ca_table)
    for r in missing:
        click.echo(f"!MISSING! {r.name} ({r.path})", err=True)


def _check_inventory(path: str, cert_dir: str, kubeconfig_dir: str, output: str) -> None:
    from bootstrap.config.inventory import load_inventory
    from bootstrap.flows.cluster_certs import check_command, host_expiration
    from bootstrap.remote.pool import connect_all

    inv = load_inventory(path)
    cmd = check_command(None if cert_dir == DEFAULT_CERT_DIR else cert_dir,
                        None if kubeconfig_dir == DEFAULT_KUBECONFIG_DIR else kubeconfig_dir)
    results = host_expiration(list(inv.hosts.values()),
                              lambda h: connect_all([h])[h.name], cmd)
    if output != "text":
        _dump({r.host: ({"error": r.error} if r.error else expiration_info(r.rows, r.cas))
               for r in results}, output)
    else:
        console = _console()
        for r in results:
            host = inv.hosts[r.host]
            console.print(f"[bold]{r.host}[/] ({host.node_ip})", highlight=False)
            if r.error:
                console.print(f"  UNREACHABLE: {r.error}", markup=False, highlight=False)
                console.print()
                continue
            table, ca_table, _missing = _expiry_tables(r.rows, r.cas)
            # A worker holds no leaves: say so instead of printing empty headers.
            if table.row_count:
                console.print(table)
            else:
                console.print("  no renewable certificates on this host")
            console.print(ca_table)
            console.print()
    failed = [r.host for r in results if r.error]
    if failed:
        raise RemoteError(f"could not check {len(failed)} of {len(results)} host(s): "
                          + ", ".join(failed), where="certs check-expiration")


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
