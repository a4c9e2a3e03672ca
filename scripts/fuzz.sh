#!/usr/bin/env bash
# scripts/fuzz.sh [seconds-per-target] [target...]: builds the libFuzzer targets (fuzz/)
# with clang in build/fuzz and runs each for a bounded time, starting from the committed
# seed corpus (copied, so the tree stays clean). Fails on the first finding; prints the
# executions per target and writes them to build/fuzz/summary.txt.
#
#   make test   runs it with FUZZ_TEST_SECONDS (default 10) per target
#   make fuzz   runs it with FUZZ_SECONDS (default 300) per target
#
# Every target the configure step announces ("npa: fuzz targets: ..." from fuzz/CMakeLists.txt)
# must have been built: a target that is announced but missing, or one asked for by name
# that does not exist, is an error, never skipped. The DPDK and Linux targets are
# announced only when those adapters configure (their packages are installed).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
build=build/fuzz
cxx=${NPA_FUZZ_CXX:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz.sh: $cxx not found (apt-get install clang libclang-rt-14-dev)"; exit 1
fi
configure_log=$(cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNPA_BUILD_FUZZ=ON -DNPA_BUILD_TESTS=OFF -DNPA_BUILD_BENCHMARKS=OFF -DNPA_INSTALL=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer")
expected=$(sed -n 's/^-- npa: fuzz targets: //p' <<<"$configure_log" | tr ';' ' ')
if [ -z "$expected" ]; then
  echo "fuzz.sh: the configure step announced no fuzz targets (is $cxx clang?)"; exit 1
fi
nice -n 10 cmake --build "$build" --parallel "${JOBS:-2}" --target npa_fuzz_targets
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  read -r -a targets <<<"$expected"
fi
for t in "${targets[@]}"; do
  if [ ! -x "$build/bin/fuzz/$t" ]; then
    echo "fuzz.sh: fuzz target $t was not built (expected: $expected)"; exit 1
  fi
done
work="$build/work"
mkdir -p "$work"
: > "$build/summary.txt"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus" "$work/artifacts/$t"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$work/$t.log"
  # Run from the work directory: relative file names in fuzzed flags resolve there.
  if ! (cd "$work" && "../bin/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 \
          -artifact_prefix="artifacts/$t/" -timeout=10 -rss_limit_mb=2048 "corpus/$t") >"$log" 2>&1; then
    echo "fuzz.sh: $t FOUND A PROBLEM; log $log, reproducer in $work/artifacts/$t/"
    grep -E "ERROR|invariant|runtime error|SUMMARY" "$log" | head -5
    exit 1
  fi
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  total=$((total + n))
  printf '%-24s %10s executions in %s s, 0 findings\n' "$t" "$n" "$secs" | tee -a "$build/summary.txt"
done
echo "fuzz.sh: ${#targets[@]} targets, $total executions, 0 findings" | tee -a "$build/summary.txt"
