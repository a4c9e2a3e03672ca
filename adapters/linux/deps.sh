#!/bin/sh
# Debian packages the Linux adapter needs beyond scripts/install-deps.sh (which runs this
# script): ethtool, used by the tests and the walkthrough to turn off checksum offload on
# veth peers. Also lists the adapter's other packages, so it works on its own. Idempotent:
# installs only what is missing. Runs as root (or through sudo).
set -eu
packages="pkg-config libxdp-dev libbpf-dev iproute2 iputils-ping iperf3 ethtool"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "adapters/linux/deps.sh: installing$missing"
run apt-get update
run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
