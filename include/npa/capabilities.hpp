// npa/capabilities.hpp: what a device, plugin or shell can do, as data.
//
// The offloads in effect are an intersection (DESIGN.md section 3): what the OS asked
// for, what the shell supports, what the active plugin and its device support.
#pragma once

#include <cstdint>

namespace npa {

/// Offload capability bits (capabilities::offloads).
namespace cap {
inline constexpr std::uint32_t tx_ip_csum = 1u << 0;
inline constexpr std::uint32_t tx_l4_csum = 1u << 1;
inline constexpr std::uint32_t tso = 1u << 2;
inline constexpr std::uint32_t vlan_insert = 1u << 3;
inline constexpr std::uint32_t rx_csum = 1u << 4;
inline constexpr std::uint32_t vlan_strip = 1u << 5;
inline constexpr std::uint32_t rss = 1u << 6;
inline constexpr std::uint32_t lro = 1u << 7;
inline constexpr std::uint32_t vlan_filter = 1u << 8;
inline constexpr std::uint32_t all = (1u << 9) - 1;
inline constexpr unsigned count = 9;

[[nodiscard]] constexpr const char* name(unsigned bit) noexcept {
    constexpr const char* names[count] = {"tx-ip-csum", "tx-l4-csum", "tso",
                                          "vlan-insert", "rx-csum",    "vlan-strip",
                                          "rss",         "lro",        "vlan-filter"};
    return bit < count ? names[bit] : "unknown";
}
} // namespace cap

struct capabilities {
    std::uint32_t offloads = 0;
    std::uint16_t max_queues = 1;
    std::uint32_t min_ring_size = 32;
    std::uint32_t max_ring_size = 4096;
    std::uint32_t min_mtu = 68;
    std::uint32_t max_mtu = 1500;

    [[nodiscard]] constexpr bool has(std::uint32_t bits) const noexcept {
        return (offloads & bits) == bits;
    }
};

/// Queue configuration the shell asks a plugin to attach with.
struct queue_config {
    std::uint16_t queues = 1;          ///< queue pairs
    std::uint32_t tx_ring_size = 512;  ///< descriptors per TX ring
    std::uint32_t rx_ring_size = 512;  ///< descriptors per RX ring
    std::uint32_t mtu = 1500;
    std::uint32_t offloads = 0;        ///< offloads to enable (already intersected)
    std::uint32_t irq_moderation_us = 0;  ///< minimum gap between interrupts; 0 = none
};

} // namespace npa
