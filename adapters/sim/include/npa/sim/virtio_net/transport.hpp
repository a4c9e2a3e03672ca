// npa/sim/virtio_net/transport.hpp: the virtio-net model's transport (part of
// virtio_net_device): the trapped calls a driver makes through npa::virtio::transport (feature
// bits, the status byte, queue size and enable, notifications, interrupt masks, the
// configuration space) and the device's resets and removal.
#pragma once

#include <npa/sim/virtio_net/device.hpp>

namespace npa::sim {

inline std::uint64_t virtio_net_device::op_features(void* ctx) noexcept {
    virtio_net_device& d = self_of(ctx);
    std::uint64_t f = d.cfg_.features;
    f &= d.cfg_.max_pairs > 1 ? ~0ull : ~virtio_net::feature::MQ;
    return f;
}

// A bit the driver takes that was not offered is dropped, and FEATURES_OK still sticks:
// QEMU's virtio_set_features keeps only what it offered (docs/real-devices.md,
// virtio-net-pci 1). The dropped bits are kept for tests (features_not_offered()).
inline void virtio_net_device::op_set_features(void* ctx, std::uint64_t f) noexcept {
    virtio_net_device& d = self_of(ctx);
    std::lock_guard g(d.mu_);
    if ((d.status_ & virtio::status_bit::FEATURES_OK) == 0) {
        const std::uint64_t offered = op_features(ctx);
        d.not_offered_ |= f & ~offered;
        d.driver_features_ = f & offered;
    }
}

inline std::uint8_t virtio_net_device::op_status(void* ctx) noexcept {
    virtio_net_device& d = self_of(ctx);
    if (d.removed_.load()) {
        return 0xFF;
    }
    std::lock_guard g(d.mu_);
    return d.status_;
}

inline void virtio_net_device::op_set_status(void* ctx, std::uint8_t s) noexcept {
    virtio_net_device& d = self_of(ctx);
    std::lock_guard g(d.mu_);
    if (d.removed_.load()) {
        return;
    }
    if (s == 0) {
        d.device_reset();
        return;
    }
    // FEATURES_OK only with VERSION_1: the model implements the 1.0 layout alone (QEMU
    // would go on with a legacy one; docs/real-devices.md, virtio-net-pci 2).
    if ((s & virtio::status_bit::FEATURES_OK) != 0 && (d.status_ & virtio::status_bit::FEATURES_OK) == 0 &&
        (d.driver_features_ & virtio::feature::VERSION_1) == 0) {
        s = static_cast<std::uint8_t>(s & ~virtio::status_bit::FEATURES_OK);
    }
    const bool starting = (s & virtio::status_bit::DRIVER_OK) != 0 &&
                          (d.status_ & virtio::status_bit::DRIVER_OK) == 0;
    d.status_ = static_cast<std::uint8_t>(s | (d.status_ & virtio::status_bit::DEVICE_NEEDS_RESET));
    if (starting) {
        d.curr_pairs_ = 1;
        d.npairs_ = 0;
        for (std::uint16_t p = 0; p < d.cfg_.max_pairs; ++p) {
            if (d.vqs_[virtio_net::rxq_index(p)].enabled && d.vqs_[virtio_net::txq_index(p)].enabled) {
                d.npairs_ = static_cast<std::uint16_t>(p + 1);
            }
        }
    }
}

inline std::uint16_t virtio_net_device::op_queue_max(void* ctx, std::uint16_t q) noexcept {
    virtio_net_device& d = self_of(ctx);
    std::lock_guard g(d.mu_);
    if (d.is_ctrlq(q)) {
        return d.cfg_.queue_max < ctrlq_max ? d.cfg_.queue_max : ctrlq_max;
    }
    return q < 2u * d.data_pairs() ? d.cfg_.queue_max : 0;
}

inline bool virtio_net_device::op_queue_enable(void* ctx, std::uint16_t q, const virtio::queue_setup& s) noexcept {
    virtio_net_device& d = self_of(ctx);
    std::lock_guard g(d.mu_);
    const bool ctrl = d.is_ctrlq(q);
    // A split ring's size is a power of two (2.7); a packed ring's any size up to the
    // maximum (2.8: its positions wrap by comparison, not by mask).
    const bool size_ok = d.has(virtio::feature::RING_PACKED) ? virtio::packed_size_ok(s.size)
                                                              : virtio::queue_size_ok(s.size);
    if ((!ctrl && q >= 2u * d.data_pairs()) || s.size > (ctrl ? ctrlq_max : d.cfg_.queue_max) || !size_ok ||
        (d.status_ & virtio::status_bit::FEATURES_OK) == 0) {
        return false;
    }
    // The three areas through guest memory, whole, and aligned as 2.7 (split) or 2.8.10
    // (packed: the descriptor ring, the driver's and the device's event areas) ask:
    // every later ring access is inside a checked range. Areas that fail leave the queue
    // as it was (the ring is checked before the device side takes it).
    vq& v = ctrl ? d.ctrl_ : d.vqs_[q];
    const bool event_idx = d.has(virtio::feature::EVENT_IDX);
    if (d.has(virtio::feature::RING_PACKED)) {
        const virtio::packed_ring r(d.mem_.translate(s.desc, virtio::packed_desc_bytes(s.size)),
                                    d.mem_.translate(s.driver, sizeof(virtio::pvirtq_event_suppress)),
                                    d.mem_.translate(s.device, sizeof(virtio::pvirtq_event_suppress)), s.size);
        if (!r.bound() || !v.dev.reset(r, virtio::packed_cursor{}, false, event_idx)) {
            return false;
        }
    } else {
        const virtio::split_ring r(d.mem_.translate(s.desc, virtio::desc_bytes(s.size)),
                                   d.mem_.translate(s.driver, virtio::avail_bytes(s.size)),
                                   d.mem_.translate(s.device, virtio::used_bytes(s.size)), s.size);
        if (!r.bound() || !v.dev.reset(r, event_idx)) {
            return false;
        }
    }
    v.s = s;
    v.enabled = true;
    v.failed = false;
    v.held.assign(s.size, false);
    return true;
}

inline void virtio_net_device::op_notify(void* ctx, std::uint16_t q) noexcept {
    virtio_net_device& d = self_of(ctx);
    if (q < d.kicks_.size()) {
        d.kicks_[q].fetch_add(1, std::memory_order_relaxed); // relaxed: a counter
    }
}

inline void virtio_net_device::op_irq_mask(void* ctx, std::uint16_t vector, bool masked) noexcept {
    virtio_net_device& d = self_of(ctx);
    if (vector < max_pairs) {
        masked ? d.irqs_[vector].disarm() : d.irqs_[vector].arm();
    }
}

inline void virtio_net_device::op_read_config(void* ctx, std::uint32_t off, void* out, std::uint32_t len) noexcept {
    virtio_net_device& d = self_of(ctx);
    virtio_net::net_config c{};
    std::memcpy(c.mac, d.cfg_.mac.data(), 6);
    // relaxed: a snapshot of the link for a config read
    c.status = d.link_up_.load(std::memory_order_relaxed) ? virtio_net::S_LINK_UP : 0;
    c.max_virtqueue_pairs = d.cfg_.max_pairs;
    c.mtu = d.cfg_.mtu;
    c.speed = 10000;
    c.duplex = 1;
    // The configuration space is as long as the offered features make it (QEMU's
    // feature-sized config: at least the MAC, then up to the last field an offered
    // feature makes valid); past that every byte reads all ones (docs/real-devices.md,
    // virtio-net-pci 3).
    const std::uint64_t f = op_features(ctx);
    std::uint32_t size = 6;
    const struct {
        std::uint64_t bits;
        std::uint32_t end;
    } ends[] = {{virtio_net::feature::STATUS, 8},
                {virtio_net::feature::MQ, 10},
                {virtio_net::feature::MTU, 12},
                {virtio_net::feature::SPEED_DUPLEX, 17},
                {virtio_net::feature::RSS | virtio_net::feature::HASH_REPORT, 24}};
    for (const auto& e : ends) {
        size = (f & e.bits) != 0 && e.end > size ? e.end : size;
    }
    auto* o = static_cast<std::uint8_t*>(out);
    for (std::uint32_t i = 0; i < len; ++i) {
        o[i] = off + i < size ? reinterpret_cast<const std::uint8_t*>(&c)[off + i] : 0xFF;
    }
}

// A driver-written reset (status 0): every queue forgotten, nothing written after it.
inline void virtio_net_device::device_reset() noexcept {
    status_ = 0;
    driver_features_ = 0;
    npairs_ = 0;
    ctrl_ = vq{};
    filter_ = rx_filter{};
    filter_.mac = cfg_.mac;
    curr_pairs_ = 1;
    batches_ = {};
    for (vq& v : vqs_) {
        v = vq{};
    }
    for (pair_state& p : pairs_) {
        p.cp[0].clear();
        p.cp[1].clear();
    }
    for (sim_irq& i : irqs_) {
        i.reset();
    }
}

// device_model's reset: the device fails and asks for a reset (2.1.2).
inline void virtio_net_device::do_reset() noexcept {
    status_ |= virtio::status_bit::DEVICE_NEEDS_RESET;
    batches_ = {};
    for (pair_state& p : pairs_) {
        p.cp[0].clear();
        p.cp[1].clear();
    }
}

inline void virtio_net_device::do_remove() noexcept {
    removed_.store(true);
    batches_ = {};
    for (pair_state& p : pairs_) {
        p.cp[0].clear();
        p.cp[1].clear();
    }
}

} // namespace npa::sim
