#!/usr/bin/env bash
# tests/guest/run.sh: boot a Linux guest under QEMU (TCG, no KVM) with emulated NICs, run
# static test programs in it and report from its serial console (tests/guest/README.md).
#
#   run.sh [options] PROFILE PROGRAM...
#
# PROFILE (the devices):
#   vmxnet3-pair   two vmxnet3 (00:03.0, 00:04.0) on one private hub
#   vmxnet3-hotplug  two vmxnet3 on one private hub, each behind its own pcie-root-port
#                  (01:00.0 id nic0, 02:00.0 id nic1), so `device_del nic1` unplugs one
#   vmxnet3-trio   three vmxnet3 on one private hub: nic0 (01:00.0) and nic1 (02:00.0) each
#                  behind its own pcie-root-port (unpluggable), nic2 (00:03.0) on the root bus
#   igb-sriov      an 82576 (igb, SR-IOV) behind a pcie-root-port (01:00.0) and a vmxnet3
#                  (00:03.0), both on one private hub
#   igb-sriov-peer the igb-sriov devices and a second vmxnet3 (nic2, 00:04.0), three on one
#                  hub: the shell over the vmxnet3 and a VF, the second vmxnet3 its peer
#   virtio-vmxnet3 a virtio-net-pci, modern only (disable-legacy=on: 1af4:1041, 00:03.0, nic0)
#                  and two vmxnet3 (00:04.0 nic1, 00:05.0 nic2) on one private hub
#   virtio-packed-vmxnet3  the same devices, the virtio-net-pci with packed=on (it offers
#                  VIRTIO_F_RING_PACKED)
#   virtio-inorder-vmxnet3  virtio-vmxnet3 with in_order=on (VIRTIO_F_IN_ORDER)
#   virtio-packed-inorder-vmxnet3  virtio-packed-vmxnet3 with in_order=on too
# The hub is QEMU's own (-netdev hubport): frames go from one NIC to the other and nowhere
# else; the guest has no outside network. Every NIC has a QEMU id: nic0, nic1 (nic2).
#
# Monitor commands from the guest: a line `NPA-GUEST-MONITOR <command>` on the serial console
# is passed to QEMU's monitor, for the commands device_del, device_add, set_link and info
# (`NPA-GUEST-MONITOR set_link nic0 off`, `NPA-GUEST-MONITOR device_del nic1`). The replies go
# to <log>.monitor. A test can so unplug a device or drop a link at a moment it chooses.
#
# Options:
#   --timeout S        hard limit for the whole boot, default 300 (NPA_GUEST_TIMEOUT)
#   --json FILE        write the summary there too (it is always printed as NPA-GUEST-SUMMARY)
#   --log FILE         keep the serial log there (default: build/guest/last-<profile>.log)
#   --monitor PATH     a QEMU monitor on the unix socket PATH (device_del, info pci, ...)
#   --append ARGS      more kernel command line; npa.KEY=VALUE reaches the programs as
#                      NPA_KEY=VALUE (npa.tests=a,b runs only those; npa.modules=m loads m)
#   --mem MB           guest memory, default 256 (128 of it in 2 MiB hugepages)
#   --hugepages N      2 MiB hugepages, default 64
#   --quiet            do not echo the serial console
#
# Environment: NPA_GUEST_TIMEOUT (as --timeout), NPA_GUEST_QEMU (the QEMU binary),
# NPA_GUEST_KERNEL (a kernel image to boot instead of the cached vmlinux, e.g. its bzImage),
# NPA_GUEST_CACHE (the cache, default <repo>/build/guest), NPA_GUEST_QEMU_ARGS (more QEMU
# arguments, split on blanks: e.g. `-object filter-dump,id=d0,netdev=h0,file=h0.pcap` records
# every frame through a NIC's hub port).
#
# Exit status: 0 only when the guest printed `NPA-GUEST PASS`; 1 on `NPA-GUEST FAIL`, a
# timeout (the last 40 lines of the serial log are printed) or a guest that stopped without
# a verdict; 2 on a usage error or a missing QEMU or kernel.
set -euo pipefail
shopt -s inherit_errexit

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
cache=${NPA_GUEST_CACHE:-$repo_root/build/guest}

say() { echo "guest: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

timeout_s=${NPA_GUEST_TIMEOUT:-300}
json_out="" log="" monitor="" append="" mem=256 hugepages=64 quiet=0
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout_s=$2; shift 2 ;;
        --json) json_out=$2; shift 2 ;;
        --log) log=$2; shift 2 ;;
        --monitor) monitor=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --hugepages) hugepages=$2; shift 2 ;;
        --quiet) quiet=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) say "unknown option $1"; usage ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || usage
profile=$1
shift

