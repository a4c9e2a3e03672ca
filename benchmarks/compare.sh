#!/usr/bin/env bash
# benchmarks/compare.sh: two revisions of npa, measured in the same run.
#
#   benchmarks/compare.sh BEFORE [AFTER]      (git revisions; AFTER defaults to HEAD)
#
# A change that claims "no regression" (or a speed-up) shows it here: both revisions are
# built from `git archive` into one work folder (Release, benchmarks on) and measured side by
# side on this machine, so a slow phase of a noisy machine hits both alike:
#   1. instructions under callgrind (repeatable): npa_ring_icount (per ring element) and
#      npa_datapath_icount (per packet through shell + simnic plugin + device; the AFTER
#      revision's source, compiled against each revision's headers, so only npa differs)
#   2. NPA_COMPARE_REPS repetitions (default 3), the order alternating between them, of
#      npa_datapath_bench (CPU ns per packet), npa_path_bench (Mpps per CPU-second through
#      vmxnet3 / igbvf, switch p50) and npa_ring_bench's single-thread cases (ns per element)
#   3. benchmarks/compare.py: per cell, the median of each revision and AFTER / BEFORE,
#      into <work>/compare.md and on stdout
#
# It measures; it never fails on a number. Knobs: NPA_COMPARE_WORK (default
# build/compare), NPA_COMPARE_REPS, NPA_COMPARE_RING_FILTER (Google Benchmark regex over the
# ring cases, default '^single/'), NPA_COMPARE_SKIP_ICOUNT=1.
# On a 2-core machine: about 5 minutes of builds and 10-15 minutes of runs.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: benchmarks/compare.sh BEFORE [AFTER]   (git revisions)" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${NPA_COMPARE_WORK:-$root/build/compare}
reps=${NPA_COMPARE_REPS:-3}
ring_filter=${NPA_COMPARE_RING_FILTER:-^single/}
jobs=$(nproc 2>/dev/null || echo 2)
say() { printf '== %s\n' "$*" >&2; }

declare -A rev
rev[before]=$(git -C "$root" rev-parse --verify "$1^{commit}") ||
    { echo "compare.sh: '$1' is not a revision of $root" >&2; exit 2; }
rev[after]=$(git -C "$root" rev-parse --verify "${2:-HEAD}^{commit}") ||
    { echo "compare.sh: '${2:-HEAD}' is not a revision of $root" >&2; exit 2; }
mkdir -p "$work"
# The data-path icount program of the AFTER revision, built against both (it exists only
# from the revision that added it on; the rig API it uses is older than that).
icount_dir="$work/icount-src"
mkdir -p "$icount_dir"
for f in datapath_icount.cpp datapath_rig.hpp; do
    git -C "$root" show "${rev[after]}:benchmarks/$f" >"$icount_dir/$f" ||
        { echo "compare.sh: ${rev[after]} has no benchmarks/$f" >&2; exit 2; }
done

# ---- 1. build both -----------------------------------------------------------------------
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
for side in before after; do
    src="$work/$side/src" build="$work/$side/build"
    if [ "$(cat "$work/$side/rev" 2>/dev/null)" != "${rev[$side]}" ]; then
        rm -rf "$work/$side"
        mkdir -p "$src"
        git -C "$root" archive "${rev[$side]}" | tar -x -C "$src"
        echo "${rev[$side]}" >"$work/$side/rev"
    fi
    say "$side = $(git -C "$root" log -1 --format='%h %s' "${rev[$side]}")"
    cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DNPA_BUILD_BENCHMARKS=ON -DNPA_BUILD_TESTS=OFF -DNPA_DPDK=OFF -DNPA_LINUX=OFF \
        -DNPA_BUILD_SIM=ON >/dev/null
    nice -n 10 cmake --build "$build" -j"$jobs" \
        --target npa_ring_bench npa_ring_icount npa_datapath_bench npa_path_bench >/dev/null
    # Release flags as CMake gives them (-O3 -DNDEBUG), headers of this revision only.
    nice -n 10 "${CXX:-c++}" -std=c++20 -O3 -DNDEBUG -pthread -I"$src/include" \
        -I"$src/adapters/sim/include" "$icount_dir/datapath_icount.cpp" \
        -o "$build/npa_datapath_icount_cmp"
done
bin() { if [ -x "$work/$1/build/bin/$2" ]; then echo "$work/$1/build/bin/$2"; else echo "$work/$1/build/benchmarks/$2"; fi; }

# ---- 2. instructions ----------------------------------------------------------------------
for side in before after; do
    out="$work/$side/raw"
    rm -rf "$out"
    mkdir -p "$out/icount"
    if [ "${NPA_COMPARE_SKIP_ICOUNT:-0}" != 1 ] && command -v valgrind >/dev/null 2>&1; then
        say "$side: instruction counts under callgrind"
        (cd "$out/icount" &&
            valgrind --tool=callgrind --quiet --dump-instr=no --collect-atstart=yes \
                --callgrind-out-file=callgrind.out "$(bin "$side" npa_ring_icount)" >counts.txt &&
            valgrind --tool=callgrind --quiet --dump-instr=no --collect-atstart=yes \
                --callgrind-out-file=callgrind.out.dp "$work/$side/build/npa_datapath_icount_cmp" \
                >>counts.txt)
    fi
done

# ---- 3. times, alternating -----------------------------------------------------------------
for ((r = 1; r <= reps; r++)); do
    if ((r % 2)); then order=(before after); else order=(after before); fi
    for side in "${order[@]}"; do
        out="$work/$side/raw"
        say "repetition $r of $reps: $side"
        "$(bin "$side" npa_datapath_bench)" --benchmark_min_time=0.1 \
            --benchmark_out="$out/datapath-$r.json" --benchmark_out_format=json \
            --benchmark_format=console >"$out/datapath-$r.txt"
        "$(bin "$side" npa_path_bench)" --seconds 0.5 --switches 300 \
            --json "$out/path-$r.json" >"$out/path-$r.md"
        "$(bin "$side" npa_ring_bench)" --windows=100 --benchmark_filter="$ring_filter" \
            --benchmark_out="$out/run-$r.json" --benchmark_out_format=json \
            --benchmark_format=console >"$out/run-$r.txt"
    done
done

# ---- 4. report -----------------------------------------------------------------------------
python3 "$root/benchmarks/compare.py" --before "$work/before/raw" --after "$work/after/raw" \
    --before-rev "$(git -C "$root" log -1 --format='%h %s' "${rev[before]}")" \
    --after-rev "$(git -C "$root" log -1 --format='%h %s' "${rev[after]}")" \
    --out "$work/compare.md"
say "done: $work/compare.md"
