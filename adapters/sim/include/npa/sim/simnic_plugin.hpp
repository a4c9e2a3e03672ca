// npa/sim/simnic_plugin.hpp: the reference plugin. It drives the simnic's rings
// (simnic_defs.hpp) and nothing else, through the shell API it is instantiated with.
// Read it top to bottom: constants, queue state, attach, rx_burst, tx_burst, detach, stats.
// The ring bookkeeping is the core's, as in every plugin: gen_producer / gen_consumer
// (npa/ring/gen_ring.hpp) move descriptors, slot_ring (npa/ring/slot_ring.hpp) remembers
// which buffer sits in which slot, and trust_latch stops trusting a device that lied.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/slot_ring.hpp>
#include <npa/sim/simnic_defs.hpp>
#include <npa/sim/simnic_window.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::sim {

// ---- tuning constants -----------------------------------------------------------------
/// tx_burst reaps completions first when fewer slots than this are free: reaping reads the
/// completion ring, which is wasted work while the ring is mostly empty.
inline constexpr std::uint32_t simnic_tx_reap_below = 64;
/// The simnic's MTU range. The frame limit follows the MTU the shell configured
/// (queue_config::mtu): a TX frame is 14..mtu + simnic_frame_overhead bytes (the Ethernet
/// header and one VLAN tag on top of the MTU), as vmxnet3's and igbvf's limits do; the
/// device itself carries up to simnic_max_mtu + simnic_frame_overhead (1518).
inline constexpr std::uint32_t simnic_min_mtu = 68, simnic_max_mtu = 1500;
inline constexpr std::uint32_t simnic_frame_overhead = 18;

template <class Api>
class simnic_plugin {
public:
    using buffer_type = typename Api::buffer_type;
    using device_type = simnic_window;
    static constexpr const char* name = "simnic";

// protected, not private: the conformance kit's own tests derive deliberately broken
// variants of this plugin (tests/sim/broken_plugins_test.cpp).
protected:
    // ---- queue state --------------------------------------------------------------------
    struct queue {
        gen_producer<simnic_tx_traits> tx;    // driver fills TX descriptors
        gen_consumer<simnic_comp_traits> txc; // ... and reaps their completions
        gen_producer<simnic_rx_traits> rx;
        gen_consumer<simnic_comp_traits> rxc;
        // buf_info of each ring: the buffer in each slot, [next_to_clean, next_to_fill)
        // the device's. A descriptor's tag is its fill number (filled_count()).
        slot_ring<buffer_type> tx_slots, rx_slots;
        queue_stats stats{};
    };
    static constexpr std::uint32_t not_filled = slot_ring<buffer_type>::not_filled;
    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    std::array<queue, simnic_max_queues> q_{};
    trust_latch trust_; // a bad completion was seen: health() says device_error
    std::uint32_t max_frame_ = simnic_max_mtu + simnic_frame_overhead; // TX frame limit

public:
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
        if (qc.mtu < simnic_min_mtu || qc.mtu > simnic_max_mtu) {
            return {errc::invalid_argument, "simnic: MTU outside 68..1500"};
        }
        max_frame_ = qc.mtu + simnic_frame_overhead;
        api_ = &api;
        dev_ = &dev;
        trust_.reset();
        const std::uint32_t t = qc.tx_ring_size, r = qc.rx_ring_size;
        for (std::uint16_t i = 0; i < qc.queues; ++i) {
            queue& q = q_[i];
            // Counters start at attach: the shell books a path's counts when it detaches
            // (stat_tracker::retire), so counting on across attaches counted twice.
            q.stats = {};
            // step 2: rings in the queue's ring memory, zeroed so no slot looks handed over:
            //         [ TX ring | TX completions | RX ring | RX completions ]
            const guest_block area = dev.ring_area(i);
            if (area.size < simnic_ring_bytes(t, r) || !q.tx_slots.reset(t) ||
                !q.rx_slots.reset(r)) {
                detach();
                return {errc::no_memory, "simnic: ring memory too small for these ring sizes"};
            }
            std::memset(area.virt, 0, simnic_ring_bytes(t, r));
            auto* ring = reinterpret_cast<simnic_tx_desc*>(area.virt);
            q.tx.reset(ring, t);
            q.txc.reset(reinterpret_cast<simnic_comp_desc*>(ring + t), t);
            q.rx.reset(reinterpret_cast<simnic_rx_desc*>(ring + 2 * t), r);
            q.rxc.reset(reinterpret_cast<simnic_comp_desc*>(ring + 2 * t + r), r);
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
        std::uint16_t n = 0;
        simnic_comp_desc c;
        // A stale completion slot followed by a fresh one is skipped (and distrusted).
        while (n < out.size() && q.rxc.poll_past_stale(c, [&] { trust_.distrust(q.stats); })) {
            if (rx_complete(qi, c, out[n])) {
                ++n;
            }
        }
        refill(qi);
        return n;
    }
    // One RX completion (a snapshot taken after its generation bit): true if it delivered
    // a frame into `out`.
    bool rx_complete(std::uint16_t qi, const simnic_comp_desc& c, buffer_type& out) noexcept {
        queue& q = q_[qi];
        // The completion must name a filled slot and carry that filling's tag.
        const std::uint32_t skip = q.rx_slots.completion_skip(c.index, c.tag);
        if (skip == not_filled) {
            trust_.distrust(q.stats); // stale, duplicated or invented: ignore it
            return false;
        }
        if (skip != 0) { // the device passed over earlier buffers: take them back
            trust_.distrust(q.stats);
            q.stats.rx_dropped += skip;
            q.rx_slots.give_back(skip, release_rx(qi));
        }
        const buffer_type b = q.rx_slots.take();
        const bool error = (c.ctrl & simnic_ctrl_error) != 0;
        if (error || c.len < 14 || c.len > b.capacity()) { // DMA error or a bad length
            trust_.distrust(q.stats, error ? 0 : 1);
            ++q.stats.rx_dropped;
            release_rx(qi)(std::span<const buffer_type>(&b, 1));
            return false;
        }
        b.set_length(c.len);
        out = b;
        ++q.stats.rx_packets;
        q.stats.rx_bytes += c.len;
        return true;
    }

