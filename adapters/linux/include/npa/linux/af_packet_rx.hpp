// npa/linux/af_packet_rx.hpp: the RX walk over a TPACKET_V3 ring (the AF_PACKET plugin's
// rx_burst, and the fuzz target that drives it without a kernel).
//
// The kernel fills a block with packets and hands it over whole (block_status
// TP_STATUS_USER); the walk copies each packet into a shell buffer, cuts a TCP frame larger
// than a buffer into segments as the kernel's GSO would, and hands the block back. The ring
// memory is shared with the kernel, which writes block headers and frame headers in it:
// every offset, length and count read from it is range-checked against the block before
// use (DESIGN.md section 3, "trust nothing the device writes").
#pragma once

#include <npa/linux/af_packet_socket.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/virtio_net_defs.hpp>
#include <npa/stats.hpp>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::lnx {

/// What the AF_PACKET plugin's rx_whole handed over whole, per queue.
struct packet_rx_whole_counters {
    std::uint64_t frames = 0;   ///< large frames written whole
    std::uint64_t segments = 0; ///< the segments they stand for (gso_size each)
    std::uint64_t refused = 0;  ///< frames the writer refused (then cut into segments)
};

namespace detail {

/// Where the RX walk of one TPACKET_V3 ring stands.
struct packet_rx_cursor {
    std::uint32_t block = 0;          ///< block being read
    std::uint32_t pkt = 0;            ///< packets of it already delivered or dropped
    std::uint32_t off = 0;            ///< offset of the next packet in it
    std::uint32_t seg = 0;            ///< segments of that packet already delivered (a GSO packet)
    std::uint64_t extra_segments = 0; ///< delivered segments beyond each packet's first
    bool vnet = false;                ///< a virtio_net_hdr precedes every frame (PACKET_VNET_HDR)
    /// Whole mode: a TCP frame larger than a buffer that can go to the TAP as it is (with
    /// a GSO header) ends the burst and waits in the ring for packet_rx_take_whole.
    bool whole = false;
    bool whole_pending = false; ///< the packet at `off` waits for packet_rx_take_whole
    bool cut_next = false;      ///< the TAP refused it whole: cut this one packet instead
};


inline tpacket_block_desc* packet_rx_block(std::byte* ring, std::uint32_t block) noexcept {
    return reinterpret_cast<tpacket_block_desc*>(ring + std::size_t{block} * packet_rx_block_size);
}

/// The current block belongs to user space (the kernel has handed it over).
inline bool packet_rx_block_ready(std::byte* ring, const packet_rx_cursor& c) noexcept {
    auto* bd = packet_rx_block(ring, c.block);
    return (std::atomic_ref<std::uint32_t>(bd->hdr.bh1.block_status)
                .load(std::memory_order_acquire) &
            TP_STATUS_USER) != 0;
}

/// Hands the current block back to the kernel and moves to the next one.
inline void packet_rx_release_block(std::byte* ring, packet_rx_cursor& c) noexcept {
    auto* bd = packet_rx_block(ring, c.block);
    std::atomic_ref<std::uint32_t>(bd->hdr.bh1.block_status)
        .store(TP_STATUS_KERNEL, std::memory_order_release);
    c.block = (c.block + 1) % packet_rx_block_count;
    c.pkt = 0;
    c.off = 0;
    c.seg = 0;
}

/// A frame as it was on the wire: the bytes in the ring, with the 802.1Q tag the kernel
/// took out (VLAN acceleration) put back at offset 12.
struct packet_wire_frame {
    const std::byte* src = nullptr;
    std::uint32_t snap = 0; ///< bytes in the ring
    std::array<std::byte, 4> tag{};
    bool tagged = false;

