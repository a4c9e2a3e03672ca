// npa/virtio/ring_driver.hpp: the driver side of one virtqueue in whichever layout was
// negotiated, split (split_ring.hpp) or packed (packed_ring.hpp, VIRTIO_F_RING_PACKED),
// behind one interface. The layout is fixed when the queue is set up; a data path takes
// the layout's driver once per burst through visit() and is a template over it (each call
// on it then inlines, and the frame loop has no dispatch); the calls below dispatch per call.
//
// Freestanding: no exceptions, no allocation.
#pragma once

#include <npa/virtio/barriers.hpp>
#include <npa/virtio/packed_ring.hpp>
#include <npa/virtio/split_ring.hpp>
#include <npa/virtio/transport.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::virtio {

/// The barriers negotiated `features` ask of every virtqueue of the device: the platform's
/// with VIRTIO_F_ORDER_PLATFORM (6.1; Linux clears weak_barriers in __vring_new_virtqueue).
[[nodiscard]] constexpr ordering ordering_of(std::uint64_t features) noexcept {
    return (features & feature::ORDER_PLATFORM) != 0 ? ordering::platform : ordering::smp;
}

struct ring_driver {
    split_driver split;
    packed_driver packed;
    bool is_packed = false;

    /// Calls fn with the queue's driver (split_driver or packed_driver).
    template <class Fn>
    decltype(auto) visit(Fn&& fn) noexcept {
        return is_packed ? fn(packed) : fn(split);
    }
    template <class Fn>
    decltype(auto) visit(Fn&& fn) const noexcept {
        return is_packed ? fn(packed) : fn(split);
    }
    /// The private state words a queue of n entries needs in either layout.
    [[nodiscard]] static constexpr std::size_t state_words(std::uint32_t n,
                                                           bool packed_layout) noexcept {
        return packed_layout ? packed_driver::state_words(n) : split_driver::state_words(n);
    }
    [[nodiscard]] std::uint32_t size() const noexcept {
        return visit([](const auto& d) { return d.size(); });
    }
    [[nodiscard]] std::uint32_t in_flight() const noexcept {
        return visit([](const auto& d) { return d.in_flight(); });
    }
    [[nodiscard]] std::uint32_t used_ready() const noexcept {
        return visit([](const auto& d) { return d.used_ready(); });
    }
    [[nodiscard]] bool enable_interrupts() noexcept {
        return visit([](auto& d) { return d.enable_interrupts(); });
    }
    template <class Fn>
    void drain_in_flight(Fn&& fn) noexcept {
        visit([&](auto& d) { d.drain_in_flight(fn); });
    }
    /// The barriers both layouts' drivers use (barriers.hpp; `platform` with
    /// VIRTIO_F_ORDER_PLATFORM): set once when the queue is set up.
    void set_ordering(ordering o) noexcept {
        split.set_ordering(o);
        packed.set_ordering(o);
    }
    /// Unbound, split: as before the queue was set up.
    void clear() noexcept {
        split = split_driver{};
        packed = packed_driver{};
        is_packed = false;
    }
};

} // namespace npa::virtio
