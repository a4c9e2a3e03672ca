#!/usr/bin/env python3
"""testpmd io-forwarding throughput on one core: net_npa over net_null, net_null direct
and net_failsafe over net_null, in one run; then packets lost per switch.

Usage (root, no hugepages needed):
  adapters/dpdk/tools/bench_testpmd.py --pmd-dir <build>/lib/dpdk-pmds [--seconds 3] [--repeat 3]

Throughput: testpmd forwards port 0 to itself with one forwarding core; once the port's
link is up (asked through dpdk-telemetry.py) and after a warm-up, the rate is testpmd's
own Rx-pps between two `show port stats` (testpmd's clock, so a loaded machine that runs
the commands late does not distort it).
Each configuration runs --repeat times, interleaved; the median is reported with its
ratio to net_null direct.

Loss per switch: net_npa over two looping net_ring sub-ports, a burst circulating under
io forwarding, --switches switches requested through dpdk-telemetry.py (/npa/switch);
after a drain, lost = TX-packets - RX-packets from testpmd's own counters.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time


def testpmd(args, vdevs, prefix, pmd_dir, script):
    """Runs testpmd interactively; script is a list of (command, seconds to wait after)."""
    cmd = [args.testpmd, "-l", "0-1", "--no-huge", "--no-pci", "-m", "1024",
           "--file-prefix", prefix]
    for v in vdevs:
        cmd += ["--vdev", v]
    if pmd_dir:
        cmd += ["-d", pmd_dir]
    cmd += ["--", "-i", "--total-num-mbufs=8192", "--nb-cores=1", "--no-flush-rx"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    # testpmd up: port 0 started, its link up (bounded; a loaded machine takes seconds).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        tel = subprocess.run(["dpdk-telemetry.py", "-f", prefix], input="/ethdev/link_status,0\n",
                             capture_output=True, text=True, timeout=20)
        if '"UP"' in tel.stdout:
            break
        time.sleep(0.2)
    time.sleep(0.3)
    marks = []
    for line, wait in script:
        if callable(line):
            line()
        else:
            p.stdin.write(line + "\n")
            p.stdin.flush()
        marks.append(time.monotonic())
        time.sleep(wait)
    out, _ = p.communicate(timeout=60)
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)  # EAL leaves its runtime dir
    return out, marks


def rx_pps(out):
    """testpmd's own RX rate between the last two `show port stats` (its clock, not ours:
    on a loaded machine testpmd may run the two commands later than they were sent)."""
    return [int(x) for x in re.findall(r"NIC statistics for port 0.*?Rx-pps:\s*(\d+)", out, re.S)]


def throughput(args, label, vdev, pmd_dir, run):
    prefix = "npa_bench_%d_%d" % (os.getpid(), run)
    out, _ = testpmd(args, [vdev], prefix, pmd_dir, [
        ("set fwd io", 0.2), ("start", 1.0),            # warm-up
        ("show port stats 0", args.seconds),             # t0
        ("show port stats 0", 0.2),                      # t1
        ("stop", 0.5), ("quit", 0.5)])
    pps = rx_pps(out)
    if len(pps) < 2:
        sys.exit("%s: no port stats in testpmd output:\n%s" % (label, out[-3000:]))
    return pps[1]


def loss_per_switch(args, pmd_dir):
    prefix = "npa_bench_sw_%d" % os.getpid()

    def switch_to(path):
        def go():
            subprocess.run(["dpdk-telemetry.py", "-f", prefix], input="/npa/switch,0,%d\n" % path,
                           capture_output=True, text=True, timeout=20)
        return go

    script = [("set fwd io", 0.2), ("start tx_first", 0.5)]
    for i in range(args.switches):
        script.append((switch_to((i + 1) % 2), 0.3))
    script += [("stop", 0.5), ("set fwd rxonly", 0.2), ("start", 0.5), ("stop", 0.5),
               ("show port stats 0", 0.2), ("show port xstats 0", 0.2), ("quit", 0.5)]
    out, _ = testpmd(args, ["net_npa0,dev(net_ring_sa),dev(net_ring_sb)"], prefix, pmd_dir, script)
    m = re.findall(r"NIC statistics for port 0.*?RX-packets:\s*(\d+).*?TX-packets:\s*(\d+)", out, re.S)
    sw = re.findall(r"^\s*switch_count:\s*(\d+)", out, re.M)
    mx = re.findall(r"^\s*switch_max_ns:\s*(\d+)", out, re.M)
    rx, tx = (int(m[-1][0]), int(m[-1][1])) if m else (0, 0)
    return tx - rx, int(sw[-1]) if sw else 0, int(mx[-1]) if mx else 0, rx


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testpmd", default="dpdk-testpmd")
    ap.add_argument("--pmd-dir", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--switches", type=int, default=10)
    args = ap.parse_args()

    configs = [
        ("net_null direct", "net_null0", None),
        ("net_npa over net_null", "net_npa0,dev(net_null0),dev(net_null1)", args.pmd_dir),
        ("net_failsafe over net_null", "net_failsafe0,dev(net_null0),dev(net_null1)", None),
    ]
    results = {c[0]: [] for c in configs}
    for run in range(args.repeat):
        for label, vdev, pmd_dir in configs:
            results[label].append(throughput(args, label, vdev, pmd_dir, run))
    base = statistics.median(results["net_null direct"])
    print("testpmd io forwarding, 1 core, %d x %.1f s, median:" % (args.repeat, args.seconds))
    for label, _, _ in configs:
        med = statistics.median(results[label])
        print("  %-28s %8.2f Mpps  %6.1f%% of direct   (runs: %s)" % (
            label, med / 1e6, 100.0 * med / base,
            ", ".join("%.2f" % (x / 1e6) for x in results[label])))

    lost, switches, max_ns, rx = loss_per_switch(args, args.pmd_dir)
    print("loss per switch (net_npa over 2 x net_ring, io forwarding, telemetry /npa/switch):")
    print("  switches %d, packets forwarded %d, packets lost %d, longest switch %.1f us" % (
        switches, rx, lost, max_ns / 1e3))
    print("  net_failsafe: cannot be switched inside testpmd over net_ring (adapters/dpdk/README.md);")
    print("  removal is compared in tests/dpdk (dpdk_net_npa, 'net_npa and net_failsafe side by side')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
