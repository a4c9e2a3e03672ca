// npa::irq_source (concepts/irq_source.hpp), the failing way.
//
// case 0 conforming: compiles
// case 1 no_arm: maskable_irq && i.arm()
// case 2 arm_may_throw: maskable_irq
// case 3 no_disarm: maskable_irq && i.disarm()
// case 4 no_armed: maskable_irq && i.armed()
// case 5 no_pending: latched_irq && i.pending()
// case 6 pending_not_a_bool: latched_irq && i.pending()
// case 7 no_clear: latched_irq && i.clear()
#include <npa/concepts/irq_source.hpp>

#ifndef CASE
#define CASE 0
#endif

struct irq {
#if CASE == 2
    void arm() {}
#elif CASE != 1
    void arm() noexcept {}
#endif
#if CASE != 3
    void disarm() noexcept {}
#endif
#if CASE != 4
    bool armed() const noexcept { return false; }
#endif
#if CASE == 6
    struct opaque {};
    opaque pending() const noexcept { return {}; }
#elif CASE != 5
    bool pending() const noexcept { return false; }
#endif
#if CASE != 7
    void clear() noexcept {}
#endif
};

#define TARGETS(lo, hi) (CASE >= (lo) && CASE <= (hi))
static_assert(TARGETS(1, 4) || npa::maskable_irq<irq>, "NPA_CF_COLLATERAL maskable_irq");
static_assert(TARGETS(5, 7) || npa::latched_irq<irq>, "NPA_CF_COLLATERAL latched_irq");

static_assert(npa::irq_source<irq>);
