// npa/linux/af_xdp.hpp: the AF_XDP plugin.
//
// Drives an XDP socket (Documentation/networking/af_xdp.rst) through libxdp's xsk API:
// the FILL ring (empty buffers posted for RX), the RX ring (filled buffers back), the TX
// ring (buffers to send) and the COMPLETION ring (sent buffers back), all over a UMEM.
// The shell's buffer pool is built in that UMEM (npa/linux/umem.hpp), so a buffer's iova()
// is the UMEM offset the rings carry: buffers move between the shell and the kernel
// without a copy, and on a NIC whose driver supports zero-copy the NIC DMAs straight
// into them (a VF's rings are then driven directly, the NPA idea on stock Linux).
//
// The XDP program that redirects the queue to the socket is libxdp's built-in one
// (xsk_def_xdp_prog); libxdp loads it with the first socket on an interface and removes
// it with the last, so a detach leaves the interface as it found it.
//
// Ring entries come from the kernel or a NIC: every address is checked to be a chunk the
// plugin posted (and in the state it was posted in), every length to fit the chunk.
//
// This file is the plugin's data path (tx_burst, rx_burst, tx_reap, refill, detach).
// Opening the UMEM and the sockets is in npa/linux/af_xdp_socket.hpp, and what both Linux
// plugins share in npa/linux/plugin_queues.hpp.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/linux/af_xdp_socket.hpp>
#include <npa/linux/checksum.hpp>
#include <npa/linux/detail.hpp>
#include <npa/linux/plugin_queues.hpp>
#include <npa/linux/umem.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>

#include <xdp/xsk.h>

#include <linux/if_xdp.h>
#include <net/if.h>
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
/// Descriptors handled per ring operation (stack arrays, one tx_complete call each).
inline constexpr std::uint32_t xdp_batch = 64;
/// Queues one plugin instance drives (one socket per NIC queue, shared UMEM).
inline constexpr std::uint16_t xdp_max_queues = 8;
/// On detach, polls (100 us apart) waiting for TX the kernel already took to complete:
/// 20 ms is far above a healthy completion time and short enough for a switch.
inline constexpr std::uint32_t detach_drain_polls = 200;

/// The rings of one AF_XDP queue, as libxdp's ring structs (for attach_rings): the plugin
/// reads RX and completion, writes TX and fill.
struct xdp_queue_rings {
    xsk_ring_cons rx{};
    xsk_ring_prod tx{};
    xsk_ring_prod fq{};
    xsk_ring_cons cq{};
};

namespace detail {

/// One queue of the AF_XDP plugin: its socket and four rings, and what the data path
/// keeps about them.
struct xdp_queue : xsk_queue_socket {
    std::uint32_t fill_posted = 0;
    std::uint32_t tx_in_flight = 0;
    bool armed = false;
    queue_stats stats{};
    queue_stats reported{}; ///< stats plus the kernel's drops, as stats() last read them

    [[nodiscard]] std::uint32_t in_flight() const noexcept { return tx_in_flight; }

    /// The counters, with what the kernel dropped before a frame reached the RX ring added
    /// (XDP_STATISTICS): rx_dropped takes a frame larger than a UMEM chunk (copy mode: the
    /// kernel cannot split it) or one that found no chunk, and a full RX ring;
    /// bad_completion takes the descriptors it refused. Without this a frame too large for
    /// a chunk would vanish uncounted.
    const queue_stats& read_stats() noexcept {
        reported = stats;
        xdp_statistics ks{};
        if (read_kernel_stats(ks)) {
            reported.rx_dropped += ks.rx_dropped + ks.rx_ring_full;
            reported.bad_completion += ks.rx_invalid_descs + ks.tx_invalid_descs;
        }
        return reported;
    }
};

} // namespace detail

template <class Api>
class af_xdp_plugin : public detail::plugin_queues<detail::xdp_queue> {
public:
    static constexpr const char* name = "af_xdp";
    using device_type = af_xdp_device;
    using buffer_type = typename Api::buffer_type;

    af_xdp_plugin() noexcept = default;
    af_xdp_plugin(const af_xdp_plugin&) = delete;
    af_xdp_plugin& operator=(const af_xdp_plugin&) = delete;
    ~af_xdp_plugin() { detach(); }

