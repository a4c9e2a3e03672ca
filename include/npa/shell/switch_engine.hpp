// npa/shell/switch_engine.hpp:
// paths and the control-thread switch engine (docs/design.md "Switch protocol").
//
// Lifecycle, adding and removing paths, request_switch (hysteresis, back-off, attach,
// control replay: step 1; publishing the drain: step 2), the wait, service() (release
// once every queue flipped: step 4, and the fallback on a failed device), detach with
// its leak accounting.
//
// Member definitions of npa::shell; include <npa/shell.hpp>, which includes this file.
#pragma once

#include <npa/shell.hpp>

#include <memory>
#include <new>

namespace npa {

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
shell<Env, Plugins...>::shell(Env& env, std::span<pool_type* const> pools,
                              const shell_config& cfg) noexcept
    : env_(env), cfg_(cfg) {
    static_assert((check_plugin<Plugins<api>, api>() && ...));
    nq_ = cfg.queues.queues;
    if (nq_ == 0 || pools.size() < nq_) {
        init_error_ = {errc::invalid_argument, "shell: need one pool per queue"};
        return;
    }
    queues_.reset(new (std::nothrow) queue_state[nq_]);
    if (!queues_) {
        init_error_ = {errc::no_memory, "shell: cannot allocate queue state"};
        return;
    }
    for (std::uint16_t q = 0; q < nq_; ++q) {
        if (pools[q] == nullptr) {
            init_error_ = {errc::invalid_argument, "shell: null pool"};
            return;
        }
        queues_[q].pool = pools[q];
    }
    for (std::size_t i = 0; i < max_paths; ++i) {
        apis_[i].sh_ = this;
        apis_[i].path_ = static_cast<path_id>(i);
    }
    // The configured MTU is the first desired one: attach and replay agree on it.
    const control_request mtu = control_request::make_mtu(cfg.queues.mtu);
    if (!validate(mtu).ok()) {
        init_error_ = {errc::invalid_argument, "shell: MTU must be 68..65535"};
        return;
    }
    control_.apply(mtu);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <template <class> class P>
path_id shell<Env, Plugins...>::add_path(typename P<api>::device_type& dev, control_link link) {
    static_assert(type_index<P> < type_count,
                  "npa::shell::add_path: P is not one of the shell's plugin types");
    return add_path_of<type_index<P>>(dev, link);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
path_id shell<Env, Plugins...>::add_path_of(typename plugin_t<I>::device_type& dev,
                                            control_link link) {
    for (std::size_t p = 0; p < max_paths; ++p) {
        path_slot& s = paths_[p];
        if (s.inst != nullptr) {
            continue;
        }
        auto* inst = new (std::nothrow) plugin_t<I>();
        if (inst == nullptr) {
            log(log_level::error, "shell: cannot allocate a plugin instance");
            return no_path;
        }
        s = path_slot{inst, &dev, link, static_cast<std::uint8_t>(I), ++use_clock_};
        return static_cast<path_id>(p);
    }
    log(log_level::error, "shell: every path slot is taken");
    return no_path;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::remove_path(path_id p) noexcept {
    if (!valid_path(p)) {
        return {errc::invalid_argument, "no such path"};
    }
    if (p == active_ || p == fallback_path_ ||
        (switching_ && (p == pending_.to || p == pending_.from))) {
        return {errc::bad_state, "the path is in use (active, switching or the fallback)"};
    }
    detach_path(p);
    for (std::uint16_t q = 0; q < nq_; ++q) {
        queue_state& qs = queues_[q];
        detail::lock_guard<detail::spin_lock> g(qs.stats_lock);
        qs.removed_stats += qs.stats[p].total();
        qs.stats[p] = detail::stat_tracker{};
    }
    visit(p, [](auto& pl) { delete &pl; });
    paths_[p] = path_slot{};
    backoff_ns_[p] = 0;
    backoff_until_[p] = 0;
    return {};
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::stop() noexcept {
    if (!queues_) {
        return;
    }
    // Every attached path: the active one and, if a switch was under way, the one
    // being prepared or released.
    for (std::size_t p = 0; p < max_paths; ++p) {
        detach_path(static_cast<path_id>(p));
    }
    active_ = no_path;
    switching_ = false;
    stage_ = stage_none;
    for (std::uint16_t q = 0; q < nq_; ++q) {
        queue_state& qs = queues_[q];
        drop_ring(qs, qs.backlog);
        drop_ring(qs, qs.requeue);
        qs.tx_path = no_path;
        qs.old_path = no_path;
        qs.standby = no_path;
        // relaxed: shutdown, the queues are quiet (see queue_state::fast)
        qs.fast.store(false, std::memory_order_relaxed);
    }
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::request_switch(path_id p, switch_reason reason) {
    if (!init_error_.ok()) {
        return init_error_;
    }
    if (!valid_path(p)) {
        return {errc::invalid_argument, "no such path"};
    }
    if (switching_) {
        return {errc::busy, "a switch is already in progress"};
    }
    if (active_ == p) {
        return {errc::bad_state, "that path is already active"};
    }
    const std::uint64_t now = Env::now_ns();
    if (!is_mandatory(reason) && active_ != no_path) {
        if (now - last_switch_ns_ < cfg_.policy.min_dwell_ns) {
            ++suppressed_;
            return {errc::busy, "hysteresis: the current path has not dwelt long enough"};
        }
        if (now < backoff_until_[p]) {
            ++suppressed_;
            return {errc::busy, "hysteresis: backing off after a failed switch"};
        }
    }
    // 1. prepare: attach the new plugin (its RX rings get posted) with the desired MTU
    //    and the offloads the OS asked for and the shell supports (the plugin enables
    //    those its device has), then replay the control state as one batch.
    queue_config qc = cfg_.queues;
    qc.mtu = control_.mtu();
    qc.offloads = cfg_.requested_offloads & shell_offloads();
    const path_slot& slot = paths_[p];
    status st = visit(p, [&](auto& pl) -> status {
        using device_t = typename std::remove_cvref_t<decltype(pl)>::device_type;
        return pl.attach(apis_[p], *static_cast<device_t*>(slot.dev), qc);
    });
    if (st.ok()) {
        attached_[p] = true;
        paths_[p].used = ++use_clock_;
        enabled_[p] = qc.offloads & caps_of(p).offloads;
        // The device is brought up anew: a channel with a handshake of its own (an SR-IOV
        // VF's mailbox RESET) redoes it before the replay, whatever happened to the device
        // while no path used it.
        slot.link.device_reset();
        st = replay_control(slot.link);
        if (!st.ok()) {
            detach_path(p);
        }
    }
    if (!st.ok()) {
        const std::uint64_t prev = backoff_ns_[p];
        backoff_ns_[p] = prev == 0 ? cfg_.policy.backoff_initial_ns
                                   : (prev * 2 > cfg_.policy.backoff_max_ns
                                          ? cfg_.policy.backoff_max_ns
                                          : prev * 2);
        backoff_until_[p] = now + backoff_ns_[p];
        switch_record r;
        r.seq = history_.count() + 1;
        r.from = active_;
        r.to = p;
        r.reason = reason;
        r.result = st.code();
        r.detail = st.reason();
        r.requested_ns = now;
        history_.push(r);
        return st;
    }
    backoff_ns_[p] = 0;
    backoff_until_[p] = 0;
    // 2. drain: publish the new epoch; each queue picks it up on its next burst.
    pending_ = switch_record{};
    pending_.seq = history_.count() + 1;
    pending_.from = active_;
    pending_.to = p;
    pending_.reason = reason;
    pending_.requested_ns = now;
    pending_link_ = slot.link;
    // relaxed: to_ and phase_ are published by the release on epoch_ below
    to_.store(p, std::memory_order_relaxed);
    // relaxed: as to_
    phase_.store(phase_draining, std::memory_order_relaxed);
    // release: pairs with the queues' acquire of epoch_ in sync() (and switching_now())
    drain_epoch_ = epoch_.fetch_add(1, std::memory_order_release) + 1;
    switching_ = true;
    stage_ = stage_flipping;
    wake_all();
    return {};
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::wait_switch() {
    while (switching_) {
        if (cfg_.inline_switch) {
            for (std::uint16_t q = 0; q < nq_; ++q) {
                // The caller serves the queues and, waiting here, reads no RX: the drain
                // timeout may end the wait for the old path's RX (sync_slow()).
                queues_[q].rx_reader = false;
                (void)poll(q);
            }
        }
        if constexpr (requires(Env& e) { e.on_wait(); }) {
            env_.on_wait();
        }
        (void)service();
    }
    return {};
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
bool shell<Env, Plugins...>::service() {
    if (switching_) {
        advance_switch();
    } else if (active_ != no_path && fallback_path_ != no_path && fallback_path_ != active_) {
        // The plugin's view of its device first, then the control channel's (a VF's
        // mailbox shows a reset of its PF that the queue registers need not).
        errc h = health(active_);
        h = h == errc::ok ? paths_[active_].link.health() : h;
        if (h == errc::reset) {
            paths_[active_].link.device_reset();
        }
        if (h != errc::ok) {
            (void)request_switch(fallback_path_,
                                 h == errc::removed ? switch_reason::surprise_removal
                                 : h == errc::reset ? switch_reason::reset
                                                    : switch_reason::device_error);
        }
    }
    return switching_;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::surprise_removal() {
    if (fallback_path_ == no_path || fallback_path_ == active_) {
        return {errc::bad_state, "no fallback path registered"};
    }
    return request_switch(fallback_path_, switch_reason::surprise_removal);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
path_id shell<Env, Plugins...>::path_for(typename plugin_t<I>::device_type& dev,
                                         control_link link) {
    for (std::size_t i = 0; i < max_paths; ++i) {
        path_slot& s = paths_[i];
        const auto p = static_cast<path_id>(i);
        if (s.inst != nullptr && s.type == I && s.dev == &dev) {
            if (p != active_ && !(switching_ && (p == pending_.to || p == pending_.from))) {
                s.link = link;
            }
            return p;
        }
    }
    return add_path_of<I>(dev, link);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
std::uint32_t shell<Env, Plugins...>::rx_drain_bound(path_id p, std::uint16_t q) const noexcept {
    if (p == no_path) {
        return 0;
    }
    const std::uint32_t declared = visit(p, [q](auto& pl) -> std::uint32_t {
        if constexpr (bounds_rx_drain<std::remove_cvref_t<decltype(pl)>>) {
            return pl.rx_drain_bound(q);
        } else {
            return ~std::uint32_t{0};
        }
    });
    // A plugin that declares none (or an image answering "none") is taken to hold at most
    // the RX ring the shell attached it with, so a timeout never strands what it held.
    return declared != ~std::uint32_t{0} ? declared : cfg_.queues.rx_ring_size;
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
errc shell<Env, Plugins...>::health(path_id p) const noexcept {
    return visit(p, [](auto& pl) -> errc {
        if constexpr (reports_health<std::remove_cvref_t<decltype(pl)>>) {
            return pl.health();
        } else {
            return errc::ok;
        }
    });
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::advance_switch() {
    if (stage_ == stage_flipping) {
        for (std::uint16_t q = 0; q < nq_; ++q) {
            // acquire: pairs with the queue's release of flipped_epoch in sync_slow(): the
            // queue is done with the old plugin, which this thread detaches next.
            if (queues_[q].flipped_epoch.load(std::memory_order_acquire) != drain_epoch_) {
                return;
            }
        }
        // 4. release: every queue is on the new path; the old plugin hands back
        //    every buffer (unsent TX into each queue's requeue list).
        const std::uint8_t from = pending_.from;
        if (from != no_path) {
            detach_path(from);
        }
        active_ = pending_.to;
        link_ = pending_link_;
        last_switch_ns_ = Env::now_ns();
        recompute_caps(pending_.seq);
        // relaxed: published by the release on epoch_ next line
        phase_.store(phase_released, std::memory_order_relaxed);
        // release: the detach and the requeued buffers before the epoch; pairs with sync()
        release_epoch_ = epoch_.fetch_add(1, std::memory_order_release) + 1;
        stage_ = stage_acking;
        wake_all();
    }
    if (stage_ == stage_acking) {
        for (std::uint16_t q = 0; q < nq_; ++q) {
            // acquire: pairs with the queue's release of acked_epoch in sync_slow(), which
            // publishes its sw_* shares and run_ns read below.
            if (queues_[q].acked_epoch.load(std::memory_order_acquire) != release_epoch_) {
                return;
            }
        }
        std::uint64_t last_run = 0;
        for (std::uint16_t q = 0; q < nq_; ++q) {
            const queue_state& qs = queues_[q];
            // relaxed, these four: written before the queue's release on acked_epoch,
            // acquired above; the queue writes them again only after the next epoch.
            pending_.held += qs.sw_held.load(std::memory_order_relaxed);
            pending_.requeued += qs.sw_requeued.load(std::memory_order_relaxed);  // as above
            pending_.tx_lost += qs.sw_lost.load(std::memory_order_relaxed);       // as above
            pending_.rx_dropped += qs.sw_rx_dropped.load(std::memory_order_relaxed);  // as above
            // relaxed: written before each queue's release on acked_epoch, acquired above
            const std::uint64_t t = qs.run_ns.load(std::memory_order_relaxed);
            last_run = t > last_run ? t : last_run;
        }
        pending_.duration_ns = last_run - pending_.requested_ns;
        history_.push(pending_);
        // relaxed: control thread's own state; queues read phase_ only after a new epoch
        phase_.store(phase_idle, std::memory_order_relaxed);
        stage_ = stage_none;
        switching_ = false;
    }
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
status shell<Env, Plugins...>::replay_control(const control_link& link) {
    const std::size_t cap = 5 + control_.vlan_count();
    std::unique_ptr<control_request[]> batch(new (std::nothrow) control_request[cap]);
    if (!batch) {
        return {errc::no_memory, "cannot build the control replay batch"};
    }
    const std::size_t n = control_.to_batch(std::span<control_request>(batch.get(), cap));
    return link.submit_batch(std::span<const control_request>(batch.get(), n));
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::detach_path(path_id p) noexcept {
    if (p >= max_paths || !attached_[p]) {
        return;
    }
    for (std::uint16_t q = 0; q < nq_; ++q) {
        (void)path_stats(p, q);
    }
    visit(p, [](auto& pl) { pl.detach(); });
    // Read again: what the plugin counted while detaching (TX its device confirmed at the
    // last moment) belongs to this path too; a plugin that zeroes its counters there
    // reads as a restart and loses nothing.
    for (std::uint16_t q = 0; q < nq_; ++q) {
        (void)path_stats(p, q);
    }
    attached_[p] = false;
    enabled_[p] = 0;
    for (std::uint16_t q = 0; q < nq_; ++q) {
        queue_state& qs = queues_[q];
        {
            detail::lock_guard<detail::spin_lock> g(qs.stats_lock);
            qs.stats[p].retire();
        }
        if (visit(p, [](auto& pl) {
                return device_managed_buffers<std::remove_cvref_t<decltype(pl)>>;
            })) {
            continue;  // nothing the shell could balance: see device_managed_buffers
        }
        // A detached plugin holds nothing: what it was given and did not hand back is
        // leaked (or, negative, handed back twice). Counted, and the path starts at 0.
        // relaxed: the queues flipped away from p (flipped_epoch acquired), or never ran
        // on it: this thread is p's only writer now
        const std::int64_t kept = qs.in_plugin[p].load(std::memory_order_relaxed);
        if (NPA_UNLIKELY(kept != 0)) {
            const auto lost = static_cast<std::uint64_t>(kept < 0 ? -kept : kept);
            // relaxed: leaked has one writer, this thread; audit() reads it as a statistic
            const std::uint64_t was = qs.leaked.load(std::memory_order_relaxed);
            qs.leaked.store(was + lost, std::memory_order_relaxed);  // relaxed: as the load
            // relaxed: as kept above (this thread is p's only writer now)
            qs.in_plugin[p].store(0, std::memory_order_relaxed);
            log(log_level::error, "shell: a detached plugin did not return every buffer");
        }
    }
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
void shell<Env, Plugins...>::wake_all() noexcept {
    if constexpr (requires(Env& e) { e.wake(std::uint16_t{0}); }) {
        for (std::uint16_t q = 0; q < nq_; ++q) {
            env_.wake(q);
        }
    }
}

// ---- by device: the path of type index I bound to a device, added on first use --------

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
status shell<Env, Plugins...>::start(typename plugin_t<I>::device_type& dev,
                                     control_link link) {
    return switch_to<I>(dev, link, switch_reason::boot);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
status shell<Env, Plugins...>::request_switch(typename plugin_t<I>::device_type& dev,
                                              control_link link, switch_reason reason) {
    const path_id p = path_for<I>(dev, link);
    if (p == no_path) {
        return {errc::no_memory, "no free path slot"};
    }
    return request_switch(p, reason);
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
status shell<Env, Plugins...>::switch_to(typename plugin_t<I>::device_type& dev,
                                         control_link link, switch_reason reason) {
    status st = request_switch<I>(dev, link, reason);
    if (!st.ok()) {
        return st;
    }
    return wait_switch();
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
void shell<Env, Plugins...>::set_fallback(typename plugin_t<I>::device_type& dev,
                                         control_link link) noexcept {
    set_fallback(path_for<I>(dev, link));
}

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
template <std::size_t I>
auto shell<Env, Plugins...>::plugin() noexcept -> plugin_t<I>& {
    path_id best = no_path;
    for (std::size_t p = 0; p < max_paths; ++p) {
        if (paths_[p].inst != nullptr && paths_[p].type == I &&
            (best == no_path || paths_[p].used > paths_[best].used)) {
            best = static_cast<path_id>(p);
        }
    }
    return *static_cast<plugin_t<I>*>(paths_[best].inst);
}

} // namespace npa
