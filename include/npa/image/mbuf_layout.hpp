// npa/image/mbuf_layout.hpp: DPDK's struct rte_mbuf as an image reads it, without DPDK.
//
// An image built for buffer_layout::rte_mbuf (format.hpp) runs in net_npa, where bursts are
// arrays of rte_mbuf*. The image is freestanding (no DPDK header inside it), so this header
// names the fields a plugin needs by offset and type, and the flag bits by value, and the
// DPDK adapter static_asserts every one of them against struct rte_mbuf and the RTE_MBUF_F_*
// macros (npa/dpdk/mbuf.hpp): an image and a host built against another rte_mbuf fail to
// compile there, not at run time. The values are DPDK 22.11's (ABI 23) on a 64-bit
// little-endian machine with buf_iova in the mbuf (RTE_IOVA_AS_PA, Debian's build).
//
// mbuf_view is the npa::buffer handle over one rte_mbuf, and the offload mapping between
// rte_mbuf fields and npa::offload_info is here once: the DPDK adapter's mbuf_ref uses the
// same functions, so an image and a compiled-in plugin see the same metadata.
#pragma once

#include <npa/config.hpp>
#include <npa/image/format.hpp>
#include <npa/offload.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::image::mbuf {

// ---- field offsets in struct rte_mbuf (rte_mbuf_core.h) ----------------------------------
inline constexpr std::size_t off_buf_addr = 0;    ///< void*
inline constexpr std::size_t off_buf_iova = 8;    ///< rte_iova_t (u64)
inline constexpr std::size_t off_data_off = 16;   ///< u16
inline constexpr std::size_t off_ol_flags = 24;   ///< u64
inline constexpr std::size_t off_pkt_len = 36;    ///< u32
inline constexpr std::size_t off_data_len = 40;   ///< u16
inline constexpr std::size_t off_vlan_tci = 42;   ///< u16
inline constexpr std::size_t off_rss = 44;        ///< u32, hash.rss
inline constexpr std::size_t off_buf_len = 54;    ///< u16
inline constexpr std::size_t off_tx_offload = 72; ///< u64, the l2_len.. bit-fields' word

// ---- tx_offload bit positions (RTE_MBUF_*_OFS, little-endian) -----------------------------
inline constexpr unsigned l2_len_ofs = 0, l2_len_bits = 7;
inline constexpr unsigned l3_len_ofs = 7, l3_len_bits = 9;
inline constexpr unsigned l4_len_ofs = 16, l4_len_bits = 8;
inline constexpr unsigned tso_segsz_ofs = 24, tso_segsz_bits = 16;

// ---- ol_flags bits (RTE_MBUF_F_*) ---------------------------------------------------------
inline constexpr std::uint64_t f_rx_vlan = 1ull << 0;
inline constexpr std::uint64_t f_rx_rss_hash = 1ull << 1;
inline constexpr std::uint64_t f_rx_l4_cksum_bad = 1ull << 3;
inline constexpr std::uint64_t f_rx_ip_cksum_bad = 1ull << 4;
inline constexpr std::uint64_t f_rx_vlan_stripped = 1ull << 6;
inline constexpr std::uint64_t f_rx_ip_cksum_good = 1ull << 7;
inline constexpr std::uint64_t f_rx_l4_cksum_good = 1ull << 8;
inline constexpr std::uint64_t f_rx_ip_cksum_mask = f_rx_ip_cksum_bad | f_rx_ip_cksum_good;
inline constexpr std::uint64_t f_rx_l4_cksum_mask = f_rx_l4_cksum_bad | f_rx_l4_cksum_good;
inline constexpr std::uint64_t f_rx_lro = 1ull << 16;
inline constexpr std::uint64_t f_tx_tcp_seg = 1ull << 50;
inline constexpr std::uint64_t f_tx_l4_no_cksum = 0;
inline constexpr std::uint64_t f_tx_tcp_cksum = 1ull << 52;
inline constexpr std::uint64_t f_tx_l4_mask = 3ull << 52;
inline constexpr std::uint64_t f_tx_ip_cksum = 1ull << 54;
inline constexpr std::uint64_t f_tx_vlan = 1ull << 57;

