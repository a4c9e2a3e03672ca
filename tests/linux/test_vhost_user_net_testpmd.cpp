// The virtio-net plugin over vhost-user against DPDK's net_vhost in dpdk-testpmd, one queue
// pair: rxonly, EVENT_IDX on and off, macswap, txonly, packed rings, testpmd killed
// mid-stream (test_vhost_user_net.cpp says what each checks).
#include <doctest/doctest.h>

#include "vhost_user_net_rig.hpp"

#ifdef NPA_TESTPMD

#include <npa/control/virtio_net.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace npa::test::vhost_net;

namespace {

// npa sends n frames to testpmd's macswap and checks each one that comes back.
void macswap_round(bool mrg, bool polled, bool in_order, bool packed = false) {
    session s({"--forward-mode=macswap", "--port-topology=loop"}, mrg, polled, in_order, true, 1,
              packed);
    constexpr std::uint64_t n = 5000;
    constexpr std::uint64_t window = 128;       // fewer than the RX ring holds: testpmd never drops
    constexpr std::uint64_t probe = 1ull << 40; // sequence numbers of warm-up frames
    std::uint64_t next = 0, back = 0, bytes = 0, bad = 0, probes = 0, probes_back = 0, irqs = 0;
    const auto on_frame = [&](const buffer_t& b) {
        std::uint64_t seq = 0;
        std::memcpy(&seq, b.data() + 14, 8);
        if (seq >= probe) {
            ++probes_back;
            return;
        }
        bad += swapped_back(b, s.cfg.mac, far_mac, back++) ? 0 : 1;
    };
    CHECK(warm_up(
        [&] {
            std::uint64_t pb = 0;
            const std::uint64_t seq = probe + probes;
            probes += s.send(seq, seq + 1, pb) - seq;
        },
        [&] { s.receive(on_frame); }, probes_back));
    REQUIRE(s.tx_drained());
    const std::int64_t i0 = s.pmd.port_stat("ipackets"), o0 = s.pmd.port_stat("opackets"),
                       ib0 = s.pmd.port_stat("ibytes");
    const std::uint64_t rx0 = s.p->plugin.stats(0).rx_packets;
    if (!polled) {
        s.p->plugin.irq_arm(0); // the call eventfds are waited on
    }
    const auto t0 = std::chrono::steady_clock::now();
    const bool done = wait_until(30s, [&] {
        for (int k = 0; k < 64 && back < n; ++k) {
            if (next < n && next - back < window) {
                next = s.send(next, std::min(n, back + window), bytes);
            }
            if (s.receive(on_frame) == 0 && !polled) {
                irqs += s.p->dev.wait(0, 1) ? 1 : 0;
            }
        }
        return back >= n;
    });
    const double secs = seconds_since(t0);
    const npa::queue_stats& qs = s.p->plugin.stats(0);
    INFO("sent ", next, ", back ", back, ", port ipackets ", s.pmd.port_stat("ipackets"),
         ", opackets ", s.pmd.port_stat("opackets"), ", npa rx_dropped ", qs.rx_dropped,
         ", rx_no_buffer ", qs.rx_no_buffer, ", tx in flight ", s.p->plugin.tx_in_flight(0), "\n",
         s.pmd.telemetry("/ethdev/xstats,0"));
    CHECK(done);
    CHECK(back == n);
    CHECK(bad == 0);
    CHECK(s.tx_drained());
    CHECK(wait_until(
        5s, [&] { return s.pmd.port_stat("opackets") - o0 == static_cast<std::int64_t>(n); }));
    CHECK(s.pmd.port_stat("ipackets") - i0 == static_cast<std::int64_t>(n));
    CHECK(s.pmd.port_stat("ibytes") - ib0 == static_cast<std::int64_t>(bytes));
    CHECK(s.p->plugin.stats(0).rx_packets - rx0 == n);
    CHECK((polled || irqs > 0)); // DPDK signalled the call eventfd
    CHECK(s.p->plugin.stats(0).bad_completion == 0);
    CHECK(s.p->plugin.health() == npa::errc::ok);
    const npa::virtio::driver_stats ts = s.p->plugin.tx_ring_stats(0);
    CHECK(ts.passed_over == 0);
    CHECK(ts.bad_used_id == 0);
    char line[300];
    std::snprintf(
        line, sizeof line,
        "macswap, %s rings, MRG_RXBUF %s, IN_ORDER %s, %s: %llu frames there and back in %.3f s "
        "after %llu warm-up frames, %llu interrupts, %llu transmitq batches (features 0x%llx)",
        packed ? "packed" : "split", mrg ? "on" : "off", in_order ? "on" : "off",
        polled ? "polled" : "eventfds", static_cast<unsigned long long>(n), secs,
        static_cast<unsigned long long>(probes), static_cast<unsigned long long>(irqs),
        static_cast<unsigned long long>(ts.batches),
        static_cast<unsigned long long>(s.p->plugin.features()));
    MESSAGE(line);
    s.p->plugin.detach();
    CHECK(s.p->api->audit().balanced());
}

} // namespace

