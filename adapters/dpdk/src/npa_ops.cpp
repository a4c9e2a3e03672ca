// npa_ops.cpp: net_npa's ethdev operations. The control state the application sets (MAC,
// promiscuous/allmulticast, MTU, VLAN filters) is an npa::control_state kept in the port
// across stop/start and handed to each new shell at start.
#include "npa_private.hpp"

#include <rte_alarm.h>

#include <algorithm>
#include <memory>
#include <new>

namespace npa::dpdk::pmd {

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

/// What an image path offers: the sim device's queues, ring sizes and frame size, and no
/// offloads (the simnic image posts whole frames).
void image_info(rte_eth_dev_info& s) noexcept {
    using d = image_path_device;
    s.max_rx_queues = s.max_tx_queues = d::queues;
    s.max_rx_pktlen = d::mtu + RTE_ETHER_HDR_LEN + 4; // the sim wire's largest frame (802.1Q)
    s.min_mtu = RTE_ETHER_MIN_MTU;
    s.max_mtu = d::mtu;
    s.rx_desc_lim.nb_max = s.tx_desc_lim.nb_max = d::max_ring;
    s.rx_desc_lim.nb_min = s.tx_desc_lim.nb_min = d::min_ring;
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
        if (p.subs[i].image != nullptr) {
            image_info(s);
        } else if (rte_eth_dev_info_get(p.subs[i].port_id, &s) != 0) {
            continue;
        }
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

/// The control state the application set, as the requests a new shell is seeded with:
/// the state's replay batch, less what this port never sets (an MTU the application did
/// not ask for stays the sub-devices' default; multicast lists and RSS have no op here).
/// There is a MAC only when one was set: a vdev such as net_ring may have none.
std::size_t control_batch(const npa_port& p, std::span<control_request> out) noexcept {
    const std::size_t all = p.ctl.to_batch(out);
    std::size_t n = 0;
    for (std::size_t i = 0; i < all; ++i) {
        const control_op op = out[i].op;
        if (op == control_op::set_mcast_list || op == control_op::set_rss ||
            (op == control_op::set_mtu && !p.mtu_set))
            continue;
        out[n++] = out[i];
    }
    return n;
}

/// Sends a request and, once accepted, records it in the port's control state.
int send_and_keep(npa_port& p, const control_request& r) noexcept {
    const int rc = send_control(p, r);
    if (rc == 0) p.ctl.apply(r);
    return rc;
}

/// Sets or clears one RX mode bit (promiscuous, all-multicast) over the current mode.
int set_rx_mode_bit(npa_port& p, std::uint32_t bit, bool on) noexcept {
    const std::uint32_t mode = on ? p.ctl.rx_mode() | bit : p.ctl.rx_mode() & ~bit;
    return send_and_keep(p, control_request::make_rx_mode(mode));
}

mac_addr to_mac(const rte_ether_addr& a) noexcept {
    mac_addr m;
    for (std::size_t i = 0; i < 6; ++i) m[i] = a.addr_bytes[i];
    return m;
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
    std::array<image_path_device*, max_sub_devices> images{};
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        ports[i] = p.subs[i].port_id;
        images[i] = p.subs[i].image;
        if (images[i] != nullptr && !images[i]->start()) { // the model runs while the port does
            NPA_LOG(ERR, "%s: cannot start the thread of sim device %s\n", d.name, p.subs[i].name);
            for (std::size_t k = 0; k < i; ++k) {
                if (images[k] != nullptr) images[k]->stop();
            }
            return -EIO;
        }
    }
    status st = p.paths.create(std::span<const std::uint16_t>(ports.data(), p.nsubs),
                               std::span<image_path_device* const>(images.data(), p.nsubs),
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
    for (std::size_t i = 0; i < p.nsubs; ++i) {
        if (p.subs[i].image != nullptr) p.subs[i].image->stop();
    }
    for (std::uint16_t q = 0; q < dev->data->nb_rx_queues; ++q) {
        dev->data->rx_queue_state[q] = RTE_ETH_QUEUE_STATE_STOPPED;
        dev->data->tx_queue_state[q] = RTE_ETH_QUEUE_STATE_STOPPED;
    }
    dev->data->dev_link.link_status = RTE_ETH_LINK_DOWN;
    return 0;
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
        if (usable(p, cur) && p.subs[cur].image != nullptr) {
            // A sim device has a link but no speed.
            link.link_status = link_of(p.subs[cur]) == link_state::up ? RTE_ETH_LINK_UP
                                                                      : RTE_ETH_LINK_DOWN;
            link.link_speed = RTE_ETH_SPEED_NUM_NONE;
        } else if (usable(p, cur) && rte_eth_link_get_nowait(p.subs[cur].port_id, &sl) == 0) {
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
        if (p.subs[i].image != nullptr) {
            st->imissed += p.subs[i].image->rx_missed();
            continue;
        }
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

int npa_promisc_enable(rte_eth_dev* dev) { return set_rx_mode_bit(*priv(dev), rx_mode::promisc, true); }
int npa_promisc_disable(rte_eth_dev* dev) { return set_rx_mode_bit(*priv(dev), rx_mode::promisc, false); }
int npa_allmulti_enable(rte_eth_dev* dev) { return set_rx_mode_bit(*priv(dev), rx_mode::all_multi, true); }
int npa_allmulti_disable(rte_eth_dev* dev) { return set_rx_mode_bit(*priv(dev), rx_mode::all_multi, false); }

int npa_mac_set(rte_eth_dev* dev, rte_ether_addr* mac) {
    npa_port& p = *priv(dev);
    // ethdev restores the MAC on every start; a port without one (net_ring) has none.
    if (rte_is_zero_ether_addr(mac)) return 0;
    return send_and_keep(p, control_request::make_set_mac(to_mac(*mac)));
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
    const int rc = send_and_keep(p, control_request::make_mtu(mtu));
    if (rc == 0) p.mtu_set = true;
    return rc;
}

int npa_vlan_filter_set(rte_eth_dev* dev, std::uint16_t vid, int on) {
    npa_port& p = *priv(dev);
    if (vid > RTE_ETHER_MAX_VLAN_ID) return -EINVAL;
    return send_and_keep(p, control_request::make_vlan(on != 0, vid));
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

const eth_dev_ops npa_ops = make_ops();

} // namespace npa::dpdk::pmd
