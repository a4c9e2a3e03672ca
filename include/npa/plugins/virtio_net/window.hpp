// npa/plugins/virtio_net/window.hpp: what the virtio-net plugin is given to reach its device.
//
// The device window of DESIGN.md section 1 for a virtio network device: a transport
// (npa/virtio/transport.hpp: features, status, queue setup, notifications, interrupt
// masks, the configuration space) and the memory the plugin lays its virtqueues out in.
// The control virtqueue (MAC, RX mode, VLANs, the number of queue pairs) is not reachable
// from here: it belongs to the shell's control path. A sim device model, a virtio-pci
// binding or a vhost-user front end builds the window; the plugin only uses it.
#pragma once

#include <npa/config.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/virtio/transport.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::virtio_net {

/// A block of driver memory the device can reach.
struct ring_memory {
    std::byte* virt = nullptr;
    iova_t iova = 0;
    std::size_t size = 0;
};

class window {
public:
    window() noexcept = default;
    window(virtio::transport t, ring_memory rings) noexcept : t_(t), rings_(rings) {}

    [[nodiscard]] bool bound() const noexcept { return t_.bound() && rings_.virt != nullptr; }
    [[nodiscard]] const virtio::transport& transport() const noexcept { return t_; }
    [[nodiscard]] ring_memory ring_area() const noexcept { return rings_; }
    [[nodiscard]] bool present() const noexcept { return t_.present(); }

    // ---- configuration space (5.1.4), the fields the data path may read ----------------------
    [[nodiscard]] std::uint16_t max_virtqueue_pairs() const noexcept { return read16(8); }
    [[nodiscard]] std::uint16_t mtu() const noexcept { return read16(10); }
    [[nodiscard]] std::uint16_t net_status() const noexcept { return read16(6); }

private:
    [[nodiscard]] std::uint16_t read16(std::uint32_t off) const noexcept {
        std::uint8_t b[2] = {0, 0};
        t_.read_config(off, b, 2);
        return load_le16(b);
    }

    virtio::transport t_{};
    ring_memory rings_{};
};

} // namespace npa::virtio_net
