// net_npa's paths that go away or come back: removal and link down of the active
// sub-device under traffic (beside net_failsafe), hot plug, sub-devices the application
// detaches, switches over sub-devices whose RX never runs dry or with TX only, and the
// operator's switches. Part of the dpdk_net_npa program (net_npa_test.cpp has main()).
#include <doctest/doctest.h>

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

TEST_CASE("removal of the active sub-device mid-traffic: traffic moves on") {
    REQUIRE(rte_vdev_init("net_npa3", "dev(net_ring31),dev(net_ring32)") == 0);
    const std::uint16_t port = port_by_name("net_npa3");
    const std::uint16_t sub0 = port_by_name("net_ring31");
    start_port(port, 1);
    std::uint64_t received_before = 0;
    const loop_result r = circulate(port, 1, [&](int round) {
        if (round == rounds / 2) {
            rte_eth_stats st{};
            REQUIRE(rte_eth_stats_get(port, &st) == 0);
            received_before = st.ipackets;
            // What a hot-unplug notification looks like to the sub-device's owner.
            rte_eth_dev_callback_process(&rte_eth_devices[sub0], RTE_ETH_EVENT_INTR_RMV, nullptr);
        }
    });
    wait_switch_done(port, 1);
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.active == 1);
    CHECK(std::string{s.last_reason} == "surprise-removal");
    CHECK(s.sub_port[0] == RTE_MAX_ETHPORTS);
    CHECK(r.out_of_order == 0);
    CHECK(r.tx_refused == 0);
    // What the removed device had already received was read before the flip: nothing
    // lost, everything keeps circulating on the new path.
    CHECK(r.in_flight_end == circulating);
    CHECK(s.lost == 0);
    rte_eth_stats st{};
    REQUIRE(rte_eth_stats_get(port, &st) == 0);
    CHECK(st.ipackets > received_before);
    MESSAGE("net_npa removal: packets lost with the removed device: ",
            circulating - r.in_flight_end);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa3") == 0);
}

TEST_CASE("link down on the active sub-device moves traffic to the next path") {
    REQUIRE(rte_vdev_init("net_npa5", "dev(net_ring51),dev(net_ring52),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa5");
    const std::uint16_t sub0 = port_by_name("net_ring51");
    start_port(port, 1);
    bool moved = false;
    const loop_result r = circulate(port, 1, [&](int round) {
        if (round == rounds / 4) REQUIRE(rte_eth_dev_set_link_down(sub0) == 0);
        if (round > rounds / 4 && !moved) {
            // The port's policy timer sees the link every 20 ms; keep the loop turning.
            rte_pmd_npa_status_info s{};
            REQUIRE(rte_pmd_npa_status(port, &s) == 0);
            moved = s.active == 1;
            if (!moved) usleep(500);
            // The timer has not run by five sixths of the rounds (a loaded machine): wait
            // for it, so that traffic still runs on the new path afterwards.
            if (!moved && round == 5 * rounds / 6) {
                wait_active(port, 1, 1);
                moved = true;
            }
        }
    });
    REQUIRE(moved);
    wait_switch_done(port, 1);
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.active == 1);
    CHECK(std::string{s.last_reason} == "policy");
    CHECK(r.out_of_order == 0);
    CHECK(r.in_flight_end == circulating);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa5") == 0);
}

TEST_CASE("hot plug: a removed sub-device that comes back takes the traffic back") {
    REQUIRE(rte_vdev_init("net_npa6", "dev(net_ring61),dev(net_ring62),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa6");
    start_port(port, 1);
    rte_eth_dev_callback_process(&rte_eth_devices[port_by_name("net_ring61")],
                                 RTE_ETH_EVENT_INTR_RMV, nullptr);
    wait_switch_done(port, 1);
    // Detached by the port's timer once no queue uses it (bounded wait).
    std::uint16_t id;
    for (int i = 0; i < 60'000 && rte_eth_dev_get_port_by_name("net_ring61", &id) == 0; ++i) {
        usleep(1000);
    }
    REQUIRE(rte_eth_dev_get_port_by_name("net_ring61", &id) != 0);
    // The device comes back (what a hot-plug handler or the application does). The port
    // id is released before the device leaves the vdev bus, so the name may still be taken
    // for a moment: -EEXIST means "not yet", as for any application re-probing a device.
    int rc = rte_vdev_init("net_ring61", nullptr);
    for (int i = 0; i < 60'000 && rc == -EEXIST; ++i) {
        usleep(1000);
        rc = rte_vdev_init("net_ring61", nullptr);
    }
    REQUIRE(rc == 0);
    bool back = false;
    const loop_result r = circulate(port, 1, [&](int round) {
        if (back) return;
        rte_pmd_npa_status_info s{};
        REQUIRE(rte_pmd_npa_status(port, &s) == 0);
        back = s.active == 0;
        if (!back) usleep(500);
        // The timer has not run by five sixths of the rounds (a loaded machine): wait for
        // it, so that traffic still runs on the path it came back to.
        if (!back && round == 5 * rounds / 6) {
            wait_active(port, 1, 0);
            back = true;
        }
    });
    REQUIRE(back);
    wait_switch_done(port, 1);
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.active == 0);
    CHECK(std::string{s.last_reason} == "vf-arrived");
    CHECK(s.sub_port[0] == port_by_name("net_ring61"));
    CHECK(r.out_of_order == 0);
    CHECK(r.in_flight_end == circulating);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa6") == 0);
    (void)rte_vdev_uninit("net_ring61");  // probed by the test, so removed by it
}