namespace detail {
template <class T>
[[nodiscard]] inline T& field(std::byte* m, std::size_t off) noexcept {
    return *reinterpret_cast<T*>(m + off); // the field's own type at its own offset
}
[[nodiscard]] constexpr std::uint64_t bits(std::uint64_t w, unsigned ofs, unsigned n) noexcept {
    return (w >> ofs) & ((std::uint64_t{1} << n) - 1);
}
[[nodiscard]] constexpr std::uint64_t mask(unsigned ofs, unsigned n) noexcept {
    return ((std::uint64_t{1} << n) - 1) << ofs;
}
} // namespace detail

/// ol_flags, vlan_tci, hash.rss, tso_segsz and the header lengths of the mbuf at `m`, as npa
/// metadata. L3 and L4 checksum verdicts folded as npa::csum_state documents: any bad wins.
[[nodiscard]] inline offload_info get_offload(std::byte* m) noexcept {
    using detail::field;
    offload_info o;
    const std::uint64_t f = field<std::uint64_t>(m, off_ol_flags);
    if (f & f_tx_ip_cksum)
        o.flags |= ol::tx_ip_csum;
    if ((f & f_tx_l4_mask) != f_tx_l4_no_cksum)
        o.flags |= ol::tx_l4_csum;
    if (f & f_tx_tcp_seg)
        o.flags |= ol::tx_tso;
    if (f & f_tx_vlan)
        o.flags |= ol::tx_vlan;
    if (f & f_rx_vlan_stripped)
        o.flags |= ol::rx_vlan;
    if (f & f_rx_rss_hash) {
        o.flags |= ol::rx_rss;
        o.rss_hash = field<std::uint32_t>(m, off_rss);
    }
    if (f & f_rx_lro)
        o.flags |= ol::rx_lro;
    if (f & (f_tx_vlan | f_rx_vlan_stripped))
        o.vlan_tci = field<std::uint16_t>(m, off_vlan_tci);
    const std::uint64_t t = field<std::uint64_t>(m, off_tx_offload);
    o.tso_mss = static_cast<std::uint16_t>(detail::bits(t, tso_segsz_ofs, tso_segsz_bits));
    o.l2_len = static_cast<std::uint8_t>(detail::bits(t, l2_len_ofs, l2_len_bits));
    o.l3_len = static_cast<std::uint8_t>(detail::bits(t, l3_len_ofs, l3_len_bits));
    o.l4_len = static_cast<std::uint8_t>(detail::bits(t, l4_len_ofs, l4_len_bits));
    const std::uint64_t ip = f & f_rx_ip_cksum_mask;
    const std::uint64_t l4 = f & f_rx_l4_cksum_mask;
    if (ip == f_rx_ip_cksum_bad || l4 == f_rx_l4_cksum_bad) {
        o.csum = csum_state::bad;
    } else if (ip == f_rx_ip_cksum_good || l4 == f_rx_l4_cksum_good) {
        o.csum = csum_state::good;
    }
    return o;
}

