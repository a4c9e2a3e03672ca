// npa/linux/vhost_user/ring_base.hpp: the ring base vhost-user carries for a packed ring
// (SET_VRING_BASE, GET_VRING_BASE), read and written the same way by the front end
// (transport.hpp) and the back end (virtq_device.hpp).
#pragma once

#include <npa/virtio/packed_ring.hpp>

#include <cstdint>

namespace npa::vhost_user {

/// vhost-user's ring base of a packed ring (SET_VRING_BASE, GET_VRING_BASE): the position in
/// bits 0..14, the wrap counter in bit 15, as DPDK's vhost library and QEMU carry it
/// (lib/vhost/vhost_user.c vhost_user_set_vring_base; the used side resumes where the
/// available side is, since the ring was stopped with every buffer taken marked used).
[[nodiscard]] constexpr std::uint16_t encode_base(virtio::packed_cursor c) noexcept {
    return static_cast<std::uint16_t>((c.index & 0x7FFFu) | (c.wrap ? 0x8000u : 0u));
}
[[nodiscard]] constexpr virtio::packed_cursor decode_base(std::uint16_t v) noexcept {
    return {static_cast<std::uint16_t>(v & 0x7FFFu), (v & 0x8000u) != 0};
}
static_assert(encode_base({0, true}) == 0x8000 && decode_base(0x8005).index == 5 &&
              !decode_base(5).wrap);

} // namespace npa::vhost_user