# 1. The devices of the profile. Fixed addresses keep the guest's BDFs stable.
hub="-netdev hubport,id=h0,hubid=0 -netdev hubport,id=h1,hubid=0"
case "$profile" in
    vmxnet3-pair)
        devices="$hub -device vmxnet3,id=nic0,netdev=h0,addr=03.0,mac=52:54:00:00:03:00
                 -device vmxnet3,id=nic1,netdev=h1,addr=04.0,mac=52:54:00:00:04:00" ;;
    vmxnet3-hotplug)
        devices="$hub -device pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0
                 -device pcie-root-port,id=rp2,chassis=2,slot=2,addr=06.0
                 -device vmxnet3,id=nic0,bus=rp1,netdev=h0,mac=52:54:00:01:00:00
                 -device vmxnet3,id=nic1,bus=rp2,netdev=h1,mac=52:54:00:02:00:00" ;;
    vmxnet3-trio)
        devices="$hub -netdev hubport,id=h2,hubid=0
                 -device pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0
                 -device pcie-root-port,id=rp2,chassis=2,slot=2,addr=06.0
                 -device vmxnet3,id=nic0,bus=rp1,netdev=h0,mac=52:54:00:01:00:00
                 -device vmxnet3,id=nic1,bus=rp2,netdev=h1,mac=52:54:00:02:00:00
                 -device vmxnet3,id=nic2,netdev=h2,addr=03.0,mac=52:54:00:00:03:00" ;;
    igb-sriov)
        devices="$hub -device pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0
                 -device igb,id=nic0,bus=rp1,netdev=h0,mac=52:54:00:01:00:00
                 -device vmxnet3,id=nic1,netdev=h1,addr=03.0,mac=52:54:00:00:03:00" ;;
    igb-sriov-peer)
        devices="$hub -netdev hubport,id=h2,hubid=0
                 -device pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0
                 -device igb,id=nic0,bus=rp1,netdev=h0,mac=52:54:00:01:00:00
                 -device vmxnet3,id=nic1,netdev=h1,addr=03.0,mac=52:54:00:00:03:00
                 -device vmxnet3,id=nic2,netdev=h2,addr=04.0,mac=52:54:00:00:04:00" ;;
    virtio-vmxnet3|virtio-packed-vmxnet3|virtio-inorder-vmxnet3|virtio-packed-inorder-vmxnet3)
        packed=off
        in_order=""  # QEMU 10 has the property, 7.2 not: leave it out unless asked for
        [[ "$profile" == virtio-packed-* ]] && packed=on
        [[ "$profile" == *-inorder-* ]] && in_order=",in_order=on"
        devices="$hub -netdev hubport,id=h2,hubid=0 -device virtio-net-pci,id=nic0,netdev=h0,addr=03.0,disable-legacy=on,packed=$packed$in_order,mac=52:54:00:00:03:00
                 -device vmxnet3,id=nic1,netdev=h1,addr=04.0,mac=52:54:00:00:04:00
                 -device vmxnet3,id=nic2,netdev=h2,addr=05.0,mac=52:54:00:00:05:00" ;;
    *) say "unknown profile '$profile' (vmxnet3-pair, vmxnet3-hotplug, vmxnet3-trio, igb-sriov, igb-sriov-peer, virtio-vmxnet3, virtio-packed-vmxnet3, virtio-inorder-vmxnet3, virtio-packed-inorder-vmxnet3)"; exit 2 ;;
esac

# 2. QEMU (10.x has igb; 7.2 has the rest).
qemu=${NPA_GUEST_QEMU:-qemu-system-x86_64}
if ! command -v "$qemu" >/dev/null 2>&1; then
    say "$qemu not found: run tests/guest/deps.sh (qemu-system-x86 from bookworm-backports)"
    exit 2
fi
if [[ "$profile" == igb-sriov* ]] && ! "$qemu" -device help 2>/dev/null | grep -q '"igb"'; then
    say "$("$qemu" --version | head -n 1) has no igb device: QEMU 8.0 or newer is needed" \
        "(tests/guest/deps.sh installs 10.x from bookworm-backports)"
    exit 2
fi

# 3. Kernel and initramfs.
if [ -n "${NPA_GUEST_KERNEL:-}" ]; then
    kernel=$NPA_GUEST_KERNEL
elif ! kernel=$("$here/build-initramfs.sh" kernel); then
    say "no guest kernel: Debian's linux-image package could not be fetched (see above)"
    exit 2
