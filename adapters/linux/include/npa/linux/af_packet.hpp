// npa/linux/af_packet.hpp: the AF_PACKET plugin, the always-available Linux path.
//
// Drives the kernel's packet-socket rings (Documentation/networking/packet_mmap.rst):
// a TPACKET_V3 RX ring of blocks the kernel fills and hands over whole, and a TX ring of
// fixed frames the plugin fills and the kernel sends on sendto(). Both rings live in one
// mmap of the socket. Every interface has this path, so it is the fallback when a faster
// one (AF_XDP) is not available.
//
// Packets are copied between the shell's buffers and the ring frames. A TX buffer is still
// held until the kernel marks its frame available again, so that a detach can hand back,
// in order, exactly the packets the kernel never took (tx_unsent) instead of losing them.
//
// The ring memory is shared with the kernel, which writes block headers and frame headers
// in it: every offset, length and count read from it is range-checked against the block
// before use (DESIGN.md section 3, "trust nothing the device writes").
#pragma once

#include <npa/capabilities.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/detail.hpp>
#include <npa/linux/virtio_net_defs.hpp>
#include <npa/ring/slot_ring.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace npa::lnx {

// ---- tuning ---------------------------------------------------------------------------
/// RX block size: 128 KiB holds 64 full-size frames, so the kernel hands a block over
/// after a burst rather than per packet, and a block is small enough to retire quickly.
inline constexpr std::uint32_t packet_rx_block_size = 1u << 17;
/// RX blocks: 32 x 128 KiB = 4 MiB of ring, about 2700 full-size frames of slack before
/// the kernel drops (counted by the kernel in PACKET_STATISTICS).
inline constexpr std::uint32_t packet_rx_block_count = 32;
/// Block retire timeout (ms): a partly filled block is handed over after this long, which
/// bounds the latency a lone packet (a ping) sees. 1 ms is the smallest the API allows.
inline constexpr std::uint32_t packet_rx_retire_ms = 1;
/// TX frame size: the frame header plus the largest frame the shell sends (2048 - 48).
inline constexpr std::uint32_t packet_tx_frame_size = 2048;
/// Largest L2 frame the plugin carries (no FCS); the MTU limit follows from it. Matches
/// what a UMEM chunk holds after its headroom, so both Linux plugins agree on the MTU.
inline constexpr std::uint32_t packet_max_frame = 1792;
/// Completions handed back to the shell per tx_complete call (stack array size).
inline constexpr std::uint32_t packet_reap_batch = 64;
/// Queues (sockets in one PACKET_FANOUT group) a single plugin instance drives.
inline constexpr std::uint16_t packet_max_queues = 8;

/// The device window of an AF_PACKET plugin: which interface, and a fanout group id for
/// multi-queue receive (0 picks one from the process id).
struct af_packet_device {
    char ifname[IFNAMSIZ] = {};
    std::uint16_t fanout_id = 0;
    bool promiscuous = true; ///< receive frames for any MAC (the shell's MAC is not the lower's)

    [[nodiscard]] static af_packet_device named(const char* name) noexcept {
        af_packet_device d;
        (void)detail::copy_ifname(d.ifname, name);
        return d;
    }
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
/// header that does not fit) and the segment's length in `seg_len`.
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
        const auto next_packet = [&] {
            ++c.pkt;
            c.seg = 0;
            if (c.pkt < num) {
                const std::uint32_t next = h->tp_next_offset;
                if (next == 0 || next > packet_rx_block_size - off) {
                    ++stats.bad_completion;
                    stats.rx_dropped += num - c.pkt;
                    c.pkt = num;
                } else {
                    c.off = off + next;
                }
            }
        };
        // The virtio-net header sits right before the frame (tpacket_rcv).
        const std::uint32_t vnet = c.vnet ? sizeof(virtio_net_hdr) : 0u;
        if (mac > packet_rx_block_size - off || snap > packet_rx_block_size - off - mac ||
            mac < sizeof(tpacket3_hdr) + vnet) {
            ++stats.bad_completion;
            ++stats.rx_dropped;
            next_packet();
            continue;
        }
        packet_wire_frame f;
        f.src = block + off + mac;
        f.snap = snap;
        f.tagged = (h->tp_status & TP_STATUS_VLAN_VALID) != 0;
        if (f.tagged) {
            const std::uint16_t tpid =
                h->hv1.tp_vlan_tpid != 0 ? h->hv1.tp_vlan_tpid : std::uint16_t{ETH_P_8021Q};
            const std::uint16_t tag[2] = {htons(tpid),
                                          htons(static_cast<std::uint16_t>(h->hv1.tp_vlan_tci))};
            std::memcpy(f.tag.data(), tag, 4);
        }
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
    if (!packet_rx_block_ready(ring, c)) {
        return 0;
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

} // namespace detail

template <class Api>
class af_packet_plugin {
public:
    static constexpr const char* name = "af_packet";
    using device_type = af_packet_device;
    using buffer_type = typename Api::buffer_type;

