// npa/offload.hpp: per-packet offload vocabulary: the request and result bits, the receive
// checksum verdict and the 16-byte offload_info every buffer carries. Vocabulary only:
// the buffer concept (concepts/buffer.hpp) and the packet buffer (buffer/packet_buffer.hpp)
// both speak it; neither owns it.
#pragma once

#include <cstdint>

namespace npa {

/// Offload requests (TX) and results (RX), as bits of offload_info::flags.
namespace ol {
inline constexpr std::uint32_t tx_ip_csum = 1u << 0;   ///< device computes the IPv4 header checksum
inline constexpr std::uint32_t tx_l4_csum = 1u << 1;   ///< device computes the TCP/UDP checksum
inline constexpr std::uint32_t tx_tso = 1u << 2;       ///< segment to tso_mss
inline constexpr std::uint32_t tx_vlan = 1u << 3;      ///< insert vlan_tci
inline constexpr std::uint32_t rx_vlan = 1u << 8;      ///< vlan_tci holds a stripped tag
inline constexpr std::uint32_t rx_rss = 1u << 9;       ///< rss_hash is valid
inline constexpr std::uint32_t rx_lro = 1u << 10;      ///< coalesced by the device
} // namespace ol

/// Where a TX checksum offload finds the L4 checksum: bytes from the start of the L4 header
/// to its checksum field, TCP at 16 and UDP at 6 (RFC 793, RFC 768); an l4_len of 8 is UDP.
namespace l4 {
inline constexpr std::uint16_t tcp_csum_off = 16, udp_csum_off = 6, udp_hdr_len = 8;
/// The checksum field's offset in an L4 header of l4_len bytes.
[[nodiscard]] constexpr std::uint16_t csum_off(std::uint8_t l4_len) noexcept {
    return l4_len == udp_hdr_len ? udp_csum_off : tcp_csum_off;
}
} // namespace l4

/// Receive checksum verdict (one per packet; L3 and L4 folded together as drivers report).
enum class csum_state : std::uint8_t {
    unknown = 0,  ///< the device did not check
    good = 1,     ///< every checksum the device checked was correct
    bad = 2,      ///< at least one checksum was wrong
};

/// Per-packet offload metadata: 16 bytes, copied by value.
struct offload_info {
    std::uint32_t flags = 0;
    std::uint32_t rss_hash = 0;
    std::uint16_t vlan_tci = 0;
    std::uint16_t tso_mss = 0;
    std::uint8_t l2_len = 0;   ///< header lengths for checksum/TSO offload
    std::uint8_t l3_len = 0;
    std::uint8_t l4_len = 0;
    csum_state csum = csum_state::unknown;
};
static_assert(sizeof(offload_info) == 16);

} // namespace npa
