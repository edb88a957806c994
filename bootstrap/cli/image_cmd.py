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
@click.option("--cert", "cert", type=click.Path(dir_okay=False),
              help="client certificate the registry accepts (the cluster's registry-client.crt)")
@click.option("--key", "key", type=click.Path(dir_okay=False), help="its private key")
@click.option("-i", "--inventory", "inventory", type=click.Path(exists=True, dir_okay=False),
              help="take CA and client pair from this inventory's artifacts/pki")
def push(archive: str, ref: str, ca: str | None, cert: str | None, key: str | None,
         inventory: str | None) -> None:
    """Copy ARCHIVE into a registry as REF (HOST:PORT/NAME:TAG), over mutual TLS with our CA."""
    if inventory is not None:
        # Kept with the cluster PKI next to the inventory (bootstrap.flows.cluster_pki).
        from bootstrap.config.inventory import load_inventory
        from bootstrap.flows.cluster_pki import pki_dir
        from bootstrap.images.registry import CLIENT_BASE
        pki = pki_dir(load_inventory(inventory))
        ca = ca or str(pki / "ca.crt")
        cert = cert or str(pki / f"{CLIENT_BASE}.crt")
        key = key or str(pki / f"{CLIENT_BASE}.key")
    if ca is None:
        raise UserError("no CA to verify the registry with", where="image push",
                        hint="pass --ca FILE (and --cert/--key) or -i INVENTORY")
    push_archive(Path(archive), ref, Path(ca), Path(cert) if cert else None,
                 Path(key) if key else None)
    click.echo(f"pushed {archive} to {ref}")
