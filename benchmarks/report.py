#!/usr/bin/env python3
"""benchmarks/report.py: turns the raw benchmark runs into bench-results/.

Inputs (written by benchmarks/run.sh):
  <raw>/run-*.json        Google Benchmark JSON, one file per repetition of the whole suite
                          (pingpong, single, empty)
  <raw>/stream-*.json     npa_ring_stream, one JSON object per streaming trial (floor probe,
                          start regime, wall and CPU time, whether the scheduler left it alone)
  <raw>/plain.txt         npa_plain_stream lines, the plain harness the stream cases agree with
  <raw>/onesided.md       npa_ring_onesided's table (each side alone), included as printed
  <raw>/loadavg.txt       "<unix time> <1-min load>" sampled during the run
  <raw>/icount/           callgrind dumps (callgrind.out.N), one per single-thread case,
                          and counts.txt ("<name> <elements>") from npa_ring_icount
Outputs (in <out>):
  latest.json             medians (ns per element), ratios, instructions per element, machine
  latest.md               the same as tables, plus the ring goals (docs/benchmarks.md) against what was measured
  stream.png              streaming time per element vs burst, one panel per regime and size
  pingpong.png, single.png   time per element vs burst, one line per ring
  ratio_rte_ring.png      time per element as a ratio to rte_ring (stream per regime, pingpong)

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

IMPLS = ["npa_index", "npa_index_batched", "npa_gen", "rte_ring", "boost_spsc", "rwqueue", "atomic_queue"]
CASES = ["pingpong", "single", "empty"]
REGIMES = ["pace", "lag"]
REGIME_TEXT = {"pace": "consumer keeps pace (ring starts empty)",
               "lag": "consumer lags (ring starts full)"}
FLOORS = ["near", "far"]
SIZES = [8, 16]
BURSTS = [1, 8, 32, 256]
# The ring goal for npa_index (docs/benchmarks.md), cross-core streaming: ratio to
# rte_ring at most this.
GOAL_RTE = {1: 0.5, 8: 0.6, 32: 0.9, 256: 1.05}
GOAL_BOOST = 0.8
GOAL_ICOUNT = 5.0  # instructions per element at burst >= 32
# One colour per ring in every plot (8-byte solid, 16-byte dashed in the ratio plot).
COLORS = {"npa_index": "tab:blue", "npa_index_batched": "tab:cyan", "npa_gen": "tab:green", "rte_ring": "tab:red",
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
                per[name] = {"ns": b["ns_per_elem"]}
            elif b.get("items_per_second"):
                per[name] = {"ns": 1e9 / b["items_per_second"]}
            else:
                continue
            # the whole run: CPU time of the benchmark's thread and wall time, per element
            for c in ("cpu_ns_per_elem", "wall_ns_per_elem"):
                if b.get(c):
                    per[name][c] = b[c]
        runs.append(per)
    return runs


def medians(runs):
    names = sorted({n for r in runs for n in r})
    out = {}
    for n in names:
        vals = [r[n]["ns"] for r in runs if n in r]
        e = {"median_ns": statistics.median(vals), "runs_ns": [round(v, 4) for v in vals]}
        for c in ("cpu_ns_per_elem", "wall_ns_per_elem"):
            cv = [r[n][c] for r in runs if n in r and c in r[n]]
            if cv:
                e[c] = statistics.median(cv)
        out[n] = e
    return out


def load_stream(raw):
    """Every streaming trial of every repetition (npa_ring_stream --json)."""
    trials = []
    for path in sorted(glob.glob(os.path.join(raw, "stream-*.json"))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    trials.append(json.loads(line))
    return trials


def stream_medians(trials):
    """{(regime, floor): {key: {...}}} over the trials the scheduler left alone."""
    groups = {}
    for t in trials:
        if not t["undisturbed"]:
            continue
        g = groups.setdefault((t["regime"], t["floor"]), {})
        g.setdefault(key("stream", t["impl"], t["bytes"], t["burst"]), []).append(t)
    out = {}
    for g, cells in groups.items():
        o = out.setdefault(g, {})
        for k, ts in cells.items():
            o[k] = {
                "median_ns": statistics.median(t["ns_per_elem"] for t in ts),
                "prod_cpu_ns_per_elem": statistics.median(t["prod_cpu_ns_per_elem"] for t in ts),
                "cons_cpu_ns_per_elem": statistics.median(t["cons_cpu_ns_per_elem"] for t in ts),
                "floor_ns": statistics.median(t["floor_ns"] for t in ts),
                "trials": len(ts),
                "held": sum(t["observed"] == t["regime"] for t in ts) / len(ts),
                "runs_ns": [round(t["ns_per_elem"], 4) for t in ts],
            }
    return out


def load_plain(raw):
    """{(impl, bytes, burst, start): [ns, ...]} of the plain harness's undisturbed runs."""
    out = {}
    path = os.path.join(raw, "plain.txt")
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) != 7:
                continue
            impl, size, burst, start, ns, ps, cs = p
            if float(ps) >= 0.9 and float(cs) >= 0.9:
                out.setdefault((impl, int(size), int(burst), start), []).append(float(ns))
    return out


