// benchmarks/ring_onesided.cpp: each side of a ring alone, across cores.
//
// Streaming (ring_stream.cpp) measures producer and consumer at work together, and there a
// ring's time per element is set as much by how the two sides disturb each other (which one
// waits, who polls whose line) as by the work each does. This separates the two: in each
// round the producer on core 0 fills the ring while the consumer waits, then the consumer on
// core 1 drains it while the producer waits, each timed alone. Because the roles alternate,
// every line a side touches was last touched by the other core, as in streaming:
//
//   fill   ns per element for the producer to write `burst` at a time into slots the other
//          core read last (each line must be taken back from it);
//   drain  ns per element for the consumer to read, `burst` at a time, slots the other core
//          has just written (each line comes from the other core's cache).
//
// A ring whose sides are each faster alone but that streams slower loses in the interaction,
// not in its own work (docs/benchmarks.md, "Where a streaming producer waits").
//
// Each ring moves capacity - burst elements per round (rte_ring and Boost hold one slot
// fewer than npa), `rounds` rounds after `warm_rounds` untimed ones; a cell prints the median
// round. The implementations of a cell take turns round by round, `--reps` sweeps; the table
// shows the median over sweeps. A cache-line round trip between the cores is probed before
// every sweep (bench_common.hpp's floor classes). Markdown on stdout; nothing passes or fails.
#include "bench_common.hpp"
#include "ring_impls.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace npa_bench {
namespace {

// ---- tuning constants --------------------------------------------------------------
constexpr std::array<std::uint32_t, 4> bursts = {1, 8, 32, 256};
constexpr int rounds = 300;      // timed rounds per implementation, cell and sweep
constexpr int warm_rounds = 20;  // untimed first rounds (page faults, first transfers)
constexpr std::uint32_t probe_round_trips = 256;

using clk = std::chrono::steady_clock;

double median(std::vector<double> v) {
    if (v.empty()) {
        return 0;
    }
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

struct sides {
    double fill = 0, drain = 0; // ns per element, median round
};

/// One implementation, one cell: `rounds` fills on the producer's core alternating with
/// drains on the consumer's.
template <class Impl, std::uint32_t Burst>
sides run_cell() {
    using value_type = typename Impl::value_type;
    constexpr std::uint32_t total = ring_slots - Burst;
    auto q = std::make_unique<Impl>();
    Impl* const ring = q.get();
    std::atomic<int> turn{0}; // 2r: the producer fills round r; 2r + 1: the consumer drains it
    std::vector<double> fill, drain;
    fill.reserve(rounds + warm_rounds);
    drain.reserve(rounds + warm_rounds);
    std::array<value_type, Burst> src{};
    for (std::uint32_t i = 0; i < Burst; ++i) {
        src[i] = Impl::make(i);
    }
    std::thread consumer([&turn, &drain, ring] {
        pin_to_core(consumer_core);
        std::array<value_type, Burst> buf{};
        for (int r = 0; r < rounds + warm_rounds; ++r) {
            while (turn.load(std::memory_order_acquire) != 2 * r + 1) {
                cpu_relax();
            }
            const clk::time_point t0 = clk::now();
            std::uint32_t got = 0;
            while (got < total) {
                got += ring->dequeue(buf.data(), Burst);
                escape(buf.data());
            }
            drain.push_back(std::chrono::duration<double, std::nano>(clk::now() - t0).count() / total);
            turn.store(2 * r + 2, std::memory_order_release);
        }
    });
    for (int r = 0; r < rounds + warm_rounds; ++r) {
        while (turn.load(std::memory_order_acquire) != 2 * r) {
            cpu_relax();
        }
        const clk::time_point t0 = clk::now();
        std::uint32_t put = 0;
        while (put < total) {
            put += ring->enqueue(src.data(), std::min(Burst, total - put));
        }
        fill.push_back(std::chrono::duration<double, std::nano>(clk::now() - t0).count() / total);
        turn.store(2 * r + 1, std::memory_order_release);
    }
    consumer.join();
    fill.erase(fill.begin(), fill.begin() + warm_rounds);
    drain.erase(drain.begin(), drain.begin() + warm_rounds);
    return {median(std::move(fill)), median(std::move(drain))};
}

struct cell_result {
    unsigned bytes = 0;
    std::uint32_t burst = 0;
    std::vector<std::string> names;
    std::vector<std::vector<sides>> per_impl; // [impl][sweep]
};

template <unsigned Bytes, std::uint32_t Burst>
void sweep_cell(std::vector<cell_result>& cells, std::size_t& at) {
    if (cells.size() <= at) {
        cells.push_back({Bytes, Burst, {}, {}});
    }
    cell_result& c = cells[at++];
    std::size_t i = 0;
    for_each_impl<Bytes>([&]<class Impl>() {
        if (c.names.size() <= i) {
            c.names.emplace_back(Impl::name);
            c.per_impl.emplace_back();
        }
        c.per_impl[i++].push_back(run_cell<Impl, Burst>());
    });
}

template <unsigned Bytes, std::size_t... I>
void sweep_bytes(std::vector<cell_result>& cells, std::size_t& at, std::index_sequence<I...>) {
    (sweep_cell<Bytes, bursts[I]>(cells, at), ...);
}

} // namespace
} // namespace npa_bench

