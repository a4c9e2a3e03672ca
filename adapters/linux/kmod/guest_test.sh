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
#      and a link flap from QEMU's monitor, which npa0's carrier must follow;
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
# The interrupts (/proc/interrupts): the module's must be of the type npa.kmod_irq names
# (msix, the default: two vectors, queue 0 and events, PCI-MSI; msi: one PCI-MSI vector for
# both; intx: one IO-APIC line for both, shared, as with pci=nomsi on the kernel command
# line), and their count must grow with the pings. npa.kmod_intr=X loads it with intr=X.
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
traffic=/npa/bin/npa_traffic
# field LINE KEY: KEY's value in an npa_traffic result line
field() { echo "$1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
# tcp_start DIRECTION SECONDS [MBIT_S]: starts a TCP stream out (npa0 -> peer) or in (peer
# -> npa0) for SECONDS, in the background; tcp_finish waits for it: every byte must have
# arrived, in order and intact. It sets tcp_mbit (what the receiver measured) and
# tcp_retrans (the sender's retransmitted segments). tcp_stream does both.
tcp_start() {
    tcp_dir=$1; shift
    if [ "$tcp_dir" = out ]; then
        ns "$traffic" tcp-sink 5201 > /tmp/tcp-sink.out 2>&1 &
        sink_pid=$!
        "$traffic" tcp-send 10.77.0.2 5201 "$@" > /tmp/tcp-send.out 2>&1 &
    else
        "$traffic" tcp-sink 5201 > /tmp/tcp-sink.out 2>&1 &
        sink_pid=$!
        ns "$traffic" tcp-send 10.77.0.1 5201 "$@" > /tmp/tcp-send.out 2>&1 &
    fi
    send_pid=$!
}
tcp_finish() {
    wait "$send_pid" || fail "TCP $tcp_dir: the sender: $(cat /tmp/tcp-send.out)"
    wait "$sink_pid" || fail "TCP $tcp_dir: the receiver: $(cat /tmp/tcp-sink.out)"
    snd=$(cat /tmp/tcp-send.out) rcv=$(cat /tmp/tcp-sink.out)
    echo "kmod: TCP $tcp_dir: $snd; $rcv"
    [ "$(field "$rcv" bytes)" = "$(field "$snd" bytes)" ] || fail "TCP $tcp_dir: bytes sent and received differ"
    tcp_mbit=$(field "$rcv" mbit_s)
    tcp_retrans=$(field "$snd" retrans)
}
tcp_stream() { tcp_start "$@"; tcp_finish; }
# switch_to PATH WHAT: a write to active_path; EBUSY (the hysteresis: 50 ms on a path, or a
# VF whose PF still holds the mailbox after its reset) is asked again 20 ms later
switch_to() {
    tries=0
    while ! werr=$( (echo "$1" > "$sys/active_path") 2>&1); do
        case "$werr" in *busy*) ;; *) fail "switch $2 (to path $1): $werr" ;; esac
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || fail "switch $2 (to path $1): $werr 100 times"
        usleep 20000
    done
    [ "$(cat "$sys/active_path")" = "$1" ] || fail "switch $2: active_path is not $1"
}
# counters GROUP: from /proc/net/snmp or /proc/net/netstat on stdin, GROUP's counters as
# "name value" lines (the header line names them, the next one holds the values)
counters() {
    awk -v g="$1:" '$1 == g { if (!n) { split($0, k); n = 1 } else { split($0, v); for (i = 2; i in k; i++) print k[i], v[i] } }'
}
# tcpext: the first namespace's TCP counters that say why a segment was sent again
tcpext() {
    counters TcpExt < /proc/net/netstat |
        grep -E '^(TCPLossProbes|TCPLossProbeRecovery|TCPFastRetrans|TCPSlowStartRetrans|TCPTimeouts|TCPDSACKRecv|TCPDSACKOfoRecv|TCPSACKReorder|TCPTSReorder|TCPSpuriousRTOs|TCPDSACKIgnoredNoUndo|TCPDSACKUndo|TCPLostRetransmit) '
}
# udp_rate DIRECTION SECONDS: 64-byte UDP datagrams (18-byte payload) as fast as the
# sender goes; sets udp_kpps to what the receiver counted.
udp_rate() {
    if [ "$1" = out ]; then
        ns "$traffic" udp-sink 5202 "$2" > /tmp/udp-sink.out 2>&1 &
        sink_pid=$!
        usleep 200000
        "$traffic" udp-send 10.77.0.2 5202 "$2" 18 > /tmp/udp-send.out 2>&1 || fail "UDP $1: $(cat /tmp/udp-send.out)"
    else
        "$traffic" udp-sink 5202 "$2" > /tmp/udp-sink.out 2>&1 &
        sink_pid=$!
        usleep 200000
        ns "$traffic" udp-send 10.77.0.1 5202 "$2" 18 > /tmp/udp-send.out 2>&1 || fail "UDP $1: $(cat /tmp/udp-send.out)"
    fi
    wait "$sink_pid" || fail "UDP $1: nothing received: $(cat /tmp/udp-sink.out)"
    echo "kmod: UDP $1: $(cat /tmp/udp-send.out); $(cat /tmp/udp-sink.out)"
    udp_kpps=$(field "$(cat /tmp/udp-sink.out)" kpps)
}
# measure: TCP and 64-byte UDP both ways; sets m_json
MEASURE_S=${NPA_MEASURE_S:-3}
measure() {
    tcp_stream out "$MEASURE_S"; m_out=$tcp_mbit
    tcp_stream in "$MEASURE_S"; m_in=$tcp_mbit
    udp_rate out "$MEASURE_S"; m_uout=$udp_kpps
    udp_rate in "$MEASURE_S"; m_uin=$udp_kpps
    m_json="{\"tcp_out_mbit_s\":$m_out,\"tcp_in_mbit_s\":$m_in,\"udp64_out_kpps\":$m_uout,\"udp64_in_kpps\":$m_uin}"
}

