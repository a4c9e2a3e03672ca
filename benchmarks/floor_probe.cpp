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

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

struct alignas(64) line {
    std::atomic<std::uint64_t> v{0};
};

} // namespace

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
    std::array<line, 2> lines;        // ping, pong: one line each
    std::vector<double> means;
    std::thread echo([&] {
        (void)npa_bench::pin_to_core(npa_bench::consumer_core);
        for (std::uint64_t want = 1;; ++want) {
            std::uint64_t got;
            while ((got = lines[0].v.load(std::memory_order_acquire)) < want) {
            }
            if (got == ~0ull) {
                return;
            }
            lines[1].v.store(got, std::memory_order_release);
            want = got;
        }
    });
    (void)npa_bench::pin_to_core(npa_bench::producer_core);
    std::uint64_t seq = 0;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < round_trips; ++i) {
            lines[0].v.store(++seq, std::memory_order_release);
            while (lines[1].v.load(std::memory_order_acquire) != seq) {
            }
        }
        const auto t1 = std::chrono::steady_clock::now();
        means.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(round_trips));
    }
    lines[0].v.store(~0ull, std::memory_order_release);
    echo.join();
    std::sort(means.begin(), means.end());
    const double median = means[means.size() / 2];
    std::printf("floor_ns %.1f class %s\n", median, median < npa_bench::floor_split_ns ? "near" : "far");
    return 0;
}