    [[nodiscard]] status attach(Api& api, device_type& dev, const queue_config& qc) noexcept {
        if (status st = check_config(dev, qc); !st.ok()) {
            return st;
        }
        if (::if_nametoindex(dev.ifname) == 0) {
            detail::logf(api, log_level::error, "af_xdp: no interface '%s'", dev.ifname);
            return {errc::removed, "af_xdp: interface not found"};
        }
        quiet_xdp_libraries();
        // 1. Bookkeeping: who holds each UMEM chunk (control path, allocated once).
        if (status st = prepare(api, dev, qc); !st.ok()) {
            return st;
        }
        // 2. Register the UMEM (with queue 0's fill and completion rings) and open one
        //    socket per queue; try zero-copy first in automatic mode.
        status st = sockets_.open(dev, all_queues(), rx_size_, tx_size_, umem_base_,
                                  std::size_t{nchunks_} * umem_chunk_size);
        if (!st.ok()) {
            detail::logf(api, log_level::error, "af_xdp: %s on '%s' queue %u (%s)", st.reason(),
                         dev.ifname, dev.queue_id, std::strerror(sockets_.last_error()));
            release_memory();
            return st;
        }
        mode_ = sockets_.mode();
        // 3. A NIC filters by destination MAC before XDP sees a frame; the shell's MAC is
        //    not the NIC's, so hold a promiscuous membership (dropped with the socket).
        if (dev.promiscuous) {
            if (!sockets_.hold_promiscuous(dev.ifname)) {
                detail::logf(api, log_level::warning,
                             "af_xdp: cannot make '%s' promiscuous; only its own MAC is received",
                             dev.ifname);
            }
        }
        // 4. Post RX buffers on every fill ring.
        st = post_fill();
        if (!st.ok()) {
            return st;
        }
        detail::logf(api, log_level::info, "af_xdp: attached to '%s' queue %u, %s mode", ifname_,
                     dev.queue_id, to_string(mode_));
        // A chunk holds one frame (no multi-buffer descriptors here): say so when the
        // lower's MTU lets larger ones arrive, which the kernel then drops (counted).
        if (const unsigned mtu = detail::if_mtu(ifname_);
            mtu + 18 > umem_chunk_size - umem_headroom) {
            detail::logf(api, log_level::warning,
                         "af_xdp: '%s' has MTU %u, but a UMEM chunk holds frames up to %u "
                         "bytes: larger ones are dropped and counted in rx_dropped",
                         ifname_, mtu, umem_chunk_size - umem_headroom);
        }
        return {};
    }

