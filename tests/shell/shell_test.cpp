// The shell: switching, bookkeeping, control path, capabilities, stats, hysteresis.
// Single-threaded (inline switch) against the fake path (fake_shell_rig.hpp); drains over
// devices whose RX never runs dry are in shell_drain_test.cpp, run-time paths in
// shell_paths_test.cpp, threaded variants in shell_threads_test.cpp.
#include <doctest/doctest.h>

#include "fake_shell_rig.hpp"

#include <npa/fmt.hpp>
#include <npa/shell.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

using namespace npa_test;

TEST_CASE("boot on the emulated path: traffic both ways, audit balanced") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    CHECK(r.sh.active_path() == 0);
    CHECK(r.sh.history().switches() == 1);
    CHECK(r.sh.audit().ok());
    for (int i = 0; i < 100; ++i) {
        CHECK(r.send(8) == 8);
        r.emu.inject(0, static_cast<std::uint64_t>(i));
        CHECK(r.receive() == 1);
        CHECK(r.sh.audit().ok());
    }
    pump(r, 4);
    check_tx(r);
    check_sequence(r.received, 100);
    CHECK(r.sh.path_stats(0, 0).tx_packets == 800);
}

TEST_CASE("switch under bidirectional traffic: no TX loss, no reordering, RX delivered") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.emu.completion_delay = 3;  // keep TX in flight so the drain has work to do
    r.vf.completion_delay = 3;
    std::uint64_t rx_seq = 0;
    // Once a path is prepared the (embedded) switch forwards the guest's traffic to it;
    // the old device keeps what it already received and the drain delivers it.
    fake_dev* rx_dev = &r.emu;
    for (int round = 0; round < 200; ++round) {
        (void)r.send(5);
        rx_dev->inject(0, rx_seq++);
        (void)r.receive();
        if (round % 20 == 10) {
            if (r.sh.active_path() == 0) {
                REQUIRE(r.sh.request_switch<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
                rx_dev = &r.vf;
            } else {
                REQUIRE(r.sh.request_switch<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
                rx_dev = &r.emu;
            }
        }
        (void)r.sh.service();
        CHECK(r.sh.audit().ok());
    }
    while (r.sh.service()) pump(r, 1);
    pump(r, 8);
    for (int i = 0; i < 8; ++i) (void)r.receive();
    check_tx(r);
    check_sequence(r.received, rx_seq);
    CHECK(r.sh.history().switches() == 1 + 10);
    CHECK(r.sh.history().total_tx_lost() == 0);
    CHECK(r.sh.audit().ok());
}

TEST_CASE("a frame the old device shows only after its first empty burst is delivered when the "
          "drain waits for RX to be quiet (policy.rx_quiet_ns)") {
    // A device may hold a received frame before it shows it (a TPACKET_V3 block until its
    // retire timer): at the first empty burst of the drain, the frame is not visible yet.
    for (const std::uint64_t quiet : {std::uint64_t{0}, std::uint64_t{1'000'000}}) {
        CAPTURE(quiet);
        auto cfg = rig::default_cfg();
        cfg.policy.rx_quiet_ns = quiet;
        cfg.policy.drain_timeout_ns = 5'000'000;
        rig r(cfg);
        REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
        REQUIRE(r.sh.request_switch<1>(r.vf, r.link(), npa::switch_reason::operator_request).ok());
        CHECK(r.receive() == 0); // the old device shows nothing yet
        (void)r.sh.poll(0);
        (void)r.sh.service();
        test_env::clock += 100'000;
        r.emu.inject(0, 0); // ... and 0.1 ms later it does
        for (int i = 0; i < 100 && r.sh.switching(); ++i) {
            (void)r.receive();
            (void)r.sh.poll(0);
            (void)r.sh.service();
            test_env::clock += 100'000;
        }
        REQUIRE(!r.sh.switching());
        (void)r.receive();
        // Without the quiet time the old path was released with the frame in it.
        CHECK(r.received.size() == (quiet != 0 ? 1u : 0u));
        CHECK(r.sh.active_path() == 1);
        CHECK(r.sh.audit().ok());
    }
}

TEST_CASE("10,000 consecutive switches both ways: zero loss, zero reordering across paths, audit "
          "after each") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.emu.completion_delay = 2;
    r.vf.completion_delay = 2;
    std::uint64_t rx_seq = 0;
    fake_dev* rx_dev = &r.emu; // where the (embedded) switch sends the guest's traffic
    std::size_t far_checked = 0, rx_checked = 0;
    for (int i = 0; i < 10'000; ++i) {
        (void)r.send(3);
        rx_dev->inject(0, rx_seq++);
        const bool to_vf = i % 2 == 0;
        const npa::status st =
            to_vf ? r.sh.request_switch<1>(r.vf, r.link(), npa::switch_reason::vf_arrived)
                  : r.sh.request_switch<0>(r.emu, r.link(), npa::switch_reason::vf_leaving);
        REQUIRE(st.ok());
        // Prepared: new RX arrives on the new device; the old one still holds older RX.
        rx_dev = to_vf ? &r.vf : &r.emu;
        while (r.sh.switching()) {
            test_env::clock += 500;
            (void)r.send(1);
            rx_dev->inject(0, rx_seq++);
            (void)r.receive();
            pump(r, 1);
            (void)r.sh.service();
        }
        (void)r.send(2);
        (void)r.receive();
        pump(r, 1);
        REQUIRE(r.sh.audit().ok());
        // The peer saw 0, 1, 2 ... from whichever device carried them, and the guest
        // received the peer's 0, 1, 2 ...: nothing lost, nothing out of order, at any
        // point, across every switch so far.
        for (; far_checked < r.far.size(); ++far_checked) {
            if (r.far[far_checked] != far_checked) {
                FAIL("switch " << i << ": peer saw " << r.far[far_checked] << " at "
                               << far_checked);
            }
        }
        for (; rx_checked < r.received.size(); ++rx_checked) {
            if (r.received[rx_checked] != rx_checked) {
                FAIL("switch " << i << ": guest received " << r.received[rx_checked] << " at "
                               << rx_checked);
            }
        }
    }
    pump(r, 8);
    for (int i = 0; i < 4; ++i)
        (void)r.receive();
    check_tx(r);
    check_sequence(r.far, r.next_seq);
    check_sequence(r.received, rx_seq);
    CHECK(r.sh.history().switches() == 10'001);
    CHECK(r.sh.history().total_tx_lost() == 0);
    CHECK(r.sh.history().max_duration_ns() > 0);
    CHECK(r.sh.audit().leaked == 0);
}

TEST_CASE("a failed prepare keeps the old path and says why; back-off follows") {
    auto cfg = rig::default_cfg();
    cfg.policy.backoff_initial_ns = 1'000'000;
    rig r(cfg);
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.vf.fail_attach = true;
    npa::status st = r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived);
    CHECK(st.code() == npa::errc::device_error);
    CHECK(std::strcmp(st.reason(), "fake device refused to initialise") == 0);
    CHECK(r.sh.active_path() == 0);
    CHECK(r.sh.history().failures() == 1);
    CHECK(r.sh.history().recent(0).detail == std::string_view("fake device refused to initialise"));
    CHECK(r.send(4) == 4);
    CHECK(r.sh.audit().ok());
    // Back-off: the device is fine now, but the next attempt is too soon.
    r.vf.fail_attach = false;
    st = r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived);
    CHECK(st.code() == npa::errc::busy);
    test_env::clock += 2'000'000;
    CHECK(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK(r.sh.active_path() == 1);
    pump(r, 4);
    check_tx(r);
}