def load_loadavg(raw):
    path = os.path.join(raw, "loadavg.txt")
    vals = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 2:
                    vals.append(float(p[1]))
    return vals


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
        for c in ("shell_duration_ns", "pkts_per_round", "cpu_ns_per_pkt", "wall_ns_per_pkt"):
            if c in b:
                e[c] = b[c]
        out[name] = e
    return out


def side_tables(raw):
    """The tables npa_ring_onesided, npa_path_bench, npa_switch_bench and npa_vhost_bench print,
    as printed."""
    parts = []
    for fname, title in [("onesided.md", "Each side of a ring alone, across cores "
                          "(npa_ring_onesided)"),
                         ("path.md", "Data path: shell + vmxnet3 / igbvf plugins + sim devices "
                          "(npa_path_bench)"),
                         ("switch.md", "Switch duration and packets held under load "
                          "(npa_switch_bench)"),
                         ("vhost.md", "virtio-net over vhost-user: npa's front end against "
                          "DPDK's net_virtio_user, each into testpmd's net_vhost "
                          "(npa_vhost_bench)")]:
        path = os.path.join(raw, fname)
        if os.path.exists(path):
            with open(path) as f:
                parts.append(f"## {title}\n\n{f.read().strip()}\n")
    return "\n".join(parts)


def datapath_table(dp, icount):
    if not dp:
        return ("## Data path\n\nNo data-path numbers in this run (the sim adapter was not "
                "built).\n")
    lines = ["## Data path: shell + simnic plugin + simnic device, one thread\n",
             "Bidirectional traffic; each round the guest offers `burst` frames per queue (2 "
             "queues) and the peer sends `burst`. The cost includes the device model and "
             "frame building/checking, so it tracks the shell and plugin, not a real NIC.\n",
             "Instructions per packet are counted by callgrind over the same rig "
             "(npa_datapath_icount): repeatable where the times are not.\n",
             "| frame bytes | burst | CPU ns per packet | Mpps per CPU-second | Mpps per wall second | packets per round | instructions per packet |",
             "|---|---|---|---|---|---|---|"]
    for name, e in sorted(dp.items(), key=lambda kv: [int(x) if x.isdigit() else x for x in kv[0].split("/")]):
        if name.startswith("datapath/") and "ns_per_item" in e:
            _, _, frame, burst = name.split("/")
            cpu = e.get("cpu_ns_per_pkt", e["ns_per_item"])
            wall = e.get("wall_ns_per_pkt")
            lines.append(f"| {frame} | {burst} | {cpu:.0f} | {1e3 / cpu:.2f} | "
                         f"{f'{1e3 / wall:.2f}' if wall else '-'} | {e.get('pkts_per_round', 0):.1f} | "
                         f"{f'{icount[name]:.0f}' if name in icount else '-'} |")
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


def sget(sm, g, k):
    e = sm.get(g, {}).get(k)
    return e["median_ns"] if e else None


def sratio(sm, g, impl, base, size, burst):
    a, b = sget(sm, g, key("stream", impl, size, burst)), sget(sm, g, key("stream", base, size, burst))
    return a / b if a and b else None


def mrate(ns):
    """M items per second from ns per item."""
    return f"{1e3 / ns:.1f}" if ns else "-"


