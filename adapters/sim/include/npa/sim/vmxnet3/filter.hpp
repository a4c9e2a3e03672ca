// npa/sim/vmxnet3/filter.hpp: the vmxnet3 backend's view of what the guest may send and
// receive: its MAC, RX mode, VLAN table and multicast list, each change put to the
// hypervisor's port policy first (device/policy.hpp).
//
// RX: a frame passes when the RX mode takes it (promiscuous, broadcast, the multicast
// list or all multicast, unicast to the device's MAC) and its VLAN is in the table (an
// empty table filters nothing, but never past the policy). TX, the virtual switch's view
// (forged transmits, VLAN membership, MTU): the source MAC must be the device's, a tag a
// VLAN the guest was given, a frame (or a TSO segment) no longer than the MTU.
#pragma once

#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/wire.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace npa::sim {

class vmxnet3_filter {
public:
    enum class tx_verdict : std::uint8_t { ok, spoofed, oversize, vlan_refused };

    explicit vmxnet3_filter(const mac_addr& m) : mac(m) {}

    /// nullptr: everything allowed.
    void set_policy(const port_policy* p) noexcept { policy_ = p; }
    [[nodiscard]] const port_policy& policy() const noexcept {
        static const port_policy everything = port_policy::allow_all();
        return policy_ != nullptr ? *policy_ : everything;
    }
    [[nodiscard]] const char* check_mac(const mac_addr& m) const { return policy().check_mac(m); }
    [[nodiscard]] const char* check_vlan(std::uint16_t v) const { return policy().check_vlan(v); }
    [[nodiscard]] const char* check_rx_mode(std::uint32_t m) const {
        return policy().check_promisc((m & vmxnet3::rxm::PROMISC) != 0);
    }

    /// The RX filter the guest left in the shared area, from ACTIVATE_DEV on: a mode the
    /// policy refuses loses promiscuous, the VLAN table loses the VLANs the policy does
    /// not give this guest (as UPDATE_RX_MODE and UPDATE_VLAN_FILTERS would refuse them).
    void activate(const vmxnet3::rx_filter_conf& f) {
        rx_mode = f.rxMode;
        if (check_rx_mode(rx_mode) != nullptr) {
            rx_mode &= ~vmxnet3::rxm::PROMISC;
        }
        std::copy(std::begin(f.vfTable), std::end(f.vfTable), vft);
        for (std::uint32_t vid = 1; vid <= max_vlan_id; ++vid) {
            if (in_table(vid) && check_vlan(static_cast<std::uint16_t>(vid)) != nullptr) {
                vft[vid >> 5] &= ~(1u << (vid & 31));
            }
        }
    }

    [[nodiscard]] bool vlan_ok(std::uint16_t vid) const noexcept {
        bool any = false;
        for (std::uint32_t w : vft) {
            any = any || w != 0;
        }
        // An empty table filters nothing, but never past the policy: a guest that clears its
        // table must not receive VLANs the hypervisor did not give it.
        return any ? in_table(vid) : check_vlan(vid) == nullptr;
    }

    [[nodiscard]] bool accept(const eth::header& h) const noexcept {
        using namespace vmxnet3;
        if ((rx_mode & rxm::PROMISC) != 0) {
            return true;
        }
        if (!vlan_ok(h.vlan)) {
            return false;
        }
        if (h.dst == eth::broadcast) {
            return (rx_mode & rxm::BCAST) != 0;
        }
        if (eth::is_multicast(h.dst)) {
            return (rx_mode & rxm::ALL_MULTI) != 0 ||
                   ((rx_mode & rxm::MCAST) != 0 &&
                    std::find(mcast.begin(), mcast.end(), h.dst) != mcast.end());
        }
        return (rx_mode & rxm::UCAST) != 0 && h.dst == mac;
    }

    /// A guest frame of `bytes` (the tag to insert: insert_vid; with TSO, each segment
    /// seg_len bytes) under the MTU the guest activated with.
    [[nodiscard]] tx_verdict check_tx(std::span<const std::byte> bytes, std::uint32_t insert_vid,
                                      std::uint32_t seg_len, std::uint32_t mtu) const noexcept {
        eth::header h;
        if (!eth::parse(bytes, h) || h.src != mac) {
            return tx_verdict::spoofed;
        }
        if (seg_len > h.payload_off + mtu) {
            return tx_verdict::oversize;
        }
        const std::uint32_t vid = insert_vid != 0 ? insert_vid : h.vlan;
        if (vid != 0 && !vlan_ok(static_cast<std::uint16_t>(vid))) {
            return tx_verdict::vlan_refused;
        }
        return tx_verdict::ok;
    }

    mac_addr mac{};
    std::uint32_t rx_mode = 0;
    std::uint32_t vft[vmxnet3::VFT_SIZE] = {};
    std::vector<mac_addr> mcast;

private:
    [[nodiscard]] bool in_table(std::uint32_t vid) const noexcept {
        return ((vft[vid >> 5] >> (vid & 31)) & 1u) != 0;
    }

    const port_policy* policy_ = nullptr; // the hypervisor's; nullptr: everything allowed
};

} // namespace npa::sim
