// npa/sim/simnic_plugin.hpp: the reference plugin. It drives the simnic's rings
// (simnic_defs.hpp) and nothing else, through the shell API it is instantiated with.
// Read it top to bottom: constants, queue state, attach, rx_burst, tx_burst, detach.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/sim/simnic_defs.hpp>
#include <npa/sim/simnic_window.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace npa::sim {

// ---- tuning constants -----------------------------------------------------------------
/// tx_burst reaps completions first when fewer slots than this are free: reaping reads the
/// completion ring, which is wasted work while the ring is mostly empty.
inline constexpr std::uint32_t simnic_tx_reap_below = 64;
/// The simnic's MTU range: a frame is at most max_frame_size bytes on the wire.
inline constexpr std::uint32_t simnic_min_mtu = 68, simnic_max_mtu = 1500;

template <class Api>
class simnic_plugin {
public:
    using buffer_type = typename Api::buffer_type;
    using device_type = simnic_window;
    static constexpr const char* name = "simnic";

    // ---- attach: lay out the rings, program the queues, post RX buffers -----------------
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        // step 1: check the request against the device before touching anything.
        if (dev.state() == simnic_state::removed) {
            return {errc::removed, "simnic: device removed"};
        }
        if (qc.queues == 0 || qc.queues > dev.max_queues()) {
            return {errc::invalid_argument, "simnic: queue pairs outside 1..max_queues"};
        }
        if (!simnic_ring_size_ok(qc.tx_ring_size) || !simnic_ring_size_ok(qc.rx_ring_size)) {
            return {errc::invalid_argument, "simnic: ring sizes must be powers of two in 32..4096"};
        }
        api_ = &api;
        dev_ = &dev;
        distrusted_.store(false, std::memory_order_relaxed);
        for (std::uint16_t i = 0; i < qc.queues; ++i) {
            queue& q = q_[i];
            // step 2: rings in the queue's ring memory, zeroed so no slot looks handed over:
            //         [ TX ring | TX completions | RX ring | RX completions ]
            const guest_block area = dev.ring_area(i);
            const std::uint32_t t = qc.tx_ring_size, r = qc.rx_ring_size;
            q.tx_bufs.reset(new (std::nothrow) buffer_type[t]);
            q.rx_bufs.reset(new (std::nothrow) buffer_type[r]);
            if (area.size < simnic_ring_bytes(t, r) || !q.tx_bufs || !q.rx_bufs) {
                detach();
                return {errc::no_memory, "simnic: ring memory too small for these ring sizes"};
            }
            std::memset(area.virt, 0, simnic_ring_bytes(t, r));
            auto* ring = reinterpret_cast<simnic_tx_desc*>(area.virt);
            q.tx.reset(ring, t);
            q.txc.reset(reinterpret_cast<simnic_comp_desc*>(ring + t), t);
            q.rx.reset(reinterpret_cast<simnic_rx_desc*>(ring + 2 * t), r);
            q.rxc.reset(reinterpret_cast<simnic_comp_desc*>(ring + 2 * t + r), r);
            q.tx_filled = q.tx_cleaned = q.rx_filled = q.rx_cleaned = 0;
            nq_ = static_cast<std::uint16_t>(i + 1);
            // step 3: tell the device where the rings are and start the queue.
            const iova_t base = area.iova;
            dev.set_rings(i, {base, base + t * simnic_desc_size, base + 2 * t * simnic_desc_size,
                              base + (2 * t + r) * simnic_desc_size, t, r});
            if (const status st = dev.activate(i); !st) {
                detach();
                return st;
            }
            // step 4: post RX buffers (fewer if the pool is short: counted, not fatal).
            refill(i);
        }
        api.log(log_level::info, "simnic: attached");
        return status::success();
    }

    // ---- rx_burst: snapshot, validate, deliver, refill -----------------------------------
    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        const std::uint32_t mask = q.rx.size() - 1;
        std::uint16_t n = 0;
        simnic_comp_desc c;
        while (n < out.size() && poll_completion(q.rxc, c, q.stats)) {
            // The completion must name a posted slot and carry that descriptor's tag.
            const std::uint32_t posted = q.rx_filled - q.rx_cleaned;
            const std::uint32_t skip = (c.index - q.rx_cleaned) & mask;
            if (c.index > mask || skip >= posted || c.tag != q.rx_cleaned + skip) {
                distrust(q.stats);  // stale, duplicated or invented: ignore it
                continue;
            }
            if (skip != 0) {  // the device passed over earlier buffers: take them back
                distrust(q.stats);
                q.stats.rx_dropped += skip;
                give_back(q.rx_bufs.get(), mask, q.rx_cleaned, skip, release_rx(qi));
                q.rx_cleaned += skip;
            }
            const buffer_type b = q.rx_bufs[q.rx_cleaned++ & mask];
            const bool bad_len = c.len < 14 || c.len > b.capacity();
            if ((c.ctrl & simnic_ctrl_error) != 0 || bad_len) {
                distrust(q.stats, bad_len && (c.ctrl & simnic_ctrl_error) == 0 ? 1 : 0);
                ++q.stats.rx_dropped;
                release_rx(qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            b.set_length(c.len);
            out[n++] = b;
            ++q.stats.rx_packets;
            q.stats.rx_bytes += c.len;
        }
        refill(qi);
        return n;
    }

    // ---- tx_burst: step 1 reap completions, step 2 fill, ring the doorbell once ---------
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        const std::uint32_t size = q.tx.size();
        if (size - (q.tx_filled - q.tx_cleaned) < simnic_tx_reap_below) {
            tx_reap(qi);
        }
        const std::uint32_t room = size - (q.tx_filled - q.tx_cleaned);
        const auto n = static_cast<std::uint16_t>(bufs.size() < room ? bufs.size() : room);
        q.stats.tx_ring_full += n < bufs.size() ? 1 : 0;
        bool filled = false;
        for (std::uint16_t i = 0; i < n; ++i) {
            const buffer_type b = bufs[i];
            if (b.length() < 14 || b.length() > simnic_max_mtu + 18) {
                ++q.stats.tx_errors;  // not a frame the wire can carry: refuse it, hand it back
                api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            q.tx_bufs[q.tx_filled & (size - 1)] = b;
            q.tx.produce({b.iova(), q.tx_filled++, static_cast<std::uint16_t>(b.length()), 0});
            filled = true;
        }
        if (filled) {
            dev_->tx_doorbell(qi, q.tx_filled);
        }
        return n;
    }

    // ---- tx_reap: return what the device has finished -----------------------------------
    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        const std::uint32_t mask = q.tx.size() - 1;
        std::uint32_t done = 0;
        simnic_comp_desc c;
        while (poll_completion(q.txc, c, q.stats)) {
            const std::uint32_t skip = (c.index - q.tx_cleaned) & mask;
            if (c.index > mask || skip >= q.tx_filled - q.tx_cleaned ||
                c.tag != q.tx_cleaned + skip) {
                distrust(q.stats);
                continue;
            }
            // Earlier descriptors without a completion of their own: the device took them
            // but never said they went out. Counted as errors and returned.
            distrust(q.stats, skip != 0 ? 1 : 0);
            q.stats.tx_errors += skip + ((c.ctrl & simnic_ctrl_error) != 0 ? 1 : 0);
            if ((c.ctrl & simnic_ctrl_error) == 0) {
                ++q.stats.tx_packets;
                q.stats.tx_bytes += q.tx_bufs[c.index].length();
            }
            give_back(q.tx_bufs.get(), mask, q.tx_cleaned, skip + 1, [&](auto s) { api_->tx_complete(qi, s); });
            q.tx_cleaned += skip + 1;
            done += skip + 1;
        }
        return done;
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t qi) const noexcept {
        return q_[qi].tx_filled - q_[qi].tx_cleaned;
    }

    // ---- detach: stop the queues, hand every buffer back --------------------------------
    void detach() noexcept {
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            dev_->quiesce(i);  // step 1: after this the device writes nothing more
            if (q.tx_bufs) {
                tx_reap(i);    // step 2: what the device confirmed goes back as completed
                // step 3: what it took but never confirmed goes back unsent, oldest first
                give_back(q.tx_bufs.get(), q.tx.size() - 1, q.tx_cleaned,
                          q.tx_filled - q.tx_cleaned, [&](auto s) { api_->tx_unsent(i, s); });
            }
            if (q.rx_bufs) {   // step 4: posted RX buffers go back to the shell
                give_back(q.rx_bufs.get(), q.rx.size() - 1, q.rx_cleaned,
                          q.rx_filled - q.rx_cleaned, release_rx(i));
            }
            q.tx_filled = q.tx_cleaned = q.rx_filled = q.rx_cleaned = 0;
            q.tx_bufs.reset();
            q.rx_bufs.reset();
        }
        nq_ = 0;
        distrusted_.store(false, std::memory_order_relaxed);
    }

    void irq_arm(std::uint16_t qi) noexcept { dev_->irq(qi).arm(); }
    void irq_disarm(std::uint16_t qi) noexcept { dev_->irq(qi).disarm(); }

    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        return {0, simnic_max_queues, simnic_min_ring_size, simnic_max_ring_size, simnic_min_mtu,
                simnic_max_mtu};
    }
    [[nodiscard]] const queue_stats& stats(std::uint16_t qi) const noexcept { return q_[qi].stats; }

    /// The device's status register, plus this plugin's own verdict: a device that wrote a
    /// bad completion is not trusted again (the shell switches away, detach recovers all).
    [[nodiscard]] errc health() const noexcept {
        const simnic_state s = dev_ != nullptr ? dev_->state() : simnic_state::running;
        if (s == simnic_state::removed) {
            return errc::removed;
        }
        const bool bad = s != simnic_state::running || distrusted_.load(std::memory_order_relaxed);
        return bad ? errc::device_error : errc::ok;
    }

