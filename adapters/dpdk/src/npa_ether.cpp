// npa_ether.cpp: net_npa's sub-devices: which are usable, their link, moving the traffic
// between them, and letting a removed one go (and taking it back when it returns).
#include "npa_private.hpp"

#include <rte_alarm.h>
#include <rte_dev.h>

namespace npa::dpdk::pmd {

bool usable(const npa_port& p, std::size_t i) noexcept {
    return i < p.nsubs && !p.subs[i].removed;
}

link_state link_of(const sub_device& s) noexcept {
    if (s.image != nullptr) return s.image->link_up() ? link_state::up : link_state::down;
    if (rte_eth_devices[s.port_id].data == nullptr ||
        rte_eth_devices[s.port_id].data->dev_started == 0) {
        return link_state::unknown;
    }
    rte_eth_link l{};
    if (rte_eth_link_get_nowait(s.port_id, &l) != 0) return link_state::unknown;
    return l.link_status == RTE_ETH_LINK_UP ? link_state::up : link_state::down;
}

/// The most preferred usable path other than `except` whose link is not known to be
/// down (or, with need_up, known to be up).
std::uint32_t best_path(const npa_port& p, std::uint32_t except, bool need_up) noexcept {
    for (std::uint32_t i = 0; i < p.nsubs; ++i) {
        if (i == except || !usable(p, i)) continue;
        const link_state l = link_of(p.subs[i]);
        if (need_up ? l == link_state::up : l != link_state::down) return i;
    }
    return shell_paths::no_path;
}

/// The errno a refused switch answers with (rte_pmd_npa.h).
int switch_errno(const status& st) noexcept {
    switch (st.code()) {
    case errc::ok: return 0;
    case errc::invalid_argument: return -EINVAL;
    case errc::busy: return -EBUSY;
    default: return -EIO;
    }
}

/// Dwell time (hysteresis) applies to the switches net_npa decides itself; an operator
/// (rte_pmd_npa_switch, /npa/switch) and a removal move the traffic at once.
bool discretionary(switch_reason why) noexcept {
    return why == switch_reason::policy || why == switch_reason::vf_arrived;
}

status do_switch(npa_port& p, std::uint32_t path, switch_reason why) noexcept {
    if (path >= p.nsubs) return {errc::invalid_argument, "no such path"};
    if (p.subs[path].removed) return {errc::removed, "the path's device is gone"};
    if (!p.started) {
        // Not running: the port starts on this path.
        p.args.active = path;
        return status::success();
    }
    // Asking for the path the port is on (or moving to) changes nothing.
    if (path == p.paths.target()) return status::success();
    const std::uint64_t now = dpdk_env::now_ns();
    if (discretionary(why) && now - p.last_switch_ns < std::uint64_t{p.args.dwell_ms} * 1'000'000) {
        return {errc::busy, "hysteresis: the current path has not dwelt long enough"};
    }
    const std::uint32_t from = p.paths.active();
    const status st = p.paths.request(path, why);
    if (st.ok()) {
        // The shell's epoch has moved: every queue goes through it until it is steady.
        p.lanes.clear();
        p.last_switch_ns = now;
        NPA_LOG(INFO, "%s: data path %u (%s) -> %u (%s), reason %s\n", p.dev->data->name, from,
                from < p.nsubs ? p.subs[from].name : "none", path, p.subs[path].name,
                to_string(why));
        if (p.alarm_set) rte_eal_alarm_cancel(policy_tick, &p);
        arm_policy(p);
    }
    return st;
}

/// Starts (or stops) listening to a sub-port's removal events.
void watch(std::uint16_t port, npa_port& p, bool on) noexcept {
    for (const rte_eth_event_type ev : {RTE_ETH_EVENT_INTR_RMV, RTE_ETH_EVENT_DESTROY}) {
        if (on)
            (void)rte_eth_dev_callback_register(port, ev, on_sub_event, &p);
        else
            (void)rte_eth_dev_callback_unregister(port, ev, on_sub_event, &p);
    }
}

/// A removed sub-device that no queue uses any more is detached (closed, and removed
/// from its bus when net_npa probed it), as fail-safe does, so that it can come back.
void retire_removed(npa_port& p) noexcept {
    for (std::uint32_t i = 0; i < p.nsubs; ++i) {
        sub_device& s = p.subs[i];
        if (!s.removed || s.port_id >= RTE_MAX_ETHPORTS || (p.started && p.paths.active() == i)) {
            continue;
        }
        const std::uint16_t id = s.port_id;
        s.port_id = RTE_MAX_ETHPORTS;
        watch(id, p, false);
        if (s.destroyed || !rte_eth_dev_is_valid_port(id)) continue;
        (void)rte_eth_dev_owner_unset(id, p.owner.id);
        if (s.probed_here) {
            rte_eth_dev_info info{};
            if (rte_eth_dev_info_get(id, &info) == 0 && info.device != nullptr) {
                (void)rte_eth_dev_stop(id);
                (void)rte_eth_dev_close(id);
                (void)rte_dev_remove(info.device);
            }
        }
        NPA_LOG(INFO, "%s: sub-device %s detached\n", p.dev->data->name, s.name);
    }
}

/// Hot plug: a port named like a detached sub-device is that sub-device back. It is
/// owned and watched again; the loop below decides whether traffic moves to it. (Looked
/// up here rather than in an RTE_ETH_EVENT_NEW callback: a callback registered for
/// RTE_ETH_ALL does not survive the release of the port id the device comes back on.)
void claim_returned(npa_port& p) noexcept {
    for (std::uint32_t i = 0; i < p.nsubs; ++i) {
        sub_device& s = p.subs[i];
        std::uint16_t port = RTE_MAX_ETHPORTS;
        if (!s.removed || s.port_id < RTE_MAX_ETHPORTS ||
            rte_eth_dev_get_port_by_name(s.name, &port) != 0 ||
            rte_eth_dev_owner_set(port, &p.owner) != 0) {
            continue;
        }
        watch(port, p, true);
        s.port_id = port;
        s.probed_here = false;  // whoever probed it this time owns its removal
        p.paths.set_sub_port(i, port);
        s.destroyed = false;
        s.removed = false;
        s.marked = false;
        s.arrived = true;
        NPA_LOG(INFO, "%s: sub-device %s is back as port %u\n", p.dev->data->name, s.name, port);
    }
}

/// Tells the plugin of every removed sub-device that no queue uses any more that its
/// device is gone, so the data path never touches it again. The active one is told
/// only once the switch away from it has flipped every queue: until then the drain
/// still reads what it had received (a PMD that raised RMV answers its bursts until the
/// device is detached).
void mark_gone(npa_port& p) noexcept {
    for (std::uint32_t i = 0; i < p.nsubs; ++i) {
        sub_device& s = p.subs[i];
        if (!s.removed || s.marked)
            continue;
        if (p.started && (p.paths.active() == i || p.paths.switching()))
            continue;
        p.paths.mark_removed(i);
        p.lanes.clear();
        s.marked = true;
    }
}

/// Gives the sub-devices back: their ports are closed, and those net_npa probed are
/// removed from their bus, except while the bus itself is removing devices
/// (p.bus_removing): the vdev bus's cleanup at rte_eal_cleanup() walks its device list
/// with the next element already taken, so removing another vdev from that list under
/// it makes it read freed memory (DPDK 22.11 vdev_cleanup). There the ports are only
/// closed, and the bus removes the devices itself as its walk reaches them.
void release_subs(npa_port& p) noexcept {
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        sub_device& s = p.subs[i];
        if (s.port_id >= RTE_MAX_ETHPORTS) continue;
        watch(s.port_id, p, false);
        if (!s.removed && rte_eth_dev_is_valid_port(s.port_id)) {
            (void)rte_eth_dev_owner_unset(s.port_id, p.owner.id);
            if (s.probed_here) {
                rte_eth_dev_info info{};
                if (rte_eth_dev_info_get(s.port_id, &info) == 0 && info.device != nullptr) {
                    (void)rte_eth_dev_close(s.port_id);
                    if (!p.bus_removing) (void)rte_dev_remove(info.device);
                }
            }
        }
        s.port_id = RTE_MAX_ETHPORTS;
    }
    if (p.owner.id != RTE_ETH_DEV_NO_OWNER) (void)rte_eth_dev_owner_delete(p.owner.id);
    p.nsubs = 0;
}

} // namespace npa::dpdk::pmd
