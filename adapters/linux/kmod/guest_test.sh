#!/bin/sh
# adapters/linux/kmod/guest_test.sh: npa_vmxnet3.ko in the guest (tests/guest, profile
# vmxnet3-pair; registered as guest_kmod_vmxnet3).
#
#   1. insmod npa_vmxnet3.ko bdf=0000:00:03.0: the module takes nic0, a net_device npa0
#      appears;
#   2. Linux's own vmxnet3 takes nic1 (00:04.0), which moves into a second network
#      namespace (a process started with `unshare -n`), 10.77.0.2/24 there;
#   3. npa0 gets 10.77.0.1/24 and comes up: its data path is the npa shell over the
#      vmxnet3 plugin;
#   4. ping both ways across QEMU's hub; every echo must come back;
#   5. the control path, each request through the shell to the vmxnet3's hypervisor:
#      a new MAC (`ip link set npa0 address`; the gratuitous ARP teaches the peer, which
#      then reaches npa0 only if the device filters on the new address), an MTU within the
#      device's limit (1400: accepted, large pings pass) and one beyond it (1600: refused
#      with an error, the MTU unchanged), promiscuous on and off (busybox's ip sets no
#      all-multicast; the multicast list is IPv6's groups, set at up); pings must all come
#      back after each;
#   6. ethtool -i and -S (npa_ethtool, a static program: busybox has none): the driver and
#      bus address, and the shell's counters (its own, then the vmxnet3 path's), which must
#      agree with the net_device's and grow with the traffic;
#   7. the sysfs group /sys/class/net/npa0/npa: paths lists the vmxnet3 as active,
#      active_path reads 0, switch_log holds the boot record; writes of garbage or of a
#      path that does not exist fail with an error (EINVAL), never an oops; writing the
#      active path succeeds and changes nothing; down, active_path reads none and a write
#      fails;
#   8. npa0 down, rmmod: the module must leave cleanly (its buffer audit balanced);
#   9. the kernel log must hold no WARNING, BUG, Oops, refusal or audit complaint.
# Prints NPA-GUEST-RESULT {...} with what it measured; exits 0 on pass.
set -u
export PATH=/bin:/sbin

PINGS=${NPA_PINGS:-20}
fail() {
    echo "kmod: FAIL: $*"
    dmesg | tail -n 40
    echo "NPA-GUEST-RESULT {\"test\":\"kmod_vmxnet3\",\"status\":\"fail\",\"step\":\"$step\"}"
    [ -n "${ns_pid:-}" ] && kill "$ns_pid" 2>/dev/null
    exit 1
}
# wait_for SECONDS COMMAND...: polls the command every 0.1 s until it succeeds
wait_for() {
    n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        usleep 100000
        n=$((n - 1))
    done
    return 1
}
netdev_of() {  # the net_device of PCI function $1
    ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n 1
}
ns() { nsenter -t "$ns_pid" -n "$@"; }
# sysfs shows the first namespace's devices: the peer's carrier comes from `ip link`
peer_carrier() { ns ip link show dev "$peer" | grep -q LOWER_UP; }

step=insmod
VF=${NPA_KMOD_VF:-}
vf_arg=""
if [ -n "$VF" ]; then
    # igb-sriov-peer: Linux's igb drives the PF (01:00.0), up, with one VF; the module
    # takes that VF as the second path of npa0.
    step=vf
    npa-modprobe igb || fail "loading Linux's igb"
    wait_for 5 test -n "$(netdev_of 0000:01:00.0)" || fail "no net_device on the PF 0000:01:00.0"
    ip link set "$(netdev_of 0000:01:00.0)" up || fail "PF up"
    echo 1 > /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs || fail "sriov_numvfs = 1 refused"
    wait_for 5 test -e "/sys/bus/pci/devices/$VF" || fail "no VF at $VF"
    vf_arg="vf=$VF"
    step=insmod
fi
insmod /lib/modules/npa/npa_vmxnet3.ko bdf=0000:00:03.0 $vf_arg || fail "insmod npa_vmxnet3.ko"
wait_for 5 test -n "$(netdev_of 0000:00:03.0)" || fail "no net_device on 0000:00:03.0"
dev=$(netdev_of 0000:00:03.0)
drv=$(basename "$(readlink /sys/bus/pci/devices/0000:00:03.0/driver)")
echo "kmod: 0000:00:03.0 driven by $drv as $dev"
[ "$drv" = npa_vmxnet3 ] || fail "00:03.0 is bound to $drv"
npaths=1
if [ -n "$VF" ]; then
    wait_for 5 grep -q '^1 igbvf$' "/sys/class/net/$dev/npa/paths" ||
        fail "the VF $VF is not path 1: $(cat "/sys/class/net/$dev/npa/paths")"
    vfdrv=$(basename "$(readlink "/sys/bus/pci/devices/$VF/driver")")
    [ "$vfdrv" = npa_vmxnet3 ] || fail "$VF is bound to $vfdrv"
    npaths=2
    echo "kmod: VF $VF is path 1 of $dev"
