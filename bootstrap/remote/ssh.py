"""SSH connections on fabric's ``Connection``: one transport per host, reused for everything.

fabric opens the connection (user, port, key, timeouts) and owns the paramiko
client and its transport; host-key policy is ours (accept-new/strict/ignore,
as ssh's StrictHostKeyChecking). On that one transport, commands go to a
long-lived ``/bin/sh`` (``_shell.ShellSession``, the fast path: no sshd
session setup per command); commands with stdin get their own exec channel;
files use fabric's SFTP session. This is what keeps a no-change run of ~100
tasks to a few seconds. Channels are independent, so several threads may run
commands on one connection at once.
"""

from __future__ import annotations

import base64
import errno
import io
import logging
import os
import select
import shlex
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fabric
import paramiko

from bootstrap.errors import RemoteError
from bootstrap.remote._shell import ShellBroken, ShellSession
from bootstrap.remote.result import (
    RemoteCommandError,
    RemoteTimeout,
    Result,
    with_env,
)

POLICIES = ("accept-new", "strict", "ignore")

# paramiko's transport thread logs handshake failures with tracebacks; with no
# handler configured Python prints them to stderr. Our errors are one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

# Several connections may learn new keys at once; appends must not interleave.
_KNOWN_HOSTS_LOCK = threading.Lock()


def default_known_hosts() -> str:
    return str(Path.home() / ".ssh" / "known_hosts")


def _host_key_name(address: str, port: int) -> str:
    # OpenSSH's known_hosts spelling: bare address on 22, [address]:port otherwise.
    return address if port == 22 else f"[{address}]:{port}"


_STRICT_TO_POLICY = {"yes": "strict", "accept-new": "accept-new", "no": "ignore", "off": "ignore"}


