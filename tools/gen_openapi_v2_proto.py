"""Generate bootstrap/api/openapi_v2_proto.json: the messages of gnostic's
openapiv2/OpenAPIv2.proto (package openapi.v2), which is what
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` carries and what
client-go's ``OpenAPISchema()`` decodes.

The table lists each message's fields (name, number, type, repeated, oneof); the API
server builds protobuf descriptors from it at start (bootstrap.api.openapi_pb), so no
protoc and no copied generated code. Run with a git directory of
google/gnostic-models (the ``fetch`` mirror or a clone):

    python tools/gen_openapi_v2_proto.py --gnostic DIR [--ref HEAD]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "bootstrap/api/openapi_v2_proto.json"
PROTO = "openapiv2/OpenAPIv2.proto"
_FIELD = re.compile(r"^\s*(repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")


def parse(text: str) -> dict:
    messages: dict[str, list] = {}
    current: str | None = None
    oneof: str | None = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^message\s+(\w+)\s*\{", line)
        if m:
            current = m.group(1)
            messages[current] = []
            continue
        m = re.match(r"^oneof\s+(\w+)\s*\{", line)
        if m:
            oneof = m.group(1)
            continue
        if line == "}":
            if oneof is not None:
                oneof = None
            else:
                current = None
            continue
        m = _FIELD.match(line)
        if m and current is not None:
            messages[current].append([m.group(3), int(m.group(4)), m.group(2),
                                      bool(m.group(1)), oneof])
    return messages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gnostic", required=True, help="git directory of google/gnostic-models")
    p.add_argument("--ref", default="HEAD")
    args = p.parse_args()
    commit = subprocess.run(["git", "-C", args.gnostic, "rev-parse", args.ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    text = subprocess.run(["git", "-C", args.gnostic, "show", f"{commit}:{PROTO}"],
                          check=True, capture_output=True, text=True).stdout
    table = {"source": f"google/gnostic-models {commit} {PROTO}", "package": "openapi.v2",
             "messages": parse(text)}
    OUT.write_text(json.dumps(table, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{OUT}: {len(table['messages'])} messages")


if __name__ == "__main__":
    main()
