// Soak over the shipped plugins: the NPA world of npa/sim/two_hosts.hpp (a guest shell with
// the vmxnet3 plugin on the emulated path and the 82576 VF plugin on passthrough, the VF of
// host A or of host B, with virtual, embedded and physical switches between the guest and
// a traffic peer), under numbered traffic both ways, while a seeded random schedule
// switches between vmxnet3 and a VF, flaps the links of all three devices, resets the VFs
// and pulls them out (surprise removal) and plugs them back (hot-add). Checked throughout:
// the buffer audit balances and nothing is reordered, duplicated or corrupted either way
// after every round; every check_every rounds (and at the end) the traffic settles and
// the TX frames lost are exactly those a device completed without sending (its link was
// down), with the shell reporting no TX loss of its own, and the RX frames lost exactly
// those the devices counted as dropped (world::device_rx_drops: a link down, no queue
// enabled, a removed VF, not activated, no buffer ...).
//
// NPA_SOAK_PATH_SWITCHES (default 2,000: the short run in the test suites) sets how many
// switches to complete; NPA_SOAK_SEED the schedule; NPA_SOAK_FAULTS which faults are
// injected (bit 0 link flaps, bit 1 VF resets, bit 2 surprise removals; default 7, all).
// scripts/soak.sh runs the long one.
#include <doctest/doctest.h>

#include "soak_common.hpp"

#include <npa/sim/two_hosts.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace sim = npa::sim;
namespace th = npa::sim::two_hosts;

namespace {

// ---- tuning constants -----------------------------------------------------------------
/// Switches in the short run: a few seconds in Release, under a minute with ASan+UBSan.
constexpr std::uint64_t default_switches = 2000;
/// Rounds without a completed switch before the run is declared stuck.
constexpr std::uint64_t stuck_rounds = 5000;
/// Rounds a pulled VF stays away before it is plugged back.
constexpr std::uint32_t replug_after = 40;
/// Rounds between the exact loss checks (each settles the traffic).
constexpr std::uint64_t check_every = 500;

/// TX frames a VF completed without sending (link down), over all its lives.
std::uint64_t vf_not_sent(sim::igbvf_device& vf, std::uint16_t queues) {
    std::uint64_t n = 0;
    for (std::uint16_t q = 0; q < queues; ++q)
        n += vf.stats(q).tx_link_down;
    return n;
}

/// Builds the world (quiet, no minimum dwell: the soak is about switching often; hysteresis
/// is tested in tests/shell) and starts its shell on the vmxnet3, the fallback.
void start_on_vmxnet3(th::world& w) {
    w.quiet = true;
    w.min_dwell_ns = 0;
    std::string err;
    REQUIRE_MESSAGE(w.build(err), err);
    REQUIRE(w.sh->start(w.vmx_path).ok());
    REQUIRE(w.sh->set_mac(th::guest_mac).ok());
    w.sh->set_fallback(w.vmx_path);
}

} // namespace