TEST_CASE("control: policy refusal changes nothing; replay refused on the new path rolls back") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    CHECK(r.sh.set_mac(mac_a).ok());
    npa::status st = r.sh.set_mac(mac_b);
    CHECK(st.code() == npa::errc::refused);
    CHECK(std::string_view(st.reason()) == "MAC not allowed by policy");
    CHECK(r.sh.desired_control().mac() == mac_a);
    CHECK(r.sh.set_mac(npa::mac_addr{0x01, 0, 0, 0, 0, 1}).code() == npa::errc::invalid_argument);
    CHECK(r.sh.add_vlan(0).code() == npa::errc::invalid_argument);
    CHECK(r.sh.add_vlan(100).ok());
    CHECK(r.sh.set_mtu(9000).ok());
    CHECK(r.sh.set_mtu(9001).code() == npa::errc::refused);
    // An MTU the active device cannot carry is refused before the authority is asked.
    r.emu.max_mtu = 1500;
    const std::size_t asked = r.hv.applied.size();
    CHECK(r.sh.set_mtu(4000).code() == npa::errc::not_supported);
    CHECK(r.sh.set_mtu(40).code() == npa::errc::invalid_argument);  // no device carries it
    CHECK(r.hv.applied.size() == asked);
    CHECK(r.sh.desired_control().mtu() == 9000);
    r.emu.max_mtu = 9216;

    // The VF's authority does not know this guest's MAC: replay fails, VF detached.
    fake_authority vf_hv;  // allows nothing
    const auto before = r.sh.audit();
    st = r.sh.switch_to<1>(r.vf, npa::control_link::to(vf_hv), npa::switch_reason::vf_arrived);
    CHECK(st.code() == npa::errc::refused);
    CHECK(r.sh.active_path() == 0);
    CHECK(vf_hv.applied.empty());
    CHECK(r.sh.audit().ok());
    CHECK(r.sh.audit().in_plugins == before.in_plugins);

    // With the MAC allowed the whole state arrives as one batch.
    vf_hv.allowed_macs = {mac_a};
    test_env::clock += 10'000'000'000;
    REQUIRE(r.sh.switch_to<1>(r.vf, npa::control_link::to(vf_hv), npa::switch_reason::vf_arrived).ok());
    CHECK(vf_hv.batches == 1);
    bool mac = false, vlan = false, mtu = false;
    for (auto& q : vf_hv.applied) {
        mac |= q.op == npa::control_op::set_mac && q.mac == mac_a;
        vlan |= q.op == npa::control_op::add_vlan && q.vlan == 100;
        mtu |= q.op == npa::control_op::set_mtu && q.mtu == 9000;
    }
    CHECK(mac);
    CHECK(vlan);
    CHECK(mtu);
}

