// net_npa's control path: operations reach the active sub-device and are replayed on a
// switch, survive stop and start, fail in the application when a sub-device refuses them,
// are checked while stopped; dev_info and link follow the sub-devices; stop and close wait
// for the policy timer; port counters count each packet once. Part of the dpdk_net_npa
// program (net_npa_test.cpp has main()).
#include <doctest/doctest.h>

#include "ctl_device.hpp"
#include "net_npa_rig.hpp"

#include <npa/dpdk/mbuf.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include <ethdev_driver.h>
#include <rte_bus_vdev.h>
#include <rte_ethdev.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

using namespace npa_test_dpdk;

TEST_CASE("control operations reach the active sub-device and are replayed on a switch") {
    REQUIRE(rte_vdev_init("net_npa8",
                          "dev(net_ctlwatch81),dev(net_ctlwatch82),dwell_ms=0,auto=0") == 0);
    const std::uint16_t port = port_by_name("net_npa8");
    const std::uint16_t a = port_by_name("net_ctlwatch81");
    const std::uint16_t b = port_by_name("net_ctlwatch82");
    rte_eth_conf conf{};
    conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_VLAN_FILTER;
    start_port(port, 1, conf);
    const rte_ether_addr mac{{0x02, 0, 0, 0, 0, 0x11}};
    const rte_ether_addr extra{{0x02, 0, 0, 0, 0, 0x22}};
    rte_ether_addr m = mac, e = extra;
    REQUIRE(rte_eth_promiscuous_enable(port) == 0);
    REQUIRE(rte_eth_allmulticast_enable(port) == 0);
    REQUIRE(rte_eth_dev_default_mac_addr_set(port, &m) == 0);
    REQUIRE(rte_eth_dev_mac_addr_add(port, &e, 0) == 0);
    REQUIRE(rte_eth_dev_set_mtu(port, 4000) == 0);
    REQUIRE(rte_eth_dev_vlan_filter(port, 100, 1) == 0);
    // The active sub-device has all of it; the standby one nothing yet.
    CHECK(rte_eth_promiscuous_get(a) == 1);
    CHECK(rte_eth_allmulticast_get(a) == 1);
    CHECK(is_default_mac(a, mac));
    CHECK(has_mac(a, extra));
    CHECK(mtu_of(a) == 4000);
    CHECK(has_vlan(a, 100));
    CHECK(rte_eth_promiscuous_get(b) == 0);
    CHECK_FALSE(has_mac(b, extra));
    CHECK_FALSE(has_vlan(b, 100));

    // A switch replays everything onto the new path.
    REQUIRE(rte_pmd_npa_switch(port, 1) == 0);
    wait_switch_done(port, 1);
    REQUIRE(active_of(port) == 1);
    CHECK(rte_eth_promiscuous_get(b) == 1);
    CHECK(rte_eth_allmulticast_get(b) == 1);
    CHECK(is_default_mac(b, mac));
    CHECK(has_mac(b, extra));
    CHECK(mtu_of(b) == 4000);
    CHECK(has_vlan(b, 100));

    // Undone on the new path; the old one, when it comes back, loses what it still had.
    REQUIRE(rte_eth_dev_mac_addr_remove(port, &e) == 0);
    REQUIRE(rte_eth_dev_vlan_filter(port, 100, 0) == 0);
    REQUIRE(rte_eth_promiscuous_disable(port) == 0);
    REQUIRE(rte_eth_dev_set_mtu(port, 1500) == 0);
    CHECK_FALSE(has_mac(b, extra));
    CHECK_FALSE(has_vlan(b, 100));
    CHECK(rte_eth_promiscuous_get(b) == 0);
    CHECK(mtu_of(b) == 1500);
    CHECK(has_mac(a, extra)); // a carries no traffic: untouched until it is used again
    REQUIRE(rte_eth_dev_vlan_filter(port, 200, 1) == 0);
    REQUIRE(rte_pmd_npa_switch(port, 0) == 0);
    wait_switch_done(port, 1);
    REQUIRE(active_of(port) == 0);
    CHECK_FALSE(has_mac(a, extra));
    CHECK_FALSE(has_vlan(a, 100));
    CHECK(has_vlan(a, 200));
    CHECK(rte_eth_promiscuous_get(a) == 0);
    CHECK(rte_eth_allmulticast_get(a) == 1);
    CHECK(mtu_of(a) == 1500);

    // Removal and return (hot plug) of a sub-device: the new port gets the state too.
    REQUIRE(rte_eth_dev_mac_addr_add(port, &e, 0) == 0);
    rte_eth_dev_callback_process(&rte_eth_devices[a], RTE_ETH_EVENT_INTR_RMV, nullptr);
    wait_switch_done(port, 1);
    REQUIRE(active_of(port) == 1);
    CHECK(has_mac(b, extra));
    CHECK(has_vlan(b, 200));
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa8") == 0);
}

