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
//
// A TCP frame larger than a buffer (a 64 KB TSO frame the TAP handed over) can go whole,
// with its virtio_net_hdr, through tx_gso: the kernel (or the lower's TSO) segments it and
// finishes its checksums. The TX ring cannot carry it (its frames are one fixed size, and a
// socket with a TX ring sends nothing else), so it goes by sendmsg on a second, ring-less
// socket of the queue, after the ring's frames (npa/linux/af_packet_socket.hpp).
//
// This file is the plugin's data path (tx_burst, tx_gso, rx_burst, tx_reap, detach). Opening the
// socket and its rings is in npa/linux/af_packet_socket.hpp, the RX walk over the
// TPACKET_V3 blocks in npa/linux/af_packet_rx.hpp, and what both Linux plugins share in
// npa/linux/plugin_queues.hpp.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/linux/af_packet_rx.hpp>
#include <npa/linux/af_packet_socket.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/detail.hpp>
#include <npa/linux/plugin_queues.hpp>
#include <npa/linux/virtio_net_defs.hpp>
#include <npa/ring/slot_ring.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/uio.h>
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

// ---- tuning (the ring geometry is in npa/linux/af_packet_socket.hpp) ------------------
/// Largest L2 frame the plugin carries (no FCS); the MTU limit follows from it. Matches
/// what a UMEM chunk holds after its headroom, so both Linux plugins agree on the MTU.
inline constexpr std::uint32_t packet_max_frame = 1792;
/// Completions handed back to the shell per tx_complete call (stack array size).
inline constexpr std::uint32_t packet_reap_batch = 64;
/// Queues (sockets in one PACKET_FANOUT group) a single plugin instance drives.
inline constexpr std::uint16_t packet_max_queues = 8;

/// What became of a frame offered whole with its GSO header (af_packet_plugin::tx_gso).
enum class gso_send : std::uint8_t {
    sent,    ///< the kernel took it: it segments it (or the lower's TSO does)
    busy,    ///< not now (earlier frames still queued, or the socket's send buffer is
             ///< full): offer it again later, nothing was sent
    refused, ///< never on this path: the caller cuts it into segments
};

/// Frames a plugin sent whole with their GSO header, over all queues.
struct gso_counters {
    std::uint64_t frames = 0;   ///< frames the kernel took whole
    std::uint64_t segments = 0; ///< the segments they stand for
    std::uint64_t busy = 0;     ///< offers answered busy
    std::uint64_t refused = 0;  ///< frames the kernel refused (then cut by the caller)
};

namespace detail {

/// One queue of the AF_PACKET plugin: its socket and mapped rings, where the RX walk
/// stands, and which buffer each TX frame slot was copied from.
template <class Buffer>
struct packet_queue : packet_socket {
    packet_rx_cursor rx{};
    slot_ring<Buffer> tx_slots; ///< which buffer each TX frame slot was copied from
    bool armed = false;
    bool gso_off = false; ///< the kernel refused a GSO frame: cut them from then on
    gso_counters gso{};
    packet_rx_whole_counters whole{};
    queue_stats stats{};
    queue_stats reported{}; ///< stats plus kernel_drops, as stats() last read them

    [[nodiscard]] std::uint32_t in_flight() const noexcept { return tx_slots.in_flight(); }

    /// The counters, with the frames the kernel dropped because the RX ring was full
    /// added to rx_dropped.
    const queue_stats& read_stats() noexcept {
        const std::uint64_t drops = read_kernel_drops();
        reported = stats;
        reported.rx_dropped += drops;
        return reported;
    }
};

} // namespace detail

