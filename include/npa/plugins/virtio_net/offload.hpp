// npa/plugins/virtio_net/offload.hpp: npa's per-packet offload metadata (npa/offload.hpp)
// to and from virtio-net's per-packet header (virtio 1.2 section 5.1.6), for the plugin's
// data path and for anything else that writes or reads the header (a device model, a test).
//
//   TX  a checksum request becomes NEEDS_CSUM with csum_start at the L4 header and
//       csum_offset at its checksum field (5.1.6.2); a TSO request also sets gso_type by
//       the EtherType in front of the L3 header (TCPV4 or TCPV6), gso_size and hdr_len.
//       Nothing is requested without a complete L2 (14 bytes) and an L3 length.
//   RX  with GUEST_CSUM negotiated, DATA_VALID is a checked checksum and NEEDS_CSUM a
//       partial one (the pseudo-header sum in place, 5.1.6.3), which is completed here over
//       csum_start..end, so the stack never sees a partial checksum.
// Every offset the device wrote is checked against the frame before it is used.
#pragma once

#include <npa/offload.hpp>
#include <npa/plugins/virtio_net/defs.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::virtio_net {

/// The header for a frame at `frame` whose offload request is `ol`: `tso` when the frame
/// is to be segmented (TSO negotiated and asked for), `l4_csum` when its L4 checksum is
/// left to the device (CSUM negotiated and asked for). num_buffers is 0 on TX (5.1.6.2).
[[nodiscard]] inline net_hdr_v1 tx_hdr(const std::byte* frame, const offload_info& ol, bool tso,
                                       bool l4_csum) noexcept {
    net_hdr_v1 h{}; // all zero: no offload
    if (ol.l2_len < 14 || ol.l3_len == 0) {
        return h;
    }
    const auto l23 = static_cast<std::uint16_t>(ol.l2_len + ol.l3_len);
    if (tso || l4_csum) {
        h.flags = HDR_F_NEEDS_CSUM;
        h.csum_start = l23;
        h.csum_offset = tso ? l4::tcp_csum_off : l4::csum_off(ol.l4_len);
    }
    if (tso) {
        // IPv4 or IPv6 by the EtherType in front of the L3 header (after any VLAN tag).
        const std::byte* et = frame + ol.l2_len - 2;
        const bool v6 =
            std::to_integer<unsigned>(et[0]) == 0x86 && std::to_integer<unsigned>(et[1]) == 0xDD;
        h.gso_type = v6 ? GSO_TCPV6 : GSO_TCPV4;
        h.gso_size = ol.tso_mss;
        h.hdr_len = static_cast<std::uint16_t>(l23 + ol.l4_len);
    }
    return h;
}

/// The checksum verdict of a received frame of `len` bytes at `frame` whose header is `h`,
/// into `out` (unchanged when the device said nothing). A partial checksum is completed in
/// the frame. False, and the frame untouched, when the header points outside the frame.
/// `guest_csum`: GUEST_CSUM negotiated (without it the header's checksum flags mean nothing).
[[nodiscard]] inline bool rx_csum(const net_hdr_v1& h, std::byte* frame, std::uint32_t len,
                                  bool guest_csum, csum_state& out) noexcept {
    if (!guest_csum) {
        return true;
    }
    if ((h.flags & HDR_F_NEEDS_CSUM) != 0) {
        const std::uint32_t start = h.csum_start, at = start + h.csum_offset;
        if (at + 2 > len) {
            return false;
        }
        // One's-complement sum of 16-bit big-endian words from csum_start to the end, the
        // pseudo-header sum the device left in the checksum field included (RFC 1071).
        std::uint32_t sum = 0;
        for (std::uint32_t i = start; i < len; i += 2) {
            const std::uint32_t hi = std::to_integer<std::uint32_t>(frame[i]);
            const std::uint32_t lo = i + 1 < len ? std::to_integer<std::uint32_t>(frame[i + 1]) : 0;
            sum += hi << 8 | lo;
        }
        while (sum >> 16 != 0) {
            sum = (sum & 0xFFFFu) + (sum >> 16);
        }
        const auto c = static_cast<std::uint16_t>(~sum);
        frame[at] = static_cast<std::byte>(c >> 8);
        frame[at + 1] = static_cast<std::byte>(c & 0xFF);
        out = csum_state::good;
    } else if ((h.flags & HDR_F_DATA_VALID) != 0) {
        out = csum_state::good;
    }
    return true;
}

} // namespace npa::virtio_net