TEST_CASE("the control state the application set survives stop and start") {
    REQUIRE(rte_vdev_init("net_npa40", "dev(net_ctlwatch401)") == 0);
    const std::uint16_t port = port_by_name("net_npa40");
    const std::uint16_t a = port_by_name("net_ctlwatch401");
    rte_eth_conf conf{};
    conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_VLAN_FILTER;
    start_port(port, 1, conf);
    rte_ether_addr m{{0x02, 0, 0, 0, 0, 0x13}};
    REQUIRE(rte_eth_promiscuous_enable(port) == 0);
    REQUIRE(rte_eth_allmulticast_enable(port) == 0);
    REQUIRE(rte_eth_dev_default_mac_addr_set(port, &m) == 0);
    REQUIRE(rte_eth_dev_set_mtu(port, 3000) == 0);
    REQUIRE(rte_eth_dev_vlan_filter(port, 300, 1) == 0);
    REQUIRE(rte_eth_dev_stop(port) == 0);
    // While the port is stopped the sub-device loses all of it (as a reset would) ...
    REQUIRE(rte_eth_promiscuous_disable(a) == 0);
    REQUIRE(rte_eth_allmulticast_disable(a) == 0);
    REQUIRE(rte_eth_dev_set_mtu(a, 1500) == 0);
    REQUIRE(rte_eth_dev_vlan_filter(a, 300, 0) == 0);
    rte_ether_addr other{{0x02, 0, 0, 0, 0, 0x99}};
    REQUIRE(rte_eth_dev_default_mac_addr_set(a, &other) == 0);
    // ... and the next start gives it back what the application set, nothing else.
    REQUIRE(rte_eth_dev_start(port) == 0);
    CHECK(rte_eth_promiscuous_get(a) == 1);
    CHECK(rte_eth_allmulticast_get(a) == 1);
    CHECK(is_default_mac(a, m));
    CHECK(mtu_of(a) == 3000);
    CHECK(has_vlan(a, 300));
    CHECK_FALSE(has_vlan(a, 301));
    REQUIRE(rte_eth_promiscuous_disable(port) == 0);
    REQUIRE(rte_eth_dev_stop(port) == 0);
    REQUIRE(rte_eth_promiscuous_enable(a) == 0);
    REQUIRE(rte_eth_dev_start(port) == 0);
    CHECK(rte_eth_promiscuous_get(a) == 0);  // the last setting is the one kept
    CHECK(rte_eth_allmulticast_get(a) == 1);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa40") == 0);
}

TEST_CASE("a control operation a sub-device refuses fails in the application") {
    REQUIRE(rte_vdev_init(
                "net_npa9",
                "dev(net_ctlwatch91,deny_vlan=77),dev(net_ctlwatch92,deny_mtu=3000,deny_mac=1),"
                "dwell_ms=0,backoff_ms=0,auto=0") == 0);
    const std::uint16_t port = port_by_name("net_npa9");
    const std::uint16_t a = port_by_name("net_ctlwatch91");
    const std::uint16_t b = port_by_name("net_ctlwatch92");
    rte_eth_conf conf{};
    conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_VLAN_FILTER;
    start_port(port, 1, conf);
    {
        log_capture log;
        CHECK(rte_eth_dev_vlan_filter(port, 77, 1) == -EPERM);
        CHECK(log.text().find("add_vlan refused") != std::string::npos);
    }
    CHECK_FALSE(has_vlan(a, 77));
    CHECK_FALSE(has_vlan(port, 77)); // ethdev did not record it either
    // Accepted by a, refused by b: the switch to b fails and a keeps the traffic.
    REQUIRE(rte_eth_dev_set_mtu(port, 3000) == 0);
    CHECK(rte_pmd_npa_switch(port, 1) < 0);
    CHECK(active_of(port) == 0);
    REQUIRE(rte_eth_dev_set_mtu(port, 1500) == 0);
    REQUIRE(rte_pmd_npa_switch(port, 1) == 0);
    wait_switch_done(port, 1);
    REQUIRE(active_of(port) == 1);
    CHECK(rte_eth_dev_set_mtu(port, 3000) == -EPERM);
    CHECK(mtu_of(port) == 1500);
    CHECK(mtu_of(b) == 1500);
    rte_ether_addr e{{0x02, 0, 0, 0, 0, 0x33}};
    CHECK(rte_eth_dev_mac_addr_add(port, &e, 0) < 0);
    CHECK_FALSE(has_mac(port, e));
    CHECK_FALSE(has_mac(b, e));
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa9") == 0);
}

