"""The common agent process (component-base + client-go leaderelection).

``agent_parser`` gives the kube-* flags every control-plane agent shares, with
upstream's names and defaults; ``run_agent`` builds the client, the shared
informer factory and the event recorder, serves /healthz /livez /readyz and
/metrics over HTTPS (see ``bootstrap.api.agentserver`` for who may read what),
and runs ``main`` — only while holding the Lease when --leader-elect is on.
Losing the lease ends the process with exit code 1, as upstream: a new leader
may already be acting, so carrying on would mean double action.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from prometheus_client import Gauge

from bootstrap.api import agentauth, agentserver
from bootstrap.api.client import Client, KubeconfigError
from bootstrap.api.events import EventRecorder
from bootstrap.api.informer import SharedInformerFactory
from bootstrap.api.leader import JITTER, LeaderElector
from bootstrap.api.metrics import REGISTRY

log = logging.getLogger(__name__)

Main = Callable[[Client, SharedInformerFactory, EventRecorder], Awaitable[None]]

LEADER_STATUS = Gauge("leader_election_master_status",
                      "Gauge of if the reporting system is master of the relevant lease, "
                      "0 indicates backup, 1 indicates master. 'name' is the string used to "
                      "identify the lease.", ["name"], registry=REGISTRY)

SHUTDOWN_EVENTS_TIMEOUT = 5.0  # an unreachable API server must not hold up the exit
WATCHDOG_SLACK = 20.0  # upstream's leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("15s", "1m30s", "500ms", "-1.5h", "0"), in seconds."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (use Go syntax: 15s, 1m30s, 500ms)") from None


def _level(text: str) -> int:
    """klog's -v: pflag also takes the shorthand as -v=4, which argparse hands over as "=4"."""
    try:
        return int(text.removeprefix("="))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid log level {text!r} (use -v 0..10)") from None


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, which pflag uses for --flag=value."""
    value = text.strip()
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def add_version_flag(p: argparse.ArgumentParser) -> None:
    """``--version``: upstream's "Kubernetes v1.32.0" with the install's own version."""
    from bootstrap import component_version

    p.add_argument("--version", action="version", version=f"Kubernetes {component_version()}",
                   help="Print version information and quit")


def agent_parser(prog: str, description: str, *, secure_port: int,
                 leader_elect_default: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_version_flag(p)
    p.add_argument("--kubeconfig", help="Path to a kubeconfig file (in-cluster config "
                   "when empty)")
    p.add_argument("--master", help="The address of the API server (overrides the "
                   "kubeconfig's server)")
    le = p.add_argument_group("leader election")
    le.add_argument("--leader-elect", type=parse_bool, nargs="?", const=True,
                    default=leader_elect_default, metavar="BOOL",
                    help="Start a leader election client and gain leadership before "
                    "executing the main loop")
    le.add_argument("--leader-elect-lease-duration", type=_duration_arg, default=15.0,
                    metavar="DURATION")
    le.add_argument("--leader-elect-renew-deadline", type=_duration_arg, default=10.0,
                    metavar="DURATION")
    le.add_argument("--leader-elect-retry-period", type=_duration_arg, default=2.0,
                    metavar="DURATION")
    le.add_argument("--leader-elect-resource-lock", default="leases", choices=["leases"])
    le.add_argument("--leader-elect-resource-name", default=None,
                    help="The name of the Lease (default: the component name)")
    le.add_argument("--leader-elect-resource-namespace", default="kube-system")
    srv = p.add_argument_group("secure serving")
    srv.add_argument("--bind-address", default="0.0.0.0")
    srv.add_argument("--secure-port", type=int, default=secure_port,
                     help="HTTPS port for health and metrics; 0 disables serving")
    srv.add_argument("--cert-dir", default="",
                     help="Where the self-signed serving cert is kept when "
                     "--tls-cert-file is not given (in memory when empty)")
    srv.add_argument("--tls-cert-file")
    srv.add_argument("--tls-private-key-file")
    auth = p.add_argument_group("authentication and authorization of /metrics")
    auth.add_argument("--client-ca-file")
    auth.add_argument("--authentication-kubeconfig")
    auth.add_argument("--authorization-kubeconfig")
    auth.add_argument("--requestheader-client-ca-file",
                      help="CA of the front proxy whose certificates may assert users in "
                      "request headers")
    auth.add_argument("--requestheader-allowed-names", default="",
                      help="Common names of front-proxy certificates allowed (any when empty)")
    auth.add_argument("--requestheader-username-headers", default="x-remote-user")
    auth.add_argument("--requestheader-group-headers", default="x-remote-group")
    auth.add_argument("--requestheader-extra-headers-prefix", default="x-remote-extra-")
    auth.add_argument("--authorization-always-allow-paths",
                      default="/healthz,/readyz,/livez")
    p.add_argument("-v", "--v", type=_level, default=0, metavar="N",
                   help="Log verbosity: 0 = the component's info and warnings, "
                   "1 or more = debug")
    return p


def configure_logging(verbosity: int, component_logger: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(levelname).1s%(asctime)s %(name)s] %(message)s", "%m%d %H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.DEBUG if verbosity >= 1 else logging.INFO
    for name in (component_logger, __name__, "bootstrap.api.leader"):
        logging.getLogger(name).setLevel(level)
    if verbosity >= 1:
        logging.getLogger("bootstrap").setLevel(logging.DEBUG)


def build_client(args: argparse.Namespace, kubeconfig: str | None = None) -> Client:
    path = kubeconfig if kubeconfig is not None else args.kubeconfig
    client = Client.from_kubeconfig(path) if path else Client.in_cluster()
    if args.master and kubeconfig is None:
        client.server = args.master.rstrip("/")
    return client


def identity() -> str:
    """``<hostname>_<uuid>``, as upstream's leader election ids."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class _SetupError(Exception):
    """A flag, kubeconfig or certificate problem: one line on stderr, exit 2."""


