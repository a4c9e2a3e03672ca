// benchmarks/ring_bench.cpp: npa's rings against the SPSC rings a user would otherwise
// pick, in one run, on one machine (DPDK app/test/test_ring_perf.c is the model).
//
// Names read <case>/<impl>/<elem bytes>/<burst>:
//   pingpong  a burst goes to core 1 through one ring and comes back through another;
//             time per element of the round trip
//   single    one thread: enqueue a burst, dequeue it; the ring's own instruction cost
//   empty     one thread: dequeue from an empty ring (what a poll loop pays when idle);
//             items are calls, not elements
// plus pingpong/cacheline/8/1: a bare cache-line round trip between the two cores, the
// physical floor of any cross-core handover on this machine.
// Cross-core streaming is benchmarks/ring_stream.cpp (a floor probe before every trial,
// the consumer-keeps-pace and consumer-lags regimes apart).
//
// Beside the windowed wall-clock figure every benchmark reports the whole run's CPU time
// of the thread doing the work (the benchmark's thread; benchmarks/cpu_time.hpp) per
// element, `cpu_ns_per_elem`, and its wall time per element, `wall_ns_per_elem`.
//
// Implementations are registered next to each other for every (case, size, burst), so a
// repetition measures them seconds apart; benchmarks/run.sh repeats the whole suite and
// reports medians. Nothing here passes or fails on time.
#include "bench_common.hpp"
#include "cpu_time.hpp"
#include "ring_impls.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
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
// The bursts measured: 1 (a latency-bound handover), 8 (a cache line of
// handles), 32 (the usual rte_eth_rx_burst size), 256 (a quarter of the ring).
constexpr std::array<std::uint32_t, 4> bursts = {1, 8, 32, 256};
// Elements moved by the start-up self-check of each implementation (FIFO order and no
// loss across cores): enough to wrap every ring many times, a few ms in all.
constexpr std::uint64_t check_elems = 1u << 18;
// Each benchmark iteration is a window of this many elements (empty: calls), timed on its
// own. A window in which the scheduler took a core away from either thread (another
// process on a shared 2-core machine) measures the scheduler, not the ring, and on a busy
// machine that is most windows; so the run reports a low quantile of its windows
// (ns_per_elem, the window_quantile-th) and their median (ns_per_elem_p50). Windows last
// tens of microseconds, well under a scheduler tick, so undisturbed windows exist even
// when the machine is busy; on a quiet machine the two values nearly agree.
constexpr double window_quantile = 0.10;
// Windows per benchmark and repetition (--windows=N overrides): a fixed count rather than
// Google Benchmark's min_time, so that one slow first window (a thread that starts on a
// busy core) cannot end a benchmark with a single sample.
std::int64_t windows_per_run = 200;
constexpr std::uint32_t pingpong_window = 1024;
constexpr std::uint32_t single_window = 4096;
constexpr std::uint32_t empty_window = 4096;

/// Median-of-windows recorder (samples are kept outside the timed region).
class window_timer {
public:
    window_timer() {
        samples_.reserve(1u << 16);
        cpu0_ = cpu_.now_ns();
        wall0_ = std::chrono::steady_clock::now();
    }
    void start() noexcept { t0_ = std::chrono::steady_clock::now(); }
    void stop(std::uint32_t items) {
        const auto t1 = std::chrono::steady_clock::now();
        samples_.push_back(std::chrono::duration<double, std::nano>(t1 - t0_).count() / items);
    }
    void report(benchmark::State& st, std::uint64_t items) {
        const double cpu = static_cast<double>(cpu_.now_ns() - cpu0_);
        const double wall =
            std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - wall0_)
                .count();
        st.SetItemsProcessed(static_cast<std::int64_t>(items));
        if (items != 0) {
            st.counters["cpu_ns_per_elem"] = cpu / static_cast<double>(items);
            st.counters["wall_ns_per_elem"] = wall / static_cast<double>(items);
        }
        if (samples_.empty()) {
            return;
        }
        auto at = [this](double q) {
            auto it = samples_.begin() +
                      static_cast<std::ptrdiff_t>(q * static_cast<double>(samples_.size() - 1));
            std::nth_element(samples_.begin(), it, samples_.end());
            return *it;
        };
        st.counters["ns_per_elem"] = at(window_quantile);
        st.counters["ns_per_elem_p50"] = at(0.5);
        st.counters["windows"] = static_cast<double>(samples_.size());
    }

private:
    thread_cpu_clock cpu_;
    std::uint64_t cpu0_ = 0;
    std::chrono::steady_clock::time_point wall0_{};
    std::chrono::steady_clock::time_point t0_{};
    std::vector<double> samples_;
};

template <class Impl>
std::unique_ptr<Impl> make_ring() {
    return std::make_unique<Impl>(); // over-aligned new (C++17) honours alignas
}

