#!/bin/sh
# Measures npa-linkd against the plain veth pair it runs over, in the same run
# (adapters/linux/README.md, "Measurements"). Needs root, iproute2, iperf3, ping
# (iputils-ping), ethtool, python3.
#
#   adapters/linux/tools/bench.sh <build-dir>/bin [seconds]
#   OFFLOADS=off adapters/linux/tools/bench.sh ...   # the peer's TSO/GSO/GRO/checksums off
#   BASE=<other build>/bin adapters/linux/tools/bench.sh ...  # that build's daemon too,
#                                                   # in the same run (before and after)
#
# Topology: namespace npab-g<pid> (the guest: npa0 or va0 carries 10.77.0.1) and
# npab-p<pid> (the peer: br0 = 10.77.0.2 over vb0, vb1), as in the tests. Both namespaces
# are deleted on exit. Prints markdown tables: TCP both ways (host to peer, and peer to host with
# iperf3 -R) and 64-byte UDP, each with its ratio to plain veth measured in this run; for
# npa-linkd also the packets it moved per CPU-second of its thread (schedstat) beside
# packets per wall-clock second, what was merged into and cut out of the TAP, and the load
# average, since the machine is shared.
set -eu
BIN=${1:?usage: bench.sh <dir with npa-linkd and npactl> [seconds]}
T=${2:-5}
OFFLOADS=${OFFLOADS:-on}
BASE=${BASE:-}
G=npab-g$$
P=npab-p$$
mkdir -p /run/npa
SOCK=/run/npa/npab$$.sock
W=$(mktemp -d)
DPID=
SPID=

cleanup() {
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true
    ip netns del $G 2>/dev/null || true
    ip netns del $P 2>/dev/null || true
}
trap 'cleanup; rm -rf "$W"' EXIT INT TERM

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
        ip netns exec $P ethtool -K vb$i tx $OFFLOADS tso $OFFLOADS gso $OFFLOADS gro $OFFLOADS >/dev/null
        ip netns exec $G ethtool -K va$i gro $OFFLOADS >/dev/null 2>&1 || true
        ip -n $G link set va$i up
        ip -n $P link set vb$i up
    done
    ip -n $P link set br0 up
    ip netns exec $P ethtool -K br0 tx $OFFLOADS tso $OFFLOADS gso $OFFLOADS >/dev/null
    ip -n $P addr add 10.77.0.2/24 dev br0
    ip netns exec $P iperf3 -s -p 5301 >/dev/null 2>&1 &
    SPID=$!
    sleep 0.3
}

start_linkd() {  # $1: the build's bin directory, then --lower flags
    D=$1
    shift
    ip netns exec $G "$D/npa-linkd" --tap npa0 --socket $SOCK --min-dwell-ms 0 "$@" 2>"$W/linkd.log" &
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

tcp_mbits() {  # $1: empty (host to peer) or -R (peer to host)
    ip netns exec $G iperf3 -c 10.77.0.2 -p 5301 -t "$T" ${1:-} --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % (d["end"]["sum_received"]["bits_per_second"]/1e6))'
}

udp_kpps() {  # 64-byte datagrams, unlimited rate: delivered packets per second
    ip netns exec $G iperf3 -c 10.77.0.2 -p 5301 -t "$T" -u -b 0 -l 64 --json |
        python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((d["packets"]-d["lost_packets"])/d["seconds"]/1e3))'
}

ratio() { python3 -c "import sys; b=float(sys.argv[2]); print('%.0f%%' % (100*float(sys.argv[1])/b) if b else '-')" "$1" "$2"; }

