// The 82576 VF plugin as a plugin image: the same source as the compiled-in one.
#include <npa/image/entry.hpp>
#include <npa/plugins/igbvf/plugin.hpp>

NPA_PLUGIN_IMAGE(npa::igbvf_plugin)
