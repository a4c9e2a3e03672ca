#!/bin/sh
# Measures npa-linkd against the plain veth pair it runs over (adapters/linux/README.md,
# "Measurements"). Needs root, iproute2, iperf3, ping (iputils-ping), ethtool, python3.
#
#   adapters/linux/tools/bench.sh <build-dir>/bin [seconds]
#
# Topology: namespace npab-g (the guest: npa0 or va0 carries 10.77.0.1) and npab-p (the
# peer: br0 = 10.77.0.2 over vb0, vb1), as in the tests. Both namespaces are deleted on
# exit. Prints a markdown table.
set -eu
BIN=${1:?usage: bench.sh <dir with npa-linkd and npactl> [seconds]}
T=${2:-5}
G=npab-g
P=npab-p
SOCK=/tmp/npab.sock
DPID=
SPID=

cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    ip netns del $G 2>/dev/null || true
    ip netns del $P 2>/dev/null || true
}
trap cleanup EXIT INT TERM

topology() {
    cleanup
    ip netns add $G
    ip netns add $P
    for n in $G $P; do
        ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n $n link set lo up
    done
    ip -n $P link add br0 address 02:77:00:00:00:02 type bridge
    for i in 0 1; do
        ip -n $G link add va$i type veth peer name vb$i netns $P
        ip -n $P link set vb$i master br0
        ip netns exec $P ethtool -K vb$i tx off >/dev/null
        ip -n $G link set va$i up
        ip -n $P link set vb$i up
    done
    ip -n $P link set br0 up
    ip netns exec $P ethtool -K br0 tx off >/dev/null
    ip -n $P addr add 10.77.0.2/24 dev br0
    ip netns exec $P iperf3 -s -p 5301 >/dev/null 2>&1 &
    SPID=$!
    sleep 0.3
}

start_linkd() {  # $@: --lower flags
    ip netns exec $G "$BIN/npa-linkd" --tap npa0 --socket $SOCK --min-dwell-ms 0 "$@" 2>/tmp/npab-linkd.log &
    DPID=$!
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        "$BIN/npactl" --socket $SOCK status >/dev/null 2>&1 && break
        sleep 0.1
    done
    ip -n $G addr add 10.77.0.1/24 dev npa0
    ip netns exec $G ping -c 1 -W 2 10.77.0.2 >/dev/null
}

stop_linkd() {
    kill "$DPID"; wait "$DPID" 2>/dev/null || true
    DPID=
}

tcp_mbits() {
    ip netns exec $G iperf3 -c 10.77.0.2 -p 5301 -t "$T" --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % (d["end"]["sum_received"]["bits_per_second"]/1e6))'
}

udp_kpps() {  # 64-byte datagrams, unlimited rate: delivered packets per second
    ip netns exec $G iperf3 -c 10.77.0.2 -p 5301 -t "$T" -u -b 0 -l 64 --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((d["packets"]-d["lost_packets"])/d["seconds"]/1e3))'
}

echo "| path | TCP Mbit/s (iperf3, ${T} s) | UDP 64 B kpps delivered |"
echo "|---|---|---|"

topology
ip -n $G addr add 10.77.0.1/24 dev va0
ip netns exec $G ping -c 1 -W 2 10.77.0.2 >/dev/null
echo "| plain veth (baseline) | $(tcp_mbits) | $(udp_kpps) |"

for lower in va0:af_xdp:copy va1:af_packet; do
    topology
    start_linkd --lower "$lower"
    echo "| npa-linkd over ${lower#*:} | $(tcp_mbits) | $(udp_kpps) |"
    stop_linkd
done

# Switches under load: an operator switch every 50 ms during a TCP run and a 200 Hz ping.
topology
start_linkd --lower va0:af_xdp:copy --lower va1:af_packet
ip netns exec $G iperf3 -c 10.77.0.2 -p 5301 -t $((T + 2)) --json >/tmp/npab-iperf.json &
IP=$!
ip netns exec $G ping -q -i 0.005 -c $((T * 200)) -W 2 10.77.0.2 >/tmp/npab-ping.txt &
PP=$!
sleep 0.5
n=0
while [ $n -lt 100 ]; do
    "$BIN/npactl" --socket $SOCK switch next >/dev/null && n=$((n + 1))
    sleep 0.05
done
wait $PP || true
wait $IP || true
echo
echo "100 switches under load:"
grep -E "packets transmitted" /tmp/npab-ping.txt | sed 's/^/  ping: /'
python3 -c 'import json; d=json.load(open("/tmp/npab-iperf.json")); print("  iperf3: %.0f Mbit/s received, %d retransmits" % (d["end"]["sum_received"]["bits_per_second"]/1e6, d["end"]["sum_sent"]["retransmits"]))'
"$BIN/npactl" --socket $SOCK stats | grep switches | sed 's/^/  /'
"$BIN/npactl" --socket $SOCK --json stats | python3 -c '
import json,sys; s=json.load(sys.stdin)["shell"]; print("  shell: tx_backlogged %d, tx_requeued %d, tx_lost %d" % (s["tx_backlogged"], s["tx_requeued"], s["tx_lost"]))'
stop_linkd
