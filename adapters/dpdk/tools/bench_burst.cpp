// bench_burst.cpp: cycles per packet of an io-forwarding loop (rx_burst, then tx_burst
// of what came in) on one core: net_null direct, net_npa over net_null, net_failsafe
// over net_null, in one run. The same loop testpmd's io forwarding runs, without
// testpmd around it, and timed with the TSC, so that a shared, noisy machine can still
// compare: each configuration runs `rounds` times interleaved and the best round counts
// (noise only ever adds cycles).
//
//   npa-dpdk-bench-burst [packets per round, default 4000000] [rounds, default 7]
// Runs as root, EAL with --no-huge --no-pci; loads net_npa as a linked library.
#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include <rte_bus_vdev.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

// testpmd's defaults: burst 32, 64-byte packets (net_null's default size).
constexpr std::uint16_t burst = 32;

struct config {
    const char* label;
    const char* vdev;
    const char* args;
    std::uint16_t port = RTE_MAX_ETHPORTS;
    double best = 1e30;  // cycles per packet
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
    return rte_eth_dev_configure(c.port, 1, 1, &conf) == 0 &&
           rte_eth_rx_queue_setup(c.port, 0, 512, 0, nullptr, mp) == 0 &&
           rte_eth_tx_queue_setup(c.port, 0, 512, 0, nullptr) == 0 &&
           rte_eth_dev_start(c.port) == 0;
}

double run(std::uint16_t port, std::uint64_t packets) {
    std::array<rte_mbuf*, burst> pkts;
    std::uint64_t done = 0;
    const std::uint64_t t0 = rte_rdtsc();
    while (done < packets) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
        if (k < n) rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
        done += n;
    }
    return static_cast<double>(rte_rdtsc() - t0) / static_cast<double>(done);
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t packets = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4'000'000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
    const std::string prefix = "npa_bench_burst_" + std::to_string(getpid());
    const char* eal[] = {"bench", "--no-huge", "--no-pci", "-m", "512", "-l", "0",
                         "--file-prefix", prefix.c_str(), "--log-level", "*:warning"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) return 1;
    int rc = 0;
    {
        auto pool = npa::dpdk::mempool_pool::create("bench_pool", 8191, RTE_MBUF_DEFAULT_BUF_SIZE, 0, 256);
        std::vector<config> cfgs = {
            {"net_null direct", "net_null0", ""},
            {"net_npa over net_null", "net_npa0", "dev(net_null1),dev(net_null2)"},
            {"net_failsafe over net_null", "net_failsafe0", "dev(net_null3),dev(net_null4)"},
        };
        for (auto& c : cfgs) {
            if (!pool.ok() || !start(c, pool->get())) rc = 1;
        }
        for (int r = 0; rc == 0 && r < rounds; ++r) {
            for (auto& c : cfgs) c.best = std::min(c.best, run(c.port, packets));
        }
        const double hz = static_cast<double>(rte_get_tsc_hz());
        std::printf("io-forwarding loop, 1 core, burst %u, best of %d rounds x %llu packets\n",
                    burst, rounds, static_cast<unsigned long long>(packets));
        for (auto& c : cfgs) {
            std::printf("  %-28s %6.1f cycles/packet  %7.2f Mpps  %6.1f%% of direct\n", c.label,
                        c.best, hz / c.best / 1e6, 100.0 * cfgs[0].best / c.best);
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
