// npa/sim/conformance/rejected.hpp: the kit for a plugin type that fails check_plugin
// (part of npa/sim/conformance.hpp, included by kit.hpp).
//
// The kit's checks are never instantiated for such a type: this specialization of
// conformance replaces them, so the only errors are check_plugin's sentences, one per
// missing requirement. It keeps the kit's public names (checks(), run_all(), each check by
// name, hostile(), runs(), run()) so that code using the kit gives no follow-on errors either: a
// class whose own static_assert fails is marked invalid by clang, and every later use of
// one of its members becomes another error ("no member named 'tx_all_completed' in ...").
// That is why check_plugin is evaluated here for its diagnostics only, not asserted.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/sim/conformance/hostile_cases.hpp>
#include <npa/sim/conformance/kit.hpp>
#include <npa/sim/conformance/report.hpp>

#include <array>
#include <chrono>
#include <cstdint>

namespace npa::sim {

template <template <class> class Plugin, class Rig>
    requires(!plugin<Plugin<typename Rig::api_type>, typename Rig::api_type>)
class conformance<Plugin, Rig> {
public:
    using api_type = typename Rig::api_type;
    using plugin_type = Plugin<api_type>;
    // check_plugin static_asserts each requirement the plugin misses, in a sentence.
    static_assert((static_cast<void>(check_plugin<plugin_type, api_type>()), true));

    struct named_check {
        const char* name;
        verdict (*run)();
    };
    static constexpr std::array<named_check, 0> checks() noexcept { return {}; }
    static constexpr std::array<named_check, 0> threaded_checks() noexcept { return {}; }
    static constexpr bool runs_threaded = false;
    template <class Report>
    static std::uint32_t run_all(Report&&) {
        return 1;
    }
    static std::uint32_t run_all() { return 1; }
    static verdict run(const named_check&, std::chrono::milliseconds = {}) { return rejected(); }
    static verdict run(const hostile_case&, std::chrono::milliseconds = {}) { return rejected(); }

    static verdict attach_detach() { return rejected(); }
    static verdict tx_all_completed() { return rejected(); }
    static verdict rx_refill_keeps_ring_full() { return rejected(); }
    static verdict ring_wrap() { return rejected(); }
    static verdict tx_ring_full_short_count() { return rejected(); }
    static verdict empty_pool_stops_refill() { return rejected(); }
    static verdict detach_returns_every_buffer() { return rejected(); }
    static verdict napi_budget() { return rejected(); }
    static verdict threaded_full_speed() { return rejected(); }
    static verdict threaded_write_jitter() { return rejected(); }
    static verdict hostile(const hostile_case&) { return rejected(); }
    static constexpr bool runs(const hostile_case&) noexcept { return false; }

private:
    static verdict rejected() {
        verdict v;
        v.fail("the plugin type is not an npa::plugin (check_plugin says why)");
        return v;
    }
};

} // namespace npa::sim
