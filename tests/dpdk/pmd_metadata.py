#!/usr/bin/env python3
"""librte_net_npa.so as DPDK's tools see a PMD: dpdk-pmdinfo.py finds its name and
devargs string, and its exported rte_pmd_npa_* calls carry a version node (and nothing
else of the driver is exported). Exit status 0 on success."""
import argparse
import json
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pmdinfo", default="dpdk-pmdinfo.py")
    ap.add_argument("--so", required=True)
    args = ap.parse_args()
    failures = []

    def check(label, ok):
        print(("ok   " if ok else "FAIL ") + label)
        if not ok:
            failures.append(label)

    info = subprocess.run([args.pmdinfo, args.so], capture_output=True, text=True)
    try:
        pmds = json.loads(info.stdout)
    except ValueError:
        pmds = []
    print(info.stdout.strip() or info.stderr.strip())
    names = {p.get("name"): p for p in pmds}
    check("dpdk-pmdinfo.py names the PMD net_npa", "net_npa" in names)
    check("its params list dev(<device>)",
          "dev(<device>)" in names.get("net_npa", {}).get("params", ""))

    syms = subprocess.run(["objdump", "-T", args.so], capture_output=True, text=True).stdout
    exported = {m.group(2): m.group(1) for m in re.finditer(
        r"\bDF \.text\s+\S+\s+(\S+)\s+(\S+)$", syms, re.M)}
    for name in ("rte_pmd_npa_switch", "rte_pmd_npa_status", "rte_pmd_npa_is_npa_port"):
        check("%s exported in version node EXPERIMENTAL (%s)" % (name, exported.get(name)),
              exported.get(name) == "EXPERIMENTAL")
    others = sorted(n for n in exported if not n.startswith("rte_pmd_npa_"))
    check("no other function exported (%s)" % ", ".join(others[:5]), not others)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