    [[nodiscard]] std::uint32_t length() const noexcept { return snap + (tagged ? 4u : 0u); }
    /// Copies bytes [from, from + n) of the wire frame to dst.
    void copy(std::byte* dst, std::uint32_t from, std::uint32_t n) const noexcept {
        if (!tagged) {
            std::memcpy(dst, src + from, n);
            return;
        }
        while (n != 0) {
            std::uint32_t k = 0;
            if (from < 12) {
                k = std::min(n, 12 - from);
                std::memcpy(dst, src + from, k);
            } else if (from < 16) {
                k = std::min(n, 16 - from);
                std::memcpy(dst, tag.data() + (from - 12), k);
            } else {
                k = n;
                std::memcpy(dst, src + from - 4, k);
            }
            dst += k;
            from += k;
            n -= k;
        }
    }
};

/// Segment `seg` of a TCP frame larger than a buffer (one the peer's TSO or the lower's
/// GRO built), cut at gso_size bytes of payload as the kernel's own GSO cuts it
/// (tcp_gso_segment: sequence numbers advance by the payload, FIN and PSH only on the last
/// segment, CWR only on the first; IPv4 lengths, ids and header checksum redone), with
/// its TCP checksum computed. Returns the segment count (0: the frame cannot be cut into
/// buffers of `cap` bytes: not TCP over IPv4/IPv6 without extension headers, or a
/// header that does not fit) and the segment's length in `seg_len`. With dst null nothing
/// is written: the count alone, for a caller deciding whether it can take the frame.
inline std::uint32_t packet_gso_segment(const packet_wire_frame& f, std::uint16_t gso_size,
                                        std::uint32_t seg, std::byte* dst, std::uint32_t cap,
                                        std::uint32_t& seg_len) noexcept {
    using csum_detail::load16;
    using csum_detail::store16;
    const std::uint32_t len = f.length();
    // The headers, parsed from a copy of the frame's start (at most 18 + 60 + 60 bytes).
    std::array<std::byte, 160> h{};
    f.copy(h.data(), 0, std::min<std::uint32_t>(len, h.size()));
    l4_location l;
    if (gso_size == 0 || len <= h.size() || !locate_l4(h.data(), len, l) || l.udp ||
        l.start + 20 > h.size()) {
        return 0;
    }
    const std::uint32_t doff = (std::to_integer<std::uint32_t>(h[l.start + 12]) >> 4) * 4;
    const std::uint32_t hdr = l.start + doff;
    if (doff < 20 || hdr > h.size() || hdr >= l.end || hdr + gso_size > cap) {
        return 0;
    }
    const std::uint32_t payload = l.end - hdr;
    const std::uint32_t count = (payload + gso_size - 1) / gso_size;
    if (seg >= count) {
        return 0;
    }
    if (dst == nullptr) {
        seg_len = 0;
        return count;
    }
    const std::uint32_t at = seg * gso_size;
    const std::uint32_t n = std::min<std::uint32_t>(gso_size, payload - at);
    std::memcpy(dst, h.data(), hdr);
    f.copy(dst + hdr, hdr + at, n);
    const std::uint32_t l2 =
        (load16(h.data() + 12) == 0x8100 || load16(h.data() + 12) == 0x88a8) ? 18u : 14u;
    std::byte* ip = dst + l2;
    const std::uint32_t l4_bytes = doff + n;
    if ((std::to_integer<unsigned>(ip[0]) >> 4) == 4) {
        const std::uint32_t l3 = l.start - l2;
        store16(ip + 2, static_cast<std::uint16_t>(l3 + l4_bytes));
        store16(ip + 4, static_cast<std::uint16_t>(load16(ip + 4) + seg));
        store16(ip + 10, 0);
        store16(ip + 10, static_cast<std::uint16_t>(~csum_fold(csum_add(0, ip, l3))));
    } else {
        store16(ip + 4, static_cast<std::uint16_t>(l4_bytes));
    }
    std::byte* th = dst + l.start;
    const std::uint32_t seq = (std::uint32_t{load16(th + 4)} << 16 | load16(th + 6)) + at;
    store16(th + 4, static_cast<std::uint16_t>(seq >> 16));
    store16(th + 6, static_cast<std::uint16_t>(seq));
    constexpr unsigned fin = 0x01, psh = 0x08, cwr = 0x80;
    unsigned flags = std::to_integer<unsigned>(th[13]);
    if (seg + 1 != count) {
        flags &= ~(fin | psh);
    }
    if (seg != 0) {
        flags &= ~cwr;
    }
    th[13] = static_cast<std::byte>(flags);
    // The pseudo-header sum for this segment's length, then the checksum over it.
    const std::uint64_t pseudo = l.pseudo - (l.end - l.start) + l4_bytes;
    store16(th + 16, csum_fold(pseudo));
    seg_len = hdr + n;
    (void)finish_l4_csum(dst, seg_len, l.start, 16, false);
    return count;
}

/// The wire frame of the packet whose tpacket3_hdr h sits at `pkt`, its `snap` bytes at
/// `mac` from it (read once and checked against the block by the caller).
inline packet_wire_frame packet_rx_frame(const std::byte* pkt, const tpacket3_hdr* h,
                                         std::uint32_t mac, std::uint32_t snap) noexcept {
    packet_wire_frame f;
    f.src = pkt + mac;
    f.snap = snap;
    f.tagged = (h->tp_status & TP_STATUS_VLAN_VALID) != 0;
    if (f.tagged) {
        const std::uint16_t tpid =
            h->hv1.tp_vlan_tpid != 0 ? h->hv1.tp_vlan_tpid : std::uint16_t{ETH_P_8021Q};
        const std::uint16_t tag[2] = {htons(tpid),
                                      htons(static_cast<std::uint16_t>(h->hv1.tp_vlan_tci))};
        std::memcpy(f.tag.data(), tag, 4);
    }
    return f;
}

/// Moves the cursor past the packet at `off` (whose header says the next one is `next`
/// bytes on); a bad offset drops the rest of the block.
inline void packet_rx_next(packet_rx_cursor& c, std::uint32_t num, std::uint32_t off,
                           std::uint32_t next, queue_stats& stats) noexcept {
    ++c.pkt;
    c.seg = 0;
    if (c.pkt < num) {
        if (next == 0 || next > packet_rx_block_size - off) {
            ++stats.bad_completion;
            stats.rx_dropped += num - c.pkt;
            c.pkt = num;
        } else {
            c.off = off + next;
        }
    }
}

/// A TCP frame larger than a buffer, ready to be written whole to a TAP with
/// IFF_VNET_HDR: the virtio-net header (NEEDS_CSUM at the TCP checksum, the kernel's GSO
/// type and segment size), a copy of its headers (an 802.1Q tag the kernel took out put
/// back; with DATA_VALID the checksum field set to the pseudo-header sum), and the rest in
/// the ring.
struct packet_whole_frame {
    virtio_net_hdr vnet{};
    std::array<std::byte, 160> hdr{};
    std::array<iovec, 3> iov{};
    std::uint32_t segments = 0;
    std::uint32_t length = 0; ///< the frame's bytes (without the virtio-net header)
};

/// Builds `out` for the wire frame f with the virtio-net header vh the kernel wrote. False
/// if the frame cannot go whole: no TCP GSO type or segment size, neither NEEDS_CSUM (at
/// the TCP checksum) nor DATA_VALID, headers not TCP over IPv4 / IPv6 as locate_l4 knows
/// them. A frame that cannot go whole is cut as before.
inline bool packet_whole_build(const packet_wire_frame& f, const virtio_net_hdr& vh,
                               packet_whole_frame& out) noexcept {
    using csum_detail::store16;
    const auto type = static_cast<std::uint8_t>(vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN);
    const std::uint32_t len = f.length();
    if ((type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6) ||
        vh.gso_size == 0 || len <= out.hdr.size() ||
        (vh.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) == 0) {
        return false;
    }
    f.copy(out.hdr.data(), 0, static_cast<std::uint32_t>(out.hdr.size()));
    l4_location l;
    if (!locate_l4(out.hdr.data(), len, l) || l.udp || l.start + 20 > out.hdr.size() ||
        l.end != len) {
        return false;
    }
    const std::uint32_t doff = (std::to_integer<std::uint32_t>(out.hdr[l.start + 12]) >> 4) * 4;
    const std::uint32_t hdr = l.start + doff;
    if (doff < 20 || hdr > out.hdr.size() || hdr >= len || hdr < 16) {
        return false;
    }
    if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        // The kernel counts csum_start from the frame it holds, without a tag it took out.
        if (vh.csum_start + (f.tagged ? 4u : 0u) != l.start || vh.csum_offset != 16) {
            return false;
        }
    } else {
        // Verified by the lower (a NIC's GRO): the stack behind the TAP may trust it as
        // CHECKSUM_PARTIAL, which wants the pseudo-header sum in the field.
        store16(out.hdr.data() + l.start + 16, csum_fold(l.pseudo));
    }
    out.vnet = virtio_net_hdr{};
    out.vnet.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    out.vnet.gso_type = vh.gso_type;
    out.vnet.gso_size = vh.gso_size;
    out.vnet.hdr_len = static_cast<std::uint16_t>(hdr);
    out.vnet.csum_start = static_cast<std::uint16_t>(l.start);
    out.vnet.csum_offset = 16;
    out.iov[0] = {&out.vnet, sizeof out.vnet};
    out.iov[1] = {out.hdr.data(), hdr};
    // The rest straight from the ring (past the tag, which is in the copied headers).
    const std::uint32_t from = hdr - (f.tagged ? 4u : 0u);
    out.iov[2] = {const_cast<std::byte*>(f.src + from), f.snap - from};
    out.length = len;
    out.segments = (len - hdr + vh.gso_size - 1) / vh.gso_size;
    return true;
}

