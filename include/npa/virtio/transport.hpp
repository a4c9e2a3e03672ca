// npa/virtio/transport.hpp: how a virtio driver reaches its device, whatever carries it.
//
// A virtio device is the same to its driver over every transport (virtio 1.2 section 4):
// feature bits, a status byte, a configuration space, and virtqueues the driver lays out in
// its own memory and tells the device about, each with a notification (the driver's
// "kick") and an interrupt vector. The transport is what differs: virtio-pci puts these in
// capability structures of a BAR (4.1.4), vhost-user in messages on a socket, the sim in
// a device model's trapped calls. npa::virtio::transport is that seam: a table of the
// few operations a driver needs, and a context. A transport implements it; a plugin
// (npa/plugins/virtio_net) only calls it.
//
// The generic bits of section 6 (reserved feature bits) and the status bits of section
// 2.1 live here too: every virtio device type shares them.
#pragma once

#include <npa/config.hpp>

#include <cstdint>

namespace npa::virtio {

// ---- device status (2.1) ---------------------------------------------------------------------
namespace status_bit {
inline constexpr std::uint8_t ACKNOWLEDGE = 1;
inline constexpr std::uint8_t DRIVER = 2;
inline constexpr std::uint8_t DRIVER_OK = 4;
inline constexpr std::uint8_t FEATURES_OK = 8;
inline constexpr std::uint8_t DEVICE_NEEDS_RESET = 64;
inline constexpr std::uint8_t FAILED = 128;
} // namespace status_bit

// ---- reserved feature bits (6) ----------------------------------------------------------------
namespace feature {
inline constexpr std::uint64_t INDIRECT_DESC = 1ull << 28;
inline constexpr std::uint64_t EVENT_IDX = 1ull << 29;
inline constexpr std::uint64_t VERSION_1 = 1ull << 32;
inline constexpr std::uint64_t ACCESS_PLATFORM = 1ull << 33;
inline constexpr std::uint64_t RING_PACKED = 1ull << 34;
inline constexpr std::uint64_t IN_ORDER = 1ull << 35;
inline constexpr std::uint64_t ORDER_PLATFORM = 1ull << 36;
inline constexpr std::uint64_t SR_IOV = 1ull << 37;
inline constexpr std::uint64_t NOTIFICATION_DATA = 1ull << 38;
} // namespace feature

/// Where a virtqueue's three areas are (device addresses), its size and its interrupt
/// vector: what virtio-pci writes to queue_desc / queue_driver / queue_device /
/// queue_size / queue_msix_vector before queue_enable (4.1.4.3), and vhost-user sends as
/// SET_VRING_NUM / SET_VRING_ADDR.
struct queue_setup {
    iova_t desc = 0;
    iova_t driver = 0; ///< the available ring
    iova_t device = 0; ///< the used ring
    std::uint16_t size = 0;
    std::uint16_t vector = 0;
};

/// The operations. Each takes the transport's context first. Values are in host order (a
/// transport over little-endian registers converts inside). All are control-path calls
/// except notify() and irq_mask(), which the data path makes.
struct transport_ops {
    /// Feature bits the device offers (all 64: virtio-pci reads both feature selectors).
    std::uint64_t (*device_features)(void* ctx) noexcept;
    /// Feature bits the driver accepts (a subset of device_features()).
    void (*set_driver_features)(void* ctx, std::uint64_t f) noexcept;
    /// The device status byte; 0xFF when the device is gone (a PCI master abort).
    std::uint8_t (*get_status)(void* ctx) noexcept;
    /// Writes the device status byte; 0 resets the device (2.4), which then writes nothing
    /// more to any ring or buffer.
    void (*set_status)(void* ctx, std::uint8_t s) noexcept;
    /// The largest size queue q may have; 0 when there is no queue q.
    std::uint16_t (*queue_max)(void* ctx, std::uint16_t q) noexcept;
    /// Tells the device where queue q is and enables it; false when the device refuses.
    bool (*queue_enable)(void* ctx, std::uint16_t q, const queue_setup& s) noexcept;
    /// The driver's notification for queue q (virtio-pci: a write to its notify address).
    void (*notify)(void* ctx, std::uint16_t q) noexcept;
    /// Masks or unmasks an interrupt vector (virtio-pci: the MSI-X table's mask bit). A
    /// masked vector latches what it would have delivered and delivers it when unmasked.
    void (*irq_mask)(void* ctx, std::uint16_t vector, bool masked) noexcept;
    /// Reads len bytes of the device-specific configuration space at off (little-endian
    /// fields, as the device stores them).
    void (*read_config)(void* ctx, std::uint32_t off, void* out, std::uint32_t len) noexcept;
};

/// A transport: its operations and the context they take.
struct transport {
    const transport_ops* ops = nullptr;
    void* ctx = nullptr;

    [[nodiscard]] bool bound() const noexcept { return ops != nullptr; }
    [[nodiscard]] std::uint64_t device_features() const noexcept { return ops->device_features(ctx); }
    void set_driver_features(std::uint64_t f) const noexcept { ops->set_driver_features(ctx, f); }
    [[nodiscard]] std::uint8_t status() const noexcept { return ops->get_status(ctx); }
    void set_status(std::uint8_t s) const noexcept { ops->set_status(ctx, s); }
    [[nodiscard]] std::uint16_t queue_max(std::uint16_t q) const noexcept { return ops->queue_max(ctx, q); }
    [[nodiscard]] bool queue_enable(std::uint16_t q, const queue_setup& s) const noexcept {
        return ops->queue_enable(ctx, q, s);
    }
    void notify(std::uint16_t q) const noexcept { ops->notify(ctx, q); }
    void irq_mask(std::uint16_t vector, bool masked) const noexcept { ops->irq_mask(ctx, vector, masked); }
    void read_config(std::uint32_t off, void* out, std::uint32_t len) const noexcept {
        ops->read_config(ctx, off, out, len);
    }
    /// The device is gone: its status reads all ones.
    [[nodiscard]] bool present() const noexcept { return status() != 0xFF; }
};

} // namespace npa::virtio
