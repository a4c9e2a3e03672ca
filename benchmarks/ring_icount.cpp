// benchmarks/ring_icount.cpp: instructions per element of the single-thread cases, counted
// by callgrind ("instruction counts ... stable where time is not").
//
// Run it under `valgrind --tool=callgrind`: for every <impl>/<elem bytes>/<burst> the
// program zeroes callgrind's counters (CALLGRIND_ZERO_STATS), runs a fixed number of
// enqueue+dequeue rounds and dumps the counters under the case's name
// (CALLGRIND_DUMP_STATS_AT). benchmarks/run.sh turns the dumps into counts per element
// and benchmarks/report.py tabulates them. Outside valgrind the
// client requests are no-ops and the program just runs the loops once.
//
// The counted region includes the loop around the ring calls (about 3 instructions per
// round, the same for every implementation); nothing else.
//
// single-rt/<impl>/<bytes>/<burst> is the same loop with the burst size read from a
// volatile, so the compiler cannot specialise the ring's copy for it: what a driver whose
// burst size comes from its configuration pays.
#include "bench_common.hpp"
#include "ring_impls.hpp"

#include <valgrind/callgrind.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

namespace npa_bench {
namespace {

// ---- tuning constants --------------------------------------------------------------
// Elements per single/* case: enough that the per-round constant and the first-touch
// misses vanish in the average, small enough that 48 cases run in seconds under callgrind.
constexpr std::uint32_t elems_per_case = 1u << 15;
// Calls per empty/* case.
constexpr std::uint32_t empty_calls = 1u << 13;
// Untimed rounds first, so the counted ones see a warm ring (as a running driver does).
constexpr std::uint32_t warm_rounds = 64;

template <class T>
inline void keep(T const& v) noexcept {
    asm volatile("" : : "r,m"(v) : "memory");
}

template <class Impl, std::uint32_t Burst>
void count_single() {
    using value_type = typename Impl::value_type;
    auto q = std::make_unique<Impl>();
    std::array<value_type, Burst> src{};
    std::array<value_type, Burst> dst{};
    for (std::uint32_t i = 0; i < Burst; ++i) {
        src[i] = Impl::make(i);
    }
    for (std::uint32_t r = 0; r < warm_rounds; ++r) {
        keep(q->enqueue(src.data(), Burst));
        keep(q->dequeue(dst.data(), Burst));
    }
    const std::string name = std::string("single/") + Impl::name + "/" +
                             std::to_string(sizeof(value_type)) + "/" + std::to_string(Burst);
    CALLGRIND_ZERO_STATS;
    for (std::uint32_t r = 0; r < elems_per_case / Burst; ++r) {
        escape(src.data());
        keep(q->enqueue(src.data(), Burst));
        keep(q->dequeue(dst.data(), Burst));
        escape(dst.data());
    }
    CALLGRIND_DUMP_STATS_AT(name.c_str());
    std::printf("%s %u\n", name.c_str(), elems_per_case);
}

/// A burst size the compiler cannot see through.
volatile std::uint32_t opaque_burst = 1;

template <class Impl>
void count_single_rt(std::uint32_t burst_value) {
    using value_type = typename Impl::value_type;
    auto q = std::make_unique<Impl>();
    std::array<value_type, 256> src{};
    std::array<value_type, 256> dst{};
    for (std::uint32_t i = 0; i < src.size(); ++i) {
        src[i] = Impl::make(i);
    }
    opaque_burst = burst_value;
    const std::uint32_t burst = opaque_burst;
    for (std::uint32_t r = 0; r < warm_rounds; ++r) {
        keep(q->enqueue(src.data(), burst));
        keep(q->dequeue(dst.data(), burst));
    }
    const std::string name = std::string("single-rt/") + Impl::name + "/" +
                             std::to_string(sizeof(value_type)) + "/" + std::to_string(burst);
    CALLGRIND_ZERO_STATS;
    for (std::uint32_t r = 0; r < elems_per_case / burst; ++r) {
        escape(src.data());
        keep(q->enqueue(src.data(), burst));
        keep(q->dequeue(dst.data(), burst));
        escape(dst.data());
    }
    CALLGRIND_DUMP_STATS_AT(name.c_str());
    std::printf("%s %u\n", name.c_str(), elems_per_case);
}

template <class Impl, std::uint32_t Burst>
void count_empty() {
    using value_type = typename Impl::value_type;
    auto q = std::make_unique<Impl>();
    std::array<value_type, Burst> dst{};
    for (std::uint32_t r = 0; r < warm_rounds; ++r) {
        keep(q->dequeue(dst.data(), Burst));
    }
    const std::string name = std::string("empty/") + Impl::name + "/" +
                             std::to_string(sizeof(value_type)) + "/" + std::to_string(Burst);
    CALLGRIND_ZERO_STATS;
    for (std::uint32_t r = 0; r < empty_calls; ++r) {
        keep(q->dequeue(dst.data(), Burst));
    }
    CALLGRIND_DUMP_STATS_AT(name.c_str());
    std::printf("%s %u\n", name.c_str(), empty_calls);
}

template <unsigned Bytes>
void count_all() {
    for_each_impl<Bytes>([]<class Impl>() {
        count_single<Impl, 1>();
        count_single<Impl, 8>();
        count_single<Impl, 32>();
        count_single<Impl, 256>();
        for (const std::uint32_t b : {1u, 8u, 32u, 256u}) {
            count_single_rt<Impl>(b);
        }
        count_empty<Impl, 32>();
    });
}

} // namespace
} // namespace npa_bench

int main() {
    npa_bench::count_all<8>();
    npa_bench::count_all<16>();
    return 0;
}
