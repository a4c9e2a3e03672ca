// benchmarks/gbench_main.hpp: the main of a Google Benchmark data-path suite: the allowed
// CPUs are read before any thread is pinned, then the suite runs as usual.
#pragma once

#include "bench_common.hpp"

#include <benchmark/benchmark.h>

namespace npa_bench {

inline int run_benchmarks(int argc, char** argv) {
    (void)allowed_cpus();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

} // namespace npa_bench
