// npa-demo: the NPA scenario (`make demo`).
//
// A guest with one npa shell and two plugins, the emulated vmxnet3 path (always there) and
// an 82576 VF (passthrough), runs numbered traffic both ways with a peer on the physical
// network while the sim hypervisors move it around:
//
//   boot on vmxnet3 (host A) -> VF allocated, switched in -> the guest changes its MAC
//   (allowed) and tries one it does not own (refused), and a forged frame (dropped by the
//   embedded switch) -> live migration: out to vmxnet3, the guest moves to host B, whose
//   VF has smaller rings and fewer offloads, switched in -> the VF is pulled mid-burst ->
//   the VF comes back flapping, and hysteresis keeps the data path still.
//
//   peer --- physical switch ---+--- host A vswitch --+-- vmxnet3 backend (the guest's, until migration)
//                               |                     +-- SR-IOV NIC A: embedded switch, VF0
//                               +--- host B vswitch --+-- vmxnet3 backend (after migration)
//                                                     +-- SR-IOV NIC B: embedded switch, VF0
//
// Loss, duplication and reordering are counted from sequence numbers at both ends. The
// last line is a summary; with --json it is one JSON object. Exit status 1 if any TX
// packet was lost or reordered or the buffer audit does not balance.
#include <npa/sim/two_hosts.hpp>

#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace npa;
using namespace npa::sim;
using namespace npa::sim::two_hosts;

// ---- the timeline ------------------------------------------------------------------------