async def run_agent(args: argparse.Namespace, name: str, main: Main, *,
                    ready: Callable[[], bool] | None = None, client: Client | None = None,
                    stop: asyncio.Event | None = None) -> int:
    """``client`` and ``stop`` replace the kubeconfig client and the signals (tests)."""
    configure_logging(args.v, _package(main))
    try:
        client, authn, authz = _clients(args, client)
        factory = SharedInformerFactory(client)
        recorder = EventRecorder(client, name, socket.gethostname())
        checks = {"/healthz": {"ping": lambda: True},
                  "/livez": {"ping": lambda: True},
                  "/readyz": {"ping": lambda: True,
                              "informer-sync": ready or (lambda: factory.has_synced)}}
        runner = await _serve(args, name, checks, authn, authz)
    except _SetupError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _supervise(args, name, main, client, factory, recorder, checks, stop)
    finally:
        await recorder.close(timeout=SHUTDOWN_EVENTS_TIMEOUT)
        await factory.stop()
        if runner is not None:
            await runner.cleanup()
        for c in {id(x): x for x in (client, authn, authz) if x is not None}.values():
            await c.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _clients(args: argparse.Namespace, client: Client | None
             ) -> tuple[Client, Client | None, Client | None]:
    """The agent's client and the delegated authentication / authorization clients."""
    problem = _election_flags_problem(args) if args.leader_elect else None
    if problem:
        raise _SetupError(problem)
    try:
        client = client or build_client(args)
        authn = build_client(args, args.authentication_kubeconfig) \
            if args.authentication_kubeconfig else None
        authz_path = args.authorization_kubeconfig or args.authentication_kubeconfig
        authz = build_client(args, authz_path) if authz_path else None
    except (KubeconfigError, OSError, ValueError) as exc:
        hint = "" if args.kubeconfig else " (pass --kubeconfig outside a pod)"
        raise _SetupError(f"{exc}{hint}") from None
    return client, authn, authz


async def _serve(args: argparse.Namespace, name: str, checks: dict,
                 authn: Client | None, authz: Client | None):
    """Start the HTTPS endpoint (none with --secure-port 0, as upstream)."""
    if not args.secure_port:
        return None
    try:
        ctx = agentserver.serving_context(name, args.bind_address, args.tls_cert_file,
                                          args.tls_private_key_file, args.cert_dir or None,
                                          args.client_ca_file,
                                          args.requestheader_client_ca_file)
    except (OSError, ValueError) as exc:
        raise _SetupError(f"TLS files (--tls-cert-file, --tls-private-key-file, --cert-dir, "
                          f"--client-ca-file, --requestheader-client-ca-file): {exc}") from None
    try:
        request_header = None
        if args.requestheader_client_ca_file:
            request_header = agentauth.RequestHeader(
                agentauth.load_cas(args.requestheader_client_ca_file),
                frozenset(_csv(args.requestheader_allowed_names)),
                tuple(h.lower() for h in _csv(args.requestheader_username_headers)),
                tuple(h.lower() for h in _csv(args.requestheader_group_headers)),
                tuple(h.lower() for h in _csv(args.requestheader_extra_headers_prefix)))
        auth = agentauth.DelegatedAuth(authn, authz,
                                       client_cas=agentauth.load_cas(args.client_ca_file),
                                       request_header=request_header)
    except (OSError, ValueError) as exc:
        raise _SetupError(f"client CAs (--client-ca-file, --requestheader-client-ca-file): "
                          f"{exc}") from None
    always = set(_csv(args.authorization_always_allow_paths))
    app = agentserver.health_app(name, checks, auth, always)
    try:
        runner, port = await agentserver.serve(app, args.bind_address, args.secure_port, ctx)
    except OSError as exc:
        raise _SetupError(f"cannot listen on {args.bind_address}:{args.secure_port}: "
                          f"{exc.strerror}") from None
    log.info("%s: serving securely on %s:%d", name, args.bind_address, port)
    return runner