    /// Attaches over rings the caller provides instead of sockets: rings[q] are queue q's,
    /// over memory laid out as the kernel's mapping of them, addressing the UMEM that dev
    /// names (dev.ifname is not used). No socket is opened and no system call made; the
    /// data path is the one a socket drives. This is how the rings are exercised without a
    /// kernel behind them (fuzz/af_xdp_rings_fuzz.cpp).
    [[nodiscard]] status attach_rings(Api& api, const device_type& dev, const queue_config& qc,
                                      std::span<const xdp_queue_rings> rings) noexcept {
        if (status st = check_config(dev, qc); !st.ok()) {
            return st;
        }
        if (rings.size() != qc.queues) {
            return {errc::invalid_argument, "af_xdp: one set of rings per queue"};
        }
        if (status st = prepare(api, dev, qc); !st.ok()) {
            return st;
        }
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            queue& qu = queues_[q];
            qu.rx = rings[q].rx;
            qu.tx = rings[q].tx;
            qu.fq_own = rings[q].fq;
            qu.cq_own = rings[q].cq;
            qu.fq = &qu.fq_own;
            qu.cq = &qu.cq_own;
        }
        mode_ = xdp_mode::copy;
        return post_fill();
    }

    /// Hands every buffer back: completed TX through tx_complete, TX the kernel never
    /// confirmed through tx_unsent (in the order it was accepted), RX buffers posted on
    /// the fill ring or received and not yet taken through release_rx_buffers.
    void detach() noexcept {
        if (!attached_) {
            return;
        }
        // 1. Let the kernel finish what it took (bounded: a gone interface never will).
        //    Rings without a kernel behind them (attach_rings) complete nothing meanwhile.
        for (std::uint32_t spin = 0; sockets_.registered() && spin < detach_drain_polls;
             ++spin) {
            std::uint32_t left = 0;
            for (std::uint16_t q = 0; q < nqueues_; ++q) {
                kick_tx(queues_[q]);
                (void)tx_reap(q);
                left += queues_[q].tx_in_flight;
            }
            if (left == 0) {
                break;
            }
            ::usleep(100);
        }
        // 2. Close the sockets: this stops the kernel and unmaps the fill and completion
        //    rings with them (libxdp), so whatever is still on TX goes back as unsent. A
        //    frame sent but not yet confirmed may then be sent twice, never lost.
        for (queue& qu : all_queues()) {
            qu.close();
        }
        hand_back_held();
        sockets_.close(all_queues());
        release_memory();
        attached_ = false;
        detail::logf(*api_, log_level::info, "af_xdp: detached from '%s'", ifname_);
    }

    [[nodiscard]] std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> bufs) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_ || bufs.empty())) {
            return 0;
        }
        queue& qu = queues_[q];
        if (qu.tx_in_flight + bufs.size() > tx_size_) {
            (void)tx_reap(q);
        }
        // Room is bounded by the TX ring and by the completion ring (every sent buffer
        // needs a completion slot).
        std::uint32_t room = tx_size_ - qu.tx_in_flight;
        room = std::min<std::uint32_t>(room, xsk_prod_nb_free(&qu.tx, room));
        std::uint32_t want = std::min<std::uint32_t>(room, static_cast<std::uint32_t>(bufs.size()));
        if (want < bufs.size()) {
            ++qu.stats.tx_ring_full;
        }
        std::uint32_t idx = 0;
        if (want == 0 || xsk_ring_prod__reserve(&qu.tx, want, &idx) != want) {
            return 0;
        }
        std::uint32_t n = 0;
        for (; n < want; ++n) {
            const buffer_type b = bufs[n];
            const std::uint32_t c = chunk_of(b);
            if (NPA_UNLIKELY(c == bad_chunk || b.length() == 0 ||
                             (b.iova() % umem_chunk_size) + b.length() > umem_chunk_size)) {
                ++qu.stats.tx_errors; // not one of the UMEM's chunks: stays with the caller
                break;
            }
            // No device finishes a checksum for an AF_XDP frame (the socket carries no
            // metadata for it): done here, in the UMEM chunk itself.
            // The request is cleared once done, so that a frame handed back unsent and
            // sent again (a switch) is not summed twice.
            if (offload_info o = b.offload(); o.flags & ol::tx_l4_csum) {
                if (NPA_UNLIKELY(!finish_tx_csum(b.data(), b.length(), o))) {
                    ++qu.stats.tx_errors;
                    break;
                }
                o.flags &= ~ol::tx_l4_csum;
                b.set_offload(o);
            }
            xdp_desc* d = xsk_ring_prod__tx_desc(&qu.tx, idx + n);
            d->addr = b.iova();
            d->len = b.length();
            d->options = 0;
            chunk_buf_[c] = b;
            chunk_state_[c] = state_tx;
            chunk_seq_[c] = tx_seq_++;
            chunk_q_[c] = q;
        }
        if (n < want) {
            // Give back the reserved slots we did not fill: the producer index is only
            // published by submit, so reserving fewer is done by rewinding cached_prod.
            qu.tx.cached_prod -= want - n;
        }
        if (n != 0) {
            xsk_ring_prod__submit(&qu.tx, n);
            qu.tx_in_flight += n;
            kick_tx(qu);
        }
        return static_cast<std::uint16_t>(n);
    }

    [[nodiscard]] std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> out) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_ || out.empty())) {
            return 0;
        }
        queue& qu = queues_[q];
        std::uint32_t idx = 0;
        const std::uint32_t budget =
            static_cast<std::uint32_t>(std::min<std::size_t>(out.size(), xdp_batch));
        const std::uint32_t got = xsk_ring_cons__peek(&qu.rx, budget, &idx);
        std::uint16_t n = 0;
        std::array<buffer_type, xdp_batch> dropped{};
        std::uint32_t nd = 0;
        for (std::uint32_t i = 0; i < got; ++i) {
            const xdp_desc* d = xsk_ring_cons__rx_desc(&qu.rx, idx + i);
            const std::uint64_t addr = d->addr;
            const std::uint32_t len = d->len;
            const std::uint64_t c64 = addr / umem_chunk_size;
            if (NPA_UNLIKELY(c64 >= nchunks_ || chunk_state_[c64] != state_fill ||
                             chunk_q_[c64] != q)) {
                // Not a chunk posted on this queue's fill ring: nothing to hand up (one
                // of another queue stays that queue's, whose counters this thread leaves
                // alone).
                ++qu.stats.bad_completion;
                continue;
            }
            const auto c = static_cast<std::uint32_t>(c64);
            const buffer_type b = chunk_buf_[c];
            chunk_buf_[c] = buffer_type{};
            chunk_state_[c] = state_none;
            --qu.fill_posted;
            const std::uint64_t off = addr % umem_chunk_size;
            if (NPA_UNLIKELY(len < 14 || off + len > umem_chunk_size || len > b.capacity())) {
                ++qu.stats.bad_completion;
                ++qu.stats.rx_dropped;
                dropped[nd++] = b;
                continue;
            }
            // The kernel writes at chunk + XDP_PACKET_HEADROOM; the pool's headroom is the
            // same, so this is a no-op unless an XDP program moved the data.
            const std::uint64_t want_off = b.iova() % umem_chunk_size;
            if (NPA_UNLIKELY(off != want_off)) {
                std::memmove(b.data(), umem_base_ + addr, len);
            }
            b.set_length(len);
            offload_info o{};
            o.csum = check_rx_csum(b.data(), len);
            b.set_offload(o);
            out[n++] = b;
            ++qu.stats.rx_packets;
            qu.stats.rx_bytes += len;
        }
        if (got != 0) {
            xsk_ring_cons__release(&qu.rx, got);
        }
        if (nd != 0) {
            api_->release_rx_buffers(q, std::span<const buffer_type>(dropped.data(), nd));
        }
        (void)refill(q, rx_size_ - qu.fill_posted);
        return n;
    }

    [[nodiscard]] std::uint32_t tx_reap(std::uint16_t q) noexcept {
        if (NPA_UNLIKELY(!attached_ || q >= nqueues_)) {
            return 0;
        }
        queue& qu = queues_[q];
        std::uint32_t total = 0;
        // A completion ring holds at most tx_size_ entries: one call reads no more, so a
        // producer index that ran far ahead cannot keep the loop going for 2^32 entries.
        std::uint32_t budget = tx_size_;
        for (;;) {
            std::uint32_t idx = 0;
            const std::uint32_t got = xsk_ring_cons__peek(qu.cq, std::min(xdp_batch, budget), &idx);
            if (got == 0) {
                break;
            }
            budget -= got;
            std::array<buffer_type, xdp_batch> done{};
            std::uint32_t nd = 0;
            for (std::uint32_t i = 0; i < got; ++i) {
                const std::uint64_t addr = *xsk_ring_cons__comp_addr(qu.cq, idx + i);
                const std::uint64_t c = addr / umem_chunk_size;
                if (NPA_UNLIKELY(c >= nchunks_ || chunk_state_[c] != state_tx ||
                                 chunk_q_[c] != q)) {
                    ++qu.stats.bad_completion;
                    continue;
                }
                const buffer_type b = chunk_buf_[c];
                chunk_buf_[c] = buffer_type{};
                chunk_state_[c] = state_none;
                ++qu.stats.tx_packets;
                qu.stats.tx_bytes += b.length();
                done[nd++] = b;
            }
            xsk_ring_cons__release(qu.cq, got);
            qu.tx_in_flight -= std::min(qu.tx_in_flight, nd);
            total += nd;
            api_->tx_complete(q, std::span<const buffer_type>(done.data(), nd));
        }
        if (qu.tx_in_flight != 0) {
            kick_tx(qu); // copy mode sends only from sendto(): keep it moving
        }
        return total;
    }

    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        // TX checksums are finished in software in the UMEM chunk; RX checksums are
        // checked in software (the ring reports nothing about them).
        return detail::plugin_capabilities(xdp_max_queues, umem_chunk_size - umem_headroom);
    }

    [[nodiscard]] errc health() const noexcept { return health_.load(std::memory_order_relaxed); }

    [[nodiscard]] int fd(std::uint16_t q) const noexcept {
        return attached_ && q < nqueues_ && queues_[q].xsk != nullptr
                   ? xsk_socket__fd(queues_[q].xsk)
                   : -1;
    }
    /// The mode in effect after attach (copy or zero-copy).
    [[nodiscard]] xdp_mode mode() const noexcept { return mode_; }

