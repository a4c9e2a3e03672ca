// The reference plugin built as a plugin image passes the conformance kit through the
// loader: every check and every hostile device case, with the same rig as the compiled-in
// plugin (tests/sim/conformance_test.cpp), through one operations table.
#include <npa/image/image_rig.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/simnic_rig.hpp>

#include "image_support.hpp"

using npa::image::loaded_plugin;
using simnic_image_rig = npa::image::image_rig<npa::sim::simnic_rig, &npa::image::test::simnic_image>;

static_assert(npa::check_plugin<loaded_plugin<simnic_image_rig::api_type>, simnic_image_rig::api_type>());

NPA_SIM_CONFORMANCE_SUITE(loaded_plugin, simnic_image_rig)
