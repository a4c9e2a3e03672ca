#!/usr/bin/env python3
"""Measures npa-vswitchd against testpmd's io forwarding between two net_vhost ports, in
one run, rounds interleaved (adapters/linux/README.md, "npa-vswitchd"). A benchmark: it
prints numbers and never fails on them.

    adapters/linux/tools/vswitchd/bench_vswitchd.py <dir with npa-vswitchd> [seconds] [rounds]

Both setups have the same front end: one dpdk-testpmd with two net_virtio_user ports on
CPU 0, which sends a burst of 64-byte frames on each port (--tx-first, the other port's MAC
as destination) and then forwards what arrives on one port out of the other (io), so the
frames circle through the switch under test, which runs on CPU 1 (two busy pollers on the
machine's two cores, neither sharing its CPU):
  npa      npa-vswitchd, two ports, pinned with taskset -c 1 (sleeps when idle)
  npa-busy the same with --busy-poll (never sleeps, as testpmd)
  testpmd  dpdk-testpmd, two net_vhost ports (server mode), --forward-mode=io, its
           forwarding lcore on CPU 1
For each: frames the front end received (ipackets of both ports, telemetry) per second of
wall time, and per CPU-second of the forwarding thread (/proc/<pid>/task/<tid>/schedstat:
time on CPU), and the ratio of npa to testpmd. Needs root (testpmd's /var/run/dpdk).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
EAL = ["--no-huge", "-m", "256", "--no-pci"]
BURST = 64  # frames the front end sends on each port at start; they then circle


def testpmd(prefix, vdevs, lcores, args, log):
    cmd = [TESTPMD, *EAL, f"--file-prefix={prefix}", f"--lcores={lcores}"]
    for v in vdevs:
        cmd += ["--vdev", v]
    cmd += ["--", *args, "--total-num-mbufs=16384", "--stats-period=1000"]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)


def telemetry(prefix, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2")
        s.recv(16384)
        s.send(cmd.encode())
        return json.loads(s.recv(65536).decode())
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def ipackets(prefix):
    """Frames received on both of the front end's ports."""
    total = 0
    for port in (0, 1):
        j = telemetry(prefix, f"/ethdev/stats,{port}")
        if not j:
            return -1
        total += j["/ethdev/stats"]["ipackets"]
    return total


def cpu_ns(pid, thread_name=None):
    """Time on CPU of the process's thread named thread_name (the main thread if None)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        if (thread_name is None and int(tid) == pid) or name == thread_name:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                return int(f.read().split()[0])
    return 0


def wait_for(pred, limit=20.0):
    end = time.time() + limit
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for a in p.args:  # testpmd's runtime directory stays behind otherwise
        if isinstance(a, str) and a.startswith("--file-prefix="):
            shutil.rmtree("/var/run/dpdk/" + a.split("=", 1)[1], ignore_errors=True)


def measure(kind, bindir, secs, w, rnd):
    """One round of one setup: (frames delivered, wall seconds, forwarding thread CPU seconds)."""
    tag = f"{kind}{rnd}-{os.getpid()}"
    log = open(os.path.join(w, f"{tag}.log"), "w")
    procs = []
    try:
        if kind.startswith("npa"):
            busy = ["--busy-poll"] if kind == "npa-busy" else []
            sw = subprocess.Popen(["taskset", "-c", "1", os.path.join(bindir, "npa-vswitchd"), "--run-dir", w,
                                   "--port", f"a{rnd},mac={MAC_A}", "--port", f"b{rnd},mac={MAC_B}", *busy],
                                  stdout=log, stderr=subprocess.STDOUT)
            sock_a, sock_b = f"{w}/a{rnd}.sock", f"{w}/b{rnd}.sock"
            thread = None
        else:
            sock_a, sock_b = f"{w}/va{rnd}.sock", f"{w}/vb{rnd}.sock"
            sw = testpmd(f"bsw-{tag}", [f"net_vhost0,iface={sock_a},queues=1", f"net_vhost1,iface={sock_b},queues=1"],
                         "0@0,1@1", ["--forward-mode=io"], log)
            thread = "rte-worker-1"  # DPDK 22.11 names its worker lcores so
        procs.append(sw)
        if not wait_for(lambda: os.path.exists(sock_a) and os.path.exists(sock_b)):
            return None
        # One front end with both ports: it sends a burst on each (--tx-first), then forwards
        # whatever arrives on one port out of the other (io), so the frames circle through the
        # switch; the destination MACs (--eth-peer) send each burst to the other port.
        fe = f"bfe-{tag}"
        procs.append(testpmd(fe, [f"net_virtio_user0,path={sock_a},queues=1,mac={MAC_A}",
                                  f"net_virtio_user1,path={sock_b},queues=1,mac={MAC_B}"], "0@0,1@0",
                             ["--forward-mode=io", "--tx-first", f"--eth-peer=0,{MAC_B}", f"--eth-peer=1,{MAC_A}",
                              f"--burst={BURST}"], log))
        if not wait_for(lambda: ipackets(fe) > 1000):
            return None
        time.sleep(1)  # past start-up
        p0, c0, t0 = ipackets(fe), cpu_ns(sw.pid, thread), time.time()
        time.sleep(secs)
        p1, c1, t1 = ipackets(fe), cpu_ns(sw.pid, thread), time.time()
        return p1 - p0, t1 - t0, (c1 - c0) / 1e9
    finally:
        for p in reversed(procs):
            stop(p)
        log.close()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    bindir, secs = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    w = tempfile.mkdtemp(prefix="npa-vswitchd-bench-")
    res = {"npa": [], "npa-busy": [], "testpmd": []}
    for r in range(rounds):
        for kind in res:
            m = measure(kind, bindir, secs, w, r)
            if m is None:
                print(f"round {r} {kind}: did not start (logs in {w})")
                continue
            res[kind].append(m)
            n, wall, cpu = m
            print(f"round {r} {kind:8s} {n / wall / 1e6:6.3f} Mpps wall  "
                  f"{(n / cpu / 1e6) if cpu else 0:6.3f} Mpps per CPU-second  (cpu {cpu / wall:.2f} of the wall)")
    print(f"\nload average: {os.getloadavg()[0]:.2f} (2 cores, shared)\n")
    print("| switch | Mpps (wall) | Mpps per CPU-second of the forwarding thread |")
    print("|---|---|---|")
    summary = {}
    for kind, ms in res.items():
        if not ms:
            continue
        n = sum(m[0] for m in ms)
        wall = sum(m[1] for m in ms)
        cpu = sum(m[2] for m in ms)
        summary[kind] = (n / wall / 1e6, n / cpu / 1e6 if cpu else 0.0)
        print(f"| {kind} | {summary[kind][0]:.3f} | {summary[kind][1]:.3f} |")
    base = summary.get("testpmd")
    for kind in ("npa", "npa-busy"):
        if kind in summary and base and base[0] > 0 and base[1] > 0:
            print(f"| {kind} / testpmd | {summary[kind][0] / base[0]:.2f} | {summary[kind][1] / base[1]:.2f} |")
    shutil.rmtree(w, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
