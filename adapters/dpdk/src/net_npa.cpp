// net_npa.cpp: the net_npa virtual poll-mode driver.
//
// An ordinary ethdev port for the application; underneath, its data path runs over one of
// several sub-devices (any DPDK port, given as dev(<device>) devargs) and moves between
// them without losing packets (datapath.hpp). The control state the application sets
// (MAC addresses, promiscuous/allmulticast, MTU, VLAN filter) is kept here and applied to
// every sub-device, and replayed onto a sub-device when it is (re)attached.
//
// Built as librte_net_npa.so: `dpdk-testpmd -d <dir>` loads it, and applications link it.
#include "datapath.hpp"
#include "devargs.hpp"
#include "lanes.hpp"

#include <npa/dpdk/ethdev_plugin.hpp>
#include <npa/dpdk/rte_pmd_npa.h>

#include <bus_vdev_driver.h>
#include <ethdev_driver.h>
#include <ethdev_vdev.h>
#include <rte_alarm.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_telemetry.h>

#include <array>
#include <atomic>
#include <bitset>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>

static rte_vdev_driver net_npa_drv;

namespace npa::dpdk {
namespace {

// Tuning constants, with reasons.
/// Link state of the sub-devices is checked this often (not every PMD raises LSC
/// interrupts; net_ring and net_null never do). Short enough to react to a link loss
/// within the default dwell time, long enough to cost nothing.
constexpr std::uint64_t policy_tick_us = 20'000;
/// While a switch is in progress the release step (service()) runs this often, so the
/// old sub-port is stopped soon after the last queue flipped.
constexpr std::uint64_t switching_tick_us = 1'000;
/// xstats per path (see xstat_names) and global switch telemetry entries.
constexpr unsigned path_xstats = 4;
/// Requests a full control state can make: MAC, RX mode, MTU, one per VLAN filter.
constexpr std::size_t control_batch_max = 3 + 4096;
constexpr unsigned switch_xstats = 7;

int logtype = -1;

#define NPA_LOG(level, ...) rte_log(RTE_LOG_##level, static_cast<std::uint32_t>(logtype), \
                                    "net_npa: " __VA_ARGS__)

struct npa_port;

struct sub_device {
    std::uint16_t port_id = RTE_MAX_ETHPORTS;
    bool probed_here = false;   ///< we called rte_dev_probe (and so remove it at close)
    // Written by the EAL interrupt thread (removal events, policy_tick) and read by the
    // application's control calls: atomics, so neither side reads a torn or stale flag.
    std::atomic<bool> removed{false};  ///< RTE_ETH_EVENT_INTR_RMV or DESTROY seen
    /// RTE_ETH_EVENT_DESTROY seen: the application released the port itself (device
    /// detach); nothing may be called on it any more, not even to stop or close it.
    std::atomic<bool> destroyed{false};
    std::atomic<bool> arrived{false};  ///< came back (hot plug); policy_tick may switch to it
    std::atomic<bool> marked{false};   ///< its plugin was told (mark_removed): no more bursts
    std::uint64_t backoff_until_ns = 0;
    char name[RTE_ETH_NAME_MAX_LEN] = {};
};

/// The control state the application asked for, kept across stop/start: each start
/// builds a new shell and hands it this state before the first path comes up (the
/// secondary MACs are kept by shell_paths).
struct control_state {
    rte_ether_addr mac{};
    bool promisc = false;
    bool allmulti = false;
    std::uint16_t mtu = 0;  ///< 0: the sub-devices' default
    std::bitset<4096> vlans{};
};

struct npa_port {
    rte_eth_dev* dev = nullptr;
    npa_devargs args{};
    shell_paths paths{};
    std::array<sub_device, max_sub_devices> subs{};
    std::size_t nsubs = 0;
    rte_eth_dev_owner owner{};
    control_state ctl{};
    std::array<rte_mempool*, ethdev_max_queues> rx_pools{};
    std::uint16_t rx_desc = 512;
    std::uint16_t tx_desc = 512;
    port_lanes lanes{};
    std::array<queue_stats, ethdev_max_queues> base{};  ///< stats_reset baseline per queue
    /// When the last switch was requested (dwell): do_switch runs on the application's
    /// and on the interrupt thread.
    std::atomic<std::uint64_t> last_switch_ns{0};
    std::atomic<bool> started{false};   ///< read by policy_tick on the interrupt thread
    std::atomic<bool> alarm_set{false}; ///< written by policy_tick, read by stop/close
    bool bus_removing = false;          ///< closed by the bus's remove (see release_subs)
};

eth_dev_ops make_ops() noexcept;
const eth_dev_ops npa_ops = make_ops();

npa_port* priv(rte_eth_dev* dev) noexcept { return static_cast<npa_port*>(dev->data->dev_private); }

/// The port behind port_id when it is a net_npa port, else null.
npa_port* find_port(std::uint16_t port_id) noexcept {
    if (!rte_eth_dev_is_valid_port(port_id)) return nullptr;
    rte_eth_dev* dev = &rte_eth_devices[port_id];
    if (dev->dev_ops != &npa_ops || dev->data == nullptr) return nullptr;
    return priv(dev);
}

// ---- data path ---------------------------------------------------------------------------

// Steady state: the sub-port's own burst function, called directly (lanes.hpp). Else
// the shell, which runs a switch in progress on this thread; afterwards the lane is
// published again once the queue is steady. Received mbufs carry net_npa's port id, as
// the application expects of any port (one store per packet; fail-safe does the same).

__attribute__((noinline)) std::uint16_t rx_through_shell(port_lanes::rx_lane& l, rte_mbuf** pkts,
                                            std::uint16_t n) noexcept {
    auto& p = *static_cast<npa_port*>(l.owner);
    p.lanes.unpublish(l, p.lanes.rx_books(l.q));
    const std::uint16_t k = p.paths.rx_burst(l.q, as_refs(pkts, n));
    bump(l.packets, k);
    p.lanes.publish(l, p.paths, [](const struct rte_eth_fp_ops& o, std::uint16_t q) {
        return std::pair{o.rx_pkt_burst, o.rxq.data != nullptr ? o.rxq.data[q] : nullptr};
    });
    return k;
}

__attribute__((noinline)) std::uint16_t tx_through_shell(port_lanes::tx_lane& l, rte_mbuf** pkts,
                                            std::uint16_t n) noexcept {
    auto& p = *static_cast<npa_port*>(l.owner);
    p.lanes.unpublish(l, p.lanes.tx_books(l.q));
    const std::uint16_t k = p.paths.tx_burst(l.q, as_refs(pkts, n));
    bump(l.packets, k);
    p.lanes.publish(l, p.paths, [](const struct rte_eth_fp_ops& o, std::uint16_t q) {
        return std::pair{o.tx_pkt_burst, o.txq.data != nullptr ? o.txq.data[q] : nullptr};
    });
    return k;
}

std::uint16_t npa_rx_burst(void* rxq, rte_mbuf** pkts, std::uint16_t n) {
    auto& l = *static_cast<port_lanes::rx_lane*>(rxq);
    const eth_rx_burst_t fn = l.direct.load(std::memory_order_acquire);
    std::uint16_t k;
    if (NPA_LIKELY(fn != nullptr)) {
        k = fn(l.sub_queue, pkts, n);
        bump(l.packets, k);
    } else {
        k = rx_through_shell(l, pkts, n);
    }
    const std::uint16_t port_id = l.port_id;
    // One store per packet, in a plain loop: unrolling it (8 stores to 8 mbufs in
    // flight) measured twice as slow over net_ring, whose mbufs are not in L1.
    for (std::uint16_t i = 0; i < k; ++i) pkts[i]->port = port_id;
    return k;
}

std::uint16_t npa_tx_burst(void* txq, rte_mbuf** pkts, std::uint16_t n) {
    auto& l = *static_cast<port_lanes::tx_lane*>(txq);
    const eth_tx_burst_t fn = l.direct.load(std::memory_order_acquire);
    if (NPA_LIKELY(fn != nullptr)) {
        const std::uint16_t k = fn(l.sub_queue, pkts, n);
        bump(l.packets, k);
        return k;
    }
    return tx_through_shell(l, pkts, n);
}

bool usable(const npa_port& p, std::size_t i) noexcept {
    return i < p.nsubs && !p.subs[i].removed;
}

/// Link of a sub-port: up, down, or unknown (not started: a port in standby is only
/// configured when a switch prepares it, and many PMDs report no link before that).
enum class link_state { up, down, unknown };
link_state link_of(const sub_device& s) noexcept {
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

/// Arms the policy timer: often while a switch is in progress (its release step runs
/// here), at the link-check period otherwise.
void policy_tick(void* arg);
void arm_policy(npa_port& p) noexcept {
    const std::uint64_t us = p.paths.switching() ? switching_tick_us : policy_tick_us;
    p.alarm_set = rte_eal_alarm_set(us, policy_tick, &p) == 0;
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

/// Periodic control work (rte_eal_alarm, the interrupt thread): completes a switch in
/// progress (shell service: release of the old path); on link loss of the active path
/// moves traffic to the best other path; moves back to a preferred path whose link is up
/// again, unless the application chose the current path itself. Hysteresis (dwell,
/// back-off) is the shell's: these are discretionary switches (switch_reason::policy).
int on_sub_event(std::uint16_t sub_port, rte_eth_event_type type, void* arg, void*);

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

// ---- ethdev operations ------------------------------------------------------------------

int npa_dev_configure(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    const auto& d = *dev->data;
    if (d.nb_rx_queues != d.nb_tx_queues) {
        NPA_LOG(ERR, "%s: RX and TX queue counts must match (%u vs %u)\n", d.name,
                d.nb_rx_queues, d.nb_tx_queues);
        return -EINVAL;
    }
    if (d.nb_rx_queues == 0 || d.nb_rx_queues > ethdev_max_queues) {
        NPA_LOG(ERR, "%s: 1 to %u queue pairs supported, %u asked\n", d.name,
                ethdev_max_queues, d.nb_rx_queues);
        return -EINVAL;
    }
    (void)p;
    return 0;
}

/// The intersection of what every usable sub-device offers: what the application sees
/// is what stays in effect whichever path carries the traffic.
void intersect_info(npa_port& p, rte_eth_dev_info* info) noexcept {
    info->max_rx_queues = ethdev_max_queues;
    info->max_tx_queues = ethdev_max_queues;
    info->max_mac_addrs = max_mac_addrs;
    info->max_rx_pktlen = UINT32_MAX;
    info->min_mtu = RTE_ETHER_MIN_MTU;
    info->max_mtu = UINT16_MAX;
    info->rx_offload_capa = ~0ull;
    info->tx_offload_capa = ~0ull;
    info->rx_queue_offload_capa = ~0ull;
    info->tx_queue_offload_capa = ~0ull;
    info->flow_type_rss_offloads = ~0ull;
    info->rx_desc_lim = {UINT16_MAX, 0, 1, 0, 0};
    info->tx_desc_lim = {UINT16_MAX, 0, 1, 0, 0};
    bool any = false;
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        if (p.subs[i].removed) continue;
        rte_eth_dev_info s{};
        if (rte_eth_dev_info_get(p.subs[i].port_id, &s) != 0) continue;
        any = true;
        info->max_rx_queues = std::min(info->max_rx_queues, s.max_rx_queues);
        info->max_tx_queues = std::min(info->max_tx_queues, s.max_tx_queues);
        info->max_rx_pktlen = std::min(info->max_rx_pktlen, s.max_rx_pktlen);
        info->min_mtu = std::max(info->min_mtu, s.min_mtu);
        info->max_mtu = std::min(info->max_mtu, s.max_mtu);
        info->rx_offload_capa &= s.rx_offload_capa;
        info->tx_offload_capa &= s.tx_offload_capa;
        info->rx_queue_offload_capa &= s.rx_queue_offload_capa;
        info->tx_queue_offload_capa &= s.tx_queue_offload_capa;
        info->flow_type_rss_offloads &= s.flow_type_rss_offloads;
        info->rx_desc_lim.nb_max = std::min(info->rx_desc_lim.nb_max, s.rx_desc_lim.nb_max);
        info->rx_desc_lim.nb_min = std::max(info->rx_desc_lim.nb_min, s.rx_desc_lim.nb_min);
        info->tx_desc_lim.nb_max = std::min(info->tx_desc_lim.nb_max, s.tx_desc_lim.nb_max);
        info->tx_desc_lim.nb_min = std::max(info->tx_desc_lim.nb_min, s.tx_desc_lim.nb_min);
    }
    if (!any) {
        info->rx_offload_capa = info->tx_offload_capa = 0;
        info->rx_queue_offload_capa = info->tx_queue_offload_capa = 0;
        info->flow_type_rss_offloads = 0;
    }
    info->max_rx_queues = std::min<std::uint16_t>(info->max_rx_queues, ethdev_max_queues);
    info->max_tx_queues = std::min<std::uint16_t>(info->max_tx_queues, ethdev_max_queues);
}

int npa_dev_infos_get(rte_eth_dev* dev, rte_eth_dev_info* info) {
    intersect_info(*priv(dev), info);
    return 0;
}

int npa_rx_queue_setup(rte_eth_dev* dev, std::uint16_t qid, std::uint16_t nb_desc,
                       unsigned int, const rte_eth_rxconf*, rte_mempool* mp) {
    npa_port& p = *priv(dev);
    if (qid >= ethdev_max_queues || mp == nullptr) return -EINVAL;
    p.rx_pools[qid] = mp;
    p.rx_desc = nb_desc;
    dev->data->rx_queues[qid] = &p.lanes.rx(qid);
    return 0;
}

int npa_tx_queue_setup(rte_eth_dev* dev, std::uint16_t qid, std::uint16_t nb_desc,
                       unsigned int, const rte_eth_txconf*) {
    npa_port& p = *priv(dev);
    if (qid >= ethdev_max_queues) return -EINVAL;
    p.tx_desc = nb_desc;
    dev->data->tx_queues[qid] = &p.lanes.tx(qid);
    return 0;
}

void npa_queue_release(rte_eth_dev*, std::uint16_t) {}

int npa_dev_stop(rte_eth_dev* dev);

std::uint32_t rx_mode_bits(const npa_port& p) noexcept {
    return rx_mode::unicast | rx_mode::broadcast | rx_mode::multicast |
           (p.ctl.promisc ? rx_mode::promisc : 0u) | (p.ctl.allmulti ? rx_mode::all_multi : 0u);
}

int to_errno(const status& st) noexcept {
    switch (st.code()) {
    case errc::ok: return 0;
    case errc::invalid_argument: return -EINVAL;
    case errc::not_supported: return -ENOTSUP;
    case errc::busy: return -EBUSY;
    case errc::no_memory: return -ENOMEM;
    case errc::removed: return -ENODEV;
    case errc::refused: return -EPERM;
    default: return -EIO;
    }
}

/// A request made while the port is stopped: checked now (malformed values, and an MTU
/// no sub-device could carry), kept, and handed to the shell at start, where the first
/// path's replay applies it or refuses it (and the start fails with the reason).
status check_stopped(npa_port& p, const control_request& r) noexcept {
    if (status st = validate(r); !st.ok())
        return st;
    if (r.op == control_op::set_mtu) {
        rte_eth_dev_info info{};
        intersect_info(p, &info);
        if (r.mtu < info.min_mtu || r.mtu > info.max_mtu) {
            return {errc::not_supported, "MTU outside what the sub-devices support"};
        }
    }
    return {};
}

/// Sends one control request through the shell when the port runs (the shell sends it
/// to the active sub-device and replays it on every switch); a stopped port checks it
/// and keeps it for start.
int send_control(npa_port& p, const control_request& r) noexcept {
    const status st = p.started ? p.paths.control(r) : check_stopped(p, r);
    if (!st.ok()) {
        NPA_LOG(ERR, "%s: %s refused: %s\n", p.dev->data->name, to_string(r.op), st.reason());
    }
    return to_errno(st);
}

/// The control state the application set, as the requests a new shell is seeded with.
std::size_t control_batch(const npa_port& p, std::span<control_request> out) noexcept {
    std::size_t n = 0;
    auto push = [&](const control_request& r) {
        if (n < out.size())
            out[n++] = r;
    };
    if (!rte_is_zero_ether_addr(&p.ctl.mac)) { // a vdev such as net_ring may have none
        mac_addr m;
        for (std::size_t i = 0; i < 6; ++i)
            m[i] = p.ctl.mac.addr_bytes[i];
        push(control_request::make_set_mac(m));
    }
    push(control_request::make_rx_mode(rx_mode_bits(p)));
    if (p.ctl.mtu != 0)
        push(control_request::make_mtu(p.ctl.mtu));
    for (std::size_t v = 0; v < p.ctl.vlans.size(); ++v) {
        if (p.ctl.vlans[v])
            push(control_request::make_vlan(true, static_cast<std::uint16_t>(v)));
    }
    return n;
}

/// Steps: 1. build the shell over every sub-device (one path each, in dev() order) for
/// the configured queues and the application's mempools; 2. hand it the control state
/// the application set; 3. boot it on the preferred usable path (the shell attaches that
/// sub-port and replays the whole control state; a sub-device that refuses part of it
/// is not used, and when none accepts, start fails with the reason); 4. start the
/// policy timer.
int npa_dev_start(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    const auto& d = *dev->data;
    queue_config qc;
    qc.queues = d.nb_rx_queues;
    qc.rx_ring_size = p.rx_desc;
    qc.tx_ring_size = p.tx_desc;
    rte_eth_conf conf = d.dev_conf;
    conf.intr_conf.lsc = 0;  // link state is polled (policy_tick)
    conf.intr_conf.rmv = 0;  // RMV arrives as an event callback
    std::array<std::uint16_t, max_sub_devices> ports{};
    for (std::size_t i = 0; i < p.nsubs; ++i) ports[i] = p.subs[i].port_id;
    status st = p.paths.create(std::span<const std::uint16_t>(ports.data(), p.nsubs),
                               std::span<rte_mempool* const>(p.rx_pools.data(), qc.queues), conf,
                               qc, p.args, logtype);
    if (!st.ok()) {
        NPA_LOG(ERR, "%s: %s\n", d.name, st.reason());
        return to_errno(st);
    }
    {
        std::unique_ptr<control_request[]> batch(new (std::nothrow)
                                                     control_request[control_batch_max]);
        if (!batch)
            return -ENOMEM;
        const std::size_t n =
            control_batch(p, std::span<control_request>(batch.get(), control_batch_max));
        for (std::size_t i = 0; i < n && st.ok(); ++i)
            st = p.paths.control(batch[i]);
        if (!st.ok()) {
            NPA_LOG(ERR, "%s: control state refused: %s\n", d.name, st.reason());
            return to_errno(st);
        }
    }
    st = {errc::removed, "no usable sub-device"};
    status last = st;
    std::uint32_t first = p.args.active;
    for (std::uint32_t k = 0; k <= p.nsubs && !st.ok(); ++k) {
        const std::uint32_t i = k == 0 ? first : k - 1;
        if (!usable(p, i) || (k != 0 && i == first)) continue;
        st = p.paths.start(i);
        if (!st.ok()) {
            NPA_LOG(ERR, "%s: sub-device %s not usable: %s\n", d.name, p.subs[i].name, st.reason());
            last = st;
        }
    }
    if (!st.ok()) {
        NPA_LOG(ERR, "%s: no sub-device could be started: %s\n", d.name, last.reason());
        p.paths.stop();
        const int rc = to_errno(last);
        return rc == 0 || rc == -EINVAL ? -EIO : rc;
    }
    p.started = true;
    p.last_switch_ns = dpdk_env::now_ns();
    for (std::uint16_t q = 0; q < d.nb_rx_queues; ++q) {
        dev->data->rx_queue_state[q] = RTE_ETH_QUEUE_STATE_STARTED;
        dev->data->tx_queue_state[q] = RTE_ETH_QUEUE_STATE_STARTED;
    }
    dev->data->dev_link.link_status = RTE_ETH_LINK_UP;
    if (!p.alarm_set) arm_policy(p);
    return 0;
}

int npa_dev_stop(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    p.started = false;
    // Unconditionally: a policy_tick running on the interrupt thread has already cleared
    // alarm_set, and only rte_eal_alarm_cancel waits for it to return (and removes the
    // alarm it may re-arm meanwhile). Skipping the cancel let close free the port under a
    // running tick.
    (void)rte_eal_alarm_cancel(policy_tick, &p);
    p.alarm_set = false;
    p.lanes.clear();
    p.paths.stop();
    for (std::uint16_t q = 0; q < dev->data->nb_rx_queues; ++q) {
        dev->data->rx_queue_state[q] = RTE_ETH_QUEUE_STATE_STOPPED;
        dev->data->tx_queue_state[q] = RTE_ETH_QUEUE_STATE_STOPPED;
    }
    dev->data->dev_link.link_status = RTE_ETH_LINK_DOWN;
    return 0;
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

int npa_dev_close(rte_eth_dev* dev) {
    if (rte_eal_process_type() != RTE_PROC_PRIMARY) return 0;
    npa_port& p = *priv(dev);
    if (p.started) (void)npa_dev_stop(dev);
    (void)rte_eal_alarm_cancel(policy_tick, &p);  // none may outlive the port
    release_subs(p);
    p.~npa_port();  // ethdev frees dev_private and mac_addrs after this returns
    return 0;
}

int npa_link_update(rte_eth_dev* dev, int) {
    npa_port& p = *priv(dev);
    rte_eth_link link{};
    link.link_status = RTE_ETH_LINK_DOWN;
    link.link_duplex = RTE_ETH_LINK_FULL_DUPLEX;
    link.link_autoneg = RTE_ETH_LINK_FIXED;
    if (p.started) {
        const std::uint32_t cur = p.paths.active();
        rte_eth_link sl{};
        if (usable(p, cur) && rte_eth_link_get_nowait(p.subs[cur].port_id, &sl) == 0) {
            link = sl;
        }
    }
    return rte_eth_linkstatus_set(dev, &link);
}

/// Queue q's counters: packets from its lanes (every packet the application received or
/// handed over, once), bytes and failures from the paths (the sub-ports' own counts).
queue_stats queue_total(npa_port& p, std::uint16_t q) noexcept {
    queue_stats t = p.paths.queue_totals(q);
    t.rx_packets = p.lanes.rx(q).packets.load(std::memory_order_relaxed);
    t.tx_packets = p.lanes.tx(q).packets.load(std::memory_order_relaxed);
    return t;
}

int npa_stats_get(rte_eth_dev* dev, rte_eth_stats* st) {
    npa_port& p = *priv(dev);
    for (std::uint16_t q = 0; q < dev->data->nb_rx_queues && q < ethdev_max_queues; ++q) {
        const queue_stats t = queue_total(p, q);
        const queue_stats& b = p.base[q];
        const std::uint64_t ip = t.rx_packets - b.rx_packets;
        const std::uint64_t op = t.tx_packets - b.tx_packets;
        const std::uint64_t ib = t.rx_bytes - b.rx_bytes;
        const std::uint64_t ob = t.tx_bytes - b.tx_bytes;
        st->ipackets += ip;
        st->opackets += op;
        st->ibytes += ib;
        st->obytes += ob;
        st->rx_nombuf += t.rx_no_buffer - b.rx_no_buffer;
        if (q < RTE_ETHDEV_QUEUE_STAT_CNTRS) {
            st->q_ipackets[q] = ip;
            st->q_opackets[q] = op;
            st->q_ibytes[q] = ib;
            st->q_obytes[q] = ob;
        }
    }
    // What the sub-devices themselves dropped or failed to receive.
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        if (p.subs[i].removed) continue;
        rte_eth_stats s{};
        if (rte_eth_stats_get(p.subs[i].port_id, &s) == 0) {
            st->imissed += s.imissed;
            st->ierrors += s.ierrors;
            st->oerrors += s.oerrors;
        }
    }
    return 0;
}

int npa_stats_reset(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    for (std::uint16_t q = 0; q < ethdev_max_queues; ++q) p.base[q] = queue_total(p, q);
    return 0;
}

// xstats: per path rx/tx packets and bytes, then the switch telemetry.
constexpr const char* path_xstat_names[path_xstats] = {"rx_packets", "tx_packets", "rx_bytes",
                                                       "tx_bytes"};
constexpr const char* switch_xstat_names[switch_xstats] = {
    "switch_count",     "switch_last_ns", "switch_max_ns",     "switch_held_packets",
    "switch_lost_packets", "switch_last_reason", "active_path"};

int npa_xstats_get_names(rte_eth_dev* dev, rte_eth_xstat_name* names, unsigned int size) {
    npa_port& p = *priv(dev);
    const unsigned n = static_cast<unsigned>(p.nsubs) * path_xstats + switch_xstats;
    if (names == nullptr || size < n) return static_cast<int>(n);
    unsigned k = 0;
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        for (const char* s : path_xstat_names) {
            std::snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "path%zu_%s", i, s);
        }
    }
    for (const char* s : switch_xstat_names) {
        std::snprintf(names[k++].name, RTE_ETH_XSTATS_NAME_SIZE, "%s", s);
    }
    return static_cast<int>(n);
}

