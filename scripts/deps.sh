#!/usr/bin/env bash
# Installs every Debian package KIVA needs to build, test and run.
# Idempotent: packages already present are skipped, `apt-get update` runs at most once.
#   scripts/deps.sh          build + runtime + tests
#   scripts/deps.sh --bench  also the anchors the benchmarks compare against (LXD, hyperfine)
set -euo pipefail

pkgs=(
	# build
	gcc make pkg-config meson ninja-build
	# libraries (DESIGN.md §3)
	lxc lxc-dev libraft-dev libuv1-dev libwebsockets-dev libwebsockets-evlib-uv
	libjansson-dev libnl-3-dev libnl-route-3-dev libnftables-dev libldns-dev libsodium-dev
	libarchive-dev
	libyaml-dev
	# runtime
	btrfs-progs busybox-static util-linux iproute2 nftables psmisc procps
	# tests (iperf3: QoS rates measured in the containers' network namespaces)
	libcmocka-dev python3 python3-pytest iperf3
)
if [ "${1:-}" = "--bench" ]; then
	pkgs+=(lxd lxd-client hyperfine)
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