TEST_CASE(
    "soak: vmxnet3 and 82576 VF paths under random switches, link flaps, resets and removals") {
    const std::uint64_t target = npa::soak::env_u64("NPA_SOAK_PATH_SWITCHES", default_switches);
    const std::uint64_t seed = npa::soak::env_u64("NPA_SOAK_SEED", 9);
    // NPA_SOAK_FAULTS: bit 0 link flaps, bit 1 VF resets, bit 2 surprise removals (all: 7).
    const std::uint64_t faults = npa::soak::env_u64("NPA_SOAK_FAULTS", 7);
    std::mt19937_64 rng(seed);
    th::world w;
    start_on_vmxnet3(w);
    th::shell_t& sh = *w.sh;

    std::array<th::host*, 2> hosts{&w.a, &w.b};
    std::array<std::uint32_t, 2> away{}; // rounds since host h's VF was pulled (0: present)
    std::uint64_t switches = 0, requests = 0, refused = 0, flaps = 0, resets = 0, removals = 0;
    std::uint64_t rounds = 0, audits = 0, loss_checks = 0;
    auto not_sent = [&] {
        std::uint64_t n = 0;
        for (std::uint16_t q = 0; q < w.queues; ++q)
            n += w.vmx->counters(q).tx_link_down;
        for (th::host* h : hosts)
            n += vf_not_sent(h->nic->vf(0), w.queues);
        return n;
    };
    auto tx_totals = [&] {
        npa::sim::flow_report t;
        for (std::uint16_t q = 0; q < w.queues; ++q) {
            npa::soak::accumulate(t, w.peer.report(th::guest_flow + q, w.gens[q].sent()));
        }
        return t;
    };
    auto check_order = [&] {
        const auto t = tx_totals();
        const auto rx = w.sink.report(th::peer_flow, w.peer_sent);
        REQUIRE_MESSAGE(
            t.reordered + t.duplicates + t.corrupt + rx.reordered + rx.duplicates + rx.corrupt == 0,
            "after round " << rounds << ": TX reordered " << t.reordered << ", duplicates "
                           << t.duplicates << ", corrupt " << t.corrupt << "; RX reordered "
                           << rx.reordered << ", duplicates " << rx.duplicates << ", corrupt "
                           << rx.corrupt);
    };
    auto check_loss = [&] {
        w.settle();
        ++loss_checks;
        const auto t = tx_totals();
        REQUIRE_MESSAGE(t.lost == not_sent(), "after round " << rounds << ": TX lost " << t.lost
                                                             << ", devices counted " << not_sent()
                                                             << " not sent");
        REQUIRE(sh.history().total_tx_lost() == 0);
        const auto rx = w.sink.report(th::peer_flow, w.peer_sent);
        REQUIRE_MESSAGE(rx.lost == w.device_rx_drops(),
                        "after round " << rounds << ": RX lost " << rx.lost << ", devices counted "
                                       << w.device_rx_drops() << " dropped");
    };

    std::uint64_t last_switches = sh.history().switches();
    std::uint64_t quiet = 0;
    npa::status last{};
    while (switches < target) {
        const std::uint32_t a = static_cast<std::uint32_t>(rng() % 100);
        w.round(static_cast<std::uint32_t>(rng() % 24), static_cast<std::uint32_t>(rng() % 24));
        ++rounds;
        for (std::size_t h = 0; h < hosts.size(); ++h) {
            if (away[h] != 0 && ++away[h] > replug_after) {
                sim::igbvf_device& vf = hosts[h]->nic->vf(0);
                vf.revive(); // hot-add: a fresh function in the same slot
                away[h] = 0;
            }
        }
        const std::size_t h = static_cast<std::size_t>(rng() % hosts.size());
        sim::igbvf_device& vf = hosts[h]->nic->vf(0);
        if (a < 55) {
            if (!sh.switching()) {
                ++requests;
                if (sh.active_path() == w.vmx_path && away[h] == 0) {
                    last = sh.request_switch(hosts[h]->vf_path, npa::switch_reason::vf_arrived);
                } else if (sh.active_path() != w.vmx_path) {
                    last = sh.request_switch(w.vmx_path, npa::switch_reason::vf_leaving);
                } else {
                    last = {npa::errc::removed, "soak: that host's VF is pulled"};
                }
                if (!last.ok())
                    ++refused;
            }
        } else if (a < 70) {
            if ((faults & 1) != 0) {
                sim::fault_plan p;
                p.link_down_steps = 1 + static_cast<std::uint32_t>(rng() % 4);
                if (rng() % 3 == 0) {
                    w.vmx->inject(p);
                } else if (away[h] == 0) {
                    vf.inject(p);
                }
                ++flaps;
            }
        } else if (a < 74) {
            if (away[h] == 0 && (faults & 2) != 0) {
                vf.reset();
                ++resets;
            }
        } else if (a < 76) {
            if (away[h] == 0 && (faults & 4) != 0) {
                vf.remove();
                away[h] = 1;
                ++removals;
            }
        }
        const auto au = sh.audit();
        ++audits;
        REQUIRE_MESSAGE(au.ok(), "audit off by "
                                     << au.accounted() - static_cast<std::int64_t>(au.pool_size)
                                     << " after round " << rounds);
        check_order();
        const std::uint64_t s = sh.history().switches();
        switches += s - last_switches;
        quiet = s == last_switches ? quiet + 1 : 0;
        last_switches = s;
        REQUIRE_MESSAGE(quiet < stuck_rounds,
                        "no switch completed for "
                            << quiet << " rounds (active path " << sh.active_path()
                            << ", last request: " << std::string(last.reason()) << ")");
        if (rounds % check_every == 0)
            check_loss();
    }
    check_loss();
    check_order();
    const auto t = tx_totals();
    const auto rx = w.sink.report(th::peer_flow, w.peer_sent);
    std::printf(
        "soak (vmxnet3 + 82576 VF) figures: seed %llu, switches %llu (requests %llu, refused "
        "%llu), "
        "rounds %llu, link flaps %llu, VF resets %llu, surprise removals %llu, audits %llu (all "
        "balanced), exact loss checks %llu; TX sent %llu, lost %llu (devices counted %llu not sent "
        "on a down link), reordered %llu, duplicates %llu; RX sent %llu, received %llu, lost %llu "
        "(devices counted %llu dropped), reordered %llu; shell TX lost %llu\n",
        (unsigned long long)seed, (unsigned long long)switches, (unsigned long long)requests,
        (unsigned long long)refused, (unsigned long long)rounds, (unsigned long long)flaps,
        (unsigned long long)resets, (unsigned long long)removals, (unsigned long long)audits,
        (unsigned long long)loss_checks, (unsigned long long)t.sent, (unsigned long long)t.lost,
        (unsigned long long)not_sent(), (unsigned long long)t.reordered,
        (unsigned long long)t.duplicates, (unsigned long long)rx.sent,
        (unsigned long long)rx.received, (unsigned long long)rx.lost,
        (unsigned long long)w.device_rx_drops(), (unsigned long long)rx.reordered,
        (unsigned long long)sh.history().total_tx_lost());
    {
        // RX dropped by cause: the vmxnet3 device, then both hosts' VFs together.
        const sim::vmxnet3_device_stats vs = w.vmx->device_stats();
        sim::igbvf_device_stats fs;
        std::uint64_t vmx_no_desc = 0, vf_no_desc = 0, other = 0;
        for (std::uint16_t q = 0; q < w.queues; ++q) {
            vmx_no_desc += w.vmx->counters(q).rx_no_desc;
            other += w.vmx->counters(q).rx_dma_errors;
        }
        for (th::host* h : hosts) {
            const sim::igbvf_device_stats d = h->nic->vf(0).device_stats();
            fs.rx_link_down += d.rx_link_down;
            fs.rx_no_queue += d.rx_no_queue;
            fs.rx_removed += d.rx_removed;
            other += d.rx_overrun + h->nic->uplink_unknown();
            for (std::uint16_t q = 0; q < w.queues; ++q) {
                const auto st = h->nic->vf(0).stats(q);
                vf_no_desc += st.rx_no_desc;
                other += st.rx_oversize + st.rx_dma_errors;
            }
        }
        other += vs.rx_overrun + vs.rx_filtered;
        std::printf("RX dropped by cause: vmxnet3 link down %llu, not active %llu, no buffer %llu; "
                    "VF link down %llu, no queue enabled %llu, removed %llu, no buffer %llu; "
                    "other %llu\n",
                    (unsigned long long)vs.rx_link_down, (unsigned long long)vs.rx_inactive,
                    (unsigned long long)vmx_no_desc, (unsigned long long)fs.rx_link_down,
                    (unsigned long long)fs.rx_no_queue, (unsigned long long)fs.rx_removed,
                    (unsigned long long)vf_no_desc, (unsigned long long)other);
    }
    CHECK(switches >= target);
    CHECK(sh.audit().ok());
    CHECK(t.lost == not_sent());
    CHECK(rx.lost == w.device_rx_drops());
    CHECK(t.reordered == 0);
    CHECK(t.corrupt == 0);
    CHECK(rx.reordered == 0);
    CHECK(rx.corrupt == 0);
    CHECK(sh.history().total_tx_lost() == 0);
}

