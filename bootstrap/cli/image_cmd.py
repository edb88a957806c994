"""``bootstrap image ...``: build the offline images and push archives to a registry."""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap import images
from bootstrap.cli import main
from bootstrap.errors import UserError
from bootstrap.images.registry import push as push_archive

DEFAULT_OUTPUT = Path("~/.cache/bootstrap/images")

_output = click.option("-o", "--output", "output", type=click.Path(file_okay=False),
                       default=str(DEFAULT_OUTPUT), show_default=True,
                       help="directory the OCI archive is written to")


@main.group("image")
def image() -> None:
    """OCI images built offline from Debian's busybox-static, and registry pushes."""


def _build(spec_fn, output: str) -> None:
    path = images.build(spec_fn(), Path(output).expanduser())
    ref = images.archive_refs(images.read_index(path))[0]
    click.echo(f"{path}  ({ref})")


@image.command("build-busybox")
@_output
def build_busybox(output: str) -> None:
    """busybox:1.35 (sh, httpd, nc, sleep, nslookup, tar, wget, ...) as an OCI archive."""
    _build(images.busybox_spec, output)


@image.command("build-pause")
@_output
def build_pause(output: str) -> None:
    """The pod sandbox image (registry.k8s.io/pause:3.9) as an OCI archive."""
    _build(images.pause_spec, output)


@image.command("push")
@click.argument("archive", type=click.Path(dir_okay=False))
@click.argument("ref")
@click.option("--ca", "ca", type=click.Path(dir_okay=False),
              help="CA certificate the registry's certificate is signed by")
@click.option("-i", "--inventory", "inventory", type=click.Path(exists=True, dir_okay=False),
              help="take the CA from this inventory's artifacts/pki/ca.crt")
def push(archive: str, ref: str, ca: str | None, inventory: str | None) -> None:
    """Copy ARCHIVE into a registry as REF (HOST:PORT/NAME:TAG), over TLS verified with our CA."""
    if ca is None:
        if inventory is None:
            raise UserError("no CA to verify the registry with", where="image push",
                            hint="pass --ca FILE or -i INVENTORY")
        # Kept with the cluster PKI next to the inventory (bootstrap.flows.cluster_pki).
        from bootstrap.config.inventory import load_inventory
        from bootstrap.flows.cluster_pki import pki_dir
        ca = str(pki_dir(load_inventory(inventory)) / "ca.crt")
    push_archive(Path(archive), ref, Path(ca))
    click.echo(f"pushed {archive} to {ref}")
