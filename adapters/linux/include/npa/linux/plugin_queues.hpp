// npa/linux/plugin_queues.hpp: what the AF_XDP and AF_PACKET plugins share (not a user
// header): the table of queues an attached plugin drives, the calls that only look a queue
// up in it (irq_arm, irq_disarm, tx_in_flight, stats), and the capabilities both report.
//
// The plugins derive from detail::plugin_queues<Queue>; every call is resolved at compile
// time (no virtual function), and the data path reads queues_ / nqueues_ / attached_ as
// members of its own object, exactly as before.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/stats.hpp>

#include <cstdint>
#include <memory>

namespace npa::lnx::detail {

/// The queues of one plugin instance. Queue provides:
///   bool armed;                                   written by irq_arm / irq_disarm
///   std::uint32_t in_flight() const noexcept;     TX buffers the kernel still holds
///   const queue_stats& read_stats() noexcept;     counters plus what the kernel dropped
///                                                 (a control-path system call)
template <class Queue>
class plugin_queues {
public:
    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t q) const noexcept {
        const Queue* qu = live(q);
        return qu != nullptr ? qu->in_flight() : 0;
    }

    // The socket's readiness (poll on fd()) is the interrupt: arming is a flag the owner's
    // poll loop reads to decide whether to wait on fd() or keep polling.
    void irq_arm(std::uint16_t q) noexcept {
        if (Queue* qu = live(q)) {
            qu->armed = true;
        }
    }
    void irq_disarm(std::uint16_t q) noexcept {
        if (Queue* qu = live(q)) {
            qu->armed = false;
        }
    }

    /// Queue q's counters with the kernel's own drops added (read on this control-path
    /// call; see Queue::read_stats for which).
    [[nodiscard]] const queue_stats& stats(std::uint16_t q) const noexcept {
        static const queue_stats none{};
        Queue* qu = live(q);
        return qu != nullptr ? qu->read_stats() : none;
    }

    [[nodiscard]] bool attached() const noexcept { return attached_; }
    [[nodiscard]] std::uint16_t queue_count() const noexcept { return attached_ ? nqueues_ : 0; }

protected:
    /// Queue q while attached, nullptr otherwise (the queue memory is not const: stats()
    /// keeps what it last reported there).
    [[nodiscard]] Queue* live(std::uint16_t q) const noexcept {
        return attached_ && q < nqueues_ ? &queues_[q] : nullptr;
    }

    std::unique_ptr<Queue[]> queues_;
    std::uint16_t nqueues_ = 0;
    bool attached_ = false;
};

/// The capabilities both Linux plugins report: TX checksums are finished in software
/// before a frame reaches the kernel, RX checksums are checked or taken from the kernel's
/// verdict; rings 32..4096; an MTU up to the largest frame less an Ethernet header and one
/// VLAN tag (18 bytes).
[[nodiscard]] inline npa::capabilities plugin_capabilities(std::uint16_t max_queues,
                                                           std::uint32_t max_frame) noexcept {
    npa::capabilities c;
    c.offloads = cap::tx_l4_csum | cap::rx_csum;
    c.max_queues = max_queues;
    c.min_ring_size = 32;
    c.max_ring_size = 4096;
    c.min_mtu = 68;
    c.max_mtu = max_frame - 18;
    return c;
}

} // namespace npa::lnx::detail