def _ssh_options(host_vars: dict) -> dict[str, str]:
    """``-o Key=Value`` pairs from ansible_ssh_common_args / ansible_ssh_extra_args."""
    words: list[str] = []
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        value = host_vars.get(key)
        if isinstance(value, str):
            try:
                words += shlex.split(value)
            except ValueError:
                continue
    opts: dict[str, str] = {}
    for i, word in enumerate(words):
        spec = None
        if word == "-o" and i + 1 < len(words):
            spec = words[i + 1]
        elif word.startswith("-o") and len(word) > 2:
            spec = word[2:]
        if spec:
            key, _, value = spec.replace("=", " ", 1).partition(" ")
            opts[key.strip().lower()] = value.strip()
    return opts


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust a host seen for the first time and remember it (ssh's accept-new).

    A host whose key *changed* is still refused: paramiko raises
    BadHostKeyException before consulting this policy.
    """

    def __init__(self, path: str | None):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        if not self.path:
            return
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _KNOWN_HOSTS_LOCK:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(line)


class SSHConnection:
    """A connection to one inventory host.

    ``host`` is anything with ``name``, ``address``, ``port``, ``user`` and
    ``key_file`` (``bootstrap.config.inventory.Host``). The TCP connection is
    opened on first use, or by ``open()`` to surface errors early.
    """

    def __init__(
        self,
        host: Any,
        known_hosts_policy: str | None = None,
        connect_timeout: float = 10,
        known_hosts: str | None = None,
        persistent_shell: bool = True,
        remember_host_keys: bool = True,
    ):
        # Unset here means: what the inventory's ansible_ssh_common_args say
        # (UserKnownHostsFile, StrictHostKeyChecking), else accept-new with
        # ~/.ssh/known_hosts, as ssh itself would do.
        opts = _ssh_options(getattr(host, "vars", None) or {})
        if known_hosts is None:
            known_hosts = opts.get("userknownhostsfile")
        if known_hosts_policy is None:
            known_hosts_policy = _STRICT_TO_POLICY.get(
                opts.get("stricthostkeychecking", "").lower(), "accept-new")
        if known_hosts_policy not in POLICIES:
            raise RemoteError(
                f"unknown known-hosts policy {known_hosts_policy!r}",
                hint="use one of " + ", ".join(POLICIES),
            )
        self.host: str = host.name
        self.address: str = getattr(host, "address", None) or host.name
        self.port: int = int(getattr(host, "port", 22) or 22)
        self.user: str = getattr(host, "user", None) or "root"
        self.key_file: str | None = getattr(host, "key_file", None)
        self.policy = known_hosts_policy
        self.known_hosts = known_hosts or default_known_hosts()
        self.connect_timeout = connect_timeout
        self._fabric: fabric.Connection | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self._sftp_lock = threading.Lock()
        # Idle persistent shells; one per command running at the same time.
        self._idle: list[ShellSession] = []
        self.persistent_shell = persistent_shell
        # accept-new trusts a first-seen key; False keeps it in memory only (a dry
        # run writes nothing, known_hosts included).
        self.remember_host_keys = remember_host_keys
        # ansible_become: every command (and file) through ``sudo -n`` as this user;
        # None when the login user already is that user.
        target = getattr(host, "become_user", None) or "root"
        self.become_user: str | None = (
            target if getattr(host, "become", False) and target != self.user else None)
        # ProxyJump / kubespray's bastion: the TCP connection goes through this host.
        self.jump = getattr(host, "jump_host", None)
        self._gateway: fabric.Connection | None = None

    # -- connection -------------------------------------------------------
    def _where(self) -> str:
        via = f" via {self.jump.spec()}" if self.jump is not None else ""
        return f"host {self.host} ({self.user}@{self.address}:{self.port}{via})"

    def _sudo(self) -> str:
        """The prefix that runs a command as the become user (empty without become)."""
        if self.become_user is None:
            return ""
        # -n: never prompt (keys and NOPASSWD sudo only); -H: that user's HOME.
        return f"sudo -n -H -u {shlex.quote(self.become_user)} -- "

    def open(self) -> SSHConnection:
        with self._lock:
            if self._fabric is not None and self._transport_alive():
                return self
            self._fabric = self._connect()
            self._sftp = None
            self._idle = []
        if self.become_user is not None:
            self._check_sudo()
        return self

    def _check_sudo(self) -> None:
        # Once per connection: a refused sudo is one clear line, not a dead shell later.
        r = self._exec(f"{self._sudo()}true", "sudo", self.connect_timeout)
        if not r.ok:
            reason = (r.stderr.strip().splitlines() or [f"exit {r.exit_code}"])[-1]
            raise RemoteError(
                f"sudo to {self.become_user} refused for user {self.user}: {reason}",
                where=self._where(),
                hint="allow passwordless sudo (NOPASSWD) for ansible_user, or set "
                     "ansible_become: false",
            )

    def _transport_alive(self) -> bool:
        t = self._fabric.client.get_transport() if self._fabric else None
        return bool(t and t.is_active())

    def _connect(self) -> fabric.Connection:
        # The inventory is the source of truth for how to reach a host, so
        # ~/.ssh/config is not consulted (kubespray's ansible.cfg does the same
        # through ansible_ssh_common_args).
        config = fabric.Config(overrides={"load_ssh_configs": False})
        gateway = None
        if self.jump is not None:
            # fabric opens the jump host first and tunnels to the host through it
            # (direct-tcpip), as ssh -J does; same host-key policy for both.
            key = self.jump.key_file or self.key_file
            gateway = fabric.Connection(self.jump.address, user=self.jump.user or self.user,
                                        port=self.jump.port, config=config,
                                        connect_kwargs=self._connect_kwargs(key))
            self._host_key_policy(gateway.client)
            self._gateway = gateway
        fconn = fabric.Connection(self.address, user=self.user, port=self.port, config=config,
                                  connect_kwargs=self._connect_kwargs(self.key_file),
                                  gateway=gateway)
        self._host_key_policy(fconn.client)
        client = fconn.client
        try:
            fconn.open()
        except paramiko.BadHostKeyException:
            self._close_clients(fconn)
            raise RemoteError(
                f"host key mismatch for {_host_key_name(self.address, self.port)}",
                where=self._where(),
                hint=f"if the host was rebuilt, remove its line from {self.known_hosts}",
            ) from None
        except paramiko.AuthenticationException as exc:
            self._close_clients(fconn)
            key = self.key_file or "default keys"
            raise RemoteError(
                f"authentication refused for user {self.user} with {key}: {exc}",
                where=self._where(),
                hint="check ansible_user and ansible_ssh_private_key_file",
            ) from None
        except TimeoutError:
            self._close_clients(fconn)
            raise RemoteError(
                f"connection timed out after {self.connect_timeout:g}s",
                where=self._where(),
                hint="is the host up and reachable?",
            ) from None
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            self._close_clients(fconn)
            reasons = {str(e.strerror or e) for e in exc.errors.values()}
            raise RemoteError(
                f"cannot connect: {'; '.join(sorted(reasons))}",
                where=self._where(),
                hint="is sshd running and the address right?",
            ) from None
        except paramiko.SSHException as exc:
            self._close_clients(fconn)
            msg = str(exc)
            hint = None
            if "not found in known_hosts" in msg:
                msg = "host key not in known_hosts (strict policy)"
                hint = f"add it to {self.known_hosts} or use accept-new"
            elif "banner" in msg or "No existing session" in msg:
                msg = "no SSH greeting (the port answered, but not as an SSH server)"
                hint = "is sshd running and listening on that port?"
            raise RemoteError(msg, where=self._where(), hint=hint) from None
        except OSError as exc:
            self._close_clients(fconn)
            raise RemoteError(
                f"cannot connect: {exc.strerror or exc}", where=self._where()
            ) from None
        transport = client.get_transport()
        if transport is not None:
            # Keeps idle connections through NAT/conntrack during long waits.
            transport.set_keepalive(30)
            # Each command is a few small packets; with Nagle on, the second
            # waits for a delayed ACK (~40 ms a command).
            try:
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        return fconn

    def _close_clients(self, fconn: fabric.Connection) -> None:
        fconn.client.close()
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None

    def _connect_kwargs(self, key_file: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            # Here, not as fabric's connect_timeout, which rounds to whole seconds.
            "timeout": self.connect_timeout,
            "look_for_keys": key_file is None,
            "allow_agent": False,
            "banner_timeout": self.connect_timeout,
            "auth_timeout": self.connect_timeout,
        }
        if key_file:
            kwargs["key_filename"] = key_file
        return kwargs

    def _host_key_policy(self, client: paramiko.SSHClient) -> None:
        if self.policy == "ignore":
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            if os.path.exists(self.known_hosts):
                try:
                    client.get_host_keys().load(self.known_hosts)
                except (OSError, paramiko.SSHException) as exc:
                    raise RemoteError(
                        f"cannot read known_hosts {self.known_hosts}: {exc}", where=self._where()
                    ) from None
            if self.policy == "strict":
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:
                client.set_missing_host_key_policy(
                    _AcceptNew(self.known_hosts if self.remember_host_keys else None))

    def _transport(self) -> paramiko.Transport:
        if self._fabric is None or not self._transport_alive():
            self.open()
        transport = self._fabric.client.get_transport()
        assert transport is not None
        return transport

    # -- commands ---------------------------------------------------------
    def run(
        self,
        cmd: str,
        *,
        timeout: float | None = 60,
        check: bool = True,
        input: str | bytes | None = None,
        env: dict | None = None,
    ) -> Result:
        if input is None and self.persistent_shell:
            result = self._run_in_shell(with_env(cmd, env), cmd, timeout)
            if check and not result.ok:
                raise RemoteCommandError(self.host, cmd, result)
            return result
        result = self._exec(self._sudo() + "sh -c " + shlex.quote(with_env(cmd, env)), cmd,
                            timeout, input)
        if check and not result.ok:
            raise RemoteCommandError(self.host, cmd, result)
        return result

    def _exec(self, full: str, cmd: str, timeout: float | None,
              input: str | bytes | None = None) -> Result:
        """``full`` on its own exec channel (commands with stdin, the sudo check)."""
        try:
            chan = self._transport().open_session(timeout=self.connect_timeout)
        except paramiko.SSHException as exc:
            raise RemoteError(f"cannot open a channel: {exc}", where=self._where()) from None
        try:
            chan.exec_command(full)
            if input is not None:
                chan.sendall(input.encode() if isinstance(input, str) else input)
            chan.shutdown_write()
            result = self._collect(chan, cmd, timeout)
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"lost connection running `{cmd}`: {exc}", where=self._where()) from None
        finally:
            chan.close()
        return result

    def _run_in_shell(self, script: str, cmd: str, timeout: float | None) -> Result:
        for attempt in (1, 2):
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is None or not session.alive:
                try:
                    session = ShellSession(self._transport(), self.host, self.connect_timeout,
                                           shell=self._sudo() + "/bin/sh")
                except (OSError, paramiko.SSHException) as exc:
                    raise RemoteError(f"cannot open a channel: {exc}", where=self._where()) from None
            try:
                result = session.run(script, timeout)
            except ShellBroken as exc:
                session.close()
                # A shell that died while idle is replaced once; a command that
                # may have started is never run twice.
                if exc.sent or attempt == 2:
                    raise RemoteError(f"lost connection running `{cmd}`: {exc}",
                                      where=self._where()) from None
                continue
            except BaseException:
                session.close()
                raise
            with self._lock:
                self._idle.append(session)
            return result
        raise AssertionError("unreachable")

    def _collect(self, chan: paramiko.Channel, cmd: str, timeout: float | None) -> Result:
        out: list[bytes] = []
        err: list[bytes] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while chan.recv_ready():
                out.append(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            # exit-status arrives after the data on the same ordered transport,
            # so once it is in, one more drain gets everything.
            if chan.exit_status_ready() or chan.closed:
                while chan.recv_ready():
                    out.append(chan.recv(65536))
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                break
            wait = 1.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise RemoteTimeout(self.host, cmd, timeout)
                wait = min(wait, 1.0)
            select.select([chan], [], [], wait)
        code = chan.recv_exit_status() if chan.exit_status_ready() else -1
        return Result(
            code,
            b"".join(out).decode("utf-8", "replace"),
            b"".join(err).decode("utf-8", "replace"),
        )

    # -- files ------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None or self._sftp.sock.closed:
            self._transport()  # reconnects a dead transport first
            try:
                self._sftp = self._fabric.sftp()
            except paramiko.SSHException as exc:
                raise RemoteError(f"cannot start SFTP: {exc}", where=self._where()) from None
        return self._sftp

    def put(self, data: bytes, path: str, mode: int = 0o644) -> None:
        self._put_stream(io.BytesIO(data), path, mode)

    def put_file(self, local_path: str, remote_path: str, mode: int | None = None) -> None:
        if mode is None:
            mode = os.stat(local_path).st_mode & 0o7777
        with open(local_path, "rb") as fh:
            self._put_stream(fh, remote_path, mode)

    def _put_stream(self, stream, path: str, mode: int) -> None:
        if self.become_user is not None:
            self._put_as_become_user(stream, path, mode)
            return
        parent, base = os.path.split(path)
        tmp = f"{parent or '.'}/.{base}.{uuid.uuid4().hex[:8]}.tmp"
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                try:
                    sftp.putfo(stream, tmp, confirm=False)
                except FileNotFoundError:
                    self.run(f"mkdir -p {shlex.quote(parent or '.')}")
                    stream.seek(0)
                    sftp.putfo(stream, tmp, confirm=False)
                sftp.chmod(tmp, mode)
                # Readers see the old file or the new one, never half of one.
                sftp.posix_rename(tmp, path)
            except OSError as exc:
                try:
                    sftp.remove(tmp)
                except OSError:
                    pass
                reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
                raise RemoteError(f"cannot write {path}: {reason}", where=self._where()) from None

    def _put_as_become_user(self, stream, path: str, mode: int) -> None:
        # SFTP runs as the login user: upload to a private temp file, then move it
        # into place as the become user (owned by it, mode set, atomically renamed).
        staged = f"/tmp/.bootstrap-{uuid.uuid4().hex}.tmp"
        parent, base = os.path.split(path)
        final_tmp = f"{parent or '.'}/.{base}.{uuid.uuid4().hex[:8]}.tmp"
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                sftp.putfo(stream, staged, confirm=False)
                sftp.chmod(staged, 0o600)
            except OSError as exc:
                reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
                raise RemoteError(f"cannot stage {path} in /tmp: {reason}",
                                  where=self._where()) from None
        q = shlex.quote
        r = self.run(f"mkdir -p {q(parent or '.')} && install -m {mode:04o} {q(staged)} "
                     f"{q(final_tmp)} && mv -f {q(final_tmp)} {q(path)}; rc=$?; "
                     f"rm -f {q(staged)} {q(final_tmp)}; exit $rc", check=False)
        if not r.ok:
            reason = (r.stderr.strip().splitlines() or [f"exit {r.exit_code}"])[-1]
            raise RemoteError(f"cannot write {path}: {reason}", where=self._where())

    def get(self, path: str) -> bytes:
        """Read a remote file; a missing file raises ``FileNotFoundError``."""
        if self.become_user is not None:
            return self._get_as_become_user(path)
        with self._sftp_lock:
            sftp = self._sftp_client()
            try:
                with sftp.open(path, "rb") as fh:
                    fh.prefetch()
                    return fh.read()
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, f"{self.host}: no such file", path) from None
            except OSError as exc:
                raise RemoteError(f"cannot read {path}: {exc}", where=self._where()) from None

    def _get_as_become_user(self, path: str) -> bytes:
        q = shlex.quote(path)
        r = self.run(f"if [ -e {q} ]; then base64 < {q}; else exit 3; fi", check=False)
        if r.exit_code == 3:
            raise FileNotFoundError(errno.ENOENT, f"{self.host}: no such file", path)
        if not r.ok:
            reason = (r.stderr.strip().splitlines() or [f"exit {r.exit_code}"])[-1]
            raise RemoteError(f"cannot read {path}: {reason}", where=self._where())
        return base64.b64decode(r.stdout)

    def close(self) -> None:
        with self._lock:
            for session in self._idle:
                session.close()
            self._idle.clear()
            if self._sftp is not None:
                self._sftp.close()
                self._sftp = None
            if self._fabric is not None:
                self._fabric.close()
                self._fabric = None
            if self._gateway is not None:
                self._gateway.close()
                self._gateway = None

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHConnection({self.host!r}, {self.user}@{self.address}:{self.port})"
