// The conformance kit (adapters/sim/include/npa/sim/conformance) given a plugin that fails
// npa::check_plugin: the kit must not instantiate its checks for it, so the diagnostic is
// check_plugin's sentence and nothing after it: no follow-on errors from the kit's own
// templates ("no member named 'tx_all_completed' in 'npa::sim::conformance<...>'"), which
// clang gave when the kit asserted check_plugin in its own class. Each case is the reference
// plugin (simnic_plugin) with one member hidden, used the three ways a plugin author uses
// the kit: the doctest suite, one check by name, run_all(). Registered for GCC and clang.
//
// bound: 1 errors, 40 lines
// case 0 conforming: compiles
// case 1 no_stats: a plugin needs `const npa::queue_stats& stats(std::uint16_t q) const noexcept` && !no member named
// case 2 no_tx_reap: a plugin needs `std::uint32_t tx_reap(std::uint16_t) noexcept` && !no member named
// case 3 no_irq_arm: a plugin needs `void irq_arm(std::uint16_t) noexcept` && !no member named
// case 4 no_name: a plugin declares `static constexpr const char* name` && !no member named
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#ifndef CASE
#define CASE 0
#endif

// The reference plugin, with every member but the case's one made public again.
template <class Api>
class plugin : private npa::sim::simnic_plugin<Api> {
    using base = npa::sim::simnic_plugin<Api>;

public:
    using typename base::device_type;
#if CASE != 4
    using base::name;
#endif
    using base::attach;
    using base::capabilities;
    using base::detach;
    using base::irq_disarm;
    using base::rx_burst;
    using base::tx_burst;
    using base::tx_in_flight;
#if CASE != 1
    using base::stats;
#endif
#if CASE != 2
    using base::tx_reap;
#endif
#if CASE != 3
    using base::irq_arm;
#endif
};

using npa::sim::simnic_rig;
using kit = npa::sim::conformance<plugin, simnic_rig>;

NPA_SIM_CONFORMANCE_SUITE(plugin, simnic_rig)

TEST_CASE("one check by name") {
    CHECK(kit::tx_all_completed().ok);
    CHECK(kit::detach_returns_every_buffer().ok);
}

TEST_CASE("run_all") { CHECK(kit::run_all() == 0); }