/// The reverse mapping. Bits npa does not describe (RTE_MBUF_F_TX_IPV4, packet type, the
/// outer header lengths ...) are kept. tx_l4_csum keeps the L4 type already set in ol_flags
/// and means TCP when none is set, since npa does not carry the L4 protocol.
inline void set_offload(std::byte* m, const offload_info& o) noexcept {
    using detail::field;
    std::uint64_t f = field<std::uint64_t>(m, off_ol_flags);
    const std::uint64_t l4_type = f & f_tx_l4_mask;
    f &= ~(f_tx_ip_cksum | f_tx_l4_mask | f_tx_tcp_seg | f_tx_vlan | f_rx_vlan |
           f_rx_vlan_stripped | f_rx_rss_hash | f_rx_lro | f_rx_ip_cksum_mask | f_rx_l4_cksum_mask);
    if (o.flags & ol::tx_ip_csum)
        f |= f_tx_ip_cksum;
    if (o.flags & ol::tx_l4_csum)
        f |= l4_type != f_tx_l4_no_cksum ? l4_type : f_tx_tcp_cksum;
    if (o.flags & ol::tx_tso)
        f |= f_tx_tcp_seg;
    if (o.flags & ol::tx_vlan)
        f |= f_tx_vlan;
    if (o.flags & ol::rx_vlan)
        f |= f_rx_vlan | f_rx_vlan_stripped;
    if (o.flags & ol::rx_rss)
        f |= f_rx_rss_hash;
    if (o.flags & ol::rx_lro)
        f |= f_rx_lro;
    if (o.csum == csum_state::good)
        f |= f_rx_ip_cksum_good | f_rx_l4_cksum_good;
    if (o.csum == csum_state::bad)
        f |= f_rx_ip_cksum_bad | f_rx_l4_cksum_bad;
    field<std::uint64_t>(m, off_ol_flags) = f;
    field<std::uint16_t>(m, off_vlan_tci) = o.vlan_tci;
    field<std::uint32_t>(m, off_rss) = o.rss_hash;
    // The header lengths are narrower than npa's bytes (l2_len has 7 bits): truncated as the
    // bit-fields would truncate them.
    constexpr std::uint64_t ours =
        detail::mask(l2_len_ofs, l2_len_bits) | detail::mask(l3_len_ofs, l3_len_bits) |
        detail::mask(l4_len_ofs, l4_len_bits) | detail::mask(tso_segsz_ofs, tso_segsz_bits);
    std::uint64_t t = field<std::uint64_t>(m, off_tx_offload) & ~ours;
    t |= (std::uint64_t{o.l2_len} << l2_len_ofs) & detail::mask(l2_len_ofs, l2_len_bits);
    t |= (std::uint64_t{o.l3_len} << l3_len_ofs) & detail::mask(l3_len_ofs, l3_len_bits);
    t |= (std::uint64_t{o.l4_len} << l4_len_ofs) & detail::mask(l4_len_ofs, l4_len_bits);
    t |= std::uint64_t{o.tso_mss} << tso_segsz_ofs;
    field<std::uint64_t>(m, off_tx_offload) = t;
}

/// The npa::buffer handle an rte_mbuf-layout image moves: the rte_mbuf* itself (so a burst
/// is the host's array of rte_mbuf*, untranslated). Single-segment mbufs, as
/// npa::dpdk::mbuf_ref: length() is the first segment's.
class mbuf_view {
public:
    static constexpr buffer_layout image_buffer_layout = buffer_layout::rte_mbuf;

    constexpr mbuf_view() noexcept = default;
    constexpr explicit mbuf_view(void* m) noexcept : m_(static_cast<std::byte*>(m)) {}

    [[nodiscard]] std::byte* data() const noexcept {
        return f<std::byte*>(off_buf_addr) + f<std::uint16_t>(off_data_off);
    }
    /// rte_pktmbuf_iova: buf_iova + data_off.
    [[nodiscard]] iova_t iova() const noexcept {
        return f<std::uint64_t>(off_buf_iova) + f<std::uint16_t>(off_data_off);
    }
    [[nodiscard]] std::uint32_t length() const noexcept { return f<std::uint16_t>(off_data_len); }
    /// The segment and the packet length together (single segment).
    void set_length(std::uint32_t len) const noexcept {
        f<std::uint16_t>(off_data_len) = static_cast<std::uint16_t>(len);
        f<std::uint32_t>(off_pkt_len) = len;
    }
    [[nodiscard]] std::uint32_t capacity() const noexcept {
        return std::uint32_t{f<std::uint16_t>(off_buf_len)} - f<std::uint16_t>(off_data_off);
    }
    [[nodiscard]] std::uint32_t headroom() const noexcept { return f<std::uint16_t>(off_data_off); }
    [[nodiscard]] offload_info offload() const noexcept { return get_offload(m_); }
    void set_offload(const offload_info& o) const noexcept { mbuf::set_offload(m_, o); }

    [[nodiscard]] void* get() const noexcept { return m_; }
    constexpr explicit operator bool() const noexcept { return m_ != nullptr; }
    friend constexpr bool operator==(mbuf_view, mbuf_view) noexcept = default;

private:
    template <class T>
    [[nodiscard]] T& f(std::size_t off) const noexcept {
        return detail::field<T>(m_, off);
    }
    std::byte* m_ = nullptr;
};
static_assert(sizeof(mbuf_view) == 8);

} // namespace npa::image::mbuf
