#!/bin/sh
# Debian/Ubuntu packages the Linux adapter needs: build (libxdp, libbpf, pkg-config) and
# its tests and walkthrough (iproute2, ping, iperf3, ethtool). Run as root.
set -eu
apt-get install -y --no-install-recommends \
    pkg-config libxdp-dev libbpf-dev \
    iproute2 iputils-ping iperf3 ethtool
