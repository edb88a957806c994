"""``bootstrap config``: print the defaults, validate a file."""

from __future__ import annotations

import click

from bootstrap.cli import main
from bootstrap.config.cluster import default_config, dump_cluster_config, load_cluster_config
from bootstrap.config.duration import format_duration


@main.group("config")
def config() -> None:
    """Cluster configuration files (kubeadm's ClusterConfiguration fields)."""


@config.group("print")
def print_group() -> None:
    """Print configuration."""


@print_group.command("init-defaults")
def init_defaults() -> None:
    """Print the default cluster configuration, ready to edit and pass with --config."""
    click.echo(dump_cluster_config(default_config()), nl=False)


@config.command("validate")
@click.option("--config", "path", required=True, metavar="PATH",
              help="Cluster configuration file to check.")
def validate(path: str) -> None:
    """Check a cluster configuration file; print the settings it resolves to."""
    cfg = load_cluster_config(path)
    etcd = "external " + ",".join(cfg.etcd.external.endpoints) if cfg.etcd.external \
        else "local (stacked)"
    click.echo(f"{path}: ok")
    click.echo(f"  cluster {cfg.cluster_name}, pods {cfg.networking.pod_subnet}, "
               f"services {cfg.networking.service_subnet}, etcd {etcd}")
    click.echo(f"  certificates {format_duration(cfg.certificate_validity_period)}, "
               f"CAs {format_duration(cfg.ca_certificate_validity_period)}, "
               f"keys {cfg.encryption_algorithm}")
