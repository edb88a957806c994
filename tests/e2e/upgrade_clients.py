"""The two steady clients of the zero-downtime upgrade test and benchmark, run on a node.

One process on a sandbox host (over SSH; Python's standard library only, so it
runs on any host) with two threads:

* API: alternately reads and writes (GET, then a merge PATCH of a counter) one
  ConfigMap through the node's HA endpoint (haproxy on 127.0.0.1:6443) over a
  keep-alive connection, as the admin user;
* HTTP: GETs a Deployment's page through its Service's NodePort on the node's
  own address (sandbox hosts have no default route, so a ClusterIP is only
  routable from pods there), a new connection per request (busybox httpd speaks
  HTTP/1.0).

A request fails on any error or any status but 2xx. The only retry allowed is
one re-send on a new connection when a reused keep-alive connection turned out
closed before any response byte (the server may close an idle connection at
any time; HTTP/1.1 clients re-send then); retries are counted apart. The
clients run until a stop file appears (or for a fixed time) and print their
counts as one JSON line.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import yaml

from bootstrap.config.inventory import load_inventory
from bootstrap.remote.pool import close_all, connect_all

REMOTE_DIR = "/tmp/ug-clients"
STOP = f"{REMOTE_DIR}/stop"
READY = f"{REMOTE_DIR}/ready"

SCRIPT = r'''
import http.client, json, os, ssl, sys, threading, time

d, duration = sys.argv[1], float(sys.argv[3])
svc, svc_port = sys.argv[2].rsplit(":", 1)
stop_file, ready_file = os.path.join(d, "stop"), os.path.join(d, "ready")
ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
# haproxy passes TLS through; the API servers' certificates name 127.0.0.1 (localhost-lb).
ctx.load_cert_chain(os.path.join(d, "admin.crt"), os.path.join(d, "admin.key"))
started = time.monotonic()
CLOSED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError, http.client.BadStatusLine, ssl.SSLEOFError,
          ssl.SSLZeroReturnError)
CM = "/api/v1/namespaces/default/configmaps/ug-probe"


def running():
    if duration > 0:
        return time.monotonic() - started < duration
    return not os.path.exists(stop_file)


class Stats:
    def __init__(self):
        self.ok = self.failed = self.retries = 0
        self.errors = []

    def fail(self, what):
        self.failed += 1
        if len(self.errors) < 20:
            self.errors.append("%.1fs %s" % (time.monotonic() - started, what))


api, web = Stats(), Stats()


class Api:
    def __init__(self):
        self.conn, self.used = None, False

    def _send(self, method, path, body):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", 6443, context=ctx, timeout=10)
            self.used = False
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = ("application/merge-patch+json" if method == "PATCH"
                                       else "application/json")
        reused = self.used
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except CLOSED as exc:
            self.conn.close()
            self.conn = None
            return None, reused, exc
        self.used = True
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return (resp.status, data), reused, None

    def call(self, method, path, body=None, ok=(200, 201)):
        try:
            got, reused, exc = self._send(method, path, body)
            if got is None and reused:
                api.retries += 1  # a keep-alive connection closed under us: once, anew
                got, _, exc = self._send(method, path, body)
        except Exception as exc2:  # timeouts, refused connections: failures
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            api.fail("%s %s: %r" % (method, path, exc2))
            return False
        if got is None:
            api.fail("%s %s: %r" % (method, path, exc))
            return False
        status, data = got
        if status not in ok:
            api.fail("%s %s: %s %s" % (method, path, status, data[:200]))
            return False
        api.ok += 1
        return True


def run_api():
    a = Api()
    a.call("POST", "/api/v1/namespaces/default/configmaps",
           json.dumps({"metadata": {"name": "ug-probe"}, "data": {"n": "0"}}),
           ok=(200, 201, 409))
    i = 0
    while running():
        i += 1
        if i % 2:
            a.call("GET", CM)
        else:
            a.call("PATCH", CM, json.dumps({"data": {"n": str(i)}}))
        time.sleep(0.05)


def run_web():
    while running():
        try:
            c = http.client.HTTPConnection(svc, int(svc_port), timeout=5)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and body.startswith(b"hello from"):
                web.ok += 1
            else:
                web.fail("GET %s: %s %s" % (svc, r.status, body[:100]))
        except Exception as exc:
            web.fail("GET %s: %r" % (svc, exc))
        time.sleep(0.05)


threads = [threading.Thread(target=f) for f in (run_api, run_web)]
for t in threads:
    t.start()
while running() and not (api.ok and web.ok):
    time.sleep(0.1)
open(ready_file, "w").close()
for t in threads:
    t.join()
print(json.dumps({"seconds": round(time.monotonic() - started, 1),
                  "api": api.__dict__, "http": web.__dict__}))
'''


def admin_credentials(admin: Path) -> dict[str, bytes]:
    conf = yaml.safe_load(admin.read_text())
    user = conf["users"][0]["user"]
    cluster = conf["clusters"][0]["cluster"]
    return {"admin.crt": base64.b64decode(user["client-certificate-data"]),
            "admin.key": base64.b64decode(user["client-key-data"]),
            "ca.crt": base64.b64decode(cluster["certificate-authority-data"])}


class Clients:
    """``start()`` returns once both clients have been answered; ``stop()`` returns
    the counts ``{"seconds", "api": {...}, "http": {...}}``."""

    def __init__(self, inventory: Path, host: str, service: str, admin: Path,
                 duration: float = 0.0):
        # service: "ADDRESS:PORT" the HTTP client GETs (the Service's NodePort).
        self.inventory, self.host, self.service = inventory, host, service
        self.admin, self.duration = admin, duration
        self.result: dict | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._conns: list[dict] = []

    def _connect(self):
        inv = load_inventory(self.inventory)
        conns = connect_all([inv.hosts[self.host]])
        self._conns.append(conns)
        return conns[self.host]

    def start(self, timeout: float = 120) -> None:
        control = self._connect()
        control.run(f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR}")
        for name, data in admin_credentials(self.admin).items():
            control.put(data, f"{REMOTE_DIR}/{name}", 0o600)
        control.put(SCRIPT.encode(), f"{REMOTE_DIR}/clients.py", 0o600)
        runner = self._connect()  # its own connection: the command runs for long

        def run() -> None:
            try:
                out = runner.run(f"python3 {REMOTE_DIR}/clients.py {REMOTE_DIR} "
                                 f"{self.service} {self.duration:g}", timeout=7200)
                self.result = json.loads(out.stdout.strip().splitlines()[-1])
            except BaseException as exc:  # reported by stop()
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while control.run(f"test -e {READY}", check=False).exit_code != 0:
            if self.error is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the clients on {self.host} never got an answer: "
                                   f"{self.error or self.result}")
            time.sleep(0.5)
        self._control = control

    def stop(self) -> dict:
        try:
            if self._thread is not None:
                if self.duration <= 0:
                    self._conns[0][self.host].run(f"touch {STOP}", check=False)
                self._thread.join(self.duration + 120)
        finally:
            for conns in self._conns:
                close_all(conns)
            self._conns.clear()
        if self.result is None:
            raise RuntimeError(f"the clients on {self.host} printed no result: {self.error}")
        return self.result
