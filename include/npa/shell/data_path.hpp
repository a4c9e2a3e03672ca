// npa/shell/data_path.hpp:
// the data path (docs/design.md "Data path").
//
// Per queue, on the queue's own thread, no locks: tx_burst / rx_burst / poll /
// napi_poll / alloc / free, the slow TX path that keeps order behind the backlog and
// requeue list, the calls into the active plugin (one dispatch per burst), and the
// plugin-facing API (buffers handed to and back from plugins).
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint16_t shell<Env, Plugins...>::tx_burst(std::uint16_t q,
                                               std::span<buffer_type> bufs) noexcept {
    queue_state& qs = queues_[q];
    sync(qs, q);
    std::uint16_t n;
    // relaxed: see queue_state::fast
    if (NPA_LIKELY(qs.fast.load(std::memory_order_relaxed))) {
        n = plugin_tx(qs.tx_path, qs, q, bufs);
    } else {
        n = tx_slow(qs, q, bufs);
    }
    qs.c.tx_accepted += n;
    add(qs.caller, -static_cast<std::int64_t>(n));
    return n;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint16_t shell<Env, Plugins...>::rx_burst(std::uint16_t q,
                                               std::span<buffer_type> out) noexcept {
    queue_state& qs = queues_[q];
    qs.rx_reader = true;
    sync(qs, q, true);
    std::uint16_t n = 0;
    if (NPA_UNLIKELY(qs.draining)) {
        // Old path first: what it received before the switch is older. A device
        // whose RX never runs dry (a generator, a busy link) is read for at most what
        // it can have held when the drain started (rx_drain_bound), then left; one
        // that answers short is drained once it has been quiet for policy.rx_quiet_ns.
        if (qs.rx_drain_left != 0 && qs.tx_path != no_path) {
            qs.old_rx_read = true;
            n = plugin_rx(qs.tx_path, qs, q, out);
            qs.rx_drain_left -= n < qs.rx_drain_left ? n : qs.rx_drain_left;
            if ((n < out.size() && old_rx_quiet(qs, n)) || qs.rx_drain_left == 0) {
                qs.old_rx_drained = true;
            }
        }
        if (n < out.size() && qs.standby != no_path) {
            n = static_cast<std::uint16_t>(n + plugin_rx(qs.standby, qs, q, out.subspan(n)));
        }
    } else if (NPA_LIKELY(qs.tx_path != no_path)) {
        n = plugin_rx(qs.tx_path, qs, q, out);
    }
    qs.c.rx_delivered += n;
    add(qs.caller, static_cast<std::int64_t>(n));
    return n;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
path_id shell<Env, Plugins...>::steady_path(std::uint16_t q) const noexcept {
    const queue_state& qs = queues_[q];
    // acquire: as in sync(). Not seq_cst: a caller that bypasses the shell while this
    // answers a path orders itself against the next switch with its own sequentially
    // consistent counter, which the control thread moves after epoch_ (the DPDK adapter's
    // lanes.hpp); seeing that move makes the new epoch visible here.
    const std::uint32_t e = epoch_.load(std::memory_order_acquire);
    // relaxed: published with epoch_ (acquired above); phase_idle is stored only after
    // every queue acknowledged, so an idle read here never hides a switch under way.
    const bool idle = phase_.load(std::memory_order_relaxed) == phase_idle;
    // relaxed: see queue_state::fast
    const bool steady = qs.fast.load(std::memory_order_relaxed) && !qs.draining &&
                        !qs.hold && qs.seen_epoch == e && idle;
    return steady ? qs.tx_path : no_path;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint32_t shell<Env, Plugins...>::poll(std::uint16_t q) noexcept {
    queue_state& qs = queues_[q];
    sync(qs, q);
    if (qs.tx_path == no_path) {
        return 0;
    }
    const std::uint32_t reaped = visit(qs.tx_path, [q](auto& p) { return p.tx_reap(q); });
    // relaxed: see queue_state::fast
    if (NPA_UNLIKELY(!qs.fast.load(std::memory_order_relaxed)) && !qs.draining && !qs.hold) {
        flush(qs, q);
    }
    return reaped;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
napi_result shell<Env, Plugins...>::napi_poll(std::uint16_t q,
                                              std::span<buffer_type> out) noexcept {
    queue_state& qs = queues_[q];
    std::uint16_t n = rx_burst(q, out);
    (void)poll(q);
    if (n == out.size() || qs.tx_path == no_path || switching_now(qs) ||
        cfg_.mode != irq_mode::interrupt) {
        return {n, false};
    }
    visit(qs.tx_path, [q](auto& p) { p.irq_arm(q); });
    const std::uint16_t more = rx_burst(q, out.subspan(n));
    if (more != 0) {
        visit(qs.tx_path, [q](auto& p) { p.irq_disarm(q); });
        return {static_cast<std::uint16_t>(n + more), false};
    }
    qs.armed = true;
    return {n, true};
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint32_t shell<Env, Plugins...>::alloc(std::uint16_t q, std::span<buffer_type> out) noexcept {
    queue_state& qs = queues_[q];
    const std::uint32_t n = qs.pool->alloc_burst(out);
    add(qs.caller, static_cast<std::int64_t>(n));
    return n;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::free(std::uint16_t q, std::span<const buffer_type> bufs) noexcept {
    queue_state& qs = queues_[q];
    qs.pool->free_burst(bufs);
    add(qs.caller, -static_cast<std::int64_t>(bufs.size()));
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint16_t shell<Env, Plugins...>::plugin_tx(path_id p, queue_state& qs, std::uint16_t q,
        std::span<buffer_type> bufs) noexcept {
    const std::uint16_t n = visit(p, [&](auto& pl) {
        const std::uint16_t k = pl.tx_burst(q, bufs);
        if constexpr (!device_managed_buffers<std::remove_cvref_t<decltype(pl)>>) {
            add(qs.in_plugin[p], k);
        }
        return k;
    });
    return n;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint16_t shell<Env, Plugins...>::plugin_rx(path_id p, queue_state& qs, std::uint16_t q,
        std::span<buffer_type> out) noexcept {
    const std::uint16_t n = visit(p, [&](auto& pl) {
        const std::uint16_t k = pl.rx_burst(q, out);
        if constexpr (!device_managed_buffers<std::remove_cvref_t<decltype(pl)>>) {
            add(qs.in_plugin[p], -static_cast<std::int64_t>(k));
        }
        return k;
    });
    return n;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint32_t shell<Env, Plugins...>::api_alloc_rx(path_id p, std::uint16_t q,
                                                   std::span<buffer_type> out) noexcept {
    queue_state& qs = queues_[q];
    const std::uint32_t n = qs.pool->alloc_burst(out);
    add(qs.in_plugin[p], n);
    return n;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::api_release(path_id p, std::uint16_t q,
                                         std::span<const buffer_type> in) noexcept {
    queue_state& qs = queues_[q];
    qs.pool->free_burst(in);
    add(qs.in_plugin[p], -static_cast<std::int64_t>(in.size()));
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::api_unsent(path_id p, std::uint16_t q,
                                        std::span<const buffer_type> in) noexcept {
    queue_state& qs = queues_[q];
    add(qs.in_plugin[p], -static_cast<std::int64_t>(in.size()));
    const std::uint32_t k = qs.requeue.enqueue_burst(in);
    qs.c.tx_requeued += k;
    if (NPA_UNLIKELY(k < in.size())) {
        // Cannot happen with the shipped plugins (requeue holds two full rings);
        // if it does, the buffers are freed and the loss is counted, not hidden.
        qs.c.tx_lost += in.size() - k;
        qs.pool->free_burst(in.subspan(k));
    }
    // Store-load pairing with flush(): the requeue's head is published, then `fast`
    // goes off; flush() turns `fast` on, then looks at the requeue. Release/acquire
    // cannot forbid both threads missing each other's first store (a store may pass a
    // later load, on x86 too); a seq_cst fence on each side does: either flush() sees
    // the buffers or this store lands after its `fast = true`. seq_cst: the fence pairs
    // with flush()'s (store, fence, load on both sides: only seq_cst forbids both missing).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // relaxed: ordered by the fence above
    qs.fast.store(false, std::memory_order_relaxed);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint16_t shell<Env, Plugins...>::tx_slow(queue_state& qs, std::uint16_t q,
                                              std::span<buffer_type> bufs) noexcept {
    if (!qs.draining && !qs.hold) {
        if (qs.tx_path == no_path) {
            ++qs.c.tx_no_path;
            return 0;
        }
        if (flush(qs, q)) {
            return plugin_tx(qs.tx_path, qs, q, bufs);
        }
    }
    // During a drain whose old path holds no TX (nothing in flight, nothing waiting
    // here), nothing sent now can overtake anything: it goes to the prepared path at
    // once instead of waiting (an application that only transmits would otherwise
    // park its buffers here until the drain times out, and may have none left).
    if (qs.draining && qs.standby != no_path && qs.backlog.empty() && qs.requeue.empty() &&
        (qs.tx_path == no_path ||
         visit(qs.tx_path, [q](auto& p) { return p.tx_in_flight(q); }) == 0)) {
        return plugin_tx(qs.standby, qs, q, bufs);
    }
    // Keep order: behind whatever is already waiting.
    const std::uint32_t k =
        qs.backlog.enqueue_burst(std::span<const buffer_type>(bufs.data(), bufs.size()));
    qs.c.tx_backlogged += k;
    if (k < bufs.size()) {
        ++qs.c.tx_backlog_full;
    }
    return static_cast<std::uint16_t>(k);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
bool shell<Env, Plugins...>::flush(queue_state& qs, std::uint16_t q) noexcept {
    if (qs.tx_path == no_path || qs.draining || qs.hold) {
        return false;
    }
    if (!drain_ring(qs, q, qs.requeue) || !drain_ring(qs, q, qs.backlog)) {
        return false;
    }
    // relaxed: own thread; the fence below orders it against api_unsent()
    qs.fast.store(true, std::memory_order_relaxed);
    // A tx_unsent from another thread may have raced with the store above: the fence
    // pairs with api_unsent()'s, so that one of the two sees the other (see there).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (NPA_UNLIKELY(!qs.requeue.empty())) {
        // relaxed: own thread, sequenced after the store above
        qs.fast.store(false, std::memory_order_relaxed);
        return false;
    }
    return true;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <class Ring>
bool shell<Env, Plugins...>::drain_ring(queue_state& qs, std::uint16_t q, Ring& ring) noexcept {
    for (;;) {
        auto reg = ring.peek(flush_burst);
        if (reg.empty()) {
            return true;
        }
        const std::uint16_t sent = plugin_tx(qs.tx_path, qs, q, reg.first);
        ring.release(sent);
        if (sent < reg.first.size()) {
            return false;  // device ring full: the rest waits for the next burst
        }
    }
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <class Ring>
void shell<Env, Plugins...>::drop_ring(queue_state& qs, Ring& ring) noexcept {
    buffer_type tmp[flush_burst];
    for (;;) {
        const std::uint32_t n = ring.dequeue_burst(std::span<buffer_type>(tmp, flush_burst));
        if (n == 0) {
            return;
        }
        qs.c.tx_lost += n;
        qs.pool->free_burst(std::span<const buffer_type>(tmp, n));
    }
}

} // namespace npa
