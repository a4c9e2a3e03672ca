// bench_burst.cpp: the cost of an io-forwarding loop (rx_burst, then tx_burst of what
// came in) on one thread, through net_npa, directly on the sub-device's PMD, and through
// net_failsafe, over net_null (RX never runs dry) and over net_ring (a loop of 512
// packets), all in one run.
//
// A shared 2-core machine cannot resolve a few percent in wall-clock rates, so each
// round is charged the CPU time the forwarding thread itself got (the scheduler's
// account of the thread, as in /proc/self/task/<tid>/schedstat), and the result
// is packets per CPU-second, best of many short rounds, the configurations interleaved
// round by round (noise only ever adds time). TSC cycles per packet are reported too.
//
//   npa-dpdk-bench-burst [packets per round, default 1000000] [rounds, default 25] [burst, default 32]
//   npa-dpdk-bench-burst --callgrind <config index> [bursts, default 10000] [burst, default 32]
// The second form runs one configuration for a fixed number of RX+TX burst pairs with
// callgrind's instrumentation on only around the loop, for
//   valgrind --tool=callgrind --collect-atstart=no npa-dpdk-bench-burst --callgrind 1
// (instructions per burst pair = Ir / bursts: a figure that load does not move).
// Runs as root, EAL with --no-huge --no-pci; loads net_npa as a linked library.
#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <valgrind/callgrind.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <ctime>
#include <unistd.h>
#include <vector>

namespace {

// testpmd's defaults: burst 32, 64-byte packets (net_null's default size). Other burst
// sizes show how a cost per packet moves with the burst (the same machine forwards
// net_null directly at very different rates per packet at 16 and at 32).
constexpr std::uint16_t default_burst = 32;
constexpr std::uint16_t max_burst = 64;
std::uint16_t burst = default_burst;
/// Packets put into a net_ring loop before it is forwarded.
constexpr std::uint32_t ring_load = 512;

struct config {
    const char* label;
    const char* vdev;
    const char* args;
    bool ring = false;  ///< a loop: seed it with packets first
    std::uint16_t port = RTE_MAX_ETHPORTS;
    double best_ns = 1e30;      ///< CPU nanoseconds per packet
    double best_cycles = 1e30;  ///< TSC cycles per packet
};

bool start(config& c, rte_mempool* mp) {
    if (rte_vdev_init(c.vdev, c.args) != 0 || rte_eth_dev_get_port_by_name(c.vdev, &c.port) != 0) {
        std::fprintf(stderr, "cannot create %s,%s\n", c.vdev, c.args);
        return false;
    }
    // Referencing the PMD's API also keeps the linker from dropping librte_net_npa
    // (--as-needed), whose constructor registers the net_npa driver.
    if (std::string{c.vdev}.rfind("net_npa", 0) == 0 && rte_pmd_npa_is_npa_port(c.port) != 1) {
        return false;
    }
    rte_eth_conf conf{};
    if (rte_eth_dev_configure(c.port, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(c.port, 0, 512, 0, nullptr, mp) != 0 ||
        rte_eth_tx_queue_setup(c.port, 0, 512, 0, nullptr) != 0 || rte_eth_dev_start(c.port) != 0) {
        return false;
    }
    for (std::uint32_t s = 0; c.ring && s < ring_load; s += default_burst) {
        std::array<rte_mbuf*, default_burst> b{};
        if (rte_pktmbuf_alloc_bulk(mp, b.data(), default_burst) != 0) return false;
        for (rte_mbuf* m : b) {
            m->data_len = 64;
            m->pkt_len = 64;
        }
        if (rte_eth_tx_burst(c.port, 0, b.data(), default_burst) != default_burst) return false;
    }
    return true;
}

/// Nanoseconds the calling thread has spent on a CPU: the scheduler's own account of
/// the thread (the first field of /proc/self/task/<tid>/schedstat), read through
/// CLOCK_THREAD_CPUTIME_ID, which adds the time since the last tick (schedstat's file
/// is only as fresh as the last tick, too coarse for rounds of a few milliseconds).
std::uint64_t thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Forwards until `packets` went through; returns {CPU ns, TSC cycles} per packet.
std::pair<double, double> run(std::uint16_t port, std::uint64_t packets) {
    std::array<rte_mbuf*, max_burst> pkts;
    std::uint64_t done = 0;
    const std::uint64_t c0 = thread_cpu_ns();
    const std::uint64_t t0 = rte_rdtsc();
    while (done < packets) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
        if (k < n) rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
        done += n;
    }
    const double cycles = static_cast<double>(rte_rdtsc() - t0);
    const double ns = static_cast<double>(thread_cpu_ns() - c0);
    return {ns / static_cast<double>(done), cycles / static_cast<double>(done)};
}

/// A fixed number of burst pairs, instrumented by callgrind only here.
void run_counted(std::uint16_t port, std::uint64_t bursts) {
    std::array<rte_mbuf*, max_burst> pkts;
    for (int warm = 0; warm < 1000; ++warm) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
        if (k < n) rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
    }
    CALLGRIND_ZERO_STATS;
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_TOGGLE_COLLECT;
    for (std::uint64_t i = 0; i < bursts; ++i) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
        if (k < n) rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
    }
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_STOP_INSTRUMENTATION;
}

} // namespace

