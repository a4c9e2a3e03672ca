// The reference plugin passes the conformance kit on the simnic.
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

using npa::sim::simnic_plugin;
using npa::sim::simnic_rig;

static_assert(npa::check_plugin<simnic_plugin<simnic_rig::api_type>, simnic_rig::api_type>());
static_assert(npa::reports_health<simnic_plugin<simnic_rig::api_type>>);

NPA_SIM_CONFORMANCE_SUITE(simnic_plugin, simnic_rig)
