// npa/shell.hpp: the shell, the device-independent half of a split driver.
//
// One device to the OS, several data paths underneath (DESIGN.md sections 3 and 4):
//
//   OS / Env --tx_burst/rx_burst--> shell --active path--> plugin 0 (emulated, always there)
//                                        \                plugin 1 (VF) ...
//                                         `-control_link-> hypervisor / PF (policy)
//
// Paths: the plugin *types* are a compile-time set (Plugins...); a *path* is a run-time
// instance of one of them, bound to a device and a control link by add_path<P>() and
// named by a path_id. A shell may hold up to max_paths paths, any number of one type.
//
// Data path (per queue, on the queue's own thread, no locks): tx_burst and rx_burst
// read the switch epoch once per burst; while it is unchanged they forward straight to
// the active path: one switch over its type index, then a direct call on the instance
// (no virtual call; with a single plugin type, no switch at all).
//
// Switch (control thread): prepare -> drain -> flip -> release.
//   prepare  attach the new plugin, replay the control state as one batch; on failure
//            the old path never stopped and the failure is recorded with its reason;
//   drain    each queue stops feeding the old plugin, new TX waits in the queue's
//            backlog (or, while the old plugin holds no TX and nothing waits, goes to
//            the new one at once: nothing can be overtaken), the old plugin completes
//            what its device took and delivers what it received (at most
//            rx_drain_bound() of it, for a plugin that declares one);
//   flip     each queue moves to the new plugin on its own (no cross-thread lock) and
//            sends its backlog first, in order. A queue whose old device will not finish
//            (dead, removed, drain timeout) flips "holding": new TX keeps waiting until
//            the old plugin has handed back what it could not confirm, which is sent
//            first, so nothing is lost or reordered;
//   release  the old plugin detaches and returns every buffer; audit() balances.
//
// Buffer bookkeeping: every buffer is in exactly one place: its pool, the caller (OS),
// a queue's backlog or requeue list, or a plugin. audit() adds them up.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/capabilities.hpp>
#include <npa/concepts/buffer_pool.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/concepts/shell_api.hpp>
#include <npa/config.hpp>
#include <npa/control.hpp>
#include <npa/control_state.hpp>
#include <npa/detail/spin_lock.hpp>
#include <npa/ring/index_ring.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>
#include <npa/switch.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

namespace npa {

/// What the shell needs from its environment (the OS-facing side: the sim's test stack,
/// the DPDK PMD, the Linux TAP front).
///
/// Checked by the compiler: a pool type that is an npa::buffer_pool and a monotonic
/// clock. Optional members, used when present:
///   void wake(std::uint16_t q) noexcept   wake the thread serving queue q (interrupt
///                                         mode: a switch needs every queue to run);
///   void on_wait() noexcept               called while switch_to() waits (a sim steps
///                                         its devices here);
///   void log(log_level, const char*) noexcept;
///   static constexpr std::uint32_t offloads   the cap:: bits the OS-facing side can carry
///                                         (a front that cannot pass checksum state or
///                                         VLAN tags to its stack leaves them out); all
///                                         when absent.
template <class Env>
concept shell_env = requires { typename Env::pool_type; } &&
                    buffer_pool<typename Env::pool_type> && requires {
                        { Env::now_ns() } noexcept -> std::same_as<std::uint64_t>;
                    };

enum class irq_mode : std::uint8_t {
    poll,       ///< the caller polls (DPDK style); napi_poll() never arms an interrupt
    interrupt,  ///< NAPI: napi_poll() re-arms the active plugin's interrupt when idle,
                ///< on whichever path is active (a switch keeps the mode)
};

struct shell_config {
    /// Queue pairs, ring sizes, MTU, moderation. The MTU is the initial desired MTU
    /// (set_mtu() changes it); `offloads` is ignored: each attach gets the offloads in
    /// effect (requested_offloads AND what the shell supports).
    queue_config queues{};
    std::uint32_t requested_offloads = cap::all;  ///< what the OS asks for
    switch_policy policy{};
    irq_mode mode = irq_mode::poll;
    /// The thread calling switch_to() also serves the queues while it waits (single
    /// threaded users: tests, an event loop). With false, queue threads must keep
    /// calling the data path (or napi_poll) for a switch to complete.
    bool inline_switch = true;
};

/// The shell's own per-queue counters (the plugins' are in queue_stats).
struct shell_queue_counters {
    std::uint64_t tx_accepted = 0;      ///< buffers the OS handed to tx_burst and the shell took
    std::uint64_t tx_backlogged = 0;    ///< of those, how many waited in the backlog
    std::uint64_t tx_backlog_full = 0;  ///< tx_burst calls that returned short: backlog full
    std::uint64_t tx_no_path = 0;       ///< tx_burst calls refused: no path attached
    std::uint64_t tx_requeued = 0;      ///< buffers a plugin returned unsent, resent
    std::uint64_t tx_lost = 0;          ///< buffers lost (requeue overflow); should stay 0
    std::uint64_t rx_delivered = 0;     ///< buffers handed to the OS by rx_burst
    std::uint64_t flips = 0;            ///< switches this queue took part in
};

/// Where every buffer is, summed over queues and pools.
struct audit_report {
    std::uint64_t pool_size = 0;   ///< buffers the pools were created with
    std::uint64_t in_pool = 0;     ///< on the pools' free lists
    std::int64_t caller = 0;       ///< held by the OS (allocated or received, not yet returned)
    std::uint64_t backlog = 0;     ///< waiting in TX backlogs
    std::uint64_t requeue = 0;     ///< returned unsent, waiting to be resent
    std::int64_t in_plugins = 0;   ///< posted to or accepted by plugins still attached
    /// Buffers detached plugins kept: what a path was given minus what it handed back,
    /// taken when it detached (a plugin that returned more than it got counts too). They
    /// are nowhere the shell can reach, so a nonzero value also unbalances the sum.
    std::uint64_t leaked = 0;
    [[nodiscard]] std::int64_t accounted() const noexcept {
        return static_cast<std::int64_t>(in_pool + backlog + requeue) + caller + in_plugins;
    }
    [[nodiscard]] bool ok() const noexcept {
        return leaked == 0 && accounted() == static_cast<std::int64_t>(pool_size);
    }
};

struct napi_result {
    std::uint16_t received = 0;
    bool rearmed = false;  ///< idle: the interrupt is armed, the caller may sleep
};

/// A path of a shell: a run-time instance of one of its plugin types (add_path()).
using path_id = std::uint8_t;

template <class Env, template <class> class... Plugins>
    requires shell_env<Env>
class shell {
    static_assert(sizeof...(Plugins) >= 1 && sizeof...(Plugins) <= 8,
                  "npa::shell: between 1 and 8 plugin types");

public:
    using env_type = Env;
    using pool_type = typename Env::pool_type;
    using buffer_type = typename pool_type::buffer_type;
    /// Plugin types (compile time) and paths (run time: instances of those types).
    static constexpr std::size_t type_count = sizeof...(Plugins);
    /// Paths a shell holds at once: the per-queue bookkeeping has one slot per path
    /// (eight DPDK sub-ports plus an emulated path fit twice over).
    static constexpr std::size_t max_paths = 16;
    static constexpr path_id no_path = 0xff;

