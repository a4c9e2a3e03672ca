// benchmarks/plain_stream.cpp: the plainest cross-core streaming measurement, the
// reference the suite's `stream` cases are held against (docs/benchmarks.md, "Why the
// suite's streaming numbers once differed").
//
// Two threads pinned to two cores. The producer pushes `--elems` elements in bursts of
// `--burst` (a burst size known only at run time), the consumer pops them; the clock
// starts when both are ready and stops when the consumer holds the last element. One
// number per run: wall ns per element, whole transfer. Nothing is dropped, nothing is
// ranked. Beside it, the share of that wall time each thread was on a CPU
// (benchmarks/cpu_time.hpp): below about 0.9 the machine took a core away and the wall
// figure measures the scheduler too.
//
// Switches, one per way the two harnesses could differ:
//   --start empty|full     the consumer polls from the start (it keeps pace), or starts once
//                          the producer has filled the ring (it lags)
//   --wait pause|spin      what a side does when the ring is empty / full: PAUSE, or
//                          retry at once (a DPDK poll loop)
//   --take burst|bulk      a short ring gives the consumer what is there (burst) or
//                          nothing until a whole burst is there (bulk: npa_index and
//                          rte_ring only)
//   --clock total|window   whole transfer (the default), or the old suite's method: the
//                          producer times windows of 4096 pushes and reports the
//                          10th-percentile window
#include "bench_common.hpp"
#include "cpu_time.hpp"
#include "ring_impls.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace npa_bench;
using clk = std::chrono::steady_clock;

struct options {
    std::string impl = "npa_index";
    unsigned bytes = 8;
    std::uint32_t burst = 32;
    std::uint64_t elems = 1u << 21;
    bool start_full = false;
    bool pause = true;
    bool bulk = false;
    bool window_clock = false;
};

template <class Impl>
std::uint32_t take(Impl& q, typename Impl::value_type* p, std::uint32_t n, bool bulk) {
    if constexpr (requires { q.dequeue_bulk(p, n); }) {
        if (bulk) {
            return q.dequeue_bulk(p, n);
        }
    }
    return q.dequeue(p, n);
}

struct result {
    double ns = -1;
    double prod_share = 0;
    double cons_share = 0;
};

