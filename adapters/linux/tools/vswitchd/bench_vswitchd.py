#!/usr/bin/env python3
"""Measures npa-vswitchd against testpmd's io forwarding between two net_vhost ports, in
one run, rounds interleaved (adapters/linux/README.md, "npa-vswitchd"). A benchmark: it
prints numbers and never fails on them.

    bench_vswitchd.py <dir with npa-vswitchd> [--seconds T] [--rounds N] [--kinds a,b,..]
                      [--before DIR]
    bench_vswitchd.py <dir with npa-vswitchd> --callgrind OUT [--seconds T]

Every setup has the same front end: one dpdk-testpmd with two net_virtio_user ports on
CPU 0, which sends a burst of 64-byte frames on each port (--tx-first, the other port's MAC
as destination) and then forwards what arrives on one port out of the other (io), so the
same frames circle through the switch under test, which runs on CPU 1:
  npa      npa-vswitchd, two ports, pinned with taskset -c 1 (sleeps when idle)
  npa-busy the same with --busy-poll (never sleeps, as testpmd)
  testpmd  dpdk-testpmd, two net_vhost ports (server mode), --forward-mode=io, its
           forwarding lcore on CPU 1
  before-busy  npa-busy with the npa-vswitchd of --before DIR (another build, e.g. the
           tree before a change): the two binaries compared in one run, interleaved
Rounds go npa, npa-busy, testpmd, npa, ... (--kinds picks and orders them), each with a
fresh switch and front end. For each round: frames the front end received (ipackets of both
ports, telemetry) per second of wall time and per CPU-second of the forwarding thread
(/proc/<pid>/task/<tid>/schedstat: time on CPU, so the machine's other work does not
count), the share of the wall time that thread was on a CPU, and the load average. The
summary gives each setup's median and, per round, each npa setup's ratio to the testpmd
round beside it (and npa-busy's to before-busy's). Needs root (testpmd's /var/run/dpdk).

The machine's cross-core floor decides much of every rate here: on the two-core reference VM
a cache line takes about 160 ns to cross in one state and about 600 ns in the other, and
the machine flips between them within minutes. So each round is bracketed by two runs of
npa_floor_probe (benchmarks/floor_probe.cpp, from --probe DIR, default the bin dir) and
labelled `near` or `far` when both agree (`mixed` otherwise); the summary gives the medians
and round-by-round ratios per class, comparing only rounds of one class.

--callgrind OUT runs npa-vswitchd --busy-poll under valgrind's callgrind instead, with the
same front end, and writes the profile of T seconds of forwarding to OUT (instruction
counts do not depend on the machine's load, wall time does): the window starts and ends
when the daemon rewrites its JSON, so the frames forwarded in it (tx_packets of both ports)
are known to within one burst, and the script prints instructions per frame, total and by
function (inclusive).
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
EAL = ["--no-huge", "-m", "256", "--no-pci"]
BURST = 64  # frames the front end sends on each port at start; they then circle
KINDS = ("npa", "npa-busy", "testpmd", "before-busy")


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
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for a in p.args:  # testpmd's runtime directory stays behind otherwise
        if isinstance(a, str) and a.startswith("--file-prefix="):
            shutil.rmtree("/var/run/dpdk/" + a.split("=", 1)[1], ignore_errors=True)


def front_end(tag, sock_a, sock_b, log):
    """One testpmd with two net_virtio_user ports on CPU 0: a burst on each (--tx-first),
    then io forwarding between them; the destination MACs (--eth-peer) send each port's
    frames to the other port, so they circle through the switch."""
    return testpmd(f"bfe-{tag}", [f"net_virtio_user0,path={sock_a},queues=1,mac={MAC_A}",
                                  f"net_virtio_user1,path={sock_b},queues=1,mac={MAC_B}"], "0@0,1@0",
                   ["--forward-mode=io", "--tx-first", f"--eth-peer=0,{MAC_B}", f"--eth-peer=1,{MAC_A}",
                    f"--burst={BURST}"], log)


def vswitchd(bindir, w, rnd, busy, log, wrap=()):
    return subprocess.Popen([*wrap, os.path.join(bindir, "npa-vswitchd"), "--run-dir", w,
                             "--port", f"a{rnd},mac={MAC_A}", "--port", f"b{rnd},mac={MAC_B}",
                             *(["--busy-poll"] if busy else [])], stdout=log, stderr=subprocess.STDOUT)


def floor_class(probe):
    """(ns, 'near' or 'far') from one npa_floor_probe run; (0, '?') without the probe."""
    if not probe or not os.access(probe, os.X_OK):
        return 0.0, "?"
    out = subprocess.run([probe], capture_output=True, text=True).stdout.split()
    if len(out) == 4 and out[0] == "floor_ns":
        return float(out[1]), out[3]
    return 0.0, "?"


def measure(kind, bindir, secs, w, rnd):
    """One round of one setup: (frames delivered, wall seconds, forwarding thread CPU seconds)."""
    tag = f"{kind}{rnd}-{os.getpid()}"
    log = open(os.path.join(w, f"{tag}.log"), "w")
    procs = []
    try:
        if kind.startswith("npa") or kind == "before-busy":
            sw = vswitchd(bindir, w, rnd, kind != "npa", log, ("taskset", "-c", "1"))
            sock_a, sock_b = f"{w}/a{rnd}.sock", f"{w}/b{rnd}.sock"
            thread = None  # one thread: the main one
        else:
            sock_a, sock_b = f"{w}/va{rnd}.sock", f"{w}/vb{rnd}.sock"
            sw = testpmd(f"bsw-{tag}", [f"net_vhost0,iface={sock_a},queues=1", f"net_vhost1,iface={sock_b},queues=1"],
                         "0@0,1@1", ["--forward-mode=io"], log)
            thread = "rte-worker-1"  # DPDK 22.11 names its worker lcores so
        procs.append(sw)
        if not wait_for(lambda: os.path.exists(sock_a) and os.path.exists(sock_b)):
            return None
        fe = f"bfe-{tag}"
        procs.append(front_end(tag, sock_a, sock_b, log))
        if not wait_for(lambda: ipackets(fe) > 1000):
            return None
        time.sleep(1)  # past start-up
        p0, c0, t0 = ipackets(fe), cpu_ns(sw.pid, thread), time.time()
        time.sleep(secs)
        p1, c1, t1 = ipackets(fe), cpu_ns(sw.pid, thread), time.time()
        if c1 == c0 or p0 < 0 or p1 < 0:
            return None
        return p1 - p0, t1 - t0, (c1 - c0) / 1e9, os.getloadavg()[0]
    finally:
        for p in reversed(procs):
            stop(p)
        log.close()


def delivered(w, rnd):
    """(tx_packets of both ports, the JSON files' newest mtime) from the run directory."""
    total, mtime = 0, 0.0
    for port in (f"a{rnd}", f"b{rnd}"):
        path = f"{w}/{port}.json"
        try:
            mtime = max(mtime, os.stat(path).st_mtime)
            with open(path) as f:
                total += json.load(f)["counters"]["tx_packets"]
        except (OSError, ValueError, KeyError):
            return None
    return total, mtime


def at_next_announce(w, rnd):
    """Waits for the daemon's next JSON rewrite and returns its frame count."""
    first = delivered(w, rnd)
    while True:
        now = delivered(w, rnd)
        if now and first and now[1] != first[1] and now[0] != first[0]:
            return now[0]
        time.sleep(0.002)


def profile(bindir, secs, out):
    """npa-vswitchd --busy-poll under callgrind for secs seconds of forwarding."""
    w = tempfile.mkdtemp(prefix="npa-vswitchd-prof-")
    log = open(os.path.join(w, "prof.log"), "w")
    for f in glob.glob(out + "*"):
        os.unlink(f)
    sw = vswitchd(bindir, w, 0, True, log, ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                            "--dump-instr=no", "--collect-atstart=yes"))
    procs = [sw]
    try:
        if not wait_for(lambda: os.path.exists(f"{w}/a0.sock") and os.path.exists(f"{w}/b0.sock"), 60):
            print(f"npa-vswitchd did not start under valgrind (log in {w})")
            return 1
        procs.append(front_end(f"prof-{os.getpid()}", f"{w}/a0.sock", f"{w}/b0.sock", log))
        if not wait_for(lambda: (delivered(w, 0) or (0, 0))[0] > 10000, 60):
            print(f"no frames forwarded (log in {w})")
            return 1
        time.sleep(1)
        n0 = at_next_announce(w, 0)
        subprocess.run(["callgrind_control", "-z", str(sw.pid)], check=True, stdout=subprocess.DEVNULL)
        time.sleep(secs)
        n1 = at_next_announce(w, 0)
        subprocess.run(["callgrind_control", "-d", str(sw.pid)], check=True, stdout=subprocess.DEVNULL)
    finally:
        for p in reversed(procs):
            stop(p)
        log.close()
    frames = n1 - n0
    dumps = sorted(f for f in glob.glob(out + ".*") if f[len(out) + 1:].isdigit())
    if not dumps or frames <= 0:
        print(f"no profile (log in {w})")
        return 1
    dump = dumps[0]
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99.5", dump],
                         capture_output=True, text=True).stdout
    total = 0
    rows = []
    for line in ann.splitlines():
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[0].replace(",", "").isdigit():
            continue
        ir = int(parts[0].replace(",", ""))
        if "PROGRAM TOTALS" in parts[1]:
            total = ir
        else:
            rows.append((ir, parts[1].split(" [")[0]))
    print(f"profile {dump}: {frames} frames forwarded, {total} instructions, "
          f"{total / frames:.0f} instructions per frame\n")
    print("| instructions per frame (inclusive) | function |")
    print("|---|---|")
    for ir, fn in rows[:25]:
        print(f"| {ir / frames:.1f} | {fn} |")
    shutil.rmtree(w, ignore_errors=True)
    return 0