fi
[ -f "$kernel" ] || { say "guest kernel $kernel missing"; exit 2; }
mkdir -p "$cache/run"
work=$(mktemp -d "$cache/run/$profile.XXXXXX")
# On any exit (also a CTest time-out's SIGTERM) QEMU goes too, then the scratch directory.
cleanup() {
    [ -s "$work/qemu.pid" ] && kill "$(cat "$work/qemu.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
"$here/build-initramfs.sh" initramfs -o "$work/initramfs.cpio" "$@" || exit 2
[ -n "$log" ] || log="$cache/last-$profile.log"
mkdir -p "$(dirname "$log")"

# no_timer_check: on a loaded host the emulated CPU can be descheduled through the
# kernel's IO-APIC timer check, which then panics ("IO-APIC + timer doesn't work").
cmdline="console=ttyS0 panic=-1 quiet loglevel=3 mitigations=off tsc=reliable no_timer_check
         hugepages=$hugepages npa.profile=$profile $append"
# The monitor the guest's NPA-GUEST-MONITOR lines reach: a pipe pair QEMU opens read-write
# (so neither side blocks); its replies are drained into <log>.monitor.
mkfifo "$work/mon.in" "$work/mon.out"
mon=(-chardev "pipe,id=npamon,path=$work/mon" -mon chardev=npamon,mode=readline)
[ -z "$monitor" ] || mon+=(-monitor "unix:$monitor,server,nowait")

# 4. Boot. stdin is /dev/null (no console input); the serial console goes to the log (and
#    the terminal). timeout ends QEMU at the limit, KILL 5 s later if it did not stop.
say "booting profile $profile ($(basename "$kernel"), limit ${timeout_s}s): $*"
t0=$(date +%s.%N)
set +e
# shellcheck disable=SC2086
{
    timeout --kill-after=5 "$timeout_s" "$qemu" -accel tcg -machine q35 -cpu max -smp 1 \
        -m "$mem" -nodefaults -display none -serial stdio -no-reboot -pidfile "$work/qemu.pid" \
        -kernel "$kernel" -initrd "$work/initramfs.cpio" -append "$(echo $cmdline)" \
        $devices ${NPA_GUEST_QEMU_ARGS:-} "${mon[@]}" </dev/null 2>&1
    echo $? > "$work/qemu-rc"
} |
    while IFS= read -r line; do
        line=${line%$'\r'}
        printf '%s\n' "$line" >> "$work/serial.log"
        [ "$quiet" = 1 ] || printf '%s\n' "$line"
        case "$line" in
            "NPA-GUEST PASS"|"NPA-GUEST FAIL") date +%s.%N > "$work/verdict-time" ;;
            "NPA-GUEST-MONITOR device_del "*|"NPA-GUEST-MONITOR device_add "*|\
            "NPA-GUEST-MONITOR set_link "*|"NPA-GUEST-MONITOR info "*)
                timeout 5 bash -c 'printf "%s\n" "$1" > "$2"' _ \
                    "${line#NPA-GUEST-MONITOR }" "$work/mon.in" ;;
            "NPA-GUEST-MONITOR "*)
                printf 'guest: monitor command refused: %s\n' "${line#NPA-GUEST-MONITOR }" |
                    tee -a "$work/serial.log" >&2 ;;
        esac
    done &
reader=$!
# QEMU opens the pipes read-write at start; the drain waits for it there.
cat "$work/mon.out" > "$work/monitor.log" 2>/dev/null &
drain=$!
wait "$reader"
rc=$(cat "$work/qemu-rc" 2>/dev/null || echo 1)
kill "$drain" 2>/dev/null || true
wait "$drain" 2>/dev/null || true
set -e
t1=$(date +%s.%N)
# runs of one profile side by side each write their own scratch copy; the last one to end
# leaves its log in place
touch "$work/serial.log"
cp "$work/serial.log" "$log"
cp "$work/monitor.log" "$log.monitor" 2>/dev/null || true
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
# boot to result: QEMU start to the verdict line
to_result=null
[ ! -s "$work/verdict-time" ] ||
    to_result=$(awk -v a="$t0" -v b="$(cat "$work/verdict-time")" 'BEGIN { printf "%.1f", b - a }')

# 5. The verdict and the summary.
verdict=none
grep -qx 'NPA-GUEST FAIL' "$work/serial.log" && verdict=FAIL
grep -qx 'NPA-GUEST PASS' "$work/serial.log" && [ "$verdict" = none ] && verdict=PASS
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    verdict=TIMEOUT
fi
results=$(sed -n 's/^NPA-GUEST-RESULT //p' "$work/serial.log" | paste -sd, -)
booted=$(sed -n 's/^NPA-GUEST BOOTED uptime=\([0-9.]*\)s.*/\1/p' "$work/serial.log" | head -n 1)
summary="{\"profile\":\"$profile\",\"verdict\":\"$verdict\",\"seconds\":$secs,\"to_result_seconds\":$to_result,\"guest_boot_seconds\":${booted:-null},\"qemu_exit\":$rc,\"results\":[${results}]}"
echo "NPA-GUEST-SUMMARY $summary"
[ -z "$json_out" ] || printf '%s\n' "$summary" > "$json_out"
case "$verdict" in
    PASS) say "PASS ($profile, ${to_result}s from QEMU start to the verdict, ${secs}s in all)"; exit 0 ;;
    FAIL) say "FAIL ($profile, ${secs}s): a program failed (NPA-GUEST-RESULT lines above; log $log)" ;;
    TIMEOUT)
        say "TIMEOUT after ${timeout_s}s ($profile): last 40 lines of the serial log ($log):"
        tail -n 40 "$work/serial.log" >&2 ;;
    *)
        say "no verdict ($profile): QEMU exited $rc without NPA-GUEST PASS/FAIL; last 40 lines ($log):"
        tail -n 40 "$work/serial.log" >&2 ;;
esac
exit 1
