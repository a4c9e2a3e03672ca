#!/bin/sh
# tests/guest/deps.sh: the Debian packages of the guest rig (tests/guest/README.md).
#
#   qemu-system-x86 (10.x, from bookworm-backports)
#       the machine the guest boots on. Bookworm's QEMU 7.2 has vmxnet3, e1000e and
#       virtio-net but no igb; 10.x adds `-device igb` (82576 with SR-IOV), whose VFs
#       (8086:10ca) the igbvf plugin drives. 10.x keeps every device 7.2 has, so it
#       replaces 7.2 where both would clash.
#   busybox-static
#       the guest's shell and tools (/init, mount, insmod, poweroff), one static binary
#       copied into the initramfs.
#   cpio, xz-utils, zstd
#       building the initramfs; decompressing the kernel modules (.ko.xz) and the kernel
#       image (extract-vmlinux tries each compressor the kernel may use).
#
#   linux-headers-<guest kernel ABI> (adapters/linux/kmod/deps.sh)
#       the guest kernel's build tree: npa_vmxnet3.ko is built against it.
#
# The kernel itself is no installed package: tests/guest/build-initramfs.sh downloads
# Debian's linux-image package into build/guest/ (apt-get download, no install).
#
# bookworm-backports comes from a private APT configuration under $NPA_GUEST_APT
# (default /var/cache/npa/apt-backports): the system's own sources are read, never changed.
# Idempotent: exits at once when everything is installed. Runs as root (or through sudo).
# NPA_NO_GUEST=1 skips the whole rig (nothing installed).
set -eu

say() { echo "tests/guest/deps.sh: $*"; }
die() { echo "tests/guest/deps.sh: error: $*" >&2; exit 1; }
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

[ "${NPA_NO_GUEST:-0}" = 1 ] && { say "NPA_NO_GUEST=1: skipped"; exit 0; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# 1. The plain bookworm packages.
missing=""
for p in busybox-static cpio xz-utils zstd; do
    installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing$missing"
    run apt-get update -q >/dev/null
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# 1b. The guest kernel's headers, for the kernel module (adapters/linux/kmod/deps.sh).
"$(dirname "$0")/../../adapters/linux/kmod/deps.sh" || true

# 2. QEMU 10.x: present already?
qemu_major() {
    v=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
    v=${v#*:}            # drop the epoch
    echo "${v%%.*}"
}
if installed qemu-system-x86 && [ "$(qemu_major)" -ge 10 ] 2>/dev/null; then
    say "qemu-system-x86 $(dpkg-query -W -f='${Version}' qemu-system-x86) present"
    exit 0
fi

# 3. A private APT configuration: the system's binary sources plus <codename>-backports.
. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
apt_dir=${NPA_GUEST_APT:-/var/cache/npa/apt-backports}
run mkdir -p "$apt_dir/etc/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
tmp=$(mktemp)
# deb822 stanzas: copy every enabled "deb" stanza; a stanza that names the release suite
# gets a twin for <codename>-backports on the same archive.
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v cn="$codename" '
        function flush() {
            if (is_deb && enabled && body != "") {
                print "Types: deb\nSuites: " suites "\n" body
                if (has_cn) print "Types: deb\nSuites: " cn "-backports\n" body
            }
            body = ""; suites = ""; is_deb = 0; has_cn = 0; enabled = 1
        }
        BEGIN { enabled = 1 }
        /^[[:space:]]*$/ { flush(); next }
        /^#/ { next }
        /^Enabled:[[:space:]]*no/ { enabled = 0; next }
        /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1; next }
        /^Suites:/ { suites = ""; for (i = 2; i <= NF; i++) { suites = suites " " $i; if ($i == cn) has_cn = 1 }; next }
        /^(URIs|Components|Signed-By|Trusted|Architectures):/ { body = body $0 "\n"; next }
        END { flush() }' "$f"
done > "$tmp"
run cp "$tmp" "$apt_dir/etc/sources.list.d/npa-backports.sources"
# one-line sources: copy "deb" lines; a line for <codename> gets a <codename>-backports twin.
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n "/^[[:space:]]*deb[[:space:]]/{p;s/[[:space:]]$codename[[:space:]]/ $codename-backports /p}" "$f" |
        awk '!seen[$0]++'
done > "$tmp"
if ! grep -q -- "-backports" "$tmp" &&
   ! grep -q -- "-backports" "$apt_dir/etc/sources.list.d/npa-backports.sources"; then
    say "no $codename entry in the APT sources; using deb.debian.org"
    printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian %s-backports main\n' \
        "$codename" "$codename" >> "$tmp"
fi
run cp "$tmp" "$apt_dir/etc/sources.list"
rm -f "$tmp"
apt_opts="-o Dir::Etc::sourcelist=$apt_dir/etc/sources.list
 -o Dir::Etc::sourceparts=$apt_dir/etc/sources.list.d
 -o Dir::State::Lists=$apt_dir/lists -o Dir::Cache=$apt_dir/cache
 -o APT::Sandbox::User=root"

say "installing qemu-system-x86 from $codename-backports"
# shellcheck disable=SC2086
run apt-get -q $apt_opts update >/dev/null || die "apt-get update ($codename-backports) failed"
# shellcheck disable=SC2086
run env DEBIAN_FRONTEND=noninteractive apt-get -y -q $apt_opts install --no-install-recommends \
    -t "$codename-backports" qemu-system-x86 ||
    die "qemu-system-x86 from $codename-backports could not be installed"
[ "$(qemu_major)" -ge 10 ] 2>/dev/null ||
    die "qemu-system-x86 is $(dpkg-query -W -f='${Version}' qemu-system-x86), not 10.x"
say "qemu-system-x86 $(dpkg-query -W -f='${Version}' qemu-system-x86) installed"