int main(int argc, char** argv) {
    using namespace npa_bench;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--reps" && i + 1 < argc) {
            reps = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--reps N]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) {
        std::fprintf(stderr, "ring_onesided: --reps must be at least 1\n");
        return 2;
    }
    (void)allowed_cpus(); // before any thread pins itself
    pin_to_core(producer_core);
    std::vector<cell_result> cells;
    std::vector<double> floors;
    for (int r = 0; r < reps; ++r) {
        floors.push_back(cache_line_round_trip_ns(probe_round_trips, 1));
        std::size_t at = 0;
        sweep_bytes<8>(cells, at, std::make_index_sequence<bursts.size()>{});
        sweep_bytes<16>(cells, at, std::make_index_sequence<bursts.size()>{});
    }
    std::sort(floors.begin(), floors.end());
    std::printf("Each side alone, the lines last touched by the other core: ns per element, fill / "
                "drain, median of %d sweeps of %d rounds; the last two columns are npa_index's fill; "
                "drain over the other ring's. Cache-line round trip before each sweep: %.0f to "
                "%.0f ns (%s floor).\n\n",
                reps, rounds, floors.front(), floors.back(),
                floors.back() < floor_split_ns ? "near"
                : floors.front() >= floor_split_ns ? "far" : "mixed");
    if (cells.empty()) {
        return 0;
    }
    std::printf("| bytes | burst |");
    for (const std::string& n : cells.front().names) {
        std::printf(" %s |", n.c_str());
    }
    std::printf(" npa_index / rte_ring | npa_index / boost_spsc |\n|---|---|");
    for (std::size_t i = 0; i < cells.front().names.size() + 2; ++i) {
        std::printf("---|");
    }
    std::printf("\n");
    for (const cell_result& c : cells) {
        std::vector<sides> med;
        for (const auto& runs : c.per_impl) {
            std::vector<double> f, d;
            for (const sides& s : runs) {
                f.push_back(s.fill);
                d.push_back(s.drain);
            }
            med.push_back({median(f), median(d)});
        }
        auto find = [&](const char* name) -> const sides* {
            for (std::size_t i = 0; i < c.names.size(); ++i) {
                if (c.names[i] == name) {
                    return &med[i];
                }
            }
            return nullptr;
        };
        std::printf("| %u | %u |", c.bytes, c.burst);
        for (const sides& s : med) {
            std::printf(" %.2f / %.2f |", s.fill, s.drain);
        }
        const sides* npa = find("npa_index");
        for (const char* base : {"rte_ring", "boost_spsc"}) {
            const sides* b = find(base);
            if (npa != nullptr && b != nullptr && b->fill > 0 && b->drain > 0) {
                std::printf(" %.2f; %.2f |", npa->fill / b->fill, npa->drain / b->drain);
            } else {
                std::printf(" - |");
            }
        }
        std::printf("\n");
    }
    return 0;
}
