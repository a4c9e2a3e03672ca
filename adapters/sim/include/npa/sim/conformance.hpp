// npa/sim/conformance.hpp: the plugin conformance kit, header-only, with no test framework.
//
// Parameterised by (plugin, device model): the plugin is a class template over the shell
// API, the device model comes as a rig (simnic_rig.hpp shows the members a rig has). Every
// check returns a verdict whose message says what went wrong: the device's violation (ring,
// slot, rule), the shell API's ownership error (buffer, who held it), or the audit after
// detach (how many buffers the plugin never handed back). The tests of the kit itself use
// that to show that deliberately broken plugins are caught.
//
// Three ways to run it:
//   - every check and hostile case, outcomes to a reporter of your own, or to the printing
//     one here (no test framework needed):
//         int main() { return npa::sim::conformance<my_plugin, my_rig>::run_all() == 0 ? 0 : 1; }
//   - one check: npa::sim::conformance<P, Rig>::tx_all_completed() and so on (bounded in
//     device steps), or run(check) to put it under its wall-clock watchdog as well;
//   - as doctest test cases, with conformance_doctest.hpp:
//         NPA_SIM_CONFORMANCE_SUITE(my_plugin, my_rig)
//     (NPA_SIM_CONFORMANCE_THREADED(my_plugin, my_rig): the threaded checks alone, for a
//     suite run under ThreadSanitizer).
//
// The kit lives in npa/sim/conformance/, one job per header: report.hpp (verdict and
// reporters), hostile_cases.hpp (the hostile-device table), kit.hpp (the conformance class),
// bench.hpp (the steps the checks share), dma_check.hpp (the device after detach: DMA into
// released buffers), watchdog.hpp (the bounds every case runs under: device steps and wall
// time), lifecycle_checks.hpp, tx_checks.hpp, rx_checks.hpp, hostile_check.hpp and
// threaded_checks.hpp (the device on its own thread: a torn completion, fields read before
// the done bit, is named);
// rejected.hpp stands in for the checks when the plugin type fails check_plugin, so that
// check_plugin's sentence is the whole diagnostic.
#pragma once

#include <npa/sim/conformance/hostile_cases.hpp>
#include <npa/sim/conformance/kit.hpp>
#include <npa/sim/conformance/report.hpp>
#include <npa/sim/conformance/watchdog.hpp>