    af_packet_plugin() noexcept = default;
    af_packet_plugin(const af_packet_plugin&) = delete;
    af_packet_plugin& operator=(const af_packet_plugin&) = delete;
    ~af_packet_plugin() { detach(); }

    /// Opens one packet socket per queue on dev.ifname with an RX and a TX ring.
    /// Steps follow packet_mmap.rst: version, rings, mmap, bind, fanout.
    [[nodiscard]] status attach(Api& api, device_type& dev, const queue_config& qc) noexcept {
        if (attached_) {
            return {errc::bad_state, "af_packet: already attached"};
        }
        if (qc.queues == 0 || qc.queues > packet_max_queues) {
            return {errc::invalid_argument, "af_packet: queue count must be 1..8"};
        }
        if (!is_power_of_two(qc.tx_ring_size) || qc.tx_ring_size < 32 || qc.tx_ring_size > 4096) {
            return {errc::invalid_argument,
                    "af_packet: tx ring size must be a power of two 32..4096"};
        }
        if (qc.mtu + 18 > packet_max_frame) {
            return {errc::invalid_argument, "af_packet: MTU too large for the ring frames"};
        }
        const unsigned ifindex = ::if_nametoindex(dev.ifname);
        if (ifindex == 0) {
            detail::logf(api, log_level::error, "af_packet: no interface '%s'", dev.ifname);
            return {errc::removed, "af_packet: interface not found"};
        }
        queues_.reset(new (std::nothrow) queue[qc.queues]);
        if (!queues_) {
            return {errc::no_memory, "af_packet: out of memory for queues"};
        }
        api_ = &api;
        nqueues_ = qc.queues;
        tx_frames_ = qc.tx_ring_size;
        health_.store(errc::ok, std::memory_order_relaxed);
        const std::uint16_t fanout =
            dev.fanout_id != 0 ? dev.fanout_id : static_cast<std::uint16_t>(::getpid() ^ ifindex);
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            const status st = open_queue(queues_[q], dev, static_cast<int>(ifindex), fanout);
            if (!st.ok()) {
                detail::logf(api, log_level::error, "af_packet: %s on '%s': %s (errno %d)",
                             st.reason(), dev.ifname, std::strerror(errno), errno);
                close_all();
                return st;
            }
        }
        std::memcpy(ifname_, dev.ifname, IFNAMSIZ);
        attached_ = true;
        detail::logf(api, log_level::info, "af_packet: attached to '%s', %u queue(s)", ifname_,
                     unsigned{nqueues_});
        return {};
    }

