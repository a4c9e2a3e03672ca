// npa/linux/virtio_net_defs.hpp: the virtio-net header a TAP with IFF_VNET_HDR puts in
// front of every frame (virtio spec 1.2, section 5.1.6 "Device Operation",
// struct virtio_net_hdr without num_buffers). Field names follow the spec. Defined here
// because <linux/virtio_net.h> is not valid C++ (a member named `class`).
#pragma once

#include <cstddef>
#include <cstdint>

namespace npa::lnx {

struct virtio_net_hdr {
    std::uint8_t flags;
    std::uint8_t gso_type;
    std::uint16_t hdr_len; // little-endian on the wire; TAP uses host order on LE hosts
    std::uint16_t gso_size;
    std::uint16_t csum_start;
    std::uint16_t csum_offset;
};
static_assert(sizeof(virtio_net_hdr) == 10);
static_assert(offsetof(virtio_net_hdr, gso_type) == 1);
static_assert(offsetof(virtio_net_hdr, hdr_len) == 2);
static_assert(offsetof(virtio_net_hdr, gso_size) == 4);
static_assert(offsetof(virtio_net_hdr, csum_start) == 6);
static_assert(offsetof(virtio_net_hdr, csum_offset) == 8);

inline constexpr std::uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
inline constexpr std::uint8_t VIRTIO_NET_HDR_F_DATA_VALID = 2;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_UDP = 3;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
inline constexpr std::uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;

} // namespace npa::lnx
