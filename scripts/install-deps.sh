#!/usr/bin/env bash
# Installs the Debian 12 packages npa needs to build, test, benchmark and run its demos.
#
# Idempotent: each package is checked with dpkg-query and only the missing ones are
# installed; `apt-get update` runs only when something is missing. After that, every
# executable adapters/*/deps.sh runs (the extension point for adapter-specific inputs, for
# example driver SDK headers taken from a Debian source package), then tests/guest/deps.sh
# (QEMU 10.x from bookworm-backports for the guest rig; it runs adapters/linux/kmod/deps.sh,
# the guest kernel's headers that the kernel module is built against).
#
# Runs as root; as another user it uses sudo when sudo exists. Safe to run repeatedly.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Package list with the reason for each group.
packages=(
    # toolchain: both compilers are exercised; the clang runtime carries clang's sanitizers
    build-essential cmake ninja-build g++ clang libclang-rt-14-dev valgrind pkg-config dpkg-dev
    # the core and its tests: header-only Boost, fmt for tools, doctest for every suite
    libboost-dev libfmt-dev doctest-dev
    # benchmarks and the rings they are compared against
    libbenchmark-dev libreaderwriterqueue-dev libatomic-queue-dev
    # the DPDK adapter
    libdpdk-dev dpdk
    # the Linux adapter (AF_XDP) and its end-to-end checks across network namespaces
    libxdp-dev libbpf-dev iperf3 iproute2 iputils-ping
    # scripts and plots
    python3 python3-matplotlib
    # plugin images: Ed25519 signatures and SHA-512 digests (libsodium)
    libsodium-dev
    # the cross stage (make test-cross): arm64 and big-endian s390x compilers with their C++
    # libraries, and QEMU's user-mode emulators to run the test programs they build (the
    # targets' libsodium comes from adapters/image/deps.sh, run below)
    g++-aarch64-linux-gnu g++-s390x-linux-gnu qemu-user-static
)

log() { printf 'install-deps: %s\n' "$*"; }

# Root runs apt directly; anyone else goes through sudo if it exists.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*"
        log "run this script as root, or install sudo"
        exit 1
    fi
}

is_installed() {
    # db:Status-Status is "installed" only for a fully installed package (not for one
    # removed with its configuration files left behind, or half-configured).
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    log "dpkg-query not found: this script supports Debian 12 (bookworm) and derivatives"
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    if ! is_installed "$p"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "all ${#packages[@]} packages present"
else
    log "installing ${#missing[@]} missing package(s): ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        "${missing[@]}"
    for p in "${missing[@]}"; do
        if ! is_installed "$p"; then
            log "package $p is still not installed after apt-get install"
            exit 1
        fi
    done
fi

# Adapter extension points, in a stable order.
shopt -s nullglob
for hook in "$repo_root"/adapters/*/deps.sh; do
    if [ -x "$hook" ]; then
        log "running ${hook#"$repo_root"/}"
        as_root "$hook"
    fi
done
# The QEMU guest rig (make test-guest): QEMU 10.x from bookworm-backports for the igb
# device, busybox-static for the guest (tests/guest/deps.sh says why; NPA_NO_GUEST=1 skips).
if [ -x "$repo_root/tests/guest/deps.sh" ]; then
    log "running tests/guest/deps.sh"
    as_root env NPA_NO_GUEST="${NPA_NO_GUEST:-0}" "$repo_root/tests/guest/deps.sh"
fi