int npa_xstats_get(rte_eth_dev* dev, rte_eth_xstat* xs, unsigned int size) {
    npa_port& p = *priv(dev);
    const unsigned n = static_cast<unsigned>(p.nsubs) * path_xstats + switch_xstats;
    if (xs == nullptr || size < n) return static_cast<int>(n);
    unsigned k = 0;
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        const auto path = static_cast<std::uint32_t>(i);
        queue_stats t = p.paths.path_totals(path);
        for (std::uint16_t q = 0; q < ethdev_max_queues; ++q) {
            t.rx_packets += port_lanes::direct_on(p.lanes.rx(q), p.lanes.rx_books(q), path);
            t.tx_packets += port_lanes::direct_on(p.lanes.tx(q), p.lanes.tx_books(q), path);
        }
        for (std::uint64_t v : {t.rx_packets, t.tx_packets, t.rx_bytes, t.tx_bytes}) {
            xs[k] = {k, v};
            ++k;
        }
    }
    const switch_history h = p.paths.history();
    const std::uint64_t reason = h.count() != 0 ? static_cast<std::uint64_t>(h.recent(0).reason) : 0;
    for (std::uint64_t v : {h.switches(), h.last_duration_ns(), h.max_duration_ns(), h.total_held(),
                            h.total_tx_lost(), reason, static_cast<std::uint64_t>(p.paths.active())}) {
        xs[k] = {k, v};
        ++k;
    }
    return static_cast<int>(n);
}

