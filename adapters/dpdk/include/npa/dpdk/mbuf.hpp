// npa/dpdk/mbuf.hpp: DPDK mbufs as npa buffers, and an rte_mempool as the npa pool.
//
// An rte_mbuf already is what npa::packet_buffer describes (a header with buf_addr,
// buf_iova, data_off, data_len and offload metadata in front of the packet memory), so
// the handle wraps the rte_mbuf pointer itself: arrays of mbuf_ref and arrays of
// rte_mbuf* have the same layout, and a burst moves between npa and ethdev without a
// copy or a conversion loop (as_mbufs()).
//
// Scope: single-segment mbufs (nb_segs == 1), which is what the npa buffer concept
// describes (one contiguous mapping). A chained mbuf passes through the data path
// untouched; length() then reports the first segment only.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/buffer.hpp>
#include <npa/concepts/buffer_pool.hpp>
#include <npa/config.hpp>
#include <npa/status.hpp>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::dpdk {

/// An 8-byte handle on one rte_mbuf. Null is "no buffer".
class mbuf_ref {
public:
    constexpr mbuf_ref() noexcept = default;
    constexpr explicit mbuf_ref(rte_mbuf* m) noexcept : m_(m) {}

    /// rte_pktmbuf_mtod: the first byte of packet data.
    [[nodiscard]] std::byte* data() const noexcept {
        return static_cast<std::byte*>(m_->buf_addr) + m_->data_off;
    }
    /// rte_pktmbuf_iova: the device address of data().
    [[nodiscard]] iova_t iova() const noexcept { return rte_pktmbuf_iova(m_); }
    [[nodiscard]] std::uint32_t length() const noexcept { return m_->data_len; }
    /// Sets the segment and the packet length together (single-segment mbufs).
    void set_length(std::uint32_t len) const noexcept {
        m_->data_len = static_cast<std::uint16_t>(len);
        m_->pkt_len = len;
    }
    /// Bytes from data() to the end of the buffer (rte_pktmbuf_tailroom + data_len).
    [[nodiscard]] std::uint32_t capacity() const noexcept {
        return static_cast<std::uint32_t>(m_->buf_len) - m_->data_off;
    }
    [[nodiscard]] std::uint32_t headroom() const noexcept { return m_->data_off; }