/// One removal of the active sub-device under traffic, through `vdev` (net_npa or
/// net_failsafe) over two looping net_ring sub-ports: how many of the circulating
/// packets survive, and whether the other sub-port took the traffic.
struct removal_result {
    loop_result loop;
    std::uint64_t lost = 0;           ///< circulating packets gone after the removal
    std::uint64_t moved_to_other = 0; ///< packets the second sub-port sent afterwards
};
removal_result remove_active_under_traffic(const char* vdev, const char* args, const char* sub0,
                                           const char* sub1) {
    REQUIRE(rte_vdev_init(vdev, args) == 0);
    const std::uint16_t port = port_by_name(vdev);
    const std::uint16_t s0 = port_by_name(sub0);
    const std::uint16_t s1 = port_by_name(sub1);
    // net_ring never announces removal, so it does not set the flag a PMD sets when its
    // device can (fail-safe subscribes to RTE_ETH_EVENT_INTR_RMV only where it is set;
    // net_npa always does). Both PMDs see the same event on the same kind of port.
    rte_eth_devices[s0].data->dev_flags |= RTE_ETH_DEV_INTR_RMV;
    rte_eth_devices[s1].data->dev_flags |= RTE_ETH_DEV_INTR_RMV;
    start_port(port, 1);
    std::uint64_t s1_before = 0;
    removal_result res;
    res.loop = circulate(
        port, 1,
        [&](int round) {
            if (round == rounds / 2) {
                rte_eth_stats st{};
                REQUIRE(rte_eth_stats_get(s1, &st) == 0);
                s1_before = st.opackets;
                rte_eth_dev_callback_process(&rte_eth_devices[s0], RTE_ETH_EVENT_INTR_RMV, nullptr);
            }
        },
        [&] {
            // net_npa detaches the removed device from its timer once the switch is
            // done; the drain comes after that, so what the device still held is part of
            // the count. fail-safe gets a hot-plug period longer than the test: its
            // detach of a removed sub-device races with the application's bursts (its RX
            // burst crashed here when traffic or the drain ran while it detached), so its
            // count is taken before it detaches.
            if (rte_pmd_npa_is_npa_port(port) != 1)
                return;
            wait_switch_done(port, 1);
            std::uint16_t id;
            for (int i = 0; i < 60'000 && rte_eth_dev_get_port_by_name(sub0, &id) == 0; ++i) {
                usleep(1000);
            }
            CHECK(rte_eth_dev_get_port_by_name(sub0, &id) != 0);
        });
    rte_eth_stats st{};
    REQUIRE(rte_eth_stats_get(s1, &st) == 0);
    res.moved_to_other = st.opackets - s1_before;
    res.lost = circulating - res.loop.in_flight_end;
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    return res;
}

TEST_CASE("removal of the active sub-device: net_npa and net_failsafe side by side") {
    const removal_result npa = remove_active_under_traffic(
        "net_npa4", "dev(net_ring43),dev(net_ring44)", "net_ring43", "net_ring44");
    const removal_result fs = remove_active_under_traffic(
        "net_failsafe4", "dev(net_ring41),dev(net_ring42),hotplug_poll=600000", "net_ring41",
        "net_ring42");
    MESSAGE("packets lost per removal of the active sub-device (", circulating,
            " circulating): net_npa ", npa.lost, " (", npa.loop.out_of_order,
            " out of order), net_failsafe ", fs.lost, " (", fs.loop.out_of_order, " out of order)");
    // Both moved the traffic to the second sub-port.
    CHECK(npa.moved_to_other > 0);
    CHECK(fs.moved_to_other > 0);
    // net_npa reads what the removed device had already received before the flip and
    // sends nothing new to it, so nothing is lost and nothing overtakes.
    CHECK(npa.lost == 0);
    CHECK(npa.loop.out_of_order == 0);
    CHECK(npa.loop.tx_refused == 0);
    // fail-safe's result is reported, not judged (it is DPDK's); the counts must add up.
    CHECK(fs.loop.in_flight_end <= circulating);
    CHECK(rte_vdev_uninit("net_npa4") == 0);
}