TEST_CASE("settings made while stopped are checked, and refused at start with the reason") {
    REQUIRE(rte_vdev_init("net_npa10", "dev(net_ctlwatch101,deny_mtu=2000)") == 0);
    const std::uint16_t port = port_by_name("net_npa10");
    configure_port(port, 1);
    REQUIRE(rte_eth_dev_set_mtu(port, 2000) == 0); // stopped: only checked and kept
    {
        log_capture log;
        CHECK(rte_eth_dev_start(port) == -EPERM);
        const std::string text = log.text();
        CAPTURE(text);
        CHECK(text.find("no sub-device could be started: MTU refused by the sub-device") !=
              std::string::npos);
    }
    CHECK_FALSE(link_is_up(port));
    REQUIRE(rte_eth_dev_set_mtu(port, 1800) == 0);
    REQUIRE(rte_eth_dev_start(port) == 0);
    CHECK(mtu_of(port_by_name("net_ctlwatch101")) == 1800);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa10") == 0);
}

TEST_CASE("dev_info is the intersection of the usable sub-devices") {
    const std::uint64_t rx_a = RTE_ETH_RX_OFFLOAD_VLAN_FILTER | RTE_ETH_RX_OFFLOAD_CHECKSUM |
                               RTE_ETH_RX_OFFLOAD_VLAN_STRIP | RTE_ETH_RX_OFFLOAD_RSS_HASH;
    const std::uint64_t rx_b =
        RTE_ETH_RX_OFFLOAD_VLAN_FILTER | RTE_ETH_RX_OFFLOAD_CHECKSUM | RTE_ETH_RX_OFFLOAD_SCATTER;
    const std::uint64_t tx_a = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
    const std::uint64_t tx_b = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    char args[256];
    std::snprintf(args, sizeof args,
                  "dev(net_ctlwatch111,rx_capa=0x%llx,tx_capa=0x%llx,queues=4,max_desc=2048,"
                  "max_mtu=9000),dev(net_ctlwatch112,rx_capa=0x%llx,tx_capa=0x%llx,queues=2,"
                  "max_desc=1024,max_mtu=3000)",
                  static_cast<unsigned long long>(rx_a), static_cast<unsigned long long>(tx_a),
                  static_cast<unsigned long long>(rx_b), static_cast<unsigned long long>(tx_b));
    REQUIRE(rte_vdev_init("net_npa11", args) == 0);
    const std::uint16_t port = port_by_name("net_npa11");
    rte_eth_dev_info a{}, b{}, n{};
    REQUIRE(rte_eth_dev_info_get(port_by_name("net_ctlwatch111"), &a) == 0);
    REQUIRE(rte_eth_dev_info_get(port_by_name("net_ctlwatch112"), &b) == 0);
    REQUIRE(rte_eth_dev_info_get(port, &n) == 0);
    CHECK(n.rx_offload_capa == (a.rx_offload_capa & b.rx_offload_capa));
    CHECK(n.rx_offload_capa == (rx_a & rx_b));
    CHECK(n.tx_offload_capa == (tx_a & tx_b));
    CHECK(n.max_rx_queues == 2);
    CHECK(n.max_tx_queues == 2);
    CHECK(n.rx_desc_lim.nb_max == 1024);
    CHECK(n.tx_desc_lim.nb_max == 1024);
    CHECK(n.max_mtu == 3000);
    CHECK(n.min_mtu == std::max(a.min_mtu, b.min_mtu));
    // An offload only one sub-device has cannot be asked for.
    rte_eth_conf conf{};
    conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_VLAN_STRIP;
    CHECK(rte_eth_dev_configure(port, 1, 1, &conf) < 0);
    // Without the second sub-device, what the first offers is what is left.
    rte_eth_dev_callback_process(&rte_eth_devices[port_by_name("net_ctlwatch112")],
                                 RTE_ETH_EVENT_INTR_RMV, nullptr);
    REQUIRE(rte_eth_dev_info_get(port, &n) == 0);
    CHECK(n.rx_offload_capa == rx_a);
    CHECK(n.tx_offload_capa == tx_a);
    CHECK(n.max_rx_queues == 4);
    CHECK(n.max_mtu == 9000);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa11") == 0);
}