namespace {

// npa sends 10,000 frames to testpmd's rxonly port, which counts them; then detach (the
// reset stops both rings: GET_VRING_BASE) and attach again on the same connection.
void rxonly_round(bool mrg, bool packed) {
    session s({"--forward-mode=rxonly"}, mrg, false, true, true, 1, packed);
    constexpr std::uint64_t n = 10000;
    std::uint64_t next = 0, bytes = 0;
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(wait_until(30s, [&] {
        for (int k = 0; k < 256 && next < n; ++k) {
            next = s.send(next, n, bytes);
        }
        return next == n;
    }));
    CHECK(s.tx_drained());
    const double secs = seconds_since(t0);
    CHECK(wait_until(10s,
                     [&] { return s.pmd.port_stat("ipackets") == static_cast<std::int64_t>(n); }));
    CHECK(s.pmd.port_stat("ipackets") == static_cast<std::int64_t>(n));
    CHECK(s.pmd.port_stat("ibytes") == static_cast<std::int64_t>(bytes));
    CHECK(s.p->plugin.stats(0).tx_packets == n);
    CHECK(s.p->plugin.stats(0).tx_bytes == bytes);
    CHECK(s.p->plugin.health() == npa::errc::ok);
    char line[160];
    std::snprintf(line, sizeof line,
                  "rxonly: %llu frames, %llu bytes sent and completed in %.3f s; the back end "
                  "offered 0x%llx, kicks %llu",
                  static_cast<unsigned long long>(n), static_cast<unsigned long long>(bytes), secs,
                  static_cast<unsigned long long>(s.p->dev.offered()),
                  static_cast<unsigned long long>(s.p->dev.kicks()));
    MESSAGE(line);
    s.p->plugin.detach();
    CHECK(s.p->api->audit().balanced());
    // Where net_vhost says the transmitq stopped: every frame was one descriptor, taken.
    // Packed: the position in bits 0..14, the wrap counter (lap 1 is 1) in bit 15.
    const std::uint32_t tx_ring = one_pair().tx_ring_size;
    if (packed) {
        const npa::virtio::packed_cursor at = vu::decode_base(s.p->dev.ring_base(1));
        CHECK(at.index == n % tx_ring);
        CHECK(at.wrap == ((n / tx_ring) % 2 == 0));
    } else {
        CHECK(s.p->dev.ring_base(1) == static_cast<std::uint16_t>(n));
    }
    // Attach again on the same connection: the reset stopped both rings (GET_VRING_BASE),
    // the sequence hands them over afresh and frames flow again.
    const npa::status again = s.p->plugin.attach(*s.p->api, s.p->dev.window(), one_pair());
    INFO(std::string(again.reason()), " / ", s.p->dev.last_error());
    REQUIRE(again);
    std::uint64_t more = 0;
    CHECK(wait_until(10s, [&] {
        more = s.send(more, 1000, bytes);
        return more == 1000;
    }));
    CHECK(s.tx_drained());
    CHECK(wait_until(
        10s, [&] { return s.pmd.port_stat("ipackets") == static_cast<std::int64_t>(n + 1000); }));
    CHECK(s.pmd.port_stat("ibytes") == static_cast<std::int64_t>(bytes));
    s.p->plugin.detach();
    CHECK(s.p->api->audit().balanced());
}

} // namespace

TEST_CASE("virtio-net over vhost-user, testpmd rxonly: 10,000 frames of 60..1514 bytes counted by "
          "the port") {
    rxonly_round(true, false);
}

TEST_CASE("virtio-net over vhost-user, EVENT_IDX on and off: kicks follow the back end's avail_event") {
    // net_vhost polls its rings: with EVENT_IDX it never moves avail_event (DPDK writes it
    // only when guest notifications are enabled), without it it sets VRING_USED_F_NO_NOTIFY.
    // On packed rings the kicks follow the device's event area (ENABLE, DISABLE, or with
    // EVENT_IDX negotiated off_wrap under RING_EVENT_FLAGS_DESC, read with the wrap-aware
    // rule); 3,000 frames pass either way.
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        std::uint64_t kicks[2] = {0, 0};
        for (const bool ev : {true, false}) {
            session s({"--forward-mode=rxonly"}, true, false, true, ev, 1, packed);
            constexpr std::uint64_t n = 3000;
            std::uint64_t next = 0, bytes = 0;
            CHECK(wait_until(30s, [&] {
                for (int k = 0; k < 256 && next < n; ++k) {
                    next = s.send(next, n, bytes);
                }
                return next == n;
            }));
            CHECK(s.tx_drained());
            CHECK(wait_until(10s, [&] { return s.pmd.port_stat("ipackets") == static_cast<std::int64_t>(n); }));
            CHECK(s.p->plugin.health() == npa::errc::ok);
            kicks[ev ? 0 : 1] = s.p->dev.kicks();
            s.p->plugin.detach();
            CHECK(s.p->api->audit().balanced());
        }
        char line[140];
        std::snprintf(line, sizeof line, "3,000 frames (%s rings): %llu kicks with EVENT_IDX, %llu without",
                      packed ? "packed" : "split", static_cast<unsigned long long>(kicks[0]),
                      static_cast<unsigned long long>(kicks[1]));
        MESSAGE(line);
        // With EVENT_IDX avail_event stays at 0: only the publishes that pass it kick (the
        // transmitq's first, the receiveq's first refill), whatever the number of frames.
        CHECK(kicks[0] <= 2);
    }
}

