// tests/dpdk/mbuf_sim_world.hpp: a sim simnic in a DPDK process whose guest memory holds an
// mempool's mbuf data, for a plugin (compiled in or an image) that moves rte_mbufs.
//
// The device reaches buffers only through its guest memory, as a NIC behind an IOMMU
// does: the mempool is an external-buffer one (rte_pktmbuf_pool_create_extbuf) over a
// block of that memory, so each mbuf's buf_addr and buf_iova are the block's host address
// and device address. The mbuf headers stay in EAL memory. Test and benchmark equipment
// (image_mbuf_test, benchmarks/image_mbuf_bench).
#pragma once

#include <npa/concepts/shell_api.hpp>
#include <npa/dpdk/mbuf.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/traffic.hpp>
#include <npa/sim/wire.hpp>

#include <rte_errno.h>
#include <rte_mbuf.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace npa::dpdk::test {

/// The shell API a plugin calls back into, over one mempool; what it takes and gives back
/// is counted, so a test sees every mbuf.
struct mbuf_api {
    using buffer_type = mbuf_ref;
    mempool_pool* pool = nullptr;
    std::uint64_t rx_allocated = 0, rx_released = 0, tx_completed = 0, unsent = 0;

    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<mbuf_ref> out) noexcept {
        const std::uint32_t n = pool->alloc_burst(out);
        rx_allocated += n;
        return n;
    }
    void release_rx_buffers(std::uint16_t, std::span<const mbuf_ref> in) noexcept {
        rx_released += in.size();
        pool->free_burst(in);
    }
    void tx_complete(std::uint16_t, std::span<const mbuf_ref> in) noexcept {
        tx_completed += in.size();
        pool->free_burst(in);
    }
    void tx_unsent(std::uint16_t, std::span<const mbuf_ref> in) noexcept {
        unsent += in.size();
        pool->free_burst(in);
    }
    void log(log_level, const char*) noexcept {}
};

inline constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x10};
inline constexpr mac_addr peer_mac{0x02, 0, 0, 0, 0, 0x20};
inline constexpr std::uint32_t peer_flow = 1;

/// A one-queue simnic, its mbufs in its guest memory, and a traffic peer on its wire.
struct mbuf_sim_world {
    static constexpr std::uint16_t elt_size = RTE_MBUF_DEFAULT_BUF_SIZE;
    static constexpr std::uint32_t ring_size = 256;

    sim::guest_memory mem{std::size_t{16} << 20};
    sim::traffic_peer peer;
    std::unique_ptr<sim::simnic> dev;
    mempool_pool pool;
    mbuf_api api{};
    std::string error; ///< empty when everything was made

    mbuf_sim_world(const char* name, std::uint32_t mbufs, std::uint32_t frame_len)
        : peer(peer_flow, peer_mac, guest_mac, 0, frame_len) {
        const sim::guest_block blk = mem.allocate(std::size_t{mbufs} * elt_size);
        if (!blk) {
            error = "guest memory too small for the mbufs";
            return;
        }
        rte_pktmbuf_extmem ext{blk.virt, blk.iova, blk.size, elt_size};
        rte_mempool* mp =
            rte_pktmbuf_pool_create_extbuf(name, mbufs, 0, 0, elt_size, SOCKET_ID_ANY, &ext, 1);
        if (mp == nullptr) {
            error = std::string("rte_pktmbuf_pool_create_extbuf: ") + rte_strerror(rte_errno);
            return;
        }
        pool = mempool_pool{mp, true};
        api.pool = &pool;
        sim::simnic_config dc;
        dc.queues = 1;
        dc.max_ring_size = ring_size;
        auto d = sim::simnic::create(mem, dc);
        if (!d) {
            error = d.error().reason();
            return;
        }
        dev = std::move(*d);
        sim::connect(*dev, peer);
    }
    ~mbuf_sim_world() { dev.reset(); } // the device first: it is wired to the peer

    [[nodiscard]] static queue_config queue_cfg() noexcept {
        queue_config qc;
        qc.queues = 1;
        qc.tx_ring_size = ring_size;
        qc.rx_ring_size = ring_size;
        return qc;
    }
};

} // namespace npa::dpdk::test
