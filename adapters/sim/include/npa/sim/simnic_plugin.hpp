// npa/sim/simnic_plugin.hpp: the reference plugin. It drives the simnic's rings
// (simnic_defs.hpp) and nothing else, through the shell API it is instantiated with.
// Read it top to bottom: constants, queue state, attach, rx_burst, tx_burst, detach, stats.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/sim/detail/simnic_plugin_parts.hpp>
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

private:
    // ---- queue state --------------------------------------------------------------------
    struct queue {
        gen_producer<simnic_tx_traits> tx;    // driver fills TX descriptors
        gen_consumer<simnic_comp_traits> txc; // ... and reaps their completions
        gen_producer<simnic_rx_traits> rx;
        gen_consumer<simnic_comp_traits> rxc;
        // Free-running counts; slot = count & (size - 1), tag = count. Descriptors
        // [cleaned, filled) belong to the device.
        std::uint32_t tx_filled = 0, tx_cleaned = 0, rx_filled = 0, rx_cleaned = 0;
        std::unique_ptr<buffer_type[]> tx_bufs, rx_bufs; // buf_info: the buffer in each slot
        queue_stats stats{};
    };
    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    std::array<queue, simnic_max_queues> q_{};
    std::atomic<bool> distrusted_{false}; // a bad completion was seen (read by health())

