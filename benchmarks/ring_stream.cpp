// benchmarks/ring_stream.cpp: cross-core streaming with the regime controlled and labelled
// (the suite's `stream` cases; benchmarks/plain_stream.cpp is the plain reference it agrees
// with, docs/benchmarks.md says how).
//
// A trial moves `--elems` elements from a producer pinned to core 0 to a consumer pinned
// to core 1 and is timed like the plain harness: the clock starts when both threads go and
// stops when the consumer holds the last element (wall ns per element, whole transfer).
// Around that:
//
//   floor probe  just before the transfer, the same two threads bounce one bare cache line
//                `probe_round_trips` times; the mean round trip classifies the trial as
//                `near` (below floor_split_ns) or `far`. On the reference VM this floor
//                flips between about 160 and 600 ns within minutes, and every cross-core
//                number moves with it, so trials are compared only within a class.
//   start regime `pace`: the ring starts empty and the consumer polls from the start (it
//                keeps pace, every handover crosses the fabric on its own); `lag`: the
//                producer fills the ring before the consumer starts (it lags, and reads
//                lines written long before). Streaming is bistable and stays in the state
//                it starts in most of the time; each trial also records what it observed
//                (how often the producer found the ring full, the consumer found it empty).
//   CPU time     both threads read their on-CPU nanoseconds (benchmarks/cpu_time.hpp)
//                around probe + transfer. A trial in which either thread was on a CPU less
//                than `undisturbed_share` of the wall time was descheduled: it is kept in
//                the JSON but left out of the medians the goals are judged on.
//
// Within a (size, burst, regime) cell the implementations are interleaved trial by trial,
// until each has `--keep` undisturbed trials or `--max-trials` attempts. One JSON object per
// trial goes to `--json`; benchmarks/report.py aggregates. Nothing passes or fails on time.
#include "bench_common.hpp"
#include "cpu_time.hpp"
#include "ring_impls.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace npa_bench {
namespace {

// ---- tuning constants --------------------------------------------------------------
constexpr std::array<std::uint32_t, 4> bursts = {1, 8, 32, 256};
// Round trips per floor probe: a few hundred microseconds at the slow floor, enough for a
// mean that a single slow round trip cannot move much.
constexpr std::uint32_t probe_round_trips = 256;
// On-CPU share below which a thread was descheduled during the trial.
constexpr double undisturbed_share = 0.9;

struct settings {
    std::uint64_t elems = 1u << 14; // 16 laps of the ring, 0.1-1 ms: short enough that
                                    // trials the scheduler left alone exist on a busy machine
    int keep = 5;
    int max_trials = 60;
    std::string filter; // substring of "<impl>/<bytes>/<burst>/<regime>"
    std::FILE* json = nullptr;
};

struct trial {
    double floor_ns = 0;
    double ns_per_elem = 0;     // wall, whole transfer
    double prod_cpu_ns = 0;     // producer CPU ns per element (probe excluded)
    double cons_cpu_ns = 0;     // consumer CPU ns per element (probe excluded)
    double prod_share = 0;      // producer on-CPU share of the trial's wall time
    double cons_share = 0;
    double prod_full = 0;       // share of enqueue calls that found the ring full
    double cons_empty = 0;      // share of dequeue calls that found it empty
};

struct alignas(64) line {
    std::atomic<std::uint64_t> v{0};
};

template <class Impl, std::uint32_t Burst>
trial run_trial(bool lag, std::uint64_t elems) {
    using value_type = typename Impl::value_type;
    using clk = std::chrono::steady_clock;
    auto q = std::make_unique<Impl>();
    auto ping = std::make_unique<line>();
    auto pong = std::make_unique<line>();
    std::atomic<int> state{0}; // 1 consumer ready, 2 probe, 3 stream
    trial t;
    // What the consumer hands back, written once at its end. Everything either thread
    // touches in its loop lives in its own registers or stack frame: a counter the
    // consumer bumped in the producer's frame would put a third cache line in play.
    struct alignas(64) consumer_result {
        clk::time_point t_end{};
        std::uint64_t calls = 0, empty = 0, cpu = 0, cpu_all = 0;
    } cr;
    Impl* const ring = q.get();
    std::array<value_type, Burst> src{};
    for (std::uint32_t i = 0; i < Burst; ++i) {
        src[i] = Impl::make(i);
    }

    std::thread consumer([&state, &cr, ring, p_ping = ping.get(), p_pong = pong.get(), elems] {
        pin_to_core(consumer_core);
        const thread_cpu_clock cpu;
        std::array<value_type, Burst> buf{};
        std::uint64_t calls = 0, empty = 0;
        state.store(1, std::memory_order_release);
        while (state.load(std::memory_order_acquire) != 2) {
            cpu_relax();
        }
        const std::uint64_t c0 = cpu.now_ns();
        for (std::uint64_t i = 1; i <= probe_round_trips; ++i) { // echo
            while (p_ping->v.load(std::memory_order_acquire) != i) {
            }
            p_pong->v.store(i, std::memory_order_release);
        }
        while (state.load(std::memory_order_acquire) != 3) {
            cpu_relax();
        }
        const std::uint64_t c1 = cpu.now_ns();
        std::uint64_t got = 0;
        while (got < elems) {
            const std::uint32_t k = ring->dequeue(buf.data(), Burst);
            escape(buf.data());
            ++calls;
            if (k == 0) {
                ++empty;
                cpu_relax();
            }
            got += k;
        }
        const clk::time_point t_end = clk::now();
        const std::uint64_t c2 = cpu.now_ns();
        cr.t_end = t_end;
        cr.calls = calls;
        cr.empty = empty;
        cr.cpu = c2 - c1;
        cr.cpu_all = c2 - c0;
    });

    while (state.load(std::memory_order_acquire) != 1) {
        cpu_relax();
    }
    const thread_cpu_clock cpu;
    // 1. floor probe
    const std::uint64_t c0 = cpu.now_ns();
    const clk::time_point w0 = clk::now();
    state.store(2, std::memory_order_release);
    for (std::uint64_t i = 1; i <= probe_round_trips; ++i) {
        ping->v.store(i, std::memory_order_release);
        while (pong->v.load(std::memory_order_acquire) != i) {
        }
    }
    const clk::time_point w1 = clk::now();
    t.floor_ns = std::chrono::duration<double, std::nano>(w1 - w0).count() / probe_round_trips;
    // 2. the regime's start state
    std::uint64_t sent = 0;
    if (lag) {
        while (ring->enqueue(src.data(), 1) == 1) {
            ++sent;
        }
    }
    // 3. the transfer
    std::uint64_t prod_calls = 0, prod_full = 0;
    const std::uint64_t c1 = cpu.now_ns();
    const clk::time_point t0 = clk::now();
    state.store(3, std::memory_order_release);
    while (sent < elems) {
        std::uint32_t off = 0;
        while (off < Burst) {
            const std::uint32_t k = ring->enqueue(src.data() + off, Burst - off);
            ++prod_calls;
            if (k != Burst - off) {
                ++prod_full;
            }
            if (k == 0) {
                cpu_relax();
            }
            off += k;
        }
        sent += Burst;
    }
    if constexpr (requires { ring->flush(); }) {
        ring->flush(); // a batched producer publishes its last elements
    }
    const clk::time_point t_prod = clk::now();
    const std::uint64_t c2 = cpu.now_ns();
    consumer.join();

    const clk::time_point t_end = cr.t_end;
    const std::uint64_t cons_calls = cr.calls, cons_empty = cr.empty;
    const std::uint64_t cons_cpu = cr.cpu, cons_cpu_all = cr.cpu_all;
    const double wall = std::chrono::duration<double, std::nano>(t_end - t0).count();
    const auto n = static_cast<double>(elems);
    t.ns_per_elem = wall / n;
    t.prod_cpu_ns = static_cast<double>(c2 - c1) / n;
    t.cons_cpu_ns = static_cast<double>(cons_cpu) / n;
    t.prod_share = static_cast<double>(c2 - c0) /
                   std::chrono::duration<double, std::nano>(t_prod - w0).count();
    t.cons_share = static_cast<double>(cons_cpu_all) /
                   std::chrono::duration<double, std::nano>(t_end - w0).count();
    t.prod_full = prod_calls ? static_cast<double>(prod_full) / static_cast<double>(prod_calls) : 0;
    t.cons_empty = cons_calls ? static_cast<double>(cons_empty) / static_cast<double>(cons_calls) : 0;
    return t;
}

void emit(const settings& s, const char* impl, unsigned bytes, std::uint32_t burst, bool lag,
          int attempt, const trial& t) {
    const bool undisturbed =
        t.prod_share >= undisturbed_share && t.cons_share >= undisturbed_share;
    const char* observed = t.prod_full > t.cons_empty ? "lag" : "pace";
    if (s.json != nullptr) {
        std::fprintf(s.json,
                     "{\"impl\": \"%s\", \"bytes\": %u, \"burst\": %u, \"regime\": \"%s\", "
                     "\"attempt\": %d, \"floor_ns\": %.1f, \"floor\": \"%s\", "
                     "\"ns_per_elem\": %.4f, \"prod_cpu_ns_per_elem\": %.4f, "
                     "\"cons_cpu_ns_per_elem\": %.4f, \"prod_cpu_share\": %.3f, "
                     "\"cons_cpu_share\": %.3f, \"undisturbed\": %s, \"prod_full\": %.4f, "
                     "\"cons_empty\": %.4f, \"observed\": \"%s\", \"load1\": %.2f}\n",
                     impl, bytes, burst, lag ? "lag" : "pace", attempt, t.floor_ns,
                     t.floor_ns < floor_split_ns ? "near" : "far", t.ns_per_elem, t.prod_cpu_ns,
                     t.cons_cpu_ns, t.prod_share, t.cons_share, undisturbed ? "true" : "false",
                     t.prod_full, t.cons_empty, observed, load_average_1min());
    }
}

/// One cell: every implementation of (Bytes, Burst, regime), interleaved trial by trial.
template <unsigned Bytes, std::uint32_t Burst>
void run_cell(const settings& s, bool lag) {
    struct slot {
        const char* name = nullptr;
        trial (*fn)(bool, std::uint64_t) = nullptr;
        int kept = 0;
        std::vector<double> ns{};
    };
    std::vector<slot> impls;
    for_each_stream_impl<Bytes>([&]<class Impl>() {
        const std::string id = std::string(Impl::name) + "/" + std::to_string(Bytes) + "/" +
                               std::to_string(Burst) + "/" + (lag ? "lag" : "pace");
        if (s.filter.empty() || id.find(s.filter) != std::string::npos) {
            slot sl;
            sl.name = Impl::name;
            sl.fn = &run_trial<Impl, Burst>;
            impls.push_back(std::move(sl));
        }
    });
    if (impls.empty()) {
        return;
    }
    for (int attempt = 0; attempt < s.max_trials; ++attempt) {
        bool more = false;
        // Rotate the order each round so no ring always runs right after the same one.
        for (std::size_t j = 0; j < impls.size(); ++j) {
            slot& im = impls[(j + static_cast<std::size_t>(attempt)) % impls.size()];
            if (im.kept >= s.keep) {
                continue;
            }
            const trial t = im.fn(lag, s.elems);
            emit(s, im.name, Bytes, Burst, lag, attempt, t);
            if (t.prod_share >= undisturbed_share && t.cons_share >= undisturbed_share) {
                ++im.kept;
                im.ns.push_back(t.ns_per_elem);
            }
            more = more || im.kept < s.keep;
        }
        if (!more) {
            break;
        }
    }
    std::printf("%2u bytes, burst %3u, %-4s:", Bytes, Burst, lag ? "lag" : "pace");
    for (auto& im : impls) {
        if (im.ns.empty()) {
            std::printf("  %s -", im.name);
            continue;
        }
        std::nth_element(im.ns.begin(), im.ns.begin() + static_cast<std::ptrdiff_t>(im.ns.size() / 2),
                         im.ns.end());
        std::printf("  %s %.2f", im.name, im.ns[im.ns.size() / 2]);
    }
    std::printf("  (ns/elem, median of undisturbed trials)\n");
    std::fflush(stdout);
}

template <unsigned Bytes, std::size_t... I>
void run_bursts(const settings& s, std::index_sequence<I...>) {
    ((run_cell<Bytes, bursts[I]>(s, false), run_cell<Bytes, bursts[I]>(s, true)), ...);
}

} // namespace
} // namespace npa_bench