# irq_lines: the module's lines of /proc/interrupts (its names start with its PCI address)
irq_lines() { grep ' 0000:00:03\.0-' /proc/interrupts; }
# irq_count: how often they fired, summed over the CPUs
irq_count() { irq_lines | awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }'; }

step=insmod
IRQ=${NPA_KMOD_IRQ:-msix}
intr_arg=""
[ -z "${NPA_KMOD_INTR:-}" ] || intr_arg="intr=$NPA_KMOD_INTR"
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
insmod /lib/modules/npa/npa_vmxnet3.ko bdf=0000:00:03.0 $vf_arg $intr_arg || fail "insmod npa_vmxnet3.ko"
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

step=irq
# The interrupt type the module enabled, and what the kernel registered for it.
case "$IRQ" in
    msix) irq_name=MSI-X irq_chip=PCI-MSI irq_vectors=2 ;;
    msi) irq_name=MSI irq_chip=PCI-MSI irq_vectors=1 ;;
    intx) irq_name=INTx irq_chip=IO-APIC irq_vectors=1 ;;
    *) fail "npa.kmod_irq=$IRQ: msix, msi or intx" ;;
esac
irq_log=$(dmesg | grep 'npa: interrupts:' | tail -n 1)
echo "kmod: $irq_log"
echo "$irq_log" | grep -q "npa: interrupts: $irq_name, $irq_vectors vector" ||
    fail "the module did not enable $irq_vectors $irq_name vector(s): ${irq_log:-no log line}"
irq_lines
[ "$(irq_lines | wc -l)" = "$irq_vectors" ] || fail "/proc/interrupts: not $irq_vectors line(s) for 0000:00:03.0"
irq_lines | grep -qv "$irq_chip" && fail "/proc/interrupts: a line of 0000:00:03.0 is not $irq_chip"
if [ "$IRQ" = msix ]; then
    irq_lines | grep -q '0000:00:03\.0-rxtx' && irq_lines | grep -q '0000:00:03\.0-event' &&
        ! irq_lines | grep -q 'rxtx-event' || fail "/proc/interrupts: no rxtx and event vectors for 0000:00:03.0"
