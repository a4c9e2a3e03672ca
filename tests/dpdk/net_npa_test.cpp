// tests/dpdk/net_npa_test.cpp: the DPDK adapter inside a real EAL (vdevs only).
//
// net_ring ports loop back: what is sent on queue q comes back on queue q, so packets can
// circulate through net_npa and every one of them can be counted and put in order.
// EAL runs with --no-huge --no-pci -m 512, as root, without hugepages.
//
// The adapter's parts (mbuf_ref, mempool_pool, the ethdev plugin), devargs, counting and
// switching here; paths that go away or come back in net_npa_paths_test.cpp; control
// operations, dev_info, link and counters in net_npa_control_test.cpp. One program.
#include <doctest/doctest.h>

#include <npa/dpdk/ethdev_plugin.hpp>
#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include "ctl_device.hpp"
#include "log_capture.hpp"
#include "net_npa_rig.hpp"

#include <ethdev_driver.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_log.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

using namespace npa_test_dpdk;

TEST_CASE("mbuf_ref is an npa buffer over the mbuf itself, without copies") {
    std::array<mbuf_ref, 4> b{};
    const auto before = g_pool->available();
    REQUIRE(g_pool->alloc_bulk(b) == 4);
    CHECK(g_pool->available() == before - 4);
    rte_mbuf* m = b[0].get();
    CHECK(b[0].data() == rte_pktmbuf_mtod(m, std::byte*));
    CHECK(b[0].iova() == rte_pktmbuf_iova(m));
    CHECK(b[0].length() == 0);
    CHECK(b[0].capacity() == static_cast<std::uint32_t>(m->buf_len - m->data_off));
    b[0].set_length(100);
    CHECK(m->data_len == 100);
    CHECK(m->pkt_len == 100);

    npa::offload_info o;
    o.flags = npa::ol::tx_ip_csum | npa::ol::tx_l4_csum | npa::ol::tx_tso | npa::ol::tx_vlan;
    o.vlan_tci = 42;
    o.tso_mss = 1448;
    o.l2_len = 14;
    o.l3_len = 20;
    o.l4_len = 20;
    b[0].set_offload(o);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM) != 0);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0);
    CHECK(m->vlan_tci == 42);
    CHECK(static_cast<unsigned>(m->tso_segsz) == 1448u);
    CHECK(static_cast<unsigned>(m->l3_len) == 20u);
    const npa::offload_info back = b[0].offload();
    CHECK(back.flags == o.flags);
    CHECK(back.vlan_tci == 42);
    CHECK(back.tso_mss == 1448);
    CHECK(back.l2_len == 14);

    // RX side: what a NIC PMD writes, as npa metadata.
    m = b[1].get();
    m->ol_flags = RTE_MBUF_F_RX_RSS_HASH | RTE_MBUF_F_RX_VLAN_STRIPPED | RTE_MBUF_F_RX_VLAN |
                  RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_BAD;
    m->hash.rss = 0xabcdef;
    m->vlan_tci = 7;
    const npa::offload_info rx = b[1].offload();
    CHECK(rx.flags == (npa::ol::rx_rss | npa::ol::rx_vlan));
    CHECK(rx.rss_hash == 0xabcdef);
    CHECK(rx.vlan_tci == 7);
    CHECK(rx.csum == npa::csum_state::bad);

    // The burst view is the same memory.
    CHECK(reinterpret_cast<void*>(npa::dpdk::as_mbufs(std::span<mbuf_ref>(b))) ==
          reinterpret_cast<void*>(b.data()));
    g_pool->free_burst(b);
    CHECK(g_pool->available() == before);
}