    // Tuning constants (per queue), each sized for the worst case it must absorb.
    /// TX waiting during a switch: at 10 Mpps a 200 us drain holds 2,000 packets.
    static constexpr std::uint32_t backlog_capacity = 4096;
    /// Unsent TX a detaching plugin can return: one full TX ring of the largest size
    /// any shipped plugin supports (vmxnet3: 4096) twice over.
    static constexpr std::uint32_t requeue_capacity = 8192;
    /// Longest burst forwarded in one plugin call when flushing.
    static constexpr std::uint32_t flush_burst = 64;

    /// The Shell API the plugins see: buffers and logging, nothing of the control path.
    class api {
    public:
        using buffer_type = typename shell::buffer_type;

        std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<buffer_type> out) noexcept {
            return sh_->api_alloc_rx(path_, q, out);
        }
        void release_rx_buffers(std::uint16_t q, std::span<const buffer_type> in) noexcept {
            sh_->api_release(path_, q, in);
        }
        void tx_complete(std::uint16_t q, std::span<const buffer_type> in) noexcept {
            sh_->api_release(path_, q, in);
        }
        void tx_unsent(std::uint16_t q, std::span<const buffer_type> in) noexcept {
            sh_->api_unsent(path_, q, in);
        }
        void log(log_level level, const char* msg) noexcept { sh_->log(level, msg); }

    private:
        friend class shell;
        shell* sh_ = nullptr;
        path_id path_ = 0;
    };
    static_assert(shell_api<api>);

    /// The I-th plugin type.
    template <std::size_t I>
    using plugin_t = std::tuple_element_t<I, std::tuple<Plugins<api>...>>;
    /// The index of plugin type P in Plugins... (the first, if it is listed twice).
    template <template <class> class P>
    static constexpr std::size_t type_index = [] {
        constexpr bool same[] = {std::is_same_v<P<api>, Plugins<api>>...};
        std::size_t i = 0;
        while (i < type_count && !same[i]) ++i;
        return i;
    }();

    // ---- lifecycle ------------------------------------------------------------------

    /// `pools` holds one pool per queue (the same pool may appear several times; it must
    /// then be a thread-safe pool if the queues run on different threads).
    shell(Env& env, std::span<pool_type* const> pools, const shell_config& cfg) noexcept
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

    ~shell() {
        stop();
        for (std::size_t p = 0; p < max_paths; ++p) {
            if (paths_[p].inst != nullptr) {
                visit(static_cast<path_id>(p), [](auto& pl) { delete &pl; });
            }
        }
    }
    shell(const shell&) = delete;
    shell& operator=(const shell&) = delete;

    /// Why construction failed (ok if it did not).
    [[nodiscard]] status init_status() const noexcept { return init_error_; }

    // ---- paths: run-time instances of the plugin types (control thread) --------------

    /// Adds a path: an instance of plugin type P that attaches to `dev` (which must
    /// outlive the path) and whose control requests go to `link`. Nothing is attached
    /// until a switch goes to the path. Returns its id (the lowest free one, so paths
    /// added to a new shell are numbered 0, 1, 2, ...), or no_path when all max_paths
    /// slots are taken or the instance cannot be allocated.
    template <template <class> class P>
    [[nodiscard]] path_id add_path(typename P<api>::device_type& dev, control_link link) {
        static_assert(type_index<P> < type_count, "npa::shell::add_path: P is not one of the shell's plugin types");
        return add_path_of<type_index<P>>(dev, link);
    }
    /// add_path() by type index, for a shell that lists one plugin type twice.
    template <std::size_t I>
    [[nodiscard]] path_id add_path_of(typename plugin_t<I>::device_type& dev, control_link link) {
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

    /// Removes a path that is neither active, nor part of a switch under way, nor the
    /// fallback. Its counters stay in queue_totals() (monotonic); the id may be reused.
    [[nodiscard]] status remove_path(path_id p) noexcept {
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
            qs.stats[p] = stat_tracker{};
        }
        visit(p, [](auto& pl) { delete &pl; });
        paths_[p] = path_slot{};
        backoff_ns_[p] = 0;
        backoff_until_[p] = 0;
        return {};
    }

