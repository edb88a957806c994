#!/usr/bin/env bash
# Installs everything bootstrap and its tests need on a Debian 12 machine, as root.
# Safe to run again: apt and pip skip what is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

# Packages the sandbox hosts need see through their overlay root (they have no
# route out of the machine), plus openssl for the PKI tests.
APT_PACKAGES=(
  python3 python3-venv python3-dev gcc openssl ca-certificates
  iproute2 iptables util-linux procps kmod psmisc
  systemd dbus openssh-server openssh-client iputils-ping
  etcd-server etcd-client runc containerd containernetworking-plugins haproxy conntrack
  docker-registry busybox-static skopeo
  curl sudo
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # Package scripts must not start etcd, sshd or haproxy on this machine: the
  # sandbox hosts start their own copies under their own systemd.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# kubectl: the machine image ships Google's kubectl; fall back to Debian's client.
command -v kubectl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  "$venv/bin/pip" install -q --upgrade pip wheel
  "$venv/bin/pip" install -q -e "$here[test,bench]"
  rm -f "$venv"/.installed-*; touch "$stamp"
fi

# Every sandbox host's containerd (and systemd) takes inotify instances from the
# machine's one kernel; the default of 128 runs out with a few hosts up
# ("failed to create fsnotify watcher: too many open files").
for knob in fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=524288; do
  key=${knob%%=*}; want=${knob#*=}
  have=$(sysctl -n "$key" 2>/dev/null || echo 0)
  [ "$have" -ge "$want" ] || sysctl -q -w "$knob" >/dev/null
done
