// npa/shell/stats.hpp:
// monotonic per-path and per-queue counters (docs/design.md "Stats").
//
// A plugin's counters folded into totals that survive device counter resets, detaches
// and removed paths (detail::stat_tracker, in npa/shell/stat_tracker.hpp).
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
queue_stats shell<Env, Plugins...>::path_stats(path_id p, std::uint16_t q) const noexcept {
    if (p >= max_paths) {
        return {};
    }
    detail::lock_guard<detail::spin_lock> g(queues_[q].stats_lock);
    detail::stat_tracker& t = queues_[q].stats[p];
    if (attached_[p]) {
        t.observe(visit(p, [q](auto& pl) -> queue_stats { return pl.stats(q); }));
    }
    return t.total();
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
queue_stats shell<Env, Plugins...>::queue_totals(std::uint16_t q) const noexcept {
    queue_stats s;
    for (std::size_t p = 0; p < max_paths; ++p) s += path_stats(static_cast<path_id>(p), q);
    detail::lock_guard<detail::spin_lock> g(queues_[q].stats_lock);
    s += queues_[q].removed_stats;
    return s;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint64_t shell<Env, Plugins...>::rx_drops(std::uint16_t q) const noexcept {
    const queue_stats s = queue_totals(q);
    return s.rx_dropped + s.rx_no_buffer;
}

} // namespace npa