TEST_CASE("hysteresis: a flapping VF cannot flap the data path") {
    auto cfg = rig::default_cfg();
    cfg.policy.min_dwell_ns = 50'000'000;
    rig r(cfg);
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    test_env::clock += 100'000'000;
    int taken = 0;
    // The VF comes and goes every millisecond for a second.
    for (int i = 0; i < 1000; ++i) {
        test_env::clock += 1'000'000;
        npa::status st = r.sh.active_path() == 0
            ? r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived)
            : r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::policy);
        taken += st.ok();
        (void)r.send(1);
    }
    // At most one switch per dwell period (1 s / 50 ms = 20), far fewer than 1000.
    CHECK(taken <= 21);
    CHECK(taken >= 10);
    CHECK(r.sh.suppressed_switches() >= 979);
    // A mandatory switch is never refused by hysteresis.
    const std::uint8_t cur = r.sh.active_path();
    npa::status st = cur == 1 ? r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving)
                              : r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::migration);
    CHECK(st.ok());
    pump(r, 4);
    check_tx(r);
}

TEST_CASE("capabilities: the intersection, with what was lost and why") {
    auto cfg = rig::default_cfg();
    cfg.requested_offloads = npa::cap::tso | npa::cap::rx_csum | npa::cap::rss;
    rig r(cfg);
    r.emu.offloads = npa::cap::tso | npa::cap::rx_csum | npa::cap::rss | npa::cap::lro;
    r.vf.offloads = npa::cap::rx_csum | npa::cap::rss;
    // One queue: the shell has nothing to spread flows over, so RSS is not its to offer.
    CHECK((r.sh.shell_offloads() & npa::cap::rss) == 0);
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    CHECK(r.sh.offloads() == (npa::cap::tso | npa::cap::rx_csum));
    CHECK(r.emu.enabled == (npa::cap::tso | npa::cap::rx_csum)); // what the plugin was told
    CHECK(r.sh.capability_event_count() == 0);
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK(r.sh.offloads() == npa::cap::rx_csum);
    CHECK(r.vf.enabled == npa::cap::rx_csum);
    REQUIRE(r.sh.capability_event_count() == 1);
    const auto& ev = r.sh.capability_event_at(0);
    CHECK(ev.lost);
    CHECK(ev.bit == npa::cap::tso);
    CHECK(std::string_view(ev.why) == "not supported by the active path's device");
    CHECK(r.sh.history().recent(0).caps_lost == npa::cap::tso);
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    CHECK(r.sh.offloads() == (npa::cap::tso | npa::cap::rx_csum));
    CHECK(r.sh.capability_event_at(0).lost == false);
    CHECK(std::string_view(r.sh.capability_event_at(0).why) == "supported again");
    CHECK(r.sh.history().recent(0).caps_gained == npa::cap::tso);
    // The OS stops asking for rx-csum: gone at once, with that reason.
    r.sh.request_offloads(npa::cap::tso);
    CHECK(r.sh.offloads() == npa::cap::tso);
    CHECK(std::string_view(r.sh.capability_event_at(0).why) == "no longer requested by the OS");
}

