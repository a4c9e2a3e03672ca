// Soak: sustained numbered traffic both ways through the shell (npa/sim/shell_rig.hpp: an
// emulated path and a VF path, both simnics, on an L2 switch with a traffic peer), while a
// seeded random schedule switches paths, flaps links, resets the VF and pulls it out
// (surprise removal) and plugs it back. DESIGN.md section 4's targets are checked
// throughout: after every round the buffer audit balances and no frame either way has
// been reordered, duplicated or corrupted; every check_every rounds (and at the end) the
// traffic settles and the TX frames lost are exactly those a device completed without
// sending (its link was down: tx_link_down), and the RX frames lost exactly those the
// devices counted as dropped.
//
// NPA_SOAK_SWITCHES (default 20,000: the short run in the test suites) sets how many
// switches to complete; NPA_SOAK_SEED the schedule. scripts/soak.sh runs the long one.
#include <doctest/doctest.h>

#include "soak_common.hpp"

#include <npa/sim/shell_rig.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace sim = npa::sim;

namespace {

// ---- tuning constants -----------------------------------------------------------------
/// Switches in the short run: a few seconds in Release, under a minute with ASan+UBSan.
constexpr std::uint64_t default_switches = 20000;
/// Rounds without a completed switch before the run is declared stuck (a switch takes a
/// handful of rounds; a removed VF waits for its replug, at most replug_after rounds).
constexpr std::uint64_t stuck_rounds = 5000;
/// Rounds a pulled VF stays away before it is plugged back.
constexpr std::uint32_t replug_after = 40;
/// Guest memory: shell_rig::replug_vf carves each new VF's rings afresh (guest memory is a
/// bump allocator), about 40 KiB a replug; 192 MiB (mapped lazily) leaves room for
/// max_removals of them next to the pool.
constexpr std::size_t guest_bytes = std::size_t{192} << 20;
constexpr std::uint64_t max_removals = 3000;
/// Rounds between the exact loss checks (each settles the traffic, a few dozen rounds).
constexpr std::uint64_t check_every = 1000;

struct soak_figures {
    std::uint64_t switches = 0, switch_requests = 0, refused = 0, rounds = 0;
    std::uint64_t link_flaps = 0, resets = 0, removals = 0, audits = 0, loss_checks = 0;
};

/// Frames a device completed without putting them on the wire (its link was down).
std::uint64_t tx_not_sent(const sim::simnic& d, std::uint16_t queues) {
    std::uint64_t n = 0;
    for (std::uint16_t q = 0; q < queues; ++q)
        n += d.stats(q).tx_link_down;
    return n;
}

/// What the traffic shows so far, summed over the guest's TX queues.
sim::flow_report tx_totals_of(const sim::shell_rig& r) {
    sim::flow_report t;
    for (std::uint16_t q = 0; q < r.queues(); ++q)
        npa::soak::accumulate(t, r.tx_report(q));
    return t;
}

} // namespace

