// npa/shell/control_forwarding.hpp:
// control requests to the active path's authority (docs/design.md "Control").
//
// Validated, sent to the active path's control link, recorded in the desired control
// state if accepted (replayed on every switch); a refusal changes nothing.
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::control(const control_request& r) {
    status st = validate(r);
    if (!st.ok()) {
        return st;
    }
    if (active_ != no_path) {
        // An MTU the active device cannot carry is refused here, whatever its control
        // channel would say (some read the MTU only at the next activation).
        if (r.op == control_op::set_mtu) {
            const capabilities c = caps_of(active_);
            if (r.mtu < c.min_mtu || r.mtu > c.max_mtu) {
                return {errc::not_supported, "MTU outside the active device's range"};
            }
        }
        st = link_.submit(r);
        if (!st.ok()) {
            return st;
        }
    }
    control_.apply(r);
    return {};
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::set_mcast_list(std::span<const mac_addr> list) {
    control_request r;
    r.op = control_op::set_mcast_list;
    if (list.size() > max_mcast_addrs) {
        return {errc::invalid_argument, "multicast list longer than 32 entries"};
    }
    r.mcast_count = static_cast<std::uint32_t>(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) r.mcast[i] = list[i];
    return control(r);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::set_rss(const rss_config& rss) {
    control_request r;
    r.op = control_op::set_rss;
    r.rss = rss;
    return control(r);
}

} // namespace npa
