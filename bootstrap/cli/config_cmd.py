"""``bootstrap config``: print defaults, validate and migrate files, list images."""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap.cli import main
from bootstrap.config import _yaml
from bootstrap.config.duration import format_duration
from bootstrap.config.kubeadm import load_config_file
from bootstrap.config.kubeadm_convert import COMPONENT_CONFIGS, migrate, print_defaults
from bootstrap.errors import UserError


@main.group("config")
def config() -> None:
    """Cluster configuration files: ours, or kubeadm's (v1beta3, v1beta4)."""


@config.group("print")
def print_group() -> None:
    """Print default configuration, ready to edit and pass with --config."""


def _components(value: str | None) -> list[str]:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    return names


_COMPONENTS_HELP = f"Also print these component configs ({', '.join(COMPONENT_CONFIGS)})."


def _defaults_command(which: str, doc: str) -> None:
    @print_group.command(f"{which}-defaults", help=doc)
    @click.option("--component-configs", "components", metavar="LIST", default=None,
                  help=_COMPONENTS_HELP)
    def command(components: str | None) -> None:
        click.echo(print_defaults(which, _components(components)), nl=False)


_defaults_command("init", "Print the default ClusterConfiguration and InitConfiguration.")
_defaults_command("join", "Print the default JoinConfiguration.")
_defaults_command("reset", "Print the default ResetConfiguration.")
_defaults_command("upgrade", "Print the default UpgradeConfiguration.")


@config.command("validate")
@click.option("--config", "path", required=True, metavar="PATH",
              help="Configuration file to check (ours or kubeadm's).")
def validate(path: str) -> None:
    """Check a configuration file; print the settings it resolves to."""
    f = load_config_file(path)
    cfg = f.cluster
    etcd = "external " + ",".join(cfg.etcd.external.endpoints) if cfg.etcd.external \
        else "local (stacked)"
    click.echo(f"{path}: ok ({f.api_version})")
    click.echo(f"  cluster {cfg.cluster_name}, pods {cfg.networking.pod_subnet}, "
               f"services {cfg.networking.service_subnet}, etcd {etcd}")
    click.echo(f"  certificates {format_duration(cfg.certificate_validity_period)}, "
               f"CAs {format_duration(cfg.ca_certificate_validity_period)}, "
               f"keys {cfg.encryption_algorithm}")
    kinds = [k for k, v in (("InitConfiguration", f.init), ("JoinConfiguration", f.join),
                            ("ResetConfiguration", f.reset),
                            ("UpgradeConfiguration", f.upgrade),
                            ("KubeletConfiguration", f.kubelet),
                            ("KubeProxyConfiguration", f.kube_proxy)) if v is not None]
    if kinds:
        click.echo(f"  also: {', '.join(kinds)}")
    for note in f.warnings:
        click.echo(f"warning: {note}", err=True)


@config.command("migrate")
@click.option("--old-config", "old", required=True, metavar="PATH",
              help="A kubeadm.k8s.io/v1beta3 (or v1beta4) configuration file.")
@click.option("--new-config", "new", default=None, metavar="PATH",
              help="Write the v1beta4 file here (default: standard output).")
def migrate_command(old: str, new: str | None) -> None:
    """Convert a kubeadm v1beta3 configuration to v1beta4, as kubeadm does."""
    text = migrate(_yaml.read_text(old, "config file"), old)
    _check_migrated(text, new or "<migrated>")
    if new is None:
        click.echo(text, nl=False)
        return
    try:
        Path(new).write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write: {exc.strerror}", where=new) from None


def _check_migrated(text: str, where: str) -> None:
    """The converted file must itself be a valid v1beta4 file."""
    from bootstrap.config.kubeadm import parse_config_text

    parse_config_text(text, where)


@config.group("images")
def images() -> None:
    """Images the nodes use."""


@images.command("list")
@click.option("--config", "path", default=None, metavar="PATH",
              help="Configuration file (checked; bootstrap's images do not depend on it).")
def images_list(path: str | None) -> None:
    """Print the images every node imports (built offline) or pulls."""
    from bootstrap.images.busybox import BUSYBOX_REF, PAUSE_REF

    if path is not None:
        for note in load_config_file(path).warnings:
            click.echo(f"warning: {note}", err=True)
    click.echo(PAUSE_REF)
    click.echo(BUSYBOX_REF)