template <class Api>
class af_packet_plugin
    : public detail::plugin_queues<detail::packet_queue<typename Api::buffer_type>> {
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
            queue& qu = queues_[q];
            status st = qu.open(static_cast<int>(ifindex), dev.promiscuous, tx_frames_,
                                nqueues_ > 1, fanout);
            if (st.ok() && !qu.tx_slots.reset(tx_frames_)) {
                st = {errc::no_memory, "af_packet: out of memory for tx bookkeeping"};
            }
            qu.rx.vnet = qu.vnet;
            qu.rx.whole = rx_whole_ && qu.vnet;
            if (!st.ok()) {
                detail::logf(api, log_level::error, "af_packet: %s on '%s': %s (errno %d)",
                             st.reason(), dev.ifname, std::strerror(errno), errno);
                close_all();
                return st;
            }
        }
        std::memcpy(ifname_, dev.ifname, IFNAMSIZ);
        attached_ = true;
        detail::logf(api, log_level::info, "af_packet: attached to '%s', %u queue(s), %s",
                     ifname_, unsigned{nqueues_},
                     gso_capable() ? "TSO frames sent whole (PACKET_VNET_HDR)"
                                   : "TSO frames cut into segments (no PACKET_VNET_HDR)");
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

    /// Sends one frame larger than a buffer whole: `frame` (up to 64 KB, from the
    /// Ethernet header) with its GSO and checksum request `h` as a TAP with IFF_VNET_HDR
    /// handed it over (csum_start counts from the Ethernet header for both). The kernel
    /// segments it, or the lower's TSO does, and finishes the checksums; nothing is
    /// summed here. `segments` is what it stands for on the wire (for the counters).
    /// The frame goes after everything tx_burst put in the ring before it: while the
    /// kernel has not taken the ring's newest frame, the answer is busy.
    [[nodiscard]] gso_send tx_gso(std::uint16_t q, const virtio_net_hdr& h,
                                  std::span<const std::byte> frame,
                                  std::uint32_t segments) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_)) {
            return gso_send::refused;
        }
        queue& qu = queues_[q];
        if (qu.gso_fd < 0 || qu.gso_off) {
            return gso_send::refused;
        }
        // Order: the kernel takes ring frames oldest first, so once it has taken the
        // newest one, every earlier one is on its way too.
        if (qu.tx_slots.in_flight() != 0) {
            const std::uint32_t newest =
                (qu.tx_slots.next_to_fill() + qu.tx_slots.size() - 1) % qu.tx_slots.size();
            if (tx_status(qu, newest) == TP_STATUS_SEND_REQUEST) {
                kick(qu);
                if (tx_status(qu, newest) == TP_STATUS_SEND_REQUEST) {
                    ++qu.gso.busy;
                    return gso_send::busy;
                }
            }
        }
        virtio_net_hdr vh = h;
        iovec iov[2] = {{&vh, sizeof vh},
                        {const_cast<std::byte*>(frame.data()), frame.size()}};
        msghdr m{};
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        if (::sendmsg(qu.gso_fd, &m, MSG_DONTWAIT) >= 0) {
            ++qu.gso.frames;
            qu.gso.segments += segments;
            qu.stats.tx_packets += segments;
            qu.stats.tx_bytes += frame.size();
            return gso_send::sent;
        }
        const int e = errno;
        if (e == EAGAIN || e == ENOBUFS || e == EINTR) {
            ++qu.gso.busy;
            return gso_send::busy;
        }
        if (const errc hl = detail::link_health(e); hl != errc::ok) {
            health_.store(hl, std::memory_order_relaxed);
            return gso_send::refused; // the shell's path takes it (and sees the link)
        }
        // The kernel refused the header (EINVAL) or the size (EMSGSIZE): it will refuse
        // the next one too, so this queue cuts frames from now on.
        ++qu.gso.refused;
        qu.gso_off = true;
        detail::logf(*api_, log_level::warning,
                     "af_packet: '%s' refused a whole TSO frame (%s): cutting them from now on",
                     ifname_, std::strerror(e));
        return gso_send::refused;
    }

    /// Every queue can send TSO frames whole (tx_gso), as far as is known.
    [[nodiscard]] bool gso_capable() const noexcept {
        if (!attached_) {
            return false;
        }
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            if (queues_[q].gso_fd < 0 || queues_[q].gso_off) {
                return false;
            }
        }
        return true;
    }

    /// What tx_gso sent, over all queues.
    [[nodiscard]] gso_counters gso_stats() const noexcept {
        gso_counters c{};
        for (std::uint16_t q = 0; attached_ && q < nqueues_; ++q) {
            const gso_counters& g = queues_[q].gso;
            c.frames += g.frames;
            c.segments += g.segments;
            c.busy += g.busy;
            c.refused += g.refused;
        }
        return c;
    }

    /// Whole mode for received frames (every queue, now and at later attaches): a TCP
    /// frame larger than a buffer that came with a GSO header (the peer's TSO, the lower's
    /// GRO) is not cut into the shell's buffers; it ends its RX burst and waits in the ring
    /// until the owner takes it with rx_whole, which hands it over as one frame with its
    /// virtio-net header, for a TAP with IFF_VNET_HDR. The owner must call rx_whole after
    /// every rx_burst while it is on: a waiting frame holds back the queue. Needs
    /// PACKET_VNET_HDR; switching it off cuts a frame that waits.
    void set_rx_whole(bool on) noexcept {
        rx_whole_ = on;
        for (std::uint16_t q = 0; attached_ && q < nqueues_; ++q) {
            queue& qu = queues_[q];
            qu.rx.whole = on && qu.vnet;
            if (!qu.rx.whole) {
                qu.rx.whole_pending = false;
            }
        }
    }

    /// Whole mode: if a large frame waits on queue q, hands it to
    /// write(std::span<const iovec>, std::uint32_t segments) (a virtio-net header with
    /// NEEDS_CSUM and its GSO type and size, then the frame, partly in the ring: write it
    /// before returning; the segments it stands for) and
    /// moves past it. When write returns false the frame goes to the shell cut into
    /// segments by the next rx_burst, counted in rx_whole_stats().refused. Returns whether
    /// a frame waited.
    template <class Write>
    bool rx_whole(std::uint16_t q, Write&& write) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_)) {
            return false;
        }
        queue& qu = queues_[q];
        return detail::packet_rx_take_whole(qu.rx_ring, qu.rx, qu.stats, qu.whole, write);
    }

    /// What rx_whole handed over, over all queues.
    [[nodiscard]] packet_rx_whole_counters rx_whole_stats() const noexcept {
        packet_rx_whole_counters c{};
        for (std::uint16_t q = 0; attached_ && q < nqueues_; ++q) {
            c.frames += queues_[q].whole.frames;
            c.segments += queues_[q].whole.segments;
            c.refused += queues_[q].whole.refused;
        }
        return c;
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

    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        // TX checksums are finished in software before the frame enters the ring; RX
        // reports what the kernel verified (TP_STATUS_CSUM_VALID). Tags stay in the frame.
        return detail::plugin_capabilities(packet_max_queues, packet_max_frame);
    }

    /// errc::removed once the kernel said the interface is gone, errc::device_error once it
    /// said it is down.
    [[nodiscard]] errc health() const noexcept { return health_.load(std::memory_order_relaxed); }

    /// The socket of queue q, for the owner's poll loop (POLLIN: frames wait; POLLERR:
    /// the interface went away). -1 when not attached.
    [[nodiscard]] int fd(std::uint16_t q) const noexcept {
        return attached_ && q < nqueues_ ? queues_[q].fd : -1;
    }

private:
    using queue = detail::packet_queue<buffer_type>;
    using detail::plugin_queues<queue>::queues_;
    using detail::plugin_queues<queue>::nqueues_;
    using detail::plugin_queues<queue>::attached_;

    // Where packet data starts in a TX frame: TPACKET3_HDRLEN minus the sockaddr_ll the
    // kernel reserves for RX (net/packet/af_packet.c, tpacket_parse_header).
    static constexpr std::uint32_t tx_data_off =
        static_cast<std::uint32_t>(TPACKET3_HDRLEN - sizeof(struct sockaddr_ll));

    void close_all() noexcept {
        if (!queues_) {
            return;
        }
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            queues_[q].close();
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
    std::uint32_t tx_frames_ = 0;
    bool rx_whole_ = false;
    std::atomic<errc> health_{errc::ok};
    char ifname_[IFNAMSIZ] = {};
};

} // namespace npa::lnx