/// Copies the next packet of `block` into b (or, for a TCP packet larger than b that
/// arrived with GSO metadata, its next segment). Returns false when the block has nothing
/// more to give (its end, or a header that fails the bounds checks, in which case the
/// rest of the block is dropped and counted). Every packet the block header announces is
/// either delivered (rx_packets, once per segment) or dropped (rx_dropped) by the time
/// this returns false.
template <class Buffer>
bool packet_rx_deliver(const std::byte* block, packet_rx_cursor& c, queue_stats& stats,
                       Buffer b) noexcept {
    for (;;) {
        const auto* bd = reinterpret_cast<const tpacket_block_desc*>(block);
        const std::uint32_t num = bd->hdr.bh1.num_pkts;
        if (c.pkt >= num) {
            return false;
        }
        // The kernel places packet headers 8-byte aligned (V3_ALIGNMENT in
        // net/packet/af_packet.c); an offset the header cannot sit at is as bad as one
        // outside the block.
        const std::uint32_t off = c.off;
        if (off < sizeof(tpacket_block_desc) || off > packet_rx_block_size - sizeof(tpacket3_hdr) ||
            off % alignof(tpacket3_hdr) != 0) {
            ++stats.bad_completion;
            stats.rx_dropped += num - c.pkt;
            c.pkt = num;
            return false;
        }
        const auto* h = reinterpret_cast<const tpacket3_hdr*>(block + off);
        const std::uint32_t mac = h->tp_mac;
        const std::uint32_t snap = h->tp_snaplen;
        // Done with this packet: on to the next one the block header announces.
        const auto next_packet = [&] { packet_rx_next(c, num, off, h->tp_next_offset, stats); };
        // The virtio-net header sits right before the frame (tpacket_rcv).
        const std::uint32_t vnet = c.vnet ? sizeof(virtio_net_hdr) : 0u;
        if (mac > packet_rx_block_size - off || snap > packet_rx_block_size - off - mac ||
            mac < sizeof(tpacket3_hdr) + vnet) {
            ++stats.bad_completion;
            ++stats.rx_dropped;
            next_packet();
            continue;
        }
        const packet_wire_frame f = packet_rx_frame(block + off, h, mac, snap);
        const std::uint32_t len = f.length();
        if (snap != h->tp_len || snap < ETH_HLEN) {
            ++stats.rx_dropped; // truncated
            next_packet();
            continue;
        }
        std::byte* dst = b.data();
        offload_info o{};
        if (len > b.capacity()) {
            // Larger than a buffer: a TCP frame the peer's TSO or the lower's GRO built
            // is cut into segments (one per call); anything else is dropped and counted.
            virtio_net_hdr vh{};
            if (vnet != 0) {
                std::memcpy(&vh, f.src - vnet, sizeof vh);
            }
            if (c.whole && c.seg == 0 && !c.cut_next) {
                // Whole mode: the burst ends here, the frame waits in the ring for
                // packet_rx_take_whole (which writes it with its GSO header).
                packet_whole_frame probe;
                if (packet_whole_build(f, vh, probe)) {
                    c.whole_pending = true;
                    return false;
                }
            }
            c.cut_next = false;
            const auto type = static_cast<std::uint8_t>(vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN);
            std::uint32_t seg_len = 0;
            const std::uint32_t count =
                type == VIRTIO_NET_HDR_GSO_TCPV4 || type == VIRTIO_NET_HDR_GSO_TCPV6
                    ? packet_gso_segment(f, vh.gso_size, c.seg, dst, b.capacity(), seg_len)
                    : 0;
            if (count == 0) {
                // Larger than a buffer and cannot be cut. A packet cut short (the buffers
                // shrank under it) counts as dropped; its segments delivered so far all
                // become extra ones.
                ++stats.rx_dropped;
                c.extra_segments += c.seg != 0 ? 1u : 0u;
                next_packet();
                continue;
            }
            if (c.seg != 0) {
                ++c.extra_segments;
            }
            if (++c.seg == count) {
                next_packet();
            }
            o.csum = csum_state::good;
            b.set_offload(o);
            b.set_length(seg_len);
            ++stats.rx_packets;
            stats.rx_bytes += seg_len;
            return true;
        }
        f.copy(dst, 0, len);
        if (h->tp_status & TP_STATUS_CSUM_VALID) {
            o.csum = csum_state::good;
        } else if (h->tp_status & TP_STATUS_CSUMNOTREADY) {
            // Left for offload by a stack on this host (a veth peer): finish it, or
            // the stack behind the TAP would see a wrong checksum.
            o.csum = finish_rx_partial(dst, len);
        }
        next_packet();
        b.set_offload(o);
        b.set_length(len);
        ++stats.rx_packets;
        stats.rx_bytes += len;
        return true;
    }
}