namespace {
/// An OS-facing side that cannot carry VLAN tags or checksum state to its stack.
struct plain_env : test_env {
    static constexpr std::uint32_t offloads = npa::cap::tso | npa::cap::tx_l4_csum;
};
} // namespace

TEST_CASE("capabilities: what the shell's environment cannot carry is never enabled") {
    plain_env env;
    auto pool =
        std::move(*npa::fixed_pool<>::create({.count = 256, .buf_size = 256, .headroom = 0}));
    npa::fixed_pool<>* pools[] = {&pool};
    npa::shell<plain_env, fake_plugin, fake_plugin> sh(env, pools, rig::default_cfg());
    REQUIRE(sh.init_status().ok());
    CHECK(sh.shell_offloads() == (npa::cap::tso | npa::cap::tx_l4_csum));
    fake_dev emu, vf;
    vf.offloads = npa::cap::tso;
    fake_authority hv;
    hv.allowed_macs = {mac_a};
    REQUIRE(sh.start<0>(emu, npa::control_link::to(hv)).ok());
    CHECK(emu.enabled == (npa::cap::tso | npa::cap::tx_l4_csum)); // not vlan, not rx-csum
    CHECK(sh.offloads() == emu.enabled);
    REQUIRE(sh.switch_to<1>(vf, npa::control_link::to(hv), npa::switch_reason::vf_arrived).ok());
    CHECK(vf.enabled == npa::cap::tso);
    REQUIRE(sh.capability_event_count() == 1);
    CHECK(sh.capability_event_at(0).bit == npa::cap::tx_l4_csum);
    CHECK(std::string_view(sh.capability_event_at(0).why) ==
          "not supported by the active path's device");
    sh.request_offloads(npa::cap::all); // asking for more than the shell can carry
    CHECK(sh.offloads() == npa::cap::tso);
    REQUIRE(sh.switch_to<0>(emu, npa::control_link::to(hv), npa::switch_reason::vf_leaving).ok());
    CHECK(emu.enabled == (npa::cap::tso | npa::cap::tx_l4_csum));
}

TEST_CASE("offloads reach the device of every new path, and a lost one is turned off there") {
    rig r;
    r.emu.offloads = npa::cap::all & ~(npa::cap::tx_l4_csum | npa::cap::vlan_insert);
    r.vf.offloads = npa::cap::all;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    const std::uint32_t ask = npa::ol::tx_l4_csum | npa::ol::tx_vlan;
    CHECK(r.send(10, ask) == 10);
    pump(r, 4);
    CHECK(r.emu.tx_offload_ignored == 10); // the emulated path has neither
    // The VF has both: after the switch its device computes checksums and inserts tags.
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK((r.vf.enabled & (npa::cap::tx_l4_csum | npa::cap::vlan_insert)) ==
          (npa::cap::tx_l4_csum | npa::cap::vlan_insert));
    CHECK((r.sh.offloads() & npa::cap::tx_l4_csum) != 0);
    CHECK(r.send(20, ask) == 20);
    pump(r, 4);
    CHECK(r.vf.tx_csum_offloaded == 20);
    CHECK(r.vf.tx_vlan_inserted == 20);
    CHECK(r.vf.tx_offload_ignored == 0);
    // Back on the emulated path: both are lost, reported, and off on that device.
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    CHECK((r.sh.offloads() & (npa::cap::tx_l4_csum | npa::cap::vlan_insert)) == 0);
    CHECK(r.sh.history().recent(0).caps_lost == (npa::cap::tx_l4_csum | npa::cap::vlan_insert));
    CHECK((r.emu.enabled & (npa::cap::tx_l4_csum | npa::cap::vlan_insert)) == 0);
    CHECK(r.send(5, ask) == 5);
    pump(r, 4);
    CHECK(r.emu.tx_offload_ignored == 15);
    CHECK(r.emu.tx_csum_offloaded == 0);
    check_tx(r);
}

