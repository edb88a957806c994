"""wait_for: poll a TCP port, an HTTP(S) URL or a path from the host itself.

The poll loop runs on the host (its /usr/bin/python3, fed on stdin), so a
wait costs one round trip however long it takes, and "reachable" means
reachable from where the service's clients are.
"""

from __future__ import annotations

import json

from bootstrap.engine.ops.base import Command, OpContext, OpError, OpGen, as_list, check_args

WAIT_ARGS = {"port", "host", "url", "ca", "cert", "key", "status", "timeout", "delay", "path", "state"}

_SCRIPT = r"""
import json, os, socket, ssl, sys, time, urllib.request
a = json.loads(sys.argv[1])
deadline = time.monotonic() + float(a["timeout"])
time.sleep(float(a.get("delay") or 0))
last = "not tried"
def probe():
    if a.get("path"):
        present = os.path.exists(a["path"])
        return present == (a.get("state", "present") == "present"), "path " + ("exists" if present else "missing")
    if a.get("url"):
        ctx = ssl.create_default_context(cafile=a.get("ca")) if a.get("ca") else ssl.create_default_context()
        if a.get("cert"):
            ctx.load_cert_chain(a["cert"], a.get("key"))
        try:
            with urllib.request.urlopen(a["url"], timeout=5, context=ctx) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        return code in a["status"], "HTTP %d" % code
    with socket.create_connection((a.get("host") or "127.0.0.1", int(a["port"])), timeout=3):
        pass
    if a.get("state") == "stopped":
        return False, "port open"
    return True, "open"
while True:
    try:
        ok, last = probe()
    except Exception as e:
        ok, last = (a.get("state") == "stopped" and not a.get("url") and not a.get("path")), repr(e)
    if ok:
        sys.exit(0)
    if time.monotonic() >= deadline:
        print("timed out after %ss waiting for %s: %s" % (a["timeout"], a["what"], last), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.5)
"""


def op_wait_for(ctx: OpContext, args: dict) -> OpGen:
    check_args("wait_for", args, WAIT_ARGS)
    spec = dict(args)
    spec["timeout"] = float(args.get("timeout") or 60)
    if args.get("url"):
        spec["what"] = args["url"]
        spec["status"] = [int(s) for s in as_list(args.get("status") or 200)]
    elif args.get("port"):
        spec["what"] = f"{args.get('host') or '127.0.0.1'}:{args['port']}"
    elif args.get("path"):
        spec["what"] = args["path"]
    else:
        raise OpError("wait_for: needs port, url or path")
    payload = json.dumps(spec)
    # An explicit interpreter: a login shell's PATH may put a pyenv shim first.
    python = ctx.vars.get("ansible_python_interpreter") or "/usr/bin/python3"
    yield Command(
        f"{python} -c {_quote(_SCRIPT)} {_quote(payload)}",
        timeout=spec["timeout"] + float(args.get("delay") or 0) + 30,
        changes=False,
        display=f"wait_for {spec['what']} (timeout {spec['timeout']:g}s)",
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
