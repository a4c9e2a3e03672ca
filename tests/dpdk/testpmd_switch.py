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
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

# Bounded run times (seconds): long enough for millions of packets on a slow machine,
# short enough for the whole test to take a few seconds.
FORWARD_S = 1.0
DRAIN_S = 0.5
# Switches of the net_null run: each waits for the previous one to complete.
NULL_SWITCHES = 40
TXONLY_SWITCHES = 10
AF_PACKET_SWITCHES = 6
IMAGE_SWITCHES = 10
# Where an image header keeps its SHA-512 digest and Ed25519 signature
# (npa/image/format.hpp, image_header).
IMAGE_DIGEST_AT, IMAGE_SIGNATURE_END = 88, 216
# Telemetry requests that must be refused with a sentence (2^32 + 1 must not be path 1).
BAD_SWITCHES = [
    ("/npa/switch,0,4294967297", "path: 4294967297 is out of range"),
    ("/npa/switch,0", "missing parameter 2 (path)"),
    ("/npa/switch,0,1,2", "too many parameters"),
    ("/npa/switch,zero,1", "port_id: 'zero' is not a whole number"),
    ("/npa/switch,5,1", "not a net_npa port"),
]


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


def tel_socket(prefix):
    """A connection to the process's telemetry socket (what dpdk-telemetry.py opens),
    for many commands without starting a Python interpreter for each."""
    import socket
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sk.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix)
    sk.recv(4096)  # the greeting
    return sk


def tel_ask(sk, command):
    sk.send(command.encode())
    return json.loads(sk.recv(65536).decode())


def switch_many(prefix, count):
    """Switches port 0 between its two paths `count` times, each after the previous one
    completed; returns the switches the port accepted."""
    sk = tel_socket(prefix)
    done = 0
    try:
        # Malformed requests first: each answers an error sentence and moves nothing.
        for bad, expect in BAD_SWITCHES:
            reply = tel_ask(sk, bad).get("/npa/switch", {})
            if expect not in str(reply.get("error", "")):
                raise RuntimeError("%s answered %r, expected an error saying %r"
                                   % (bad, reply, expect))
        for i in range(count):
            reply = tel_ask(sk, "/npa/switch,0,%d" % ((i + 1) % 2))["/npa/switch"]
            if "error" in reply:
                continue
            done += 1
            # Polled every 2 ms; bounded by PATIENCE_S, not by a count of polls (a
            # loaded machine's timer may take far longer than 1 s to release a switch).
            deadline = time.monotonic() + PATIENCE_S
            while time.monotonic() < deadline:
                if tel_ask(sk, "/npa/status,0")["/npa/status"].get("switching") == 0:
                    break
                time.sleep(0.002)
    finally:
        sk.close()
    return done


def world_writable_in(path):
    """The first directory on the way to path that anyone may write to, or None. EAL
    refuses to load drivers (-d) from such a place (a clone under /tmp is one)."""
    path = os.path.realpath(path)
    while True:
        if os.stat(path).st_mode & stat.S_IWOTH:
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def private_pmd_dir(pmd_dir):
    """A fresh directory holding only librte_net_npa.so, somewhere EAL accepts: -d <dir>
    loads every .so in <dir>, and no directory on its path may be world-writable."""
    for base in (os.environ.get("NPA_PMD_STAGING"), "/run", "/var/cache/npa",
                 os.path.expanduser("~")):
        if not base or not os.path.isdir(base) or world_writable_in(base):
            continue
        try:
            d = tempfile.mkdtemp(prefix="npa-pmd-", dir=base)
        except OSError:
            continue
        os.chmod(d, 0o755)
        shutil.copy2(os.path.join(pmd_dir, "librte_net_npa.so"), d)
        return d
    raise RuntimeError("no directory without a world-writable parent to load the PMD from "
                       "(tried $NPA_PMD_STAGING, /run, /var/cache/npa, ~)")


class EalFailed(Exception):
    pass


