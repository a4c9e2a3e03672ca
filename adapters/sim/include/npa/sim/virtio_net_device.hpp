// npa/sim/virtio_net_device.hpp: the virtio-net device model; it lives in
// npa/sim/virtio_net/ (device.hpp and its parts by job).
#pragma once

#include <npa/sim/virtio_net/device.hpp>