int main(int argc, char** argv) {
    const bool counted = argc > 1 && std::strcmp(argv[1], "--callgrind") == 0;
    const std::size_t only = counted && argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 0;
    const std::uint64_t bursts = counted && argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 10'000;
    const std::uint64_t packets =
        !counted && argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1'000'000;
    const int rounds = !counted && argc > 2 ? std::atoi(argv[2]) : 25;
    if (const int at = counted ? 4 : 3; argc > at) {
        const unsigned long b = std::strtoul(argv[at], nullptr, 10);
        if (b == 0 || b > max_burst) {
            std::fprintf(stderr, "burst must be 1..%u\n", unsigned{max_burst});
            return 2;
        }
        burst = static_cast<std::uint16_t>(b);
    }
    const std::string prefix = "npa_bench_burst_" + std::to_string(getpid());
    const char* eal[] = {"bench", "--no-huge", "--no-pci", "-m", "512", "-l", "0",
                         "--file-prefix", prefix.c_str(), "--log-level", "*:warning"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) return 1;
    int rc = 0;
    {
        auto pool = npa::dpdk::mempool_pool::create("bench_pool", 16383, RTE_MBUF_DEFAULT_BUF_SIZE, 0, 256);
        std::vector<config> cfgs = {
            {"net_null direct", "net_null0", "", false},
            {"net_npa over net_null", "net_npa0", "dev(net_null1),dev(net_null2)", false},
            {"net_failsafe over net_null", "net_failsafe0", "dev(net_null3),dev(net_null4)", false},
            {"net_ring direct", "net_ring5", "", true},
            {"net_npa over net_ring", "net_npa1", "dev(net_ring6),dev(net_ring7)", true},
            {"net_failsafe over net_ring", "net_failsafe1", "dev(net_ring8),dev(net_ring9)", true},
        };
        if (counted) {
            // Only the configuration asked for: nothing else runs under callgrind.
            if (only >= cfgs.size()) return 2;
            cfgs = {cfgs[only]};
        }
        for (auto& c : cfgs) {
            if (!pool.ok() || !start(c, pool->get())) rc = 1;
        }
        if (counted && rc == 0) {
            run_counted(cfgs[0].port, bursts);
            std::printf("%s: %llu RX+TX burst pairs of %u counted\n", cfgs[0].label,
                        static_cast<unsigned long long>(bursts), unsigned{burst});
        }
        for (int r = 0; !counted && rc == 0 && r < rounds; ++r) {
            // Each round starts each group of three at another configuration, so that
            // none always runs right after the same neighbour.
            for (std::size_t i = 0; i < cfgs.size(); ++i) {
                config& c = cfgs[i / 3 * 3 + (i % 3 + static_cast<std::size_t>(r)) % 3];
                const auto [ns, cycles] = run(c.port, packets);
                c.best_ns = std::min(c.best_ns, ns);
                c.best_cycles = std::min(c.best_cycles, cycles);
            }
        }
        if (!counted && rc == 0) {
            double load[3] = {};
            if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
                if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
                std::fclose(f);
            }
            std::printf("io-forwarding loop, 1 thread, burst %u, best of %d rounds x %llu packets, "
                        "load average %.2f %.2f %.2f\n",
                        burst, rounds, static_cast<unsigned long long>(packets), load[0], load[1],
                        load[2]);
            for (std::size_t i = 0; i < cfgs.size(); ++i) {
                const config& c = cfgs[i];
                const config& direct = cfgs[i / 3 * 3];
                std::printf("  %-28s %7.2f M packets per CPU-second  %6.1f%% of direct  "
                            "(%5.1f cycles/packet, %6.1f%%)\n",
                            c.label, 1e3 / c.best_ns, 100.0 * direct.best_ns / c.best_ns,
                            c.best_cycles, 100.0 * direct.best_cycles / c.best_cycles);
            }
        }
        for (auto& c : cfgs) {
            (void)rte_eth_dev_stop(c.port);
            (void)rte_eth_dev_close(c.port);
        }
    }
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);
    return rc;
}
