// npa/plugins/virtio_net/vq.hpp: one virtqueue as the virtio-net plugin keeps it, the part
// its TX and RX engines (tx.hpp, rx.hpp) share.
#pragma once

#include <npa/virtio/ring_driver.hpp>

#include <cstdint>
#include <memory>

namespace npa {

/// One virtqueue: its driver for the layout attach chose (virtio::ring_driver: visit()
/// once per burst on the data path), and what the plugin keeps beside it.
template <class Api>
struct virtio_net_vq : virtio::ring_driver {
    using buffer_type = typename Api::buffer_type;

    std::unique_ptr<std::uint16_t[]> state;
    std::unique_ptr<buffer_type[]> bufs;  // the buffer at each head descriptor / buffer id
    std::unique_ptr<std::uint8_t[]> held; // RX: passed over, held until detach
    std::uint16_t index = 0;              // virtqueue number
};

} // namespace npa
