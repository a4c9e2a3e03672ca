// npa/dpdk/ethdev_plugin.hpp: an npa plugin that drives another DPDK port's queues.
//
// Any port DPDK can open (a NIC's VF or PF, net_ring, net_null, virtio-user ...) becomes a
// data path the shell can switch to. The "device window" is the port id plus the mempools
// its RX queues refill from; the mbufs are the buffers (npa::dpdk::mbuf_ref), so a burst
// crosses from the shell to the sub-port as the same array of pointers, without a copy.
//
// Division of labour with DPDK: the sub-port's own PMD owns its descriptor rings. RX
// refill comes straight from the rte_mempool the shell gave at attach (that mempool is the
// shell's pool, so the shell API's alloc_rx_buffers has nothing to add), and a TX mbuf
// the sub-port accepted is freed by it on completion (rte_eth_tx_burst semantics), so
// tx_complete/tx_unsent are never needed: what tx_burst accepted the port will send.
//
// Control state (MAC, VLAN, MTU, RX mode) never goes through here: a plugin has no
// control path (DESIGN.md section 3); npa::dpdk::ethdev_control applies it to a port.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/dpdk/mbuf.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>

#include <rte_ethdev.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <type_traits>

namespace npa::dpdk {

/// Queue pairs one plugin instance drives. DPDK allows 1024; npa's ports use a few, and
/// the per-queue stats live inline (no allocation), so the bound is kept small.
inline constexpr std::uint16_t ethdev_max_queues = 16;

/// The device window of an ethdev plugin.
struct ethdev_port {
    std::uint16_t port_id = RTE_MAX_ETHPORTS;
    /// RX mempool per queue (rx_pools[q], or rx_pools[0] for all queues).
    std::span<rte_mempool* const> rx_pools{};
    /// Port configuration (offloads already intersected by the shell); rx/tx queue
    /// counts and MTU are taken from the queue_config.
    rte_eth_conf conf{};
};

template <class Api>
class ethdev_plugin {
    static_assert(std::is_same_v<typename Api::buffer_type, mbuf_ref>,
                  "npa::dpdk::ethdev_plugin moves rte_mbufs: the shell's buffer_type must be "
                  "npa::dpdk::mbuf_ref (pool npa::dpdk::mempool_pool)");

public:
    static constexpr const char* name = "ethdev";
    using device_type = ethdev_port;
    /// The sub-port's PMD refills RX from the mempool and frees TX on completion
    /// (npa/concepts/plugin.hpp: device_managed_buffers).
    static constexpr bool device_managed_buffers = true;

