// The vmxnet3 plugin passes the conformance kit on the sim vmxnet3 device model,
// every hostile-device case included.
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/vmxnet3_rig.hpp>

using npa::vmxnet3_plugin;
using npa::sim::vmxnet3_rig;

static_assert(npa::check_plugin<vmxnet3_plugin<vmxnet3_rig::api_type>, vmxnet3_rig::api_type>());
static_assert(npa::reports_health<vmxnet3_plugin<vmxnet3_rig::api_type>>);
// Every hostile case runs, RX completion drop, delay and reorder included.
static_assert(npa::sim::rig_has_rx_completion_faults<vmxnet3_rig>);

NPA_SIM_CONFORMANCE_SUITE(vmxnet3_plugin, vmxnet3_rig)
