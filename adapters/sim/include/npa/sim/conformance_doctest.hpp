// npa/sim/conformance_doctest.hpp: the conformance kit (conformance.hpp) as doctest test
// cases. A plugin author who uses doctest runs the whole kit with one line:
//
//     #include <npa/sim/conformance_doctest.hpp>
//     NPA_SIM_CONFORMANCE_SUITE(my_plugin, my_rig)
//
// One test case holds the checks, one subcase each; a second holds the hostile-device cases;
// a third the checks with the device on a thread of its own (conformance/threaded_checks.hpp),
// which NPA_SIM_CONFORMANCE_THREADED(my_plugin, my_rig) also registers alone (for a suite
// run under ThreadSanitizer). Each runs under its watchdog (conformance/watchdog.hpp).
// Without doctest, conformance<P, Rig>::run_all() runs the same checks (conformance.hpp).
#pragma once

#include <doctest/doctest.h>

#include <npa/sim/conformance.hpp>

#include <string>

/// Checks a verdict inside a doctest test case, printing its message on failure.
#define NPA_SIM_CHECK_VERDICT(expr)                                                          \
    do {                                                                                     \
        const ::npa::sim::verdict npa_v_ = (expr);                                           \
        CHECK_MESSAGE(npa_v_.ok, npa_v_.message);                                            \
    } while (0)

/// The threaded checks of the kit for a plugin template on a rig, as one doctest test case.
#define NPA_SIM_CONFORMANCE_THREADED(PluginTemplate, Rig)                                    \
    TEST_CASE("conformance " #PluginTemplate " on " #Rig ": device on its own thread") {    \
        using npa_kit_ = ::npa::sim::conformance<PluginTemplate, Rig>;                       \
        if (!npa_kit_::runs_threaded) {                                                      \
            MESSAGE("threaded checks not run: the rig's device cannot run on a thread of "   \
                    "its own");                                                              \
            return;                                                                          \
        }                                                                                    \
        for (const auto& npa_c_ : npa_kit_::threaded_checks()) {                             \
            SUBCASE(npa_c_.name) { NPA_SIM_CHECK_VERDICT(npa_kit_::run(npa_c_)); }           \
        }                                                                                    \
    }

/// The whole conformance kit for a plugin template on a rig, as doctest test cases.
#define NPA_SIM_CONFORMANCE_SUITE(PluginTemplate, Rig)                                       \
    NPA_SIM_CONFORMANCE_THREADED(PluginTemplate, Rig)                                        \
    TEST_CASE("conformance " #PluginTemplate " on " #Rig) {                                  \
        for (const auto& npa_c_ : ::npa::sim::conformance<PluginTemplate, Rig>::checks()) {  \
            SUBCASE(npa_c_.name) {                                                           \
                NPA_SIM_CHECK_VERDICT(                                                       \
                    (::npa::sim::conformance<PluginTemplate, Rig>::run(npa_c_)));            \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    TEST_CASE("conformance " #PluginTemplate " on " #Rig ": hostile device") {              \
        for (const ::npa::sim::hostile_case& npa_c_ : ::npa::sim::hostile_cases()) {         \
            if (!::npa::sim::conformance<PluginTemplate, Rig>::runs(npa_c_)) {               \
                MESSAGE((std::string("hostile case not run (no such fault in the device model): ") + \
                         npa_c_.name));                                                      \
                continue;                                                                    \
            }                                                                                \
            INFO((std::string("hostile case: ") + npa_c_.name));                             \
            NPA_SIM_CHECK_VERDICT(                                                           \
                (::npa::sim::conformance<PluginTemplate, Rig>::run(npa_c_)));                \
        }                                                                                    \
    }