int npa_promisc_enable(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    p.ctl.promisc = true;
    const int rc = send_control(p, control_request::make_rx_mode(rx_mode_bits(p)));
    if (rc != 0) p.ctl.promisc = false;
    return rc;
}
int npa_promisc_disable(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    p.ctl.promisc = false;
    const int rc = send_control(p, control_request::make_rx_mode(rx_mode_bits(p)));
    if (rc != 0) p.ctl.promisc = true;
    return rc;
}
int npa_allmulti_enable(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    p.ctl.allmulti = true;
    const int rc = send_control(p, control_request::make_rx_mode(rx_mode_bits(p)));
    if (rc != 0) p.ctl.allmulti = false;
    return rc;
}
int npa_allmulti_disable(rte_eth_dev* dev) {
    npa_port& p = *priv(dev);
    p.ctl.allmulti = false;
    const int rc = send_control(p, control_request::make_rx_mode(rx_mode_bits(p)));
    if (rc != 0) p.ctl.allmulti = true;
    return rc;
}

int npa_mac_set(rte_eth_dev* dev, rte_ether_addr* mac) {
    npa_port& p = *priv(dev);
    // ethdev restores the MAC on every start; a port without one (net_ring) has none.
    if (rte_is_zero_ether_addr(mac)) return 0;
    mac_addr m;
    for (std::size_t i = 0; i < 6; ++i) m[i] = mac->addr_bytes[i];
    const int rc = send_control(p, control_request::make_set_mac(m));
    if (rc == 0) p.ctl.mac = *mac;
    return rc;
}