TEST_CASE("virtio-net over vhost-user, testpmd macswap: frames come back whole and in order") {
    SUBCASE("MRG_RXBUF and IN_ORDER on, kick and call eventfds") {
        macswap_round(true, false, true);
    }
    SUBCASE("MRG_RXBUF and IN_ORDER off, polled rings") { macswap_round(false, true, false); }
}

namespace {

// testpmd's txonly port sends; npa receives 20,000 frames, then posts no more buffers
// and takes the rest: its count equals the port's opackets.
void txonly_round(bool mrg, bool packed) {
    session s({"--forward-mode=txonly", "--txpkts=64"}, mrg, false, true, true, 1, packed);
    std::uint64_t got = 0, bad = 0;
    const auto check = [&](const buffer_t& b) {
        const std::byte* d = b.data();
        // testpmd's txonly frame: IPv4 (EtherType 0x0800), UDP (protocol 17), 64 bytes.
        bad += b.length() == 64 && d[12] == std::byte{0x08} && d[13] == std::byte{0x00} &&
                       d[14 + 9] == std::byte{17}
                   ? 0
                   : 1;
        ++got;
    };
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(wait_until(20s, [&] {
        while (s.receive(check) != 0) {
        }
        return got >= 20000;
    }));
    const double secs = seconds_since(t0);
    // No more RX buffers: testpmd fills what is posted and then sends nothing more; npa takes
    // the rest, and the counts must agree.
    s.p->api->set_empty_pool(true);
    std::int64_t last = -1;
    CHECK(wait_until(10s, [&] {
        while (s.receive(check) != 0) {
        }
        const std::int64_t o = s.pmd.port_stat("opackets");
        const bool still = o == last && o == static_cast<std::int64_t>(got);
        last = o;
        return still;
    }));
    CHECK(static_cast<std::int64_t>(got) == s.pmd.port_stat("opackets"));
    CHECK(bad == 0);
    CHECK(s.p->plugin.stats(0).rx_packets == got);
    CHECK(s.p->plugin.health() == npa::errc::ok);
    MESSAGE("txonly: ", got, " frames received (the first 20,000 in ", secs, " s)");
    s.p->api->set_empty_pool(false);
    s.p->plugin.detach();
    CHECK(s.p->api->audit().balanced());
}

} // namespace

TEST_CASE("virtio-net over vhost-user, testpmd txonly: npa receives what the port sent") {
    txonly_round(true, false);
}

TEST_CASE("virtio-net over vhost-user on packed rings (packed_ring): rxonly, txonly and macswap, "
          "MRG_RXBUF on and off") {
    for (const bool mrg : {true, false}) {
        CAPTURE(mrg);
        rxonly_round(mrg, true);
        txonly_round(mrg, true);
        macswap_round(mrg, false, true, true);
    }
    macswap_round(true, true, true, true); // polled rings
}

TEST_CASE("virtio-net over vhost-user: testpmd killed mid-stream; nothing hangs, every buffer "
          "comes back") {
    session s({"--forward-mode=rxonly"}, true, false);
    std::uint64_t next = 0, bytes = 0;
    CHECK(wait_until(10s, [&] {
        next = s.send(next, 1u << 30, bytes);
        return next >= 3000;
    }));
    s.pmd.kill9();
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < 200; ++k) { // the data path keeps being called: it must not block
        next = s.send(next, 1u << 30, bytes);
    }
    CHECK(seconds_since(t0) < 5.0);
    CHECK(wait_until(5s, [&] { return s.p->plugin.health() == npa::errc::removed; }));
    const std::uint32_t held = s.p->plugin.tx_in_flight(0);
    s.p->plugin.detach();
    CHECK(s.p->api->unsent().size() <= held);
    auto unsent = s.p->api->take_unsent();
    s.p->api->free(unsent);
    const npa::sim::buffer_audit a = s.p->api->audit();
    CHECK(a.balanced());
    CHECK(a.with_plugin == 0);
    CHECK(a.with_caller == 0);
    // Attach again: the back end is gone, so the plugin says removed and takes nothing.
    CHECK(s.p->plugin.attach(*s.p->api, s.p->dev.window(), one_pair()).code() ==
          npa::errc::removed);
    CHECK(s.p->api->audit().balanced());
}

#endif // NPA_TESTPMD