    /// Steps: 1. check the port and what it can do; 2. configure it for qc.queues pairs;
    /// 3. set up the rings (sizes adjusted to the port's limits); 4. start it. On failure
    /// the port is left stopped and nothing is held.
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        api_ = &api;
        if (!rte_eth_dev_is_valid_port(dev.port_id)) {
            return {errc::invalid_argument, "ethdev plugin: no such port"};
        }
        if (qc.queues == 0 || qc.queues > ethdev_max_queues) {
            return {errc::invalid_argument, "ethdev plugin: queue count out of range"};
        }
        if (dev.rx_pools.empty() || dev.rx_pools.front() == nullptr) {
            return {errc::invalid_argument, "ethdev plugin: no RX mempool"};
        }
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(dev.port_id, &info) != 0) {
            return {errc::device_error, "ethdev plugin: rte_eth_dev_info_get failed"};
        }
        if (qc.queues > info.max_rx_queues || qc.queues > info.max_tx_queues) {
            return {errc::not_supported, "ethdev plugin: the port has fewer queues than asked"};
        }
        const int socket = rte_eth_dev_socket_id(dev.port_id);
        if (rte_eth_dev_configure(dev.port_id, qc.queues, qc.queues, &dev.conf) != 0) {
            return {errc::device_error, "ethdev plugin: rte_eth_dev_configure failed"};
        }
        std::uint16_t nb_rx = static_cast<std::uint16_t>(qc.rx_ring_size);
        std::uint16_t nb_tx = static_cast<std::uint16_t>(qc.tx_ring_size);
        if (rte_eth_dev_adjust_nb_rx_tx_desc(dev.port_id, &nb_rx, &nb_tx) != 0) {
            return {errc::device_error, "ethdev plugin: ring sizes not accepted"};
        }
        for (std::uint16_t q = 0; q < qc.queues; ++q) {
            rte_mempool* mp = dev.rx_pools.size() > q ? dev.rx_pools[q] : dev.rx_pools.front();
            if (rte_eth_rx_queue_setup(dev.port_id, q, nb_rx, static_cast<unsigned>(socket),
                                       nullptr, mp) != 0) {
                return {errc::no_memory, "ethdev plugin: RX queue setup failed"};
            }
            if (rte_eth_tx_queue_setup(dev.port_id, q, nb_tx, static_cast<unsigned>(socket),
                                       nullptr) != 0) {
                return {errc::no_memory, "ethdev plugin: TX queue setup failed"};
            }
        }
        if (rte_eth_dev_start(dev.port_id) != 0) {
            return {errc::device_error, "ethdev plugin: rte_eth_dev_start failed"};
        }
        port_ = dev.port_id;
        queues_ = qc.queues;
        rx_ring_ = nb_rx;
        // Counters start at zero on every attach: the shell folded what this path counted
        // before into its history when it detached (keeping them would count it twice).
        // The sub-port's own byte counters keep running across stop/start, so what they
        // say now is the baseline.
        rte_eth_stats es{};
        const bool have = rte_eth_stats_get(port_, &es) == 0;
        for (std::uint16_t q = 0; q < ethdev_max_queues; ++q) {
            stats_[q] = queue_stats{};
            counts_[q].rx.store(0, std::memory_order_relaxed);
            counts_[q].tx.store(0, std::memory_order_relaxed);
            counts_[q].tx_short.store(0, std::memory_order_relaxed);
            const bool qs = have && q < RTE_ETHDEV_QUEUE_STAT_CNTRS;
            byte_base_[q] = {qs ? es.q_ibytes[q] : 0, qs ? es.q_obytes[q] : 0};
        }
        caps_ = to_capabilities(info);
        removed_.store(false, std::memory_order_relaxed);
        attached_ = true;
        return status::success();
    }

    /// Stops the port: its PMD frees what its RX rings hold back into their mempools and
    /// what its TX rings hold once sent; nothing stays with the plugin.
    void detach() noexcept {
        if (!attached_) return;
        attached_ = false;
        if (!removed_.load(std::memory_order_relaxed) && rte_eth_dev_is_valid_port(port_)) {
            (void)rte_eth_dev_stop(port_);
        }
    }

    // The burst calls count packets only: walking the mbufs for their lengths would touch
    // every header a second time (io forwarding never does), and the sub-port counts
    // bytes anyway; stats() takes them from there.
    NPA_ALWAYS_INLINE std::uint16_t tx_burst(std::uint16_t q, std::span<mbuf_ref> bufs) noexcept {
        if (NPA_UNLIKELY(!usable(q))) return 0;
        const std::uint16_t n = static_cast<std::uint16_t>(bufs.size());
        const std::uint16_t k = rte_eth_tx_burst(port_, q, as_mbufs(bufs), n);
        counter& c = counts_[q];
        bump(c.tx, k);
        if (NPA_UNLIKELY(k < n)) bump(c.tx_short, 1);
        return k;
    }

    NPA_ALWAYS_INLINE std::uint16_t rx_burst(std::uint16_t q, std::span<mbuf_ref> out) noexcept {
        if (NPA_UNLIKELY(!usable(q))) return 0;
        const std::uint16_t k =
            rte_eth_rx_burst(port_, q, as_mbufs(out), static_cast<std::uint16_t>(out.size()));
        bump(counts_[q].rx, k);
        return k;
    }

    /// Asks the port to free sent mbufs now (rte_eth_tx_done_cleanup); 0 where the port
    /// cannot say (it then frees them on its next tx_burst).
    std::uint32_t tx_reap(std::uint16_t q) noexcept {
        if (!usable(q)) return 0;
        const int r = rte_eth_tx_done_cleanup(port_, q, 0);
        return r > 0 ? static_cast<std::uint32_t>(r) : 0;
    }
    /// ethdev does not expose how many accepted mbufs are still unsent; the port owns
    /// them and sends them, so none is ever handed back and 0 is the honest answer for
    /// what the shell must account for.
    std::uint32_t tx_in_flight(std::uint16_t) const noexcept { return 0; }

    /// What a drain reads from this port at most: one RX ring, the most the port can
    /// have received and not yet handed over when the drain started. A port whose RX
    /// never runs dry (net_null, a generator) is left after that; one that runs dry
    /// ends the drain sooner with a short burst.
    std::uint32_t rx_drain_bound(std::uint16_t) const noexcept { return rx_ring_; }

    void irq_arm(std::uint16_t q) noexcept {
        if (usable(q)) (void)rte_eth_dev_rx_intr_enable(port_, q);
    }
    void irq_disarm(std::uint16_t q) noexcept {
        if (usable(q)) (void)rte_eth_dev_rx_intr_disable(port_, q);
    }

    npa::capabilities capabilities() const noexcept { return caps_; }
    /// Control path: packet counts are the plugin's own; bytes are the sub-port's
    /// per-queue counters (rte_eth_stats q_ibytes/q_obytes), read now, never lower than
    /// before (a port that resets or stops counting does not make them go back).
    /// The shell calls this under its per-queue stats lock (the queue's thread and the
    /// control thread take turns); the burst counters are single-writer atomics.
    const queue_stats& stats(std::uint16_t q) const noexcept {
        if (q >= ethdev_max_queues) q = 0;
        queue_stats& s = stats_[q];
        s.rx_packets = counts_[q].rx.load(std::memory_order_relaxed);
        s.tx_packets = counts_[q].tx.load(std::memory_order_relaxed);
        s.tx_ring_full = counts_[q].tx_short.load(std::memory_order_relaxed);
        rte_eth_stats es{};
        if (attached_ && !removed_.load(std::memory_order_relaxed) &&
            q < RTE_ETHDEV_QUEUE_STAT_CNTRS && rte_eth_stats_get(port_, &es) == 0) {
            const auto since = [](std::uint64_t now, std::uint64_t base) noexcept {
                return now >= base ? now - base : 0;
            };
            s.rx_bytes = std::max(s.rx_bytes, since(es.q_ibytes[q], byte_base_[q][0]));
            s.tx_bytes = std::max(s.tx_bytes, since(es.q_obytes[q], byte_base_[q][1]));
        }
        return s;
    }

    /// removed after mark_removed() (RTE_ETH_EVENT_INTR_RMV), ok otherwise.
    errc health() const noexcept {
        return removed_.load(std::memory_order_acquire) ? errc::removed : errc::ok;
    }
    /// Called from the control thread when the port's device goes away: from then on the
    /// data path no longer touches the port.
    void mark_removed() noexcept { removed_.store(true, std::memory_order_release); }

    [[nodiscard]] bool attached() const noexcept { return attached_; }
    [[nodiscard]] std::uint16_t port_id() const noexcept { return port_; }
    [[nodiscard]] std::uint16_t queues() const noexcept { return queues_; }

    /// What a port's dev_info promises, as npa capabilities.
    [[nodiscard]] static npa::capabilities to_capabilities(const rte_eth_dev_info& info) noexcept {
        npa::capabilities c;
        const std::uint64_t tx = info.tx_offload_capa;
        const std::uint64_t rx = info.rx_offload_capa;
        if (tx & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) c.offloads |= cap::tx_ip_csum;
        if ((tx & (RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM)) ==
            (RTE_ETH_TX_OFFLOAD_TCP_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM))
            c.offloads |= cap::tx_l4_csum;
        if (tx & RTE_ETH_TX_OFFLOAD_TCP_TSO) c.offloads |= cap::tso;
        if (tx & RTE_ETH_TX_OFFLOAD_VLAN_INSERT) c.offloads |= cap::vlan_insert;
        if (rx & RTE_ETH_RX_OFFLOAD_CHECKSUM) c.offloads |= cap::rx_csum;
        if (rx & RTE_ETH_RX_OFFLOAD_VLAN_STRIP) c.offloads |= cap::vlan_strip;
        if (rx & RTE_ETH_RX_OFFLOAD_RSS_HASH) c.offloads |= cap::rss;
        if (rx & RTE_ETH_RX_OFFLOAD_TCP_LRO) c.offloads |= cap::lro;
        if (rx & RTE_ETH_RX_OFFLOAD_VLAN_FILTER) c.offloads |= cap::vlan_filter;
        c.max_queues = std::min<std::uint16_t>(
            std::min(info.max_rx_queues, info.max_tx_queues), ethdev_max_queues);
        c.min_ring_size = std::max<std::uint32_t>(info.rx_desc_lim.nb_min, 1);
        c.max_ring_size = std::max<std::uint32_t>(info.rx_desc_lim.nb_max, c.min_ring_size);
        c.min_mtu = info.min_mtu;
        c.max_mtu = info.max_mtu;
        return c;
    }

