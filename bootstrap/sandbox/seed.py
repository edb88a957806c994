"""Files each host starts with, copied over its overlay root before boot.

Hosts share the machine's installed system through the overlay; these files
make each one a distinct machine (hostname, machine-id, SSH host key) and
keep out of its boot what must not start by itself or needs real hardware.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# Units masked in every host: services installed on the machine that a role
# must start deliberately (etcd, haproxy, postgresql, containerd, the image
# registry: Debian enables them on install), and units that wait for
# hardware, consoles, the network or the clock, none of which a namespace host has.
MASKED_UNITS = (
    "etcd.service", "etcd2.service", "haproxy.service", "postgresql.service",
    "postgresql@.service", "containerd.service", "docker-registry.service",
    "systemd-networkd-wait-online.service", "networking.service", "ifup@.service",
    "getty@.service", "serial-getty@.service", "console-getty.service",
    "container-getty@.service", "getty-static.service", "getty.target",
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service", "systemd-hwdb-update.service",
    "systemd-timesyncd.service", "systemd-pstore.service", "systemd-remount-fs.service",
    "systemd-modules-load.service", "kmod-static-nodes.service", "systemd-firstboot.service",
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
    "systemd-journald-audit.socket", "keyboard-setup.service", "console-setup.service",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount", "dev-hugepages.mount",
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "man-db.timer",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer", "logrotate.timer",
    "remote-fs.target",
)

SSHD_DROPIN = """\
# Written by bootstrap sandbox: only this host's own key, key auth only.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# The role engine opens many parallel sessions to the same host.
MaxStartups 200:30:400
MaxSessions 100
"""


# Root's dot files, as Debian's base-files installs them for root. The machine's
# own /root/.bashrc may carry tool setup (pyenv, cargo) that bash runs for every
# SSH command (Debian's bash sources ~/.bashrc for sshd sessions): each session
# would pay for it and a stale pyenv shim lock makes later sessions wait.
ROOT_DOTFILES_DIR = Path("/usr/share/base-files")
_FALLBACK_DOTFILES = {
    ".bashrc": "# ~/.bashrc: executed by bash(1) for non-login shells.\n",
    ".profile": (
        "# ~/.profile: executed by Bourne-compatible login shells.\n\n"
        'if [ "$BASH" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\n\n'
        "mesg n 2> /dev/null || true\n"
    ),
}


def root_dotfiles(source: Path = ROOT_DOTFILES_DIR) -> dict[str, str]:
    """{".bashrc": text, ".profile": text}: Debian's defaults for root, no tool hooks."""
    out = {}
    for name, fallback in _FALLBACK_DOTFILES.items():
        try:
            out[name] = (source / f"dot{name}").read_text()
        except OSError:
            out[name] = fallback
    return out


def ed25519_keypair(comment: str) -> tuple[bytes, str]:
    """(OpenSSH private key PEM, ``ssh-ed25519 AAAA... comment`` public line)."""
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH,
    ).decode()
    return priv, f"{pub} {comment}"


def etc_hosts(hosts: dict[str, str], machine_ip: str) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{machine_ip}\tbootstrap-machine"]
    lines += [f"{ip}\t{name}" for name, ip in hosts.items()]
    return "\n".join(lines) + "\n"


def _write(path: Path, data: str | bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def write_seed(seed: Path, *, hostname: str, authorized_key: str, hosts_file: str) -> str:
    """Populate ``seed`` (a tree mirroring /) and return the host's public host key."""
    # cp -a copies directory modes too: every seed dir must look like the real one.
    for d, mode in (("", 0o755), ("etc", 0o755), ("etc/ssh", 0o755), ("etc/ssh/sshd_config.d", 0o755),
                    ("etc/systemd", 0o755), ("etc/systemd/system", 0o755),
                    ("etc/tmpfiles.d", 0o755), ("root", 0o700), ("root/.ssh", 0o700)):
        (seed / d).mkdir(parents=True, exist_ok=True)
        os.chmod(seed / d, mode)
    _write(seed / "etc/hostname", hostname + "\n", 0o644)
    _write(seed / "etc/machine-id", secrets.token_hex(16) + "\n", 0o444)
    _write(seed / "etc/hosts", hosts_file, 0o644)
    _write(seed / "etc/fstab", "# sandbox host: root is an overlay set up before boot\n", 0o644)
    priv, pub = ed25519_keypair(f"root@{hostname}")
    _write(seed / "etc/ssh/ssh_host_ed25519_key", priv, 0o600)
    _write(seed / "etc/ssh/ssh_host_ed25519_key.pub", pub + "\n", 0o644)
    _write(seed / "etc/ssh/sshd_config.d/bootstrap-sandbox.conf", SSHD_DROPIN, 0o644)
    _write(seed / "root/.ssh/authorized_keys", authorized_key + "\n", 0o600)
    # /tmp is the host's overlay over the machine's /tmp; Debian's "D /tmp" would empty
    # it at boot (whiteouts hiding the machine's files, a checkout under /tmp included).
    _write(seed / "etc/tmpfiles.d/tmp.conf", "d /tmp 1777 root root -\n", 0o644)
    for name, text in root_dotfiles().items():
        _write(seed / "root" / name, text, 0o644)
    unit_dir = seed / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = unit_dir / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    default = unit_dir / "default.target"
    if default.is_symlink() or default.exists():
        default.unlink()
    default.symlink_to("/lib/systemd/system/multi-user.target")
    return pub