else
    irq_lines | grep -q '0000:00:03\.0-rxtx-event' || fail "/proc/interrupts: no rxtx-event vector for 0000:00:03.0"
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
irq0=$(irq_count)
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
irq1=$(irq_count)
echo "kmod: $irq_name interrupts of 0000:00:03.0 during the pings: $((irq1 - irq0))"
[ "$irq1" -gt "$irq0" ] || fail "the module's $irq_name interrupts did not fire during the pings"

step=tcp
if [ -z "$VF" ]; then
    # TCP and UDP both ways through npa0; the same measure runs over Linux's own vmxnet3 on
    # the same device at the end (step linux-vmxnet3), for the ratio.
    measure
    npa_json=$m_json n_out=$m_out n_in=$m_in n_uout=$m_uout n_uin=$m_uin
else
    tcp_stream out 2
    tcp_stream in 2
fi

step=mac
# ping_all COUNT ARGS...: every echo must come back
ping_all() {
    n=$1; shift
    o=$(ping -c "$n" -i 0.2 -W 10 "$@" 10.77.0.2 2>&1)
    r=$(echo "$o" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
    [ "${r:-0}" = "$n" ] || { echo "$o" | tail -n 3; return 1; }
}
old_mac=$(cat "/sys/class/net/$dev/address")
# Bad netlink input first: a multicast, the zero and the broadcast address are refused with
# an error and change nothing.
for bad in 01:00:5e:00:00:01 00:00:00:00:00:00 ff:ff:ff:ff:ff:ff; do
    if ip link set dev "$dev" address "$bad" 2>/dev/null; then
        fail "MAC $bad was accepted"
    fi
done
[ "$(cat "/sys/class/net/$dev/address")" = "$old_mac" ] || fail "a refused MAC changed $dev's address"
new_mac=02:4e:50:41:00:01
echo 1 > "/proc/sys/net/ipv4/conf/$dev/arp_notify"   # a gratuitous ARP on the change
ip link set dev "$dev" address "$new_mac" || fail "ip link set $dev address $new_mac"
[ "$(cat "/sys/class/net/$dev/address")" = "$new_mac" ] || fail "$dev address did not change"
peer_learned() { ns cat /proc/net/arp | grep 10.77.0.1 | grep -qi "$new_mac"; }
wait_for 10 peer_learned || { ns cat /proc/net/arp; fail "the peer did not learn $new_mac"; }
ping_all 5 || fail "ping after the MAC change ($old_mac -> $new_mac)"
back=$(ns ping -c 5 -i 0.2 -W 10 10.77.0.1 2>&1)
echo "$back" | grep -q ' 5 packets received' || fail "ping peer -> $dev after the MAC change"
# And back: the device keeps the MAC it was last given, and QEMU's vmxnet3 then filters
# out every unicast frame for the next driver that binds it, if that MAC is not its own
# (Linux's vmxnet3 alike: the same happens after its own `ip link set address`).
ip link set dev "$dev" address "$old_mac" || fail "ip link set $dev address $old_mac"
peer_learned_old() { ns cat /proc/net/arp | grep 10.77.0.1 | grep -qi "$old_mac"; }
wait_for 10 peer_learned_old || { ns cat /proc/net/arp; fail "the peer did not learn $old_mac again"; }
ping_all 3 || fail "ping after the MAC went back to $old_mac"
echo "kmod: MAC $old_mac -> $new_mac -> $old_mac, the peer learned each, pings answered both ways"

step=mtu
ip link set dev "$dev" mtu 1400 || fail "ip link set $dev mtu 1400"
[ "$(cat "/sys/class/net/$dev/mtu")" = 1400 ] || fail "$dev mtu is not 1400"
ping_all 3 -s 1372 || fail "1400-byte pings at MTU 1400"
if mtu_err=$(ip link set dev "$dev" mtu 1600 2>&1); then
    fail "MTU 1600 (beyond the device's 1500) was accepted"
fi
for bad in 0 67 1501 65536; do
    if ip link set dev "$dev" mtu "$bad" 2>/dev/null; then
        fail "MTU $bad was accepted"
    fi
done
[ "$(cat "/sys/class/net/$dev/mtu")" = 1400 ] || fail "a refused MTU changed $dev's MTU"
ip link set dev "$dev" mtu 1500 || fail "ip link set $dev mtu 1500"
ping_all 3 -s 1472 || fail "1500-byte pings at MTU 1500"
echo "kmod: MTU 1400 accepted, 1600 refused (${mtu_err:-no message}), 0, 67, 1501 and 65536 refused, back to 1500"

step=rxmode
ip link set dev "$dev" promisc on || fail "promisc on"
ping_all 3 || fail "ping in promiscuous mode"
ip link set dev "$dev" promisc off || fail "promisc off"
ping_all 3 || fail "ping after promiscuous mode"
rx=$(cat "$stats/rx_packets"); tx=$(cat "$stats/tx_packets")
echo "kmod: promiscuous on and off; $dev rx $rx tx $tx"

step=link
# A link flap from QEMU's monitor: the device's link event (ECR.LINK) must reach npa0's
# carrier, through the event vector, or with one vector for all through the queue's vector
# and the NAPI poll.
qnic=nic0
[ -z "$VF" ] || qnic=nic1  # igb-sriov-peer: nic0 is the igb
echo "NPA-GUEST-MONITOR set_link $qnic off"
wait_for 10 grep -q 0 "/sys/class/net/$dev/carrier" || fail "$dev: the carrier stayed up with $qnic's link off"
echo "NPA-GUEST-MONITOR set_link $qnic on"
wait_for 10 grep -q 1 "/sys/class/net/$dev/carrier" || fail "$dev: no carrier with $qnic's link on again"
ping_all 3 || fail "ping after the link came back"
echo "kmod: $qnic's link off and on from QEMU's monitor: $dev's carrier followed, pings answered"

step=vlan
# A VLAN device on each side (8021q): the VID reaches the device's filter through the shell's
# control path (ndo_vlan_rx_add_vid), tagged frames pass both ways. It stays for the rest of
# the run, so a switch must replay it; step vlan-kill removes it.
npa-modprobe 8021q || fail "loading 8021q"
ip link add link "$dev" name "$dev.7" type vlan id 7 || fail "ip link add $dev.7 type vlan id 7"
ip addr add 10.78.0.1/24 dev "$dev.7" && ip link set "$dev.7" up || fail "$dev.7 up"
ns ip link add link "$peer" name vlan7 type vlan id 7 || fail "the peer's VLAN 7"
ns ip addr add 10.78.0.2/24 dev vlan7 && ns ip link set vlan7 up || fail "the peer's VLAN 7 up"
# vlan_ping COUNT: every echo over VLAN 7 must come back
vlan_ping() {
    o=$(ping -c "$1" -i 0.2 -W 10 10.78.0.2 2>&1)
    echo "$o" | grep -q " $1 packets received" || { echo "$o" | tail -n 3; return 1; }
}
vlan_ping 5 || fail "ping over VLAN 7"
# The top of the VID range reaches the filter; 4095 and beyond are refused.
ip link add link "$dev" name "$dev.4094" type vlan id 4094 || fail "VLAN 4094 refused"
ip link del "$dev.4094" || fail "deleting VLAN 4094"
for bad in 4095 4096; do
    if ip link add link "$dev" name "$dev.x" type vlan id "$bad" 2>/dev/null; then
        fail "VLAN $bad was accepted"
    fi
done
o=$(ns ping -c 5 -i 0.2 -W 10 10.78.0.1 2>&1)
echo "$o" | grep -q ' 5 packets received' || fail "ping over VLAN 7 from the peer: $(echo "$o" | tail -n 2)"
echo "kmod: VLAN 7 on $dev: pings answered both ways"

step=ethtool
ethtool=/npa/bin/npa_ethtool
info=$("$ethtool" -i "$dev") || fail "ethtool -i $dev"
echo "$info"
echo "$info" | grep -qx 'driver: npa_vmxnet3' || fail "ethtool -i: driver is not npa_vmxnet3"
echo "$info" | grep -qx 'bus-info: 0000:00:03.0' || fail "ethtool -i: bus-info is not 0000:00:03.0"
# stat NAME: its value in the last `ethtool -S`
stat() { echo "$S" | sed -n "s/^ *$1: //p"; }
# the net_device's counters first: what the shell counted after them can only be more
rx=$(cat "$stats/rx_packets"); tx=$(cat "$stats/tx_packets")
S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
echo "$S"
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
    # A TCP stream runs through them; the same stream and ping without switches first: the
    # switches must not add retransmits.
    step=tcp-baseline
    SW_TCP_S=${NPA_SWITCH_TCP_S:-15}
    tcpext > /tmp/ext0
    tcp_start out "$SW_TCP_S"
    ping -c 1500 -i 0.01 -W 2 10.77.0.2 > /tmp/base-ping.out 2>&1
    tcp_finish
    tcpext > /tmp/ext1
    base_retrans=$tcp_retrans base_mbit=$tcp_mbit
    base_got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/base-ping.out)
    echo "kmod: without switches: ping ${base_got:-0}/1500, TCP $base_mbit Mbit/s, $base_retrans retransmits"
    step=switch
    tcp_start out "$SW_TCP_S"
    counters Icmp < /proc/net/snmp > /tmp/icmp-own0
    ns cat /proc/net/snmp | counters Icmp > /tmp/icmp-peer0
    ping -c 1500 -i 0.01 -W 2 10.77.0.2 > /tmp/switch-ping.out 2>&1 &
    ping_pid=$!
    ping_t0=$(cut -d' ' -f1 /proc/uptime)
    usleep 300000
    t0=$(cut -d' ' -f1 /proc/uptime)
    i=0
    while [ "$i" -lt 100 ]; do
        to=$(((i + 1) % 2))
        switch_to "$to" "$i"
        i=$((i + 1))
        usleep 30000
    done
    t1=$(cut -d' ' -f1 /proc/uptime)
    wait "$ping_pid"
    tcp_finish
    tcpext > /tmp/ext2
    paste /tmp/ext0 /tmp/ext1 /tmp/ext2 | awk '{ printf "kmod: TcpExt %s: without switches %d, with %d\n", $1, $4 - $2, $6 - $4 }'
    tail -n 2 /tmp/switch-ping.out
    sw_sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/switch-ping.out)
    sw_got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/switch-ping.out)
    tail -n 3 "$sys/switch_log"
    # how long the switches took in the kernel: the 16 records switch_log keeps
    sw_durs=$(tail -n 16 "$sys/switch_log" | sed -n 's/.* ok \([0-9]*\)ns .*/\1/p' | sort -n)
    sw_med=$(echo "$sw_durs" | awk '{ a[NR] = $1 } END { printf "%.2f", a[int((NR + 1) / 2)] / 1e6 }')
    sw_max=$(echo "$sw_durs" | awk 'END { printf "%.2f", $1 / 1e6 }')
    S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
    echo "kmod: 100 switches in $t0..$t1 s (the last 16: median $sw_med ms, max $sw_max ms); ping ${sw_got:-0}/${sw_sent:-0}; VF path rx $(stat igbvf_rx_packets) tx $(stat igbvf_tx_packets); shell_tx_lost $(stat shell_tx_lost)"
    if [ -z "$sw_sent" ] || [ "${sw_got:-0}" != "$sw_sent" ]; then
        # Which echoes went unanswered, when (ping started at $ping_t0, one echo each 10 ms
        # at best), and what each end's device and stack counted as dropped.
        awk -v n="${sw_sent:-1500}" '
            { for (i = 1; i <= NF; i++) if ($i ~ /^seq=/) { q = substr($i, 5); c[q]++ } }
            END { m = ""; d = ""
                  for (q = 0; q < n; q++) { if (!(q in c)) m = m " " q; else if (c[q] > 1) d = d " " q }
                  print "kmod: unanswered echoes (seq):" m; print "kmod: answered twice (seq):" d }' /tmp/switch-ping.out
        echo "kmod: ping started at $ping_t0 s; the switches ran $t0..$t1 s"
        # ICMP counters of both ends over the switch phase: which way the echoes were lost
        counters Icmp < /proc/net/snmp > /tmp/icmp-own1
        ns cat /proc/net/snmp | counters Icmp > /tmp/icmp-peer1
        paste /tmp/icmp-own0 /tmp/icmp-own1 | awk '$1 ~ /Echo/ { printf "kmod: npa0 Icmp %s +%d\n", $1, $4 - $2 }'
        paste /tmp/icmp-peer0 /tmp/icmp-peer1 | awk '$1 ~ /Echo/ { printf "kmod: peer Icmp %s +%d\n", $1, $4 - $2 }'
        # The stack's own drops: the IP layer's, each CPU's backlog (second column of
        # softnet_stat). InEchoReps above counts the replies that reached ICMP, so one
        # missing there never reached ping's socket either.
        counters Ip < /proc/net/snmp | grep -E '^(InReceives|InHdrErrors|InAddrErrors|InDiscards|InDelivers) ' | sed 's/^/kmod: npa0 Ip /'
        sed 's/^/kmod: softnet /' /proc/net/softnet_stat
        for f in rx_packets rx_dropped rx_missed_errors rx_fifo_errors tx_packets tx_dropped; do
            echo "kmod: $dev $f $(cat "/sys/class/net/$dev/statistics/$f")"
        done
        ns cat /proc/net/dev | grep "$peer"
        # when each path came up: set against the unanswered echoes' send times
        dmesg | grep -E 'npa: [a-z0-9]+: attached' | tail -n 110
        ns "$ethtool" -S "$peer" 2>&1 | grep -i -E 'oob|err|drop|discard' || true
        "$ethtool" -S "$dev" | grep -E 'no_buffer|dropped|lost|errors'
        fail "ping during the switches: ${sw_got:-0} of ${sw_sent:-?} answered"
    fi
    [ "$(stat shell_switches)" -ge 101 ] || fail "ethtool -S: shell_switches $(stat shell_switches), not 101"
    [ "$(stat igbvf_rx_packets)" -gt 0 ] && [ "$(stat igbvf_tx_packets)" -gt 0 ] ||
        fail "no traffic on the VF path"
    [ "$(stat shell_tx_lost)" = 0 ] || fail "the shell lost TX frames"
    # A retransmit the receiver answers with a D-SACK (it had the segment already) was
    # spurious: a loss probe or timer that fired during a pause, nothing lost. The others
    # are the losses; the switches must add none.
    ext() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }
    base_spurious=$(($(ext TCPDSACKRecv /tmp/ext1) - $(ext TCPDSACKRecv /tmp/ext0)))
    sw_spurious=$(($(ext TCPDSACKRecv /tmp/ext2) - $(ext TCPDSACKRecv /tmp/ext1)))
    sw_probes=$(($(ext TCPLossProbes /tmp/ext2) - $(ext TCPLossProbes /tmp/ext1)))
    base_lost=$((base_retrans - base_spurious)) sw_lost=$((tcp_retrans - sw_spurious))
    [ "$base_lost" -ge 0 ] || base_lost=0
    [ "$sw_lost" -ge 0 ] || sw_lost=0
    echo "kmod: TCP through the 100 switches: $tcp_mbit Mbit/s, $tcp_retrans retransmits ($sw_spurious spurious by D-SACK, $sw_probes loss probes); without switches: $base_mbit Mbit/s, $base_retrans ($base_spurious spurious)"
    [ "$sw_lost" -le "$base_lost" ] ||
        fail "TCP resent $sw_lost segments the receiver had not had through the switches, $base_lost without"
    sw_json=",\"switches\":{\"count\":100,\"last16_median_ms\":$sw_med,\"last16_max_ms\":$sw_max,\"ping_sent\":$sw_sent,\"ping_received\":$sw_got,\"tcp_mbit_s\":$tcp_mbit,\"tcp_retrans\":$tcp_retrans,\"tcp_retrans_spurious\":$sw_spurious,\"tcp_loss_probes\":$sw_probes,\"tcp_mbit_s_without\":$base_mbit,\"tcp_retrans_without\":$base_retrans,\"tcp_retrans_spurious_without\":$base_spurious}"

    # The VF goes under traffic: the PF's sriov_numvfs = 0 removes it (its PCI remove runs
    # here). npa0 stays up, the shell falls back to the vmxnet3, the VF's path goes, pings
    # go on. Echoes in flight to the VF while it goes may be lost: counted, not hidden.
    # A switch that times out stays pending; the next write finishes it (not EBUSY).
    # The VF reset behind the driver's back (a function-level reset through sysfs: no
    # remove callback, the VF stays bound): the health check (health_ms, 100 ms) sees its
    # queues disabled and the shell falls back to the vmxnet3 by itself under a 100 Hz ping;
    # afterwards the VF is switched to again (attached anew: reset, mailbox RESET).
    step=vf-reset
    switch_to 1 "to the VF before its reset"
    [ -e "/sys/bus/pci/devices/$VF/reset" ] || fail "$VF has no reset method in sysfs"
    ping -c 600 -i 0.01 -W 2 10.77.0.2 > /tmp/reset-ping.out 2>&1 &
    ping_pid=$!
    usleep 1000000
    echo 1 > "/sys/bus/pci/devices/$VF/reset" || fail "resetting $VF through sysfs"
    fell_back() { [ "$(cat "$sys/active_path")" = 0 ]; }
    wait_for 3 fell_back || fail "no fallback to the vmxnet3 within 3 s of the VF's reset"
    wait "$ping_pid"
    rs_rec=$(tail -n 1 "$sys/switch_log")
    echo "$rs_rec"
    case "$rs_rec" in
        *" igbvf -> vmxnet3 reset ok "*) ;;
        *) fail "the last switch is not the fallback for the VF's reset: $rs_rec" ;;
    esac
    rs_sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/reset-ping.out)
    rs_got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/reset-ping.out)
    [ -n "$rs_sent" ] && [ -n "$rs_got" ] || fail "ping during the VF's reset: no summary"
    rs_late=$(sed -n 's/.* seq=\([0-9]*\) .*/\1/p' /tmp/reset-ping.out | sort -un |
        awk -v from=$((rs_sent - 200)) '$1 >= from' | wc -l)
    echo "kmod: VF reset under a 100 Hz ping: fallback by the health check; ping $rs_got/$rs_sent, the last 200: $rs_late answered"
    [ "$rs_late" = 200 ] || fail "pings after the fallback from the reset VF: $rs_late of the last 200 answered"
    dmesg | grep -q "npa: igbvf -> vmxnet3 (reset)" || fail "the kernel log does not report the fallback"
    switch_to 1 "back to the VF after its reset"
    ping_all 3 || fail "ping on the VF after its reset"
    switch_to 0 "to the vmxnet3 after the VF's reset"
    rs_json=",\"vf_reset\":{\"by\":\"sysfs reset (FLR)\",\"fallback\":\"health check\",\"ping_sent\":$rs_sent,\"ping_received\":$rs_got,\"last_200_answered\":$rs_late}"

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
    switch_to 1 "to the VF before the removal"
    vlan_ping 3 || fail "ping over VLAN 7 on the VF: the switch did not replay the VID to it"
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