void scenario(world& w, bool quick) {
    // Each phase runs this long: longer than the minimum dwell, so that every
    // discretionary switch in the timeline is allowed and only the flapping VF is held.
    const std::uint64_t steady = quick ? 60 : 400;
    shell_t& sh = *w.sh;

    // 1. Boot on the emulated path.
    if (const status st = sh.start<0>(w.vmx->window(), w.vmx_link()); !st) {
        w.event(fmt::format("boot failed: {}", st.reason()));
        return;
    }
    (void)sh.set_mac(guest_mac);
    sh.set_fallback<0>(w.vmx->window(), w.vmx_link());
    w.event(fmt::format("boot: guest up on {} (host A), offloads [{}]", sh.active_name(),
                        offload_names{sh.offloads()}));
    w.run_for(steady);

    // 2. The hypervisor allocates VF0 on host A's NIC: passthrough on.
    status st = w.switch_under_traffic<1>(w.a.nic->vf(0).window(), w.vf_link(w.a),
                                          switch_reason::vf_arrived);
    w.event(fmt::format("VF0 on host A allocated: {} ({})", st.ok() ? "switched in" : st.reason(),
                        fmt::format("{}", sh.history().recent(0))));
    w.run_for(steady);

    // 3. The guest changes its MAC (allowed by the PF) and back; then one it does not own
    //    (refused through the mailbox), and a frame forged with a foreign source address
    //    (dropped by the embedded switch's anti-spoofing).
    st = sh.set_mac(guest_mac2);
    w.event(fmt::format("guest sets MAC 02:4e:50:41:00:02: {}", st.ok() ? "applied by the PF" : st.reason()));
    // (No traffic in between: its frames carry the first address, which the embedded
    // switch would rightly drop as spoofed while the VF owns the second.)
    st = sh.set_mac(guest_mac);
    w.event(fmt::format("guest sets MAC 02:4e:50:41:00:01 again: {}", st.ok() ? "applied by the PF" : st.reason()));
    st = sh.set_mac(rogue_mac);
    if (!st) {
        ++w.mac_refusals;
        w.mac_refusal_reason = st.reason();
    }
    w.event(fmt::format("guest sets MAC 02:66:66:66:66:66: {} ({})", st.ok() ? "applied" : "refused",
                        st.reason()));
    {
        buffer_ref bf;
        if (sh.alloc(0, std::span(&bf, 1)) == 1) {
            traffic_gen forged(999, rogue_mac, peer_mac);
            bf.set_length(forged.build(std::span<std::byte>(bf.data(), bf.capacity())));
            w.spoofed_sent += sh.tx_burst(0, std::span(&bf, 1));
        }
    }
    w.run_for(steady);
    w.event(fmt::format("forged frame: embedded switch dropped {} spoofed frame(s)",
                        w.a.nic->switch_stats(0).spoofed));

    // 4. Live migration to host B: out to the emulated path, move, in on host B's VF.
    st = w.switch_under_traffic<0>(w.vmx->window(), w.vmx_link(), switch_reason::migration);
    w.event(fmt::format("migration: passthrough off ({})", fmt::format("{}", sh.history().recent(0))));
    w.run_for(steady / 2);
    w.plug_vmx(w.b);  // the guest and its vmxnet3 backend now live on host B
    (void)w.vmx_link_ch.submit(control_request::make_set_mac(sh.desired_control().mac()));
    w.event("migration: guest resumed on host B (vmxnet3 backend re-plugged, network re-steered)");
    w.run_for(steady / 2);
    st = w.switch_under_traffic<1>(w.b.nic->vf(0).window(), w.vf_link(w.b), switch_reason::vf_arrived);
    w.event(fmt::format("VF0 on host B allocated: {} ({})", st.ok() ? "switched in" : st.reason(),
                        fmt::format("{}", sh.history().recent(0))));
    for (std::uint32_t i = 0; i < sh.capability_event_count() && i < 8; ++i) {
        const capability_event& ev = sh.capability_event_at(i);
        if (ev.switch_seq != sh.history().recent(0).seq) break;
        w.event(fmt::format("  capability {} {}: {}", cap::name(static_cast<unsigned>(__builtin_ctz(ev.bit))),
                            ev.lost ? "lost" : "regained", ev.why));
    }
    w.run_for(steady);

    // 5. Surprise removal in the middle of a burst: the VF vanishes after 40 more TX
    //    descriptors; the shell falls back on its own, resending what the VF had taken.
    fault_plan gone;
    gone.remove_after_tx = 40;
    w.b.nic->vf(0).inject(gone);
    w.event("host B pulls VF0 (surprise removal after 40 more TX descriptors)");
    for (int i = 0; i < 2000 && (sh.active_path() != 0 || sh.switching()); ++i) w.round(burst, burst);
    w.event(fmt::format("fallback: {}", fmt::format("{}", sh.history().recent(0))));
    w.run_for(steady);

    // 6. The VF comes back, flapping: every 2 ms it arrives or leaves. Leaving is
    //    mandatory; arriving is discretionary and held back by the minimum dwell.
    w.b.nic->vf(0).revive();
    w.b.nic->vf(0).inject(fault_plan{});
    const std::uint64_t flap_until = steady_ns() + (quick ? 150'000'000 : 600'000'000);
    const std::uint64_t switches_before = sh.history().switches();
    bool up = false;
    std::uint64_t next = steady_ns();
    while (steady_ns() < flap_until) {
        if (steady_ns() >= next && !sh.switching()) {
            next = steady_ns() + 2'000'000;
            up = !up;
            ++w.flap_events;
            if (up) {
                w.b.nic->vf(0).revive();
                w.b.nic->vf(0).inject(fault_plan{});
                ++w.flap_requests;
                const status fs = sh.request_switch<1>(w.b.nic->vf(0).window(), w.vf_link(w.b),
                                                       switch_reason::vf_arrived);
                w.flap_refused += fs.code() == errc::busy;
            } else if (sh.active_path() == 1) {
                (void)sh.request_switch<0>(w.vmx->window(), w.vmx_link(), switch_reason::vf_leaving);
            }
        }
        w.round(burst, burst);
    }
    while (sh.switching()) w.round(burst, burst);
    w.event(fmt::format("flapping VF: {} flap events, {} arrivals, {} held back by hysteresis, {} switches",
                        w.flap_events, w.flap_requests, w.flap_refused,
                        sh.history().switches() - switches_before));
    if (sh.active_path() == 1) {
        (void)w.switch_under_traffic<0>(w.vmx->window(), w.vmx_link(), switch_reason::vf_leaving);
    }
    w.run_for(steady / 2);
    w.settle();
}

} // namespace