/// Secondary unicast addresses: the active sub-device gets them at once, every other
/// path when it is brought up (ethdev_control replays them after the shell's batch).
int npa_mac_add(rte_eth_dev* dev, rte_ether_addr* mac, std::uint32_t index, std::uint32_t) {
    npa_port& p = *priv(dev);
    if (index >= max_mac_addrs) return -ENOSPC;
    const status st = p.paths.mac_add(index, *mac);
    if (!st.ok())
        NPA_LOG(ERR, "%s: MAC add refused: %s\n", dev->data->name, st.reason());
    return to_errno(st);
}

/// ethdev forgets the address whatever happens here (the op returns nothing); an address
/// the active sub-device would not remove stays recorded and is logged, and the next
/// replay removes it.
void npa_mac_remove(rte_eth_dev* dev, std::uint32_t index) {
    npa_port& p = *priv(dev);
    if (const status st = p.paths.mac_remove(index); !st.ok()) {
        NPA_LOG(ERR, "%s: MAC remove refused: %s\n", dev->data->name, st.reason());
    }
}

int npa_mtu_set(rte_eth_dev* dev, std::uint16_t mtu) {
    npa_port& p = *priv(dev);
    const int rc = send_control(p, control_request::make_mtu(mtu));
    if (rc == 0) p.ctl.mtu = mtu;
    return rc;
}