fi

step=peer
npa-modprobe vmxnet3 || fail "loading Linux's vmxnet3"
wait_for 5 test -n "$(netdev_of 0000:00:04.0)" || fail "no net_device on 0000:00:04.0"
peer=$(netdev_of 0000:00:04.0)
unshare -n sleep 100000 &
ns_pid=$!
own_ns=$(readlink /proc/self/ns/net)
other_ns() { [ "$(readlink "/proc/$ns_pid/ns/net")" != "$own_ns" ]; }
wait_for 10 other_ns || fail "unshare -n: no second network namespace"
ip link set dev "$peer" netns "$ns_pid" || fail "moving $peer into the peer namespace"
ns ip link set lo up
ns ip addr add 10.77.0.2/24 dev "$peer" || fail "address in the peer namespace"
ns ip link set "$peer" up || fail "peer up"

step=up
ip addr add 10.77.0.1/24 dev "$dev" || fail "ip addr add on $dev"
ip link set "$dev" up || fail "ip link set $dev up"
wait_for 10 grep -q 1 "/sys/class/net/$dev/carrier" || fail "$dev: no carrier"
wait_for 10 peer_carrier || fail "$peer: no carrier"
ip addr show dev "$dev"

step=ping
out=$(ping -c "$PINGS" -i 0.2 -W 10 10.77.0.2 2>&1)
echo "$out" | tail -n 3
sent=$(echo "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
got=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
rtt=$(echo "$out" | sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p')
back=$(ns ping -c "$PINGS" -i 0.2 -W 10 10.77.0.1 2>&1)
echo "$back" | tail -n 3
back_got=$(echo "$back" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
stats=/sys/class/net/$dev/statistics
rx=$(cat "$stats/rx_packets"); tx=$(cat "$stats/tx_packets")
rx_drop=$(cat "$stats/rx_dropped"); tx_drop=$(cat "$stats/tx_dropped")
echo "kmod: npa0 -> peer $got/$sent (avg ${rtt:-?} ms), peer -> npa0 ${back_got:-0}/$PINGS;" \
     "$dev rx $rx tx $tx, dropped rx $rx_drop tx $tx_drop"
[ "${got:-0}" = "$PINGS" ] || fail "ping $dev -> peer: ${got:-0} of $PINGS answered"
[ "${back_got:-0}" = "$PINGS" ] || fail "ping peer -> $dev: ${back_got:-0} of $PINGS answered"
[ "$rx" -ge $((2 * PINGS)) ] && [ "$tx" -ge $((2 * PINGS)) ] ||
    fail "$dev counters: rx $rx tx $tx, fewer than the echoes"

step=mac
# ping_all COUNT ARGS...: every echo must come back
ping_all() {
    n=$1; shift
    o=$(ping -c "$n" -i 0.2 -W 10 "$@" 10.77.0.2 2>&1)
    r=$(echo "$o" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
    [ "${r:-0}" = "$n" ] || { echo "$o" | tail -n 3; return 1; }
}
old_mac=$(cat "/sys/class/net/$dev/address")
new_mac=02:4e:50:41:00:01
echo 1 > "/proc/sys/net/ipv4/conf/$dev/arp_notify"   # a gratuitous ARP on the change
ip link set dev "$dev" address "$new_mac" || fail "ip link set $dev address $new_mac"
[ "$(cat "/sys/class/net/$dev/address")" = "$new_mac" ] || fail "$dev address did not change"
peer_learned() { ns cat /proc/net/arp | grep 10.77.0.1 | grep -qi "$new_mac"; }
wait_for 10 peer_learned || { ns cat /proc/net/arp; fail "the peer did not learn $new_mac"; }
ping_all 5 || fail "ping after the MAC change ($old_mac -> $new_mac)"
back=$(ns ping -c 5 -i 0.2 -W 10 10.77.0.1 2>&1)
echo "$back" | grep -q ' 5 packets received' || fail "ping peer -> $dev after the MAC change"
echo "kmod: MAC $old_mac -> $new_mac, the peer learned it, pings answered both ways"

step=mtu
ip link set dev "$dev" mtu 1400 || fail "ip link set $dev mtu 1400"
[ "$(cat "/sys/class/net/$dev/mtu")" = 1400 ] || fail "$dev mtu is not 1400"
ping_all 3 -s 1372 || fail "1400-byte pings at MTU 1400"
if mtu_err=$(ip link set dev "$dev" mtu 1600 2>&1); then
    fail "MTU 1600 (beyond the device's 1500) was accepted"
fi
[ "$(cat "/sys/class/net/$dev/mtu")" = 1400 ] || fail "a refused MTU changed $dev's MTU"
ip link set dev "$dev" mtu 1500 || fail "ip link set $dev mtu 1500"
ping_all 3 -s 1472 || fail "1500-byte pings at MTU 1500"
echo "kmod: MTU 1400 accepted, 1600 refused (${mtu_err:-no message}), back to 1500"

step=rxmode
ip link set dev "$dev" promisc on || fail "promisc on"
ping_all 3 || fail "ping in promiscuous mode"
ip link set dev "$dev" promisc off || fail "promisc off"
ping_all 3 || fail "ping after promiscuous mode"
rx=$(cat "$stats/rx_packets"); tx=$(cat "$stats/tx_packets")
echo "kmod: promiscuous on and off; $dev rx $rx tx $tx"

step=ethtool
ethtool=/npa/bin/npa_ethtool
info=$("$ethtool" -i "$dev") || fail "ethtool -i $dev"
echo "$info"
echo "$info" | grep -qx 'driver: npa_vmxnet3' || fail "ethtool -i: driver is not npa_vmxnet3"
echo "$info" | grep -qx 'bus-info: 0000:00:03.0' || fail "ethtool -i: bus-info is not 0000:00:03.0"
# stat NAME: its value in the last `ethtool -S`
stat() { echo "$S" | sed -n "s/^ *$1: //p"; }
S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
echo "$S"
rx=$(cat "$stats/rx_packets"); tx=$(cat "$stats/tx_packets")
[ -z "$VF" ] || [ -n "$(stat igbvf_rx_packets)" ] || fail "ethtool -S: no igbvf_rx_packets"
for k in shell_tx_accepted shell_rx_delivered shell_tx_lost shell_switches vmxnet3_rx_packets \
         vmxnet3_tx_packets vmxnet3_bad_completion; do
    [ -n "$(stat $k)" ] || fail "ethtool -S: no $k"
done
[ "$(stat shell_rx_delivered)" -ge "$rx" ] || fail "ethtool -S: rx_delivered below rx_packets $rx"
[ "$(stat vmxnet3_rx_packets)" -ge "$(stat shell_rx_delivered)" ] ||
    fail "ethtool -S: the path received fewer frames than the shell delivered"
[ "$(stat shell_tx_accepted)" -ge "$tx" ] || fail "ethtool -S: tx_accepted below tx_packets $tx"
[ "$(stat shell_tx_lost)" = 0 ] && [ "$(stat vmxnet3_bad_completion)" = 0 ] ||
    fail "ethtool -S: frames lost or bad completions"
before=$(stat vmxnet3_rx_packets)
ping_all 5 || fail "ping before ethtool -S again"
S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
[ "$(stat vmxnet3_rx_packets)" -ge $((before + 5)) ] ||
    fail "ethtool -S: vmxnet3_rx_packets $before -> $(stat vmxnet3_rx_packets) over 5 echoes"
echo "kmod: ethtool -S: vmxnet3 path rx $before -> $(stat vmxnet3_rx_packets), tx $(stat vmxnet3_tx_packets)"

step=sysfs
sys=/sys/class/net/$dev/npa
cat "$sys/paths"
cat "$sys/switch_log"
grep -qx '0 vmxnet3 active' "$sys/paths" || fail "$sys/paths does not list the vmxnet3 as active"
[ "$(cat "$sys/active_path")" = 0 ] || fail "$sys/active_path is not 0"
grep -q '^1 none -> vmxnet3 boot ok ' "$sys/switch_log" || fail "$sys/switch_log has no boot record"
for bad in garbage "" -1 $npaths 7 4294967296 0x 1.5; do
    if werr=$( (echo "$bad" > "$sys/active_path") 2>&1); then
        fail "writing '$bad' to $sys/active_path was accepted"
    fi
    case "$werr" in
        *"Invalid argument"*) ;;
        *) fail "writing '$bad' to $sys/active_path: '$werr', not EINVAL" ;;
    esac
done
echo 0 > "$sys/active_path" || fail "writing the active path (0) to $sys/active_path"
[ "$(cat "$sys/active_path")" = 0 ] || fail "$sys/active_path changed"
ping_all 3 || fail "ping after the sysfs writes"
echo "kmod: sysfs: paths, active_path, switch_log read; 8 bad writes refused, the active path accepted"

if [ -n "$VF" ]; then
    # 100 switches, vmxnet3 -> VF -> vmxnet3 ..., while a ping runs at 100 Hz: none lost.
    step=switch
    ping -c 1500 -i 0.01 -W 2 10.77.0.2 > /tmp/switch-ping.out 2>&1 &
    ping_pid=$!
    usleep 300000
    t0=$(cut -d' ' -f1 /proc/uptime)
    i=0
    while [ "$i" -lt 100 ]; do
        to=$(((i + 1) % 2))
        tries=0
        while ! werr=$( (echo "$to" > "$sys/active_path") 2>&1); do
            # the hysteresis (50 ms on a path) answers EBUSY: wait and ask again
            case "$werr" in *busy*) ;; *) fail "switch $i to path $to: $werr" ;; esac
            tries=$((tries + 1))
            [ "$tries" -lt 50 ] || fail "switch $i to path $to: busy 50 times"
            usleep 20000
        done
        [ "$(cat "$sys/active_path")" = "$to" ] || fail "switch $i: active_path is not $to"
        i=$((i + 1))
        usleep 30000
    done
    t1=$(cut -d' ' -f1 /proc/uptime)
    wait "$ping_pid"
    tail -n 2 /tmp/switch-ping.out
    sw_sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/switch-ping.out)
    sw_got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/switch-ping.out)
    tail -n 3 "$sys/switch_log"
    S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
    echo "kmod: 100 switches in $t0..$t1 s; ping ${sw_got:-0}/${sw_sent:-0}; VF path rx $(stat igbvf_rx_packets) tx $(stat igbvf_tx_packets); shell_tx_lost $(stat shell_tx_lost)"
    [ -n "$sw_sent" ] && [ "${sw_got:-0}" = "$sw_sent" ] || fail "ping during the switches: ${sw_got:-0} of ${sw_sent:-?} answered"
    [ "$(stat shell_switches)" -ge 101 ] || fail "ethtool -S: shell_switches $(stat shell_switches), not 101"
    [ "$(stat igbvf_rx_packets)" -gt 0 ] && [ "$(stat igbvf_tx_packets)" -gt 0 ] ||
        fail "no traffic on the VF path"
    [ "$(stat shell_tx_lost)" = 0 ] || fail "the shell lost TX frames"

    # The VF goes under traffic: the PF's sriov_numvfs = 0 removes it (its PCI remove runs
    # here). npa0 stays up, the shell falls back to the vmxnet3, the VF's path goes, pings
    # go on. Echoes in flight to the VF while it goes may be lost: counted, not hidden.
    # A switch that times out stays pending; the next write finishes it (not EBUSY).
    step=switch-timeout
    wait_param=/sys/module/npa_vmxnet3/parameters/switch_wait_ms
    echo 0 > "$wait_param" || fail "switch_wait_ms = 0 refused"
    usleep 100000
    if werr=$( (echo 1 > "$sys/active_path") 2>&1); then
        timeout_seen=false   # the switch finished before its first check: nothing pending
    else
        case "$werr" in *"timed out"*) ;; *) fail "a switch with no time to finish: '$werr', not ETIMEDOUT" ;; esac
        timeout_seen=true
    fi
    echo 5000 > "$wait_param" || fail "switch_wait_ms = 5000 refused"
    echo "kmod: a switch given 0 ms: timed out $timeout_seen"
    step=removal
    tries=0
    while ! werr=$( (echo 1 > "$sys/active_path") 2>&1); do
        case "$werr" in *busy*) ;; *) fail "switch to the VF before the removal: $werr" ;; esac
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "switch to the VF before the removal: busy 50 times"
        usleep 20000
    done
    [ "$(cat "$sys/active_path")" = 1 ] || fail "the VF is not the active path before the removal"
    S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
    vf_tx0=$(stat igbvf_tx_packets)
    ping -c 800 -i 0.01 -W 2 10.77.0.2 > /tmp/removal-ping.out 2>&1 &
    ping_pid=$!
    usleep 2000000
    S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
    vf_tx1=$(stat igbvf_tx_packets)
    [ "${vf_tx1:-0}" -gt "${vf_tx0:-0}" ] || fail "the ping did not go through the VF before its removal"
    t0=$(cut -d' ' -f1 /proc/uptime)
    echo 0 > /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs || fail "sriov_numvfs = 0 refused"
    t1=$(cut -d' ' -f1 /proc/uptime)
    [ ! -e /sys/bus/pci/devices/$VF ] || fail "the VF $VF is still there after sriov_numvfs = 0"
    [ $(($(cat "/sys/class/net/$dev/flags") & 1)) = 1 ] || fail "$dev is not up after the VF's removal"
    [ "$(cat "/sys/class/net/$dev/carrier")" = 1 ] || fail "$dev has no carrier after the VF's removal"
    [ "$(cat "$sys/active_path")" = 0 ] || fail "active_path is $(cat "$sys/active_path"), not the vmxnet3 (0), after the VF's removal"
    [ "$(cat "$sys/paths")" = "0 vmxnet3 active" ] || fail "$sys/paths after the VF's removal: $(cat "$sys/paths")"
    rm_rec=$(tail -n 1 "$sys/switch_log")
    echo "$rm_rec"
    case "$rm_rec" in
        *" igbvf -> vmxnet3 surprise-removal ok "*) ;;
        *) fail "the last switch is not the fallback from the VF: $rm_rec" ;;
    esac
    wait "$ping_pid"
    tail -n 2 /tmp/removal-ping.out
    rm_sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/removal-ping.out)
    rm_got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/removal-ping.out)
    [ -n "$rm_sent" ] && [ -n "$rm_got" ] || fail "ping during the removal: no summary"
    rm_lost=$((rm_sent - rm_got))
    # Pings go on after the fallback: the last 300 (3 s at 100 Hz, sent well after it)
    # must all be answered.
    late=$(sed -n 's/.* seq=\([0-9]*\) .*/\1/p' /tmp/removal-ping.out | sort -un |
        awk -v from=$((rm_sent - 300)) '$1 >= from' | wc -l)
    S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
    echo "kmod: VF removed at $t0..$t1 s (uptime); ping $rm_got/$rm_sent, $rm_lost lost during the VF's teardown; the last 300: $late answered; shell_tx_lost $(stat shell_tx_lost)"
    [ "$late" = 300 ] || fail "pings after the fallback: $late of the last 300 answered"
    [ -z "$(stat igbvf_tx_packets)" ] || fail "ethtool -S still lists the VF's path after its removal"
    ping_all 3 || fail "ping on the vmxnet3 after the VF's removal"
    rm_json=",\"vf_removal\":{\"by\":\"sriov_numvfs=0\",\"fallback\":\"vmxnet3\",\"ping_sent\":$rm_sent,\"ping_received\":$rm_got,\"ping_lost\":$rm_lost,\"last_300_answered\":$late,\"vf_tx_before_ping\":${vf_tx0:-0},\"vf_tx_at_removal\":$vf_tx1,\"sriov_write_s\":\"$t0..$t1\"},\"switch_timeout_then_finished\":$timeout_seen"
