// The shell over the sim (npa/sim/shell_rig.hpp): two simnic paths on an L2 switch with a
// traffic peer, sustained bidirectional numbered traffic on every queue, switches for
// every trigger. Loss, duplication and reordering are measured by sequence numbers at both
// ends.
#include <doctest/doctest.h>

#include <npa/fmt.hpp>
#include <npa/sim/shell_rig.hpp>

#include <string_view>
#include <vector>

namespace sim = npa::sim;
using npa::switch_reason;

namespace {

constexpr npa::mac_addr rogue_mac{0x02, 0, 0, 0, 0, 0x66};

void check_tx_clean(const sim::shell_rig& r) {
    for (std::uint16_t q = 0; q < r.queues(); ++q) {
        const auto rep = r.tx_report(q);
        INFO("queue " << q << ": sent " << rep.sent << " received " << rep.received);
        CHECK(rep.lost == 0);
        CHECK(rep.reordered == 0);
        CHECK(rep.duplicates == 0);
        CHECK(rep.corrupt == 0);
    }
}

void check_rx_clean(const sim::shell_rig& r) {
    const auto rep = r.rx_report();
    CHECK(rep.duplicates == 0);
    CHECK(rep.corrupt == 0);
    CHECK(rep.lost == r.device_rx_drops());  // only what a device dropped, and counted
}

} // namespace

TEST_CASE("sim: switches for every trigger under sustained bidirectional traffic") {
    sim::shell_rig r;
    REQUIRE(r.error().ok());
    const switch_reason to_vf[] = {switch_reason::vf_arrived, switch_reason::policy,
                                   switch_reason::operator_request};
    const switch_reason to_emu[] = {switch_reason::vf_leaving, switch_reason::migration,
                                    switch_reason::device_error, switch_reason::reset,
                                    switch_reason::policy};
    int k = 0;
    for (int i = 0; i < 600; ++i) {
        r.round(16, 16);
        if (i % 20 == 5 && !r.sh().switching()) {
            REQUIRE(r.request_flip(to_vf[k % 3], to_emu[k % 5]).ok());
            ++k;
        }
        REQUIRE(r.sh().audit().ok());
    }
    r.settle();
    CHECK(r.sh().history().switches() == 1 + static_cast<std::uint64_t>(k));
    CHECK(r.sh().history().total_tx_lost() == 0);
    check_tx_clean(r);
    check_rx_clean(r);
    CHECK(r.sh().audit().ok());
    MESSAGE("last switch: " << fmt::format("{}", r.sh().history().recent(0)));
}

TEST_CASE("sim: 1,000 switches in a row, audit after each, nothing lost or reordered") {
    sim::shell_rig r;
    REQUIRE(r.error().ok());
    for (int i = 0; i < 1000; ++i) {
        r.round(8, 8);
        REQUIRE(r.flip().ok());
        REQUIRE(r.sh().audit().ok());
    }
    r.settle();
    CHECK(r.sh().history().switches() == 1001);
    check_tx_clean(r);
    check_rx_clean(r);
}

TEST_CASE("sim: surprise removal of the VF mid-burst; TX comes back and goes out on the emulated path") {
    sim::shell_rig r;
    REQUIRE(r.error().ok());
    r.sh().set_fallback(r.emu_path());
    REQUIRE(r.flip().ok());
    for (int i = 0; i < 50; ++i) r.round(16, 16);
    // The shell hands a burst per queue to the VF, and the VF is pulled before it runs.
    r.offer(32);
    r.vf().remove();
    CHECK(r.sh().service());  // health() says removed: fallback switch under way
    for (int i = 0; i < 100; ++i) r.round(16, 16);
    r.settle();
    CHECK(r.sh().active_path() == 0);
    const auto& rec = r.sh().history().recent(0);
    CHECK(rec.reason == switch_reason::surprise_removal);
    CHECK(rec.requeued > 0);
    CHECK(rec.tx_lost == 0);
    check_tx_clean(r);
    CHECK(r.sh().audit().ok());
    // The VF comes back (a new function on the same port): passthrough again.
    REQUIRE(r.replug_vf().ok());
    sim::shell_rig_env::advance(1'000'000'000);
    REQUIRE(r.flip().ok());
    for (int i = 0; i < 50; ++i) r.round(16, 16);
    r.settle();
    check_tx_clean(r);
    check_rx_clean(r);
}

TEST_CASE("sim: a failed prepare keeps the emulated path running and reports why") {
    sim::shell_rig r;
    REQUIRE(r.error().ok());
    r.vf().remove();  // announced, but gone before the guest could use it
    npa::status st = r.flip();
    CHECK(st.code() == npa::errc::removed);
    CHECK(r.sh().active_path() == 0);
    REQUIRE(r.replug_vf().ok());
    r.vf_auth().refuse_all = true;  // the PF refuses the control replay: rolled back
    sim::shell_rig_env::advance(10'000'000'000);
    st = r.flip();
    CHECK(st.code() == npa::errc::refused);
    CHECK(std::string_view(st.reason()) == "PF: this VF is administratively down");
    CHECK(r.sh().active_path() == 0);
    for (int i = 0; i < 50; ++i) r.round(16, 16);
    r.settle();
    check_tx_clean(r);
    check_rx_clean(r);
    CHECK(r.sh().history().failures() == 2);
    CHECK(r.sh().audit().ok());
}

TEST_CASE("sim: policy refuses a MAC the guest does not own; the refusal is counted and changes nothing") {
    sim::shell_rig r;
    REQUIRE(r.error().ok());
    npa::status st = r.sh().set_mac(rogue_mac);
    CHECK(st.code() == npa::errc::refused);
    CHECK(r.emu_auth().refusals == 1);
    CHECK(r.sh().desired_control().mac() == sim::shell_rig::guest_mac);
    for (int i = 0; i < 20; ++i) r.round(4, 4);
    r.settle();
    check_rx_clean(r);
}
