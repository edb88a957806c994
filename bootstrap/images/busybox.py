"""The two images the toolkit builds offline from Debian's busybox-static.

busybox: every applet of the static binary as a /bin/<applet> symlink (httpd,
nc, sleep, sh, nslookup, tar, wget, ...), with passwd/group files, as the
upstream busybox image lays it out; the test and demo workload.
pause: the pod sandbox's PID 1, the same busybox layer with a shell that
sleeps until SIGTERM or SIGINT (see PAUSE_SCRIPT).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bootstrap.errors import UserError
from bootstrap.images.oci import Entry, ImageSpec, write_archive

BUSYBOX_BINARY = "/bin/busybox"  # Debian's busybox-static
BUSYBOX_REF = "docker.io/library/busybox:1.35"
PAUSE_REF = "registry.k8s.io/pause:3.9"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
tty:x:5:
www-data:x:33:
nogroup:x:65534:
"""

# A pod's pause container is PID 1 of its namespace, where the kernel drops
# every signal that has no handler: without the trap SIGTERM would be ignored
# and the runtime would have to SIGKILL it. ash runs the trap as soon as the
# `wait` builtin is interrupted, so the sandbox stops at once; and `wait` reaps
# with waitpid(-1), which also collects orphans reparented to PID 1 when the
# pod shares its PID namespace. The sleep child dies with the namespace.
PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 2147483647 & wait $!; done'


def _applets(binary: str) -> list[str]:
    try:
        out = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True,
                             timeout=30).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UserError(f"cannot run {binary} --list: {exc}", where="image build",
                        hint="install Debian's busybox-static (apt-get install busybox-static)"
                        ) from None
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def base_entries(binary: str = BUSYBOX_BINARY) -> tuple[Entry, ...]:
    if not Path(binary).is_file():
        raise UserError(f"{binary} not found", where="image build",
                        hint="install Debian's busybox-static (apt-get install busybox-static)")
    entries = [
        Entry("bin/busybox", "file", 0o755, src=binary),
        Entry("etc/passwd", "file", 0o644, data=PASSWD.encode()),
        Entry("etc/group", "file", 0o644, data=GROUP.encode()),
        Entry("root", "dir", 0o700), Entry("tmp", "dir", 0o1777), Entry("home", "dir", 0o755),
        Entry("var/www", "dir", 0o755),
    ]
    entries += [Entry(f"bin/{a}", "symlink", 0o777, target="busybox") for a in _applets(binary)]
    return tuple(entries)


def busybox_spec(binary: str = BUSYBOX_BINARY, ref: str = BUSYBOX_REF) -> ImageSpec:
    return ImageSpec(ref=ref, entries=base_entries(binary), cmd=("sh",))


def pause_spec(binary: str = BUSYBOX_BINARY, ref: str = PAUSE_REF) -> ImageSpec:
    return ImageSpec(ref=ref, entries=base_entries(binary),
                     entrypoint=("/bin/sh", "-c", PAUSE_SCRIPT), user="0:0")


def archive_name(ref: str) -> str:
    """busybox-1.35.tar for docker.io/library/busybox:1.35."""
    name, _, tag = ref.rpartition("/")[2].partition(":")
    return f"{name}-{tag or 'latest'}.tar"


def build(spec: ImageSpec, output_dir: Path) -> Path:
    return write_archive(spec, Path(output_dir) / archive_name(spec.ref))
