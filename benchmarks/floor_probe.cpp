// benchmarks/floor_probe.cpp: the machine's cross-core floor right now: one bare cache line
// bounced between a thread on core 0 and one on core 1, the mean round trip in ns.
//
// On the two-core reference VM that floor flips between about 160 and 600 ns within
// minutes, and every cross-core rate moves with it (ring_stream.cpp probes it before each
// trial for the same reason). Benchmarks that run whole processes on the two cores
// (adapters/linux/tools/vswitchd/bench_vswitchd.py) run this before and after each round
// and compare rounds only within one class.
//
//     npa_floor_probe [--round-trips N] [--repeats R]
//
// prints `floor_ns <median of R means of N round trips> class <near|far>`. A probe, not a
// test: it never fails on a number.
#include "bench_common.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
    std::uint64_t round_trips = 256;
    int repeats = 9;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc) {
            round_trips = std::strtoull(argv[++i], nullptr, 10);
        } else if (std::strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--round-trips N] [--repeats R]\n", argv[0]);
            return 2;
        }
    }
    if (round_trips == 0 || repeats <= 0) {
        std::fprintf(stderr, "npa_floor_probe: --round-trips and --repeats must be positive\n");
        return 2;
    }
    (void)npa_bench::allowed_cpus(); // read before any thread is pinned
    const double median = npa_bench::cache_line_round_trip_ns(round_trips, repeats);
    std::printf("floor_ns %.1f class %s\n", median, median < npa_bench::floor_split_ns ? "near" : "far");
    return 0;
}