TEST_CASE("mempool_pool: burst gives what is there, bulk all or nothing") {
    auto small = mempool_pool::create("npa_small", 63, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    REQUIRE(small.ok());
    CHECK(small->size() == 63);
    std::vector<mbuf_ref> b(100);
    CHECK(small->alloc_bulk(b) == 0);
    CHECK(small->available() == 63);
    CHECK(small->alloc_burst(b) == 63);
    CHECK(small->available() == 0);
    CHECK(small->shortfalls() == 1);
    small->free_burst(std::span<const mbuf_ref>(b.data(), 63));
    CHECK(small->available() == 63);
}

TEST_CASE("ethdev plugin drives a net_ring port's queues") {
    REQUIRE(rte_vdev_init("net_ring_plugin", nullptr) == 0);
    const std::uint16_t port = port_by_name("net_ring_plugin");
    npa::dpdk::ethdev_shell_api api;
    npa::dpdk::ethdev_plugin<npa::dpdk::ethdev_shell_api> plugin;
    std::array<rte_mempool*, 1> pools{g_pool->get()};
    npa::dpdk::ethdev_port win;
    win.port_id = port;
    win.rx_pools = pools;
    npa::queue_config qc;
    qc.queues = 2;
    REQUIRE(plugin.attach(api, win, qc).ok());
    CHECK(plugin.attached());
    CHECK(plugin.capabilities().max_queues >= 2);

    std::array<mbuf_ref, 8> tx;
    for (std::uint32_t i = 0; i < tx.size(); ++i) tx[i] = make_packet(1, i);
    CHECK(plugin.tx_burst(1, tx) == 8);
    std::array<mbuf_ref, 16> rx{};
    CHECK(plugin.rx_burst(0, rx) == 0);  // queue 0 saw nothing
    REQUIRE(plugin.rx_burst(1, rx) == 8);
    for (std::uint32_t i = 0; i < 8; ++i) CHECK(seq_of(rx[i]) == i);
    CHECK(plugin.stats(1).tx_packets == 8);
    CHECK(plugin.stats(1).rx_packets == 8);
    CHECK(plugin.stats(1).rx_bytes <= 8 * 64);  // bytes: what net_ring itself counts
    g_pool->free_burst(std::span<const mbuf_ref>(rx.data(), 8));

    CHECK(plugin.tx_burst(5, tx) == 0);  // no such queue: nothing taken
    plugin.mark_removed();
    CHECK(plugin.health() == npa::errc::removed);
    CHECK(plugin.tx_burst(1, tx) == 0);  // a removed device is never touched
    plugin.detach();
    CHECK_FALSE(plugin.attached());
    CHECK(api.unsent == 0);
    CHECK(rte_vdev_uninit("net_ring_plugin") == 0);
}

TEST_CASE("bad devargs are rejected with the reason in the log, and nothing is probed") {
    struct bad {
        const char* args;
        const char* message;
    };
    const bad cases[] = {
        {"", "net_npa7: no sub-device: at least one dev(<device>) is required"},
        {"dev(net_ring70),bogus=1", "net_npa7: unknown argument 'bogus=1'"},
        {"dev(net_ring70",
         "net_npa7: unbalanced '(' in 'dev(net_ring70': a dev(...) is not closed"},
        {"dev(net_ring70),active=3", "net_npa7: active=3 but only 1 sub-device given"},
        {"dev(net_ring70),dwell_ms=soon", "net_npa7: dwell_ms=soon: expected a whole number"},
        {"dev(net_ring70),auto=0,auto=1", "net_npa7: 'auto' given twice: give each argument once"},
        {"dev(net_nosuchdriver0)",
         "net_npa7: cannot probe sub-device dev(net_nosuchdriver0): no DPDK driver or device "
         "matches it"},
        {"dev(net_ring72),dev(net_ring72,size=64)",
         "net_npa7: dev(net_ring72) and dev(net_ring72,size=64) are the same device "
         "(net_ring72): give each sub-device once"},
    };
    const std::uint16_t ports_before = rte_eth_dev_count_total();
    for (const bad& c : cases) {
        CAPTURE(c.args);
        log_capture log;
        CHECK(rte_vdev_init("net_npa7", c.args) < 0);
        const std::string text = log.text();
        CAPTURE(text);
        CHECK(text.find(c.message) != std::string::npos);
        std::uint16_t id;
        CHECK(rte_eth_dev_get_port_by_name("net_npa7", &id) != 0);
    }
    CHECK(rte_eth_dev_count_total() == ports_before);
}

TEST_CASE("net_npa over net_ring: every packet counted, both directions, two queues") {
    REQUIRE(rte_vdev_init("net_npa1", "dev(net_ring11),dev(net_ring12)") == 0);
    const std::uint16_t port = port_by_name("net_npa1");
    CHECK(rte_pmd_npa_is_npa_port(port) == 1);
    // The sub-ports are owned by net_npa: an application iterating ports does not see them.
    rte_eth_dev_owner owner{};
    REQUIRE(rte_eth_dev_owner_get(port_by_name("net_ring11"), &owner) == 0);
    CHECK(owner.id != RTE_ETH_DEV_NO_OWNER);
    CHECK(std::string{owner.name} == "net_npa1");
    std::uint16_t id;

    start_port(port, 2);
    const loop_result r = circulate(port, 2, [](int) {});
    CHECK(r.out_of_order == 0);
    CHECK(r.wrong_queue == 0);
    CHECK(r.tx_refused == 0);
    CHECK(r.in_flight_end == 2 * circulating);
    rte_eth_stats st{};
    REQUIRE(rte_eth_stats_get(port, &st) == 0);
    CHECK(st.opackets == r.received + 2 * circulating);
    CHECK(st.ipackets == r.received + r.in_flight_end);
    CHECK(st.q_ipackets[0] + st.q_ipackets[1] == st.ipackets);
    CHECK(xstat(port, "path1_tx_packets") == 0);  // the preferred path carried everything

    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa1") == 0);
    CHECK(rte_eth_dev_get_port_by_name("net_ring11", &id) != 0);  // sub-devices went too
}

TEST_CASE("switch under bidirectional traffic: zero TX loss, no reordering") {
    REQUIRE(rte_vdev_init("net_npa2", "dev(net_ring21),dev(net_ring22),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa2");
    start_port(port, 2);
    int switched_at = -1, back_at = -1;
    bool back = false, waited = false;
    const loop_result r = circulate(port, 2, [&](int round) {
        if (round == rounds / 3) {
            REQUIRE(rte_pmd_npa_switch(port, 1) == 0);
            switched_at = round;
        }
        if (round == rounds / 3 + 1) {
            CHECK(rte_pmd_npa_switch(port, 5) == -EINVAL);
        }
        // The lcore is descheduled mid-drain for longer than the drain timeout (2 ms), as
        // on a loaded machine: what the old sub-port still holds is delivered all the
        // same, before anything from the new one (net_ring keeps a ring across stop and
        // start: left behind, it came back out of order after the switch back).
        if (round > rounds / 3 && round <= rounds / 3 + 3) usleep(5000);
        if (round >= 2 * rounds / 3 && !back) {
            // The first switch is released by the port's timer; until then: busy.
            const int rc = rte_pmd_npa_switch(port, 0);
            REQUIRE((rc == 0 || rc == -EBUSY));
            back = rc == 0;
            if (!back) usleep(200);
            // The timer has not run by five sixths of the rounds (a loaded machine): wait
            // for it, so that the switch back still has rounds of traffic after it.
            if (!back && round == 5 * rounds / 6) {
                wait_switch_done(port, 2);
                back = rte_pmd_npa_switch(port, 0) == 0;
                waited = true;
            }
            back_at = back ? round : -1;
        }
    });
    INFO("switched back at round " << back_at << (waited ? " after waiting for the release" : ""));
    REQUIRE(back);
    wait_switch_done(port, 2);
    CHECK(switched_at > 0);
    CHECK(r.out_of_order == 0);
    CHECK(r.wrong_queue == 0);
    CHECK(r.tx_refused == 0);
    CHECK(r.in_flight_end == 2 * circulating);  // every packet still there: none lost

    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.paths == 2);
    CHECK(s.active == 0);
    CHECK(s.switching == 0);
    CHECK(s.switches == 3);  // the boot attach, then the two requested
    CHECK(s.lost == 0);
    CHECK(std::string{s.last_reason} == "operator-request");
    CHECK(xstat(port, "switch_count") == 3);
    CHECK(xstat(port, "path1_tx_packets") > 0);
    CHECK(xstat(port, "path0_tx_packets") > 0);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa2") == 0);
}

static rte_vdev_driver ctl_drv;
RTE_INIT(ctl_drv_init) {
    ctl_drv.probe = ctl_device::probe;
    ctl_drv.remove = ctl_device::remove;
}
RTE_PMD_REGISTER_VDEV(net_ctlwatch, ctl_drv);

int main(int argc, char** argv) {
    const std::string prefix = "npa_test_" + std::to_string(getpid());
    const char* eal[] = {"dpdk_net_npa", "--no-huge", "--no-pci", "-m", "512", "-l", "0",
                         "--file-prefix", prefix.c_str(), "--log-level", "pmd.net.npa:info",
                         "--no-telemetry"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        std::fprintf(stderr, "dpdk_net_npa: rte_eal_init failed (run as root)\n");
        return 1;
    }
    int rc = 1;
    {
        auto pool = mempool_pool::create("npa_test_pool", pool_size, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
        if (!pool.ok()) {
            std::fprintf(stderr, "dpdk_net_npa: %s\n", pool.error().reason());
        } else {
            g_pool = &*pool;
            doctest::Context ctx(argc, argv);
            rc = ctx.run();
            g_pool = nullptr;
        }
    }
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec);  // EAL leaves its runtime dir
    return rc;
}