step=vlan-kill
# The VLAN goes (ndo_vlan_rx_kill_vid): the device's filter must drop what the peer still
# sends tagged 7 (1 s of UDP to VLAN 7's broadcast address), before the frames reach npa0.
ip link del "$dev.7" || fail "ip link del $dev.7"
S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
rx0=$(stat vmxnet3_rx_packets)
# the peer's sysfs is the first namespace's: its counters come from its /proc/net/dev
peer_tx() { ns cat /proc/net/dev | awk -v d="$1:" '{ sub(/^ */, "") } index($0, d) == 1 { sub(/^[^:]*: */, ""); split($0, f); print f[10] }'; }
ptx0=$(peer_tx vlan7)
ns "$traffic" udp-send 10.78.0.255 5203 1 18 || fail "UDP to VLAN 7's broadcast address"
ptx1=$(peer_tx vlan7)
[ $((ptx1 - ptx0)) -ge 100 ] || fail "the peer sent $((ptx1 - ptx0)) frames on VLAN 7, fewer than 100"
S=$("$ethtool" -S "$dev") || fail "ethtool -S $dev"
rx1=$(stat vmxnet3_rx_packets)
echo "kmod: VLAN 7 removed; the vmxnet3 path received $((rx1 - rx0)) frames while the peer sent $((ptx1 - ptx0)) tagged 7"
[ $((rx1 - rx0)) -lt 10 ] || fail "VLAN 7's frames still reach $dev after its removal ($((rx1 - rx0)) received)"
ping_all 3 || fail "ping after the VLAN's removal"

