#!/usr/bin/env python3
"""benchmarks/report.py: turns the raw benchmark runs into bench-results/.

Inputs (written by benchmarks/run.sh):
  <raw>/run-*.json        Google Benchmark JSON, one file per repetition of the whole suite
  <raw>/icount/           callgrind dumps (callgrind.out.N), one per single-thread case,
                          and counts.txt ("<name> <elements>") from npa_ring_icount
Outputs (in <out>):
  latest.json             medians (ns per element), ratios, instructions per element, machine
  latest.md               the same as tables, plus the ring goals (docs/benchmarks.md) against what was measured
  stream.png, pingpong.png, single.png   time per element vs burst, one line per ring
  ratio_rte_ring.png      time per element as a ratio to rte_ring (stream and pingpong)

Medians, not means: on a shared two-core machine a repetition that was descheduled is an
outlier to drop, not a value to average in.
"""
import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

IMPLS = ["npa_index", "npa_gen", "rte_ring", "boost_spsc", "rwqueue", "atomic_queue"]
CASES = ["stream", "pingpong", "single", "empty"]
SIZES = [8, 16]
BURSTS = [1, 8, 32, 256]
# The ring goal for npa_index (docs/benchmarks.md), cross-core streaming: ratio to
# rte_ring at most this.
GOAL_RTE = {1: 0.5, 8: 0.6, 32: 0.9, 256: 1.05}
GOAL_BOOST = 0.8
GOAL_ICOUNT = 5.0  # instructions per element at burst >= 32
# One colour per ring in every plot (8-byte solid, 16-byte dashed in the ratio plot).
COLORS = {"npa_index": "tab:blue", "npa_gen": "tab:green", "rte_ring": "tab:red",
          "boost_spsc": "tab:purple", "rwqueue": "tab:gray", "atomic_queue": "tab:olive"}


def load_runs(raw):
    runs = []
    for path in sorted(glob.glob(os.path.join(raw, "run-*.json"))):
        with open(path) as f:
            data = json.load(f)
        per = {}
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            name = re.sub(r"/iterations:\d+", "", b["name"]).removesuffix("/real_time")
            # ns_per_elem: a low quantile of the run's timing windows (see ring_bench.cpp);
            # items_per_second (whole-run average) only if a benchmark has no windows.
            if b.get("ns_per_elem"):
                per[name] = b["ns_per_elem"]
            elif b.get("items_per_second"):
                per[name] = 1e9 / b["items_per_second"]
        runs.append(per)
    return runs


def medians(runs):
    names = sorted({n for r in runs for n in r})
    out = {}
    for n in names:
        vals = [r[n] for r in runs if n in r]
        out[n] = {"median_ns": statistics.median(vals), "runs_ns": [round(v, 4) for v in vals]}
    return out


