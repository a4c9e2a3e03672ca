// npa/plugins/virtio_net/defs.hpp: the virtio network device's ABI (virtio 1.2 section
// 5.1): feature bits, the per-packet header, the configuration space. Field names are the
// specification's.
#pragma once

#include <npa/endian.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::virtio_net {

/// Device ID of a network card (5: "Device Types").
inline constexpr std::uint16_t DEVICE_ID = 1;

/// Virtqueues (5.1.2): receiveq N is 2N, transmitq N is 2N+1, controlq last (2 * pairs).
[[nodiscard]] constexpr std::uint16_t rxq_index(std::uint16_t pair) noexcept {
    return static_cast<std::uint16_t>(2 * pair);
}
[[nodiscard]] constexpr std::uint16_t txq_index(std::uint16_t pair) noexcept {
    return static_cast<std::uint16_t>(2 * pair + 1);
}
/// Whether virtqueue `index` is a transmitq (odd; the controlq, 2 * pairs, is even).
[[nodiscard]] constexpr bool is_txq(std::uint16_t index) noexcept { return (index & 1u) != 0; }

// ---- feature bits (5.1.3) ------------------------------------------------------------------
namespace feature {
inline constexpr std::uint64_t CSUM = 1ull << 0;             ///< device handles partial checksums (TX)
inline constexpr std::uint64_t GUEST_CSUM = 1ull << 1;       ///< driver handles partial checksums (RX)
inline constexpr std::uint64_t CTRL_GUEST_OFFLOADS = 1ull << 2;
inline constexpr std::uint64_t MTU = 1ull << 3;              ///< config mtu is valid
inline constexpr std::uint64_t MAC = 1ull << 5;              ///< config mac is valid
inline constexpr std::uint64_t GUEST_TSO4 = 1ull << 7;
inline constexpr std::uint64_t GUEST_TSO6 = 1ull << 8;
inline constexpr std::uint64_t GUEST_ECN = 1ull << 9;
inline constexpr std::uint64_t GUEST_UFO = 1ull << 10;
inline constexpr std::uint64_t HOST_TSO4 = 1ull << 11;       ///< device takes TSOv4 frames
inline constexpr std::uint64_t HOST_TSO6 = 1ull << 12;
inline constexpr std::uint64_t HOST_ECN = 1ull << 13;
inline constexpr std::uint64_t HOST_UFO = 1ull << 14;
inline constexpr std::uint64_t MRG_RXBUF = 1ull << 15;       ///< RX frames may span buffers
inline constexpr std::uint64_t STATUS = 1ull << 16;          ///< config status is valid
inline constexpr std::uint64_t CTRL_VQ = 1ull << 17;
inline constexpr std::uint64_t CTRL_RX = 1ull << 18;
inline constexpr std::uint64_t CTRL_VLAN = 1ull << 19;
inline constexpr std::uint64_t CTRL_RX_EXTRA = 1ull << 20;   ///< NOUNI / NOMULTI / NOBCAST
inline constexpr std::uint64_t GUEST_ANNOUNCE = 1ull << 21;
inline constexpr std::uint64_t MQ = 1ull << 22;              ///< more than one queue pair
inline constexpr std::uint64_t CTRL_MAC_ADDR = 1ull << 23;
inline constexpr std::uint64_t HOST_USO = 1ull << 56;
inline constexpr std::uint64_t HASH_REPORT = 1ull << 57;
inline constexpr std::uint64_t GUEST_HDRLEN = 1ull << 59;
inline constexpr std::uint64_t RSS = 1ull << 60;
inline constexpr std::uint64_t RSC_EXT = 1ull << 61;
inline constexpr std::uint64_t STANDBY = 1ull << 62;
inline constexpr std::uint64_t SPEED_DUPLEX = 1ull << 63;
} // namespace feature

// ---- the header in front of every packet (5.1.6) ---------------------------------------------
inline constexpr std::uint8_t HDR_F_NEEDS_CSUM = 1; ///< checksum from csum_start, at csum_offset
inline constexpr std::uint8_t HDR_F_DATA_VALID = 2; ///< RX: the device checked the checksum
inline constexpr std::uint8_t HDR_F_RSC_INFO = 4;

inline constexpr std::uint8_t GSO_NONE = 0;
inline constexpr std::uint8_t GSO_TCPV4 = 1;
inline constexpr std::uint8_t GSO_UDP = 3;
inline constexpr std::uint8_t GSO_TCPV6 = 4;
inline constexpr std::uint8_t GSO_UDP_L4 = 5;
inline constexpr std::uint8_t GSO_ECN = 0x80;