int npa_vlan_filter_set(rte_eth_dev* dev, std::uint16_t vid, int on) {
    npa_port& p = *priv(dev);
    if (vid > RTE_ETHER_MAX_VLAN_ID) return -EINVAL;
    const int rc = send_control(p, control_request::make_vlan(on != 0, vid));
    if (rc == 0) p.ctl.vlans.set(vid, on != 0);
    return rc;
}

eth_dev_ops make_ops() noexcept {
    eth_dev_ops o{};
    o.dev_configure = npa_dev_configure;
    o.dev_start = npa_dev_start;
    o.dev_stop = npa_dev_stop;
    o.dev_close = npa_dev_close;
    o.dev_infos_get = npa_dev_infos_get;
    o.link_update = npa_link_update;
    o.rx_queue_setup = npa_rx_queue_setup;
    o.tx_queue_setup = npa_tx_queue_setup;
    o.rx_queue_release = npa_queue_release;
    o.tx_queue_release = npa_queue_release;
    o.stats_get = npa_stats_get;
    o.stats_reset = npa_stats_reset;
    o.xstats_get = npa_xstats_get;
    o.xstats_get_names = npa_xstats_get_names;
    o.promiscuous_enable = npa_promisc_enable;
    o.promiscuous_disable = npa_promisc_disable;
    o.allmulticast_enable = npa_allmulti_enable;
    o.allmulticast_disable = npa_allmulti_disable;
    o.mac_addr_set = npa_mac_set;
    o.mac_addr_add = npa_mac_add;
    o.mac_addr_remove = npa_mac_remove;
    o.mtu_set = npa_mtu_set;
    o.vlan_filter_set = npa_vlan_filter_set;
    return o;
}