def load_icount(icount_dir):
    counts = {}
    counts_file = os.path.join(icount_dir, "counts.txt")
    if not os.path.exists(counts_file):
        return {}
    with open(counts_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                counts[parts[0]] = int(parts[1])
    result = {}
    for path in glob.glob(os.path.join(icount_dir, "callgrind.out*")):
        name, total = None, None
        with open(path) as f:
            for line in f:
                m = re.match(r"desc: Trigger: Client Request: (\S+)", line)
                if m:
                    name = m.group(1)
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    total = int(m.group(1))
        if name and total is not None and name in counts:
            result[name] = total / counts[name]
    return result


def load_datapath(raw):
    """Median aggregates of the data-path benchmark: {name: {...}}."""
    path = os.path.join(raw, "datapath.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    out = {}
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name") != "median" or b.get("error_occurred"):
            continue
        name = b["run_name"].removesuffix("/real_time")  # datapath/*: CPU time based
        if not name.startswith("datapath/"):
            continue
        e = {"real_time_ns": b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]}
        if b.get("items_per_second"):
            e["ns_per_item"] = 1e9 / b["items_per_second"]
        for c in ("shell_duration_ns", "pkts_per_round"):
            if c in b:
                e[c] = b[c]
        out[name] = e
    return out


def side_tables(raw):
    """The tables npa_path_bench and npa_switch_bench print, as they printed them."""
    parts = []
    for fname, title in [("path.md", "Data path: shell + vmxnet3 / igbvf plugins + sim devices "
                          "(npa_path_bench)"),
                         ("switch.md", "Switch duration and packets held under load "
                          "(npa_switch_bench)")]:
        path = os.path.join(raw, fname)
        if os.path.exists(path):
            with open(path) as f:
                parts.append(f"## {title}\n\n{f.read().strip()}\n")
    return "\n".join(parts)


def datapath_table(dp):
    if not dp:
        return ("## Data path\n\nNo data-path numbers in this run (the sim adapter was not "
                "built).\n")
    lines = ["## Data path: shell + simnic plugin + simnic device, one thread\n",
             "Bidirectional traffic; each round the guest offers `burst` frames per queue (2 "
             "queues) and the peer sends `burst`. The cost includes the device model and "
             "frame building/checking, so it tracks the shell and plugin, not a real NIC.\n",
             "| frame bytes | burst | ns per packet | Mpps | packets per round |",
             "|---|---|---|---|---|"]
    for name, e in sorted(dp.items(), key=lambda kv: [int(x) if x.isdigit() else x for x in kv[0].split("/")]):
        if name.startswith("datapath/") and "ns_per_item" in e:
            _, _, frame, burst = name.split("/")
            lines.append(f"| {frame} | {burst} | {e['ns_per_item']:.0f} | "
                         f"{1e3 / e['ns_per_item']:.2f} | {e.get('pkts_per_round', 0):.1f} |")
    lines.append("")
    return "\n".join(lines)


def machine_info(build_dir, raw):
    info = {"cpu": "unknown", "cores": os.cpu_count(), "kernel": platform.release(),
            "compiler": "unknown", "dpdk": "", "boost": "", "load": ""}
    try:
        with open(os.path.join(raw, "load.txt")) as f:
            info["load"] = f.read().strip()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cache = os.path.join(build_dir, "CMakeCache.txt")
    compiler = None
    if os.path.exists(cache):
        with open(cache) as f:
            for line in f:
                if line.startswith("CMAKE_CXX_COMPILER:"):
                    compiler = line.split("=", 1)[1].strip()
    try:
        out = subprocess.run([compiler or "c++", "--version"], capture_output=True, text=True)
        info["compiler"] = out.stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        pass
    try:
        out = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True,
                             text=True)
        info["dpdk"] = out.stdout.strip()
    except OSError:
        pass
    try:
        with open("/usr/include/boost/version.hpp") as f:
            m = re.search(r'BOOST_LIB_VERSION "([^"]+)"', f.read())
            info["boost"] = m.group(1).replace("_", ".") if m else ""
    except OSError:
        pass
    return info


def key(case, impl, size, burst):
    return f"{case}/{impl}/{size}/{burst}"


def fmt_ns(v):
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(v):
    if v is None:
        return "-"
    return f"{v:.2f}" if v >= 0.01 else f"{v:.1e}"


def get(med, k):
    e = med.get(k)
    return e["median_ns"] if e else None


def ratio(med, case, impl, base, size, burst):
    a, b = get(med, key(case, impl, size, burst)), get(med, key(case, base, size, burst))
    return a / b if a and b else None


