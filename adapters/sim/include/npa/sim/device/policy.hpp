// npa/sim/device/policy.hpp: what the hypervisor (or the PF) lets one guest port do.
//
// One type for every device model: the vmxnet3 backend puts MAC, VLAN and RX-mode changes
// to it, the 82576 PF driver answers VF mailbox requests by it. Each check returns
// nullptr when allowed, otherwise the reason for refusing.
#pragma once

#include <npa/sim/wire.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace npa::sim {

struct port_policy {
    /// The MAC assigned to the port (a VF's at reset); always allowed. Zero: none.
    mac_addr default_mac{};
    /// Further MACs the guest may set. With no default MAC either: any MAC.
    std::vector<mac_addr> allowed_macs;
    /// The VLAN the port is put on (0: none); the guest may not add VLANs then.
    std::uint16_t port_vlan = 0;
    /// VLANs the guest may join (without a port VLAN); empty: any.
    std::vector<std::uint16_t> allowed_vlans;
    std::uint32_t max_mtu = 1500;
    bool promisc_allowed = false;

    /// Everything allowed (a backend nobody has put a policy on).
    [[nodiscard]] static port_policy allow_all() {
        port_policy p;
        p.max_mtu = 0xFFFFFFFFu;
        p.promisc_allowed = true;
        return p;
    }

    [[nodiscard]] const char* check_mac(const mac_addr& m) const {
        const bool listed = std::find(allowed_macs.begin(), allowed_macs.end(), m) != allowed_macs.end();
        const bool any = allowed_macs.empty() && default_mac == mac_addr{};
        // A zero default_mac means none assigned, not that the zero address is allowed.
        const bool assigned = m == default_mac && default_mac != mac_addr{};
        return any || listed || assigned ? nullptr : "MAC address not assigned to this guest";
    }
    /// VLAN 0 (untagged) is always allowed.
    [[nodiscard]] const char* check_vlan(std::uint16_t v) const {
        if (v == 0) {
            return nullptr;
        }
        if (port_vlan != 0) {
            return "VLAN not allowed on this port";
        }
        return allowed_vlans.empty() ||
                       std::find(allowed_vlans.begin(), allowed_vlans.end(), v) != allowed_vlans.end()
                   ? nullptr
                   : "VLAN not allowed on this port";
    }
    [[nodiscard]] const char* check_promisc(bool on) const {
        return !on || promisc_allowed ? nullptr : "promiscuous mode not allowed";
    }
    [[nodiscard]] const char* check_mtu(std::uint32_t mtu) const {
        return mtu <= max_mtu ? nullptr : "MTU larger than this port allows";
    }
};

} // namespace npa::sim