int main(int argc, char** argv) {
    using namespace npa_bench;
    (void)allowed_cpus(); // before any thread pins itself
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--elems" && has_value) {
            s.elems = std::strtoull(argv[++i], nullptr, 10);
        } else if (a == "--keep" && has_value) {
            s.keep = std::atoi(argv[++i]);
        } else if (a == "--max-trials" && has_value) {
            s.max_trials = std::atoi(argv[++i]);
        } else if (a == "--filter" && has_value) {
            s.filter = argv[++i];
        } else if (a == "--json" && has_value) {
            s.json = std::fopen(argv[++i], "w");
            if (s.json == nullptr) {
                std::perror(argv[i]);
                return 1;
            }
        } else {
            std::fprintf(stderr,
                         "usage: %s [--elems N] [--keep N] [--max-trials N] [--filter SUBSTR] "
                         "[--json FILE]\n",
                         argv[0]);
            return 2;
        }
    }
    if (s.elems < 2 * ring_slots || s.keep < 1 || s.max_trials < s.keep) {
        std::fprintf(stderr, "ring_stream: need --elems >= %u and 1 <= --keep <= --max-trials\n",
                     2 * ring_slots);
        return 2;
    }
    pin_to_core(producer_core);
    run_bursts<8>(s, std::make_index_sequence<bursts.size()>{});
    run_bursts<16>(s, std::make_index_sequence<bursts.size()>{});
    if (s.json != nullptr) {
        std::fclose(s.json);
    }
    return 0;
}
