// npa/linux/vhost_user/virtq_device.hpp: the device side of one virtqueue as a vhost-user
// back end serves it: npa's virtio::device_queue (split or packed, whichever the front end
// negotiated; virtio/device_queue.hpp), with a packed ring's position taken and given in
// vhost-user's encoding of SET_VRING_BASE / GET_VRING_BASE (ring_base.hpp).
#pragma once

#include <npa/linux/vhost_user/ring_base.hpp>
#include <npa/virtio/device_queue.hpp>

#include <cstdint>

namespace npa::vhost_user {

class virtq_device : public virtio::device_queue {
public:
    using device_queue::reset;
    /// `base`: SET_VRING_BASE's value, encoded as encode_base() says. `event_idx`:
    /// VIRTIO_F_EVENT_IDX negotiated (enable_notify() names a position, RING_EVENT_FLAGS_DESC).
    [[nodiscard]] bool reset(const virtio::packed_ring& r, std::uint16_t base, bool indirect = false,
                             bool event_idx = false) noexcept {
        return device_queue::reset(r, decode_base(base), indirect, event_idx);
    }
    /// Where the front end resumes (GET_VRING_BASE).
    [[nodiscard]] std::uint16_t base() const noexcept {
        return packed() ? encode_base(packed_side().last_avail()) : split_side().last_avail();
    }
};

} // namespace npa::vhost_user
