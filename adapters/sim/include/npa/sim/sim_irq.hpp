// npa/sim/sim_irq.hpp: an interrupt line with masking, as a device model raises it.
//
// Modelled on an MSI-X vector under NAPI: the cause is latched in pending() whether or
// not the line is armed; the device delivers (counts a firing) only while armed, and
// delivering disarms (one-shot). arm() with a cause already latched delivers at once, so
// work that arrived while the poll loop was running is never lost (concepts/irq_source.hpp).
// Every member is atomic: the device may raise from its own thread.
#pragma once

#include <npa/concepts/irq_source.hpp>

#include <atomic>
#include <cstdint>

namespace npa::sim {

class sim_irq {
public:
    void arm() noexcept {
        armed_.store(true);
        if (pending_.load() && armed_.exchange(false)) {
            fired_.fetch_add(1);
        }
    }
    void disarm() noexcept { armed_.store(false); }
    [[nodiscard]] bool armed() const noexcept { return armed_.load(); }
    [[nodiscard]] bool pending() const noexcept { return pending_.load(); }
    /// An exchange, not a store: clear-then-poll against latch-after-publish is a
    /// store-load pair, and a read-modify-write reads the latest latch, so it synchronises
    /// with the raise() it clears and the poll after it sees the work that raise announced.
    void clear() noexcept { (void)pending_.exchange(false); }

    /// Device side: latch the cause; deliver if armed. `auto_mask` false: a device that
    /// does not mask the line as it fires (vmxnet3's mask modes ACTIVE and LAZY), which
    /// stays armed and fires again at the next raise.
    void raise(bool auto_mask = true) noexcept {
        pending_.store(true);
        if (auto_mask ? armed_.exchange(false) : armed_.load()) {
            fired_.fetch_add(1);
        }
    }
    /// Interrupts delivered so far.
    [[nodiscard]] std::uint64_t fired() const noexcept { return fired_.load(); }
    /// Device reset: masked, nothing latched (the count is kept: it never goes backwards).
    void reset() noexcept {
        armed_.store(false);
        pending_.store(false);
    }

private:
    std::atomic<bool> armed_{false};
    std::atomic<bool> pending_{false};
    std::atomic<std::uint64_t> fired_{0};
};
static_assert(npa::irq_source<sim_irq>);

} // namespace npa::sim