private:
    using queue = detail::xdp_queue;

    static constexpr std::uint32_t bad_chunk = ~std::uint32_t{0};
    static constexpr std::uint8_t state_none = 0;
    static constexpr std::uint8_t state_fill = 1; // posted on a fill ring (or in the RX ring)
    static constexpr std::uint8_t state_tx = 2;   // on the TX ring, awaiting completion

    status check_config(const device_type& dev, const queue_config& qc) const noexcept {
        if (attached_) {
            return {errc::bad_state, "af_xdp: already attached"};
        }
        if (qc.queues == 0 || qc.queues > xdp_max_queues) {
            return {errc::invalid_argument, "af_xdp: queue count must be 1..8"};
        }
        if (!is_power_of_two(qc.rx_ring_size) || !is_power_of_two(qc.tx_ring_size) ||
            qc.rx_ring_size < 32 || qc.tx_ring_size < 32 || qc.rx_ring_size > 4096 ||
            qc.tx_ring_size > 4096) {
            return {errc::invalid_argument, "af_xdp: ring sizes must be powers of two 32..4096"};
        }
        if (qc.mtu + 18 > umem_chunk_size - umem_headroom) {
            return {errc::invalid_argument, "af_xdp: MTU too large for a UMEM chunk"};
        }
        if (dev.umem_base == nullptr || dev.umem_size < umem_chunk_size ||
            reinterpret_cast<std::uintptr_t>(dev.umem_base) % 4096 != 0) {
            return {errc::invalid_argument, "af_xdp: the device names no page-aligned UMEM"};
        }
        return {};
    }

    // Takes the configuration and allocates the per-chunk bookkeeping and the queues.
    status prepare(Api& api, const device_type& dev, const queue_config& qc) noexcept {
        api_ = &api;
        nqueues_ = qc.queues;
        rx_size_ = qc.rx_ring_size;
        tx_size_ = qc.tx_ring_size;
        umem_base_ = dev.umem_base;
        nchunks_ = static_cast<std::uint32_t>(dev.umem_size / umem_chunk_size);
        std::memcpy(ifname_, dev.ifname, IFNAMSIZ);
        health_.store(errc::ok, std::memory_order_relaxed);
        chunk_buf_.reset(new (std::nothrow) buffer_type[nchunks_]());
        chunk_state_.reset(new (std::nothrow) std::uint8_t[nchunks_]());
        chunk_seq_.reset(new (std::nothrow) std::uint32_t[nchunks_]());
        chunk_q_.reset(new (std::nothrow) std::uint16_t[nchunks_]());
        queues_.reset(new (std::nothrow) queue[nqueues_]);
        if (!chunk_buf_ || !chunk_state_ || !chunk_seq_ || !chunk_q_ || !queues_) {
            release_memory();
            return {errc::no_memory, "af_xdp: out of memory for bookkeeping"};
        }
        return {};
    }

    // Posts RX buffers on every fill ring. They must live in the UMEM: a shell whose pool
    // is elsewhere cannot use this plugin, and is told so.
    status post_fill() noexcept {
        attached_ = true;
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            if (!refill(q, rx_size_)) {
                detach();
                return {errc::invalid_argument,
                        "af_xdp: the shell's buffers are not UMEM chunks (build the pool with "
                        "npa::lnx::make_umem_pool)"};
            }
        }
        return {};
    }

    std::span<queue> all_queues() noexcept { return {queues_.get(), queues_ ? nqueues_ : 0u}; }

    void release_memory() noexcept {
        chunk_buf_.reset();
        chunk_state_.reset();
        chunk_seq_.reset();
        chunk_q_.reset();
        queues_.reset();
    }

    // The UMEM chunk a buffer is, or bad_chunk if it is not exactly one of ours.
    std::uint32_t chunk_of(buffer_type b) const noexcept {
        const iova_t a = b.iova();
        if (a >= std::uint64_t{nchunks_} * umem_chunk_size || umem_base_ + a != b.data()) {
            return bad_chunk;
        }
        return static_cast<std::uint32_t>(a / umem_chunk_size);
    }

    // Posts up to `want` empty buffers on queue q's fill ring. False when a buffer from
    // the shell is not a UMEM chunk (handed straight back).
    bool refill(std::uint16_t q, std::uint32_t want) noexcept {
        queue& qu = queues_[q];
        bool ok = true;
        while (want != 0) {
            std::array<buffer_type, xdp_batch> bufs{};
            std::uint32_t n = std::min(want, xdp_batch);
            n = std::min(n, xsk_prod_nb_free(qu.fq, n));
            if (n == 0) {
                break;
            }
            n = api_->alloc_rx_buffers(q, std::span<buffer_type>(bufs.data(), n));
            if (n == 0) {
                break; // the shell counted the shortfall; fewer buffers stay posted
            }
            std::uint32_t idx = 0;
            if (xsk_ring_prod__reserve(qu.fq, n, &idx) != n) {
                api_->release_rx_buffers(q, std::span<const buffer_type>(bufs.data(), n));
                break;
            }
            std::uint32_t posted = 0;
            for (std::uint32_t i = 0; i < n; ++i) {
                const std::uint32_t c = chunk_of(bufs[i]);
                if (c == bad_chunk || chunk_state_[c] != state_none) {
                    api_->release_rx_buffers(q, std::span<const buffer_type>(&bufs[i], 1));
                    ok = false;
                    continue;
                }
                chunk_buf_[c] = bufs[i];
                chunk_state_[c] = state_fill;
                chunk_q_[c] = q; // it comes back on this queue's RX ring, or at detach
                *xsk_ring_prod__fill_addr(qu.fq, idx + posted) = std::uint64_t{c} * umem_chunk_size;
                ++posted;
            }
            qu.fq->cached_prod -= n - posted;
            xsk_ring_prod__submit(qu.fq, posted);
            qu.fill_posted += posted;
            want -= n;
            if (!ok) {
                return false;
            }
        }
        // need_wakeup: in copy mode and on drivers that sleep, the kernel waits for a
        // syscall before it looks at the fill ring again (af_xdp.rst, XDP_USE_NEED_WAKEUP).
        if (qu.xsk != nullptr && xsk_ring_prod__needs_wakeup(qu.fq)) {
            (void)::recvfrom(xsk_socket__fd(qu.xsk), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
        }
        return ok;
    }

    void kick_tx(queue& qu) noexcept {
        if (qu.xsk == nullptr || !xsk_ring_prod__needs_wakeup(&qu.tx)) {
            return;
        }
        if (::sendto(xsk_socket__fd(qu.xsk), nullptr, 0, MSG_DONTWAIT, nullptr, 0) < 0) {
            if (const errc h = detail::link_health(errno); h != errc::ok) {
                health_.store(h, std::memory_order_relaxed);
            }
        }
    }

    // After the sockets are closed: every chunk still held goes back to the shell.
    void hand_back_held() noexcept {
        // RX buffers (fill ring or unread RX ring): back to the shell's pool, through the
        // queue that posted them (the shell audits what each queue's path holds).
        std::array<buffer_type, xdp_batch> rx{};
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            std::uint32_t nr = 0;
            for (std::uint32_t c = 0; c < nchunks_; ++c) {
                if (chunk_state_[c] == state_fill && chunk_q_[c] == q) {
                    rx[nr++] = chunk_buf_[c];
                    chunk_state_[c] = state_none;
                    if (nr == rx.size()) {
                        api_->release_rx_buffers(q, std::span<const buffer_type>(rx.data(), nr));
                        nr = 0;
                    }
                }
            }
            if (nr != 0) {
                api_->release_rx_buffers(q, std::span<const buffer_type>(rx.data(), nr));
            }
        }
        // TX the kernel never confirmed: oldest first, so the next path sends them in the
        // order the shell gave them, queue by queue.
        for (std::uint16_t q = 0; q < nqueues_; ++q) {
            for (;;) {
                std::uint32_t best = bad_chunk;
                for (std::uint32_t c = 0; c < nchunks_; ++c) {
                    if (chunk_state_[c] == state_tx && chunk_q_[c] == q &&
                        (best == bad_chunk ||
                         static_cast<std::int32_t>(chunk_seq_[c] - chunk_seq_[best]) < 0)) {
                        best = c;
                    }
                }
                if (best == bad_chunk) {
                    break;
                }
                chunk_state_[best] = state_none;
                api_->tx_unsent(q, std::span<const buffer_type>(&chunk_buf_[best], 1));
            }
        }
    }

    Api* api_ = nullptr;
    detail::xsk_sockets sockets_;
    std::unique_ptr<buffer_type[]> chunk_buf_;
    std::unique_ptr<std::uint8_t[]> chunk_state_;
    std::unique_ptr<std::uint32_t[]> chunk_seq_; ///< TX acceptance order (for tx_unsent)
    std::unique_ptr<std::uint16_t[]> chunk_q_;   ///< queue a chunk was posted or sent on
    std::uint32_t tx_seq_ = 0;
    std::byte* umem_base_ = nullptr;
    std::uint32_t nchunks_ = 0;
    std::uint32_t rx_size_ = 0;
    std::uint32_t tx_size_ = 0;
    xdp_mode mode_ = xdp_mode::copy;
    std::atomic<errc> health_{errc::ok};
    char ifname_[IFNAMSIZ] = {};
};

} // namespace npa::lnx