TEST_CASE("the MTU the authority accepted is the one the next path attaches with") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    CHECK(r.emu.mtu == 1500);
    REQUIRE(r.sh.set_mtu(9000).ok());
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK(r.vf.mtu == 9000);
    // A refused MTU never reaches a device.
    CHECK(r.sh.set_mtu(9001).code() == npa::errc::refused);
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    CHECK(r.emu.mtu == 9000);
    // The configured MTU is the first desired one.
    auto cfg = rig::default_cfg();
    cfg.queues.mtu = 4000;
    rig j(cfg);
    CHECK(j.sh.desired_control().mtu() == 4000);
    REQUIRE(j.sh.start<0>(j.emu, j.link()).ok());
    CHECK(j.emu.mtu == 4000);
    cfg.queues.mtu = 20;
    rig bad(cfg, 16, false);
    CHECK(bad.sh.init_status().code() == npa::errc::invalid_argument);
}

TEST_CASE("a plugin that keeps buffers when it detaches fails the audit") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK(r.sh.audit().ok());
    CHECK(r.send(8) == 8);
    r.vf.leak_on_detach = 3; // the VF's plugin forgets three posted RX buffers
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    pump(r, 4);
    const npa::audit_report a = r.sh.audit();
    CHECK_FALSE(a.ok());
    CHECK(a.leaked == 3);
    CHECK(a.accounted() == static_cast<std::int64_t>(a.pool_size) - 3);
    CHECK(fmt::format("{}", a).find("UNBALANCED") == 0);
    CHECK(fmt::format("{}", a).find("3 leaked by detached plugins") != std::string::npos);
    check_tx(r);
}

TEST_CASE("a device reset is its own trigger: the shell falls back with reason reset") {
    rig r;
    REQUIRE(r.sh.start<1>(r.vf, r.link()).ok());
    r.sh.set_fallback<0>(r.emu, r.link());
    CHECK(r.send(6) == 6);
    r.vf.health = npa::errc::reset;
    r.vf.complete_tx = false; // the reset took the rings: nothing more completes
    CHECK(r.sh.service());
    for (int i = 0; i < 50 && r.sh.switching(); ++i) {
        pump(r, 1);
        test_env::clock += 1'000'000;
        (void)r.sh.service();
    }
    CHECK(r.sh.active_path() == 0);
    CHECK(r.sh.history().recent(0).reason == npa::switch_reason::reset);
    CHECK(r.sh.history().recent(0).tx_lost == 0);
    pump(r, 8);
    check_sequence(r.far, r.next_seq);
    CHECK(r.sh.audit().ok());
    // A failure that is neither reset nor removal stays a device error.
    r.vf.health = npa::errc::ok;
    r.vf.complete_tx = true;
    test_env::clock += 10'000'000'000;
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    r.vf.health = npa::errc::device_error;
    (void)r.sh.service();
    while (r.sh.service())
        pump(r, 1);
    CHECK(r.sh.history().recent(0).reason == npa::switch_reason::device_error);
}

TEST_CASE("surprise removal mid-burst: unsent TX comes back and goes out on the fallback, in order") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.sh.set_fallback<0>(r.emu, r.link());
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    r.vf.completion_delay = 1000;  // the VF holds everything in flight
    CHECK(r.send(40) == 40);
    CHECK(r.sh.plugin<1>().tx_in_flight(0) == 40);
    // The VF vanishes: it completes nothing more, reports removed.
    r.vf.health = npa::errc::removed;
    r.vf.complete_tx = false;
    CHECK(r.sh.service());  // health check starts the fallback switch
    // Traffic keeps coming while the old path is written off.
    for (int i = 0; i < 20 && r.sh.switching(); ++i) {
        CHECK(r.send(2) == 2);
        pump(r, 1);
        test_env::clock += 1'000'000;
        (void)r.sh.service();
    }
    CHECK_FALSE(r.sh.switching());
    CHECK(r.sh.active_path() == 0);
    pump(r, 8);
    const auto& rec = r.sh.history().recent(0);
    CHECK(rec.reason == npa::switch_reason::surprise_removal);
    CHECK(rec.requeued == 40);
    CHECK(rec.tx_lost == 0);
    // Everything (the 40 stranded + the rest) went out on the emulated wire, in order.
    CHECK(r.vf.wire[0].empty());
    std::vector<std::uint64_t> sorted = r.emu.wire[0];
    CHECK(std::is_sorted(sorted.begin(), sorted.end()));
    check_sequence(sorted, r.next_seq);
    CHECK(r.sh.audit().ok());
}

