// npa/sim/vmxnet3_device.hpp: the vmxnet3 backend device model; it lives in
// npa/sim/vmxnet3/ (device.hpp and its parts by job).
#pragma once

#include <npa/sim/vmxnet3/device.hpp>