/// One RX burst over a TPACKET_V3 ring of packet_rx_block_count blocks of
/// packet_rx_block_size bytes at `ring` (the socket's mapping, or any memory laid out the
/// same way): takes buffers for the whole budget from the shell, fills them from the
/// blocks the kernel handed over, hands finished blocks back, and releases the buffers it
/// did not fill. Returns the packets delivered into out[0..n).
template <class Api>
std::uint16_t packet_rx_burst(Api& api, std::uint16_t q, std::byte* ring, packet_rx_cursor& c,
                              queue_stats& stats,
                              std::span<typename Api::buffer_type> out) noexcept {
    using buffer_type = typename Api::buffer_type;
    if (c.whole_pending || !packet_rx_block_ready(ring, c)) {
        return 0; // a whole frame waits: nothing may overtake it
    }
    // Buffers for the whole budget at once; what is not filled goes straight back.
    const std::uint32_t got = api.alloc_rx_buffers(q, out);
    std::uint16_t n = 0;
    while (n < got && packet_rx_block_ready(ring, c)) {
        const std::byte* block = ring + std::size_t{c.block} * packet_rx_block_size;
        const auto* bd = reinterpret_cast<const tpacket_block_desc*>(block);
        const std::uint32_t num = bd->hdr.bh1.num_pkts;
        if (c.pkt == 0) {
            c.off = bd->hdr.bh1.offset_to_first_pkt;
        }
        if (c.pkt >= num || !packet_rx_deliver(block, c, stats, out[n])) {
            if (c.whole_pending) {
                break;
            }
            packet_rx_release_block(ring, c);
            continue;
        }
        ++n;
    }
    if (n < got) {
        api.release_rx_buffers(q, std::span<const buffer_type>(out.data() + n, got - n));
    }
    return n;
}

