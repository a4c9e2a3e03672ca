// npa-linkd: the control path (DESIGN.md section 3). The daemon plays the PF/hypervisor
// with the policy file; the stack asks for changes by changing the TAP (its MAC, its MTU,
// VLAN interfaces stacked on it), rtnetlink reports them, and each goes to the shell,
// which checks it against the policy. A refused change is undone on the TAP.
#include "linkd.hpp"

#include <cstdio>

namespace npa::lnx::tools {

// ---- policy ---------------------------------------------------------------------------

status policy_channel::submit(const control_request& r) const {
    switch (r.op) {
    case control_op::set_mac:
        if (!pol_.allowed_macs.empty()) {
            for (const auto& m : pol_.allowed_macs) {
                if (m == r.mac)
                    return {};
            }
            return {errc::refused, "MAC not allowed by policy"};
        }
        return {};
    case control_op::add_vlan:
        return r.vlan <= max_vlan_id && pol_.vlans.test(r.vlan)
                   ? status{}
                   : status{errc::refused, "VLAN not allowed by policy"};
    case control_op::del_vlan: return {};
    case control_op::set_mtu:
        if (r.mtu < pol_.mtu_min || r.mtu > pol_.mtu_max) {
            return {errc::refused, "MTU outside the policy's range"};
        }
        if (r.mtu > max_mtu) {
            return {errc::not_supported, "MTU larger than the data paths carry"};
        }
        return {};
    default: return {};
    }
}

status policy_channel::submit_batch(std::span<const control_request> b) const {
    for (const auto& r : b) {
        const status st = submit(r);
        if (!st.ok())
            return st;
    }
    return {};
}

// ---- the stack's changes --------------------------------------------------------------

bool linkd::apply_vlan_change(const link_event& ev) {
    // VLAN interfaces stacked on the TAP: the stack asks for a VLAN filter.
    if (ev.is_vlan && ev.link == tap_.ifindex() && ev.what == link_event::kind::changed) {
        for (const int v : vlan_ifindex_) {
            if (v == ev.ifindex)
                return true;
        }
        const status st = shell_->add_vlan(ev.vlan_id);
        char line[160];
        if (st.ok()) {
            ++tc_.control_applied;
            vlan_ifindex_.push_back(ev.ifindex);
            vlan_id_.push_back(ev.vlan_id);
            std::snprintf(line, sizeof line, "VLAN %u on %s: applied", ev.vlan_id, tap_.name());
        } else {
            ++tc_.control_refused;
            (void)link_monitor::delete_link(ev.ifindex);
            std::snprintf(line, sizeof line, "VLAN %u on %s: refused (%s); interface %s removed",
                          ev.vlan_id, tap_.name(), st.reason(), ev.ifname);
        }
        linkd_env{}.log(st.ok() ? log_level::info : log_level::warning, line);
        return true;
    }
    for (std::size_t i = 0; i < vlan_ifindex_.size(); ++i) {
        if (vlan_ifindex_[i] == ev.ifindex && ev.what == link_event::kind::removed) {
            (void)shell_->del_vlan(vlan_id_[i]);
            vlan_ifindex_.erase(vlan_ifindex_.begin() + static_cast<std::ptrdiff_t>(i));
            vlan_id_.erase(vlan_id_.begin() + static_cast<std::ptrdiff_t>(i));
            return true;
        }
    }
    return false;
}

void linkd::apply_tap_change(const link_event& ev) {
    const auto& want = shell_->desired_control();
    char line[200];
    if (ev.has_mac && ev.mac != want.mac()) {
        const mac_addr old = want.mac();
        const status st = shell_->set_mac(ev.mac);
        if (st.ok()) {
            ++tc_.control_applied;
            std::snprintf(line, sizeof line, "MAC of %s -> %s: applied", tap_.name(),
                          format_mac(ev.mac).c_str());
            announce();
        } else {
            ++tc_.control_refused;
            (void)tap_.set_mac(old);
            std::snprintf(line, sizeof line, "MAC of %s -> %s: refused (%s), reverted to %s",
                          tap_.name(), format_mac(ev.mac).c_str(), st.reason(),
                          format_mac(old).c_str());
        }
        linkd_env{}.log(st.ok() ? log_level::info : log_level::warning, line);
    }
    if (ev.mtu != 0 && ev.mtu != want.mtu()) {
        const std::uint32_t old = want.mtu();
        const status st = shell_->set_mtu(ev.mtu);
        if (st.ok()) {
            ++tc_.control_applied;
            std::snprintf(line, sizeof line, "MTU of %s -> %u: applied", tap_.name(), ev.mtu);
        } else {
            ++tc_.control_refused;
            (void)tap_.set_mtu(old);
            std::snprintf(line, sizeof line, "MTU of %s -> %u: refused (%s), reverted to %u",
                          tap_.name(), ev.mtu, st.reason(), old);
        }
        linkd_env{}.log(st.ok() ? log_level::info : log_level::warning, line);
    }
}

} // namespace npa::lnx::tools