def tables(med, icount, machine, nruns, floor):
    lines = []
    lines.append("## Machine\n")
    lines.append(f"- CPU: {machine['cpu']}, {machine['cores']} cores")
    lines.append(f"- kernel {machine['kernel']}; {machine['compiler']}")
    lines.append(f"- DPDK {machine['dpdk'] or 'n/a'}, Boost {machine['boost'] or 'n/a'}")
    if machine.get("load"):
        lines.append(f"- load average (1 min) when the runs started and ended: {machine['load']}; "
                     "above about 1.5 on two cores other processes competed for the cores, and "
                     "cross-core numbers (stream, pingpong) are then rough")
    lines.append(f"- {nruns} repetitions of the whole suite, implementations interleaved; "
                 "each value is the median over repetitions of the run's 10th-percentile "
                 "timing window (see docs/benchmarks.md)")
    if floor:
        lines.append(f"- floor: a bare cache-line round trip between the two cores takes "
                     f"{fmt_ns(floor)} ns (`pingpong/cacheline/8/1`)")
    lines.append("")

    impls = [i for i in IMPLS if any(k.split("/")[1] == i for k in med)]
    titles = {
        "stream": "Cross-core streaming (ns per element; ratio to rte_ring in brackets)",
        "pingpong": "Cross-core ping-pong round trip (ns per element; ratio to rte_ring)",
        "single": "Single thread, enqueue + dequeue (ns per element; ratio to rte_ring)",
        "empty": "Dequeue from an empty ring (ns per call; ratio to rte_ring)",
    }
    for case in CASES:
        rows = [(s, b) for s in SIZES for b in BURSTS if any(key(case, i, s, b) in med for i in impls)]
        if not rows:
            continue
        lines.append(f"## {titles[case]}\n")
        lines.append("| bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|" + "---|" * len(impls))
        for s, b in rows:
            cells = []
            for i in impls:
                v = get(med, key(case, i, s, b))
                r = ratio(med, case, i, "rte_ring", s, b)
                cells.append(f"{fmt_ns(v)} ({fmt_ratio(r)})" if v and r else fmt_ns(v))
            lines.append(f"| {s} | {b} | " + " | ".join(cells) + " |")
        lines.append("")

    lines.append("## Streaming as a ratio to boost::lockfree::spsc_queue\n")
    lines.append("| bytes | burst | " + " | ".join(impls) + " |")
    lines.append("|---|---|" + "---|" * len(impls))
    for s in SIZES:
        for b in BURSTS:
            cells = [fmt_ratio(ratio(med, "stream", i, "boost_spsc", s, b)) for i in impls]
            lines.append(f"| {s} | {b} | " + " | ".join(cells) + " |")
    lines.append("")

    if icount:
        lines.append("## Instructions per element, single thread (callgrind)\n")
        lines.append("`empty` rows are instructions per call.\n")
        lines.append("| case | bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|---|" + "---|" * len(impls))
        for case in ["single", "empty"]:
            for s in SIZES:
                for b in BURSTS:
                    vals = [icount.get(key(case, i, s, b)) for i in impls]
                    if all(v is None for v in vals):
                        continue
                    cells = ["-" if v is None else f"{v:.1f}" for v in vals]
                    lines.append(f"| {case} | {s} | {b} | " + " | ".join(cells) + " |")
        lines.append("")

    lines.append("## Ring goals (npa_index)\n")
    lines.append("| check | bytes | burst | measured | goal | met |")
    lines.append("|---|---|---|---|---|---|")
    for s in SIZES:
        for b in BURSTS:
            r = ratio(med, "stream", "npa_index", "rte_ring", s, b)
            if r is not None:
                goal = GOAL_RTE[b]
                met = r <= goal if b != 256 else r <= 1.05
                gtxt = f"<= {goal}" if b != 256 else "parity (<= 1.05)"
                lines.append(f"| stream / rte_ring | {s} | {b} | {r:.2f} | {gtxt} | "
                             f"{'yes' if met else 'no'} |")
            r = ratio(med, "stream", "npa_index", "boost_spsc", s, b)
            if r is not None:
                lines.append(f"| stream / boost_spsc | {s} | {b} | {r:.2f} | <= {GOAL_BOOST} | "
                             f"{'yes' if r <= GOAL_BOOST else 'no'} |")
            ni = icount.get(key("single", "npa_index", s, b))
            nr = icount.get(key("single", "rte_ring", s, b))
            if ni is not None:
                goal_txt = f"<= rte_ring ({nr:.1f})" if nr is not None else "<= rte_ring"
                met = nr is None or ni <= nr
                if b >= 32:
                    goal_txt += f" and <= {GOAL_ICOUNT:g}"
                    met = met and ni <= GOAL_ICOUNT
                lines.append(f"| instructions / element | {s} | {b} | {ni:.1f} | {goal_txt} | "
                             f"{'yes' if met else 'no'} |")
    lines.append("")
    return "\n".join(lines)