fi

step=rmmod
ip link set "$dev" down || fail "ip link set $dev down"
[ "$(cat "$sys/active_path")" = none ] || fail "$sys/active_path is not none while down"
if (echo 0 > "$sys/active_path") 2>/dev/null; then
    fail "writing $sys/active_path while down was accepted"
fi
rmmod npa_vmxnet3 || fail "rmmod npa_vmxnet3"
[ ! -e "/sys/class/net/$dev" ] || fail "$dev still there after rmmod"
kill "$ns_pid" 2>/dev/null
ns_pid=""

step=dmesg
dmesg | grep -i npa
bad=$(dmesg | grep -E 'WARNING|BUG|Oops|Call Trace|audit does not balance|refused|would not go|no fallback' | head -n 5)
[ -z "$bad" ] || fail "kernel log: $bad"

echo "NPA-GUEST-RESULT {\"test\":\"kmod_vmxnet3\",\"status\":\"pass\",\"netdev\":\"$dev\",\"pings\":$PINGS,\"ping_out_received\":$got,\"ping_back_received\":$back_got,\"rtt_avg_ms\":${rtt:-0},\"rx_packets\":$rx,\"tx_packets\":$tx,\"rx_dropped\":$rx_drop,\"tx_dropped\":$tx_drop,\"mac_changed\":true,\"mtu_refused\":true${rm_json:-}}"
exit 0