# The daemon's CPU time (ns, schedstat's first field, every thread) and the packets it
# moved: what the shell moved (TX accepted + RX delivered) and the segments of the TSO
# frames it sent whole past the shell (tap_tso.whole_segments) and of the large frames it
# received whole past the shell (tap_gro.whole_segments). "%.0f", not "%d": mawk's
# %d stops at 2^31 ns.
cpu_ns() { cat /proc/"$DPID"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
shell_pkts() {
    w=$("$BIN/npactl" --socket $SOCK --json status |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("tap_tso", {}).get("whole_segments", 0) + d.get("tap_gro", {}).get("whole_segments", 0))')
    "$BIN/npactl" --socket $SOCK --json stats |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["shell"]; print(s["tx_accepted"] + s["rx_delivered"] + int(sys.argv[1]))' "$w"
}
# Runs "$@" (one measurement) and appends "kpps per CPU-s / kpps per wall-s" of the
# daemon over it to $W/eff.
measured() {
    c0=$(cpu_ns); p0=$(shell_pkts); t0=$(date +%s%N)
    out=$("$@")
    c1=$(cpu_ns); p1=$(shell_pkts); t1=$(date +%s%N)
    python3 -c "import sys; c,p,t=[float(x) for x in sys.argv[1:]]; print('%.0f / %.0f' % (p/(c/1e9)/1e3 if c else 0, p/(t/1e9)/1e3))" \
        $((c1 - c0)) $((p1 - p0)) $((t1 - t0)) >>"$W/eff"
    echo "$out"
}

echo "Load average at start: $(cut -d' ' -f1-3 /proc/loadavg); peer offloads $OFFLOADS"
echo
echo "| path | TCP host to peer, Mbit/s | vs veth | TCP peer to host (-R), Mbit/s | vs veth | UDP 64 B kpps | vs veth | npa-linkd kpps per CPU-s / per wall-s (TCP out, TCP in, UDP) |"
echo "|---|---|---|---|---|---|---|---|"

topology
ip -n $G addr add 10.77.0.1/24 dev va0
ip netns exec $G ping -c 1 -W 2 10.77.0.2 >/dev/null
B_OUT=$(tcp_mbits)
B_IN=$(tcp_mbits -R)
B_UDP=$(udp_kpps)
echo "| plain veth (baseline) | $B_OUT | 100% | $B_IN | 100% | $B_UDP | 100% | - |"

for build in "$BIN" $BASE; do
    tag=
    [ "$build" != "$BIN" ] && tag=" ($build)"
    for lower in va0:af_xdp:copy va1:af_packet; do
        topology
        start_linkd "$build" --lower "$lower"
        : >"$W/eff"
        OUT=$(measured tcp_mbits)
        IN=$(measured tcp_mbits -R)
        # What the TAP writer merged (npa/linux/tap_gro.hpp): nearly all of it peer to host.
        "$BIN/npactl" --socket $SOCK --json status | python3 -c '
import json,sys; g=json.load(sys.stdin).get("tap_gro")
if g:
    w=g["merged_writes"]; ww=g.get("whole_writes", 0); ws=g.get("whole_segments", 0)
    print("  %s: %d segments went up in %d merged TAP writes (%.1f per write), %d refused; %d large frames received whole (%.1f segments each), %d refused" % (sys.argv[1], g["merged_segments"], w, g["merged_segments"]/w if w else 0, g["refused"], ww, ws/ww if ww else 0, g.get("whole_refused", 0)))' "${lower#*:}$tag" >>"$W/gro"
        # What the TAP reader sent whole or cut (npa/linux/tap_tso.hpp): host to peer.
        "$BIN/npactl" --socket $SOCK --json status | python3 -c '
import json,sys; k=json.load(sys.stdin).get("tap_tso")
if k:
    w=k.get("whole_frames", 0); ws=k.get("whole_segments", 0); c=k["gso_frames"]-w
    print("  %s: %d TAP reads, %d of them TSO frames: %d sent whole (%.1f segments each), %d cut into %d segments (%.1f each); %d dropped" % (sys.argv[1], k["frames"], k["gso_frames"], w, ws/w if w else 0, c, k["segments"], k["segments"]/c if c else 0, k["bad_vnet"] + k["too_long"]))' "${lower#*:}$tag" >>"$W/tso"
        UDP=$(measured udp_kpps)
        echo "| npa-linkd over ${lower#*:}$tag | $OUT | $(ratio "$OUT" "$B_OUT") | $IN | $(ratio "$IN" "$B_IN") | $UDP | $(ratio "$UDP" "$B_UDP") | $(paste -sd, "$W/eff" | sed 's/,/; /g') |"
        stop_linkd
    done
done

echo
echo "TCP segments merged on their way into the TAP:"
cat "$W/gro"
echo "TCP frames sent whole or cut on their way out of the TAP:"
cat "$W/tso" 2>/dev/null

# Switches under load: an operator switch every 50 ms during a TCP run and a 200 Hz ping.
topology
start_linkd "$BIN" --lower va0:af_xdp:copy --lower va1:af_packet
ip netns exec $G iperf3 -c 10.77.0.2 -p 5301 -t $((T + 2)) --json >"$W/iperf.json" &
IP=$!
ip netns exec $G ping -q -i 0.005 -c $((T * 200)) -W 2 10.77.0.2 >"$W/ping.txt" &
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
grep -E "packets transmitted" "$W/ping.txt" | sed 's/^/  ping: /'
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  iperf3: %.0f Mbit/s received, %d retransmits" % (d["end"]["sum_received"]["bits_per_second"]/1e6, d["end"]["sum_sent"]["retransmits"]))' "$W/iperf.json"
"$BIN/npactl" --socket $SOCK stats | grep switches | sed 's/^/  /'
"$BIN/npactl" --socket $SOCK --json stats | python3 -c '
import json,sys; s=json.load(sys.stdin)["shell"]; print("  shell: tx_backlogged %d, tx_requeued %d, tx_lost %d" % (s["tx_backlogged"], s["tx_requeued"], s["tx_lost"]))'
stop_linkd
echo
echo "Load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