    /// Sends what the kernel still can, then hands every held buffer back: sent ones
    /// through tx_complete, never-taken ones through tx_unsent in order.
    void detach() noexcept {
        if (!attached_) {
            return;
        }
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            queue& qu = queues_[q];
            kick(qu);
            (void)tx_reap(q);
            // Frames the kernel has not taken (still SEND_REQUEST) go back unsent, oldest
            // first; frames in SENDING belong to an skb already built and count as sent.
            std::array<buffer_type, packet_reap_batch> done{};
            std::array<buffer_type, packet_reap_batch> unsent{};
            std::uint32_t nd = 0, nu = 0;
            while (qu.tx_slots.in_flight() != 0) {
                const std::uint32_t st = tx_status(qu, qu.tx_slots.next_to_clean());
                const buffer_type b = qu.tx_slots.take();
                if (st == TP_STATUS_SEND_REQUEST) {
                    unsent[nu++] = b;
                } else {
                    done[nd++] = b;
                }
                if (nu == unsent.size() || nd == done.size() || qu.tx_slots.in_flight() == 0) {
                    api_->tx_complete(q, std::span<const buffer_type>(done.data(), nd));
                    api_->tx_unsent(q, std::span<const buffer_type>(unsent.data(), nu));
                    nd = nu = 0;
                }
            }
        }
        close_all();
        attached_ = false;
        detail::logf(*api_, log_level::info, "af_packet: detached from '%s'", ifname_);
    }

    [[nodiscard]] std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> bufs) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_)) {
            return 0;
        }
        queue& qu = queues_[q];
        if (bufs.size() > qu.tx_slots.free_slots()) {
            (void)tx_reap(q);
        }
        std::uint16_t n = 0;
        for (; n < bufs.size(); ++n) {
            const buffer_type b = bufs[n];
            const std::uint32_t slot = qu.tx_slots.next_to_fill();
            if (qu.tx_slots.free_slots() == 0 || tx_status(qu, slot) != TP_STATUS_AVAILABLE) {
                ++qu.stats.tx_ring_full;
                break;
            }
            std::byte* frame = qu.tx_ring + std::size_t{slot} * packet_tx_frame_size;
            auto* hdr = reinterpret_cast<tpacket3_hdr*>(frame);
            const std::uint32_t len = b.length();
            const std::uint32_t vnet = qu.rx.vnet ? sizeof(virtio_net_hdr) : 0u;
            if (NPA_UNLIKELY(len < ETH_HLEN || len > packet_tx_frame_size - tx_data_off - vnet)) {
                // A frame the ring cannot carry: the packet is dropped and counted; the
                // buffer goes back to the shell as completed (with an error).
                ++qu.stats.tx_errors;
                api_->tx_complete(q, std::span<const buffer_type>(&bufs[n], 1));
                continue;
            }
            // The virtio_net_hdr (PACKET_VNET_HDR) asks for nothing: the checksum is
            // finished here and the frame is never larger than the MTU.
            std::memset(frame + tx_data_off, 0, vnet);
            std::byte* data = frame + tx_data_off + vnet;
            std::memcpy(data, b.data(), len);
            if (NPA_UNLIKELY(!finish_tx_csum(data, len, b.offload()))) {
                ++qu.stats.tx_errors; // a checksum request outside the frame: dropped
                api_->tx_complete(q, std::span<const buffer_type>(&bufs[n], 1));
                continue;
            }
            hdr->tp_len = len + vnet;
            hdr->tp_snaplen = len + vnet;
            hdr->tp_next_offset = 0; // TPACKET_V3 TX rejects variable-size slots
            // Hand the frame to the kernel last (release: the data above is visible first).
            std::atomic_ref<std::uint32_t>(hdr->tp_status)
                .store(TP_STATUS_SEND_REQUEST, std::memory_order_release);
            qu.tx_slots.fill(b);
        }
        if (n != 0) {
            kick(qu);
        }
        return n;
    }

    [[nodiscard]] std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> out) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_ || out.empty())) {
            return 0;
        }
        queue& qu = queues_[q];
        return detail::packet_rx_burst(*api_, q, qu.rx_ring, qu.rx, qu.stats, out);
    }

    /// Returns finished TX buffers to the shell; kicks the kernel if frames wait.
    [[nodiscard]] std::uint32_t tx_reap(std::uint16_t q) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_)) {
            return 0;
        }
        queue& qu = queues_[q];
        std::array<buffer_type, packet_reap_batch> done{};
        std::uint32_t nd = 0, total = 0;
        bool waiting = false;
        while (qu.tx_slots.in_flight() != 0) {
            const std::uint32_t slot = qu.tx_slots.next_to_clean();
            const std::uint32_t st = tx_status(qu, slot);
            if (st == TP_STATUS_SEND_REQUEST || st == TP_STATUS_SENDING) {
                waiting = st == TP_STATUS_SEND_REQUEST;
                break;
            }
            const buffer_type b = qu.tx_slots.take();
            if (st & TP_STATUS_WRONG_FORMAT) {
                ++qu.stats.tx_errors;
                auto* hdr = reinterpret_cast<tpacket3_hdr*>(qu.tx_ring + std::size_t{slot} *
                                                                             packet_tx_frame_size);
                std::atomic_ref<std::uint32_t>(hdr->tp_status)
                    .store(TP_STATUS_AVAILABLE, std::memory_order_release);
            } else {
                ++qu.stats.tx_packets;
                qu.stats.tx_bytes += b.length();
            }
            done[nd++] = b;
            ++total;
            if (nd == done.size()) {
                api_->tx_complete(q, std::span<const buffer_type>(done.data(), nd));
                nd = 0;
            }
        }
        if (nd != 0) {
            api_->tx_complete(q, std::span<const buffer_type>(done.data(), nd));
        }
        if (waiting) {
            kick(qu); // the kernel stopped early (ENOBUFS, qdisc full): try again
        }
        return total;
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t q) const noexcept {
        return attached_ && q < nqueues_ ? queues_[q].tx_slots.in_flight() : 0;
    }

    // The packet socket's readiness (poll on fd()) is the interrupt: arming is a flag the
    // owner's poll loop reads to decide whether to wait on fd() or keep polling.
    void irq_arm(std::uint16_t q) noexcept {
        if (attached_ && q < nqueues_) {
            queues_[q].armed = true;
        }
    }
    void irq_disarm(std::uint16_t q) noexcept {
        if (attached_ && q < nqueues_) {
            queues_[q].armed = false;
        }
    }

    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        npa::capabilities c;
        // TX checksums are finished in software before the frame enters the ring; RX
        // reports what the kernel verified (TP_STATUS_CSUM_VALID). Tags stay in the frame.
        c.offloads = cap::tx_l4_csum | cap::rx_csum;
        c.max_queues = packet_max_queues;
        c.min_ring_size = 32;
        c.max_ring_size = 4096;
        c.min_mtu = 68;
        c.max_mtu = packet_max_frame - 18; // Ethernet header and one VLAN tag
        return c;
    }

    /// Queue q's counters, with the frames the kernel dropped because the RX ring was full
    /// (PACKET_STATISTICS tp_drops, read on this control-path call; the kernel resets it on
    /// every read, so it is accumulated) added to rx_dropped.
    [[nodiscard]] const queue_stats& stats(std::uint16_t q) const noexcept {
        static const queue_stats none{};
        if (!attached_ || q >= nqueues_) {
            return none;
        }
        queue& qu = queues_[q];
        tpacket_stats_v3 ks{};
        socklen_t len = sizeof ks;
        if (qu.fd >= 0 && ::getsockopt(qu.fd, SOL_PACKET, PACKET_STATISTICS, &ks, &len) == 0) {
            qu.kernel_drops += ks.tp_drops;
        }
        qu.reported = qu.stats;
        qu.reported.rx_dropped += qu.kernel_drops;
        return qu.reported;
    }

    /// errc::removed once the kernel said the interface is gone, errc::device_error once it
    /// said it is down.
    [[nodiscard]] errc health() const noexcept { return health_.load(std::memory_order_relaxed); }

    /// The socket of queue q, for the owner's poll loop (POLLIN: frames wait; POLLERR:
    /// the interface went away). -1 when not attached.
    [[nodiscard]] int fd(std::uint16_t q) const noexcept {
        return attached_ && q < nqueues_ ? queues_[q].fd : -1;
    }
    [[nodiscard]] bool attached() const noexcept { return attached_; }
    [[nodiscard]] std::uint16_t queue_count() const noexcept { return attached_ ? nqueues_ : 0; }

