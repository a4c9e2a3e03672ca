#!/usr/bin/env bash
# tests/guest/build-initramfs.sh: the guest's kernel and initramfs (tests/guest/README.md).
#
#   build-initramfs.sh kernel
#       Fetch Debian's kernel package into the cache (once) and extract the kernel and the
#       modules the guest may load. Prints the path of the kernel to boot.
#   build-initramfs.sh initramfs -o OUT.cpio PROGRAM...
#       Build an initramfs (newc cpio, uncompressed: the guest unpacks it without spending
#       emulated cycles on decompression) holding busybox, the modules, /init and the
#       static PROGRAMs. /init runs them in the order given (see "The guest" below).
#       A PROGRAM named NAME.ko is a module built for the guest's kernel: it is copied
#       to /lib/modules/npa/ (npa-modprobe NAME loads it) and not run.
#
# The kernel: the ABI of the linux-image-amd64 that apt offers (for example
# linux-image-6.1.0-57-amd64), resolved on the first run. The .deb is downloaded with
# `apt-get download` (nothing is installed) into $NPA_GUEST_CACHE (default <repo>/build/guest)
# and reused on later runs without asking apt, so a second run works offline;
# NPA_GUEST_REFRESH=1 resolves the version again. From bzImage, the uncompressed vmlinux is
# taken out (booted through its PVH entry point, which saves the emulated decompression);
# where that fails the bzImage itself is used.
#
# The guest (/init): mounts proc, sysfs, devtmpfs and hugetlbfs (/dev/hugepages), loads the
# modules named on the kernel command line (npa.modules=a,b: each with its dependencies,
# uio and uio_pci_generic always), exports every npa.KEY=VALUE of the command line as
# NPA_KEY=VALUE, runs each program of /npa/tests (or those named by npa.tests=a,b), prints
# one line per program
#     NPA-GUEST-RESULT {"test":"probe","status":"pass","exit":0,"seconds":2}
# then `NPA-GUEST PASS` (every program exited 0) or `NPA-GUEST FAIL`, and powers off.
# Programs print their own `NPA-GUEST-RESULT {...}` lines as they like; run.sh gathers them
# all. `npa-modprobe NAME` in the guest loads a module with its dependencies.
set -euo pipefail
shopt -s inherit_errexit

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
cache=${NPA_GUEST_CACHE:-$repo_root/build/guest}
# Modules copied into the guest (each with what it depends on). uio and uio_pci_generic
# bind devices to userspace; the NIC drivers are there for tests that want the kernel's
# own driver as a peer, or the igb PF to create VFs; tun for npa-linkd's TAP; 8021q for
# VLAN devices over the kernel module's net_device.
guest_modules="uio uio_pci_generic igb igbvf vmxnet3 tun 8021q"

say() { echo "build-initramfs: $*" >&2; }
die() { echo "build-initramfs: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# The kernel package.

resolve_abi() {
    local dep
    dep=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^[[:space:]]*Depends:[[:space:]]*\(linux-image-[0-9][^[:space:]]*-amd64\).*/\1/p' |
          head -n 1 || true)
    [ -n "$dep" ] || die "apt offers no linux-image-amd64 (run apt-get update, or scripts/install-deps.sh)"
    echo "${dep#linux-image-}"
}

fetch_deb() {
    mkdir -p "$cache/deb"
    local abi deb
    if [ "${NPA_GUEST_REFRESH:-0}" != 1 ] && [ -s "$cache/kernel-abi" ]; then
        abi=$(cat "$cache/kernel-abi")
        deb=$(ls "$cache/deb/linux-image-${abi}_"*.deb 2>/dev/null | head -n 1 || true)
        if [ -n "$deb" ]; then
            echo "$abi"
            return
        fi
    fi
    command -v apt-get >/dev/null || die "apt-get not found: the kernel comes from Debian's linux-image package"
    abi=$(resolve_abi)
    if ! ls "$cache/deb/linux-image-${abi}_"*.deb >/dev/null 2>&1; then
        say "downloading linux-image-$abi (about 70 MB, once) into $cache/deb"
        (cd "$cache/deb" && apt-get download -q "linux-image-$abi" >&2) ||
            die "apt-get download linux-image-$abi failed"
    fi
    echo "$abi" > "$cache/kernel-abi"
    echo "$abi"
}