async def _supervise(args: argparse.Namespace, name: str, main: Main, client: Client,
                     factory: SharedInformerFactory, recorder: EventRecorder,
                     checks: dict, stop: asyncio.Event) -> int:
    """Run main (while leading, with --leader-elect) until a signal, main's end or the
    loss of the lease; returns the exit code."""
    main_done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def lead() -> None:
        try:
            await main(client, factory, recorder)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported through main_done
            if not main_done.done():
                main_done.set_exception(exc)
            return
        if not main_done.done():
            main_done.set_result(None)

    lease_name = args.leader_elect_resource_name or name
    if args.leader_elect:
        async def leading() -> None:
            LEADER_STATUS.labels(lease_name).set(1)
            log.info("successfully acquired lease %s/%s",
                     args.leader_elect_resource_namespace, lease_name)
            try:
                await lead()
            finally:
                LEADER_STATUS.labels(lease_name).set(0)

        elector = LeaderElector(
            client, args.leader_elect_resource_namespace, lease_name, identity(),
            args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
            args.leader_elect_retry_period, on_started_leading=leading,
            on_new_leader=lambda who: log.info("new leader elected: %s", who))
        checks["/healthz"]["leaderElection"] = _lease_watchdog(elector)
        LEADER_STATUS.labels(lease_name).set(0)
        log.info("attempting to acquire leader lease %s/%s...",
                 args.leader_elect_resource_namespace, lease_name)
        campaign = asyncio.create_task(elector.run(), name="leader-election")
    else:
        campaign = asyncio.create_task(lead(), name="main")
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({campaign, stopper, main_done}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("%s: shutting down", name)
            return 0
        if main_done.done():
            exc = main_done.exception()
            if exc is None:
                return 0
            log.error("%s: %s", name, exc, exc_info=exc)
            return 1
        # The elector returned: the lease was lost, and another process may lead now.
        log.error("leaderelection lost")
        return 1
    finally:
        for task in (campaign, stopper):
            task.cancel()
        await asyncio.gather(campaign, stopper, return_exceptions=True)


def _election_flags_problem(args: argparse.Namespace) -> str | None:
    """client-go's NewLeaderElector checks, worded with our flag names."""
    lease, renew, retry = (args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                           args.leader_elect_retry_period)
    if min(lease, renew, retry) <= 0:
        return "--leader-elect-lease-duration, -renew-deadline and -retry-period must be > 0"
    if lease <= renew:
        return (f"--leader-elect-lease-duration ({lease:g}s) must be greater than "
                f"--leader-elect-renew-deadline ({renew:g}s)")
    if renew <= JITTER * retry:
        return (f"--leader-elect-renew-deadline ({renew:g}s) must be greater than "
                f"{JITTER:g} x --leader-elect-retry-period ({retry:g}s)")
    return None


def _lease_watchdog(elector: LeaderElector) -> Callable[[], bool]:
    """Upstream's leader-election healthz adaptor: a leader whose lease has not been
    renewed for lease duration + 20 s is unhealthy (it hangs without noticing)."""
    def check() -> bool:
        if not elector.is_leader:
            return True
        return time.monotonic() - elector.observed_at <= elector.lease_duration + WATCHDOG_SLACK
    return check


def _csv(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _package(main: Callable) -> str:
    module = getattr(main, "__module__", "") or ""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["bootstrap", "agents"] else module


def cli(parser: argparse.ArgumentParser, name: str, main: Main, argv: list[str] | None = None,
        *, ready: Callable[[], bool] | None = None) -> int:
    """Parse, run, return the exit code: the body of an agent's console script."""
    args = parser.parse_args(argv)
    return asyncio.run(run_agent(args, name, main, ready=ready))


__all__ = ["agent_parser", "cli", "parse_duration", "run_agent"]


async def run_until_signal(coro_factory: Callable[[], Awaitable[object]]) -> None:
    """Run one coroutine until SIGTERM or SIGINT cancels it (the agents with no
    leader election or informer supervision of their own: DNS and kube-proxy)."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(coro_factory())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
