#!/bin/sh
# adapters/dpdk/deps.sh: fetch the DPDK driver SDK headers that Debian does not ship.
#
# Debian 12's libdpdk-dev installs the application API only; a poll-mode driver also
# needs the "driver SDK" headers (DPDK meson: driver_sdk_headers of lib/eal/include,
# lib/ethdev and drivers/bus/vdev). They are taken from the Debian source package of the
# exact libdpdk-dev version installed, so that struct layouts match the shared libraries.
#
# Run as root by the project's install step after the Debian packages. Idempotent: when
# the headers for the installed version are already there it only checks and exits.
# Nothing is written outside the cache directory; the system's APT sources are read but
# never changed (the deb-src entries live in a private APT configuration).
#
# Environment:
#   NPA_DPDK_SDK_CACHE   cache root (default /var/cache/npa); headers land in
#                        $NPA_DPDK_SDK_CACHE/dpdk-sdk/<version>/include
#   NPA_DPDK_NO_TOOLS=1  do not install dpdk-dev (dpdk-testpmd, dpdk-telemetry.py),
#                        which the tests and benchmarks drive
set -eu

cache_root=${NPA_DPDK_SDK_CACHE:-/var/cache/npa}

# The driver SDK headers net_npa includes, and where they sit in the DPDK source tree.
sdk_headers="lib/ethdev/ethdev_driver.h lib/ethdev/ethdev_vdev.h
drivers/bus/vdev/bus_vdev_driver.h lib/eal/include/dev_driver.h lib/eal/include/bus_driver.h"

say() { echo "npa dpdk deps: $*"; }
die() { echo "npa dpdk deps: error: $*" >&2; exit 1; }

version=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null || true)
[ -n "$version" ] || die "libdpdk-dev is not installed (apt-get install libdpdk-dev)"

# 1. The tools the tests drive (a Debian package, so installed with apt like the rest).
if [ "${NPA_DPDK_NO_TOOLS:-0}" != 1 ] && ! command -v dpdk-testpmd >/dev/null 2>&1; then
    say "installing dpdk-dev (dpdk-testpmd, dpdk-telemetry.py)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "dpdk-dev=$version" >/dev/null
fi

# 2. Already done for this version?
dest="$cache_root/dpdk-sdk/$version"
stamp="$dest/.complete"
if [ -f "$stamp" ]; then
    missing=0
    for h in $sdk_headers; do
        [ -f "$dest/include/$(basename "$h")" ] || missing=1
    done
    if [ $missing = 0 ]; then
        say "driver SDK headers for $version present in $dest/include"
        exit 0
    fi
fi

# 3. A private APT configuration with deb-src entries for the suites the system uses.
apt_dir="$cache_root/apt-src"
mkdir -p "$apt_dir/etc/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
src_list="$apt_dir/etc/sources.list.d/npa-src.sources"
: > "$src_list.tmp"
# deb822 stanzas (*.sources): copy each stanza whose Types include "deb", as deb-src.
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'function flush() { if (is_deb && body != "") print "Types: deb-src\n" body; body=""; is_deb=0 }
         /^[[:space:]]*$/ { flush(); next }
         /^#/ { next }
         /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb=1; next }
         /^(URIs|Suites|Components|Signed-By|Trusted):/ { body = body $0 "\n"; next }
         END { flush() }' "$f" >> "$src_list.tmp"
done
# one-line format (sources.list, *.list): "deb [opts] uri suite comp..." -> deb-src.
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
done > "$apt_dir/etc/sources.list"
if [ ! -s "$src_list.tmp" ] && [ ! -s "$apt_dir/etc/sources.list" ]; then
    . /etc/os-release
    say "no APT sources found; using deb.debian.org $VERSION_CODENAME"
    printf 'deb-src http://deb.debian.org/debian %s main\n' "$VERSION_CODENAME" \
        > "$apt_dir/etc/sources.list"
fi
mv "$src_list.tmp" "$src_list"
apt_opts="-o Dir::Etc::sourcelist=$apt_dir/etc/sources.list
 -o Dir::Etc::sourceparts=$apt_dir/etc/sources.list.d
 -o Dir::State::Lists=$apt_dir/lists -o Dir::Cache=$apt_dir/cache
 -o APT::Sandbox::User=root"

say "fetching the dpdk $version source package"
# shellcheck disable=SC2086
apt-get -q $apt_opts update >/dev/null || die "apt-get update (deb-src) failed"
work="$apt_dir/download/$version"
mkdir -p "$work"
# shellcheck disable=SC2086
(cd "$work" && apt-get -q $apt_opts source --download-only "dpdk=$version" >/dev/null) ||
    die "the dpdk $version source package is not available from the configured suites"

# 4. Extract only the SDK headers (the orig tarball holds them; Debian's patches do not
#    touch them), flattened into one include directory as DPDK's own install does.
orig=$(ls "$work"/dpdk_*.orig.tar.* 2>/dev/null | head -n 1)
[ -n "$orig" ] || die "no orig tarball in $work"
tmp="$dest.tmp"
rm -rf "$tmp" && mkdir -p "$tmp/include"
patterns=""
for h in $sdk_headers; do patterns="$patterns */$h"; done
# shellcheck disable=SC2086
tar -xf "$orig" -C "$tmp" --wildcards $patterns || die "headers missing from $orig"
for h in $sdk_headers; do
    find "$tmp" -path "*/$h" -exec mv {} "$tmp/include/" \;
done
find "$tmp" -mindepth 1 -maxdepth 1 ! -name include -exec rm -rf {} +
for h in $sdk_headers; do
    [ -f "$tmp/include/$(basename "$h")" ] || die "$h not extracted"
done
chmod 0644 "$tmp"/include/*.h
touch "$tmp/include/.complete"
rm -rf "$dest" && mv "$tmp" "$dest" && mv "$dest/include/.complete" "$stamp"
rm -rf "$work"   # the 15 MB tarball is not needed any more
say "driver SDK headers for $version installed in $dest/include"
