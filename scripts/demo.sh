#!/usr/bin/env bash
# The main job on the embedded default: sandbox hosts -> cluster up -> see it work.
# Today the cluster is the PKI, the agents installed on every host, and a
# 3-member etcd with mutual TLS; later stages (control plane, nodes) join the
# same `cluster up`. Run as root on Debian 12. Leaves the sandbox running;
# remove it with: .venv/bin/bootstrap sandbox down --name demo
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
export PATH="$here/.venv/bin:$PATH"
name=${BOOTSTRAP_DEMO_NAME:-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "sandbox up: 3 hosts (systemd, sshd, own IP) made of Linux namespaces"
inventory=$(bootstrap sandbox up --name "$name" --hosts 3)
bootstrap inventory check -i "$inventory"

step "cluster up: PKI, host preparation, agents wheelhouse, etcd"
bootstrap cluster up -i "$inventory"

step "cluster up again: a converged cluster changes nothing"
bootstrap cluster up -i "$inventory"

step "etcd status, gathered over SSH with the healthcheck-client certificate"
bootstrap etcd status -i "$inventory"

step "write on one member, read on another, with the etcd client certificate"
pki=/etc/kubernetes/pki/etcd
etcdctl="ETCDCTL_API=3 etcdctl --cacert $pki/ca.crt --cert $pki/healthcheck-client.crt --key $pki/healthcheck-client.key"
bootstrap sandbox ssh "$name" 1 -- "$etcdctl --endpoints https://127.0.0.1:2379 put /demo/hello 'from $name-1'"
bootstrap sandbox ssh "$name" 3 -- "$etcdctl --endpoints https://127.0.0.1:2379 get /demo/hello --print-value-only"

step "a client without a certificate is refused"
if bootstrap sandbox ssh "$name" 2 -- "ETCDCTL_API=3 etcdctl --cacert $pki/ca.crt --endpoints https://127.0.0.1:2379 --command-timeout=3s get /demo/hello" 2>/dev/null; then
  echo "unexpected: etcd answered a client without a certificate" >&2; exit 1
fi
echo "refused, as it should be"

step "done"
echo "inventory: $inventory"
echo "try:       bootstrap sandbox ssh $name 1 -- systemctl status etcd"
echo "remove:    bootstrap sandbox down --name $name"
