#!/bin/sh
# adapters/linux/kmod/deps.sh: the kernel headers npa_vmxnet3.ko is built against
# (README.md). Run by tests/guest/deps.sh (so by scripts/install-deps.sh, as root).
#
#   linux-headers-<abi>   (with linux-kbuild and linux-compiler-gcc-12-x86, its dependencies)
#       the build tree of the guest's kernel: a module loads only into the kernel whose
#       headers it was built with (vermagic, symbol versions), so the ABI is exactly the
#       guest's: the one tests/guest/build-initramfs.sh cached in build/guest/kernel-abi,
#       or, before the first guest run, the one linux-image-amd64 depends on (resolved
#       the same way). Installing them upgrades linux-libc-dev to the same version.
#
# Idempotent. NPA_NO_GUEST=1 or NPA_NO_KMOD=1 skips it. A failure is reported and not
# fatal: the module's guest test is then not registered (tests/guest/CMakeLists.txt).
set -eu

say() { echo "adapters/linux/kmod/deps.sh: $*"; }
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

[ "${NPA_NO_GUEST:-0}" = 1 ] && exit 0
[ "${NPA_NO_KMOD:-0}" = 1 ] && { say "NPA_NO_KMOD=1: skipped"; exit 0; }

here=$(cd "$(dirname "$0")" && pwd)
cache=${NPA_GUEST_CACHE:-$here/../../../build/guest}
abi=""
[ -s "$cache/kernel-abi" ] && abi=$(cat "$cache/kernel-abi")
if [ -z "$abi" ]; then
    abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^[[:space:]]*Depends:[[:space:]]*linux-image-\([0-9][^[:space:]]*-amd64\).*/\1/p' |
          head -n 1 || true)
fi
[ -n "$abi" ] || { say "apt offers no linux-image-amd64: kernel headers not installed"; exit 0; }
pkg=linux-headers-$abi
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    say "$pkg present"
    exit 0
fi
say "installing $pkg (the guest kernel's build tree, for npa_vmxnet3.ko)"
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$pkg" ||
    say "$pkg could not be installed: the kmod guest test is skipped (NPA_GUEST_REFRESH=1 moves the guest to the current kernel)"