/// Pushes all n elements, spinning while the ring is full.
template <class Impl>
inline void push_all(Impl& q, const typename Impl::value_type* p, std::uint32_t n) noexcept {
    std::uint32_t off = 0;
    while (true) {
        off += q.enqueue(p + off, n - off);
        if (off == n) {
            return;
        }
        cpu_relax();
    }
}

/// Pops exactly n elements, spinning while the ring is empty.
template <class Impl>
inline void pop_all(Impl& q, typename Impl::value_type* p, std::uint32_t n) noexcept {
    std::uint32_t off = 0;
    while (true) {
        off += q.dequeue(p + off, n - off);
        if (off == n) {
            return;
        }
        cpu_relax();
    }
}

// ---- pingpong ----------------------------------------------------------------------

template <class Impl, std::uint32_t Burst>
void bm_pingpong(benchmark::State& st) {
    using value_type = typename Impl::value_type;
    pin_to_core(producer_core);
    auto there = make_ring<Impl>();
    auto back = make_ring<Impl>();
    std::atomic<bool> ready{false};
    std::atomic<bool> stop{false};

    std::thread echo([&] {
        pin_to_core(consumer_core);
        std::array<value_type, Burst> buf{};
        ready.store(true, std::memory_order_release);
        while (true) {
            const std::uint32_t k = there->dequeue(buf.data(), Burst);
            if (k != 0) {
                push_all(*back, buf.data(), k);
                continue;
            }
            if (stop.load(std::memory_order_acquire)) {
                return;
            }
            cpu_relax();
        }
    });
    while (!ready.load(std::memory_order_acquire)) {
        cpu_relax();
    }

    std::array<value_type, Burst> src{};
    std::array<value_type, Burst> dst{};
    for (std::uint32_t i = 0; i < Burst; ++i) {
        src[i] = Impl::make(i);
    }
    for (std::uint32_t r = 0; r < 16; ++r) { // untimed: the echo thread is running
        push_all(*there, src.data(), Burst);
        pop_all(*back, dst.data(), Burst);
    }
    constexpr std::uint32_t rounds = (pingpong_window + Burst - 1) / Burst;
    window_timer w;
    for (auto _ : st) {
        w.start();
        for (std::uint32_t r = 0; r < rounds; ++r) {
            push_all(*there, src.data(), Burst);
            pop_all(*back, dst.data(), Burst);
            escape(dst.data());
        }
        w.stop(rounds * Burst);
    }
    stop.store(true, std::memory_order_release);
    echo.join();
    w.report(st, static_cast<std::uint64_t>(st.iterations()) * rounds * Burst);
}

/// The floor: one cache line goes to the other core and one comes back, nothing else.
void bm_cacheline_pingpong(benchmark::State& st) {
    struct alignas(64) line {
        std::atomic<std::uint64_t> v{0};
    };
    pin_to_core(producer_core);
    auto ping = std::make_unique<line>();
    auto pong = std::make_unique<line>();
    std::atomic<bool> ready{false};
    constexpr std::uint64_t quit = ~std::uint64_t{0};

    std::thread echo([&] {
        pin_to_core(consumer_core);
        ready.store(true, std::memory_order_release);
        std::uint64_t seen = 0;
        while (true) {
            const std::uint64_t v = ping->v.load(std::memory_order_acquire);
            if (v == seen) {
                cpu_relax();
                continue;
            }
            if (v == quit) {
                return;
            }
            seen = v;
            pong->v.store(v, std::memory_order_release);
        }
    });
    while (!ready.load(std::memory_order_acquire)) {
        cpu_relax();
    }
    std::uint64_t i = 0;
    for (std::uint32_t r = 0; r < 16; ++r) { // untimed: the echo thread is running
        ping->v.store(++i, std::memory_order_release);
        while (pong->v.load(std::memory_order_acquire) != i) {
            cpu_relax();
        }
    }
    window_timer w;
    for (auto _ : st) {
        w.start();
        for (std::uint32_t r = 0; r < pingpong_window; ++r) {
            ping->v.store(++i, std::memory_order_release);
            while (pong->v.load(std::memory_order_acquire) != i) {
                cpu_relax();
            }
        }
        w.stop(pingpong_window);
    }
    ping->v.store(quit, std::memory_order_release);
    echo.join();
    w.report(st, static_cast<std::uint64_t>(st.iterations()) * pingpong_window);
}

// ---- single and empty ----------------------------------------------------------------

template <class Impl, std::uint32_t Burst>
void bm_single(benchmark::State& st) {
    using value_type = typename Impl::value_type;
    pin_to_core(producer_core);
    auto q = make_ring<Impl>();
    std::array<value_type, Burst> src{};
    std::array<value_type, Burst> dst{};
    for (std::uint32_t i = 0; i < Burst; ++i) {
        src[i] = Impl::make(i);
    }
    constexpr std::uint32_t rounds = single_window / Burst;
    window_timer w;
    for (auto _ : st) {
        w.start();
        for (std::uint32_t r = 0; r < rounds; ++r) {
            escape(src.data());
            const std::uint32_t a = q->enqueue(src.data(), Burst);
            const std::uint32_t b = q->dequeue(dst.data(), Burst);
            benchmark::DoNotOptimize(a);
            benchmark::DoNotOptimize(b);
            escape(dst.data());
        }
        w.stop(rounds * Burst);
    }
    w.report(st, static_cast<std::uint64_t>(st.iterations()) * rounds * Burst);
}

