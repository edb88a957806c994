"""``bootstrap certs generate-csr``: keys and CSRs for an external CA (kubeadm's)."""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap.cli.certs_cmd import certs
from bootstrap.flows.init import DEFAULT_KUBECONFIG_DIR


@certs.command("generate-csr")
@click.option("--cert-dir", metavar="DIR", default=None,
              help="Where the keys and CSRs go [default: the config's certificatesDir, "
                   "/etc/kubernetes/pki].")
@click.option("--kubeconfig-dir", metavar="DIR", default=DEFAULT_KUBECONFIG_DIR,
              show_default=True, help="Where the partial kubeconfigs and their CSRs go.")
@click.option("--config", "config_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Cluster configuration (SANs, endpoint, etcd, key algorithm).")
@click.option("--node-name", metavar="NAME", default=None,
              help="This node's name [default: the hostname].")
@click.option("--advertise-address", metavar="IP", default=None,
              help="This node's API server address [default: the default route's].")
def generate_csr(cert_dir: str | None, kubeconfig_dir: str, config_path: str | None,
                 node_name: str | None, advertise_address: str | None) -> None:
    """Generate keys and certificate signing requests for every certificate and kubeconfig
    the control plane needs, for an external CA to sign."""
    from bootstrap.config.cluster import load_cluster_config
    from bootstrap.flows.init import default_advertise_address, default_node_name
    from bootstrap.pki.catalog import Node
    from bootstrap.pki.csr import generate_csrs

    config = load_cluster_config(config_path)
    node = Node(node_name or default_node_name(),
                advertise_address or default_advertise_address())
    node.ip()  # a bad address is one line before any file is written
    for o in generate_csrs(Path(cert_dir or config.certificates_dir), Path(kubeconfig_dir),
                           config, node):
        verb = "Generated" if o.created else "Using the existing"
        click.echo(f"[certs] {verb} CSR and key for {o.name}: {o.csr}, {o.key}")