// ---- probe / remove ---------------------------------------------------------------------

/// The ethdev port a probed device string made: by name (vdevs and PCI ports are named
/// after their device), else the first port whose device matches the string.
std::uint16_t port_of(const char* devstr) noexcept {
    char name[RTE_ETH_NAME_MAX_LEN];
    std::size_t n = std::strcspn(devstr, ",");
    if (n >= sizeof name) n = sizeof name - 1;
    std::memcpy(name, devstr, n);
    name[n] = '\0';
    std::uint16_t id = RTE_MAX_ETHPORTS;
    if (rte_eth_dev_get_port_by_name(name, &id) == 0) return id;
    rte_dev_iterator it{};
    if (rte_eth_iterator_init(&it, devstr) == 0) {
        id = rte_eth_iterator_next(&it);
        rte_eth_iterator_cleanup(&it);
        if (id < RTE_MAX_ETHPORTS) return id;
    }
    return RTE_MAX_ETHPORTS;
}

int npa_probe(rte_vdev_device* vdev) {
    const char* name = rte_vdev_device_name(vdev);
    if (rte_eal_process_type() != RTE_PROC_PRIMARY) {
        NPA_LOG(ERR, "%s: secondary processes are not supported\n", name);
        return -ENOTSUP;
    }
    // Step 1: arguments, all checked before anything is probed.
    npa_devargs args;
    if (const status st = parse_devargs(rte_vdev_device_args(vdev), args); !st.ok()) {
        NPA_LOG(ERR, "%s: %s\n", name, args.error.data());
        return -EINVAL;
    }
    // Step 2: the port, its private data constructed in place.
    rte_eth_dev* dev = rte_eth_vdev_allocate(vdev, sizeof(npa_port));
    if (dev == nullptr) return -ENOMEM;
    auto* p = ::new (dev->data->dev_private) npa_port{};
    p->dev = dev;
    p->args = args;
    p->lanes.setup(p, dev->data->port_id);
    dev->dev_ops = &npa_ops;
    dev->rx_pkt_burst = npa_rx_burst;
    dev->tx_pkt_burst = npa_tx_burst;
    dev->data->mac_addrs = static_cast<rte_ether_addr*>(
        rte_zmalloc_socket(name, sizeof(rte_ether_addr) * max_mac_addrs, 0, rte_socket_id()));
    int rc = 0;
    if (dev->data->mac_addrs == nullptr) {
        rc = -ENOMEM;
    } else if (rte_eth_dev_owner_new(&p->owner.id) != 0) {
        rc = -EIO;
    } else {
        std::snprintf(p->owner.name, sizeof p->owner.name, "%s", name);
    }
    // Step 3: the sub-devices, in preference order; each is owned by this port so that
    // the application does not also use it as a port of its own.
    for (std::size_t i = 0; rc == 0 && i < args.dev_count; ++i) {
        const char* ds = args.devs[i].data();
        sub_device& s = p->subs[i];
        const int r = rte_dev_probe(ds);
        if (r != 0 && r != -EEXIST) {
            // rte_dev_probe's codes say little by themselves (an unknown vdev driver is
            // -EFAULT, "Bad address"): say what they mean here.
            const char* why = r == -EFAULT || r == -EINVAL || r == -ENOENT || r == -ENODEV
                                  ? "no DPDK driver or device matches it (vdev names start "
                                    "with their driver's name, e.g. net_ring0; a PCI device "
                                    "is given by its address)"
                                  : std::strerror(-r);
            NPA_LOG(ERR, "%s: cannot probe sub-device dev(%s): %s\n", name, ds, why);
            rc = r == -EFAULT ? -ENODEV : r;
            break;
        }
        s.probed_here = r == 0;
        s.port_id = port_of(ds);
        p->nsubs = i + 1;
        if (s.port_id >= RTE_MAX_ETHPORTS) {
            NPA_LOG(ERR, "%s: dev(%s) is not an ethdev port\n", name, ds);
            rc = -ENODEV;
            break;
        }
        (void)rte_eth_dev_get_name_by_port(s.port_id, s.name);
        for (std::size_t k = 0; k < i; ++k) {
            if (p->subs[k].port_id == s.port_id) {
                NPA_LOG(ERR, "%s: dev(%s) and dev(%s) are the same device (%s): give each "
                        "sub-device once\n", name, args.devs[k].data(), ds, s.name);
                s.port_id = RTE_MAX_ETHPORTS;
                s.probed_here = false;
                rc = -EINVAL;
                break;
            }
        }
        if (rc != 0) break;
        if (rte_eth_dev_owner_set(s.port_id, &p->owner) != 0) {
            rte_eth_dev_owner other{};
            (void)rte_eth_dev_owner_get(s.port_id, &other);
            NPA_LOG(ERR, "%s: sub-device %s is already owned by %s: a port can be the "
                    "sub-device of one owner only\n", name, s.name,
                    other.name[0] != '\0' ? other.name : "another owner");
            s.port_id = RTE_MAX_ETHPORTS;
            rc = -EBUSY;
            break;
        }
        watch(s.port_id, *p, true);
    }
    if (rc != 0) {
        release_subs(*p);
        p->~npa_port();
        rte_eth_dev_release_port(dev);  // frees dev_private and mac_addrs
        return rc;
    }
    // Step 4: the port's MAC is the preferred sub-device's (as fail-safe does); it is
    // set on every sub-device when they start.
    (void)rte_eth_macaddr_get(p->subs[args.active].port_id, &p->ctl.mac);
    dev->data->mac_addrs[0] = p->ctl.mac;
    dev->data->dev_flags |= RTE_ETH_DEV_AUTOFILL_QUEUE_XSTATS;
    dev->data->dev_link.link_status = RTE_ETH_LINK_DOWN;
    rte_eth_dev_probing_finish(dev);
    NPA_LOG(INFO, "%s: port %u over %zu sub-device(s), active %s\n", name, dev->data->port_id,
            p->nsubs, p->subs[args.active].name);
    return 0;
}

