// npa/linux/checksum.hpp: TCP and UDP checksums finished or checked in software.
//
// With TUN_F_CSUM on, the stack hands the TAP frames whose TCP/UDP checksum is left for the
// device (VIRTIO_NET_HDR_F_NEEDS_CSUM): the checksum field holds the pseudo-header sum and
// the rest is the device's job (virtio 1.2, section 5.1.6.2). The same state arrives from
// the other side of a veth pair, whose peer stack offloads to a device that does not
// exist (CHECKSUM_PARTIAL, no wire). Neither an AF_XDP socket nor a TAP write without a
// header finishes such a frame, so the Linux plugins do it here, as the kernel's own
// skb_checksum_help() does: one's-complement sum (RFC 1071) from the L4 header to the end
// of the frame, the pseudo-header sum already in the field, complement stored.
//
// Every offset is checked against the frame length; a frame the helpers cannot parse is
// left untouched (and reported so).
#pragma once

#include <npa/buffer/packet_buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace npa::lnx {

namespace csum_detail {

inline std::uint16_t load16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                      std::to_integer<unsigned>(p[1]));
}
inline void store16(std::byte* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v & 0xff);
}

} // namespace csum_detail

/// One's-complement sum of `n` bytes (big-endian 16-bit words, an odd byte padded), added
/// to `sum`. Not folded.
[[nodiscard]] inline std::uint64_t csum_add(std::uint64_t sum, const std::byte* p,
                                            std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 1 < n; i += 2) {
        sum += csum_detail::load16(p + i);
    }
    if (i < n) {
        sum += std::uint64_t{std::to_integer<unsigned>(p[i])} << 8;
    }
    return sum;
}

[[nodiscard]] inline std::uint16_t csum_fold(std::uint64_t sum) noexcept {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(sum);
}

/// Where a frame's TCP or UDP header is, and its pseudo-header sum.
struct l4_location {
    std::uint32_t start = 0;       ///< offset of the L4 header in the frame
    std::uint32_t end = 0;         ///< end of the L4 payload (the IP length; padding after)
    std::uint32_t csum_offset = 0; ///< of the checksum field from `start` (16 TCP, 6 UDP)
    bool udp = false;
    std::uint64_t pseudo = 0; ///< pseudo-header sum (RFC 793 / RFC 8200 8.1), unfolded
};

/// Finds the TCP or UDP header of an Ethernet frame: at most one 802.1Q/802.1ad tag, IPv4
/// without fragmentation, or IPv6 with TCP/UDP as the first next header. False for
/// anything else (ARP, ICMP, fragments, extension headers, a truncated frame).
[[nodiscard]] inline bool locate_l4(const std::byte* f, std::uint32_t len,
                                    l4_location& out) noexcept {
    using csum_detail::load16;
    if (len < 14) {
        return false;
    }
    std::uint32_t l2 = 14;
    std::uint16_t type = load16(f + 12);
    if (type == 0x8100 || type == 0x88a8) {
        if (len < 18) {
            return false;
        }
        type = load16(f + 16);
        l2 = 18;
    }
    std::uint8_t proto = 0;
    std::uint32_t l3 = 0, l4_bytes = 0;
    std::uint64_t pseudo = 0;
    if (type == 0x0800) {
        if (len < l2 + 20) {
            return false;
        }
        const std::byte* ip = f + l2;
        l3 = (std::to_integer<std::uint32_t>(ip[0]) & 0xf) * 4;
        const std::uint32_t total = load16(ip + 2);
        if ((std::to_integer<unsigned>(ip[0]) >> 4) != 4 || l3 < 20 || total < l3 ||
            l2 + total > len || (load16(ip + 6) & 0x3fff) != 0) {
            return false; // not IPv4, bad lengths, or a fragment (MF or an offset)
        }
        proto = std::to_integer<std::uint8_t>(ip[9]);
        l4_bytes = total - l3;
        pseudo = csum_add(0, ip + 12, 8); // source and destination addresses
    } else if (type == 0x86dd) {
        if (len < l2 + 40) {
            return false;
        }
        const std::byte* ip = f + l2;
        l3 = 40;
        l4_bytes = load16(ip + 4);
        if ((std::to_integer<unsigned>(ip[0]) >> 4) != 6 || l2 + l3 + l4_bytes > len) {
            return false;
        }
        proto = std::to_integer<std::uint8_t>(ip[6]);
        pseudo = csum_add(0, ip + 8, 32);
    } else {
        return false;
    }
    if (proto == 6) {
        out.csum_offset = 16;
        out.udp = false;
        if (l4_bytes < 20) {
            return false;
        }
    } else if (proto == 17) {
        out.csum_offset = 6;
        out.udp = true;
        if (l4_bytes < 8) {
            return false;
        }
    } else {
        return false;
    }
    out.start = l2 + l3;
    out.end = l2 + l3 + l4_bytes;
    out.pseudo = pseudo + proto + l4_bytes;
    return true;
}

