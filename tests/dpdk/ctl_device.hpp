// tests/dpdk/ctl_device.hpp: net_ctlwatch, a test vdev whose control operations can be
// watched and refused.
//
// net_ring accepts little (no MTU, no VLAN filter) and refuses nothing, so the control
// path of net_npa cannot be proven over it. net_ctlwatch keeps the state ethdev already
// records (promiscuous, allmulticast, MTU, MAC table, VLAN filter bitmap) and refuses
// what its devargs say, with the errors a NIC's PMD gives:
//   net_ctlwatch<N>[,max_mtu=<n>][,deny_mtu=<n>][,deny_vlan=<id>][,deny_mac=1]
//                [,rx_capa=<mask>][,tx_capa=<mask>][,queues=<n>][,max_desc=<n>][,speed=<n>]
// Its data path takes what is sent and frees it, and receives nothing.
#pragma once

#include <bus_vdev_driver.h>
#include <ethdev_driver.h>
#include <ethdev_vdev.h>
#include <rte_ethdev.h>
#include <rte_kvargs.h>
#include <rte_cycles.h>
#include <rte_malloc.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace ctl_device {

struct settings {
    std::uint16_t max_mtu = 9000;
    std::uint16_t deny_mtu = 0;
    std::uint16_t deny_vlan = 0;
    bool deny_mac = false;
    std::uint64_t rx_capa = RTE_ETH_RX_OFFLOAD_VLAN_FILTER | RTE_ETH_RX_OFFLOAD_CHECKSUM;
    std::uint64_t tx_capa = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
    std::uint16_t queues = 4;
    std::uint16_t max_desc = 4096;
    std::uint32_t speed = RTE_ETH_SPEED_NUM_10G;
};

struct priv_data {
    settings set;
    std::atomic<bool> carrier{true}; ///< dev_set_link_down/up: the cable (a restart keeps it)
};

inline priv_data* priv_of(rte_eth_dev* dev) {
    return static_cast<priv_data*>(dev->data->dev_private);
}

inline int configure(rte_eth_dev*) { return 0; }
/// The link as a NIC's PMD publishes it: one atomic store (net_npa reads it from its
/// timer thread).
inline void set_link(rte_eth_dev* dev, bool up) {
    rte_eth_link l{};
    l.link_status = up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN;
    l.link_speed = priv_of(dev)->set.speed;
    l.link_duplex = RTE_ETH_LINK_FULL_DUPLEX;
    (void)rte_eth_linkstatus_set(dev, &l);
}

inline int start(rte_eth_dev* dev) {
    set_link(dev, priv_of(dev)->carrier.load());
    for (std::uint16_t q = 0; q < dev->data->nb_rx_queues; ++q) {
        dev->data->rx_queue_state[q] = RTE_ETH_QUEUE_STATE_STARTED;
    }
    for (std::uint16_t q = 0; q < dev->data->nb_tx_queues; ++q) {
        dev->data->tx_queue_state[q] = RTE_ETH_QUEUE_STATE_STARTED;
    }
    return 0;
}
inline int stop(rte_eth_dev* dev) {
    set_link(dev, false);
    return 0;
}
inline int close(rte_eth_dev*) { return 0; }
inline int info(rte_eth_dev* dev, rte_eth_dev_info* i) {
    const settings& s = priv_of(dev)->set;
    i->max_rx_queues = s.queues;
    i->max_tx_queues = s.queues;
    i->max_mac_addrs = 8;
    i->min_mtu = RTE_ETHER_MIN_MTU;
    i->max_mtu = s.max_mtu;
    i->max_rx_pktlen = s.max_mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
    i->rx_offload_capa = s.rx_capa;
    i->tx_offload_capa = s.tx_capa;
    i->rx_desc_lim.nb_max = s.max_desc;
    i->rx_desc_lim.nb_min = 32;
    i->rx_desc_lim.nb_align = 1;
    i->tx_desc_lim.nb_max = s.max_desc;
    i->tx_desc_lim.nb_min = 32;
    i->tx_desc_lim.nb_align = 1;
    return 0;
}
/// A slow link query, to catch whoever calls link_update off the application's thread
/// (net_npa's policy timer) in the middle of it: while link_hold_ms is non-zero each call
/// takes that long; link_calls counts calls begun, link_busy those not yet returned.
inline std::atomic<unsigned> link_hold_ms{0};
inline std::atomic<unsigned> link_calls{0};
inline std::atomic<int> link_busy{0};
inline int link_update(rte_eth_dev*, int) {
    if (const unsigned ms = link_hold_ms.load(); ms != 0) {
        ++link_busy;
        ++link_calls;
        rte_delay_us_sleep(ms * 1000U);
        --link_busy;
    }
    return 0;
}
inline int link_down(rte_eth_dev* dev) {
    priv_of(dev)->carrier = false;
    set_link(dev, false);
    return 0;
}
inline int link_up(rte_eth_dev* dev) {
    priv_of(dev)->carrier = true;
    set_link(dev, true);
    return 0;
}
inline int rxq_setup(rte_eth_dev* dev, std::uint16_t q, std::uint16_t, unsigned,
                     const rte_eth_rxconf*, rte_mempool*) {
    dev->data->rx_queues[q] = dev;
    return 0;
}
inline int txq_setup(rte_eth_dev* dev, std::uint16_t q, std::uint16_t, unsigned,
                     const rte_eth_txconf*) {
    dev->data->tx_queues[q] = dev;
    return 0;
}
inline void q_release(rte_eth_dev*, std::uint16_t) {}
inline int ok_op(rte_eth_dev*) { return 0; }
inline int mtu_set(rte_eth_dev* dev, std::uint16_t mtu) {
    return mtu == priv_of(dev)->set.deny_mtu ? -EPERM : 0;
}
inline int vlan_filter(rte_eth_dev* dev, std::uint16_t vid, int) {
    return vid == priv_of(dev)->set.deny_vlan ? -EPERM : 0;
}
inline int mac_set(rte_eth_dev*, rte_ether_addr*) { return 0; }
inline int mac_add(rte_eth_dev* dev, rte_ether_addr*, std::uint32_t, std::uint32_t) {
    return priv_of(dev)->set.deny_mac ? -ENOSPC : 0;
}
inline void mac_remove(rte_eth_dev*, std::uint32_t) {}
inline int stats(rte_eth_dev*, rte_eth_stats*) { return 0; }

