#!/usr/bin/env bash
# The main job on the embedded default, as far as the project goes today.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
export PATH="$here/.venv/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bootstrap config print init-defaults > "$work/cluster.yaml"
bootstrap init phase certs all --config "$work/cluster.yaml" --cert-dir "$work/pki"
openssl verify -CAfile "$work/pki/ca.crt" "$work/pki/apiserver.crt"
bootstrap certs check-expiration --cert-dir "$work/pki"
bootstrap inventory check -i "$here/inventories/sandbox-stacked/hosts.yaml"
