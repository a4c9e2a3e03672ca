// npa/plugins/virtio_net/window.hpp: what the virtio-net plugin is given to reach its device.
//
// The device window of DESIGN.md section 1 for a virtio network device: a transport
// (npa/virtio/transport.hpp: features, status, queue setup, notifications, interrupt
// masks, the configuration space) and the memory the plugin lays its virtqueues out in.
// The control virtqueue (MAC, RX mode, VLANs, the number of queue pairs) is not reachable
// from here: it belongs to the shell's control path (npa/control/virtio_net.hpp). The
// window only carries the hook that lets the plugin's initialisation place it: the
// controlq must be set up between FEATURES_OK and DRIVER_OK (3.1.1), which the plugin
// runs, and with MQ the number of queue pairs set (VQ_PAIRS_SET) after DRIVER_OK and
// before the plugin uses any pair but the first (5.1.6.5.5). A sim device model, a virtio-pci binding or a vhost-user front end builds the
// window; the plugin only uses it.
#pragma once

#include <npa/config.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/status.hpp>
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

/// The shell's control channel, as far as the plugin's initialisation sees it: whether
/// there is one, and the three moments it must act. The plugin never sends a command
/// itself; it only tells the channel when the device is live.
struct control_hook {
    void* ctx = nullptr;
    /// Between FEATURES_OK and DRIVER_OK: lay out and enable controlq `index` with the
    /// negotiated `features`; `pairs` queue pairs were set up. False: the device refused it.
    bool (*enable)(void* ctx, const virtio::transport& t, std::uint64_t features, std::uint16_t index,
                   std::uint16_t pairs) noexcept = nullptr;
    /// After DRIVER_OK, before the plugin posts a buffer on any queue: what must reach the
    /// device first (with MQ and more than one pair, VQ_PAIRS_SET, 5.1.6.5.5). Its status
    /// when the device refused it or did not answer.
    status (*start)(void* ctx) noexcept = nullptr;
    /// After the device was reset: the controlq is gone.
    void (*disable)(void* ctx) noexcept = nullptr;
};

class window {
public:
    window() noexcept = default;
    window(virtio::transport t, ring_memory rings) noexcept : t_(t), rings_(rings) {}

    [[nodiscard]] bool bound() const noexcept { return t_.bound() && rings_.virt != nullptr; }
    [[nodiscard]] const virtio::transport& transport() const noexcept { return t_; }
    [[nodiscard]] ring_memory ring_area() const noexcept { return rings_; }
    [[nodiscard]] bool present() const noexcept { return t_.present(); }

    /// Gives the window a control channel's hook (null: no controlq, CTRL_VQ not taken).
    void set_control(const control_hook* h) noexcept { ctrl_ = h; }
    [[nodiscard]] const control_hook* control() const noexcept { return ctrl_; }

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
    const control_hook* ctrl_ = nullptr;
};

} // namespace npa::virtio_net
