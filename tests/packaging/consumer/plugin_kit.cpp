// A plugin author's test outside the npa tree: the project's own plugin types, checked by
// the conformance kit of the installed package (npa::sim), with no test framework.
#include <npa/sim/conformance.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string_view>

namespace {

/// This project's plugin for the simnic: the reference plugin under its own name.
template <class Api>
class my_plugin : public npa::sim::simnic_plugin<Api> {};

/// The same plugin with a bug the kit must catch: its TX takes nothing, ever.
template <class Api>
class stuck_tx_plugin : public npa::sim::simnic_plugin<Api> {
public:
    std::uint16_t tx_burst(std::uint16_t, std::span<typename Api::buffer_type>) noexcept {
        return 0;
    }
};

} // namespace

int main() {
    // The good plugin passes everything, reported by the kit's printing reporter.
    if (npa::sim::conformance<my_plugin, npa::sim::simnic_rig>::run_all() != 0) {
        std::puts("npa kit consumer: the plugin failed the kit");
        return 1;
    }
    // The broken one fails, and the failure names the check: a reporter of our own.
    std::uint32_t tx_failures = 0;
    const std::uint32_t failed = npa::sim::conformance<stuck_tx_plugin, npa::sim::simnic_rig>::run_all(
        [&](const npa::sim::conformance_result& r) {
            if (!r.v.ok && r.hostile_case == nullptr &&
                std::string_view(r.check) == "TX of N packets all completed") {
                ++tx_failures;
            }
        });
    if (failed == 0 || tx_failures != 1) {
        std::printf("npa kit consumer: the broken plugin was not caught (%u failures)\n", failed);
        return 2;
    }
    std::puts("npa kit consumer: ok");
    return 0;
}