inline std::uint16_t rx(void*, rte_mbuf**, std::uint16_t) { return 0; }
inline std::uint16_t tx(void*, rte_mbuf** m, std::uint16_t n) {
    rte_pktmbuf_free_bulk(m, n);
    return n;
}

inline eth_dev_ops make_ops() {
    eth_dev_ops o{};
    o.dev_configure = configure;
    o.dev_start = start;
    o.dev_stop = stop;
    o.dev_close = close;
    o.dev_infos_get = info;
    o.link_update = link_update;
    o.dev_set_link_up = link_up;
    o.dev_set_link_down = link_down;
    o.rx_queue_setup = rxq_setup;
    o.tx_queue_setup = txq_setup;
    o.rx_queue_release = q_release;
    o.tx_queue_release = q_release;
    o.promiscuous_enable = ok_op;
    o.promiscuous_disable = ok_op;
    o.allmulticast_enable = ok_op;
    o.allmulticast_disable = ok_op;
    o.mtu_set = mtu_set;
    o.vlan_filter_set = vlan_filter;
    o.mac_addr_set = mac_set;
    o.mac_addr_add = mac_add;
    o.mac_addr_remove = mac_remove;
    o.stats_get = stats;
    return o;
}
inline const eth_dev_ops ops = make_ops();

inline int on_arg(const char* key, const char* value, void* opaque) {
    settings& s = *static_cast<settings*>(opaque);
    const unsigned long long v = std::strtoull(value, nullptr, 0);
    if (std::strcmp(key, "max_mtu") == 0)
        s.max_mtu = static_cast<std::uint16_t>(v);
    else if (std::strcmp(key, "deny_mtu") == 0)
        s.deny_mtu = static_cast<std::uint16_t>(v);
    else if (std::strcmp(key, "deny_vlan") == 0)
        s.deny_vlan = static_cast<std::uint16_t>(v);
    else if (std::strcmp(key, "deny_mac") == 0)
        s.deny_mac = v != 0;
    else if (std::strcmp(key, "rx_capa") == 0)
        s.rx_capa = v;
    else if (std::strcmp(key, "tx_capa") == 0)
        s.tx_capa = v;
    else if (std::strcmp(key, "queues") == 0)
        s.queues = static_cast<std::uint16_t>(v);
    else if (std::strcmp(key, "max_desc") == 0)
        s.max_desc = static_cast<std::uint16_t>(v);
    else if (std::strcmp(key, "speed") == 0)
        s.speed = static_cast<std::uint32_t>(v);
    return 0;
}

inline int probe(rte_vdev_device* vdev) {
    static const char* const keys[] = {"max_mtu", "deny_mtu", "deny_vlan", "deny_mac", "rx_capa",
                                       "tx_capa", "queues",   "max_desc",  "speed",    nullptr};
    settings s;
    if (const char* args = rte_vdev_device_args(vdev); args != nullptr && *args != '\0') {
        rte_kvargs* kv = rte_kvargs_parse(args, keys);
        if (kv == nullptr)
            return -EINVAL;
        (void)rte_kvargs_process(kv, nullptr, on_arg, &s);
        rte_kvargs_free(kv);
    }
    rte_eth_dev* dev = rte_eth_vdev_allocate(vdev, sizeof(priv_data));
    if (dev == nullptr)
        return -ENOMEM;
    auto* p = new (dev->data->dev_private) priv_data{};
    p->set = s;
    dev->data->mac_addrs = static_cast<rte_ether_addr*>(
        rte_zmalloc(rte_vdev_device_name(vdev), 8 * sizeof(rte_ether_addr), 0));
    if (dev->data->mac_addrs == nullptr) {
        rte_eth_dev_release_port(dev);
        return -ENOMEM;
    }
    dev->data->mac_addrs[0] =
        rte_ether_addr{{0x02, 0, 0, 0, 0x0c, static_cast<std::uint8_t>(dev->data->port_id)}};
    dev->dev_ops = &ops;
    dev->rx_pkt_burst = rx;
    dev->tx_pkt_burst = tx;
    rte_eth_dev_probing_finish(dev);
    return 0;
}
inline int remove(rte_vdev_device* vdev) {
    rte_eth_dev* dev = rte_eth_dev_allocated(rte_vdev_device_name(vdev));
    if (dev == nullptr)
        return 0;
    if (dev->state != RTE_ETH_DEV_UNUSED)
        return rte_eth_dev_close(dev->data->port_id);
    return rte_eth_dev_release_port(dev);
}

} // namespace ctl_device