def plots(med, out, floor):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no plots", file=sys.stderr)
        return []
    made = []
    impls = [i for i in IMPLS if any(k.split("/")[1] == i for k in med)]
    for case, ylabel in [("stream", "ns per element"), ("pingpong", "ns per element (round trip)"),
                         ("single", "ns per element")]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for ax, s in zip(axes, SIZES):
            for i in impls:
                xs = [b for b in BURSTS if get(med, key(case, i, s, b))]
                ys = [get(med, key(case, i, s, b)) for b in xs]
                if xs:
                    ax.plot(xs, ys, marker="o", label=i, color=COLORS.get(i),
                            linewidth=2.5 if i.startswith("npa") else 1.2)
            if case == "pingpong" and floor:
                ax.axhline(floor, color="grey", linestyle="--", label="cache-line round trip")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(BURSTS)
            ax.set_xticklabels([str(b) for b in BURSTS])
            ax.set_xlabel("burst")
            ax.set_title(f"{case}, {s}-byte elements")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel(ylabel)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out, f"{case}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, case in zip(axes, ["stream", "pingpong"]):
        for i in impls:
            for s, style in [(8, "-"), (16, "--")]:
                xs = [b for b in BURSTS if ratio(med, case, i, "rte_ring", s, b)]
                ys = [ratio(med, case, i, "rte_ring", s, b) for b in xs]
                if xs and i != "rte_ring":
                    ax.plot(xs, ys, style, marker="o", label=f"{i} {s}B", color=COLORS.get(i),
                            linewidth=2.5 if i.startswith("npa") else 1.0)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(BURSTS)
        ax.set_xticklabels([str(b) for b in BURSTS])
        ax.set_xlabel("burst")
        ax.set_title(f"{case}: time per element / rte_ring (lower is better)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ratio to rte_ring")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = os.path.join(out, "ratio_rte_ring.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    made.append(path)
    return made


def ratios_to(med, base):
    """Every implementation's median over the same case, size and burst of `base`."""
    out = {}
    for k, v in med.items():
        case, impl, *rest = k.split("/")
        b = get(med, key(case, base, *rest))
        if impl in IMPLS and b:
            out[k] = round(v["median_ns"] / b, 4)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default="")
    args = ap.parse_args()

    runs = load_runs(args.raw)
    if not runs:
        sys.exit("report.py: no run-*.json in " + args.raw)
    med = medians(runs)
    icount = load_icount(os.path.join(args.raw, "icount"))
    machine = machine_info(args.build, args.raw)
    dp = load_datapath(args.raw)
    floor = get(med, "pingpong/cacheline/8/1")

    os.makedirs(args.out, exist_ok=True)
    summary = {
        "machine": machine,
        "repetitions": len(runs),
        "unit": "ns per element (empty/*: ns per call); median over repetitions",
        "medians": med,
        "ratio_to_rte_ring": ratios_to(med, "rte_ring"),
        "ratio_to_boost_spsc": ratios_to(med, "boost_spsc"),
        "instructions_per_element": {k: round(v, 2) for k, v in sorted(icount.items())},
        "datapath": dp,
        "path_bench": json.load(open(os.path.join(args.raw, "path.json")))
        if os.path.exists(os.path.join(args.raw, "path.json")) else None,
        "switch_bench": json.load(open(os.path.join(args.raw, "switch.json")))
        if os.path.exists(os.path.join(args.raw, "switch.json")) else None,
    }
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")

    made = plots(med, args.out, floor)
    md = ["# npa ring benchmarks: latest results\n",
          "Written by `make bench` (benchmarks/run.sh); see docs/benchmarks.md for what each "
          "case measures.\n"]
    md.append(tables(med, icount, machine, len(runs), floor))
    md.append(datapath_table(dp))
    md.append(side_tables(args.raw))
    for p in made:
        md.append(f"![{os.path.basename(p)}]({os.path.basename(p)})\n")
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write("\n".join(md))
    print(f"report.py: {len(med)} benchmarks, {len(runs)} repetitions, "
          f"{len(icount)} instruction counts -> {args.out}")


if __name__ == "__main__":
    main()