def machine_lines(machine, nruns, floor, loads, trials):
    lines = ["## Machine and load\n",
             f"- CPU: {machine['cpu']}, {machine['cores']} cores",
             f"- kernel {machine['kernel']}; {machine['compiler']}",
             f"- DPDK {machine['dpdk'] or 'n/a'}, Boost {machine['boost'] or 'n/a'}"]
    if loads:
        lines.append(f"- load average (1 min) during the run, sampled every 2 s: min "
                     f"{min(loads):.2f}, median {statistics.median(loads):.2f}, max "
                     f"{max(loads):.2f} ({len(loads)} samples); on two cores anything above "
                     "about 1 means other processes competed for the cores")
    elif machine.get("load"):
        lines.append(f"- load average (1 min) when the runs started and ended: {machine['load']}")
    if trials:
        und = sum(t["undisturbed"] for t in trials)
        lines.append(f"- streaming: {len(trials)} trials, {und} of them undisturbed (both "
                     "threads on a CPU for at least 90% of the trial's wall time); only those "
                     "enter the tables and the goals")
    lines.append(f"- pingpong, single, empty: {nruns} repetitions of the Google Benchmark "
                 "suite, implementations interleaved; each value is the median over "
                 "repetitions of the run's 10th-percentile timing window")
    if floor:
        lines.append(f"- a bare cache-line round trip between the two cores took {fmt_ns(floor)} ns "
                     "in the ping-pong suite (`pingpong/cacheline/8/1`); the streaming trials "
                     "probe it before every trial (below)")
    lines.append("")
    lines.append("**What the goals are judged on.** Streaming: wall-clock ns per element of "
                 "the whole transfer, median over undisturbed trials, within one regime "
                 "(start state and floor class); since both threads were on a CPU for at "
                 "least 90% of such a trial, wall-clock and CPU-time rates agree within "
                 "10% there, and both are published. Instructions: callgrind. The data-path "
                 "tables are judged per CPU-second of the thread doing the work.\n")
    return lines


