#!/usr/bin/env bash


set -euo pipefail

packages=(
	build-essential pkg-config make
	clang llvm
	libbpf-dev libelf-dev zlib1g-dev bpftool
	libssl-dev
	flex bison
	libyaml-dev
	libmicrohttpd-dev libjansson-dev libsystemd-dev libcurl4-openssl-dev
	curl jq prometheus
	iproute2 iputils-ping procps kmod
	nftables xdp-tools
	iptables ipset ethtool
	systemd python3-yaml
	chromium chromium-driver
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if ((${#missing[@]})); then
	if [[ $EUID -ne 0 ]]; then
		echo "install-deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "install-deps: all ${#packages[@]} packages present"
fi


if [[ $EUID -eq 0 ]] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf 2>/dev/null ||
		echo "install-deps: cannot mount bpffs at /sys/fs/bpf (a container?); kernel tests will say so" >&2
fi