template <class Impl, std::uint32_t Burst>
void bm_empty(benchmark::State& st) {
    using value_type = typename Impl::value_type;
    pin_to_core(producer_core);
    auto q = make_ring<Impl>();
    std::array<value_type, Burst> dst{};
    window_timer w;
    for (auto _ : st) {
        w.start();
        for (std::uint32_t r = 0; r < empty_window; ++r) {
            const std::uint32_t k = q->dequeue(dst.data(), Burst);
            benchmark::DoNotOptimize(k);
        }
        w.stop(empty_window);
    }
    w.report(st, static_cast<std::uint64_t>(st.iterations()) * empty_window);
}

// ---- self-check: every ring must be a correct FIFO before its numbers mean anything ----

template <class Impl>
bool self_check() {
    using value_type = typename Impl::value_type;
    auto q = make_ring<Impl>();
    bool ok = true;
    std::thread consumer([&] {
        pin_to_core(consumer_core);
        std::array<value_type, 7> buf{};
        std::uint64_t next = 0;
        while (next < check_elems) {
            const std::uint32_t k = q->dequeue(buf.data(), 7);
            for (std::uint32_t i = 0; i < k; ++i) {
                if (Impl::seq_of(buf[i]) != next++) {
                    ok = false;
                }
            }
        }
    });
    pin_to_core(producer_core);
    std::array<value_type, 13> src{};
    for (std::uint64_t s = 0; s < check_elems;) {
        const auto n = static_cast<std::uint32_t>(
            check_elems - s < src.size() ? check_elems - s : src.size());
        for (std::uint32_t i = 0; i < n; ++i) {
            src[i] = Impl::make(s + i);
        }
        push_all(*q, src.data(), n);
        s += n;
    }
    consumer.join();
    if (!ok) {
        std::fprintf(stderr, "self-check failed: %s is not a FIFO across threads\n", Impl::name);
    }
    return ok;
}

// ---- registration ----------------------------------------------------------------------

enum class bench_case { pingpong, single, empty };

template <bench_case C, class Impl, std::uint32_t Burst>
void run_case(benchmark::State& st) {
    if constexpr (C == bench_case::pingpong) {
        bm_pingpong<Impl, Burst>(st);
    } else if constexpr (C == bench_case::single) {
        bm_single<Impl, Burst>(st);
    } else {
        bm_empty<Impl, Burst>(st);
    }
}

template <bench_case C, unsigned Bytes, std::uint32_t Burst>
void register_case(const char* case_name) {
    for_each_impl<Bytes>([&]<class Impl>() {
        const std::string name = std::string(case_name) + "/" + Impl::name + "/" +
                                 std::to_string(Bytes) + "/" + std::to_string(Burst);
        benchmark::RegisterBenchmark(name.c_str(), run_case<C, Impl, Burst>)
            ->UseRealTime()
            ->Iterations(windows_per_run);
    });
}

template <bench_case C, unsigned Bytes, std::size_t... I>
void register_bursts(const char* case_name, std::index_sequence<I...>) {
    (register_case<C, Bytes, bursts[I]>(case_name), ...);
}

template <bench_case C>
void register_sweep(const char* case_name) {
    register_bursts<C, 8>(case_name, std::make_index_sequence<bursts.size()>{});
    register_bursts<C, 16>(case_name, std::make_index_sequence<bursts.size()>{});
}

} // namespace
} // namespace npa_bench

int main(int argc, char** argv) {
    using namespace npa_bench;
    (void)allowed_cpus(); // before any thread pins itself

    bool ok = true;
    for_each_impl<8>([&]<class Impl>() { ok = self_check<Impl>() && ok; });
    for_each_impl<16>([&]<class Impl>() { ok = self_check<Impl>() && ok; });
    if (!ok) {
        return 2;
    }

    benchmark::Initialize(&argc, argv);
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--windows=", 0) == 0) {
            windows_per_run = std::strtoll(a.c_str() + 10, nullptr, 10);
            if (windows_per_run < 1) {
                std::fprintf(stderr, "--windows=N: N must be at least 1\n");
                return 1;
            }
            argv[i--] = argv[--argc]; // consumed
        }
    }
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RegisterBenchmark("pingpong/cacheline/8/1", bm_cacheline_pingpong)
        ->UseRealTime()
        ->Iterations(windows_per_run);
    register_sweep<bench_case::pingpong>("pingpong");
    register_sweep<bench_case::single>("single");
    register_sweep<bench_case::empty>("empty");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