def ratio(a, b):
    return a / b if b else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bindir")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--callgrind", metavar="OUT")
    ap.add_argument("--before", metavar="DIR", help="npa-vswitchd of the before-busy rounds")
    ap.add_argument("--probe", metavar="DIR", help="where npa_floor_probe is (default: bindir)")
    a = ap.parse_args()
    if a.callgrind:
        return profile(a.bindir, a.seconds, a.callgrind)
    kinds = [k for k in a.kinds.split(",") if k]
    if any(k not in KINDS for k in kinds):
        print(f"--kinds takes {','.join(KINDS)}")
        return 2
    if ("before-busy" in kinds) != (a.before is not None):
        print("--before DIR and the before-busy kind go together")
        return 2
    w = tempfile.mkdtemp(prefix="npa-vswitchd-bench-")
    res = {k: [] for k in kinds}  # per kind: {round: (frames, wall, cpu, load)}
    classes = {}  # (kind, round): near, far, mixed or ?
    probe = os.path.join(a.probe or a.bindir, "npa_floor_probe")
    if not os.access(probe, os.X_OK):
        print(f"no {probe}: rounds are not labelled by the cross-core floor")
    for r in range(a.rounds):
        for kind in kinds:
            f0, c0 = floor_class(probe)
            m = measure(kind, a.before if kind == "before-busy" else a.bindir, a.seconds, w, r)
            f1, c1 = floor_class(probe)
            if m is None:
                print(f"round {r} {kind}: did not start (logs in {w})")
                continue
            cls = c0 if c0 == c1 else "mixed"
            res[kind].append((r, m))
            classes[(kind, r)] = cls
            n, wall, cpu, load = m
            print(f"round {r} {kind:8s} {n / wall / 1e6:6.3f} Mpps wall  {ratio(n, cpu) / 1e6:6.3f} Mpps per "
                  f"CPU-second  (on a CPU {cpu / wall:.2f} of the wall, load average {load:.2f}; floor "
                  f"{f0:.0f}/{f1:.0f} ns: {cls})", flush=True)
    loads = [m[3] for ms in res.values() for _, m in ms]
    print(f"\nload average over the rounds: {min(loads, default=0):.2f} to {max(loads, default=0):.2f} "
          f"(2 cores, shared)\n")
    print("| switch | floor | rounds | Mpps (wall), median | Mpps per CPU-second, median | on a CPU |")
    print("|---|---|---|---|---|---|")
    order = ("near", "far", "mixed", "?")
    for kind, ms in res.items():
        for cls in order:
            sel = [m for r, m in ms if classes[(kind, r)] == cls]
            if sel:
                print(f"| {kind} | {cls} | {len(sel)} | {statistics.median(m[0] / m[1] for m in sel) / 1e6:.3f} | "
                      f"{statistics.median(ratio(m[0], m[2]) for m in sel) / 1e6:.3f} | "
                      f"{statistics.median(m[2] / m[1] for m in sel):.2f} |")
    for kind, against in (("npa", "testpmd"), ("npa-busy", "testpmd"), ("before-busy", "testpmd"),
                          ("npa-busy", "before-busy")):
        base = dict(res.get(against, []))
        for cls in order:
            # rounds of one class on both sides only: a near round against a far one
            # compares the machine, not the switches
            pairs = [(m, base[r]) for r, m in res.get(kind, [])
                     if r in base and classes[(kind, r)] == cls and classes[(against, r)] == cls]
            if not pairs:
                continue
            wall = sorted(ratio(m[0] / m[1], b[0] / b[1]) for m, b in pairs)
            cpu = sorted(ratio(ratio(m[0], m[2]), ratio(b[0], b[2])) for m, b in pairs)
            print(f"\n{kind} / {against}, {cls} floor, round by round: wall {' '.join(f'{x:.2f}' for x in wall)} "
                  f"(median {statistics.median(wall):.2f}); per CPU-second {' '.join(f'{x:.2f}' for x in cpu)} "
                  f"(median {statistics.median(cpu):.2f})")
    shutil.rmtree(w, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