int npa_remove(rte_vdev_device* vdev) {
    rte_eth_dev* dev = rte_eth_dev_allocated(rte_vdev_device_name(vdev));
    if (dev == nullptr) return 0;
    if (dev->state != RTE_ETH_DEV_UNUSED && dev->dev_ops == &npa_ops && dev->data->dev_private) {
        priv(dev)->bus_removing = true;  // see release_subs
        (void)rte_eth_dev_close(dev->data->port_id);
        return 0;
    }
    return rte_eth_dev_release_port(dev);
}

// ---- telemetry: /npa/switch and /npa/status ------------------------------------------

/// A telemetry answer that says what went wrong: {"error": "<sentence>"}, plus the
/// errno-style code when there is one.
int tel_error(rte_tel_data* d, const char* sentence, int code = 0) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "error", sentence);
    if (code != 0) rte_tel_data_add_dict_int(d, "code", code);
    return 0;
}

constexpr tel_param tel_port_param{"port_id", RTE_MAX_ETHPORTS - 1};

int tel_status_of(std::uint16_t port_id, rte_tel_data* d) {
    rte_pmd_npa_status_info st{};
    if (rte_pmd_npa_status(port_id, &st) != 0) {
        return tel_error(d, "port_id: not a net_npa port", -ENODEV);
    }
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "paths", st.paths);
    rte_tel_data_add_dict_u64(d, "active", st.active);
    rte_tel_data_add_dict_u64(d, "switching", st.switching);
    rte_tel_data_add_dict_u64(d, "switches", st.switches);
    rte_tel_data_add_dict_u64(d, "last_switch_ns", st.last_switch_ns);
    rte_tel_data_add_dict_u64(d, "max_switch_ns", st.max_switch_ns);
    rte_tel_data_add_dict_u64(d, "held", st.held);
    rte_tel_data_add_dict_u64(d, "lost", st.lost);
    rte_tel_data_add_dict_string(d, "last_reason", st.last_reason);
    npa_port* p = find_port(port_id);
    for (std::size_t i = 0; p != nullptr && i < p->nsubs; ++i) {
        char key[32];
        std::snprintf(key, sizeof key, "path%zu", i);
        rte_tel_data_add_dict_string(d, key, p->subs[i].removed ? "(removed)" : p->subs[i].name);
    }
    return 0;
}