step=rmmod
irq_lines
irq_end=$(irq_count)
if [ "$IRQ" = intx ]; then
    # The line, whoever else is on it, and how many of its interrupts no handler claimed
    # (the module answers IRQ_NONE when ICR says the device did not raise it).
    irq_n=$(irq_lines | sed -n 's/^ *\([0-9]*\):.*/\1/p')
    grep -E 'IO-APIC|XT-PIC' /proc/interrupts
    echo "kmod: IRQ $irq_n spurious: $(tr '\n' ' ' < "/proc/irq/$irq_n/spurious")"
fi
irq_json=",\"irq\":{\"type\":\"$irq_name\",\"vectors\":$irq_vectors,\"chip\":\"$irq_chip\",\"pings\":$((irq1 - irq0)),\"total\":$irq_end}"
ip link set "$dev" down || fail "ip link set $dev down"
[ "$(cat "$sys/active_path")" = none ] || fail "$sys/active_path is not none while down"
if (echo 0 > "$sys/active_path") 2>/dev/null; then
    fail "writing $sys/active_path while down was accepted"
fi
rmmod npa_vmxnet3 || fail "rmmod npa_vmxnet3"
[ ! -e "/sys/class/net/$dev" ] || fail "$dev still there after rmmod"
if [ -z "$VF" ]; then
    # The same measure over Linux's own vmxnet3 driver on the same device, in this boot.
    step=linux-vmxnet3
    echo 0000:00:03.0 > /sys/bus/pci/drivers/vmxnet3/bind || fail "binding 00:03.0 to Linux's vmxnet3"
    wait_for 5 test -n "$(netdev_of 0000:00:03.0)" || fail "no net_device from Linux's vmxnet3 on 00:03.0"
    ldev=$(netdev_of 0000:00:03.0)
    ip addr add 10.77.0.1/24 dev "$ldev" && ip link set "$ldev" up || fail "$ldev up"
    wait_for 10 grep -q 1 "/sys/class/net/$ldev/carrier" || fail "$ldev: no carrier"
    ns ip neigh flush dev "$peer"
    ping_all 3 || { cat /proc/net/dev; ns cat /proc/net/dev; ip neigh; ns ip neigh; ip route; fail "ping over Linux's vmxnet3"; }
    measure
    linux_json=$m_json
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print 0 }'; }
    echo "kmod: npa_vmxnet3 / Linux's vmxnet3, same device, same boot: TCP out $(ratio "$n_out" "$m_out"), TCP in $(ratio "$n_in" "$m_in"), UDP 64 B out $(ratio "$n_uout" "$m_uout"), in $(ratio "$n_uin" "$m_uin")"
    bench_json=",\"npa\":$npa_json,\"linux_vmxnet3\":$linux_json"
    ip link set "$ldev" down
    echo 0000:00:03.0 > /sys/bus/pci/drivers/vmxnet3/unbind
fi
kill "$ns_pid" 2>/dev/null
ns_pid=""

step=dmesg
dmesg | grep -i npa
bad=$(dmesg | grep -E 'WARNING|BUG|Oops|Call Trace|audit does not balance|refused|would not go|no fallback' | head -n 5)
[ -z "$bad" ] || fail "kernel log: $bad"

echo "NPA-GUEST-RESULT {\"test\":\"kmod_vmxnet3\",\"status\":\"pass\",\"netdev\":\"$dev\",\"pings\":$PINGS,\"ping_out_received\":$got,\"ping_back_received\":$back_got,\"rtt_avg_ms\":${rtt:-0},\"rx_packets\":$rx,\"tx_packets\":$tx,\"rx_dropped\":$rx_drop,\"tx_dropped\":$tx_drop,\"mac_changed\":true,\"mtu_refused\":true,\"vlan\":true${irq_json:-}${sw_json:-}${rs_json:-}${rm_json:-}${bench_json:-}}"
exit 0