def stream_tables(sm, impls):
    lines = []
    groups = [(r, f) for r in REGIMES for f in FLOORS if (r, f) in sm]
    if not groups:
        return ["## Cross-core streaming\n", "No undisturbed streaming trials in this run.\n"]
    for g in groups:
        r, f = g
        floors = [e["floor_ns"] for e in sm[g].values()]
        held = [e["held"] for e in sm[g].values()]
        ntr = sum(e["trials"] for e in sm[g].values())
        lines.append(f"## Cross-core streaming, {REGIME_TEXT[r]}, {f} floor\n")
        lines.append(f"{ntr} undisturbed trials; floor probe (cache-line round trip) median "
                     f"{statistics.median(floors):.0f} ns; the trial stayed in the regime it "
                     f"started in (producer found the ring full more often than the consumer "
                     f"found it empty, or the reverse) in {100 * statistics.mean(held):.0f}% of "
                     "them. ns per element (ratio to rte_ring; ratio to boost_spsc); `-`: no "
                     "undisturbed trial.\n")
        lines.append("| bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|" + "---|" * len(impls))
        for s_ in SIZES:
            for b in BURSTS:
                cells = []
                for i in impls:
                    v = sget(sm, g, key("stream", i, s_, b))
                    rr = sratio(sm, g, i, "rte_ring", s_, b)
                    rb = sratio(sm, g, i, "boost_spsc", s_, b)
                    cells.append(f"{fmt_ns(v)} ({fmt_ratio(rr)}; {fmt_ratio(rb)})" if v else "-")
                lines.append(f"| {s_} | {b} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"Same trials, M elements per second: wall / per CPU-second of the "
                     f"producer / of the consumer.\n")
        lines.append("| bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|" + "---|" * len(impls))
        for s_ in SIZES:
            for b in BURSTS:
                cells = []
                for i in impls:
                    e = sm[g].get(key("stream", i, s_, b))
                    cells.append(f"{mrate(e['median_ns'])} / {mrate(e['prod_cpu_ns_per_elem'])} / "
                                 f"{mrate(e['cons_cpu_ns_per_elem'])}" if e else "-")
                lines.append(f"| {s_} | {b} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plain_table(sm, plain):
    if not plain:
        return []
    lines = ["## The suite against the plain harness\n",
             "`npa_plain_stream` (benchmarks/plain_stream.cpp: two pinned threads, run-time "
             "burst, whole transfer timed) beside the suite's streaming trials, same cells, "
             "undisturbed runs only, any floor; ns per element, medians.\n",
             "| impl | bytes | burst | regime | suite | plain harness | plain / suite | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for (impl, size, burst, start), vals in sorted(plain.items()):
        regime = "lag" if start == "full" else "pace"
        suite = [t for g, cells in sm.items() if g[0] == regime
                 for k, t in cells.items() if k == key("stream", impl, size, burst)]
        sv = statistics.median(x for t in suite for x in t["runs_ns"]) if suite else None
        pv = statistics.median(vals)
        lines.append(f"| {impl} | {size} | {burst} | {regime} | {fmt_ns(sv)} | {fmt_ns(pv)} | "
                     f"{fmt_ratio(pv / sv) if sv else '-'} | {len(vals)} |")
    lines.append("")
    return lines


def tables(med, sm, icount, impls):
    lines = stream_tables(sm, impls)
    titles = {
        "pingpong": "Cross-core ping-pong round trip (ns per element; ratio to rte_ring)",
        "single": "Single thread, enqueue + dequeue (ns per element; ratio to rte_ring)",
        "empty": "Dequeue from an empty ring (ns per call; ratio to rte_ring)",
    }
    all_impls = impls
    for case in CASES:
        impls = [i for i in all_impls if any(key(case, i, s_, b) in med for s_ in SIZES for b in BURSTS)]
        rows = [(s_, b) for s_ in SIZES for b in BURSTS if any(key(case, i, s_, b) in med for i in impls)]
        if not rows:
            continue
        lines.append(f"## {titles[case]}\n")
        lines.append("| bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|" + "---|" * len(impls))
        for s_, b in rows:
            cells = []
            for i in impls:
                v = get(med, key(case, i, s_, b))
                r = ratio(med, case, i, "rte_ring", s_, b)
                cells.append(f"{fmt_ns(v)} ({fmt_ratio(r)})" if v and r else fmt_ns(v))
            lines.append(f"| {s_} | {b} | " + " | ".join(cells) + " |")
        lines.append("")
        unit = "calls" if case == "empty" else "elements"
        lines.append(f"Whole runs, M {unit} per CPU-second of the benchmark's thread (per wall "
                     "second); these include every window, also those in which the other "
                     "thread was descheduled and this one spun:\n")
        lines.append("| bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|" + "---|" * len(impls))
        for s_, b in rows:
            cells = []
            for i in impls:
                e = med.get(key(case, i, s_, b))
                cells.append(f"{mrate(e.get('cpu_ns_per_elem'))} ({mrate(e.get('wall_ns_per_elem'))})"
                             if e else "-")
            lines.append(f"| {s_} | {b} | " + " | ".join(cells) + " |")
        lines.append("")

    impls = [i for i in all_impls if any(k.split("/")[1] == i for k in icount)]
    if icount:
        lines.append("## Instructions per element, single thread (callgrind)\n")
        lines.append("`empty` rows are instructions per call; `single-rt` rows pass the burst "
                     "size as a run-time value (the compiler cannot specialise the copy).\n")
        lines.append("| case | bytes | burst | " + " | ".join(impls) + " |")
        lines.append("|---|---|---|" + "---|" * len(impls))
        for case in ["single", "single-rt", "empty"]:
            for s_ in SIZES:
                for b in BURSTS:
                    vals = [icount.get(key(case, i, s_, b)) for i in impls]
                    if all(v is None for v in vals):
                        continue
                    cells = ["-" if v is None else f"{v:.1f}" for v in vals]
                    lines.append(f"| {case} | {s_} | {b} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def stream_goal_rows(sm, groups, impl, summary, tag):
    """The streaming goal rows of one npa ring variant, within each regime group."""
    lines = []
    for s_ in SIZES:
        for b in BURSTS:
            goal = GOAL_RTE[b]
            for base, limit, gtxt in (
                    ("rte_ring", goal, f"<= {goal}" if b != 256 else "parity (<= 1.05)"),
                    ("boost_spsc", GOAL_BOOST, f"<= {GOAL_BOOST}")):
                cells = []
                for g in groups:
                    r = sratio(sm, g, impl, base, s_, b)
                    ok = r is not None and r <= limit
                    summary[(tag + ("rte" if base == "rte_ring" else "boost"), g, s_, b)] = \
                        ok if r is not None else None
                    cells.append("-" if r is None else f"{r:.2f} {'yes' if ok else '**no**'}")
                lines.append(f"| stream / {base} | {s_} | {b} | " + " | ".join(cells) +
                             f" | {gtxt} |")
    return lines


def goals(sm, icount):
    lines = ["## Ring goals (npa_index), per regime\n",
             "Streaming goals are judged within each regime (start state x floor class) on "
             "the wall-clock medians of undisturbed trials; `-` where a regime had no "
             "undisturbed trial for both rings.\n"]
    groups = [(r, f) for r in REGIMES for f in FLOORS if (r, f) in sm]
    head = ("| check | bytes | burst | " + " | ".join(f"{r}, {f}" for r, f in groups) +
            " | goal |")
    rule = "|---|---|---|" + "---|" * len(groups) + "---|"
    summary = {}
    lines += [head, rule]
    lines += stream_goal_rows(sm, groups, "npa_index", summary, "")
    if any(key("stream", "npa_index_batched", s_, b) in sm[g]
           for g in groups for s_ in SIZES for b in BURSTS):
        lines += ["",
                  "The same goals for the same ring with the producer's publication batched "
                  "(`npa_index_batched`: `stage_burst()` and a `flush()` once a quarter of "
                  "the ring is staged or the ring is full, and at the end of the transfer). "
                  "A consumer sees elements up to a quarter ring later, so this is a choice "
                  "of the producer, not a replacement for `enqueue_burst()`:\n",
                  head, rule]
        lines += stream_goal_rows(sm, groups, "npa_index_batched", summary, "batched-")
    lines.append("")
    lines.append("| instructions / element | bytes | burst | npa_index | rte_ring | goal | met |")
    lines.append("|---|---|---|---|---|---|---|")
    for case in ["single", "single-rt"]:
        for s_ in SIZES:
            for b in BURSTS:
                ni = icount.get(key(case, "npa_index", s_, b))
                nr = icount.get(key(case, "rte_ring", s_, b))
                if ni is None:
                    continue
                met = nr is None or ni <= nr
                gtxt = "<= rte_ring"
                if b >= 32:
                    gtxt += f" and <= {GOAL_ICOUNT:g}"
                    met = met and ni <= GOAL_ICOUNT
                lines.append(f"| {case} | {s_} | {b} | {ni:.1f} | "
                             f"{'-' if nr is None else f'{nr:.1f}'} | {gtxt} | "
                             f"{'yes' if met else '**no**'} |")
    lines.append("")
    return "\n".join(lines), summary


def plots(med, sm, out, floor, impls):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no plots", file=sys.stderr)
        return []
    made = []

    def logx(ax):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(BURSTS)
        ax.set_xticklabels([str(b) for b in BURSTS])
        ax.set_xlabel("burst")
        ax.grid(True, which="both", alpha=0.3)

    # Streaming: one row per start regime, one column per element size; solid lines for
    # the far floor, dotted for the near one, so the regimes never share a line.
    if sm:
        fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharey=True)
        for row, r in enumerate(REGIMES):
            for col, s_ in enumerate(SIZES):
                ax = axes[row][col]
                for f, style in [("far", "-"), ("near", ":")]:
                    g = (r, f)
                    if g not in sm:
                        continue
                    for i in impls:
                        xs = [b for b in BURSTS if sget(sm, g, key("stream", i, s_, b))]
                        ys = [sget(sm, g, key("stream", i, s_, b)) for b in xs]
                        if xs:
                            ax.plot(xs, ys, style, marker="o", label=f"{i} ({f})", color=COLORS.get(i),
                                    linewidth=2.5 if i.startswith("npa") else 1.2)
                logx(ax)
                ax.set_title(f"stream, {REGIME_TEXT[r]}, {s_} B", fontsize=9)
            axes[row][0].set_ylabel("ns per element")
        axes[0][1].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = os.path.join(out, "stream.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)

    for case, ylabel in [("pingpong", "ns per element (round trip)"), ("single", "ns per element")]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for ax, s_ in zip(axes, SIZES):
            for i in impls:
                xs = [b for b in BURSTS if get(med, key(case, i, s_, b))]
                ys = [get(med, key(case, i, s_, b)) for b in xs]
                if xs:
                    ax.plot(xs, ys, marker="o", label=i, color=COLORS.get(i),
                            linewidth=2.5 if i.startswith("npa") else 1.2)
            if case == "pingpong" and floor:
                ax.axhline(floor, color="grey", linestyle="--", label="cache-line round trip")
            logx(ax)
            ax.set_title(f"{case}, {s_}-byte elements")
        axes[0].set_ylabel(ylabel)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out, f"{case}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)

    # Ratios to rte_ring: streaming per regime (pace solid, lag dashed; the floor class
    # with more trials), then ping-pong.
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, s_ in zip(axes[:2], SIZES):
        for r, style in [("pace", "-"), ("lag", "--")]:
            gs = [g for g in sm if g[0] == r]
            if not gs:
                continue
            g = max(gs, key=lambda g_: sum(e["trials"] for e in sm[g_].values()))
            for i in impls:
                if i == "rte_ring":
                    continue
                xs = [b for b in BURSTS if sratio(sm, g, i, "rte_ring", s_, b)]
                ys = [sratio(sm, g, i, "rte_ring", s_, b) for b in xs]
                if xs:
                    ax.plot(xs, ys, style, marker="o", label=f"{i} {r} ({g[1]})", color=COLORS.get(i),
                            linewidth=2.5 if i.startswith("npa") else 1.0)
        ax.set_title(f"stream {s_} B / rte_ring (lower is better)", fontsize=9)
    for i in impls:
        for s_, style in [(8, "-"), (16, "--")]:
            xs = [b for b in BURSTS if ratio(med, "pingpong", i, "rte_ring", s_, b)]
            ys = [ratio(med, "pingpong", i, "rte_ring", s_, b) for b in xs]
            if xs and i != "rte_ring":
                axes[2].plot(xs, ys, style, marker="o", label=f"{i} {s_}B", color=COLORS.get(i),
                             linewidth=2.5 if i.startswith("npa") else 1.0)
    axes[2].set_title("pingpong / rte_ring (lower is better)", fontsize=9)
    for ax in axes:
        ax.axhline(1.0, color="black", linewidth=0.8)
        logx(ax)
    axes[0].set_ylabel("ratio to rte_ring")
    for ax in axes:
        ax.legend(fontsize=6, ncol=2)
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
    trials = load_stream(args.raw)
    if not runs and not trials:
        sys.exit("report.py: no run-*.json or stream-*.json in " + args.raw)
    med = medians(runs)
    sm = stream_medians(trials)
    plain = load_plain(args.raw)
    loads = load_loadavg(args.raw)
    icount = load_icount(os.path.join(args.raw, "icount"))
    machine = machine_info(args.build, args.raw)
    dp = load_datapath(args.raw)
    floor = get(med, "pingpong/cacheline/8/1")
    present = {k.split("/")[1] for k in med} | {t["impl"] for t in trials}
    impls = [i for i in IMPLS if i in present]

    os.makedirs(args.out, exist_ok=True)
    goal_md, goal_summary = goals(sm, icount)
    summary = {
        "machine": machine,
        "load_average_samples": loads,
        "repetitions": len(runs),
        "unit": "ns per element (empty/*: ns per call); median over repetitions "
                "(stream: over undisturbed trials); *cpu_ns_per_elem: CPU time of the "
                "working thread per element",
        "stream": {f"{r}/{f}": cells for (r, f), cells in sorted(sm.items())},
        "stream_trials": {"total": len(trials),
                          "undisturbed": sum(t["undisturbed"] for t in trials)},
        "plain_harness": {"/".join(map(str, k)): v for k, v in sorted(plain.items())},
        "medians": med,
        "ratio_to_rte_ring": ratios_to(med, "rte_ring"),
        "ratio_to_boost_spsc": ratios_to(med, "boost_spsc"),
        "stream_goals_met": {f"{c}/{r}/{f}/{s_}/{b}": v
                             for (c, (r, f), s_, b), v in sorted(goal_summary.items())},
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

    made = plots(med, sm, args.out, floor, impls)
    md = ["# npa ring benchmarks: latest results\n",
          "Written by `make bench` (benchmarks/run.sh); see docs/benchmarks.md for what each "
          "case measures.\n"]
    md.append("\n".join(machine_lines(machine, len(runs), floor, loads, trials)))
    md.append(goal_md)
    md.append(tables(med, sm, icount, impls))
    md.append("\n".join(plain_table(sm, plain)))
    md.append(datapath_table(dp, icount))
    md.append(side_tables(args.raw))
    for p in made:
        md.append(f"![{os.path.basename(p)}]({os.path.basename(p)})\n")
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write("\n".join(md))
    print(f"report.py: {len(med)} benchmarks, {len(runs)} repetitions, {len(trials)} streaming "
          f"trials, {len(icount)} instruction counts -> {args.out}")


if __name__ == "__main__":
    main()