TEST_CASE("soak: random switches, link flaps, resets and surprise removals under traffic") {
    const std::uint64_t target = npa::soak::env_u64("NPA_SOAK_SWITCHES", default_switches);
    const std::uint64_t seed = npa::soak::env_u64("NPA_SOAK_SEED", 9);
    // NPA_SOAK_FAULTS: bit 0 link flaps, bit 1 VF resets, bit 2 surprise removals (all: 7).
    const std::uint64_t faults = npa::soak::env_u64("NPA_SOAK_FAULTS", 7);
    std::mt19937_64 rng(seed);
    // Back-off after a failed switch (to a VF that is gone) is kept short: the soak is
    // about switching often; the back-off itself is tested in tests/shell.
    sim::shell_rig_config rc;
    rc.policy.backoff_initial_ns = 1'000'000;
    rc.policy.backoff_max_ns = 10'000'000;
    rc.guest_bytes = guest_bytes;
    sim::shell_rig r(rc);
    REQUIRE(r.error().ok());
    r.sh().set_fallback(r.emu_path());

    soak_figures f;
    std::uint64_t retired_not_sent = 0; // TX frames pulled VFs counted as not sent
    auto not_sent = [&] {
        return retired_not_sent + tx_not_sent(r.emu(), r.queues()) +
               tx_not_sent(r.vf(), r.queues());
    };
    // Nothing is ever reordered, duplicated or corrupted, either way: checked every round.
    auto check_order = [&] {
        const sim::flow_report t = tx_totals_of(r);
        const auto rx = r.rx_report();
        REQUIRE_MESSAGE(
            t.reordered + t.duplicates + t.corrupt + rx.reordered + rx.duplicates + rx.corrupt == 0,
            "after round " << f.rounds << ": TX reordered " << t.reordered << ", duplicates "
                           << t.duplicates << ", corrupt " << t.corrupt << "; RX reordered "
                           << rx.reordered << ", duplicates " << rx.duplicates << ", corrupt "
                           << rx.corrupt);
    };
    // Once the traffic has settled, loss is exact: TX what devices completed without sending,
    // RX what devices dropped.
    auto check_loss = [&] {
        r.settle();
        ++f.loss_checks;
        const sim::flow_report t = tx_totals_of(r);
        const auto rx = r.rx_report();
        REQUIRE_MESSAGE(t.lost == not_sent(), "after round " << f.rounds << ": TX lost " << t.lost
                                                             << ", devices counted " << not_sent()
                                                             << " not sent");
        REQUIRE_MESSAGE(rx.lost == r.device_rx_drops(), "after round "
                                                            << f.rounds << ": RX lost " << rx.lost
                                                            << ", devices counted "
                                                            << r.device_rx_drops() << " dropped");
        REQUIRE(r.sh().history().total_tx_lost() == 0);
    };
    std::uint32_t vf_away = 0; // rounds since the VF was pulled (0: present)
    std::uint64_t last_switches = r.sh().history().switches();
    std::uint64_t quiet = 0;
    npa::status last{};
    while (f.switches < target) {
        const std::uint32_t a = static_cast<std::uint32_t>(rng() % 100);
        r.round(static_cast<std::uint32_t>(rng() % 24), static_cast<std::uint32_t>(rng() % 24));
        ++f.rounds;
        if (vf_away != 0 && ++vf_away > replug_after) {
            retired_not_sent += tx_not_sent(r.vf(), r.queues());
            REQUIRE(r.replug_vf().ok());
            vf_away = 0;
        }
        if (a < 55) {
            if (!r.sh().switching()) {
                ++f.switch_requests;
                last = r.request_flip();
                if (!last.ok())
                    ++f.refused; // e.g. the VF is gone: counted
            }
        } else if (a < 70 && (faults & 1) != 0) {
            sim::fault_plan p;
            p.link_down_steps = 1 + static_cast<std::uint32_t>(rng() % 4);
            (rng() % 2 == 0 ? r.emu() : r.vf()).inject(p);
            ++f.link_flaps;
        } else if (a < 74 && vf_away == 0 && (faults & 2) != 0) {
            r.vf().reset();
            ++f.resets;
        } else if (a < 76 && vf_away == 0 && (faults & 4) != 0 && f.removals < max_removals) {
            r.vf().remove();
            vf_away = 1;
            ++f.removals;
        }
        sim::shell_rig_env::advance(1'000'000);
        const auto au = r.sh().audit();
        ++f.audits;
        REQUIRE_MESSAGE(au.ok(), "audit off by "
                                     << au.accounted() - static_cast<std::int64_t>(au.pool_size)
                                     << " after round " << f.rounds);
        const std::uint64_t s = r.sh().history().switches();
        f.switches += s - last_switches;
        quiet = s == last_switches ? quiet + 1 : 0;
        last_switches = s;
        REQUIRE_MESSAGE(quiet < stuck_rounds,
                        "no switch completed for "
                            << quiet << " rounds (active path " << r.sh().active_path()
                            << ", switching " << r.sh().switching()
                            << ", last request: " << std::string(last.reason()) << ")");
        check_order();
        if (f.rounds % check_every == 0)
            check_loss();
    }
    if (vf_away != 0) {
        retired_not_sent += tx_not_sent(r.vf(), r.queues());
        REQUIRE(r.replug_vf().ok());
    }
    check_loss();
    check_order();
    const std::uint64_t tx_allowance = not_sent();
    const sim::flow_report t = tx_totals_of(r);
    const std::uint64_t sent = t.sent, lost = t.lost, reordered = t.reordered,
                        duplicates = t.duplicates, corrupt = t.corrupt;
    const auto rx = r.rx_report();
    std::printf(
        "soak figures: seed %llu, switches %llu (requests %llu, refused %llu), rounds %llu, "
        "link flaps %llu, VF resets %llu, surprise removals %llu, audits %llu (all "
        "balanced), exact loss checks %llu; TX sent %llu, lost %llu (devices counted %llu not sent "
        "on a down "
        "link), reordered %llu, duplicates %llu, corrupt %llu; RX sent %llu, received "
        "%llu, lost %llu (devices counted %llu dropped); shell TX lost %llu\n",
        (unsigned long long)seed, (unsigned long long)f.switches,
        (unsigned long long)f.switch_requests, (unsigned long long)f.refused,
        (unsigned long long)f.rounds, (unsigned long long)f.link_flaps,
        (unsigned long long)f.resets, (unsigned long long)f.removals, (unsigned long long)f.audits,
        (unsigned long long)f.loss_checks, (unsigned long long)sent, (unsigned long long)lost,
        (unsigned long long)tx_allowance, (unsigned long long)reordered,
        (unsigned long long)duplicates, (unsigned long long)corrupt, (unsigned long long)rx.sent,
        (unsigned long long)rx.received, (unsigned long long)rx.lost,
        (unsigned long long)r.device_rx_drops(),
        (unsigned long long)r.sh().history().total_tx_lost());
    CHECK(f.switches >= target);
    CHECK(r.sh().audit().ok());
    CHECK(lost == tx_allowance);
    CHECK(reordered == 0);
    CHECK(corrupt == 0);
    CHECK(r.sh().history().total_tx_lost() == 0);
    CHECK(rx.corrupt == 0);
    // RX loss is exactly what devices counted, surprise removals included (a pulled VF
    // counts the frames that reach it or wait in it: rx_removed).
    CHECK(rx.lost == r.device_rx_drops());
}
