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
#include <npa/image/format.hpp>
#include <npa/image/mbuf_layout.hpp>
#include <npa/status.hpp>

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace npa::dpdk {

/// An 8-byte handle on one rte_mbuf. Null is "no buffer".
class mbuf_ref {
public:
    /// A plugin image loaded for this shell reads mbufs itself (npa/image/mbuf_layout.hpp).
    static constexpr image::buffer_layout image_buffer_layout = image::buffer_layout::rte_mbuf;

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

    /// ol_flags, vlan_tci, hash.rss, tso_segsz and the header lengths, as npa metadata;
    /// set_offload is the reverse. The mapping is the one an rte_mbuf-layout plugin image
    /// uses (npa/image/mbuf_layout.hpp), so both see the same metadata.
    [[nodiscard]] offload_info offload() const noexcept {
        return image::mbuf::get_offload(reinterpret_cast<std::byte*>(m_));
    }
    void set_offload(const offload_info& o) const noexcept {
        image::mbuf::set_offload(reinterpret_cast<std::byte*>(m_), o);
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

// ---- what an rte_mbuf-layout plugin image compiled in (npa/image/mbuf_layout.hpp) --------
// The image is freestanding and names the fields by offset and the flags by value; this
// DPDK's struct rte_mbuf must be the one it describes, or an image would read the wrong
// bytes. A DPDK whose mbuf differs fails to build here.
namespace image_layout_check {
namespace m = image::mbuf;
static_assert(RTE_IOVA_AS_PA, "an rte_mbuf-layout image reads buf_iova from the mbuf");
static_assert(offsetof(rte_mbuf, buf_addr) == m::off_buf_addr && sizeof(rte_mbuf::buf_addr) == 8);
static_assert(offsetof(rte_mbuf, buf_iova) == m::off_buf_iova && sizeof(rte_mbuf::buf_iova) == 8);
static_assert(offsetof(rte_mbuf, data_off) == m::off_data_off && sizeof(rte_mbuf::data_off) == 2);
static_assert(offsetof(rte_mbuf, ol_flags) == m::off_ol_flags && sizeof(rte_mbuf::ol_flags) == 8);
static_assert(offsetof(rte_mbuf, pkt_len) == m::off_pkt_len && sizeof(rte_mbuf::pkt_len) == 4);
static_assert(offsetof(rte_mbuf, data_len) == m::off_data_len && sizeof(rte_mbuf::data_len) == 2);
static_assert(offsetof(rte_mbuf, vlan_tci) == m::off_vlan_tci && sizeof(rte_mbuf::vlan_tci) == 2);
static_assert(offsetof(rte_mbuf, hash.rss) == m::off_rss && sizeof(std::declval<rte_mbuf&>().hash.rss) == 4);
static_assert(offsetof(rte_mbuf, buf_len) == m::off_buf_len && sizeof(rte_mbuf::buf_len) == 2);
static_assert(offsetof(rte_mbuf, tx_offload) == m::off_tx_offload &&
              sizeof(rte_mbuf::tx_offload) == 8);
static_assert(RTE_MBUF_L2_LEN_OFS == m::l2_len_ofs && RTE_MBUF_L2_LEN_BITS == m::l2_len_bits);
static_assert(RTE_MBUF_L3_LEN_OFS == m::l3_len_ofs && RTE_MBUF_L3_LEN_BITS == m::l3_len_bits);
static_assert(RTE_MBUF_L4_LEN_OFS == m::l4_len_ofs && RTE_MBUF_L4_LEN_BITS == m::l4_len_bits);
static_assert(RTE_MBUF_TSO_SEGSZ_OFS == m::tso_segsz_ofs &&
              RTE_MBUF_TSO_SEGSZ_BITS == m::tso_segsz_bits);
static_assert(RTE_MBUF_F_RX_VLAN == m::f_rx_vlan && RTE_MBUF_F_RX_RSS_HASH == m::f_rx_rss_hash);
static_assert(RTE_MBUF_F_RX_VLAN_STRIPPED == m::f_rx_vlan_stripped &&
              RTE_MBUF_F_RX_LRO == m::f_rx_lro);
static_assert(RTE_MBUF_F_RX_IP_CKSUM_BAD == m::f_rx_ip_cksum_bad &&
              RTE_MBUF_F_RX_IP_CKSUM_GOOD == m::f_rx_ip_cksum_good &&
              RTE_MBUF_F_RX_IP_CKSUM_MASK == m::f_rx_ip_cksum_mask);
static_assert(RTE_MBUF_F_RX_L4_CKSUM_BAD == m::f_rx_l4_cksum_bad &&
              RTE_MBUF_F_RX_L4_CKSUM_GOOD == m::f_rx_l4_cksum_good &&
              RTE_MBUF_F_RX_L4_CKSUM_MASK == m::f_rx_l4_cksum_mask);
static_assert(RTE_MBUF_F_TX_TCP_SEG == m::f_tx_tcp_seg && RTE_MBUF_F_TX_IP_CKSUM == m::f_tx_ip_cksum &&
              RTE_MBUF_F_TX_VLAN == m::f_tx_vlan);
static_assert(RTE_MBUF_F_TX_L4_NO_CKSUM == m::f_tx_l4_no_cksum &&
              RTE_MBUF_F_TX_TCP_CKSUM == m::f_tx_tcp_cksum && RTE_MBUF_F_TX_L4_MASK == m::f_tx_l4_mask);
} // namespace image_layout_check

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
