#!/usr/bin/env python3
"""dpdk-testpmd drives net_npa (loaded with -d) and, side by side, net_failsafe.

Scenario, for each PMD, over the same sub-ports (two looping net_ring vdevs):
  1. testpmd io-forwards the port to itself; `start tx_first` puts one burst in the loop;
  2. net_npa only: a switch to path 1 is requested through dpdk-telemetry.py
     (/npa/switch,<port>,1) while the packets circulate;
  3. `stop`, then an rxonly run with --no-flush-rx drains what is still in the rings;
  4. testpmd's own `show port stats` must then show RX-packets == TX-packets: every
     packet that was sent came back (zero loss), and `show port xstats` shows the switch.
fail-safe has no run-time switch command, and over net_ring it cannot be made to switch
inside testpmd either: it subscribes to removal events only from sub-devices that set
RTE_ETH_DEV_INTR_RMV (net_ring does not), and a plug-in of its preferred sub-device
(given as fd(<n>) and written to the pipe mid-traffic) fails because fail-safe sets the
default MAC on the new sub-device and net_ring has no MAC to set. So its run checks the
same counters without a switch, and the loss per switch is compared in dpdk_net_npa
(removal of the active sub-device under traffic, every packet counted, both PMDs).
Runs as root, EAL with --no-huge --no-pci. Exit status 0 on success.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

# Bounded run times (seconds): long enough for millions of packets on a slow machine,
# short enough for the whole test to take a few seconds.
FORWARD_S = 1.0
DRAIN_S = 0.5


TELEMETRY = "dpdk-telemetry.py"


def tel_query(prefix, command):
    tel = subprocess.run([TELEMETRY, "-f", prefix], input=command + "\n",
                         capture_output=True, text=True, timeout=20)
    return tel.stdout + tel.stderr


# Waits for an event seen through telemetry end on the event; the bound only ends a run
# whose event never comes, so it is sized for a loaded machine (seconds, not 0.5 s).
PATIENCE_S = 60


def tel_value(prefix, command, key):
    """One number from a telemetry reply ({"<command>": {key: n, ...}}), or None."""
    for m in re.finditer(r"\{.*\}", tel_query(prefix, command)):
        try:
            reply = json.loads(m.group(0))
        except ValueError:
            continue
        for v in reply.values():
            if isinstance(v, dict) and isinstance(v.get(key), int):
                return v[key]
    return None


def wait_until(pred):
    deadline = time.monotonic() + PATIENCE_S
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def run_testpmd(testpmd, pmd_dir, vdev, prefix, switch):
    cmd = [testpmd, "-l", "0-1", "--no-huge", "--no-pci", "-m", "512",
           "--file-prefix", prefix, "--vdev", vdev]
    if pmd_dir:
        cmd += ["-d", pmd_dir]
    cmd += ["--", "-i", "--total-num-mbufs=4096", "--no-flush-rx", "--nb-cores=1"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def send(line, wait=0.2):
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        time.sleep(wait)

    telemetry = None
    try:
        # EAL up: its telemetry socket exists (bounded wait, not a timed assertion).
        sock = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
        for _ in range(300):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            time.sleep(0.1)
        # testpmd up: port 0 started (its link is up), then more than the default dwell
        # time (100 ms), so that the switch below is not refused by hysteresis.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if '"UP"' in tel_query(prefix, "/ethdev/link_status,0"):
                break
            time.sleep(0.1)
        print("%s: port 0 up after EAL start; forwarding" % vdev.split(",")[0], flush=True)
        time.sleep(0.3)
        send("set fwd io")
        send("start tx_first", FORWARD_S / 2)
        if switch:
            telemetry = tel_query(prefix, "/npa/switch,0,1")
            # The release completes on the port's timer while testpmd forwards; then path 1
            # forwards (seen in its counter, not assumed after a fixed time).
            last = [""]

            def released():
                last[0] = tel_query(prefix, "/npa/status,0")
                return '"switching": 0' in last[0]
            wait_until(released)
            telemetry += last[0]
            wait_until(lambda: (tel_value(prefix, "/ethdev/xstats,0", "path1_tx_packets")
                                or 0) > 0)
        time.sleep(FORWARD_S / 2)
        send("stop", 0.5)
        send("set fwd rxonly")
        send("start", DRAIN_S)
        # What was still in the rings has come back once RX caught up with TX.
        wait_until(lambda: tel_value(prefix, "/ethdev/stats,0", "ipackets") ==
                   tel_value(prefix, "/ethdev/stats,0", "opackets"))
        send("stop", 0.5)
        send("show port stats 0")
        send("show port xstats 0")
        send("quit", 0.5)
        out, _ = proc.communicate(timeout=30)
    except Exception:
        proc.kill()
        out, _ = proc.communicate()
        print(out[-4000:])
        raise
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)  # EAL leaves its runtime dir
    return proc.returncode, out, telemetry


def last_port_stats(out):
    blocks = re.findall(r"NIC statistics for port 0.*?RX-packets:\s*(\d+).*?TX-packets:\s*(\d+)",
                        out, re.S)
    if not blocks:
        return None
    rx, tx = blocks[-1]
    return int(rx), int(tx)


def xstat(out, name):
    m = re.findall(r"^\s*" + re.escape(name) + r":\s*(\d+)", out, re.M)
    return int(m[-1]) if m else None


def check(label, ok, failures):
    print(("ok   " if ok else "FAIL ") + label)
    if not ok:
        failures.append(label)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--testpmd", default="dpdk-testpmd")
    ap.add_argument("--telemetry", default="dpdk-telemetry.py")
    ap.add_argument("--pmd-dir", required=True, help="directory holding librte_net_npa.so")
    args = ap.parse_args()
    global TELEMETRY
    TELEMETRY = args.telemetry
    failures = []
    pid = os.getpid()

    # net_npa, switched through telemetry mid-traffic.
    rc, out, tel = run_testpmd(args.testpmd, args.pmd_dir,
                               "net_npa0,dev(net_ring_a%d),dev(net_ring_b%d)" % (pid, pid),
                               "npa_tp_%d" % pid, switch=True)
    stats = last_port_stats(out)
    print("net_npa: telemetry said:", (tel or "").strip().replace("\n", " ")[:400])
    print("net_npa: port stats (rx, tx):", stats)
    check("net_npa: testpmd exited cleanly", rc == 0, failures)
    check("net_npa: forwarded packets", stats is not None and stats[0] > 1000, failures)
    check("net_npa: zero loss (RX-packets == TX-packets after drain)",
          stats is not None and stats[0] == stats[1], failures)
    status = None
    if tel:
        for m in re.finditer(r"\{.*\}", tel):
            try:
                d = json.loads(m.group(0))
            except ValueError:
                continue
            if "/npa/status" in d:
                status = d["/npa/status"]
    check("net_npa: /npa/status reports path 1 active, switch done, reason operator-request",
          status is not None and status.get("active") == 1 and status.get("switching") == 0
          and status.get("last_reason") == "operator-request", failures)
    check("net_npa: xstats switch_count == 2 (boot + the requested one)",
          xstat(out, "switch_count") == 2, failures)
    check("net_npa: path 1 carried traffic", (xstat(out, "path1_tx_packets") or 0) > 0, failures)
    check("net_npa: no packet lost by the switch", xstat(out, "switch_lost_packets") == 0, failures)
    if failures:
        print(out[-4000:])

    # net_failsafe over the same kind of sub-ports.
    n_before = len(failures)
    rc, out, _ = run_testpmd(args.testpmd, None,
                             "net_failsafe0,dev(net_ring_c%d),dev(net_ring_d%d)" % (pid, pid),
                             "fs_tp_%d" % pid, switch=False)
    stats = last_port_stats(out)
    print("net_failsafe: port stats (rx, tx):", stats)
    check("net_failsafe: testpmd exited cleanly", rc == 0, failures)
    check("net_failsafe: forwarded packets", stats is not None and stats[0] > 1000, failures)
    check("net_failsafe: zero loss without a switch",
          stats is not None and stats[0] == stats[1], failures)
    if len(failures) != n_before:
        print(out[-4000:])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