private:
    struct queue {
        gen_producer<simnic_tx_traits> tx;    // driver fills TX descriptors
        gen_consumer<simnic_comp_traits> txc; // ... and reaps their completions
        gen_producer<simnic_rx_traits> rx;
        gen_consumer<simnic_comp_traits> rxc;
        // Free-running counts; slot = count & (size - 1), tag = count. Descriptors
        // [cleaned, filled) belong to the device.
        std::uint32_t tx_filled = 0, tx_cleaned = 0, rx_filled = 0, rx_cleaned = 0;
        std::unique_ptr<buffer_type[]> tx_bufs, rx_bufs;  // buf_info: the buffer in each slot
        queue_stats stats{};
    };

    // A device that wrote a bad completion is not trusted again: counted in the queue's
    // stats (data path only) and remembered in an atomic that health() may read from the
    // control thread while the data path runs.
    void distrust(queue_stats& st, std::uint64_t n = 1) noexcept {
        if (n != 0) {
            st.bad_completion += n;
            distrusted_.store(true, std::memory_order_relaxed);
        }
    }

    // A completion snapshot; a stale slot followed by a fresh one (generation order broken)
    // is skipped and counted, so a device that does that cannot wedge the ring.
    bool poll_completion(gen_consumer<simnic_comp_traits>& cc, simnic_comp_desc& c,
                         queue_stats& st) noexcept {
        if (cc.poll(c)) {
            return true;
        }
        if (!gen_out_of_order(cc)) {
            return false;
        }
        distrust(st);
        cc.advance();
        return cc.poll(c);
    }

    // Refill every free RX slot (allocating straight into buf_info), one doorbell.
    void refill(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        const std::uint32_t size = q.rx.size();
        const std::uint32_t want = size - (q.rx_filled - q.rx_cleaned);
        const std::uint32_t first = q.rx_filled & (size - 1);
        const std::uint32_t run = want < size - first ? want : size - first;  // up to the wrap
        std::uint32_t got = api_->alloc_rx_buffers(qi, {q.rx_bufs.get() + first, run});
        if (got == run && want > run) {
            got += api_->alloc_rx_buffers(qi, {q.rx_bufs.get(), want - run});
        }
        q.stats.rx_no_buffer += want - got;
        for (std::uint32_t i = 0; i < got; ++i) {
            const buffer_type b = q.rx_bufs[q.rx_filled & (size - 1)];
            q.rx.produce({b.iova(), q.rx_filled++, static_cast<std::uint16_t>(b.capacity()), 0});
        }
        if (got != 0) {
            dev_->rx_doorbell(qi, q.rx_filled);
        }
    }

    auto release_rx(std::uint16_t qi) noexcept {
        return [this, qi](std::span<const buffer_type> s) { api_->release_rx_buffers(qi, s); };
    }

    // Hands `count` buffers from slot (from & mask) on to `fn`, in ring order: two spans at
    // most (the run up to the end of the ring, then the rest from slot 0).
    template <class Fn>
    static void give_back(buffer_type* bufs, std::uint32_t mask, std::uint32_t from,
                          std::uint32_t count, Fn fn) noexcept {
        const std::uint32_t first = from & mask;
        const std::uint32_t run = count < mask + 1 - first ? count : mask + 1 - first;
        if (run != 0) {
            fn(std::span<const buffer_type>(bufs + first, run));
        }
        if (count > run) {
            fn(std::span<const buffer_type>(bufs, count - run));
        }
    }

    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    std::array<queue, simnic_max_queues> q_{};
    std::atomic<bool> distrusted_{false};
};

} // namespace npa::sim