TEST_CASE("TX a plugin completes while it detaches counts in the old path's stats") {
    rig r;
    r.emu.completion_delay = 1000;  // TX stays in flight
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    (void)r.send(10);
    pump(r, 3);
    CHECK(r.sh.path_stats(0, 0).tx_packets == 0);
    // The device fails: reaping stops, and the plugin's detach finds the 10 done.
    r.emu.completion_delay = 1;
    r.emu.health = npa::errc::device_error;
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::device_error).ok());
    CHECK(r.sh.path_stats(0, 0).tx_packets == 10);
    CHECK(r.sh.queue_totals(0).tx_packets == 10);
}

TEST_CASE("stats are monotonic across switches and device counter resets") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    (void)r.send(10);
    pump(r, 3);
    CHECK(r.sh.path_stats(0, 0).tx_packets == 10);
    r.sh.plugin<0>().reset_counters(0);
    (void)r.send(5);
    pump(r, 3);
    CHECK(r.sh.path_stats(0, 0).tx_packets == 15);
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    (void)r.send(7);
    pump(r, 3);
    CHECK(r.sh.path_stats(0, 0).tx_packets == 15);
    CHECK(r.sh.path_stats(1, 0).tx_packets == 7);
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    (void)r.send(1);
    pump(r, 3);
    CHECK(r.sh.path_stats(0, 0).tx_packets == 16);
    CHECK(r.sh.path_stats(1, 0).tx_packets == 7);
    CHECK(r.sh.queue_totals(0).tx_packets == 23);
    CHECK(r.sh.counters(0).tx_accepted == 23);
}