struct endless_result {
    std::uint64_t forwarded = 0;
    std::uint64_t tx_refused = 0;
    std::uint64_t wrong_port = 0;
    std::uint32_t switches = 0;
};
endless_result forward_and_switch(std::uint16_t port, std::uint32_t switches) {
    endless_result r;
    std::array<rte_mbuf*, burst> pkts;
    std::uint32_t target = 0;
    rte_pmd_npa_status_info s{};
    for (int round = 0; round < 2'000'000 && r.switches < switches; ++round) {
        const std::uint16_t n = rte_eth_rx_burst(port, 0, pkts.data(), burst);
        for (std::uint16_t i = 0; i < n; ++i) r.wrong_port += pkts[i]->port != port;
        const std::uint16_t k = rte_eth_tx_burst(port, 0, pkts.data(), n);
        r.forwarded += k;
        r.tx_refused += n - k;
        rte_pktmbuf_free_bulk(pkts.data() + k, n - k);
        if (round % 64 == 0 && rte_pmd_npa_status(port, &s) == 0 && s.switching == 0) {
            if (s.active == target && rte_pmd_npa_switch(port, target ^ 1u) == 0) {
                target ^= 1u;
                ++r.switches;
            }
        }
    }
    return r;
}

TEST_CASE("received mbufs carry net_npa's port id, whatever the sub-port left in them") {
    // net_ring leaves `port` as the sender wrote it: a burst whose first mbuf already has
    // net_npa's id (the common case in a loop) and others that do not must all come up
    // with net_npa's id, and so must a burst whose first mbuf has another.
    REQUIRE(rte_vdev_init("net_npa15", "dev(net_ring151),dev(net_ring152)") == 0);
    const std::uint16_t port = port_by_name("net_npa15");
    start_port(port, 1);
    for (const bool first_right : {true, false}) {
        std::array<rte_mbuf*, 8> out{};
        REQUIRE(rte_pktmbuf_alloc_bulk(g_pool->get(), out.data(), out.size()) == 0);
        for (std::size_t i = 0; i < out.size(); ++i) {
            out[i]->pkt_len = 64;
            out[i]->data_len = 64;
            const bool right = i == 0 ? first_right : i % 3 == 0;
            out[i]->port = right ? port : static_cast<std::uint16_t>(port + 1 + i);
        }
        REQUIRE(rte_eth_tx_burst(port, 0, out.data(), out.size()) == out.size());
        std::array<rte_mbuf*, 8> in{};
        std::uint16_t n = 0;
        for (int round = 0; round < 1000 && n < in.size(); ++round) {
            n += rte_eth_rx_burst(port, 0, in.data() + n, static_cast<std::uint16_t>(in.size() - n));
        }
        REQUIRE(n == in.size());
        for (std::uint16_t i = 0; i < n; ++i) {
            CHECK(in[i]->port == port);
        }
        rte_pktmbuf_free_bulk(in.data(), n);
    }
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa15") == 0);
}

TEST_CASE("switches over sub-devices whose RX never runs dry: no TX refused") {
    // net_null answers every RX burst in full: a drain that waited for a short burst
    // would never end, and TX would wait until the backlog overflowed.
    REQUIRE(rte_vdev_init("net_npa14", "dev(net_null141),dev(net_null142),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa14");
    start_port(port, 1);
    log_capture log;
    const endless_result r = forward_and_switch(port, 20);
    MESSAGE("net_null: ", r.forwarded, " forwarded over ", r.switches, " switches, ",
            r.tx_refused, " TX refused");
    CHECK(r.switches == 20);
    CHECK(r.forwarded > 0);
    CHECK(r.tx_refused == 0);
    // Received mbufs belong to net_npa's port, not to the hidden sub-port.
    CHECK(r.wrong_port == 0);
    wait_switch_done(port, 1);
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.lost == 0);
    CHECK(s.switches == 21);
    CHECK(rte_eth_dev_stop(port) == 0);
    // The sub-ports' PMDs allocate and free the mbufs themselves (a packet received on
    // one path is sent on the next): no path keeps buffers, and nothing says one does.
    const std::string text = log.text();
    CHECK(text.find("did not return every buffer") == std::string::npos);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa14") == 0);
}