def run_testpmd(testpmd, pmd_dir, vdev, prefix, switch, many=0, fwd="io", status=None):
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
        # testpmd up: port 0 started (its link is up).
        # (fail-safe's port reports its link down through telemetry here for longer than
        # any wait worth making; its run goes on after a short one.)
        up = False
        deadline = time.monotonic() + (20 if vdev.startswith("net_npa") else 3)
        while time.monotonic() < deadline and proc.poll() is None and os.path.exists(sock):
            try:
                sk = tel_socket(prefix)
                up = tel_ask(sk, "/ethdev/link_status,0").get(
                    "/ethdev/link_status", {}).get("status") == "UP"
                sk.close()
            except (OSError, ValueError):
                pass
            if up:
                break
            time.sleep(0.1)
        # EAL failed (world-writable -d directory, too little memory ...): testpmd is gone
        # or never opened its telemetry socket. That is the failure, said as such.
        if proc.poll() is not None or not os.path.exists(sock):
            proc.kill()
            out, _ = proc.communicate()
            eal = [l for l in out.splitlines() if "EAL" in l or "error" in l.lower()]
            raise EalFailed("%s: testpmd did not bring port 0 up (exit status %s):\n%s"
                            % (vdev.split(",")[0], proc.returncode,
                               "\n".join(eal[-20:]) or out[-2000:]))
        print("%s: EAL up, port 0 link %s; forwarding" % (
            vdev.split(",")[0], "up" if up else "not reported up yet"),
            flush=True)
        send("set fwd %s" % fwd)
        send("start tx_first" if fwd == "io" else "start", FORWARD_S / 2)
        if many:
            telemetry = switch_many(prefix, many)
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
        # Over looping sub-ports (net_ring), what was still in the rings has come back
        # once RX caught up with TX.
        if "net_ring" in vdev:
            wait_until(lambda: tel_value(prefix, "/ethdev/stats,0", "ipackets") ==
                       tel_value(prefix, "/ethdev/stats,0", "opackets"))
        send("stop", 0.5)
        if status is not None:
            sk = tel_socket(prefix)
            status.append(tel_ask(sk, "/npa/status,0"))
            sk.close()
        send("show port stats 0")
        send("show port xstats 0")
        send("quit", 0.5)
        out, _ = proc.communicate(timeout=30)
    except EalFailed:
        raise
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
    ap.add_argument("--image-dir", help="directory holding the simnic plugin image (*.npai)")
    ap.add_argument("--trusted-key", help="the public key file the image is signed with")
    args = ap.parse_args()
    global TELEMETRY
    TELEMETRY = args.telemetry
    failures = []
    pid = os.getpid()
    pmd_dir = private_pmd_dir(args.pmd_dir)
    try:
        return run_all(args, pmd_dir, failures, pid)
    except EalFailed as e:
        print("FAIL " + str(e))
        return 1
    finally:
        shutil.rmtree(pmd_dir, ignore_errors=True)


