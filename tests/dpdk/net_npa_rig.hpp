// tests/dpdk/net_npa_rig.hpp: what the dpdk_net_npa program's sources share (net_npa_test.cpp
// holds main(), which starts the EAL and makes g_pool): packets that carry their queue and
// sequence number, ports set up and started, a circulation loop that counts every packet,
// waits on the port's policy timer, and reads of what a sub-device was told.
#pragma once

#include <doctest/doctest.h>

#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include "log_capture.hpp"

#include <ethdev_driver.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>
#include <unistd.h>

namespace npa_test_dpdk {

using npa::dpdk::mbuf_ref;
using npa::dpdk::mempool_pool;
using npa::test::log_capture;

// Test sizes: enough packets that a switch lands mid-traffic, few enough to run in
// well under a second anywhere (sanitizers included).
inline constexpr std::uint32_t pool_size = 8191;
inline constexpr std::uint32_t circulating = 256;   // packets per queue in the loop
inline constexpr int rounds = 4000;                 // forwarding rounds per test
inline constexpr std::uint16_t burst = 32;

inline mempool_pool* g_pool = nullptr;

/// A packet whose first 8 bytes say which queue and sequence number it carries.
inline mbuf_ref make_packet(std::uint16_t q, std::uint32_t seq) {
    std::array<mbuf_ref, 1> b{};
    REQUIRE(g_pool->alloc_bulk(b) == 1);
    b[0].set_length(64);
    std::memset(b[0].data(), 0, 64);
    std::memcpy(b[0].data(), &q, sizeof q);
    std::memcpy(b[0].data() + 4, &seq, sizeof seq);
    return b[0];
}
inline std::uint32_t seq_of(mbuf_ref m) {
    std::uint32_t s;
    std::memcpy(&s, m.data() + 4, sizeof s);
    return s;
}
inline std::uint16_t queue_of(mbuf_ref m) {
    std::uint16_t q;
    std::memcpy(&q, m.data(), sizeof q);
    return q;
}

inline std::uint16_t port_by_name(const char* name) {
    std::uint16_t id = RTE_MAX_ETHPORTS;
    REQUIRE(rte_eth_dev_get_port_by_name(name, &id) == 0);
    return id;
}

inline void configure_port(std::uint16_t port, std::uint16_t queues, const rte_eth_conf& conf = {}) {
    REQUIRE(rte_eth_dev_configure(port, queues, queues, &conf) == 0);
    for (std::uint16_t q = 0; q < queues; ++q) {
        REQUIRE(rte_eth_rx_queue_setup(port, q, 512, 0, nullptr, g_pool->get()) == 0);
        REQUIRE(rte_eth_tx_queue_setup(port, q, 512, 0, nullptr) == 0);
    }
}

inline void start_port(std::uint16_t port, std::uint16_t queues, const rte_eth_conf& conf = {}) {
    configure_port(port, queues, conf);
    REQUIRE(rte_eth_dev_start(port) == 0);
}

/// Counts of one circulation run.
struct loop_result {
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t wrong_queue = 0;
    std::uint64_t tx_refused = 0;
    std::uint64_t in_flight_end = 0;  ///< drained at the end
};

/// Puts `circulating` packets per queue into `port`, then forwards RX back to TX for
/// `rounds` rounds on every queue (traffic in both directions at once on each queue),
/// calling `mid(round)` each round; then calls `before_drain()` and drains what is still
/// in flight.
template <class Mid, class Fin = void (*)()>
inline loop_result circulate(
    std::uint16_t port, std::uint16_t queues, Mid mid, Fin before_drain = [] {}) {
    loop_result r;
    std::vector<std::uint32_t> expect(queues, 0);
    for (std::uint16_t q = 0; q < queues; ++q) {
        for (std::uint32_t s = 0; s < circulating; s += burst) {
            std::array<mbuf_ref, burst> b;
            for (std::uint16_t i = 0; i < burst; ++i) b[i] = make_packet(q, s + i);
            rte_mbuf** m = npa::dpdk::as_mbufs(std::span<mbuf_ref>(b));
            REQUIRE(rte_eth_tx_burst(port, q, m, burst) == burst);
        }
    }
    std::array<rte_mbuf*, burst> pkts;
    auto check = [&](std::uint16_t q, std::uint16_t n) {
        for (std::uint16_t i = 0; i < n; ++i) {
            const mbuf_ref m{pkts[i]};
            if (queue_of(m) != q) ++r.wrong_queue;
            if (seq_of(m) != expect[q]) ++r.out_of_order;
            expect[q] = (seq_of(m) + 1) % circulating;
        }
        r.received += n;
    };
    for (int round = 0; round < rounds; ++round) {
        mid(round);
        for (std::uint16_t q = 0; q < queues; ++q) {
            const std::uint16_t n = rte_eth_rx_burst(port, q, pkts.data(), burst);
            check(q, n);
            const std::uint16_t k = rte_eth_tx_burst(port, q, pkts.data(), n);
            r.tx_refused += n - k;
            rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
        }
    }
    before_drain();
    for (std::uint16_t q = 0; q < queues; ++q) {
        for (int idle = 0; idle < 4;) {
            const std::uint16_t n = rte_eth_rx_burst(port, q, pkts.data(), burst);
            check(q, n);
            r.received -= n;  // drained, not forwarded
            r.in_flight_end += n;
            rte_pktmbuf_free_bulk(pkts.data(), n);
            idle = n == 0 ? idle + 1 : 0;
        }
    }
    return r;
}

/// Waits (bounded) until `done(status)` holds, for what the port's policy timer does. The
/// queues must keep being served for that (each acknowledges a release on its next burst),
/// as an application's lcores do; empty TX bursts serve them here without taking packets
/// out of the loop. The bound (60 s) only ends a test whose event never comes: a
/// sanitizer build on a loaded machine may take seconds, and a passing test returns at
/// once.
template <class Done>
inline void wait_port(std::uint16_t port, std::uint16_t queues, Done done, const char* what) {
    rte_pmd_npa_status_info s{};
    for (int i = 0; i < 60'000; ++i) {
        REQUIRE(rte_pmd_npa_status(port, &s) == 0);
        if (done(s)) return;
        for (std::uint16_t q = 0; q < queues; ++q) (void)rte_eth_tx_burst(port, q, nullptr, 0);
        usleep(1000);
    }
    FAIL(what << " not within 60 s");
}

/// Waits for the switch in progress to be released by the port's policy timer.
inline void wait_switch_done(std::uint16_t port, std::uint16_t queues) {
    wait_port(port, queues, [](const rte_pmd_npa_status_info& s) { return s.switching == 0; },
              "switch completed");
}

/// Waits for the port's policy timer to make `path` the active one.
inline void wait_active(std::uint16_t port, std::uint16_t queues, std::uint32_t path) {
    wait_port(port, queues, [path](const rte_pmd_npa_status_info& s) { return s.active == path; },
              "path made active");
}

inline std::uint64_t xstat(std::uint16_t port, const char* name) {
    std::uint64_t id = 0, v = ~0ull;
    REQUIRE(rte_eth_xstats_get_id_by_name(port, name, &id) == 0);
    REQUIRE(rte_eth_xstats_get_by_id(port, &id, &v, 1) == 1);
    return v;
}

/// What a sub-device has been told, read back from ethdev's own records of it.
inline bool has_mac(std::uint16_t port, const rte_ether_addr& a) {
    std::array<rte_ether_addr, 16> addrs{};
    const int n = rte_eth_macaddrs_get(port, addrs.data(), addrs.size());
    for (int i = 0; i < n; ++i) {
        if (rte_is_same_ether_addr(&addrs[i], &a))
            return true;
    }
    return false;
}
inline bool has_vlan(std::uint16_t port, std::uint16_t vid) {
    return (rte_eth_devices[port].data->vlan_filter_conf.ids[vid / 64] >> (vid % 64) & 1u) != 0;
}
inline std::uint16_t mtu_of(std::uint16_t port) {
    std::uint16_t mtu = 0;
    REQUIRE(rte_eth_dev_get_mtu(port, &mtu) == 0);
    return mtu;
}
inline bool is_default_mac(std::uint16_t port, const rte_ether_addr& want) {
    rte_ether_addr a{};
    REQUIRE(rte_eth_macaddr_get(port, &a) == 0);
    return rte_is_same_ether_addr(&a, &want);
}
inline std::uint32_t active_of(std::uint16_t port) {
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    return s.active;
}
inline rte_eth_link link_of(std::uint16_t port) {
    rte_eth_link l{};
    REQUIRE(rte_eth_link_get_nowait(port, &l) == 0);
    return l;
}
inline bool link_is_up(std::uint16_t port) { return link_of(port).link_status == RTE_ETH_LINK_UP; }


/// Sends `n` packets on queue 0 of a looping port and receives them back (bounded).
inline std::uint32_t bounce(std::uint16_t port, std::uint32_t n) {
    std::uint32_t got = 0;
    for (std::uint32_t s = 0; s < n; s += burst) {
        std::array<mbuf_ref, burst> b;
        const std::uint16_t k = static_cast<std::uint16_t>(std::min<std::uint32_t>(burst, n - s));
        for (std::uint16_t i = 0; i < k; ++i) b[i] = make_packet(0, s + i);
        REQUIRE(rte_eth_tx_burst(port, 0, npa::dpdk::as_mbufs(std::span<mbuf_ref>(b)), k) == k);
    }
    std::array<rte_mbuf*, burst> pkts;
    for (int i = 0; i < 1000 && got < n; ++i) {
        const std::uint16_t k = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        got += k;
        rte_pktmbuf_free_bulk(pkts.data(), k);
    }
    return got;
}

} // namespace npa_test_dpdk
