// npa/linux/tap_gro.hpp: received TCP segments coalesced on their way into the TAP
// (software GRO in the TAP writer).
//
// Written one by one, every MTU-sized segment a plugin received costs a write system call
// and enters the stack as its own skb. Within one burst, consecutive in-order segments of
// one TCP flow are written instead as one frame with a virtio-net GSO header, as a guest's
// TSO reaches a TAP from QEMU: the TAP builds one skb of up to 64 KB (tun_get_user,
// virtio_net_hdr_to_skb in include/linux/virtio_net.h), which the local stack takes as it
// takes a GRO'd frame and a forwarding stack cuts again with its GSO.
//
// The merged frame is the first segment's headers (IP length, IPv4 header checksum and PSH
// fixed), then every segment's payload as an iovec into the shell's buffers (no copy). Its
// header says NEEDS_CSUM with the TCP checksum field holding the pseudo-header sum for the
// whole length, which is what the kernel expects of a CHECKSUM_PARTIAL frame (tcp_gso_segment
// adjusts that sum per segment). Since the stack does not check a CHECKSUM_PARTIAL frame
// again, only segments whose checksum was verified (csum_state::good) are merged.
//
// What merges is what Linux's own GRO merges (tcp_gro_receive, inet_gro_receive,
// ipv6_gro_receive): the same addresses, ports, TOS / traffic class, TTL / hop limit and
// flow label, contiguous sequence numbers, the same ACK number, window, header length and
// options bytes; flags ACK only, PSH allowed on the last segment; every segment but the
// last of the same payload size (gso_size), the last not larger; IPv4 without options or
// fragmentation, its id one more than the previous one's unless DF is set (RFC 6864: an
// atomic datagram's id means nothing); IPv6 with TCP as the first next header; no VLAN tag.
// Anything else is written as it came, alone.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/virtio_net_defs.hpp>

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::lnx {

// ---- tuning -----------------------------------------------------------------------------
/// Largest IP datagram a merged frame carries: what the IPv4 total length (and the IPv6
/// payload length) field can say.
inline constexpr std::uint32_t gro_max_ip_len = 65535;
/// Segments merged into one frame at most (its iovecs: one each, plus two headers).
inline constexpr std::uint32_t gro_max_segments = 64;

/// What the TAP writer did, for `npactl status`.
struct tap_gro_stats {
    std::uint64_t writes = 0;          ///< write calls to the TAP
    std::uint64_t merged_writes = 0;   ///< of them, frames built from two or more segments
    std::uint64_t merged_segments = 0; ///< segments that went up inside a merged frame
    std::uint64_t refused = 0;         ///< merged frames the TAP refused (then sent one by one)
    std::uint64_t whole_writes = 0;    ///< large frames a plugin received whole, written as they came
    std::uint64_t whole_segments = 0;  ///< the segments those stand for
    std::uint64_t whole_refused = 0;   ///< of them, refused by the TAP (then cut and sent again)
};

namespace gro_detail {

using csum_detail::load16;
using csum_detail::store16;

inline constexpr unsigned tcp_ack = 0x10, tcp_psh = 0x08;

inline std::uint32_t load32(const std::byte* p) noexcept {
    return std::uint32_t{load16(p)} << 16 | load16(p + 2);
}

/// A segment that may merge: where its parts are.
struct segment {
    std::uint32_t l4 = 0;      ///< TCP header offset
    std::uint32_t payload = 0; ///< payload offset (l4 + the TCP header's length)
    std::uint32_t end = 0;     ///< end of the IP datagram (padding after it is not payload)
    bool v6 = false;
    [[nodiscard]] std::uint32_t size() const noexcept { return end - payload; }
};

/// True when the frame is a TCP segment that may merge (see the file comment), with its
/// parts in `s`.
inline bool parse(const std::byte* f, std::uint32_t len, const offload_info& o,
                  segment& s) noexcept {
    constexpr std::uint32_t l3 = 14;
    if (o.csum != csum_state::good || len < l3 + 40) {
        return false;
    }
    const std::byte* ip = f + l3;
    const std::uint16_t type = load16(f + 12);
    if (type == 0x0800) {
        const std::uint32_t total = load16(ip + 2);
        if (std::to_integer<unsigned>(ip[0]) != 0x45 || std::to_integer<unsigned>(ip[9]) != 6 ||
            (load16(ip + 6) & 0x3fff) != 0 || total < 40 || l3 + total > len) {
            return false; // options, not TCP, a fragment, or bad lengths
        }
        s.v6 = false;
        s.l4 = l3 + 20;
        s.end = l3 + total;
    } else if (type == 0x86dd) {
        const std::uint32_t plen = load16(ip + 4);
        if ((std::to_integer<unsigned>(ip[0]) >> 4) != 6 || std::to_integer<unsigned>(ip[6]) != 6 ||
            plen < 20 || l3 + 40 + plen > len) {
            return false; // not TCP right after the fixed header, or bad lengths
        }
        s.v6 = true;
        s.l4 = l3 + 40;
        s.end = l3 + 40 + plen;
    } else {
        return false;
    }
    const std::byte* th = f + s.l4;
    const std::uint32_t doff = (std::to_integer<std::uint32_t>(th[12]) >> 4) * 4;
    s.payload = s.l4 + doff;
    const unsigned flags = std::to_integer<unsigned>(th[13]);
    return doff >= 20 && s.payload < s.end && (flags & ~tcp_psh) == tcp_ack &&
           (std::to_integer<unsigned>(th[12]) & 0x0f) == 0;
}

/// True when segment `f` continues the run that starts with `first` and ends (so far)
/// with `prev`, all three parsed.
inline bool continues(const std::byte* first, const segment& fs, const std::byte* prev,
                      const segment& ps, const std::byte* f, const segment& s) noexcept {
    if (s.v6 != fs.v6 || s.payload != fs.payload || ps.size() != fs.size() ||
        s.size() > fs.size()) {
        return false; // another header length, or the run already ended with a short one
    }
    if ((std::to_integer<unsigned>(prev[ps.l4 + 13]) & tcp_psh) != 0) {
        return false; // PSH ends a run
    }
    // Ethernet addresses and type; then the IP fields that must be equal.
    if (std::memcmp(f, first, 14) != 0) {
        return false;
    }
    const std::byte* ip = f + 14;
    const std::byte* ip0 = first + 14;
    if (s.v6) {
        // Version, traffic class, flow label; next header, hop limit; addresses.
        if (std::memcmp(ip, ip0, 4) != 0 || std::memcmp(ip + 6, ip0 + 6, 34) != 0) {
            return false;
        }
    } else {
        // Version/IHL and TOS; flags (DF); TTL and protocol; addresses.
        if (std::memcmp(ip, ip0, 2) != 0 || std::memcmp(ip + 6, ip0 + 6, 4) != 0 ||
            std::memcmp(ip + 12, ip0 + 12, 8) != 0) {
            return false;
        }
        const bool df = (load16(ip + 6) & 0x4000) != 0;
        if (!df && load16(ip + 4) != static_cast<std::uint16_t>(load16(prev + 14 + 4) + 1)) {
            return false;
        }
    }
    // TCP: ports; the next sequence number; ACK number, header length, flags (PSH aside),
    // window; options.
    const std::byte* th = f + s.l4;
    const std::byte* th0 = first + fs.l4;
    if (std::memcmp(th, th0, 4) != 0 || load32(th + 4) != load32(prev + ps.l4 + 4) + ps.size() ||
        std::memcmp(th + 8, th0 + 8, 5) != 0 || std::memcmp(th + 14, th0 + 14, 2) != 0 ||
        std::memcmp(th + 20, th0 + 20, s.payload - s.l4 - 20) != 0) {
        return false;
    }
    return true;
}

} // namespace gro_detail

/// One merged frame, ready for writev: the virtio-net header, the first segment's headers
/// (fixed for the whole frame), then each segment's payload in the shell's buffers.
struct gro_frame {
    virtio_net_hdr vnet{};
    std::array<std::byte, 14 + 40 + 60> hdr{}; ///< Ethernet, IP (no options / fixed), TCP
    std::array<iovec, gro_max_segments + 2> iov{};
    std::uint32_t iovcnt = 0;
    std::uint32_t segments = 0;
};

/// Finds the run of segments that merge starting at frames[i] and, when it holds two or
/// more, builds their frame in `out`. Returns the run's length (1: frames[i] goes alone).
template <class Buffer>
std::uint32_t gro_build(std::span<const Buffer> frames, std::size_t i, gro_frame& out) noexcept {
    using namespace gro_detail;
    const std::byte* f0 = frames[i].data();
    segment s0;
    if (!parse(f0, frames[i].length(), frames[i].offload(), s0)) {
        return 1;
    }
    // 1. The run: as long as the next frame continues it and the datagram stays in range.
    std::uint32_t n = 1;
    std::uint32_t ip_len = s0.end - 14;
    segment prev_s = s0;
    const std::byte* prev = f0;
    while (i + n < frames.size() && n < gro_max_segments) {
        const Buffer& b = frames[i + n];
        segment s;
        if (!parse(b.data(), b.length(), b.offload(), s) ||
            !continues(f0, s0, prev, prev_s, b.data(), s) || ip_len + s.size() > gro_max_ip_len) {
            break;
        }
        ip_len += s.size();
        prev = b.data();
        prev_s = s;
        ++n;
    }
    if (n == 1) {
        return 1;
    }
    // 2. The headers: the first segment's, with the whole frame's lengths, PSH if the last
    //    segment had it, and the TCP checksum field holding the pseudo-header sum
    //    (RFC 793 / RFC 8200 section 8.1) over the whole TCP length (CHECKSUM_PARTIAL).
    std::memcpy(out.hdr.data(), f0, s0.payload);
    std::byte* ip = out.hdr.data() + 14;
    std::byte* th = out.hdr.data() + s0.l4;
    const std::uint32_t tcp_len = ip_len - (s0.l4 - 14);
    std::uint64_t pseudo = 0;
    if (s0.v6) {
        store16(ip + 4, static_cast<std::uint16_t>(tcp_len));
        pseudo = csum_add(0, ip + 8, 32);
    } else {
        store16(ip + 2, static_cast<std::uint16_t>(ip_len));
        store16(ip + 10, 0);
        store16(ip + 10, static_cast<std::uint16_t>(~csum_fold(csum_add(0, ip, 20))));
        pseudo = csum_add(0, ip + 12, 8);
    }
    th[13] |= prev[prev_s.l4 + 13] & std::byte{tcp_psh};
    store16(th + 16, csum_fold(pseudo + 6 + tcp_len));
    // 3. The virtio-net header (virtio 1.2 section 5.1.6.2.1: NEEDS_CSUM with the checksum
    //    start and offset, GSO type, segment size, header length) and the iovecs.
    out.vnet = virtio_net_hdr{};
    out.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    out.vnet.gso_type = s0.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    out.vnet.hdr_len = static_cast<std::uint16_t>(s0.payload);
    out.vnet.gso_size = static_cast<std::uint16_t>(s0.size());
    out.vnet.csum_start = static_cast<std::uint16_t>(s0.l4);
    out.vnet.csum_offset = 16;
    out.iov[0] = {&out.vnet, sizeof out.vnet};
    out.iov[1] = {out.hdr.data(), s0.payload};
    out.iovcnt = 2;
    for (std::uint32_t k = 0; k < n; ++k) {
        const Buffer& b = frames[i + k];
        segment s;
        (void)parse(b.data(), b.length(), b.offload(), s);
        out.iov[out.iovcnt++] = {b.data() + s.payload, s.size()};
    }
    out.segments = n;
    return n;
}

/// The virtio-net header of a frame written alone: a checksum the plugin verified is
/// passed on as DATA_VALID so the stack does not check it again.
[[nodiscard]] inline virtio_net_hdr vnet_from_offload(const offload_info& o) noexcept {
    virtio_net_hdr h{};
    if (o.csum == csum_state::good) {
        h.flags = VIRTIO_NET_HDR_F_DATA_VALID;
    }
    h.gso_type = VIRTIO_NET_HDR_GSO_NONE;
    return h;
}

/// Writes a burst of received frames into the TAP file descriptor `fd` (opened with
/// IFF_VNET_HDR), merging runs of TCP segments. Returns the frames the TAP took; the rest
/// were refused (the caller counts them as dropped).
template <class Buffer>
std::uint32_t tap_write_burst(int fd, std::span<const Buffer> frames, tap_gro_stats& st) noexcept {
    std::uint32_t taken = 0;
    const auto write_one = [&](const Buffer& b) {
        virtio_net_hdr h = vnet_from_offload(b.offload());
        const iovec iov[2] = {{&h, sizeof h}, {b.data(), b.length()}};
        ++st.writes;
        taken += ::writev(fd, iov, 2) > 0 ? 1u : 0u;
    };
    gro_frame g;
    for (std::size_t i = 0; i < frames.size();) {
        const std::uint32_t n = gro_build(frames, i, g);
        if (n == 1) {
            write_one(frames[i]);
        } else {
            ++st.writes;
            if (::writev(fd, g.iov.data(), static_cast<int>(g.iovcnt)) > 0) {
                ++st.merged_writes;
                st.merged_segments += n;
                taken += n;
            } else {
                // A frame the TAP would not take (EINVAL from virtio_net_hdr_to_skb, ENOMEM
                // for 64 KB): its segments go up one by one, as they came.
                ++st.refused;
                for (std::uint32_t k = 0; k < n; ++k) {
                    write_one(frames[i + k]);
                }
            }
        }
        i += n;
    }
    return taken;
}

} // namespace npa::lnx
