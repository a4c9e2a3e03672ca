// npa_intr.cpp: what runs on the EAL interrupt thread: the removal events of the
// sub-devices and the policy timer (link checks, hot plug, completing a switch).
#include "npa_private.hpp"

#include <rte_alarm.h>

namespace npa::dpdk::pmd {

/// Arms the policy timer: often while a switch is in progress (its release step runs
/// here), at the link-check period otherwise.
void arm_policy(npa_port& p) noexcept {
    const std::uint64_t us = p.paths.switching() ? switching_tick_us : policy_tick_us;
    p.alarm_set = rte_eal_alarm_set(us, policy_tick, &p) == 0;
}

/// Periodic control work (rte_eal_alarm, the interrupt thread): completes a switch in
/// progress (shell service: release of the old path); on link loss of the active path
/// moves traffic to the best other path; moves back to a preferred path whose link is up
/// again, unless the application chose the current path itself. Hysteresis (dwell,
/// back-off) is the shell's: these are discretionary switches (switch_reason::policy).
void policy_tick(void* arg) {
    auto* p = static_cast<npa_port*>(arg);
    p->alarm_set = false;
    if (!p->started) return;
    (void)p->paths.service();
    mark_gone(*p);
    if (!p->paths.switching()) retire_removed(*p);
    claim_returned(*p);
    const std::uint32_t cur = p->paths.active();
    // Hot plug: a sub-device that came back and is preferred to the current path takes
    // the traffic back (a discretionary switch: dwell time and back-off apply).
    for (std::uint32_t i = 0; p->args.auto_switch && i < p->nsubs && i < cur; ++i) {
        if (!p->subs[i].arrived || p->paths.switching()) continue;
        const status st = do_switch(*p, i, switch_reason::vf_arrived);
        if (st.ok()) {
            p->subs[i].arrived = false;
        } else if (st.code() != errc::busy) {
            NPA_LOG(WARNING, "%s: returning sub-device %s not taken: %s\n", p->dev->data->name,
                    p->subs[i].name, st.reason());
        }
    }
    if (p->args.auto_switch && !p->paths.switching() && cur < p->nsubs) {
        if (link_of(p->subs[cur]) == link_state::down) {
            const std::uint32_t next = best_path(*p, cur, false);
            if (next != shell_paths::no_path) (void)do_switch(*p, next, switch_reason::policy);
        } else {
            const switch_history h = p->paths.history();
            const bool chosen = h.count() != 0 &&
                                h.recent(0).reason == switch_reason::operator_request;
            const std::uint32_t best = best_path(*p, shell_paths::no_path, true);
            if (!chosen && best != shell_paths::no_path && best < cur) {
                (void)do_switch(*p, best, switch_reason::policy);
            }
        }
    }
    if (p->started && !p->alarm_set) arm_policy(*p);
}

/// Removal of a sub-device, either way it is announced:
/// - RTE_ETH_EVENT_INTR_RMV: the device is going away. It stops being a switch target at
///   once; if it carries the traffic, the shell moves to the best other path (a
///   mandatory switch: no dwell time) and, as for any switch, first delivers what the old
///   device already received (a PMD that raised RMV answers its bursts safely until the
///   device is detached).
/// - RTE_ETH_EVENT_DESTROY: the application released the port (testpmd `device detach`,
///   rte_dev_remove): its queues are freed when this callback returns, so the data path
///   stops touching it now, and the traffic moves without a drain of the old device.
int on_sub_event(std::uint16_t sub_port, rte_eth_event_type type, void* arg, void*) {
    auto* p = static_cast<npa_port*>(arg);
    if (type != RTE_ETH_EVENT_INTR_RMV && type != RTE_ETH_EVENT_DESTROY) return 0;
    const bool destroyed = type == RTE_ETH_EVENT_DESTROY;
    for (std::uint32_t i = 0; i < p->nsubs; ++i) {
        if (p->subs[i].port_id != sub_port || p->subs[i].destroyed) continue;
        if (destroyed) {
            p->subs[i].destroyed = true;
            if (!p->subs[i].marked) {
                p->paths.mark_removed(i);
                p->lanes.clear();
                p->subs[i].marked = true;
            }
        }
        if (p->subs[i].removed) continue;
        NPA_LOG(WARNING, "%s: sub-device %s %s\n", p->dev->data->name, p->subs[i].name,
                destroyed ? "released by the application" : "removed");
        p->subs[i].removed = true;
        mark_gone(*p);
        if (p->started && p->paths.active() == i) {
            const std::uint32_t next = best_path(*p, i, false);
            const status st = next == shell_paths::no_path
                                  ? status{errc::removed, "no other usable path"}
                                  : do_switch(*p, next, switch_reason::surprise_removal);
            if (!st.ok()) {
                // Nowhere to go: the port keeps the path but stops touching the device.
                NPA_LOG(ERR, "%s: no switch after removal: %s\n", p->dev->data->name, st.reason());
                p->paths.mark_removed(i);
                p->lanes.clear();
                p->subs[i].marked = true;
            }
        }
    }
    return 0;
}

} // namespace npa::dpdk::pmd