    /// Brings the first path up (attach, control replay) and returns once every queue
    /// runs on it.
    [[nodiscard]] status start(path_id p) { return switch_to(p, switch_reason::boot); }

    /// Detaches every path; every buffer goes back to its pool. TX the shell still held
    /// (backlog, requeued) is freed and counted as tx_lost: stopping drops what was not
    /// sent, as closing a netdev does. Control thread, with the data path quiet.
    void stop() noexcept {
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

    // ---- data path: the thread that owns queue q -----------------------------------

    /// Sends up to bufs.size() packets; returns how many the shell took (0..n). What it
    /// did not take stays with the caller. During a switch packets wait in the backlog.
    [[nodiscard]] std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> bufs) noexcept {
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

    /// Receives up to out.size() packets (ownership to the caller); returns how many.
    [[nodiscard]] std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> out) noexcept {
        queue_state& qs = queues_[q];
        sync(qs, q);
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

    /// The path queue q runs on when nothing is in progress (no switch under way, nothing
    /// waiting to go first), else no_path. While it answers a path, a
    /// caller on q's thread may call that path's device directly until the switch epoch
    /// moves (see the DPDK adapter's direct burst). Queue q's thread only.
    [[nodiscard]] path_id steady_path(std::uint16_t q) const noexcept {
        const queue_state& qs = queues_[q];
        const bool steady = qs.fast.load(std::memory_order_relaxed) && !qs.draining &&
                            !qs.hold && qs.seen_epoch == epoch_.load(std::memory_order_seq_cst) &&
                            phase_.load(std::memory_order_relaxed) == phase_idle;
        return steady ? qs.tx_path : no_path;
    }

    /// Reaps TX completions and moves any switch in progress along; returns buffers
    /// reaped. Call it when there is no traffic to send, so a switch never waits on TX.
    std::uint32_t poll(std::uint16_t q) noexcept {
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

    /// NAPI poll (Linux vmxnet3_poll's contract): receive up to out.size() (the budget);
    /// when less than the budget arrived the queue is idle, so the active plugin's
    /// interrupt is re-armed, and the ring is checked once more to close the window
    /// between the last poll and the arm. During a switch the interrupt stays off so
    /// the queue keeps being polled until the switch is through.
    [[nodiscard]] napi_result napi_poll(std::uint16_t q, std::span<buffer_type> out) noexcept {
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

    /// Buffers for the OS to build TX packets in, from queue q's pool.
    [[nodiscard]] std::uint32_t alloc(std::uint16_t q, std::span<buffer_type> out) noexcept {
        queue_state& qs = queues_[q];
        const std::uint32_t n = qs.pool->alloc_burst(out);
        add(qs.caller, static_cast<std::int64_t>(n));
        return n;
    }

    /// The OS is done with these buffers (consumed RX, or TX it decided not to send).
    void free(std::uint16_t q, std::span<const buffer_type> bufs) noexcept {
        queue_state& qs = queues_[q];
        qs.pool->free_burst(bufs);
        add(qs.caller, -static_cast<std::int64_t>(bufs.size()));
    }

    // ---- switching: the control thread ---------------------------------------------

    /// Prepares path p and starts draining the current one. Returns ok when the switch
    /// is under way (it completes in service()), or why it was refused or failed; on
    /// failure the current path keeps running untouched.
    [[nodiscard]] status request_switch(path_id p, switch_reason reason) {
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
        // relaxed: from_, to_ and phase_ are published by the release on epoch_ below
        from_.store(active_, std::memory_order_relaxed);
        to_.store(p, std::memory_order_relaxed);
        phase_.store(phase_draining, std::memory_order_relaxed);
        drain_epoch_ = epoch_.fetch_add(1, std::memory_order_release) + 1;
        switching_ = true;
        stage_ = stage_flipping;
        wake_all();
        return {};
    }

    /// request_switch() and wait until the switch is complete (serving the queues while
    /// waiting when cfg.inline_switch is set).
    [[nodiscard]] status switch_to(path_id p, switch_reason reason) {
        status st = request_switch(p, reason);
        if (!st.ok()) {
            return st;
        }
        return wait_switch();
    }

    /// Waits for the switch in progress to finish. A switch completes only when every
    /// queue has run since it was requested (a data-path call or poll(q)): an application
    /// that stops polling a queue holds the switch until it polls again.
    [[nodiscard]] status wait_switch() {
        while (switching_) {
            if (cfg_.inline_switch) {
                for (std::uint16_t q = 0; q < nq_; ++q) {
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

    /// Registers the path to fall back to when the active plugin reports its device
    /// failed or gone (plugins that model reports_health); no_path clears it.
    void set_fallback(path_id p) noexcept { fallback_path_ = valid_path(p) ? p : no_path; }

    /// Control-thread housekeeping: completes a switch whose queues have all flipped
    /// (release), and switches to the fallback path when the active device failed.
    /// Returns true while a switch is in progress.
    bool service() {
        if (switching_) {
            advance_switch();
        } else if (active_ != no_path && fallback_path_ != no_path && fallback_path_ != active_) {
            const errc h = health(active_);
            if (h != errc::ok) {
                (void)request_switch(fallback_path_,
                                     h == errc::removed ? switch_reason::surprise_removal
                                     : h == errc::reset ? switch_reason::reset
                                                        : switch_reason::device_error);
            }
        }
        return switching_;
    }

    /// Notifies the shell that the active device disappeared (hot-unplug event). The
    /// shell switches to the fallback path; TX the device had taken comes back unsent
    /// and is resent there.
    [[nodiscard]] status surprise_removal() {
        if (fallback_path_ == no_path || fallback_path_ == active_) {
            return {errc::bad_state, "no fallback path registered"};
        }
        return request_switch(fallback_path_, switch_reason::surprise_removal);
    }

    [[nodiscard]] bool switching() const noexcept { return switching_; }
    [[nodiscard]] path_id active_path() const noexcept { return active_; }
    /// The path a switch in progress goes to; the active path otherwise.
    [[nodiscard]] path_id target_path() const noexcept {
        return switching_ ? pending_.to : active_;
    }
    [[nodiscard]] const char* active_name() const noexcept { return path_name(active_); }
    /// The plugin type name of path p ("none" for no path).
    [[nodiscard]] const char* path_name(path_id p) const noexcept {
        constexpr const char* names[] = {Plugins<api>::name...};
        return valid_path(p) ? names[paths_[p].type] : "none";
    }
    /// The index (in Plugins...) of path p's plugin type.
    [[nodiscard]] std::size_t path_type(path_id p) const noexcept { return paths_[p].type; }
    [[nodiscard]] bool valid_path(path_id p) const noexcept {
        return p < max_paths && paths_[p].inst != nullptr;
    }
    [[nodiscard]] std::uint64_t suppressed_switches() const noexcept { return suppressed_; }

    /// Path p's plugin instance if it is of type P, else nullptr (control thread, or the
    /// queue's thread for what the plugin allows there).
    template <template <class> class P>
    [[nodiscard]] P<api>* plugin(path_id p) noexcept {
        constexpr std::size_t i = type_index<P>;
        return valid_path(p) && paths_[p].type == i ? static_cast<plugin_t<i>*>(paths_[p].inst)
                                                    : nullptr;
    }
    /// Calls f(plugin) on path p's instance, typed (f is generic over the plugin types).
    template <class F>
    decltype(auto) with_plugin(path_id p, F&& f) {
        return visit(p, f);
    }

    // ---- by device: a path per (plugin type index, device), added on first use -------
    //
    // For callers that think in devices rather than paths (tests, a fixed pair of
    // devices): each finds the path of type index I bound to `dev` (the link given
    // replaces the path's while it is not in use), adding it if there is none.

    template <std::size_t I>
    [[nodiscard]] status start(typename plugin_t<I>::device_type& dev, control_link link) {
        return switch_to<I>(dev, link, switch_reason::boot);
    }
    template <std::size_t I>
    [[nodiscard]] status request_switch(typename plugin_t<I>::device_type& dev,
                                        control_link link, switch_reason reason) {
        const path_id p = path_for<I>(dev, link);
        if (p == no_path) {
            return {errc::no_memory, "no free path slot"};
        }
        return request_switch(p, reason);
    }
    template <std::size_t I>
    [[nodiscard]] status switch_to(typename plugin_t<I>::device_type& dev, control_link link,
                                   switch_reason reason) {
        status st = request_switch<I>(dev, link, reason);
        if (!st.ok()) {
            return st;
        }
        return wait_switch();
    }
    template <std::size_t I>
    void set_fallback(typename plugin_t<I>::device_type& dev, control_link link) noexcept {
        set_fallback(path_for<I>(dev, link));
    }
    /// The instance of type index I that a switch went to last (or, before any did, the
    /// one added last). A path of that type must exist.
    template <std::size_t I>
    [[nodiscard]] plugin_t<I>& plugin() noexcept {
        path_id best = no_path;
        for (std::size_t p = 0; p < max_paths; ++p) {
            if (paths_[p].inst != nullptr && paths_[p].type == I &&
                (best == no_path || paths_[p].used > paths_[best].used)) {
                best = static_cast<path_id>(p);
            }
        }
        return *static_cast<plugin_t<I>*>(paths_[best].inst);
    }

    // ---- control path --------------------------------------------------------------

    /// Validates a request, sends it to the active path's authority and records it if
    /// accepted. A refusal (errc::refused plus the authority's reason) changes nothing.
    [[nodiscard]] status control(const control_request& r) {
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
    [[nodiscard]] status set_mac(const mac_addr& m) { return control(control_request::make_set_mac(m)); }
    [[nodiscard]] status add_vlan(std::uint16_t vid) { return control(control_request::make_vlan(true, vid)); }
    [[nodiscard]] status del_vlan(std::uint16_t vid) { return control(control_request::make_vlan(false, vid)); }
    [[nodiscard]] status set_mtu(std::uint32_t mtu) { return control(control_request::make_mtu(mtu)); }
    [[nodiscard]] status set_rx_mode(std::uint32_t mode) { return control(control_request::make_rx_mode(mode)); }
    [[nodiscard]] status set_mcast_list(std::span<const mac_addr> list) {
        control_request r;
        r.op = control_op::set_mcast_list;
        if (list.size() > max_mcast_addrs) {
            return {errc::invalid_argument, "multicast list longer than 32 entries"};
        }
        r.mcast_count = static_cast<std::uint32_t>(list.size());
        for (std::size_t i = 0; i < list.size(); ++i) r.mcast[i] = list[i];
        return control(r);
    }
    [[nodiscard]] status set_rss(const rss_config& rss) {
        control_request r;
        r.op = control_op::set_rss;
        r.rss = rss;
        return control(r);
    }
    /// The control state the OS asked for and the authority accepted.
    [[nodiscard]] const npa::control_state& desired_control() const noexcept { return control_; }

    // ---- capabilities ----------------------------------------------------------------

    /// Offloads in effect: requested AND shell AND the active plugin and its device. The
    /// active plugin was attached with exactly these (or, after request_offloads() took
    /// some away, with more: see there).
    [[nodiscard]] std::uint32_t offloads() const noexcept { return offloads_; }
    /// What the shell itself supports: what its Env's OS-facing side can carry
    /// (Env::offloads), without RSS when there is a single queue to spread flows over.
    [[nodiscard]] std::uint32_t shell_offloads() const noexcept {
        std::uint32_t bits = cap::all;
        if constexpr (requires { Env::offloads; }) {
            bits &= static_cast<std::uint32_t>(Env::offloads);
        }
        return nq_ > 1 ? bits : bits & ~cap::rss;
    }
    [[nodiscard]] capabilities active_capabilities() const noexcept {
        return active_ == no_path ? capabilities{} : caps_of(active_);
    }
    /// Changes what the OS asks for. Offloads are programmed when a path attaches: bits
    /// taken away leave offloads() at once (the OS stops asking for them per packet; RX
    /// features the device was set up with stay on until the next switch), bits added
    /// take effect at the next switch.
    void request_offloads(std::uint32_t bits) noexcept {
        cfg_.requested_offloads = bits;
        recompute_caps(0);
    }
    [[nodiscard]] std::uint32_t capability_event_count() const noexcept { return cap_events_n_; }
    /// The i-th most recent capability event (0 = newest).
    [[nodiscard]] const capability_event& capability_event_at(std::uint32_t i) const noexcept {
        return cap_events_[(cap_events_n_ - 1 - i) % cap_events_.size()];
    }

    // ---- stats and audit -------------------------------------------------------------

    /// Counters of path p on queue q, monotonic across switches and device counter
    /// resets. Exact when called on q's thread or with the data path quiet.
    [[nodiscard]] queue_stats path_stats(path_id p, std::uint16_t q) const noexcept {
        if (p >= max_paths) {
            return {};
        }
        detail::lock_guard<detail::spin_lock> g(queues_[q].stats_lock);
        stat_tracker& t = queues_[q].stats[p];
        if (attached_[p]) {
            t.observe(visit(p, [q](auto& pl) -> queue_stats { return pl.stats(q); }));
        }
        return t.total();
    }
    /// Counters of queue q over every path, removed ones included.
    [[nodiscard]] queue_stats queue_totals(std::uint16_t q) const noexcept {
        queue_stats s;
        for (std::size_t p = 0; p < max_paths; ++p) s += path_stats(static_cast<path_id>(p), q);
        detail::lock_guard<detail::spin_lock> g(queues_[q].stats_lock);
        s += queues_[q].removed_stats;
        return s;
    }
    [[nodiscard]] const shell_queue_counters& counters(std::uint16_t q) const noexcept {
        return queues_[q].c;
    }
    [[nodiscard]] const switch_history& history() const noexcept { return history_; }
    [[nodiscard]] std::uint16_t queue_count() const noexcept { return nq_; }

    /// Adds up where every buffer is. ok() is exact at any moment on a single thread,
    /// and with the data path quiet otherwise.
    [[nodiscard]] audit_report audit() const noexcept {
        audit_report r;
        for (std::uint16_t q = 0; q < nq_; ++q) {
            const queue_state& qs = queues_[q];
            bool seen = false;
            for (std::uint16_t k = 0; k < q; ++k) seen = seen || queues_[k].pool == qs.pool;
            if (!seen) {
                r.pool_size += qs.pool->size();
                r.in_pool += qs.pool->available();
            }
            // relaxed: audit() is exact only with the data path quiet (single-threaded view)
            r.caller += qs.caller.load(std::memory_order_relaxed);
            r.leaked += qs.leaked.load(std::memory_order_relaxed);
            r.backlog += qs.backlog.size();
            r.requeue += qs.requeue.size();
            for (std::size_t p = 0; p < max_paths; ++p) {
                r.in_plugins += qs.in_plugin[p].load(std::memory_order_relaxed);
            }
        }
        return r;
    }

private:
    enum : std::uint8_t { phase_idle, phase_draining, phase_released };
    enum : std::uint8_t { stage_none, stage_flipping, stage_acking };

    /// Folds a plugin's counters into monotonic totals. A device resets all its counters
    /// at once, so any counter going backwards (device reset, re-attach) means every
    /// counter restarted from zero: what was last seen becomes history. A reset whose
    /// counters have all climbed past their last observed values before the next
    /// observation cannot be told from values alone; that window is the time between two
    /// reads (each burst's stats read, each detach), and the counts in it are missed.
    struct stat_tracker {
        queue_stats base{};
        queue_stats last{};

        void observe(const queue_stats& cur) noexcept {
            const bool restarted =
                cur.rx_packets < last.rx_packets || cur.rx_bytes < last.rx_bytes ||
                cur.tx_packets < last.tx_packets || cur.tx_bytes < last.tx_bytes ||
                cur.rx_no_buffer < last.rx_no_buffer || cur.rx_dropped < last.rx_dropped ||
                cur.tx_ring_full < last.tx_ring_full || cur.tx_errors < last.tx_errors ||
                cur.bad_completion < last.bad_completion || cur.irqs < last.irqs ||
                cur.resets < last.resets;
            if (restarted) {
                base += last;
            }
            last = cur;
        }
        /// The device is going away: what it counted becomes history.
        void retire() noexcept {
            base += last;
            last = queue_stats{};
        }
        [[nodiscard]] queue_stats total() const noexcept {
            queue_stats t = base;
            t += last;
            return t;
        }
    };

    struct alignas(cache_line_size) queue_state {
        // Owned by the queue's thread.
        std::uint32_t seen_epoch = 0;
        std::uint8_t tx_path = no_path;   ///< the path TX goes to (and RX comes from)
        std::uint8_t standby = no_path;   ///< during drain: the prepared new path
        std::uint8_t old_path = no_path;  ///< after a holding flip: the path being released
        bool draining = false;
        bool hold = false;
        bool old_rx_drained = false;
        bool old_rx_read = false;         ///< during drain: the queue has read RX
        bool armed = false;
        std::uint32_t rx_drain_left = 0;  ///< during drain: old-path RX still to read
        std::uint64_t drain_deadline = 0;
        std::uint64_t old_rx_last_ns = 0; ///< during drain: the old path's last delivery
        std::uint64_t held_at_start = 0;
        std::uint64_t requeued_at_start = 0;
        std::uint64_t lost_at_start = 0;
        std::uint64_t rx_drops_at_start = 0;
        shell_queue_counters c{};
        pool_type* pool = nullptr;
        // Read by other threads. Memory order: `fast` is read only by this queue's thread;
        // it is written by that thread and, to false only, by the control thread
        // (api_unsent, reset). false is always safe (the slow path re-checks everything
        // under the epoch protocol), so relaxed suffices except for the one store-load pair
        // between flush() and api_unsent(), which takes seq_cst fences. The epochs carry
        // release/acquire and publish the relaxed fields written before them (phase_,
        // to_, run_ns, sw_*). The counters (caller, leaked, in_plugin) have one writer
        // at a time, handed over by the epochs, and are atomics only so that audit() may
        // read them from another thread.
        std::atomic<bool> fast{false};               ///< tx_burst may go straight to tx_path
        std::atomic<std::uint32_t> flipped_epoch{0};
        std::atomic<std::uint32_t> acked_epoch{0};
        /// When this queue's TX started going to the new path: its flip, or for a
        /// holding flip the release that let the held TX out.
        std::atomic<std::uint64_t> run_ns{0};
        // This queue's share of the last switch, published with acked_epoch.
        std::atomic<std::uint64_t> sw_held{0};
        std::atomic<std::uint64_t> sw_requeued{0};
        std::atomic<std::uint64_t> sw_lost{0};
        std::atomic<std::uint64_t> sw_rx_dropped{0};
        std::atomic<std::int64_t> caller{0};
        std::atomic<std::uint64_t> leaked{0};  ///< kept by detached plugins (audit)
        std::array<std::atomic<std::int64_t>, max_paths> in_plugin{};
        mutable std::array<stat_tracker, max_paths> stats{};
        queue_stats removed_stats{};  ///< what removed paths counted (under stats_lock)
        /// The trackers are read from the control thread and, during a switch, from the
        /// queue's thread (rx_drops): a short lock, taken only on those slow paths.
        mutable detail::spin_lock stats_lock;
        index_ring<buffer_type, backlog_capacity> backlog;
        index_ring<buffer_type, requeue_capacity> requeue;
    };

    // Counters with a single writer at a time (ordering comes from the epoch protocol);
    // atomics only so that audit() may read them from elsewhere. A load and a store, both
    // relaxed, not a fetch_add: with one writer nothing can come between them, and the
    // reader needs no order beyond the epochs'.
    static void add(std::atomic<std::int64_t>& a, std::int64_t d) noexcept {
        a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }

    // ---- dispatch: one switch over the type index, then a direct call ---------------

    /// A path: an instance of plugin type `type`, the device it attaches to, its link.
    struct path_slot {
        void* inst = nullptr;  ///< plugin_t<type>*, owned; null: the slot is free
        void* dev = nullptr;   ///< plugin_t<type>::device_type*
        control_link link{};
        std::uint8_t type = 0;
        std::uint64_t used = 0;  ///< when last added or attached (plugin<I>())
    };

    template <std::size_t I, class F>
    NPA_ALWAYS_INLINE static decltype(auto) call_as(void* inst, F& f) noexcept {
        if constexpr (I < type_count) {
            return f(*static_cast<plugin_t<I>*>(inst));
        } else {
            __builtin_unreachable();  // a path's type index is below type_count
            return f(*static_cast<plugin_t<0>*>(inst));
        }
    }
    /// Calls f on path p's instance (p must be a valid path). With one plugin type this
    /// is a direct call; with several, one switch over the type index.
    template <class F>
    NPA_ALWAYS_INLINE decltype(auto) visit(path_id p, F&& f) const noexcept {
        const path_slot& s = paths_[p];
        static_assert(type_count <= 8);
        if constexpr (type_count == 1) {
            return call_as<0>(s.inst, f);
        } else {
            switch (s.type) {
            case 1: return call_as<1>(s.inst, f);
            case 2: return call_as<2>(s.inst, f);
            case 3: return call_as<3>(s.inst, f);
            case 4: return call_as<4>(s.inst, f);
            case 5: return call_as<5>(s.inst, f);
            case 6: return call_as<6>(s.inst, f);
            case 7: return call_as<7>(s.inst, f);
            default: return call_as<0>(s.inst, f);
            }
        }
    }

    template <std::size_t I>
    path_id path_for(typename plugin_t<I>::device_type& dev, control_link link) {
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

    std::uint16_t plugin_tx(path_id p, queue_state& qs, std::uint16_t q,
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
    std::uint16_t plugin_rx(path_id p, queue_state& qs, std::uint16_t q,
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
    /// Old-path RX a drain reads at most (optional plugin member rx_drain_bound);
    /// unbounded (until a short burst) otherwise.
    [[nodiscard]] std::uint32_t rx_drain_bound(path_id p, std::uint16_t q) const noexcept {
        if (p == no_path) {
            return 0;
        }
        return visit(p, [q](auto& pl) -> std::uint32_t {
            if constexpr (bounds_rx_drain<std::remove_cvref_t<decltype(pl)>>) {
                return pl.rx_drain_bound(q);
            } else {
                return ~std::uint32_t{0};
            }
        });
    }
    [[nodiscard]] errc health(path_id p) const noexcept {
        return visit(p, [](auto& pl) -> errc {
            if constexpr (reports_health<std::remove_cvref_t<decltype(pl)>>) {
                return pl.health();
            } else {
                return errc::ok;
            }
        });
    }
    [[nodiscard]] capabilities caps_of(path_id p) const noexcept {
        return visit(p, [](auto& pl) -> capabilities { return pl.capabilities(); });
    }

    // ---- the plugin-facing API -------------------------------------------------------

    std::uint32_t api_alloc_rx(path_id p, std::uint16_t q, std::span<buffer_type> out) noexcept {
        queue_state& qs = queues_[q];
        const std::uint32_t n = qs.pool->alloc_burst(out);
        add(qs.in_plugin[p], n);
        return n;
    }
    void api_release(path_id p, std::uint16_t q, std::span<const buffer_type> in) noexcept {
        queue_state& qs = queues_[q];
        qs.pool->free_burst(in);
        add(qs.in_plugin[p], -static_cast<std::int64_t>(in.size()));
    }
    void api_unsent(path_id p, std::uint16_t q, std::span<const buffer_type> in) noexcept {
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
        // the buffers or this store lands after its `fast = true`.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        // relaxed: ordered by the fence above
        qs.fast.store(false, std::memory_order_relaxed);
    }
    void log(log_level level, const char* msg) noexcept {
        if constexpr (requires(Env& e) { e.log(level, msg); }) {
            env_.log(level, msg);
        }
    }

    // ---- per-queue half of the switch --------------------------------------------------

    NPA_ALWAYS_INLINE void sync(queue_state& qs, std::uint16_t q) noexcept {
        const std::uint32_t e = epoch_.load(std::memory_order_acquire);
        if (NPA_LIKELY(e == qs.seen_epoch && !qs.draining)) {
            return;
        }
        sync_slow(qs, q, e);
    }

    void sync_slow(queue_state& qs, std::uint16_t q, std::uint32_t e) noexcept {
        if (e != qs.seen_epoch) {
            // relaxed: published by the release on epoch_, acquired by sync() above
            const std::uint8_t ph = phase_.load(std::memory_order_relaxed);
            if (ph == phase_draining && !qs.draining) {
                qs.draining = true;
                qs.old_rx_drained = qs.tx_path == no_path;
                qs.rx_drain_left = rx_drain_bound(qs.tx_path, q);
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
                qs.sw_rx_dropped.store(rx_drops(q) - qs.rx_drops_at_start,
                                       std::memory_order_relaxed);
                qs.sw_held.store(qs.c.tx_backlogged - qs.held_at_start, std::memory_order_relaxed);
                qs.sw_requeued.store(qs.c.tx_requeued - qs.requeued_at_start,
                                     std::memory_order_relaxed);
                qs.sw_lost.store(qs.c.tx_lost - qs.lost_at_start, std::memory_order_relaxed);
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
        // The timeout ends a wait on the old device (TX in flight, RX that the queue does
        // not read). Old-path RX that the queue is reading is already there: its bound ends
        // that read, not the clock, so a thread descheduled past the deadline strands none
        // of it on the released device. (A plugin without a bound may never run dry: the
        // timeout ends its read.)
        const bool reading_old_rx = qs.old_rx_read && !qs.old_rx_drained &&
                                    rx_drain_bound(qs.tx_path, q) != ~std::uint32_t{0};
        const bool give_up =
            !done && (health(qs.tx_path) != errc::ok ||
                      (Env::now_ns() >= qs.drain_deadline && !reading_old_rx));
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
        qs.flipped_epoch.store(e, std::memory_order_release);
    }

    // The old path delivered `n` in a short burst: quiet for policy.rx_quiet_ns yet?
    bool old_rx_quiet(queue_state& qs, std::uint16_t n) noexcept {
        if (cfg_.policy.rx_quiet_ns == 0) {
            return true;
        }
        const std::uint64_t now = Env::now_ns();
        if (n != 0) {
            qs.old_rx_last_ns = now;
        }
        return now - qs.old_rx_last_ns >= cfg_.policy.rx_quiet_ns;
    }

    [[nodiscard]] bool switching_now(const queue_state& qs) const noexcept {
        return qs.draining || qs.hold || qs.seen_epoch != epoch_.load(std::memory_order_acquire);
    }

    // TX when the fast path is off: no path, a switch in progress, or older packets
    // (requeued or backlogged) that must go first.
    std::uint16_t tx_slow(queue_state& qs, std::uint16_t q, std::span<buffer_type> bufs) noexcept {
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

    /// Sends requeued then backlogged buffers to the active path. Returns true (and turns
    /// the fast path back on) when both are empty.
    bool flush(queue_state& qs, std::uint16_t q) noexcept {
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

    template <class Ring>
    bool drain_ring(queue_state& qs, std::uint16_t q, Ring& ring) noexcept {
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

    template <class Ring>
    void drop_ring(queue_state& qs, Ring& ring) noexcept {
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

    // ---- control-thread half of the switch -----------------------------------------

    void advance_switch() {
        if (stage_ == stage_flipping) {
            for (std::uint16_t q = 0; q < nq_; ++q) {
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
            release_epoch_ = epoch_.fetch_add(1, std::memory_order_release) + 1;
            stage_ = stage_acking;
            wake_all();
        }
        if (stage_ == stage_acking) {
            for (std::uint16_t q = 0; q < nq_; ++q) {
                if (queues_[q].acked_epoch.load(std::memory_order_acquire) != release_epoch_) {
                    return;
                }
            }
            std::uint64_t last_run = 0;
            for (std::uint16_t q = 0; q < nq_; ++q) {
                const queue_state& qs = queues_[q];
                pending_.held += qs.sw_held.load(std::memory_order_relaxed);
                pending_.requeued += qs.sw_requeued.load(std::memory_order_relaxed);
                pending_.tx_lost += qs.sw_lost.load(std::memory_order_relaxed);
                pending_.rx_dropped += qs.sw_rx_dropped.load(std::memory_order_relaxed);
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

    /// Replays the whole control state onto a new path's authority, all or nothing.
    /// Control path: the batch is built on the heap (it can hold 4,000 VLAN filters).
    [[nodiscard]] status replay_control(const control_link& link) {
        const std::size_t cap = 5 + control_.vlan_count();
        std::unique_ptr<control_request[]> batch(new (std::nothrow) control_request[cap]);
        if (!batch) {
            return {errc::no_memory, "cannot build the control replay batch"};
        }
        const std::size_t n = control_.to_batch(std::span<control_request>(batch.get(), cap));
        return link.submit_batch(std::span<const control_request>(batch.get(), n));
    }

    void detach_path(path_id p) noexcept {
        if (p >= max_paths || !attached_[p]) {
            return;
        }
        for (std::uint16_t q = 0; q < nq_; ++q) {
            (void)path_stats(p, q);
        }
        visit(p, [](auto& pl) { pl.detach(); });
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
            // relaxed: the queues flipped away from p (flipped_epoch acquired): this thread is p's only writer now
            const std::int64_t kept = qs.in_plugin[p].load(std::memory_order_relaxed);
            if (NPA_UNLIKELY(kept != 0)) {
                qs.leaked.store(qs.leaked.load(std::memory_order_relaxed) +
                                    static_cast<std::uint64_t>(kept < 0 ? -kept : kept),
                                std::memory_order_relaxed);
                qs.in_plugin[p].store(0, std::memory_order_relaxed);
                log(log_level::error, "shell: a detached plugin did not return every buffer");
            }
        }
    }

    /// RX drops the devices counted on queue q, over every path (the queue's thread).
    [[nodiscard]] std::uint64_t rx_drops(std::uint16_t q) const noexcept {
        const queue_stats s = queue_totals(q);
        return s.rx_dropped + s.rx_no_buffer;
    }

    void recompute_caps(std::uint64_t seq) noexcept {
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
    void push_cap_event(const capability_event& ev) noexcept {
        cap_events_[cap_events_n_ % cap_events_.size()] = ev;
        ++cap_events_n_;
    }

    void wake_all() noexcept {
        if constexpr (requires(Env& e) { e.wake(std::uint16_t{0}); }) {
            for (std::uint16_t q = 0; q < nq_; ++q) {
                env_.wake(q);
            }
        }
    }

    // ---- state -----------------------------------------------------------------------

    Env& env_;
    shell_config cfg_;
    status init_error_{};
    std::uint16_t nq_ = 0;
    std::unique_ptr<queue_state[]> queues_;
    std::array<api, max_paths> apis_{};
    std::array<path_slot, max_paths> paths_{};
    std::uint64_t use_clock_ = 0;
    std::array<bool, max_paths> attached_{};
    /// Per path: the offloads it was attached with that it also has (control thread).
    std::array<std::uint32_t, max_paths> enabled_{};

    // Published to the queues: a new epoch means "look at phase_/to_".
    alignas(cache_line_size) std::atomic<std::uint32_t> epoch_{0};
    std::atomic<std::uint8_t> phase_{phase_idle};
    std::atomic<std::uint8_t> from_{no_path};
    std::atomic<std::uint8_t> to_{no_path};

    // Control thread only.
    alignas(cache_line_size) std::uint8_t active_ = no_path;
    control_link link_{};
    control_link pending_link_{};
    bool switching_ = false;
    std::uint8_t stage_ = stage_none;
    std::uint32_t drain_epoch_ = 0;
    std::uint32_t release_epoch_ = 0;
    switch_record pending_{};
    switch_history history_{};
    std::uint64_t last_switch_ns_ = 0;
    std::uint64_t suppressed_ = 0;
    std::array<std::uint64_t, max_paths> backoff_ns_{};
    std::array<std::uint64_t, max_paths> backoff_until_{};
    npa::control_state control_{};
    std::uint32_t offloads_ = 0;
    std::uint32_t ever_had_ = 0;
    std::array<capability_event, 64> cap_events_{};
    std::uint32_t cap_events_n_ = 0;
    path_id fallback_path_ = no_path;
};

} // namespace npa
