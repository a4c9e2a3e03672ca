#!/usr/bin/env python3
"""benchmarks/compare.py: the table benchmarks/compare.sh prints.

Reads the raw folders of two revisions measured in one run and writes, per cell, the median
of each and AFTER / BEFORE (below 1.00 is faster or fewer instructions for the AFTER
revision, except for rates, where above 1.00 is faster). Reports; never fails on a number.
"""
import argparse
import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (same folder: the ring-run and callgrind loaders)


def datapath(raw):
    """{cell: [CPU ns per packet, one per repetition]} from npa_datapath_bench."""
    out = {}
    for path in sorted(glob.glob(os.path.join(raw, "datapath-*.json"))):
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            if "cpu_ns_per_pkt" in b:
                out.setdefault(b["name"], []).append(b["cpu_ns_per_pkt"])
    return out


def paths(raw):
    """{cell: [values]} from npa_path_bench: Mpps per CPU-second and switch p50 / p99."""
    out = {}
    for path in sorted(glob.glob(os.path.join(raw, "path-*.json"))):
        with open(path) as f:
            data = json.load(f)
        for r in data.get("rates", []):
            out.setdefault(f"{r['path']}/{r['queues']}q Mpps per CPU-s", []).append(r["mpps_per_cpu_s"])
        for s in data.get("switches", []):
            out.setdefault(f"switch/{s['queues']}q p50 us", []).append(s["p50_us"])
            out.setdefault(f"switch/{s['queues']}q p99 us", []).append(s["p99_us"])
    return out


def ratio_rows(before, after, fmt="{:.1f}"):
    rows = []
    for name in sorted(set(before) & set(after),
                       key=lambda n: [int(x) if x.isdigit() else x for x in n.split("/")]):
        b, a = statistics.median(before[name]), statistics.median(after[name])
        rows.append(f"| {name} | {fmt.format(b)} | {fmt.format(a)} | "
                    f"{a / b:.3f} |" if b else f"| {name} | {b} | {a} | - |")
    return rows


def table(title, note, before, after, fmt="{:.1f}"):
    rows = ratio_rows(before, after, fmt)
    if not rows:
        return [f"## {title}\n", "No cells measured by both revisions.\n"]
    return [f"## {title}\n", note + "\n", "| cell | before | after | after / before |",
            "|---|---|---|---|", *rows, ""]


def summary_line(label, before, after):
    ratios = [statistics.median(after[n]) / statistics.median(before[n])
              for n in set(before) & set(after) if statistics.median(before[n])]
    if not ratios:
        return f"- {label}: no common cells"
    return (f"- {label}: {len(ratios)} cells, after / before median {statistics.median(ratios):.3f}, "
            f"range {min(ratios):.3f} to {max(ratios):.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--before-rev", default="before")
    ap.add_argument("--after-rev", default="after")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    ib = report.load_icount(os.path.join(args.before, "icount"))
    ia = report.load_icount(os.path.join(args.after, "icount"))
    as_lists = lambda d: {k: [v] for k, v in d.items()}  # noqa: E731
    ring_b = {k: v for k, v in as_lists(ib).items() if not k.startswith("datapath/")}
    ring_a = {k: v for k, v in as_lists(ia).items() if not k.startswith("datapath/")}
    dpi_b = {k: v for k, v in as_lists(ib).items() if k.startswith("datapath/")}
    dpi_a = {k: v for k, v in as_lists(ia).items() if k.startswith("datapath/")}
    rb = {k: v["runs_ns"] for k, v in report.medians(report.load_runs(args.before)).items()}
    ra = {k: v["runs_ns"] for k, v in report.medians(report.load_runs(args.after)).items()}
    db, da = datapath(args.before), datapath(args.after)
    pb, pa = paths(args.before), paths(args.after)

    md = ["# npa: two revisions measured in one run (benchmarks/compare.sh)\n",
          f"- before: {args.before_rev}", f"- after: {args.after_rev}", "",
          "Times are medians over the repetitions (the order alternated between the two); "
          "instruction counts come from callgrind and repeat exactly.\n",
          "## Summary\n",
          summary_line("data-path instructions per packet", dpi_b, dpi_a),
          summary_line("ring instructions per element", ring_b, ring_a),
          summary_line("data-path CPU ns per packet", db, da),
          summary_line("ring ns per element (single thread)", rb, ra),
          summary_line("vmxnet3 / igbvf paths (rates: above 1 is faster) and switch times", pb, pa),
          ""]
    md += table("Data path: instructions per packet (callgrind)",
                "shell + simnic plugin + simnic device + traffic, one thread.", dpi_b, dpi_a, "{:.0f}")
    md += table("Data path: CPU ns per packet (npa_datapath_bench)", "Lower is faster.", db, da)
    md += table("vmxnet3 / igbvf paths and switches (npa_path_bench)",
                "Rates: higher is faster. Switch times: lower is faster.", pb, pa, "{:.3f}")
    md += table("Rings: instructions per element (callgrind)", "Every implementation; npa's "
                "own rows are the ones a change to npa can move.", ring_b, ring_a, "{:.1f}")
    md += table("Rings: ns per element, single thread (npa_ring_bench)", "Lower is faster.", rb, ra, "{:.2f}")
    text = "\n".join(md) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