    /// ol_flags, vlan_tci, hash.rss, tso_segsz and the header lengths, as npa metadata.
    [[nodiscard]] offload_info offload() const noexcept {
        offload_info o;
        const std::uint64_t f = m_->ol_flags;
        if (f & RTE_MBUF_F_TX_IP_CKSUM) o.flags |= ol::tx_ip_csum;
        if ((f & RTE_MBUF_F_TX_L4_MASK) != RTE_MBUF_F_TX_L4_NO_CKSUM) o.flags |= ol::tx_l4_csum;
        if (f & RTE_MBUF_F_TX_TCP_SEG) o.flags |= ol::tx_tso;
        if (f & RTE_MBUF_F_TX_VLAN) o.flags |= ol::tx_vlan;
        if (f & RTE_MBUF_F_RX_VLAN_STRIPPED) o.flags |= ol::rx_vlan;
        if (f & RTE_MBUF_F_RX_RSS_HASH) {
            o.flags |= ol::rx_rss;
            o.rss_hash = m_->hash.rss;
        }
        if (f & RTE_MBUF_F_RX_LRO) o.flags |= ol::rx_lro;
        if (f & (RTE_MBUF_F_TX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED)) o.vlan_tci = m_->vlan_tci;
        o.tso_mss = m_->tso_segsz;
        o.l2_len = static_cast<std::uint8_t>(m_->l2_len);
        o.l3_len = static_cast<std::uint8_t>(m_->l3_len);
        o.l4_len = static_cast<std::uint8_t>(m_->l4_len);
        // L3 and L4 verdicts folded as npa::csum_state documents: any bad wins.
        const std::uint64_t ip = f & RTE_MBUF_F_RX_IP_CKSUM_MASK;
        const std::uint64_t l4 = f & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD) {
            o.csum = csum_state::bad;
        } else if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD || l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD) {
            o.csum = csum_state::good;
        }
        return o;
    }

    /// The reverse mapping. Bits npa does not describe (RTE_MBUF_F_TX_IPV4, packet type
    /// ...) are kept. tx_l4_csum keeps the L4 type already set in ol_flags and means TCP
    /// when none is set, since npa does not carry the L4 protocol.
    void set_offload(const offload_info& o) const noexcept {
        std::uint64_t f = m_->ol_flags;
        const std::uint64_t l4_type = f & RTE_MBUF_F_TX_L4_MASK;
        f &= ~(RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG |
               RTE_MBUF_F_TX_VLAN | RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED |
               RTE_MBUF_F_RX_RSS_HASH | RTE_MBUF_F_RX_LRO | RTE_MBUF_F_RX_IP_CKSUM_MASK |
               RTE_MBUF_F_RX_L4_CKSUM_MASK);
        if (o.flags & ol::tx_ip_csum) f |= RTE_MBUF_F_TX_IP_CKSUM;
        if (o.flags & ol::tx_l4_csum) {
            f |= l4_type != RTE_MBUF_F_TX_L4_NO_CKSUM ? l4_type : RTE_MBUF_F_TX_TCP_CKSUM;
        }
        if (o.flags & ol::tx_tso) f |= RTE_MBUF_F_TX_TCP_SEG;
        if (o.flags & ol::tx_vlan) f |= RTE_MBUF_F_TX_VLAN;
        if (o.flags & ol::rx_vlan) f |= RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
        if (o.flags & ol::rx_rss) f |= RTE_MBUF_F_RX_RSS_HASH;
        if (o.flags & ol::rx_lro) f |= RTE_MBUF_F_RX_LRO;
        switch (o.csum) {
        case csum_state::good:
            f |= RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
            break;
        case csum_state::bad:
            f |= RTE_MBUF_F_RX_IP_CKSUM_BAD | RTE_MBUF_F_RX_L4_CKSUM_BAD;
            break;
        case csum_state::unknown:
            break;
        }
        m_->ol_flags = f;
        m_->vlan_tci = o.vlan_tci;
        m_->hash.rss = o.rss_hash;
        m_->tso_segsz = o.tso_mss;
        m_->l2_len = o.l2_len & 0x7fu;  // 7-bit field in rte_mbuf
        m_->l3_len = o.l3_len & 0x1ffu;
        m_->l4_len = o.l4_len & 0xffu;
    }

    [[nodiscard]] rte_mbuf* get() const noexcept { return m_; }
    constexpr explicit operator bool() const noexcept { return m_ != nullptr; }
    friend constexpr bool operator==(mbuf_ref, mbuf_ref) noexcept = default;

private:
    rte_mbuf* m_ = nullptr;
};
static_assert(sizeof(mbuf_ref) == sizeof(rte_mbuf*) && alignof(mbuf_ref) == alignof(rte_mbuf*),
              "mbuf_ref must be layout-compatible with rte_mbuf* so bursts need no copy");
static_assert(npa::buffer<mbuf_ref>);

/// A burst of handles seen as the rte_mbuf* array ethdev takes. mbuf_ref is a
/// standard-layout class whose only member is the pointer, so the two arrays are the same
/// bytes (the static_assert above keeps it that way).
[[nodiscard]] inline rte_mbuf** as_mbufs(std::span<mbuf_ref> s) noexcept {
    return reinterpret_cast<rte_mbuf**>(s.data());
}
[[nodiscard]] inline rte_mbuf* const* as_mbufs(std::span<const mbuf_ref> s) noexcept {
    return reinterpret_cast<rte_mbuf* const*>(s.data());
}
[[nodiscard]] inline std::span<mbuf_ref> as_refs(rte_mbuf** m, std::uint16_t n) noexcept {
    return {reinterpret_cast<mbuf_ref*>(m), n};
}

