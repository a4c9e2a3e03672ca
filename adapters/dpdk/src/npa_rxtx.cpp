// npa_rxtx.cpp: net_npa's burst functions.
//
#include "npa_private.hpp"

namespace npa::dpdk::pmd {

// Steady state: the sub-port's own burst function, called directly (lanes.hpp). Else
// the shell, which runs a switch in progress on this thread; afterwards the lane is
// published again once the queue is steady. Received mbufs carry net_npa's port id, as
// the application expects of any port (a store per packet where the sub-port wrote its
// own id, a load where it left net_npa's; fail-safe always stores).

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
    if (k != 0 && pkts[0]->port == port_id) {
        // A sub-port that leaves `port` alone (net_ring): the mbufs mostly carry
        // net_npa's id already, and a load is cheaper than dirtying a line not in L1.
        for (std::uint16_t i = 0; i < k; ++i) {
            if (pkts[i]->port != port_id) pkts[i]->port = port_id;
        }
    } else {
        // A sub-port that wrote its own id (most PMDs): the lines are in L1, one store
        // each, last mbuf first (measured over net_null: 91% of direct against 83% front
        // to back and 89% unrolled; adapters/dpdk/README.md "Measurements").
        for (std::uint16_t i = k; i-- > 0;) pkts[i]->port = port_id;
    }
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

} // namespace npa::dpdk::pmd
