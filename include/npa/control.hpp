// npa/control.hpp: control-path requests (MAC, VLAN, MTU, RX mode, multicast, RSS).
//
// The shell turns the OS's wishes into these requests and sends them through a
// control_channel to the hypervisor/PF, which applies policy. Plugins never see them.
// Plain data, no allocation: a request is a tagged struct with fixed-size payloads.
#pragma once

#include <array>
#include <cstdint>

namespace npa {

using mac_addr = std::array<std::uint8_t, 6>;

inline constexpr std::uint16_t max_vlan_id = 4095;
inline constexpr std::uint32_t max_mcast_addrs = 32;
inline constexpr std::uint32_t rss_key_size = 40;     // Toeplitz key, as vmxnet3 UPT1 and Intel
inline constexpr std::uint32_t rss_table_size = 128;  // indirection table entries

/// RX mode bits.
namespace rx_mode {
inline constexpr std::uint32_t unicast = 1u << 0;
inline constexpr std::uint32_t multicast = 1u << 1;
inline constexpr std::uint32_t broadcast = 1u << 2;
inline constexpr std::uint32_t all_multi = 1u << 3;
inline constexpr std::uint32_t promisc = 1u << 4;
} // namespace rx_mode

enum class control_op : std::uint8_t {
    set_mac,
    add_vlan,
    del_vlan,
    set_mtu,
    set_rx_mode,
    set_mcast_list,
    set_rss,
};

[[nodiscard]] constexpr const char* to_string(control_op op) noexcept {
    switch (op) {
    case control_op::set_mac: return "set_mac";
    case control_op::add_vlan: return "add_vlan";
    case control_op::del_vlan: return "del_vlan";
    case control_op::set_mtu: return "set_mtu";
    case control_op::set_rx_mode: return "set_rx_mode";
    case control_op::set_mcast_list: return "set_mcast_list";
    case control_op::set_rss: return "set_rss";
    }
    return "unknown";
}

struct rss_config {
    std::uint32_t hash_types = 0;  ///< 0 disables RSS
    std::array<std::uint8_t, rss_key_size> key{};
    std::array<std::uint8_t, rss_table_size> table{};
};

struct control_request {
    control_op op = control_op::set_mac;
    mac_addr mac{};                 ///< set_mac
    std::uint16_t vlan = 0;         ///< add_vlan / del_vlan
    std::uint32_t mtu = 0;          ///< set_mtu
    std::uint32_t mode = 0;         ///< set_rx_mode (rx_mode bits)
    std::uint32_t mcast_count = 0;  ///< set_mcast_list
    std::array<mac_addr, max_mcast_addrs> mcast{};
    rss_config rss{};               ///< set_rss

    static constexpr control_request make_set_mac(const mac_addr& m) noexcept {
        control_request r;
        r.op = control_op::set_mac;
        r.mac = m;
        return r;
    }
    static constexpr control_request make_vlan(bool add, std::uint16_t vid) noexcept {
        control_request r;
        r.op = add ? control_op::add_vlan : control_op::del_vlan;
        r.vlan = vid;
        return r;
    }
    static constexpr control_request make_mtu(std::uint32_t mtu) noexcept {
        control_request r;
        r.op = control_op::set_mtu;
        r.mtu = mtu;
        return r;
    }
    static constexpr control_request make_rx_mode(std::uint32_t mode) noexcept {
        control_request r;
        r.op = control_op::set_rx_mode;
        r.mode = mode;
        return r;
    }
};

} // namespace npa