private:
    bool usable(std::uint16_t q) const noexcept {
        return attached_ && q < queues_ && !removed_.load(std::memory_order_relaxed);
    }

    Api* api_ = nullptr;
    std::uint16_t port_ = RTE_MAX_ETHPORTS;
    std::uint16_t queues_ = 0;
    bool attached_ = false;
    std::atomic<bool> removed_{false};
    npa::capabilities caps_{};
    /// Burst counters: written by the queue's thread only (load + store, no locked
    /// instruction), read by stats().
    struct counter {
        std::atomic<std::uint64_t> rx{0};
        std::atomic<std::uint64_t> tx{0};
        std::atomic<std::uint64_t> tx_short{0};
    };
    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }

    std::uint32_t rx_ring_ = 0;
    std::array<counter, ethdev_max_queues> counts_{};
    mutable std::array<queue_stats, ethdev_max_queues> stats_{};
    /// The sub-port's RX and TX byte counters per queue when this path attached.
    std::array<std::array<std::uint64_t, 2>, ethdev_max_queues> byte_base_{};
};

/// The smallest shell API an ethdev plugin needs (buffers flow through the port's own
/// mempool, so the calls only keep the books); used by net_npa until npa::shell drives the
/// plugins, and by tests.
struct ethdev_shell_api {
    using buffer_type = mbuf_ref;
    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<mbuf_ref>) noexcept { return 0; }
    void release_rx_buffers(std::uint16_t, std::span<const mbuf_ref> in) noexcept {
        rte_pktmbuf_free_bulk(const_cast<rte_mbuf**>(as_mbufs(in)),
                              static_cast<unsigned>(in.size()));
    }
    void tx_complete(std::uint16_t, std::span<const mbuf_ref> in) noexcept {
        rte_pktmbuf_free_bulk(const_cast<rte_mbuf**>(as_mbufs(in)),
                              static_cast<unsigned>(in.size()));
    }
    void tx_unsent(std::uint16_t, std::span<const mbuf_ref> in) noexcept {
        unsent += in.size();
        tx_complete(0, in);
    }
    void log(log_level, const char*) noexcept {}
    std::uint64_t unsent = 0;
};

static_assert(npa::check_plugin<ethdev_plugin<ethdev_shell_api>, ethdev_shell_api>());

} // namespace npa::dpdk
