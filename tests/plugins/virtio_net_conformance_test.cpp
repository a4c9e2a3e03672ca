// The virtio-net plugin passes the conformance kit on the sim virtio-net device model,
// every hostile-device case included.
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/virtio_net_rig.hpp>

using npa::virtio_net_plugin;
using npa::sim::virtio_net_rig;

static_assert(npa::check_plugin<virtio_net_plugin<virtio_net_rig::api_type>, virtio_net_rig::api_type>());
static_assert(npa::reports_health<virtio_net_plugin<virtio_net_rig::api_type>>);
static_assert(npa::sim::rig_has_rx_completion_faults<virtio_net_rig>);

NPA_SIM_CONFORMANCE_SUITE(virtio_net_plugin, virtio_net_rig)
