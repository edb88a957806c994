"""``bootstrap kubeconfig user``: a kubeconfig for a new user (kubeadm's ``kubeconfig user``)."""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap.cli import main
from bootstrap.errors import UserError
from bootstrap.flows.init import DEFAULT_KUBECONFIG_DIR


@main.group("kubeconfig")
def kubeconfig() -> None:
    """Kubeconfig files for additional users."""


def _orgs(values: tuple[str, ...]) -> tuple[str, ...]:
    # kubeadm's --org is a string slice: repeated, or comma-separated.
    return tuple(o.strip() for v in values for o in v.split(",") if o.strip())


@kubeconfig.command("user")
@click.option("--client-name", required=True, metavar="NAME",
              help="The user: the client certificate's common name.")
@click.option("--org", "orgs", multiple=True, metavar="GROUP",
              help="Groups of the user (the certificate's organizations); repeat or comma-separate.")
@click.option("--validity-period", metavar="DURATION", default=None,
              help="How long the client certificate is valid [default: the config's "
                   "certificateValidityPeriod, 8760h].")
@click.option("--config", "config_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Cluster configuration (kubeadm's or ours): cluster name, endpoint, cert dir.")
@click.option("--cert-dir", metavar="DIR", default=None,
              help="Where ca.crt and ca.key are [default: the config's certificatesDir, "
                   "/etc/kubernetes/pki].")
@click.option("-i", "--inventory", "inventory_path", metavar="PATH",
              help="Use this inventory's cluster (cluster up's state dir: its CA and API endpoint).")
@click.option("--server", metavar="URL",
              help="The API server URL [default: the controlPlaneEndpoint, else admin.conf's].")
def user(client_name: str, orgs: tuple[str, ...], validity_period: str | None,
         config_path: str | None, cert_dir: str | None, inventory_path: str | None,
         server: str | None) -> None:
    """Print a kubeconfig for a new user, its client certificate signed by the cluster CA."""
    from bootstrap.config.cluster import load_cluster_config
    from bootstrap.config.duration import parse_duration
    from bootstrap.pki.csr import user_kubeconfig
    from bootstrap.pki.kubeconfig import read_kubeconfig, server_url

    config = load_cluster_config(config_path)
    admin = Path(DEFAULT_KUBECONFIG_DIR) / "admin.conf"
    ca_dir = Path(cert_dir or config.certificates_dir)
    if inventory_path:
        from bootstrap.config.inventory import load_inventory
        from bootstrap.config.kubespray_vars import effective_config

        inv = load_inventory(inventory_path)
        config = effective_config(inv, config_path).config
        state = inv.artifacts_dir
        ca_dir = Path(cert_dir) if cert_dir else state / "pki"
        admin = state / "admin.conf"
    if server is None:
        if config.control_plane_endpoint and not inventory_path:
            server = server_url(config, "")
        elif admin.exists():
            server = read_kubeconfig(admin).server
        else:
            raise UserError("no API server to name in the kubeconfig", where=str(admin),
                            hint="pass --server URL, a --config with controlPlaneEndpoint, "
                                 "or -i INVENTORY of a cluster made by cluster up")
    if not server.startswith("https://"):
        raise UserError(f"--server {server!r} is not an https:// URL",
                        hint="e.g. --server https://10.0.0.10:6443")
    try:
        validity = parse_duration(validity_period) if validity_period else \
            config.certificate_validity_period
    except ValueError as exc:
        raise UserError(f"--validity-period: {exc}", hint="e.g. 8760h") from None
    if validity.total_seconds() <= 0:
        raise UserError(f"--validity-period {validity_period!r} must be positive")
    click.echo(user_kubeconfig(ca_dir, cluster_name=config.cluster_name, server=server,
                               client_name=client_name, organizations=_orgs(orgs),
                               validity=validity, algorithm=config.encryption_algorithm), nl=False)