private:
    struct queue {
        int fd = -1;
        std::byte* map = nullptr;
        std::size_t map_len = 0;
        std::byte* rx_ring = nullptr;
        std::byte* tx_ring = nullptr;
        detail::packet_rx_cursor rx{};
        slot_ring<buffer_type> tx_slots; ///< which buffer each TX frame slot was copied from
        bool armed = false;
        queue_stats stats{};
        std::uint64_t kernel_drops = 0; ///< PACKET_STATISTICS tp_drops so far
        queue_stats reported{};         ///< stats plus kernel_drops, as stats() last read them
    };

    // Where packet data starts in a TX frame: TPACKET3_HDRLEN minus the sockaddr_ll the
    // kernel reserves for RX (net/packet/af_packet.c, tpacket_parse_header).
    static constexpr std::uint32_t tx_data_off =
        static_cast<std::uint32_t>(TPACKET3_HDRLEN - sizeof(struct sockaddr_ll));

    status open_queue(queue& qu, const device_type& dev, int ifindex,
                      std::uint16_t fanout) noexcept {
        // 1. A socket that receives nothing until bound (protocol 0), so no frame can
        //    arrive before the ring exists.
        qu.fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (qu.fd < 0) {
            return {errc::not_supported, "af_packet: socket() failed (needs CAP_NET_RAW)"};
        }
        // 2. TPACKET_V3 for both rings.
        int v = TPACKET_V3;
        if (::setsockopt(qu.fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) != 0) {
            return {errc::not_supported, "af_packet: TPACKET_V3 not supported"};
        }
        // 3. GSO and checksum metadata with every frame (a virtio_net_hdr before it, in
        //    both rings; set before the rings exist): a frame the peer's TSO or the
        //    lower's GRO made larger than a buffer arrives with its segment size, so the
        //    RX walk can cut it instead of dropping it. Kernels without it: frames larger
        //    than a buffer are dropped and counted (rx_dropped).
        int one = 1;
        qu.rx.vnet = ::setsockopt(qu.fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) == 0;
        // 4. Only frames the interface received: what the local stack sends on the lower
        //    interface (and our own TX) must not come back as RX (Linux 4.20+).
        (void)::setsockopt(qu.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
        // 5. The rings: RX as blocks with a retire timeout, TX as fixed frames.
        tpacket_req3 rx{};
        rx.tp_block_size = packet_rx_block_size;
        rx.tp_block_nr = packet_rx_block_count;
        rx.tp_frame_size = packet_tx_frame_size; // only a hint for V3 RX
        rx.tp_frame_nr = packet_rx_block_size / packet_tx_frame_size * packet_rx_block_count;
        rx.tp_retire_blk_tov = packet_rx_retire_ms;
        if (::setsockopt(qu.fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx) != 0) {
            return {errc::no_memory, "af_packet: PACKET_RX_RING failed"};
        }
        tpacket_req3 tx{};
        tx.tp_block_size = 4096 * 16;
        tx.tp_frame_size = packet_tx_frame_size;
        tx.tp_block_nr = tx_frames_ * packet_tx_frame_size / tx.tp_block_size;
        if (tx.tp_block_nr == 0) {
            tx.tp_block_size = tx_frames_ * packet_tx_frame_size;
            tx.tp_block_nr = 1;
        }
        tx.tp_frame_nr = tx_frames_;
        if (::setsockopt(qu.fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx) != 0) {
            return {errc::no_memory, "af_packet: PACKET_TX_RING failed"};
        }
        // 6. One mapping: the RX ring first, the TX ring right after it.
        const std::size_t rx_len = std::size_t{packet_rx_block_size} * packet_rx_block_count;
        const std::size_t tx_len = std::size_t{tx.tp_block_size} * tx.tp_block_nr;
        void* m = ::mmap(nullptr, rx_len + tx_len, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_LOCKED | MAP_POPULATE, qu.fd, 0);
        if (m == MAP_FAILED) {
            m = ::mmap(nullptr, rx_len + tx_len, PROT_READ | PROT_WRITE, MAP_SHARED, qu.fd, 0);
        }
        if (m == MAP_FAILED) {
            return {errc::no_memory, "af_packet: mmap of the rings failed"};
        }
        qu.map = static_cast<std::byte*>(m);
        qu.map_len = rx_len + tx_len;
        qu.rx_ring = qu.map;
        qu.tx_ring = qu.map + rx_len;
        if (!qu.tx_slots.reset(tx_frames_)) {
            return {errc::no_memory, "af_packet: out of memory for tx bookkeeping"};
        }
        // 7. Bind to the interface for every protocol.
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = ifindex;
        if (::bind(qu.fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
            return {errno == ENETDOWN ? errc::removed : errc::device_error,
                    "af_packet: bind to the interface failed"};
        }
        // 8. Frames for any destination MAC: the shell's MAC is not the lower's.
        if (dev.promiscuous) {
            packet_mreq mr{};
            mr.mr_ifindex = ifindex;
            mr.mr_type = PACKET_MR_PROMISC;
            if (::setsockopt(qu.fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
                return {errc::device_error, "af_packet: promiscuous membership failed"};
            }
        }
        // 9. Several queues: spread flows over the sockets by hash (PACKET_FANOUT_HASH
        //    keeps a flow on one queue, so its packets stay in order).
        if (nqueues_ > 1) {
            int arg = fanout | (PACKET_FANOUT_HASH << 16);
            if (::setsockopt(qu.fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) {
                return {errc::not_supported, "af_packet: PACKET_FANOUT failed"};
            }
        }
        return {};
    }

    void close_all() noexcept {
        if (!queues_) {
            return;
        }
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            queue& qu = queues_[q];
            if (qu.map != nullptr) {
                ::munmap(qu.map, qu.map_len);
                qu.map = nullptr;
            }
            if (qu.fd >= 0) {
                ::close(qu.fd);
                qu.fd = -1;
            }
        }
        queues_.reset();
    }

    std::uint32_t tx_status(const queue& qu, std::uint32_t slot) const noexcept {
        auto* hdr =
            reinterpret_cast<tpacket3_hdr*>(qu.tx_ring + std::size_t{slot} * packet_tx_frame_size);
        return std::atomic_ref<std::uint32_t>(hdr->tp_status).load(std::memory_order_acquire);
    }

    void kick(queue& qu) noexcept {
        if (::sendto(qu.fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0) {
            if (const errc h = detail::link_health(errno); h != errc::ok) {
                health_.store(h, std::memory_order_relaxed);
            }
        }
    }

    Api* api_ = nullptr;
    std::unique_ptr<queue[]> queues_;
    std::uint16_t nqueues_ = 0;
    std::uint32_t tx_frames_ = 0;
    bool attached_ = false;
    std::atomic<errc> health_{errc::ok};
    char ifname_[IFNAMSIZ] = {};
};

} // namespace npa::lnx