public:
    // ---- attach: lay out the rings, program the queues, post RX buffers -----------------
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        // step 1: check the request against the device before touching anything.
        if (const status st = detail::check_request(dev, qc); !st) {
            return st;
        }
        api_ = &api;
        dev_ = &dev;
        distrusted_.store(false, std::memory_order_relaxed);
        const std::uint32_t t = qc.tx_ring_size, r = qc.rx_ring_size;
        for (std::uint16_t i = 0; i < qc.queues; ++i) {
            queue& q = q_[i];
            // step 2: rings in the queue's ring memory, zeroed so no slot looks handed over:
            //         [ TX ring | TX completions | RX ring | RX completions ]
            const guest_block area = dev.ring_area(i);
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
            const iova_t base = area.iova, d = simnic_desc_size;
            dev.set_rings(i, {base, base + t * d, base + 2 * t * d, base + (2 * t + r) * d, t, r});
            if (const status st = dev.activate(i); !st) {
                detach();
                return st;
            }
            refill(i); // step 4: post RX buffers (fewer if the pool is short: counted, not fatal)
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
        while (n < out.size() && detail::poll_completion(q.rxc, c, [&] { distrust(q.stats); })) {
            // The completion must name a posted slot and carry that descriptor's tag.
            const std::uint32_t skip =
                detail::completion_skip(c.index, c.tag, q.rx_cleaned, q.rx_filled, mask);
            if (skip == detail::not_posted) {
                distrust(q.stats); // stale, duplicated or invented: ignore it
                continue;
            }
            if (skip != 0) { // the device passed over earlier buffers: take them back
                distrust(q.stats);
                q.stats.rx_dropped += skip;
                detail::give_back(q.rx_bufs.get(), mask, q.rx_cleaned, skip, release_rx(qi));
                q.rx_cleaned += skip;
            }
            const buffer_type b = q.rx_bufs[q.rx_cleaned++ & mask];
            const bool error = (c.ctrl & simnic_ctrl_error) != 0;
            if (error || c.len < 14 || c.len > b.capacity()) { // DMA error or a bad length
                distrust(q.stats, error ? 0 : 1);
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

    // ---- tx_burst: step 1 reap completions, step 2 fill, step 3 ring the doorbell once --
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        const std::uint32_t size = q.tx.size();
        if (size - (q.tx_filled - q.tx_cleaned) < simnic_tx_reap_below) {
            tx_reap(qi);
        }
        const std::uint32_t room = size - (q.tx_filled - q.tx_cleaned);
        const auto n = static_cast<std::uint16_t>(bufs.size() < room ? bufs.size() : room);
        q.stats.tx_ring_full += n < bufs.size() ? 1 : 0;
        const std::uint32_t filled = q.tx_filled;
        for (std::uint16_t i = 0; i < n; ++i) {
            const buffer_type b = bufs[i];
            if (b.length() < 14 || b.length() > simnic_max_mtu + 18) {
                ++q.stats.tx_errors; // not a frame the wire can carry: refuse it, hand it back
                api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            q.tx_bufs[q.tx_filled & (size - 1)] = b;
            q.tx.produce({b.iova(), q.tx_filled++, static_cast<std::uint16_t>(b.length()), 0});
        }
        if (q.tx_filled != filled) {
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
        while (detail::poll_completion(q.txc, c, [&] { distrust(q.stats); })) {
            const std::uint32_t skip =
                detail::completion_skip(c.index, c.tag, q.tx_cleaned, q.tx_filled, mask);
            if (skip == detail::not_posted) {
                distrust(q.stats);
                continue;
            }
            // Earlier descriptors without a completion of their own: the device took them
            // but never said they went out. Counted as errors and returned.
            const bool ok = (c.ctrl & simnic_ctrl_error) == 0;
            distrust(q.stats, skip != 0 ? 1 : 0);
            q.stats.tx_errors += skip + (ok ? 0 : 1);
            q.stats.tx_packets += ok ? 1 : 0;
            q.stats.tx_bytes += ok ? q.tx_bufs[c.index].length() : 0;
            detail::give_back(q.tx_bufs.get(), mask, q.tx_cleaned, skip + 1,
                              [&](auto s) { api_->tx_complete(qi, s); });
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
            dev_->quiesce(i); // step 1: after this the device writes nothing more
            if (q.tx_bufs) {
                tx_reap(i); // step 2: what the device confirmed goes back as completed
                // step 3: what it took but never confirmed goes back unsent, oldest first
                detail::give_back(q.tx_bufs.get(), q.tx.size() - 1, q.tx_cleaned,
                                  q.tx_filled - q.tx_cleaned,
                                  [&](auto s) { api_->tx_unsent(i, s); });
            }
            if (q.rx_bufs) { // step 4: posted RX buffers go back to the shell
                detail::give_back(q.rx_bufs.get(), q.rx.size() - 1, q.rx_cleaned,
                                  q.rx_filled - q.rx_cleaned, release_rx(i));
            }
            q.tx_filled = q.tx_cleaned = q.rx_filled = q.rx_cleaned = 0;
            q.tx_bufs.reset();
            q.rx_bufs.reset();
        }
        nq_ = 0;
        distrusted_.store(false, std::memory_order_relaxed);
    }

    // ---- interrupts, capabilities, stats, health ----------------------------------------
    void irq_arm(std::uint16_t qi) noexcept { dev_->irq(qi).arm(); }
    void irq_disarm(std::uint16_t qi) noexcept { dev_->irq(qi).disarm(); }
    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        return {0,
                simnic_max_queues,
                simnic_min_ring_size,
                simnic_max_ring_size,
                simnic_min_mtu,
                simnic_max_mtu};
    }
    [[nodiscard]] const queue_stats& stats(std::uint16_t qi) const noexcept { return q_[qi].stats; }

    /// The device's status register, plus this plugin's own verdict: a device that wrote a
    /// bad completion is not trusted again (the shell switches away, detach recovers all).
    /// Reads only the register and an atomic, so the control thread may call it any time.
    [[nodiscard]] errc health() const noexcept {
        const simnic_state s = dev_ != nullptr ? dev_->state() : simnic_state::running;
        const bool bad = s != simnic_state::running || distrusted_.load(std::memory_order_relaxed);
        return s == simnic_state::removed ? errc::removed : bad ? errc::device_error : errc::ok;
    }

private:
    // A device that wrote a bad completion is not trusted again: counted in the queue's
    // stats (data path only) and remembered in the atomic health() reads.
    void distrust(queue_stats& st, std::uint64_t n = 1) noexcept {
        if (n != 0) {
            st.bad_completion += n;
            distrusted_.store(true, std::memory_order_relaxed);
        }
    }

    // Refill every free RX slot (allocating straight into buf_info), one doorbell.
    void refill(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        const std::uint32_t size = q.rx.size();
        const std::uint32_t want = size - (q.rx_filled - q.rx_cleaned);
        const std::uint32_t got =
            detail::take_in(q.rx_bufs.get(), size - 1, q.rx_filled, want,
                            [&](auto s) { return api_->alloc_rx_buffers(qi, s); });
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
};

} // namespace npa::sim