int tel_status(const char*, const char* params, rte_tel_data* d) {
    tel_params v;
    if (!parse_tel_params(params, &tel_port_param, 1, v).ok()) return tel_error(d, v.error.data());
    return tel_status_of(static_cast<std::uint16_t>(v.v[0]), d);
}

int tel_switch(const char*, const char* params, rte_tel_data* d) {
    static constexpr tel_param specs[] = {tel_port_param, {"path", max_sub_devices - 1}};
    tel_params v;
    if (!parse_tel_params(params, specs, 2, v).ok()) return tel_error(d, v.error.data());
    const auto port_id = static_cast<std::uint16_t>(v.v[0]);
    npa_port* p = find_port(port_id);
    if (p == nullptr) return tel_error(d, "port_id: not a net_npa port", -ENODEV);
    const auto path = static_cast<std::uint32_t>(v.v[1]);
    const status st = do_switch(*p, path, switch_reason::operator_request);
    if (!st.ok()) return tel_error(d, st.reason(), switch_errno(st));
    return tel_status_of(port_id, d);
}

} // namespace
} // namespace npa::dpdk

// ---- public API -------------------------------------------------------------------------

extern "C" {

__attribute__((visibility("default"))) int rte_pmd_npa_is_npa_port(uint16_t port_id) {
    return npa::dpdk::find_port(port_id) != nullptr ? 1 : 0;
}

__attribute__((visibility("default"))) int rte_pmd_npa_switch(uint16_t port_id, uint32_t path) {
    using namespace npa::dpdk;
    npa_port* p = find_port(port_id);
    if (p == nullptr) return -ENODEV;
    const npa::status st = do_switch(*p, path, npa::switch_reason::operator_request);
    if (st.ok()) return 0;
    NPA_LOG(ERR, "%s: switch to path %u refused: %s\n", p->dev->data->name, path, st.reason());
    return switch_errno(st);
}

__attribute__((visibility("default"))) int rte_pmd_npa_status(uint16_t port_id,
                                                              struct rte_pmd_npa_status_info* st) {
    using namespace npa::dpdk;
    npa_port* p = find_port(port_id);
    if (p == nullptr || st == nullptr) return -ENODEV;
    const npa::switch_history h = p->paths.history();
    *st = {};
    st->paths = static_cast<uint32_t>(p->nsubs);
    st->active = p->started ? p->paths.target() : p->args.active;
    st->switching = p->paths.switching() ? 1 : 0;
    st->switches = h.switches();
    st->last_switch_ns = h.last_duration_ns();
    st->max_switch_ns = h.max_duration_ns();
    st->held = h.total_held();
    st->lost = h.total_tx_lost();
    st->last_reason = h.count() != 0 ? npa::to_string(h.recent(0).reason) : "none";
    for (std::size_t i = 0; i < 8; ++i) {
        st->sub_port[i] = i < p->nsubs && !p->subs[i].removed ? p->subs[i].port_id
                                                              : uint16_t{RTE_MAX_ETHPORTS};
    }
    return 0;
}

} // extern "C"

namespace npa::dpdk {
namespace {
RTE_INIT(npa_init) {
    logtype = rte_log_register_type_and_pick_level("pmd.net.npa", RTE_LOG_NOTICE);
    net_npa_drv.probe = npa_probe;
    net_npa_drv.remove = npa_remove;
    (void)rte_telemetry_register_cmd(
        "/npa/switch", tel_switch,
        "Moves a net_npa port's data path. Parameters: int port_id, int path");
    (void)rte_telemetry_register_cmd(
        "/npa/status", tel_status,
        "Returns a net_npa port's paths and switch telemetry. Parameters: int port_id");
}
} // namespace
} // namespace npa::dpdk

#define NPA_PMD_PARAMS "dev(<device>) active=<int> dwell_ms=<int> backoff_ms=<int> auto=<0|1>"
RTE_PMD_REGISTER_VDEV(net_npa, net_npa_drv);
RTE_PMD_REGISTER_PARAM_STRING(net_npa, NPA_PMD_PARAMS);

// What dpdk-pmdinfo.py reads from a PMD's shared object: DPDK's build generates this
// string for in-tree drivers (buildtools/pmdinfogen.py) from the two registrations above;
// an out-of-tree build writes it itself, in the same form.
extern "C" __attribute__((used, visibility("default"))) const char net_npa_pmd_info[] =
    "PMD_INFO_STRING= {\"name\": \"net_npa\", \"params\": \"" NPA_PMD_PARAMS "\", "
    "\"pci_ids\": []}";
