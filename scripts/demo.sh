#!/usr/bin/env bash
# The main job on the embedded default: sandbox hosts -> cluster up -> a served
# workload, seen working from the machine with the real kubectl. Run as root on
# Debian 12. Leaves the cluster running for you to explore; remove it with
#   .venv/bin/bootstrap sandbox down --name demo
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
export PATH="$here/.venv/bin:$PATH"
name=${BOOTSTRAP_DEMO_NAME:-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Poll until a command succeeds (a bounded wait, never a fixed sleep); print its output.
until_ok() {
  local tries=$1 out; shift
  for _ in $(seq "$tries"); do
    if out=$("$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
    sleep 1
  done
  "$@"
}

step "sandbox up: 5 hosts made of Linux namespaces (systemd, sshd, own IP): 3 control plane + 2 workers"
inventory=$(bootstrap sandbox up --name "$name" --hosts 5 --control-plane 3)
bootstrap inventory check -i "$inventory"
artifacts=$(dirname "$inventory")/artifacts
export KUBECONFIG=$artifacts/admin.conf

step "cluster up: PKI, agents, containerd, etcd, init, joins, kube-proxy, DNS (all over SSH)"
bootstrap cluster up -i "$inventory"

step "cluster up again: a converged cluster changes nothing"
bootstrap cluster up -i "$inventory"

step "kubectl get nodes -o wide (KUBECONFIG=$KUBECONFIG)"
kubectl get nodes -o wide

registry=$(awk '/ansible_host:/ {print $2; exit}' "$inventory"):5000
step "push the offline-built busybox image to the cluster registry at $registry"
bootstrap image push "$artifacts/images/busybox-1.35.tar" "$registry/busybox:1.35" -i "$inventory"

step "a Deployment of 3 busybox httpd replicas pulled from the registry, and a NodePort Service"
kubectl create deployment web --image="$registry/busybox:1.35" --replicas=3 \
  -- sh -c 'echo "hello from $(hostname)" > /index.html; exec httpd -f -p 8080 -h /'
kubectl expose deployment web --port 80 --target-port 8080 --type NodePort
kubectl rollout status deployment/web --timeout=180s
kubectl get pods -o wide

port=$(kubectl get service web -o jsonpath='{.spec.ports[0].nodePort}')
step "the page through every node's NodePort ($port), fetched from this machine"
for ip in $(kubectl get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}'); do
  printf '%-15s ' "$ip"; until_ok 30 curl -fsS --max-time 3 "http://$ip:$port/"
done

step "the page through the ClusterIP, from a pod on a node that runs none of them"
cluster_ip=$(kubectl get service web -o jsonpath='{.spec.clusterIP}')
client_node=$name-1   # a control-plane host: its NoSchedule taint keeps web pods away
kubectl run client --image="$registry/busybox:1.35" --restart=Never \
  --overrides="{\"spec\":{\"nodeName\":\"$client_node\"}}" -- sleep 3600
kubectl wait --for=condition=Ready pod/client --timeout=120s
echo "client on $client_node; web pods on: $(kubectl get pods -l app=web -o jsonpath='{.items[*].spec.nodeName}')"
for _ in 1 2 3; do
  until_ok 30 kubectl exec client -- sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $cluster_ip 80 | tail -1"
done

step "cluster DNS: the Service's name from the pod"
kubectl exec client -- nslookup web.default.svc.cluster.local

step "power off one control-plane host; the API still answers through the HA endpoint"
stopped=$name-2
bootstrap sandbox stop "$name" "$stopped"
worker=$name-5
echo "kubectl on $worker, through its haproxy on 127.0.0.1:6443 (health-checked API servers):"
until_ok 60 bootstrap sandbox ssh "$name" "$worker" -- \
  kubectl --kubeconfig "$KUBECONFIG" --server https://127.0.0.1:6443 get pods -o wide
step "boot it again"
bootstrap sandbox start "$name" "$stopped"
until_ok 120 sh -c "kubectl get node $stopped -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
kubectl get nodes

step "done: the cluster is yours"
echo "kubeconfig: $KUBECONFIG"
echo "try:        KUBECONFIG=$KUBECONFIG kubectl get all -A"
echo "a host:     bootstrap sandbox ssh $name 1"
echo "remove:     bootstrap sandbox down --name $name"