# Writes the uncompressed vmlinux found inside bzImage $1 to $2; fails when none is found.
# The payload sits somewhere after the setup code; each compressor's magic is tried at each
# place it occurs until one decompresses to an ELF file.
extract_vmlinux() {
    local img=$1 out=$2 magic tool off
    for pair in "fd377a585a00:xz -dc" "28b52ffd:zstd -dcq" "1f8b0800:gzip -dc" \
                "894c5a4f:lzop -dc" "425a68:bzip2 -dc" "5d000000:lzma -dc" "02214c18:lz4 -dc"; do
        magic=${pair%%:*}
        tool=${pair#*:}
        command -v "${tool%% *}" >/dev/null || continue
        # byte offsets of the magic in the image
        for off in $(LC_ALL=C grep -obUaP "$(echo "$magic" | sed 's/../\\x&/g')" "$img" |
                     cut -d: -f1 | head -n 8); do
            tail -c +$((off + 1)) "$img" | $tool > "$out.tmp" 2>/dev/null || true
            if [ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                mv "$out.tmp" "$out"
                return 0
            fi
        done
    done
    rm -f "$out.tmp"
    return 1
}

# Prints the module file name of module $1 found under $2 (names compare with - and _ alike).
find_module() {
    local want=${1//-/_} f base
    f=$(find "$2" \( -name "$want.ko*" -o -name "${want//_/-}.ko*" \) | head -n 1)
    [ -n "$f" ] && { echo "$f"; return 0; }
    while IFS= read -r f; do   # a name that mixes - and _
        base=${f##*/}
        base=${base%%.ko*}
        [ "${base//-/_}" = "$want" ] && { echo "$f"; return 0; }
    done < <(find "$2" -name '*.ko*')
    return 1
}

prepare_kernel() {
    local abi dir deb
    # one download and extraction at a time (runs started side by side wait here)
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    abi=$(fetch_deb)
    dir="$cache/kernel/$abi"
    # complete, and with every module now named (a cache made before one was added is redone)
    if [ -f "$dir/.complete" ]; then
        local m missing=0
        for m in $guest_modules; do
            grep -q "^${m//-/_}:" "$dir/modules/deps" || missing=1
        done
        if [ "$missing" = 0 ]; then
            echo "$dir"
            return
        fi
    fi
    deb=$(ls "$cache/deb/linux-image-${abi}_"*.deb | head -n 1)
    say "extracting the kernel and modules of $(basename "$deb")"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/x" "$dir.tmp/modules"
    dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$dir.tmp/x" --wildcards './boot/vmlinuz-*' "./lib/modules/$abi/kernel/drivers/*" \
            "./lib/modules/$abi/kernel/lib/*" \
            "./lib/modules/$abi/kernel/net/*" 2>/dev/null ||
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir.tmp/x"
    local bz
    bz=$(ls "$dir.tmp/x/boot/vmlinuz-"* | head -n 1)
    [ -f "$bz" ] || die "no /boot/vmlinuz-* in $deb"
    cp "$bz" "$dir.tmp/bzImage"
    if extract_vmlinux "$bz" "$dir.tmp/vmlinux"; then
        echo vmlinux > "$dir.tmp/boot-image"
    else
        say "no vmlinux could be extracted from $(basename "$bz"): booting the bzImage"
        echo bzImage > "$dir.tmp/boot-image"
    fi
    # The modules with their dependencies (read from each module's .modinfo "depends=").
    local queue=($guest_modules) done_list=" " name f dest deps
    : > "$dir.tmp/modules/deps"
    while [ ${#queue[@]} -gt 0 ]; do
        name=${queue[0]//-/_}
        queue=("${queue[@]:1}")
        case "$done_list" in *" $name "*) continue ;; esac
        done_list="$done_list$name "
        f=$(find_module "$name" "$dir.tmp/x/lib/modules/$abi/kernel") ||
            die "module $name is not in $(basename "$deb")"
        dest="$dir.tmp/modules/$name.ko"
        case "$f" in
            *.xz) xz -dc "$f" > "$dest" ;;
            *.zst) zstd -dcq "$f" > "$dest" ;;
            *.gz) gzip -dc "$f" > "$dest" ;;
            *) cp "$f" "$dest" ;;
        esac
        deps=$(tr '\0' '\n' < "$dest" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' ')
        deps=${deps//-/_}
        echo "$name: $deps" >> "$dir.tmp/modules/deps"
        for d in $deps; do queue+=("$d"); done
    done
    echo "$abi" > "$dir.tmp/abi"
    rm -rf "$dir.tmp/x"
    touch "$dir.tmp/.complete"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    say "kernel $abi: $(cat "$dir/boot-image"), modules: $(cut -d: -f1 "$dir/modules/deps" | tr '\n' ' ')"
    echo "$dir"
}

cmd_kernel() {
    local dir
    dir=$(prepare_kernel)
    echo "$dir/$(cat "$dir/boot-image")"
}

# ---------------------------------------------------------------------------------------
# The initramfs.

write_init() {
    cat > "$1/init" <<'INIT'
#!/bin/sh
# npa guest /init (written by tests/guest/build-initramfs.sh)
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /dev/hugepages /tmp
mount -t hugetlbfs -o pagesize=2M hugetlbfs /dev/hugepages
mount -t tmpfs tmpfs /tmp
ifconfig lo 127.0.0.1 up 2>/dev/null

t0=$(cut -d' ' -f1 /proc/uptime)
echo "NPA-GUEST BOOTED uptime=${t0}s kernel=$(uname -r)"

# npa.KEY=VALUE on the command line -> NPA_KEY=VALUE in the environment
tests=""
modules="uio uio_pci_generic"
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        npa.*=*)
            key=${arg%%=*}; key=${key#npa.}; val=${arg#*=}
            key=$(echo "$key" | tr 'a-z.-' 'A-Z__')
            export "NPA_$key=$val"
            case "$key" in
                TESTS) tests=$(echo "$val" | tr ',' ' ') ;;
                MODULES) modules="$modules $(echo "$val" | tr ',' ' ')" ;;
            esac
            ;;
    esac
done
[ -n "$tests" ] || tests=$(cat /npa/tests)

for m in $modules; do
    npa-modprobe "$m" || echo "NPA-GUEST module $m failed to load"
done

all=0
for t in $tests; do
    if [ ! -x "/npa/bin/$t" ]; then
        echo "NPA-GUEST-RESULT {\"test\":\"$t\",\"status\":\"missing\",\"exit\":127,\"seconds\":0}"
        all=1
        continue
    fi
    echo "NPA-GUEST RUN $t"
    s=$(cut -d' ' -f1 /proc/uptime)
    "/npa/bin/$t" </dev/null
    rc=$?
    e=$(cut -d' ' -f1 /proc/uptime)
    secs=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }')
    if [ "$rc" = 0 ]; then st=pass; else st=fail; all=1; fi
    echo "NPA-GUEST-RESULT {\"test\":\"$t\",\"status\":\"$st\",\"exit\":$rc,\"seconds\":$secs}"
done
sync
if [ "$all" = 0 ]; then echo "NPA-GUEST PASS"; else echo "NPA-GUEST FAIL"; fi
poweroff -f
# not reached unless poweroff failed; the kernel panics (panic=-1 reboots, -no-reboot ends QEMU)
exit 1
INIT
    chmod 755 "$1/init"

    cat > "$1/bin/npa-modprobe" <<'MODPROBE'
#!/bin/sh
# npa-modprobe NAME: insmod /lib/modules/npa/NAME.ko after its dependencies.
name=$(echo "$1" | tr '-' '_')
[ -n "$name" ] || { echo "usage: npa-modprobe NAME" >&2; exit 2; }
[ -d "/sys/module/$name" ] && exit 0
grep -q "^$name:" /lib/modules/npa/deps || { echo "npa-modprobe: no module $name in the guest" >&2; exit 1; }
for d in $(sed -n "s/^$name://p" /lib/modules/npa/deps); do
    npa-modprobe "$d" || exit 1
done
[ -d "/sys/module/$name" ] && exit 0
insmod "/lib/modules/npa/$name.ko"
MODPROBE
    chmod 755 "$1/bin/npa-modprobe"
}

cmd_initramfs() {
    local out=""
    while [ $# -gt 0 ]; do
        case "$1" in
            -o) out=$2; shift 2 ;;
            --) shift; break ;;
            -*) die "unknown option $1" ;;
            *) break ;;
        esac
    done
    [ -n "$out" ] || die "initramfs: -o OUT.cpio is required"
    [ $# -gt 0 ] || die "initramfs: name at least one test program"
    local bb=/bin/busybox
    [ -x "$bb" ] || bb=$(command -v busybox || true)
    [ -n "$bb" ] || die "busybox not found (apt-get install busybox-static, or tests/guest/deps.sh)"
    ldd "$bb" >/dev/null 2>&1 && die "$bb is dynamically linked: install busybox-static"
    local kdir
    kdir=$(prepare_kernel)
    root=$(mktemp -d "${TMPDIR:-/tmp}/npa-initramfs.XXXXXX")
    trap 'rm -rf "${root:-}"' EXIT
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,npa/bin,npa/share,lib/modules/npa}
    cp "$bb" "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"   # the other applets are linked by /init, in the guest
    cp "$kdir"/modules/*.ko "$kdir/modules/deps" "$root/lib/modules/npa/"
    local p name
    : > "$root/npa/tests"
    for p in "$@"; do
        # A kernel module built for the guest's kernel (NAME.ko) is no program: it goes
        # beside the others, for `npa-modprobe NAME` or insmod, and is not run.
        if [[ "$p" == *.ko ]]; then
            [ -f "$p" ] || die "module $p not found"
            name=$(basename "$p" .ko)
            cp "$p" "$root/lib/modules/npa/$name.ko"
            echo "${name//-/_}: " >> "$root/lib/modules/npa/deps"
            continue
        fi
        # A plugin image (NAME.npai) or a public key (NAME.pub) is data for the programs:
        # copied as it is to /npa/share, not run.
        if [[ "$p" == *.npai || "$p" == *.pub ]]; then
            [ -f "$p" ] || die "data file $p not found"
            cp "$p" "$root/npa/share/$(basename "$p")"
            continue
        fi
        [ -f "$p" ] && [ -x "$p" ] || die "test program $p is not an executable file"
        if ldd "$p" >/dev/null 2>&1; then
            die "test program $p is dynamically linked: the guest has no C library (link with -static)"
        fi
        name=$(basename "$p")
        cp "$p" "$root/npa/bin/$name"
        echo "$name" >> "$root/npa/tests"
    done
    write_init "$root"
    mkdir -p "$(dirname "$out")"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$out.tmp"
    mv "$out.tmp" "$out"
    say "initramfs $out ($(($(stat -c %s "$out") / 1024)) KiB): $(tr '\n' ' ' < "$root/npa/tests")"
}

case "${1:-}" in
    kernel) shift; cmd_kernel "$@" ;;
    initramfs) shift; cmd_initramfs "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