    // ---- tx_burst: step 1 reap completions, step 2 fill, step 3 ring the doorbell once --
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        if (q.tx_slots.free_slots() < simnic_tx_reap_below) {
            tx_reap(qi);
        }
        const std::uint32_t room = q.tx_slots.free_slots();
        const auto n = static_cast<std::uint16_t>(bufs.size() < room ? bufs.size() : room);
        q.stats.tx_ring_full += n < bufs.size() ? 1 : 0;
        const std::uint32_t filled = q.tx_slots.filled_count();
        for (std::uint16_t i = 0; i < n; ++i) {
            const buffer_type b = bufs[i];
            if (b.length() < 14 || b.length() > max_frame_) {
                // Not a frame this link carries: accepted (counted in n, so the caller does
                // not offer it again), never sent, completed at once and counted.
                ++q.stats.tx_errors;
                api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            q.tx.produce({b.iova(), q.tx_slots.filled_count(),
                          static_cast<std::uint16_t>(b.length()), 0});
            q.tx_slots.fill(b);
        }
        if (q.tx_slots.filled_count() != filled) {
            dev_->tx_doorbell(qi, q.tx_slots.filled_count());
        }
        return n;
    }

    // ---- tx_reap: return what the device has finished -----------------------------------
    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        std::uint32_t done = 0;
        simnic_comp_desc c;
        while (q.txc.poll_past_stale(c, [&] { trust_.distrust(q.stats); })) {
            const std::uint32_t skip = q.tx_slots.completion_skip(c.index, c.tag);
            if (skip == not_filled) {
                trust_.distrust(q.stats);
                continue;
            }
            // Earlier descriptors without a completion of their own: the device took them
            // but never said they went out. Counted as errors and returned.
            const bool ok = (c.ctrl & simnic_ctrl_error) == 0;
            trust_.distrust(q.stats, skip != 0 ? 1 : 0);
            q.stats.tx_errors += skip + (ok ? 0 : 1);
            q.stats.tx_packets += ok ? 1 : 0;
            q.stats.tx_bytes += ok ? q.tx_slots[c.index].length() : 0;
            q.tx_slots.give_back(skip + 1, [&](auto s) { api_->tx_complete(qi, s); });
            done += skip + 1;
        }
        return done;
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t qi) const noexcept {
        return q_[qi].tx_slots.in_flight();
    }

    // ---- rx_drain_bound: what a switch away from this device reads at most ---------------
    /// Asked when the drain starts: the RX ring's worth (what the device can have received
    /// and not yet handed over), plus the frames still on TX, which a device cabled to a
    /// loop receives back (net_npa's image path, the sim's loop rigs). The shell reads the
    /// old RX until a short, quiet burst or this many, whatever the clock says. Without a
    /// bound the drain timeout ended that read, and what the RX ring still held was given
    /// back to the pool with the detach, delivered to no one (net_npa's image path: an
    /// lcore held off past the 50 ms timeout mid-drain left four bursts behind).
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t qi) const noexcept {
        return qi < nq_ ? q_[qi].rx_slots.size() + q_[qi].tx_slots.in_flight() : 0;
    }

    // ---- detach: stop the queues, hand every buffer back --------------------------------
    void detach() noexcept {
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            dev_->quiesce(i); // step 1: after this the device writes nothing more
            if (q.tx_slots) {
                tx_reap(i); // step 2: what the device confirmed goes back as completed
                // step 3: what it took but never confirmed goes back unsent, oldest first
                q.tx_slots.give_back(q.tx_slots.in_flight(),
                                     [&](auto s) { api_->tx_unsent(i, s); });
            }
            // step 4: posted RX buffers go back to the shell
            q.rx_slots.give_back(q.rx_slots.in_flight(), release_rx(i));
            q.tx_slots.release();
            q.rx_slots.release();
        }
        nq_ = 0;
        trust_.reset();
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
        const bool bad = s != simnic_state::running || trust_.distrusted();
        return s == simnic_state::removed ? errc::removed : bad ? errc::device_error : errc::ok;
    }

protected:
    // Refill every free RX slot (allocating straight into buf_info), one doorbell.
    void refill(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        const std::uint32_t want = q.rx_slots.free_slots();
        const std::uint32_t got = q.rx_slots.refill(
            want, [&](std::span<buffer_type> s) { return api_->alloc_rx_buffers(qi, s); },
            [&](std::uint32_t, const buffer_type& b) {
                q.rx.produce({b.iova(), q.rx_slots.filled_count(),
                              static_cast<std::uint16_t>(b.capacity()), 0});
            });
        q.stats.rx_no_buffer += want - got;
        if (got != 0) {
            dev_->rx_doorbell(qi, q.rx_slots.filled_count());
        }
    }
    auto release_rx(std::uint16_t qi) noexcept {
        return [this, qi](std::span<const buffer_type> s) { api_->release_rx_buffers(qi, s); };
    }
};

} // namespace npa::sim
