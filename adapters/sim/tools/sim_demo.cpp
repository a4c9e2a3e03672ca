// npa-sim-demo: a short sim scenario with the reference plugin alone (no shell).
//
// A guest drives a simnic through the reference plugin; the simnic's cable goes to a host
// that sends and checks numbered frames. Traffic runs both ways in phases, some with a
// fault injected; each phase prints a progress line, and the end prints what was sent,
// received, lost, and where every buffer is. The scenario is a list of phases, so a
// richer one (the shell switching between plugins) replaces the list, not the program.
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#include <fmt/core.h>

#include <array>
#include <cstdint>
#include <vector>

namespace {

using npa::sim::simnic_rig;
using api = simnic_rig::api_type;
using plugin = npa::sim::simnic_plugin<api>;

constexpr std::uint32_t tx_flow = 1;
constexpr std::uint32_t burst = 32;
constexpr std::uint32_t rounds_per_phase = 200;  // each round: one burst each way, one device step

struct phase {
    const char* name;
    npa::sim::fault_plan faults;
};

struct totals {
    std::uint64_t tx_accepted = 0, rx_delivered = 0, far_sent = 0;
};

// One round: the guest sends a burst, the host sends a burst, the device steps, the guest
// polls RX and reaps TX. What tx_burst does not accept is retried next round.
void run_round(simnic_rig& rig, plugin& p, std::uint32_t rx_flow, std::vector<npa::buffer_ref>& pend,
               totals& t) {
    while (pend.size() < burst) {
        npa::buffer_ref b;
        if (rig.api().alloc_tx(std::span(&b, 1)) == 0) {
            break;
        }
        rig.build_tx(b, tx_flow);
        pend.push_back(b);
    }
    rig.api().offer(pend);
    const std::uint16_t k = p.tx_burst(0, pend);
    rig.api().not_accepted(std::span(pend).subspan(k));
    pend.erase(pend.begin(), pend.begin() + k);
    t.tx_accepted += k;
    t.far_sent += rig.far_send(rx_flow, burst);
    rig.step();
    std::array<npa::buffer_ref, burst> out{};
    const std::uint16_t m = p.rx_burst(0, out);
    rig.api().received(std::span(out).first(m));
    for (std::uint16_t i = 0; i < m; ++i) {
        rig.guest_sink().record(std::span<const std::byte>(out[i].data(), out[i].length()));
    }
    rig.api().free(std::span(out).first(m));
    t.rx_delivered += m;
    (void)p.tx_reap(0);
}

} // namespace

int main() {
    simnic_rig::config cfg;
    cfg.queues = 1;
    simnic_rig rig(cfg);
    if (!rig.ok()) {
        fmt::print(stderr, "npa-sim-demo: {}\n", rig.error());
        return 1;
    }
    plugin p;
    if (const npa::status st = p.attach(rig.api(), rig.window(), rig.queue_cfg()); !st) {
        fmt::print(stderr, "npa-sim-demo: attach failed: {}\n", st.reason());
        return 1;
    }
    const std::uint32_t rx_flow = rig.flow_for_queue(0);

    npa::sim::fault_plan flap;
    flap.link_down_steps = 20;
    npa::sim::fault_plan hostile;
    hostile.drop_tx_completions = 3;
    hostile.corrupt = npa::sim::comp_fault::double_completion;
    hostile.corrupt_ring = npa::sim::ring_kind::rx;
    hostile.corrupt_count = 2;
    const std::array<phase, 4> phases{{
        {"clean traffic", {}},
        {"link flap (20 steps down)", flap},
        {"hostile device (dropped TX and doubled RX completions)", hostile},
        {"clean traffic again", {}},
    }};

    fmt::print("npa-sim-demo: {} on {}, {} TX / {} RX descriptors, {} buffers in guest memory\n",
               plugin::name, rig.device().name(), cfg.tx_ring, cfg.rx_ring, cfg.buffers);
    totals t;
    std::vector<npa::buffer_ref> pend;
    for (std::size_t i = 0; i < phases.size(); ++i) {
        rig.inject(phases[i].faults);
        for (std::uint32_t r = 0; r < rounds_per_phase; ++r) {
            run_round(rig, p, rx_flow, pend, t);
        }
        const npa::queue_stats& st = p.stats(0);
        fmt::print("[phase {}] {:<58} tx {:>6}  rx {:>6}  bad completions {:>2}  health {}\n",
                   i + 1, phases[i].name, st.tx_packets, st.rx_packets, st.bad_completion,
                   npa::to_string(p.health()));
    }
    for (std::uint32_t r = 0; r < 50 && p.tx_in_flight(0) != 0; ++r) {
        rig.step();
        (void)p.tx_reap(0);
    }
    rig.api().free(pend);
    p.detach();
    rig.api().free(rig.api().take_unsent());

    const auto out = rig.far_report(tx_flow, t.tx_accepted);
    const auto in = rig.guest_sink().report(rx_flow, t.far_sent);
    const auto dev = rig.device().stats(0);
    const auto audit = rig.api().audit();
    fmt::print("\nsummary\n");
    fmt::print("  guest -> host: sent {:>6}  received {:>6}  lost {:>4} (link down {})  "
               "duplicated {}  reordered {}\n",
               out.sent, out.received, out.lost, dev.tx_link_down, out.duplicates, out.reordered);
    fmt::print("  host -> guest: sent {:>6}  received {:>6}  lost {:>4} (no RX buffer {}, link "
               "down {})  duplicated {}  reordered {}\n",
               in.sent, in.received, in.lost, dev.rx_no_desc, rig.device().device_stats().rx_link_down,
               in.duplicates, in.reordered);
    fmt::print("  device violations: {}   shell API errors: {}\n", rig.violations().size(),
               rig.api().errors());
    fmt::print("  buffers: {} total, {} in the pool, {} with the caller, {} with the plugin: {}\n",
               audit.total, audit.in_pool, audit.with_caller, audit.with_plugin,
               audit.balanced() && audit.in_pool == audit.total ? "all accounted for" : "LOST");
    return audit.balanced() && audit.in_pool == audit.total && rig.violations().empty() ? 0 : 1;
}
