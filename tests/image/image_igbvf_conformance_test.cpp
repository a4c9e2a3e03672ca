// The 82576 VF plugin built as a plugin image passes the conformance kit through the loader
// on the sim VF, every hostile case included, as the compiled-in plugin does
// (tests/plugins/igbvf_conformance_test.cpp).
#include <npa/image/image_rig.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/igbvf_rig.hpp>

#include "image_support.hpp"

using npa::image::loaded_plugin;
using igbvf_image_rig = npa::image::image_rig<npa::sim::igbvf_rig, &npa::image::test::igbvf_image>;

static_assert(npa::check_plugin<loaded_plugin<igbvf_image_rig::api_type>, igbvf_image_rig::api_type>());

NPA_SIM_CONFORMANCE_SUITE(loaded_plugin, igbvf_image_rig)