TEST_CASE("link follows the active sub-device, and is down when every path is down") {
    REQUIRE(rte_vdev_init("net_npa12",
                          "dev(net_ctlwatch121,speed=10000),dev(net_ctlwatch122,speed=25000),"
                          "dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa12");
    const std::uint16_t a = port_by_name("net_ctlwatch121");
    const std::uint16_t b = port_by_name("net_ctlwatch122");
    CHECK_FALSE(link_is_up(port)); // not started
    start_port(port, 1);
    CHECK(link_is_up(port));
    CHECK(link_of(port).link_speed == 10000);
    REQUIRE(rte_eth_dev_set_link_down(a) == 0);
    for (int i = 0; i < 60'000 && active_of(port) != 1; ++i)
        usleep(1000);
    REQUIRE(active_of(port) == 1);
    wait_switch_done(port, 1);
    CHECK(link_is_up(port));
    CHECK(link_of(port).link_speed == 25000);
    REQUIRE(rte_eth_dev_set_link_down(b) == 0);
    // Whichever path the port tries now, its link is down.
    for (int i = 0; i < 20; ++i) {
        CHECK_FALSE(link_is_up(port));
        usleep(5000);
    }
    REQUIRE(rte_eth_dev_set_link_up(b) == 0);
    REQUIRE(rte_eth_dev_set_link_up(a) == 0);
    bool up = false;
    for (int i = 0; i < 60'000 && !up; ++i) {
        up = link_is_up(port);
        if (!up)
            usleep(1000);
    }
    CHECK(up);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK_FALSE(link_is_up(port));
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa12") == 0);
}

TEST_CASE("stop and close wait for a policy tick in progress: none outlives the port") {
    REQUIRE(rte_vdev_init("net_npa13", "dev(net_ctlwatch131),dev(net_ctlwatch132)") == 0);
    const std::uint16_t port = port_by_name("net_npa13");
    start_port(port, 1);
    // The policy timer reads the active sub-device's link on every tick; hold each read
    // long enough that stop is certain to come while one is in progress.
    ctl_device::link_calls = 0;
    ctl_device::link_hold_ms = 200;
    for (int i = 0; i < 10'000 && ctl_device::link_busy.load() == 0; ++i)
        usleep(1000);
    REQUIRE(ctl_device::link_busy.load() == 1);
    CHECK(rte_eth_dev_stop(port) == 0);
    const int busy_after_stop = ctl_device::link_busy.load();
    const unsigned calls_after_stop = ctl_device::link_calls.load();
    CHECK(rte_eth_dev_close(port) == 0);
    ctl_device::link_hold_ms = 0;
    // Stop returned only once the tick had: nothing runs inside the port any more, and
    // no tick begins afterwards (close frees the port's memory).
    CHECK(busy_after_stop == 0);
    usleep(60'000); // three policy periods
    CHECK(ctl_device::link_calls.load() == calls_after_stop);
    CHECK(rte_vdev_uninit("net_npa13") == 0);
}

TEST_CASE("port counters count each packet once, however often the paths switch") {
    REQUIRE(rte_vdev_init("net_npa13", "dev(net_ring131),dev(net_ring132),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa13");
    start_port(port, 1);
    REQUIRE(bounce(port, 32) == 32);
    rte_eth_stats before{};
    REQUIRE(rte_eth_stats_get(port, &before) == 0);
    CHECK(before.ipackets == 32);
    CHECK(before.opackets == 32);
    // Six idle switches: 0 -> 1 -> 0 ... every path comes back with its history.
    for (std::uint32_t i = 0; i < 6; ++i) {
        REQUIRE(rte_pmd_npa_switch(port, (i + 1) % 2) == 0);
        wait_switch_done(port, 1);
    }
    rte_eth_stats after{};
    REQUIRE(rte_eth_stats_get(port, &after) == 0);
    CHECK(after.ipackets == 32);
    CHECK(after.opackets == 32);
    CHECK(after.ibytes == before.ibytes);
    CHECK(after.obytes == before.obytes);
    CHECK(xstat(port, "path0_rx_packets") == 32);
    CHECK(xstat(port, "path1_rx_packets") == 0);
    // More traffic on the path that came back six times counts once too.
    REQUIRE(bounce(port, 32) == 32);
    REQUIRE(rte_eth_stats_get(port, &after) == 0);
    CHECK(after.ipackets == 64);
    CHECK(after.opackets == 64);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa13") == 0);
}

/// Forwards whatever `port` receives back to it while switching paths every few
/// rounds, until `switches` switches completed; counts TX the port refused and mbufs
/// that came up with another port's id.