/// An npa::buffer_pool over an rte_mempool of packet mbufs. Does not own the mempool by
/// default (the application created it); adopt() makes it free the mempool on destruction.
class mempool_pool {
public:
    using buffer_type = mbuf_ref;

    mempool_pool() noexcept = default;
    explicit mempool_pool(rte_mempool* mp, bool owned = false) noexcept : mp_(mp), owned_(owned) {}
    mempool_pool(mempool_pool&& o) noexcept : mp_(o.mp_), owned_(o.owned_) {
        o.mp_ = nullptr;
        o.owned_ = false;
    }
    mempool_pool& operator=(mempool_pool&& o) noexcept {
        if (this != &o) {
            reset();
            mp_ = o.mp_;
            owned_ = o.owned_;
            o.mp_ = nullptr;
            o.owned_ = false;
        }
        return *this;
    }
    mempool_pool(const mempool_pool&) = delete;
    mempool_pool& operator=(const mempool_pool&) = delete;
    ~mempool_pool() { reset(); }

    /// Creates (and owns) a packet mbuf mempool; control path.
    [[nodiscard]] static result<mempool_pool> create(const char* name, std::uint32_t n,
                                                     std::uint16_t data_room, int socket,
                                                     std::uint32_t cache = 0) noexcept {
        rte_mempool* mp = rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket);
        if (mp == nullptr) {
            return status{errc::no_memory, "rte_pktmbuf_pool_create failed"};
        }
        return mempool_pool{mp, true};
    }

    /// 0..n buffers: one bulk attempt (the common case), then singles until the pool is dry.
    std::uint32_t alloc_burst(std::span<mbuf_ref> out) noexcept {
        if (out.empty()) return 0;
        if (alloc_bulk(out) != 0) return static_cast<std::uint32_t>(out.size());
        std::uint32_t k = 0;
        for (; k < out.size(); ++k) {
            rte_mbuf* m = rte_pktmbuf_alloc(mp_);
            if (m == nullptr) break;
            out[k] = mbuf_ref{m};
        }
        ++shortfalls_;
        return k;
    }
    /// 0 or n buffers (rte_pktmbuf_alloc_bulk resets each mbuf: length 0, default headroom).
    std::uint32_t alloc_bulk(std::span<mbuf_ref> out) noexcept {
        if (out.empty()) return 0;
        if (rte_pktmbuf_alloc_bulk(mp_, as_mbufs(out), static_cast<unsigned>(out.size())) != 0) {
            return 0;
        }
        return static_cast<std::uint32_t>(out.size());
    }
    void free_burst(std::span<const mbuf_ref> in) noexcept {
        // rte_pktmbuf_free_bulk takes rte_mbuf** (it does not write the array).
        rte_pktmbuf_free_bulk(const_cast<rte_mbuf**>(as_mbufs(in)),
                              static_cast<unsigned>(in.size()));
    }
    [[nodiscard]] std::uint32_t size() const noexcept { return mp_ != nullptr ? mp_->size : 0; }
    [[nodiscard]] std::uint32_t available() const noexcept {
        return mp_ != nullptr ? rte_mempool_avail_count(mp_) : 0;
    }
    [[nodiscard]] std::uint64_t shortfalls() const noexcept { return shortfalls_; }
    [[nodiscard]] rte_mempool* get() const noexcept { return mp_; }

private:
    void reset() noexcept {
        if (owned_ && mp_ != nullptr) rte_mempool_free(mp_);
        mp_ = nullptr;
        owned_ = false;
    }

    rte_mempool* mp_ = nullptr;
    bool owned_ = false;
    std::uint64_t shortfalls_ = 0;
};
static_assert(npa::buffer_pool<mempool_pool>);

} // namespace npa::dpdk