/// Whole mode: hands the large TCP frame that ended the last burst (if one waits) to
/// write(std::span<const iovec>, segments) as a virtio-net header and the frame, then
/// moves past it (and hands the block back when it was the block's last packet). When write returns
/// false (the TAP refused it) the frame stays and the next burst cuts it into segments,
/// as without whole mode: nothing is lost. Returns whether a frame waited.
template <class Write>
bool packet_rx_take_whole(std::byte* ring, packet_rx_cursor& c, queue_stats& stats,
                          packet_rx_whole_counters& wc, Write&& write) noexcept {
    if (!c.whole_pending) {
        return false;
    }
    c.whole_pending = false;
    // The walk checked this packet before it stopped here, and the block is ours until it
    // is handed back; its offsets are checked again all the same, as they are read again.
    const std::byte* block = ring + std::size_t{c.block} * packet_rx_block_size;
    const auto* bd = reinterpret_cast<const tpacket_block_desc*>(block);
    const auto* h = reinterpret_cast<const tpacket3_hdr*>(block + c.off);
    const std::uint32_t mac = h->tp_mac;
    const std::uint32_t snap = h->tp_snaplen;
    const bool in_block = mac <= packet_rx_block_size - c.off &&
                          snap <= packet_rx_block_size - c.off - mac &&
                          mac >= sizeof(tpacket3_hdr) + sizeof(virtio_net_hdr);
    const packet_wire_frame f = packet_rx_frame(block + c.off, h, mac, snap);
    virtio_net_hdr vh{};
    if (in_block) {
        std::memcpy(&vh, f.src - sizeof vh, sizeof vh);
    }
    packet_whole_frame w;
    if (!in_block || !packet_whole_build(f, vh, w) ||
        !write(std::span<const iovec>(w.iov.data(), w.iov.size()), w.segments)) {
        ++wc.refused;
        c.cut_next = true;
        return true;
    }
    ++wc.frames;
    wc.segments += w.segments;
    c.extra_segments += w.segments - 1; // one packet of the block, counted per segment
    stats.rx_packets += w.segments;
    stats.rx_bytes += w.length;
    packet_rx_next(c, bd->hdr.bh1.num_pkts, c.off, h->tp_next_offset, stats);
    if (c.pkt >= bd->hdr.bh1.num_pkts) {
        packet_rx_release_block(ring, c);
    }
    return true;
}

} // namespace detail
} // namespace npa::lnx
