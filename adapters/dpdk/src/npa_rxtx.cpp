// npa_rxtx.cpp: net_npa's burst functions.
//
#include "npa_private.hpp"

namespace npa::dpdk::pmd {

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

} // namespace npa::dpdk::pmd
