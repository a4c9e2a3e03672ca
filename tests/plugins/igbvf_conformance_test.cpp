// The igbvf plugin passes the conformance kit on the sim 82576 VF, every hostile case included.
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/igbvf_rig.hpp>

using npa::igbvf_plugin;
using npa::sim::igbvf_rig;

static_assert(npa::check_plugin<igbvf_plugin<igbvf_rig::api_type>, igbvf_rig::api_type>());
static_assert(npa::reports_health<igbvf_plugin<igbvf_rig::api_type>>);
// Every hostile case runs, RX completion drop, delay and reorder included.
static_assert(npa::sim::rig_has_rx_completion_faults<igbvf_rig>);

NPA_SIM_CONFORMANCE_SUITE(igbvf_plugin, igbvf_rig)
