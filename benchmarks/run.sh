#!/usr/bin/env bash
# benchmarks/run.sh: what `make bench` runs.
#
#   1. configure and build a Release tree with the benchmarks (build/bench)
#   2. run the ring suites NPA_BENCH_REPS times: npa_ring_stream (cross-core streaming,
#      a floor probe before every trial, keeps-pace and lags regimes apart, wall and CPU
#      time per trial) and npa_ring_bench (ping-pong, single thread, empty poll); within a
#      repetition every implementation of a cell runs back to back, so slow phases of a
#      noisy machine hit them alike; JSON per repetition into bench-results/raw/; then
#      each side alone (npa_ring_onesided: fill, then drain, across cores); the plain
#      harness (npa_plain_stream) on a few cells, the reference the streaming trials are
#      held against; the load average is sampled every 2 s throughout
#   2b. the data paths: shell + plugin + sim devices, and (root, with dpdk-testpmd)
#      npa's virtio-net front end over vhost-user against DPDK's net_virtio_user
#   3. count instructions per element of the single-thread cases, and per packet of the
#      data path, under callgrind
#   4. benchmarks/report.py: medians, ratios to rte_ring and Boost, PNG plots,
#      bench-results/latest.md and latest.json
#
# Knobs (environment): NPA_BENCH_REPS (default 5), NPA_BENCH_WINDOWS (timed windows per
# ring benchmark and repetition, default 200), NPA_BENCH_MIN_TIME (seconds per data-path
# benchmark and repetition, default 0.05), NPA_BENCH_FILTER (Google Benchmark regex),
# NPA_BENCH_STREAM_KEEP (undisturbed streaming trials per cell and repetition, default 3),
# NPA_BENCH_STREAM_FILTER (substring of <impl>/<bytes>/<burst>/<regime>),
# NPA_BENCH_VHOST_SECONDS and NPA_BENCH_VHOST_ROUNDS (npa_vhost_bench, defaults 3 and 5),
# NPA_BENCH_BUILD, NPA_BENCH_OUT, NPA_BENCH_SKIP_ICOUNT=1.
# On a loaded 2-core machine the defaults finish in 8-20 minutes, build included.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${NPA_BENCH_BUILD:-$root/build/bench}
out=${NPA_BENCH_OUT:-$root/bench-results}
reps=${NPA_BENCH_REPS:-5}
min_time=${NPA_BENCH_MIN_TIME:-0.05}
windows=${NPA_BENCH_WINDOWS:-200}
filter=${NPA_BENCH_FILTER:-.}
stream_keep=${NPA_BENCH_STREAM_KEEP:-3}
stream_filter=${NPA_BENCH_STREAM_FILTER:-}
jobs=$(nproc 2>/dev/null || echo 2)

say() { printf '== %s\n' "$*" >&2; }

# ---- 1. build ------------------------------------------------------------------------
generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$build/Makefile" ]; then
    generator=(-G Ninja)
fi
say "configure $build (Release, benchmarks on)"
common=(-DCMAKE_BUILD_TYPE=Release -DNPA_BUILD_BENCHMARKS=ON -DNPA_BUILD_TESTS=OFF
        -DNPA_DPDK=OFF)
# The sim adapter brings the data-path benchmark, the Linux adapter the vhost-user one; the
# ring suite needs neither, so a tree whose adapters do not configure still gets ring numbers.
if ! cmake -S "$root" -B "$build" "${generator[@]}" "${common[@]}" -DNPA_BUILD_SIM=ON \
        -DNPA_LINUX=ON >/dev/null; then
    say "configure with the Linux adapter failed; without it"
    if ! cmake -S "$root" -B "$build" "${generator[@]}" "${common[@]}" -DNPA_BUILD_SIM=ON \
            -DNPA_LINUX=OFF >/dev/null; then
        say "configure with the sim adapter failed; ring benchmarks only"
        cmake -S "$root" -B "$build" "${generator[@]}" "${common[@]}" -DNPA_BUILD_SIM=OFF \
            -DNPA_LINUX=OFF >/dev/null
    fi
fi
targets=(npa_ring_bench npa_ring_stream npa_ring_onesided npa_plain_stream npa_ring_icount)
for t in npa_datapath_bench npa_datapath_icount npa_path_bench npa_switch_bench npa_vhost_bench; do
    if grep -q "$t" "$build"/build.ninja "$build"/Makefile "$build"/benchmarks/Makefile 2>/dev/null; then
        targets+=("$t")
    fi
done
say "build ${targets[*]}"
nice -n 10 cmake --build "$build" -j"$jobs" --target "${targets[@]}"
bindir="$build/bin"
[ -x "$bindir/npa_ring_bench" ] || bindir="$build/benchmarks"

# ---- 2. ring suite ---------------------------------------------------------------------
raw="$out/raw"
mkdir -p "$raw"
rm -f "$raw"/run-*.json "$raw"/stream-*.json "$raw/plain.txt" "$raw/loadavg.txt" "$raw/onesided.md"
rm -rf "$raw/icount"
load_start=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
# The load average through the whole run, every 2 s (stopped at the end of the script).
(while true; do
    echo "$(date +%s) $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)"
    sleep 2
done) >"$raw/loadavg.txt" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT
for ((r = 1; r <= reps; r++)); do
    say "ring suite, repetition $r of $reps: streaming"
    "$bindir/npa_ring_stream" --keep "$stream_keep" ${stream_filter:+--filter "$stream_filter"} \
        --json "$raw/stream-$r.json" >"$raw/stream-$r.txt"
    say "ring suite, repetition $r of $reps: ping-pong, single thread, empty"
    "$bindir/npa_ring_bench" --windows="$windows" \
        --benchmark_filter="$filter" \
        --benchmark_out="$raw/run-$r.json" --benchmark_out_format=json \
        --benchmark_format=console >"$raw/run-$r.txt"
