#!/bin/sh
# adapters/image/deps.sh: libsodium for the cross stage's targets (arm64, s390x).
#
# The cross presets build the image loader and its tests for the target, and the loader
# checks Ed25519 signatures with libsodium: the target's libsodium is needed, not the
# build machine's. Debian has it as libsodium-dev:arm64 / libsodium-dev:s390x, but
# installing those (dpkg --add-architecture) also installs the target's libc6 beside the
# cross toolchain's older libc6-<arch>-cross: QEMU's user mode then runs the toolchain's
# ld.so with the multiarch libc.so.6 (found through /etc/ld.so.cache) and every cross test
# program dies with "stack smashing detected". So the package is only downloaded, with a
# private APT state, and its static library and headers are unpacked into the cache:
#   $NPA_CROSS_CACHE/<triple>/lib/libsodium.a, $NPA_CROSS_CACHE/<triple>/include/sodium*
# (cmake/cross/common.cmake looks there). Static, so the emulated programs need no library
# path. Nothing outside the cache is written; the system's dpkg architectures and APT
# state are not changed.
#
# Run as root by the project's install step after the Debian packages. Idempotent: when
# both targets' libraries are there it only checks and exits.
#
# Environment:
#   NPA_CROSS_CACHE   cache root (default /var/cache/npa/cross)
set -eu

cache_root=${NPA_CROSS_CACHE:-/var/cache/npa/cross}
targets="arm64:aarch64-linux-gnu s390x:s390x-linux-gnu"

say() { echo "npa image deps: $*"; }
die() { echo "npa image deps: error: $*" >&2; exit 1; }

need=""
for t in $targets; do
    triple=${t#*:}
    if [ -f "$cache_root/$triple/lib/libsodium.a" ] && [ -f "$cache_root/$triple/include/sodium.h" ]; then
        say "libsodium for $triple present in $cache_root/$triple"
    else
        need="$need $t"
    fi
done
[ -n "$need" ] || exit 0

# A private APT state that also knows the targets' architectures (the system's sources).
apt_dir="$cache_root/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
apt_opts="-o Dir::State::Lists=$apt_dir/lists -o Dir::Cache=$apt_dir/cache
 -o APT::Sandbox::User=root -o APT::Architectures::=$(dpkg --print-architecture)"
for t in $need; do
    apt_opts="$apt_opts -o APT::Architectures::=${t%%:*}"
done
say "fetching libsodium-dev for:$need"
# shellcheck disable=SC2086
apt-get -q $apt_opts update >/dev/null || die "apt-get update (target architectures) failed"

for t in $need; do
    arch=${t%%:*}
    triple=${t#*:}
    work="$apt_dir/download/$arch"
    rm -rf "$work" && mkdir -p "$work"
    # shellcheck disable=SC2086
    (cd "$work" && apt-get -q $apt_opts download "libsodium-dev:$arch" >/dev/null) ||
        die "libsodium-dev:$arch is not available from the configured suites"
    dpkg-deb -x "$work"/libsodium-dev_*_"$arch".deb "$work/x"
    tmp="$cache_root/$triple.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp/lib" "$tmp/include"
    cp "$work/x/usr/lib/$triple/libsodium.a" "$tmp/lib/" || die "no libsodium.a in libsodium-dev:$arch"
    cp -R "$work/x/usr/include/sodium.h" "$work/x/usr/include/sodium" "$tmp/include/"
    rm -rf "$cache_root/$triple" && mv "$tmp" "$cache_root/$triple"
    rm -rf "$work"
    say "libsodium for $triple installed in $cache_root/$triple"
done