/// Finishes a checksum left for the device: the field at start + csum_offset holds the
/// pseudo-header sum, the result covers start..len (pass the L4 end, not a padded length). False (frame untouched) if the field
/// lies outside the frame.
inline bool finish_l4_csum(std::byte* f, std::uint32_t len, std::uint32_t start,
                           std::uint32_t csum_offset, bool udp) noexcept {
    if (start >= len || csum_offset + 2 > len - start) {
        return false;
    }
    std::uint16_t c = static_cast<std::uint16_t>(~csum_fold(csum_add(0, f + start, len - start)));
    if (udp && c == 0) {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones (zero means "none")
    }
    csum_detail::store16(f + start + csum_offset, c);
    return true;
}

/// The checksum a transmitted frame asked for (offload_info from the TAP's virtio-net
/// header: ol::tx_l4_csum, l2_len + l3_len = checksum start, l4_len 8 for UDP). A frame
/// without the request is left as it is. False if the request does not fit the frame.
inline bool finish_tx_csum(std::byte* f, std::uint32_t len, const offload_info& o) noexcept {
    if ((o.flags & ol::tx_l4_csum) == 0) {
        return true;
    }
    const bool udp = o.l4_len == 8;
    return finish_l4_csum(f, len, std::uint32_t{o.l2_len} + o.l3_len, udp ? 6u : 16u, udp);
}

/// A received frame whose checksum the kernel reported as left for offload
/// (TP_STATUS_CSUMNOTREADY): finished in place. Good if done, unknown if not parseable.
[[nodiscard]] inline csum_state finish_rx_partial(std::byte* f, std::uint32_t len) noexcept {
    l4_location l;
    if (!locate_l4(f, len, l)) {
        return csum_state::unknown;
    }
    return finish_l4_csum(f, l.end, l.start, l.csum_offset, l.udp) ? csum_state::good
                                                                   : csum_state::unknown;
}

/// A received frame with no word from the kernel on its checksum (AF_XDP): checked, and
/// when the field holds exactly the pseudo-header sum, which is what a stack on the far
/// side of a veth pair leaves for offload, finished in place. Returns good for a correct
/// (or finished) checksum, bad for a wrong one, unknown for a frame that is not TCP/UDP
/// or a UDP datagram without a checksum. A corrupted frame whose field happens to equal
/// the pseudo-header sum (1 in 65536 of random damage) would be finished too: the price
/// of a path that reports nothing.
[[nodiscard]] inline csum_state check_rx_csum(std::byte* f, std::uint32_t len) noexcept {
    l4_location l;
    if (!locate_l4(f, len, l)) {
        return csum_state::unknown;
    }
    std::byte* field = f + l.start + l.csum_offset;
    const std::uint16_t stored = csum_detail::load16(field);
    if (l.udp && stored == 0) {
        return csum_state::unknown; // IPv4 UDP without a checksum
    }
    const std::uint64_t data = csum_add(0, f + l.start, l.end - l.start);
    if (csum_fold(l.pseudo + data) == 0xffff) {
        return csum_state::good;
    }
    if (stored == csum_fold(l.pseudo)) {
        // Partial: finished as a transmitter finishes it.
        return finish_l4_csum(f, l.end, l.start, l.csum_offset, l.udp) ? csum_state::good
                                                                       : csum_state::unknown;
    }
    return csum_state::bad;
}

} // namespace npa::lnx
