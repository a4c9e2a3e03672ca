// The reference plugin as a plugin image: the same source as the compiled-in one.
#include <npa/image/entry.hpp>
#include <npa/sim/simnic_plugin.hpp>

NPA_PLUGIN_IMAGE(npa::sim::simnic_plugin)
