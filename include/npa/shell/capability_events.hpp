// npa/shell/capability_events.hpp:
// offloads in effect and capability events (docs/design.md "Capabilities").
//
// What the shell supports, what the active path was attached with and has, and one
// event per offload bit lost or regained at a switch or a change of request.
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint32_t shell<Env, Plugins...>::shell_offloads() const noexcept {
    std::uint32_t bits = cap::all;
    if constexpr (requires { Env::offloads; }) {
        bits &= static_cast<std::uint32_t>(Env::offloads);
    }
    return nq_ > 1 ? bits : bits & ~cap::rss;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::recompute_caps(std::uint64_t seq) noexcept {
    // enabled_ is what the active path was attached with AND what it has.
    const std::uint32_t next =
        active_ == no_path ? 0u : cfg_.requested_offloads & enabled_[active_];
    const std::uint32_t lost = offloads_ & ~next;
    // "Regained" only for bits this shell had before: the first path brings no news.
    const std::uint32_t gained = next & ~offloads_ & ever_had_;
    for (unsigned bit = 0; bit < cap::count; ++bit) {
        const std::uint32_t m = 1u << bit;
        if ((lost & m) != 0) {
            push_cap_event({seq, m, true, path_name(active_),
                            (cfg_.requested_offloads & m) == 0 ? "no longer requested by the OS"
                            : (shell_offloads() & m) == 0
                                ? "not supported by the shell"
                                : "not supported by the active path's device"});
        } else if ((gained & m) != 0) {
            push_cap_event({seq, m, false, path_name(active_), "supported again"});
        }
    }
    if (seq != 0) {
        pending_.caps_lost = lost;
        pending_.caps_gained = gained;
    }
    ever_had_ |= next;
    offloads_ = next;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::push_cap_event(const capability_event& ev) noexcept {
    cap_events_[cap_events_n_ % cap_events_.size()] = ev;
    ++cap_events_n_;
}

} // namespace npa
