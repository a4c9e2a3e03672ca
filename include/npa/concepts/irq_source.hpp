// npa/concepts/irq_source.hpp: an interrupt line as the shell sees it.
//
// Checked by the compiler: the line can be armed (unmasked) and disarmed (masked), and
// says whether it is armed and whether it has fired since it was last cleared.
//
// Semantic requirements (not checked by the compiler):
//   - the device raises the line only while armed; raising disarms it (one-shot, as an
//     MSI-X vector under NAPI: the poll loop re-arms when it runs out of work);
//   - arm() after work was queued but before the poll noticed it must not lose that
//     work: either the line fires at once or pending() is already true (the shell polls
//     once more after arming, which closes the window);
//   - the latched cause (pending()) is cleared by whoever takes the interrupt: the
//     environment's handler or the queue thread, with clear() before it polls; never by
//     the plugin, whose irq_arm/irq_disarm only unmask and mask. A cause latched while
//     masked must fire on arm, so an arm that cleared it would lose that work (the kit's
//     "interrupts follow NAPI" check fails such a plugin);
//   - every call is noexcept and safe from the thread that owns the queue; raising may
//     happen on another thread (the device), so pending() is atomic;
//   - arm() and the device's raise are a store-load pair (arm: unmask, then look at the
//     latch; raise: latch, then look at the mask): a line kept in shared memory needs
//     seq_cst on both sides, as npa::sim::sim_irq has, or one side may miss the other
//     and the work waits for the next interrupt. Hardware latches the cause itself.
#pragma once

#include <concepts>

namespace npa {

template <class I>
concept maskable_irq = requires(I& i) {
    { i.arm() } noexcept;
    { i.disarm() } noexcept;
    { i.armed() } noexcept -> std::convertible_to<bool>;
};

template <class I>
concept latched_irq = requires(I& i) {
    { i.pending() } noexcept -> std::convertible_to<bool>;
    { i.clear() } noexcept;
};

template <class I>
concept irq_source = maskable_irq<I> && latched_irq<I>;

} // namespace npa
