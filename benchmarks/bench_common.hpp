// benchmarks/bench_common.hpp: thread pinning, the start line and the floor probe shared
// by the cross-core cases.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

namespace npa_bench {

// ---- tuning constants --------------------------------------------------------------
// The producer (the benchmark's own thread) runs on core 0 and the consumer / echo thread
// on core 1: two physical cores on the reference machine, so every handover crosses the
// cache-coherence fabric, which is the case a NIC driver's rings live in.
inline constexpr int producer_core = 0;
inline constexpr int consumer_core = 1;
// A cache-line round trip between the two cores below this is the `near` floor, above it
// the `far` one: between the two floors seen on the reference VM (about 160 and 600 ns),
// which every cross-core rate moves with (ring_stream.cpp, floor_probe.cpp).
inline constexpr double floor_split_ns = 320.0;

/// The CPUs this process may use, read once before any thread is pinned (a thread
/// inherits its creator's affinity, so asking later would see only the creator's core).
inline const cpu_set_t& allowed_cpus() noexcept {
    static const cpu_set_t set = [] {
        cpu_set_t s;
        CPU_ZERO(&s);
        if (sched_getaffinity(0, sizeof(s), &s) != 0) {
            CPU_ZERO(&s);
        }
        return s;
    }();
    return set;
}

/// Pins the calling thread to the core-th allowed CPU (wrapping, so the suite still runs
/// on a one-core machine, where both threads then share it). Returns false if the kernel
/// refused.
inline bool pin_to_core(int core) noexcept {
    const cpu_set_t& allowed = allowed_cpus();
    const int n = CPU_COUNT(&allowed);
    if (n <= 0) {
        return false;
    }
    int want = core % n;
    int cpu = -1;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &allowed) && want-- == 0) {
            cpu = c;
            break;
        }
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

/// Tells the compiler that the memory at p is read and written here, so stores into it
/// cannot be dropped and loads from it cannot be hoisted. Takes a pointer: handing an
/// array by value to an "r,m" asm operand (benchmark::DoNotOptimize) can make the
/// compiler copy the whole array each time, which would be measured as ring cost.
template <class T>
inline void escape(T* p) noexcept {
    asm volatile("" : : "g"(p) : "memory");
}

/// Busy-wait hint (PAUSE on x86): keeps a spinning thread from starving its sibling and
/// from flooding the fabric with reads.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// The cross-core floor right now: one bare cache line bounced between the calling thread
/// (pinned to producer_core) and an echo thread on consumer_core. Takes `repeats` means of
/// `round_trips` round trips each and returns their median, in ns. One round trip before
/// the first timed one waits for the echo thread to start and reach its core. The streaming
/// trials (ring_stream.cpp) probe with their own two threads instead, inside each trial.
inline double cache_line_round_trip_ns(std::uint64_t round_trips, int repeats) {
    struct alignas(64) line {
        std::atomic<std::uint64_t> v{0};
    };
    line ping, pong;
    std::thread echo([&ping, &pong] {
        (void)pin_to_core(consumer_core);
        for (std::uint64_t want = 1;; ++want) {
            std::uint64_t got;
            while ((got = ping.v.load(std::memory_order_acquire)) < want) {
            }
            if (got == ~0ull) {
                return;
            }
            pong.v.store(got, std::memory_order_release);
            want = got;
        }
    });
    (void)pin_to_core(producer_core);
    std::uint64_t seq = 0;
    const auto bounce = [&] {
        ping.v.store(++seq, std::memory_order_release);
        while (pong.v.load(std::memory_order_acquire) != seq) {
        }
    };
    bounce(); // untimed: the echo thread's start
    std::vector<double> means;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < round_trips; ++i) {
            bounce();
        }
        const auto t1 = std::chrono::steady_clock::now();
        means.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
                        static_cast<double>(round_trips));
    }
    ping.v.store(~0ull, std::memory_order_release);
    echo.join();
    std::sort(means.begin(), means.end());
    return means.empty() ? 0 : means[means.size() / 2];
}

} // namespace npa_bench