int main(int argc, char** argv) {
    bool json = false, quick = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            std::fprintf(stderr, "usage: %s [--json] [--quick]\n", argv[0]);
            return 2;
        }
    }
    auto w = std::make_unique<world>();
    std::string err;
    if (!w->build(err)) {
        std::fprintf(stderr, "npa-demo: %s\n", err.c_str());
        return 1;
    }
    fmt::print("npa-demo: one guest shell, two plugins (vmxnet3, igbvf), two hosts; {} queues, "
               "{}-frame bursts both ways\n", w->queues, burst);
    scenario(*w, quick);

    shell_t& sh = *w->sh;
    // Frames still waiting in the guest's qdisc go back to the pool (none after settle).
    for (std::uint16_t q = 0; q < w->queues; ++q) sh.free(q, w->pending[q]);
    std::uint64_t tx_sent = 0, tx_lost = 0, tx_dup = 0, tx_reord = 0, tx_recv = 0;
    for (std::uint16_t q = 0; q < w->queues; ++q) {
        const std::uint64_t sent = w->gens[q].sent() - w->pending[q].size();
        const flow_report r = w->peer.report(guest_flow + q, sent);
        tx_sent += r.sent;
        tx_recv += r.received;
        tx_lost += r.lost;
        tx_dup += r.duplicates;
        tx_reord += r.reordered;
        w->pending[q].clear();
    }
    const flow_report rx = w->sink.report(peer_flow, w->peer_sent);
    const audit_report audit = sh.audit();
    const switch_history& h = sh.history();

    fmt::print("\n{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}\n", "", "sent", "received", "lost", "dup", "reordered");
    fmt::print("{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}\n", "TX guest -> peer", tx_sent, tx_recv, tx_lost, tx_dup, tx_reord);
    fmt::print("{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}   (devices dropped {})\n", "RX peer -> guest",
               rx.sent, rx.received, rx.lost, rx.duplicates, rx.reordered, w->device_rx_drops());
    fmt::print("\nswitches: {} ({} refused or failed, {} held back by hysteresis)\n", h.switches(),
               h.failures(), sh.suppressed_switches());
    std::uint64_t max_us = 0;
    for (std::uint32_t i = h.size(); i-- > 0;) {
        const switch_record& r = h.recent(i);
        fmt::print("  {} {} -> {}: {}\n", r.seq, shell_t::path_name(r.from), shell_t::path_name(r.to), r);
        if (r.result == errc::ok) max_us = std::max<std::uint64_t>(max_us, r.duration_ns / 1000);
    }
    std::uint32_t caps_lost = 0, caps_regained = 0;
    for (std::uint32_t i = 0; i < sh.capability_event_count() && i < 64; ++i) {
        (sh.capability_event_at(i).lost ? caps_lost : caps_regained) += 1;
    }
    fmt::print("capability events: {} offloads lost, {} regained (per switch above); in effect now: [{}]\n",
               caps_lost, caps_regained, offload_names{sh.offloads()});
    fmt::print("policy: MAC refused {} time(s) ({}); spoofed frames dropped by embedded switches: {}\n",
               w->mac_refusals, w->mac_refusal_reason,
               w->a.nic->switch_stats(0).spoofed + w->b.nic->switch_stats(0).spoofed);
    fmt::print("buffer audit: {}\n", audit);
    fmt::print("ran {} rounds in {:.2f} s\n", w->rounds, w->secs());
    const bool ok = tx_lost == 0 && tx_reord == 0 && audit.ok();
    if (json) {
        fmt::print("{{\"tx_sent\": {}, \"tx_lost\": {}, \"tx_duplicates\": {}, \"tx_reordered\": {}, "
                   "\"rx_sent\": {}, \"rx_lost\": {}, \"rx_device_drops\": {}, \"switches\": {}, "
                   "\"switch_failures\": {}, \"suppressed\": {}, \"max_switch_us\": {}, "
                   "\"spoofed_dropped\": {}, \"mac_refusals\": {}, \"audit_ok\": {}}}\n",
                   tx_sent, tx_lost, tx_dup, tx_reord, rx.sent, rx.lost, w->device_rx_drops(),
                   h.switches(), h.failures(), sh.suppressed_switches(), max_us,
                   w->a.nic->switch_stats(0).spoofed + w->b.nic->switch_stats(0).spoofed,
                   w->mac_refusals, audit.ok() ? "true" : "false");
    } else {
        fmt::print("{}\n", ok ? "result: zero TX loss, no reordering, every buffer accounted for"
                              : "result: FAILED (TX loss, reordering or an unbalanced audit)");
    }
    return ok ? 0 : 1;
}
