// npa/shell/switch_queue.hpp:
// the per-queue half of the switch (docs/design.md "Switch protocol", 2 and 3).
//
// Each queue picks up a new switch epoch on its next data-path call (sync): at drain it
// stops feeding the old plugin and remembers where the counters stood; it flips to the
// new path when the old one has finished (or will not: timeout, failed device, then
// holding new TX), and after release sends what the old path handed back, then the
// backlog, and acknowledges.
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
NPA_ALWAYS_INLINE void shell<Env, Plugins...>::sync(queue_state& qs, std::uint16_t q, bool reads_rx) noexcept {
    // acquire: pairs with the control thread's release (fetch_add) of epoch_ in
    // request_switch() and advance_switch(): phase_, to_ and what it did before are seen.
    const std::uint32_t e = epoch_.load(std::memory_order_acquire);
    if (NPA_LIKELY(e == qs.seen_epoch && !qs.draining)) {
        return;
    }
    sync_slow(qs, q, e, reads_rx);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::sync_slow(queue_state& qs, std::uint16_t q, std::uint32_t e,
                                       bool reads_rx) noexcept {
    bool started = false;  // the drain starts in this call: its clock cannot have run out
    if (e != qs.seen_epoch) {
        // relaxed: published by the release on epoch_, acquired by sync() above
        const std::uint8_t ph = phase_.load(std::memory_order_relaxed);
        if (ph == phase_draining && !qs.draining) {
            started = true;
            qs.draining = true;
            qs.rx_drain_left = rx_drain_bound(qs.tx_path, q);
            qs.old_rx_drained = qs.tx_path == no_path || qs.rx_drain_left == 0;
            qs.old_rx_read = false;
            qs.held_at_start = qs.c.tx_backlogged;
            qs.requeued_at_start = qs.c.tx_requeued;
            qs.lost_at_start = qs.c.tx_lost;
            // Device drop counters are the plugins' (not atomic): read on this thread.
            qs.rx_drops_at_start = rx_drops(q);
            // relaxed: as phase_
            qs.standby = to_.load(std::memory_order_relaxed);
            qs.drain_deadline = Env::now_ns() + cfg_.policy.drain_timeout_ns;
            qs.old_rx_last_ns = Env::now_ns();
            // relaxed: this queue's own thread (see queue_state::fast)
            qs.fast.store(false, std::memory_order_relaxed);
            if (qs.armed && qs.tx_path != no_path) {
                visit(qs.tx_path, [q](auto& p) { p.irq_disarm(q); });
                qs.armed = false;
            }
        } else if (ph == phase_released) {
            // The old path is detached; whatever it could not confirm is in the
            // requeue list and goes out first, then the backlog.
            qs.old_path = no_path;
            if (qs.hold) {
                // relaxed: published by the release on acked_epoch below
                qs.run_ns.store(Env::now_ns(), std::memory_order_relaxed);
            }
            qs.hold = false;
            flush(qs, q);
            const std::uint64_t dropped = rx_drops(q) - qs.rx_drops_at_start;
            const std::uint64_t held = qs.c.tx_backlogged - qs.held_at_start;
            const std::uint64_t requeued = qs.c.tx_requeued - qs.requeued_at_start;
            const std::uint64_t lost = qs.c.tx_lost - qs.lost_at_start;
            // relaxed, these four: published by the release on acked_epoch below
            qs.sw_rx_dropped.store(dropped, std::memory_order_relaxed);
            qs.sw_held.store(held, std::memory_order_relaxed);          // relaxed: as above
            qs.sw_requeued.store(requeued, std::memory_order_relaxed);  // relaxed: as above
            qs.sw_lost.store(lost, std::memory_order_relaxed);          // relaxed: as above
            // release: pairs with advance_switch()'s acquire of acked_epoch
            qs.acked_epoch.store(e, std::memory_order_release);
        }
        qs.seen_epoch = e;
    }
    if (!qs.draining) {
        return;
    }
    bool done = true;
    std::uint32_t tx_held = 0;
    if (qs.tx_path != no_path) {
        visit(qs.tx_path, [q](auto& p) { (void)p.tx_reap(q); });
        tx_held = visit(qs.tx_path, [q](auto& p) { return p.tx_in_flight(q); });
        done = tx_held == 0 && qs.old_rx_drained;
    }
    // The timeout ends a wait on the old device (TX in flight, RX that nobody reads).
    // Old-path RX that the queue is reading, or is about to read (this is rx_burst), is
    // already there: its bound ends that read, not the clock, so a thread descheduled
    // past the deadline, or whose first rx_burst of the drain comes after it (a slow
    // tx_burst started the drain), strands none of it on the released device. A queue
    // that reads RX but whose reader has not come round yet (a tx_burst found the
    // deadline passed while the NAPI poll was held off by a busy CPU: the kernel module
    // under load) is waited for policy.rx_reader_wait_ns longer; a queue that never
    // called rx_burst flips on the timeout. A plugin that declares no bound is bounded by
    // its RX ring (rx_drain_bound()), so a device that never runs dry still ends its
    // read. Nor does the timeout end a drain in the call that started it: a thread
    // descheduled between setting the deadline and this check would flip before it
    // could read anything.
    bool give_up = false;
    if (!done) {
        if (health(qs.tx_path) != errc::ok) {
            give_up = true;
        } else if (!started) {
            const std::uint64_t now = Env::now_ns();
            if (now >= qs.drain_deadline) {
                const bool reader_due =
                    qs.rx_reader && now - qs.drain_deadline < cfg_.policy.rx_reader_wait_ns;
                give_up = !(qs.old_rx_read || reads_rx || reader_due) || qs.old_rx_drained;
            }
        }
    }
    if (!done && !give_up) {
        return;
    }
    // flip: one store; from here on this queue never touches the old plugin.
    qs.old_path = qs.tx_path;
    qs.tx_path = qs.standby;
    qs.standby = no_path;
    qs.draining = false;
    // Holding keeps new TX behind what the old device may hand back unsent; with
    // nothing in flight there is nothing to come back, so TX goes on at once.
    qs.hold = give_up && tx_held != 0;
    ++qs.c.flips;
    if (!qs.hold) {
        flush(qs, q);
    }
    // relaxed: published by the release on flipped_epoch next line
    qs.run_ns.store(Env::now_ns(), std::memory_order_relaxed);
    // release: this queue is done with the old plugin; pairs with advance_switch()'s
    // acquire of flipped_epoch
    qs.flipped_epoch.store(e, std::memory_order_release);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
bool shell<Env, Plugins...>::old_rx_quiet(queue_state& qs, std::uint16_t n) noexcept {
    if (cfg_.policy.rx_quiet_ns == 0) {
        return true;
    }
    const std::uint64_t now = Env::now_ns();
    if (n != 0) {
        qs.old_rx_last_ns = now;
    }
    return now - qs.old_rx_last_ns >= cfg_.policy.rx_quiet_ns;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
bool shell<Env, Plugins...>::switching_now(const queue_state& qs) const noexcept {
    // acquire: as in sync()
    return qs.draining || qs.hold || qs.seen_epoch != epoch_.load(std::memory_order_acquire);
}

} // namespace npa
