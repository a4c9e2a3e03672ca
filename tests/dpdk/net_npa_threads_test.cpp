// tests/dpdk/net_npa_threads_test.cpp: net_npa's threads, as a DPDK application runs
// them: a forwarding thread bursting on the port while a control thread reads its
// counters and switches its paths (and the port's timer runs on EAL's interrupt thread).
// Labelled `concurrent`: the tsan stage runs it under ThreadSanitizer, where any data
// race between those threads fails it.
//
// EAL runs with --no-huge --no-pci -m 512, as root; the sub-devices are looping net_ring
// ports, so every packet can be counted.
#include <doctest/doctest.h>

#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

// Sizes: a few thousand switches' worth of traffic would prove nothing more; enough
// rounds that the control thread's reads land on every part of a switch, short enough
// for TSan's slowdown.
constexpr std::uint16_t burst = 32;
constexpr std::uint32_t circulating = 256;
constexpr int switches = 30;

rte_mempool* g_pool = nullptr;

std::uint16_t port_by_name(const char* name) {
    std::uint16_t id = RTE_MAX_ETHPORTS;
    REQUIRE(rte_eth_dev_get_port_by_name(name, &id) == 0);
    return id;
}

} // namespace

TEST_CASE("a forwarding thread and a control thread on one net_npa port") {
    REQUIRE(rte_vdev_init("net_npa_t0", "dev(net_ring_t1),dev(net_ring_t2),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa_t0");
    const rte_eth_conf conf{};
    REQUIRE(rte_eth_dev_configure(port, 1, 1, &conf) == 0);
    REQUIRE(rte_eth_rx_queue_setup(port, 0, 512, 0, nullptr, g_pool) == 0);
    REQUIRE(rte_eth_tx_queue_setup(port, 0, 512, 0, nullptr) == 0);
    REQUIRE(rte_eth_dev_start(port) == 0);
    // Packets into the loop.
    for (std::uint32_t s = 0; s < circulating; s += burst) {
        std::array<rte_mbuf*, burst> b{};
        REQUIRE(rte_pktmbuf_alloc_bulk(g_pool, b.data(), burst) == 0);
        for (rte_mbuf* m : b) {
            m->pkt_len = 64;
            m->data_len = 64;
            std::memset(rte_pktmbuf_mtod(m, void*), 0, 64);
        }
        REQUIRE(rte_eth_tx_burst(port, 0, b.data(), burst) == burst);
    }

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> refused{0};
    std::thread fwd([&] {
        std::array<rte_mbuf*, burst> pkts{};
        std::uint64_t lost = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
            const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
            if (k < n) {
                lost += n - k;
                rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
            }
        }
        refused = lost;
    });

    // The control thread: counters, xstats and status all the time, a switch whenever
    // the previous one completed.
    int done = 0;
    std::uint64_t last_rx = 0;
    bool monotonic = true;
    std::vector<rte_eth_xstat> xs(64);
    for (int i = 0; i < 200'000 && done < switches; ++i) {
        rte_eth_stats st{};
        REQUIRE(rte_eth_stats_get(port, &st) == 0);
        monotonic = monotonic && st.ipackets >= last_rx;
        last_rx = st.ipackets;
        REQUIRE(rte_eth_xstats_get(port, xs.data(), static_cast<unsigned>(xs.size())) > 0);
        rte_pmd_npa_status_info s{};
        REQUIRE(rte_pmd_npa_status(port, &s) == 0);
        if (s.switching == 0 && rte_pmd_npa_switch(port, s.active ^ 1u) == 0) ++done;
        usleep(200);
    }
    stop = true;
    fwd.join();
    CHECK(done == switches);
    CHECK(monotonic);
    CHECK(refused.load() == 0);
    REQUIRE(rte_eth_dev_stop(port) == 0);
    // Every packet that went round is still in the loop, on the path now active.
    REQUIRE(rte_eth_dev_start(port) == 0);
    std::uint32_t back = 0;
    std::array<rte_mbuf*, burst> pkts{};
    for (int idle = 0; idle < 4;) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        back += n;
        rte_pktmbuf_free_bulk(pkts.data(), n);
        idle = n == 0 ? idle + 1 : 0;
    }
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.lost == 0);
    MESSAGE(done, " switches under traffic, ", back, " of ", circulating,
            " packets found in the loop afterwards");
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa_t0") == 0);
}

int main(int argc, char** argv) {
    const std::string prefix = "npa_threads_" + std::to_string(getpid());
    const char* eal[] = {"dpdk_net_npa_threads", "--no-huge", "--no-pci", "-m", "512", "-l", "0",
                         "--file-prefix", prefix.c_str(), "--no-telemetry"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "dpdk_net_npa_threads: rte_eal_init failed (run as root)\n");
        return 1;
    }
    int rc = 1;
    g_pool = rte_pktmbuf_pool_create("npa_threads_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     0);
    if (g_pool == nullptr) {
        std::fprintf(stderr, "dpdk_net_npa_threads: no mbuf pool\n");
    } else {
        doctest::Context ctx(argc, argv);
        rc = ctx.run();
        rte_mempool_free(g_pool);
    }
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);
    return rc;
}