TEST_CASE("switches complete when the application only transmits (testpmd txonly)") {
    REQUIRE(rte_vdev_init("net_npa17", "dev(net_null171),dev(net_null172),dwell_ms=0") == 0);
    const std::uint16_t port = port_by_name("net_npa17");
    start_port(port, 1);
    std::uint32_t target = 0, switches = 0;
    std::uint64_t refused = 0;
    rte_pmd_npa_status_info s{};
    for (int round = 0; round < 200'000 && switches < 10; ++round) {
        std::array<mbuf_ref, burst> b;
        REQUIRE(g_pool->alloc_bulk(b) == burst);
        rte_mbuf** m = npa::dpdk::as_mbufs(std::span<mbuf_ref>(b));
        for (std::uint16_t i = 0; i < burst; ++i) {
            m[i]->pkt_len = 64;
            m[i]->data_len = 64;
        }
        const std::uint16_t k = rte_eth_tx_burst(port, 0, m, burst);
        refused += burst - k;
        rte_pktmbuf_free_bulk(m + k, burst - k);
        if (round % 64 == 0 && rte_pmd_npa_status(port, &s) == 0 && s.switching == 0 &&
            s.active == target && rte_pmd_npa_switch(port, target ^ 1u) == 0) {
            target ^= 1u;
            ++switches;
        }
    }
    CHECK(switches == 10);
    // While the old path holds no TX, TX goes to the new path during the drain instead of
    // waiting for an RX drain this application never polls for.
    CHECK(refused == 0);
    wait_switch_done(port, 1);
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.switches == 11);
    MESSAGE("TX only: ", switches, " switches, ", refused, " TX refused");
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa17") == 0);
}

TEST_CASE("sub-devices the application detaches are removed: traffic moves on") {
    REQUIRE(rte_vdev_init("net_npa15", "dev(net_ring151),dev(net_ring152),dev(net_ring153)") ==
            0);
    const std::uint16_t port = port_by_name("net_npa15");
    const std::uint16_t sub0 = port_by_name("net_ring151");
    const std::uint16_t sub2 = port_by_name("net_ring153");
    start_port(port, 1);
    // The standby sub-device goes first: it leaves the port's status at once.
    REQUIRE(rte_dev_remove(rte_eth_devices[sub2].device) == 0);
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.sub_port[2] == RTE_MAX_ETHPORTS);
    CHECK(s.active == 0);
    // Then the active one, under traffic (what `device detach` in testpmd does).
    std::uint64_t rx_at_removal = 0;
    const loop_result r = circulate(port, 1, [&](int round) {
        if (round == rounds / 4) {
            rte_eth_stats st{};
            REQUIRE(rte_eth_stats_get(port, &st) == 0);
            rx_at_removal = st.ipackets;
            REQUIRE(rte_dev_remove(rte_eth_devices[sub0].device) == 0);
        }
    });
    wait_switch_done(port, 1);
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.active == 1);
    CHECK(std::string{s.last_reason} == "surprise-removal");
    CHECK(s.sub_port[0] == RTE_MAX_ETHPORTS);
    CHECK(r.out_of_order == 0);
    // The packets the detached ring held went with it; new traffic takes the other path.
    CHECK(r.received >= rx_at_removal);
    CHECK(bounce(port, 64) == 64);
    CHECK(xstat(port, "path1_rx_packets") >= 64);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa15") == 0);
}

TEST_CASE("operator switches: to the active path is a no-op, dwell applies to automatic ones") {
    REQUIRE(rte_vdev_init("net_npa16", "dev(net_ring161),dev(net_ring162),dwell_ms=60000") == 0);
    const std::uint16_t port = port_by_name("net_npa16");
    start_port(port, 1);
    CHECK(rte_pmd_npa_switch(port, 0) == 0);
    CHECK(active_of(port) == 0);
    // Well within the dwell time: an operator may still move the traffic.
    CHECK(rte_pmd_npa_switch(port, 1) == 0);
    wait_switch_done(port, 1);
    CHECK(active_of(port) == 1);
    CHECK(rte_pmd_npa_switch(port, 1) == 0);
    CHECK(rte_pmd_npa_switch(port, 2) == -EINVAL);
    rte_pmd_npa_status_info s{};
    REQUIRE(rte_pmd_npa_status(port, &s) == 0);
    CHECK(s.switches == 2);
    CHECK(rte_eth_dev_stop(port) == 0);
    CHECK(rte_eth_dev_close(port) == 0);
    CHECK(rte_vdev_uninit("net_npa16") == 0);
}