TEST_CASE("vmxnet3 and VF paths: a VF its PF removed (registers read 0, as on QEMU) falls back "
          "to the vmxnet3 and TX goes on there") {
    th::world w(1);
    w.vf_removed_reads_zero = true;
    start_on_vmxnet3(w);
    th::shell_t& sh = *w.sh;
    w.run(50);
    REQUIRE(w.switch_under_traffic(w.a.vf_path, npa::switch_reason::operator_request).ok());
    w.run(50);
    w.a.nic->vf(0).remove();
    for (int i = 0; i < 2000 && (sh.active_path() != w.vmx_path || sh.switching()); ++i)
        w.round(th::burst, th::burst);
    REQUIRE(sh.active_path() == w.vmx_path);
    const std::uint64_t before = sh.path_stats(w.vmx_path, 0).tx_packets;
    const std::uint64_t peer_before = w.peer.report(th::guest_flow, w.tx_sent()).received;
    w.run(100);
    w.settle();
    CHECK(sh.path_stats(w.vmx_path, 0).tx_packets > before);
    const auto t = w.peer.report(th::guest_flow, w.tx_sent());
    CHECK(t.received > peer_before);
    CHECK(t.lost == 0);
    CHECK(t.reordered + t.duplicates + t.corrupt == 0);
    CHECK(sh.history().total_tx_lost() == 0);
    CHECK(sh.audit().ok());
}