done

# Each side alone (fill, then drain, across cores): what a ring's own work costs, apart from
# how its two sides disturb each other when they stream.
say "ring suite: each side alone (npa_ring_onesided)"
"$bindir/npa_ring_onesided" --reps "$reps" >"$raw/onesided.md"

# The plain harness on the cells where the suite once disagreed with it: a few
# undisturbed runs each (a run counts when both threads were on a CPU >= 90% of it).
if [ -z "$stream_filter" ]; then
    say "plain harness (npa_plain_stream)"
    for cell in "8 1" "8 8" "8 32" "8 256" "16 1" "16 8" "16 32" "16 256"; do
        set -- $cell
        for impl in npa_index rte_ring boost_spsc; do
            for start in empty full; do
                kept=0
                for ((a = 0; a < 20 && kept < stream_keep; a++)); do
                    line=$("$bindir/npa_plain_stream" --impl "$impl" --bytes "$1" --burst "$2" \
                        --elems 16384 --start "$start") || break
                    read -r i b u ns ps cs <<<"$line"
                    echo "$i $b $u $start $ns $ps $cs" >>"$raw/plain.txt"
                    if awk -v p="$ps" -v c="$cs" 'BEGIN { exit !(p >= 0.9 && c >= 0.9) }'; then
                        kept=$((kept + 1))
                    fi
                done
            done
        done
    done
fi

echo "$load_start -> $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")" >"$raw/load.txt"

# ---- 2b. data path through shell + plugin + sim device ------------------------------
rm -f "$raw/datapath.json"
if [ -x "$bindir/npa_datapath_bench" ]; then
    say "data path (shell + simnic plugin + simnic device)"
    "$bindir/npa_datapath_bench" --benchmark_min_time="$min_time" \
        --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
        --benchmark_out="$raw/datapath.json" --benchmark_out_format=json \
        --benchmark_format=console >"$raw/datapath.txt"
fi

# vmxnet3 / igbvf paths and switch-time distributions (their own table and JSON).
rm -f "$raw/path.json" "$raw/path.md" "$raw/switch.json" "$raw/switch.md"
if [ -x "$bindir/npa_path_bench" ]; then
    say "data path (shell + vmxnet3 / igbvf + sim devices) and switches between them"
    "$bindir/npa_path_bench" --json "$raw/path.json" >"$raw/path.md"
fi
if [ -x "$bindir/npa_switch_bench" ]; then
    say "switch duration and packets held under load"
    "$bindir/npa_switch_bench" --json "$raw/switch.json" >"$raw/switch.md"
fi

# npa's virtio-net front end over vhost-user against net_virtio_user, both into a
# net_vhost port in dpdk-testpmd (root: testpmd's /var/run/dpdk).
rm -f "$raw/vhost.md"
if [ -x "$bindir/npa_vhost_bench" ] && [ "$(id -u)" = 0 ]; then
    say "virtio-net over vhost-user: npa's front end against net_virtio_user"
    "$bindir/npa_vhost_bench" --seconds "${NPA_BENCH_VHOST_SECONDS:-3}" \
        --rounds "${NPA_BENCH_VHOST_ROUNDS:-5}" >"$raw/vhost.md" ||
        say "npa_vhost_bench failed (see $raw/vhost.md)"
fi

# ---- 3. instruction counts ----------------------------------------------------------------
if [ "${NPA_BENCH_SKIP_ICOUNT:-0}" != 1 ] && command -v valgrind >/dev/null 2>&1; then
    say "instruction counts under callgrind"
    mkdir -p "$raw/icount"
    # One process; each case is zeroed and dumped by client requests in the program, so
    # every dump file holds exactly one case. Cache simulation off: Ir only.
    (cd "$raw/icount" &&
        valgrind --tool=callgrind --quiet --dump-instr=no --collect-atstart=yes \
            --callgrind-out-file=callgrind.out "$bindir/npa_ring_icount" >counts.txt)
    # The data path's instructions per packet, the same way (its own dump files).
    if [ -x "$bindir/npa_datapath_icount" ]; then
        (cd "$raw/icount" &&
            valgrind --tool=callgrind --quiet --dump-instr=no --collect-atstart=yes \
                --callgrind-out-file=callgrind.out.dp "$bindir/npa_datapath_icount" >>counts.txt)
    fi
else
    say "valgrind not found (or NPA_BENCH_SKIP_ICOUNT=1): no instruction counts"
fi

# ---- 4. report -----------------------------------------------------------------------------
say "report"
# The system interpreter carries python3-matplotlib; a user-local python3 first on PATH
# (pyenv, venv) often does not.
py=python3
for cand in /usr/bin/python3 python3; do
    if "$cand" -c 'import matplotlib' >/dev/null 2>&1; then
        py=$cand
        break
    fi
done
"$py" "$root/benchmarks/report.py" --raw "$raw" --out "$out" --build "$build"
say "done: $out/latest.md"