template <class Impl>
result run(const options& o) {
    using value_type = typename Impl::value_type;
    auto q = std::make_unique<Impl>();
    std::vector<value_type> src(o.burst);
    for (std::uint32_t i = 0; i < o.burst; ++i) {
        src[i] = Impl::make(i);
    }
    std::atomic<int> go{0}; // 1: consumer ready, 2: consumer may start
    // The consumer's results, written once at its end, on a line of their own; in its loop
    // it touches only its own copies (a shared stack line would bounce with every burst).
    struct alignas(64) consumer_result {
        clk::time_point t_end{};
        std::uint64_t cpu = 0;
    } cr;
    Impl* const ring = q.get();
    std::thread consumer([&go, &cr, ring, elems = o.elems, burst = o.burst, bulk = o.bulk,
                          pause = o.pause] {
        pin_to_core(consumer_core);
        const thread_cpu_clock cpu;
        std::vector<value_type> buf(burst);
        go.store(1, std::memory_order_release);
        while (go.load(std::memory_order_acquire) != 2) {
        }
        const std::uint64_t c0 = cpu.now_ns();
        std::uint64_t got = 0;
        while (got < elems) {
            const std::uint32_t want =
                static_cast<std::uint32_t>(std::min<std::uint64_t>(burst, elems - got));
            const std::uint32_t k = take(*ring, buf.data(), want, bulk);
            escape(buf.data());
            got += k;
            if (k == 0 && pause) {
                cpu_relax();
            }
        }
        const clk::time_point t_end = clk::now();
        cr.cpu = cpu.now_ns() - c0;
        cr.t_end = t_end;
    });
    pin_to_core(producer_core);
    while (go.load(std::memory_order_acquire) != 1) {
    }
    std::uint64_t sent = 0;
    auto push = [&](std::uint32_t n) { // push exactly n, waiting while the ring is full
        std::uint32_t off = 0;
        while (off < n) {
            const std::uint32_t k = ring->enqueue(src.data() + off, n - off);
            off += k;
            if (k == 0 && o.pause) {
                cpu_relax();
            }
        }
        sent += n;
    };
    if (o.start_full) {
        while (sent < o.elems && ring->enqueue(src.data(), 1) == 1) {
            ++sent;
        }
    }
    const thread_cpu_clock cpu;
    const std::uint64_t c0 = cpu.now_ns();
    const clk::time_point t0 = clk::now();
    go.store(2, std::memory_order_release);
    std::vector<double> windows;
    constexpr std::uint32_t window = 4096;
    while (sent < o.elems) {
        const clk::time_point w0 = clk::now();
        const std::uint64_t s0 = sent;
        while (sent < o.elems && sent - s0 < window) {
            push(static_cast<std::uint32_t>(std::min<std::uint64_t>(o.burst, o.elems - sent)));
        }
        windows.push_back(std::chrono::duration<double, std::nano>(clk::now() - w0).count() /
                          static_cast<double>(sent - s0));
    }
    const std::uint64_t prod_cpu = cpu.now_ns() - c0;
    consumer.join();
    const double wall = std::chrono::duration<double, std::nano>(cr.t_end - t0).count();
    result r{wall / static_cast<double>(o.elems), static_cast<double>(prod_cpu) / wall,
             static_cast<double>(cr.cpu) / wall};
    if (o.window_clock) {
        auto it = windows.begin() + static_cast<std::ptrdiff_t>(0.1 * double(windows.size() - 1));
        std::nth_element(windows.begin(), it, windows.end());
        r.ns = *it;
    }
    return r;
}

template <unsigned Bytes>
result dispatch(const options& o) {
    result r;
    for_each_impl<Bytes>([&]<class Impl>() {
        if (o.impl == Impl::name) {
            r = run<Impl>(o);
        }
    });
    return r;
}

} // namespace

int main(int argc, char** argv) {
    (void)allowed_cpus(); // before any thread pins itself
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const std::string v = argv[i + 1];
        if (k == "--impl") {
            o.impl = v;
        } else if (k == "--bytes") {
            o.bytes = static_cast<unsigned>(std::stoul(v));
        } else if (k == "--burst") {
            o.burst = static_cast<std::uint32_t>(std::stoul(v));
        } else if (k == "--elems") {
            o.elems = std::stoull(v);
        } else if (k == "--start") {
            o.start_full = v == "full";
        } else if (k == "--wait") {
            o.pause = v == "pause";
        } else if (k == "--take") {
            o.bulk = v == "bulk";
        } else if (k == "--clock") {
            o.window_clock = v == "window";
        } else {
            std::fprintf(stderr, "plain_stream: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if ((argc - 1) % 2 != 0 || o.burst == 0 || o.burst > ring_slots / 2 || o.elems == 0 ||
        (o.bytes != 8 && o.bytes != 16)) {
        std::fprintf(stderr,
                     "usage: %s [--impl NAME] [--bytes 8|16] [--burst 1..%u] [--elems N]\n"
                     "          [--start empty|full] [--wait pause|spin] [--take burst|bulk]\n"
                     "          [--clock total|window]\n",
                     argv[0], ring_slots / 2);
        return 2;
    }
    const result r = o.bytes == 8 ? dispatch<8>(o) : dispatch<16>(o);
    if (r.ns < 0) {
        std::fprintf(stderr, "plain_stream: no implementation named %s\n", o.impl.c_str());
        return 2;
    }
    // impl, bytes, burst, ns per element, on-CPU share of producer and consumer
    std::printf("%s %u %u %.3f %.2f %.2f\n", o.impl.c_str(), o.bytes, o.burst, r.ns,
                r.prod_share, r.cons_share);
    return 0;
}