def run_all(args, pmd_dir, failures, pid):
    # An rte_exit after the port was probed (here: more forwarding cores than lcores)
    # runs rte_eal_cleanup, whose vdev bus cleanup removes net_npa and its sub-devices:
    # testpmd must exit with its error, not crash.
    prefix = "npa_exit_%d" % pid
    bad = subprocess.run([args.testpmd, "-l", "0-1", "--no-huge", "--no-pci", "-m", "512",
                          "--file-prefix", prefix, "-d", pmd_dir, "--vdev",
                          "net_npa0,dev(net_ring_x%d),dev(net_ring_y%d)" % (pid, pid),
                          "--", "--nb-cores=8"], capture_output=True, text=True, timeout=60)
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    check("net_npa: rte_exit after probe ends testpmd with its error, no crash (status %d)"
          % bad.returncode, bad.returncode == 1 and "nb-cores" in bad.stdout + bad.stderr,
          failures)

    # net_npa, switched through telemetry mid-traffic.
    rc, out, tel = run_testpmd(args.testpmd, pmd_dir,
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

    # net_npa over net_null, whose RX never runs dry: many switches while testpmd
    # forwards at full speed; testpmd must count no TX drop (a drain that waited for a
    # short RX burst would hold TX until the backlog overflowed).
    n_before = len(failures)
    rc, out, done = run_testpmd(args.testpmd, pmd_dir,
                                "net_npa1,dev(net_null_a%d),dev(net_null_b%d)" % (pid, pid),
                                "npa_null_%d" % pid, switch=False, many=NULL_SWITCHES)
    dropped = re.findall(r"TX-dropped:\s*(\d+)", out)
    fwd = re.findall(r"TX-packets:\s*(\d+)", out)
    print("net_npa over net_null: %s switches, TX-packets %s, TX-dropped %s"
          % (done, fwd[-1] if fwd else None, dropped[-1] if dropped else None))
    check("net_npa over net_null: testpmd exited cleanly", rc == 0, failures)
    check("net_npa over net_null: every switch accepted", done == NULL_SWITCHES, failures)
    check("net_npa over net_null: switch_count == 1 + switches",
          xstat(out, "switch_count") == 1 + NULL_SWITCHES, failures)
    check("net_npa over net_null: forwarded packets", bool(fwd) and int(fwd[-1]) > 1000, failures)
    check("net_npa over net_null: no TX dropped", bool(dropped) and
          all(int(d) == 0 for d in dropped), failures)
    if len(failures) != n_before:
        print(out[-4000:])

    # The same with txonly: the application never polls RX, so an RX drain cannot end
    # early; TX must neither be refused nor park testpmd's mbufs until none are left.
    n_before = len(failures)
    rc, out, done = run_testpmd(args.testpmd, pmd_dir,
                                "net_npa2,dev(net_null_c%d),dev(net_null_d%d)" % (pid, pid),
                                "npa_txonly_%d" % pid, switch=False, many=TXONLY_SWITCHES,
                                fwd="txonly")
    dropped = re.findall(r"TX-dropped:\s*(\d+)", out)
    print("net_npa txonly over net_null: %s switches, TX-dropped %s"
          % (done, dropped[-1] if dropped else None))
    check("net_npa txonly: every switch accepted and completed", done == TXONLY_SWITCHES
          and xstat(out, "switch_count") == 1 + TXONLY_SWITCHES, failures)
    check("net_npa txonly: no TX dropped", bool(dropped) and
          all(int(d) == 0 for d in dropped), failures)
    if len(failures) != n_before:
        print(out[-4000:])

    # net_af_packet sub-devices over a veth pair (a kernel interface under each path),
    # txonly, switched back and forth: no TX dropped either.
    n_before = len(failures)
    veth = ("npa%da" % (pid % 100000), "npa%db" % (pid % 100000))
    made = subprocess.run(["ip", "link", "add", veth[0], "type", "veth", "peer", "name",
                           veth[1]], capture_output=True, text=True)
    check("af_packet: veth pair %s/%s created (%s)" % (veth[0], veth[1], made.stderr.strip()),
          made.returncode == 0, failures)
    if made.returncode == 0:
        try:
            for v in veth:
                subprocess.run(["ip", "link", "set", v, "up"], check=True)
            rc, out, done = run_testpmd(
                args.testpmd, pmd_dir,
                "net_npa3,dev(net_af_packet_a%d,iface=%s),dev(net_af_packet_b%d,iface=%s)"
                % (pid, veth[0], pid, veth[1]),
                "npa_afp_%d" % pid, switch=False, many=AF_PACKET_SWITCHES, fwd="txonly")
        finally:
            subprocess.run(["ip", "link", "del", veth[0]], capture_output=True)
        dropped = re.findall(r"TX-dropped:\s*(\d+)", out)
        print("net_npa txonly over net_af_packet: %s switches, TX-dropped %s"
              % (done, dropped[-1] if dropped else None))
        check("af_packet: every switch accepted and completed", done == AF_PACKET_SWITCHES
              and xstat(out, "switch_count") == 1 + AF_PACKET_SWITCHES, failures)
        check("af_packet: both paths carried traffic", (xstat(out, "path0_tx_packets") or 0) > 0
              and (xstat(out, "path1_tx_packets") or 0) > 0, failures)
        check("af_packet: no TX dropped", bool(dropped) and
              all(int(d) == 0 for d in dropped), failures)
    if len(failures) != n_before:
        print(out[-4000:] if made.returncode == 0 else "")

    # A plugin image as a path: net_ring and a sim simnic running the simnic image (the
    # directory's one image for it), switched back and forth under io forwarding.
    if args.image_dir and args.trusted_key:
        n_before = len(failures)
        st = []
        rc, out, done = run_testpmd(
            args.testpmd, pmd_dir,
            "net_npa4,dev(net_ring_i%d),dev(sim:simnic),plugin=%s,trusted_key=%s"
            % (pid, args.image_dir, args.trusted_key),
            "npa_img_%d" % pid, switch=False, many=IMAGE_SWITCHES, status=st)
        stats = last_port_stats(out)
        dropped = re.findall(r"TX-dropped:\s*(\d+)", out)
        print("net_npa with an image path: %s switches, port stats (rx, tx) %s, TX-dropped %s"
              % (done, stats, dropped[-1] if dropped else None))
        check("image path: testpmd exited cleanly", rc == 0, failures)
        check("image path: every switch accepted and completed", done == IMAGE_SWITCHES
              and xstat(out, "switch_count") == 1 + IMAGE_SWITCHES, failures)
        check("image path: both paths carried traffic", (xstat(out, "path0_tx_packets") or 0) > 0
              and (xstat(out, "path1_tx_packets") or 0) > 0, failures)
        check("image path: zero loss (RX-packets == TX-packets after drain)",
              stats is not None and stats[0] > 1000 and stats[0] == stats[1], failures)
        check("image path: no TX dropped", bool(dropped) and all(int(d) == 0 for d in dropped),
              failures)
        image = os.path.join(args.image_dir, "simnic_image.npai")
        with open(image, "rb") as f:
            b = bytearray(f.read())
        stored = b[IMAGE_DIGEST_AT:IMAGE_DIGEST_AT + 64].hex()
        b[IMAGE_DIGEST_AT:IMAGE_SIGNATURE_END] = bytes(IMAGE_SIGNATURE_END - IMAGE_DIGEST_AT)
        computed = hashlib.sha512(bytes(b)).hexdigest()
        with open(args.trusted_key) as f:
            key = f.read().split()[0].lower()
        s0 = st[0].get("/npa/status", {}) if st else {}
        print("image path: /npa/status", s0)
        check("image path: /npa/status names the image, its digest and its signer",
              s0.get("path1") == "sim:simnic" and s0.get("path1_image") == image
              and s0.get("path1_plugin") == "simnic"
              and "".join(s0.get("path1_digest", [])) == computed == stored
              and s0.get("path1_signer") == key, failures)
        if len(failures) != n_before:
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