TEST_CASE("backlog full: short count, nothing lost, caller keeps the rest") {
    rig r(rig::default_cfg(), 8192);
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.emu.complete_tx = false;  // stuck: drain will time out
    r.emu.ring_size = 16;
    CHECK(r.send(16) == 16);
    REQUIRE(r.sh.request_switch<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    std::uint32_t taken = 0;
    for (int i = 0; i < 200; ++i) taken += r.send(32);
    CHECK(taken == shell_t::backlog_capacity);
    CHECK(r.sh.counters(0).tx_backlog_full > 0);
    CHECK(r.sh.audit().ok());
    test_env::clock += 10'000'000;  // past the drain timeout
    REQUIRE(r.sh.wait_switch().ok());
    pump(r, 8);
    check_tx(r);
    CHECK(r.sh.history().recent(0).requeued == 16);
    CHECK(r.sh.audit().ok());
}

TEST_CASE("an empty pool stops RX refill and is counted, never fatal") {
    rig r(rig::default_cfg(), 50);  // fewer buffers than the RX ring (64) wants
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    CHECK(r.sh.path_stats(0, 0).rx_no_buffer > 0);
    npa::buffer_ref b[8];
    CHECK(r.sh.alloc(0, b) < 8);  // nothing left for the OS either, and no abort
    CHECK(r.sh.audit().ok());
}

TEST_CASE("interrupt mode: NAPI re-arms only when a poll did less than its budget") {
    auto cfg = rig::default_cfg();
    cfg.mode = npa::irq_mode::interrupt;
    rig r(cfg);
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    npa::buffer_ref b[4];
    for (int i = 0; i < 6; ++i) r.emu.inject(0, static_cast<std::uint64_t>(i));
    auto res = r.sh.napi_poll(0, b);  // full budget: stay in polling
    CHECK(res.received == 4);
    CHECK_FALSE(res.rearmed);
    CHECK_FALSE(r.sh.plugin<0>().armed(0));
    r.sh.free(0, b);
    res = r.sh.napi_poll(0, b);  // 2 < 4: idle, armed
    CHECK(res.received == 2);
    CHECK(res.rearmed);
    CHECK(r.sh.plugin<0>().armed(0));
    r.sh.free(0, std::span<const npa::buffer_ref>(b, 2));
    // A switch disarms the old path; the next idle poll arms the new one.
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK_FALSE(r.emu.irq_armed[0].load());
    res = r.sh.napi_poll(0, b);
    CHECK(res.rearmed);
    CHECK(r.sh.plugin<1>().armed(0));
    // Still interrupt mode on the new path: a packet on the VF raises its interrupt
    // (the wake-up), the poll takes it and, idle again, re-arms.
    r.vf.inject(0, 7);
    CHECK(r.vf.raise(0));
    res = r.sh.napi_poll(0, b);
    CHECK(res.received == 1);
    CHECK(res.rearmed);
    CHECK(r.vf.irq_armed[0].load());
    r.sh.free(0, std::span<const npa::buffer_ref>(b, 1));
    // And back, with the old path's interrupt off and the emulated one's on.
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    res = r.sh.napi_poll(0, b);
    CHECK(res.rearmed);
    CHECK(r.emu.irq_armed[0].load());
    CHECK_FALSE(r.vf.irq_armed[0].load());
}

TEST_CASE("polling mode: napi_poll never arms an interrupt, on any path") {
    rig r; // irq_mode::poll
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    npa::buffer_ref b[4];
    r.emu.inject(0, 1);
    auto res = r.sh.napi_poll(0, b);
    CHECK(res.received == 1);
    CHECK_FALSE(res.rearmed);
    CHECK_FALSE(r.emu.irq_armed[0].load());
    r.sh.free(0, std::span<const npa::buffer_ref>(b, 1));
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    res = r.sh.napi_poll(0, b);
    CHECK_FALSE(res.rearmed);
    CHECK_FALSE(r.vf.irq_armed[0].load());
}

TEST_CASE("bad construction is reported, not fatal") {
    test_env env;
    std::vector<npa::fixed_pool<>*> none;
    npa::shell_config cfg;
    shell_t sh(env, none, cfg);
    CHECK(sh.init_status().code() == npa::errc::invalid_argument);
    fake_dev d;
    fake_authority hv;
    CHECK(sh.start<0>(d, npa::control_link::to(hv)).code() == npa::errc::invalid_argument);
}

TEST_CASE("telemetry prints with fmt") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.vf.offloads = npa::cap::rx_csum;
    REQUIRE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    const std::string line = fmt::format("{}", r.sh.history().recent(0));
    CHECK(line.find("#2 0 -> 1 (vf-arrived): ") == 0);
    CHECK(line.find("tx lost 0") != std::string::npos);
    // RSS was never in effect: one queue.
    CHECK(line.find("lost [tx-ip-csum,tx-l4-csum,tso,vlan-insert,vlan-strip,lro,vlan-filter]") !=
          std::string::npos);
    r.vf.fail_attach = true;
    REQUIRE(r.sh.switch_to<0>(r.emu, r.link(), npa::switch_reason::vf_leaving).ok());
    test_env::clock += 10'000'000'000;
    CHECK_FALSE(r.sh.switch_to<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK(fmt::format("{}", r.sh.history().recent(0)) ==
          "#4 0 -> 1 (vf-arrived): failed: fake device refused to initialise");
    CHECK(fmt::format("{}", r.sh.audit()).find("balanced: 1024 buffers") == 0);
    CHECK(fmt::format("{}", r.sh.counters(0)).find("tx accepted 0") == 0);
}

TEST_CASE("stop in the middle of a switch returns every buffer") {
    rig r;
    REQUIRE(r.sh.start<0>(r.emu, r.link()).ok());
    r.emu.complete_tx = false;
    CHECK(r.send(10) == 10);
    REQUIRE(r.sh.request_switch<1>(r.vf, r.link(), npa::switch_reason::vf_arrived).ok());
    CHECK(r.send(5) == 5);  // into the backlog
    r.sh.stop();
    CHECK_FALSE(r.sh.switching());
    CHECK(r.sh.active_path() == shell_t::no_path);
    const auto a = r.sh.audit();
    CHECK(a.ok());
    CHECK(a.in_plugins == 0);
    CHECK(a.backlog == 0);
    CHECK(a.in_pool == a.pool_size);
    CHECK(r.sh.counters(0).tx_lost == 15);
    CHECK(r.send(1) == 0);  // no path: the caller keeps it
}
