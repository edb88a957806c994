"""OCI archives built offline: deterministic, well-formed, named for containerd's import."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from bootstrap.errors import UserError
from bootstrap.images import BUSYBOX_REF, PAUSE_REF, archive_refs, build, busybox_spec, pause_spec
from bootstrap.images.busybox import PAUSE_SCRIPT, archive_name
from bootstrap.images.oci import Entry, ImageSpec, tag_of, write_archive
from bootstrap.images.registry import push, registry_spec

BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox-static not installed")


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    return tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()


def _read(archive: Path) -> tuple[dict, dict, dict, bytes]:
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        manifest = json.loads(_blob(tar, index["manifests"][0]["digest"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"]))
        layer = _blob(tar, manifest["layers"][0]["digest"])
        for desc in (index["manifests"][0], manifest["config"], manifest["layers"][0]):
            data = _blob(tar, desc["digest"])
            assert len(data) == desc["size"]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
    return index, manifest, config, layer


def test_small_image_is_wellformed_and_byte_identical_on_rebuild(tmp_path):
    spec = ImageSpec(ref="example.test/demo:2", cmd=("sh",), entries=(
        Entry("bin/tool", data=b"#!/bin/sh\necho hi\n", mode=0o755),
        Entry("bin/alias", "symlink", 0o777, target="tool")))
    a = write_archive(spec, tmp_path / "a.tar")
    b = write_archive(spec, tmp_path / "b.tar")
    assert a.read_bytes() == b.read_bytes()
    index, manifest, config, layer = _read(a)
    assert archive_refs(index) == ["example.test/demo:2"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "2"
    assert config["config"]["Cmd"] == ["sh"] and config["os"] == "linux"
    raw = gzip.decompress(layer)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(raw)) as lt:
        members = {m.name: m for m in lt.getmembers()}
    assert list(members) == ["bin", "bin/alias", "bin/tool"]  # parents first, sorted
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
    assert members["bin/tool"].mode == 0o755 and members["bin/tool"].mtime == 0


@needs_busybox
def test_busybox_image_has_the_workload_applets_and_accounts(tmp_path):
    archive = build(busybox_spec(), tmp_path)
    assert archive.name == "busybox-1.35.tar"
    index, _, config, layer = _read(archive)
    assert archive_refs(index) == [BUSYBOX_REF]
    assert config["config"]["Cmd"] == ["sh"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as lt:
        names = {m.name: m for m in lt.getmembers()}
        passwd = lt.extractfile("etc/passwd").read().decode()
    for applet in ("httpd", "nc", "sleep", "sh", "nslookup", "tar", "wget", "cat", "ls"):
        assert names[f"bin/{applet}"].linkname == "busybox"
    assert names["bin/busybox"].size == BUSYBOX.stat().st_size
    assert passwd.startswith("root:x:0:0:")
    assert names["tmp"].mode == 0o1777


@needs_busybox
def test_pause_image_traps_term_and_int(tmp_path):
    index, _, config, _ = _read(build(pause_spec(), tmp_path))
    assert archive_refs(index) == [PAUSE_REF]
    assert config["config"]["Entrypoint"] == ["/bin/sh", "-c", PAUSE_SCRIPT]
    assert 'trap "exit 0" TERM INT' in PAUSE_SCRIPT


def test_names():
    assert archive_name("docker.io/library/busybox:1.35") == "busybox-1.35.tar"
    assert archive_name("10.0.0.1:5000/x/pause") == "pause-latest.tar"
    assert tag_of("10.0.0.1:5000/busybox") == "latest"
    assert tag_of("reg:5000/a/b:v1") == "v1"


def test_missing_busybox_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        busybox_spec(binary=str(tmp_path / "nope"))


def test_registry_spec_needs_an_ip():
    spec = registry_spec("h1", "10.250.0.2")
    assert [str(i) for i in spec.ips] == ["10.250.0.2", "127.0.0.1"]
    with pytest.raises(UserError, match="not an IP"):
        registry_spec("h1", "h1.example")


@pytest.mark.parametrize("ref", ["busybox:1.35", "https://10.0.0.1:5000/busybox:1"])
def test_push_rejects_refs_without_a_registry(tmp_path, ref):
    archive, ca = tmp_path / "a.tar", tmp_path / "ca.crt"
    archive.write_bytes(b"x")
    ca.write_text("x")
    with pytest.raises(UserError, match="not a registry reference"):
        push(archive, ref, ca)


def test_push_needs_the_archive_and_the_ca(tmp_path):
    with pytest.raises(UserError, match="no such image archive"):
        push(tmp_path / "none.tar", "r:5000/a:1", tmp_path / "ca.crt")
    (tmp_path / "a.tar").write_bytes(b"x")
    with pytest.raises(UserError, match="no such CA"):
        push(tmp_path / "a.tar", "r:5000/a:1", tmp_path / "ca.crt")


def test_registry_vars_issue_both_pairs_once(tmp_path):
    from cryptography import x509

    from bootstrap import pki
    from bootstrap.config.model import ClusterConfig
    from bootstrap.images.registry import CLIENT_CN, registry_vars
    pki.ensure_cas(tmp_path, ClusterConfig())
    first = registry_vars(tmp_path, "cp1", "10.250.0.2")
    stamps = {k: Path(v).stat().st_mtime_ns for k, v in first.items()}
    assert registry_vars(tmp_path, "cp1", "10.250.0.2") == first
    assert {k: Path(v).stat().st_mtime_ns for k, v in first.items()} == stamps  # reused
    serving = x509.load_pem_x509_certificate(Path(first["registry_cert_local"]).read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["10.250.0.2",
                                                                          "127.0.0.1"]
    client = x509.load_pem_x509_certificate(Path(first["registry_client_cert_local"]).read_bytes())
    assert client.subject.rfc4514_string() == f"CN={CLIENT_CN}"
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert Path(first["registry_client_key_local"]).stat().st_mode & 0o077 == 0


def test_push_needs_cert_and_key_together(tmp_path):
    for name in ("a.tar", "ca.crt", "c.crt"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(UserError, match="needs its key"):
        push(tmp_path / "a.tar", "r:5000/a:1", tmp_path / "ca.crt", tmp_path / "c.crt", None)
