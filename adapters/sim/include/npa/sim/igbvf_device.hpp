// npa/sim/igbvf_device.hpp: the 82576 VF device model; it lives in npa/sim/igbvf/
// (device.hpp and its parts by job).
#pragma once

#include <npa/sim/igbvf/device.hpp>