/// struct virtio_net_hdr with num_buffers: what VERSION_1 devices use on every queue
/// (5.1.6: "the header is 12 bytes" once VIRTIO_F_VERSION_1 is negotiated).
struct net_hdr_v1 {
    std::uint8_t flags;
    std::uint8_t gso_type;
    le16 hdr_len;
    le16 gso_size;
    le16 csum_start;
    le16 csum_offset;
    le16 num_buffers; ///< RX with MRG_RXBUF: buffers this packet spans; otherwise 1 (RX), 0 (TX)
};
static_assert(sizeof(net_hdr_v1) == 12 && alignof(net_hdr_v1) == 2);
static_assert(offsetof(net_hdr_v1, hdr_len) == 2 && offsetof(net_hdr_v1, gso_size) == 4 &&
              offsetof(net_hdr_v1, csum_start) == 6 && offsetof(net_hdr_v1, csum_offset) == 8 &&
              offsetof(net_hdr_v1, num_buffers) == 10);
inline constexpr std::uint32_t HDR_LEN = sizeof(net_hdr_v1);

// ---- configuration space (5.1.4) ---------------------------------------------------------------
inline constexpr std::uint16_t S_LINK_UP = 1;
inline constexpr std::uint16_t S_ANNOUNCE = 2;

struct net_config {
    std::uint8_t mac[6];
    le16 status;
    le16 max_virtqueue_pairs;
    le16 mtu;
    le32 speed;
    std::uint8_t duplex;
    std::uint8_t rss_max_key_size;
    le16 rss_max_indirection_table_length;
    le32 supported_hash_types;
};
static_assert(offsetof(net_config, status) == 6 && offsetof(net_config, max_virtqueue_pairs) == 8 &&
              offsetof(net_config, mtu) == 10 && offsetof(net_config, speed) == 12 &&
              offsetof(net_config, duplex) == 16 && offsetof(net_config, supported_hash_types) == 20);
static_assert(sizeof(net_config) == 24);

// ---- the control virtqueue (5.1.6.5) ----------------------------------------------------------
/// Every command is one chain: the header and its data device-readable, then one
/// device-writable byte the device answers in (ack).
struct ctrl_hdr {
    std::uint8_t class_;
    std::uint8_t command;
};
static_assert(sizeof(ctrl_hdr) == 2);

namespace ctrl {
inline constexpr std::uint8_t OK = 0;
inline constexpr std::uint8_t ERR = 1;

inline constexpr std::uint8_t RX = 0;               ///< 5.1.6.5.1, data: one byte, 0 off, 1 on
inline constexpr std::uint8_t RX_PROMISC = 0;
inline constexpr std::uint8_t RX_ALLMULTI = 1;
inline constexpr std::uint8_t RX_ALLUNI = 2;        ///< these four with CTRL_RX_EXTRA
inline constexpr std::uint8_t RX_NOMULTI = 3;
inline constexpr std::uint8_t RX_NOUNI = 4;
inline constexpr std::uint8_t RX_NOBCAST = 5;

inline constexpr std::uint8_t MAC = 1;              ///< 5.1.6.5.2
inline constexpr std::uint8_t MAC_TABLE_SET = 0;    ///< two tables: le32 entries, then the MACs
inline constexpr std::uint8_t MAC_ADDR_SET = 1;     ///< six bytes (CTRL_MAC_ADDR)

inline constexpr std::uint8_t VLAN = 2;             ///< 5.1.6.5.3, data: le16 vid
inline constexpr std::uint8_t VLAN_ADD = 0;
inline constexpr std::uint8_t VLAN_DEL = 1;

inline constexpr std::uint8_t MQ = 4;               ///< 5.1.6.5.5
inline constexpr std::uint8_t MQ_VQ_PAIRS_SET = 0;  ///< data: le16 pairs, 1..max_virtqueue_pairs
} // namespace ctrl

/// The controlq's number (5.1.2): after the last queue pair, which is the first one alone
/// unless MQ is negotiated.
[[nodiscard]] constexpr std::uint16_t ctrlq_index(bool mq, std::uint16_t max_pairs) noexcept {
    return static_cast<std::uint16_t>(2 * (mq ? max_pairs : 1));
}

/// The smallest MTU the plugin takes (RFC 791's 68), and the Ethernet default a device
/// without VIRTIO_NET_F_MTU carries.
inline constexpr std::uint32_t MIN_MTU = 68;
inline constexpr std::uint32_t DEFAULT_MTU = 1500;
/// What a frame adds to its MTU on the receive side: the Ethernet header and one VLAN tag
/// (Linux sizes a receive buffer so: GOOD_PACKET_LEN, ETH_HLEN + VLAN_HLEN + ETH_DATA_LEN).
inline constexpr std::uint32_t eth_hlen = 14;
inline constexpr std::uint32_t vlan_hlen = 4;

} // namespace npa::virtio_net
