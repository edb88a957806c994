"""Generate bootstrap/agents/apiserver/handlers/protobuf_table.json (ADR 0001).

The table lists, for every built-in kind the API server serves, the protobuf
messages kubectl's typed clients may send, with upstream's field numbers. It is
derived from two published sources in the kubernetes/api and
kubernetes/apimachinery repositories at one release tag:

- ``generated.proto`` (go-to-protobuf's output): messages, field numbers,
  scalar/message types, ``repeated`` and ``map<,>``;
- the Go struct tags in the same packages' ``*.go`` files: the JSON name of each
  protobuf field (``protobuf:"...,name=uID"`` is ``json:"uid"``), ``,inline``
  embedding, and whether a zero value is meaningful (a pointer, or a field
  without ``omitempty``), which the wire format cannot tell.

Run with git directories of both repositories (the ``fetch`` mirrors or clones):

    python tools/gen_protobuf_table.py --api DIR --apimachinery DIR --ref v0.32.9
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / (
    "bootstrap/agents/apiserver/handlers/protobuf_table.json")

# Messages the decoder maps to JSON itself (their JSON form is not an object).
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "microtime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "rawjson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "rawjson",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "intorstr",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "quantity",
}
# Bodies of subresources, whose kinds are not resources of their own.
SUBRESOURCE_KINDS = [("", "v1", "Binding"), ("authentication.k8s.io", "v1", "TokenRequest"),
                     ("autoscaling", "v1", "Scale"), ("policy", "v1", "Eviction")]
SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double",
           "float"}

_FIELD = re.compile(r"^\s*(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
_MAP = re.compile(r"^\s*map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")
_GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`")


def _git(repo: str, ref: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True).stdout


def parse_proto(text: str) -> tuple[str, list[str], dict]:
    """(package, imports, {message: {"fields": [...], "wrapper": bool}})."""
    package = re.search(r"^package ([\w.]+);", text, re.M).group(1)
    imports = re.findall(r'^import "([^"]+)";', text, re.M)
    messages: dict = {}
    comment: list[str] = []
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            comment.append(stripped)
            continue
        m = re.match(r"^message (\w+) \{", stripped)
        if m:
            current = {"fields": [], "nullable": any("+protobuf.nullable=true" in c
                                                     for c in comment)}
            messages[m.group(1)] = current
        elif stripped == "}":
            current = None
        elif current is not None:
            f = _FIELD.match(line)
            mm = _MAP.match(line)
            if f:
                label, typ, name, num = f.groups()
                current["fields"].append({"name": name, "num": int(num), "type": typ,
                                          "repeated": label == "repeated"})
            elif mm:
                key, val, name, num = mm.groups()
                current["fields"].append({"name": name, "num": int(num), "type": val,
                                          "map": key})
        comment = [] if stripped and not stripped.startswith("//") else comment
    return package, imports, messages


def parse_go_tags(sources: list[str]) -> dict:
    """{(struct, proto name): (json name or "" for inline, zero_meaningful)}."""
    out: dict = {}
    for text in sources:
        struct = None
        for line in text.splitlines():
            m = re.match(r"^type (\w+) struct \{", line)
            if m:
                struct = m.group(1)
                continue
            if line.startswith("}"):
                struct = None
                continue
            if struct is None or line.lstrip().startswith("//"):
                continue
            g = _GO_FIELD.match(line)
            if not g or 'protobuf:"' not in g.group(3):
                continue
            _, gotype, tags = g.groups()
            pname = re.search(r'protobuf:"[^"]*name=(\w+)', tags)
            jtag = re.search(r'json:"([^"]*)"', tags)
            if not pname or not jtag:
                continue
            jname, *opts = jtag.group(1).split(",")
            if jname == "-":
                continue
            inline = "inline" in opts and not jname
            pointer = gotype.startswith("*")
            out[(struct, pname.group(1))] = ("" if inline else jname,
                                             pointer or "omitempty" not in opts)
    return out


def _resolve(typ: str, package: str) -> str:
    if typ in SCALARS:
        return typ
    typ = typ.lstrip(".")  # a few files write fully qualified names with a leading dot
    return typ if "." in typ else f"{package}.{typ}"


def load_package(repos: dict, ref: str, import_path: str) -> tuple[str, list[str], dict]:
    """One generated.proto with its Go tags, as {full message name: entry}."""
    repo_key, sub = ("api", import_path.removeprefix("k8s.io/api/")) if import_path.startswith(
        "k8s.io/api/") else ("apimachinery", import_path.removeprefix("k8s.io/apimachinery/"))
    repo = repos[repo_key]
    pkg_dir = sub.rsplit("/", 1)[0]
    package, imports, messages = parse_proto(_git(repo, ref, "show", f"{ref}:{sub}"))
    go_files = [p for p in _git(repo, ref, "ls-tree", "--name-only", ref, pkg_dir + "/")
                .split() if p.endswith(".go") and not p.endswith("_test.go")
                and "generated" not in p.rsplit("/", 1)[-1]]
    tags = parse_go_tags([_git(repo, ref, "show", f"{ref}:{p}") for p in go_files])
    table = {}
    for name, msg in messages.items():
        full = f"{package}.{name}"
        fields = msg["fields"]
        if msg["nullable"] and len(fields) == 1 and fields[0]["name"] == "items":
            # A Go named slice (type ExtraValue []string): JSON is the bare list.
            table[full] = {"list": _resolve(fields[0]["type"], package)}
            continue
        rows = []
        for f in fields:
            jname, keep_zero = tags.get((name, f["name"]), (f["name"], False))
            mode = "m" if "map" in f else "r" if f.get("repeated") else ""
            flags = ("i" if jname == "" else "") + ("z" if keep_zero else "")
            rows.append([f["num"], jname, _resolve(f["type"], package), mode, flags])
        table[full] = {"fields": sorted(rows)}
    return package, imports, table


def group_dir(group: str) -> str:
    return "core" if group == "" else group.split(".")[0]


def build(repos: dict, ref: str, served: list[tuple[str, str, str]]) -> dict:
    messages: dict = {}
    loaded: set[str] = set()
    pending = []
    kinds: dict = {}
    skipped = set()
    for group, version, kind in served:
        path = f"k8s.io/api/{group_dir(group)}/{version}/generated.proto"
        try:
            _git(repos["api"], ref, "cat-file", "-e", f"{ref}:{path.removeprefix('k8s.io/api/')}")
        except subprocess.CalledProcessError:
            skipped.add(f"{group}/{version}")  # not in k8s.io/api (aggregator, apiextensions)
            continue
        api_version = f"{group}/{version}" if group else version
        kinds[f"{api_version}/{kind}"] = (
            f"k8s.io.api.{group_dir(group)}.{version}.{kind}")
        pending.append(path)
    while pending:
        path = pending.pop()
        if path in loaded:
            continue
        loaded.add(path)
        _, imports, table = load_package(repos, ref, path)
        messages.update(table)
        pending.extend(imports)
    kinds = {k: v for k, v in kinds.items() if v in messages}
    reachable: set[str] = set()
    stack = list(kinds.values())
    while stack:
        name = stack.pop()
        if name in reachable or name in SPECIAL or name in SCALARS:
            continue
        reachable.add(name)
        entry = messages[name]
        stack.extend([entry["list"]] if "list" in entry else [r[2] for r in entry["fields"]])
    return {"source": f"kubernetes/api and kubernetes/apimachinery {ref}",
            "skipped_group_versions": sorted(skipped),
            "special": SPECIAL, "kinds": dict(sorted(kinds.items())),
            "messages": {k: messages[k] for k in sorted(reachable)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", required=True, help="git dir of github.com/kubernetes/api")
    ap.add_argument("--apimachinery", required=True,
                    help="git dir of github.com/kubernetes/apimachinery")
    ap.add_argument("--ref", default="v0.32.9", help="release tag in both repositories")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bootstrap.api import resources

    served = sorted({(r.group, r.version, r.kind) for r in resources.CATALOGUE}
                    | set(SUBRESOURCE_KINDS))
    table = build({"api": args.api, "apimachinery": args.apimachinery}, args.ref, served)
    Path(args.out).write_text(json.dumps(table, separators=(",", ":"), sort_keys=False) + "\n")
    print(f"{args.out}: {len(table['kinds'])} kinds, {len(table['messages'])} messages; "
          f"not in k8s.io/api: {', '.join(table['skipped_group_versions']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
