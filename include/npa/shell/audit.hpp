// npa/shell/audit.hpp:
// the buffer audit (docs/design.md "Audit").
//
// Where every buffer is: pools, the OS, backlogs, requeue lists, plugins; and what
// detached plugins kept.
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
audit_report shell<Env, Plugins...>::audit() const noexcept {
    audit_report r;
    for (std::uint16_t q = 0; q < nq_; ++q) {
        const queue_state& qs = queues_[q];
        bool seen = false;
        for (std::uint16_t k = 0; k < q; ++k) seen = seen || queues_[k].pool == qs.pool;
        if (!seen) {
            r.pool_size += qs.pool->size();
            r.in_pool += qs.pool->available();
        }
        // relaxed (these counters): statistics that publish nothing; audit() is exact
        // only with the data path quiet, and then nothing moves them
        r.caller += qs.caller.load(std::memory_order_relaxed);
        r.leaked += qs.leaked.load(std::memory_order_relaxed);  // relaxed: as caller
        r.backlog += qs.backlog.size();
        r.requeue += qs.requeue.size();
        for (std::size_t p = 0; p < max_paths; ++p) {
            r.in_plugins += qs.in_plugin[p].load(std::memory_order_relaxed);  // as caller
        }
    }
    return r;
}

} // namespace npa
