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
//
// This file declares the shell (its API, its state, the dispatch); the members are
// defined one header per job, each a section of docs/design.md:
//   npa/shell/config.hpp              shell_env, shell_config, counters, audit_report
//   npa/shell/data_path.hpp           tx_burst, rx_burst, poll, napi_poll, the plugin API
//   npa/shell/switch_queue.hpp        the per-queue half of the switch (drain, flip, ack)
//   npa/shell/switch_engine.hpp       paths, request_switch, service: the control thread
//   npa/shell/control_forwarding.hpp  control requests to the active path's authority
//   npa/shell/capability_events.hpp   offloads in effect, capability events
//   npa/shell/stat_tracker.hpp, stats.hpp   monotonic counters
//   npa/shell/audit.hpp               where every buffer is
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
#include <npa/shell/config.hpp>
#include <npa/shell/stat_tracker.hpp>
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

    /// The Shell API the plugins see: buffers, logging and the clock, nothing of the
    /// control path.
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
        /// The environment's monotonic clock (provides_clock).
        [[nodiscard]] std::uint64_t now_ns() const noexcept { return Env::now_ns(); }

    private:
        friend class shell;
        shell* sh_ = nullptr;
        path_id path_ = 0;
    };
    static_assert(shell_api<api> && provides_clock<api>);

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
    shell(Env& env, std::span<pool_type* const> pools, const shell_config& cfg) noexcept;

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
    [[nodiscard]] path_id add_path(typename P<api>::device_type& dev, control_link link);
    /// add_path() by type index, for a shell that lists one plugin type twice.
    template <std::size_t I>
    [[nodiscard]] path_id add_path_of(typename plugin_t<I>::device_type& dev, control_link link);

    /// Removes a path that is neither active, nor part of a switch under way, nor the
    /// fallback. Its counters stay in queue_totals() (monotonic); the id may be reused.
    [[nodiscard]] status remove_path(path_id p) noexcept;

    /// Brings the first path up (attach, control replay) and returns once every queue
    /// runs on it.
    [[nodiscard]] status start(path_id p) { return switch_to(p, switch_reason::boot); }

    /// Detaches every path; every buffer goes back to its pool. TX the shell still held
    /// (backlog, requeued) is freed and counted as tx_lost: stopping drops what was not
    /// sent, as closing a netdev does. Control thread, with the data path quiet.
    void stop() noexcept;

    // ---- data path: the thread that owns queue q -----------------------------------

    /// Sends up to bufs.size() packets; returns how many the shell took (0..n). What it
    /// did not take stays with the caller. During a switch packets wait in the backlog.
    [[nodiscard]] std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> bufs) noexcept;

    /// Receives up to out.size() packets (ownership to the caller); returns how many.
    [[nodiscard]] std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> out) noexcept;

    /// The path queue q runs on when nothing is in progress (no switch under way, nothing
    /// waiting to go first), else no_path. While it answers a path, a
    /// caller on q's thread may call that path's device directly until the switch epoch
    /// moves (see the DPDK adapter's direct burst). Queue q's thread only.
    [[nodiscard]] path_id steady_path(std::uint16_t q) const noexcept;

    /// Reaps TX completions and moves any switch in progress along; returns buffers
    /// reaped. Call it when there is no traffic to send, so a switch never waits on TX.
    std::uint32_t poll(std::uint16_t q) noexcept;

    /// NAPI poll (Linux vmxnet3_poll's contract): receive up to out.size() (the budget);
    /// when less than the budget arrived the queue is idle, so the active plugin's
    /// interrupt is re-armed, and the ring is checked once more to close the window
    /// between the last poll and the arm. During a switch the interrupt stays off so
    /// the queue keeps being polled until the switch is through.
    [[nodiscard]] napi_result napi_poll(std::uint16_t q, std::span<buffer_type> out) noexcept;

    /// Buffers for the OS to build TX packets in, from queue q's pool.
    [[nodiscard]] std::uint32_t alloc(std::uint16_t q, std::span<buffer_type> out) noexcept;

    /// The OS is done with these buffers (consumed RX, or TX it decided not to send).
    void free(std::uint16_t q, std::span<const buffer_type> bufs) noexcept;

    // ---- switching: the control thread ---------------------------------------------

    /// Prepares path p and starts draining the current one. Returns ok when the switch
    /// is under way (it completes in service()), or why it was refused or failed; on
    /// failure the current path keeps running untouched.
    [[nodiscard]] status request_switch(path_id p, switch_reason reason);

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
    [[nodiscard]] status wait_switch();

    /// Registers the path to fall back to when the active plugin reports its device
    /// failed or gone (plugins that model reports_health); no_path clears it.
    void set_fallback(path_id p) noexcept { fallback_path_ = valid_path(p) ? p : no_path; }

    /// Control-thread housekeeping: completes a switch whose queues have all flipped
    /// (release), and switches to the fallback path when the active device failed.
    /// Returns true while a switch is in progress.
    bool service();

    /// Notifies the shell that the active device disappeared (hot-unplug event). The
    /// shell switches to the fallback path; TX the device had taken comes back unsent
    /// and is resent there.
    [[nodiscard]] status surprise_removal();

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
    [[nodiscard]] status start(typename plugin_t<I>::device_type& dev, control_link link);
    template <std::size_t I>
    [[nodiscard]] status request_switch(typename plugin_t<I>::device_type& dev,
                                        control_link link, switch_reason reason);
    template <std::size_t I>
    [[nodiscard]] status switch_to(typename plugin_t<I>::device_type& dev, control_link link,
                                   switch_reason reason);
    template <std::size_t I>
    void set_fallback(typename plugin_t<I>::device_type& dev, control_link link) noexcept;
    /// The instance of type index I that a switch went to last (or, before any did, the
    /// one added last). A path of that type must exist.
    template <std::size_t I>
    [[nodiscard]] plugin_t<I>& plugin() noexcept;

    // ---- control path --------------------------------------------------------------

    /// Validates a request, sends it to the active path's authority and records it if
    /// accepted. A refusal (errc::refused plus the authority's reason) changes nothing.
    [[nodiscard]] status control(const control_request& r);
    [[nodiscard]] status set_mac(const mac_addr& m) { return control(control_request::make_set_mac(m)); }
    [[nodiscard]] status add_vlan(std::uint16_t vid) { return control(control_request::make_vlan(true, vid)); }
    [[nodiscard]] status del_vlan(std::uint16_t vid) { return control(control_request::make_vlan(false, vid)); }
    [[nodiscard]] status set_mtu(std::uint32_t mtu) { return control(control_request::make_mtu(mtu)); }
    [[nodiscard]] status set_rx_mode(std::uint32_t mode) { return control(control_request::make_rx_mode(mode)); }
    [[nodiscard]] status set_mcast_list(std::span<const mac_addr> list);
    [[nodiscard]] status set_rss(const rss_config& rss);
    /// The control state the OS asked for and the authority accepted.
    [[nodiscard]] const npa::control_state& desired_control() const noexcept { return control_; }

    // ---- capabilities ----------------------------------------------------------------

    /// Offloads in effect: requested AND shell AND the active plugin and its device. The
    /// active plugin was attached with exactly these (or, after request_offloads() took
    /// some away, with more: see there).
    [[nodiscard]] std::uint32_t offloads() const noexcept { return offloads_; }
    /// What the shell itself supports: what its Env's OS-facing side can carry
    /// (Env::offloads), without RSS when there is a single queue to spread flows over.
    [[nodiscard]] std::uint32_t shell_offloads() const noexcept;
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
    [[nodiscard]] queue_stats path_stats(path_id p, std::uint16_t q) const noexcept;
    /// Counters of queue q over every path, removed ones included.
    [[nodiscard]] queue_stats queue_totals(std::uint16_t q) const noexcept;
    [[nodiscard]] const shell_queue_counters& counters(std::uint16_t q) const noexcept {
        return queues_[q].c;
    }
    [[nodiscard]] const switch_history& history() const noexcept { return history_; }
    [[nodiscard]] std::uint16_t queue_count() const noexcept { return nq_; }

    /// Adds up where every buffer is. ok() is exact at any moment on a single thread,
    /// and with the data path quiet otherwise.
    [[nodiscard]] audit_report audit() const noexcept;

private:
    enum : std::uint8_t { phase_idle, phase_draining, phase_released };
    enum : std::uint8_t { stage_none, stage_flipping, stage_acking };

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
        /// rx_burst has been called on this queue: its RX has a reader, waited for past
        /// the drain timeout (policy.rx_reader_wait_ns; switch_queue.hpp).
        bool rx_reader = false;
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
        mutable std::array<detail::stat_tracker, max_paths> stats{};
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
        // relaxed, load and store: one writer at a time; publishes nothing
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
    path_id path_for(typename plugin_t<I>::device_type& dev, control_link link);

    std::uint16_t plugin_tx(path_id p, queue_state& qs, std::uint16_t q,
                            std::span<buffer_type> bufs) noexcept;
    std::uint16_t plugin_rx(path_id p, queue_state& qs, std::uint16_t q,
                            std::span<buffer_type> out) noexcept;
    /// Old-path RX a drain reads at most: the optional plugin member rx_drain_bound, or
    /// else the RX ring size the path was attached with (shell_config::queues).
    [[nodiscard]] std::uint32_t rx_drain_bound(path_id p, std::uint16_t q) const noexcept;
    [[nodiscard]] errc health(path_id p) const noexcept;
    [[nodiscard]] capabilities caps_of(path_id p) const noexcept {
        return visit(p, [](auto& pl) -> capabilities { return pl.capabilities(); });
    }

    // ---- the plugin-facing API -------------------------------------------------------

    std::uint32_t api_alloc_rx(path_id p, std::uint16_t q, std::span<buffer_type> out) noexcept;
    void api_release(path_id p, std::uint16_t q, std::span<const buffer_type> in) noexcept;
    void api_unsent(path_id p, std::uint16_t q, std::span<const buffer_type> in) noexcept;
    void log(log_level level, const char* msg) noexcept {
        if constexpr (requires(Env& e) { e.log(level, msg); }) {
            env_.log(level, msg);
        }
    }

    // ---- per-queue half of the switch --------------------------------------------------

    /// `reads_rx`: the caller is rx_burst, about to read the old path's RX.
    NPA_ALWAYS_INLINE void sync(queue_state& qs, std::uint16_t q, bool reads_rx = false) noexcept;

    void sync_slow(queue_state& qs, std::uint16_t q, std::uint32_t e, bool reads_rx) noexcept;

    // The old path delivered `n` in a short burst: quiet for policy.rx_quiet_ns yet?
    bool old_rx_quiet(queue_state& qs, std::uint16_t n) noexcept;

    [[nodiscard]] bool switching_now(const queue_state& qs) const noexcept;

    // TX when the fast path is off: no path, a switch in progress, or older packets
    // (requeued or backlogged) that must go first.
    std::uint16_t tx_slow(queue_state& qs, std::uint16_t q, std::span<buffer_type> bufs) noexcept;

    /// Sends requeued then backlogged buffers to the active path. Returns true (and turns
    /// the fast path back on) when both are empty.
    bool flush(queue_state& qs, std::uint16_t q) noexcept;

    template <class Ring>
    bool drain_ring(queue_state& qs, std::uint16_t q, Ring& ring) noexcept;

    template <class Ring>
    void drop_ring(queue_state& qs, Ring& ring) noexcept;

    // ---- control-thread half of the switch -----------------------------------------

    void advance_switch();

    /// Replays the whole control state onto a new path's authority, all or nothing.
    /// Control path: the batch is built on the heap (it can hold 4,000 VLAN filters).
    [[nodiscard]] status replay_control(const control_link& link);

    void detach_path(path_id p) noexcept;

    /// RX drops the devices counted on queue q, over every path (the queue's thread).
    [[nodiscard]] std::uint64_t rx_drops(std::uint16_t q) const noexcept;

    void recompute_caps(std::uint64_t seq) noexcept;
    void push_cap_event(const capability_event& ev) noexcept;

    void wake_all() noexcept;

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

    // Published to the queues: a new epoch means "look at phase_/to_". The control thread
    // writes all three; phase_ and to_ relaxed, then epoch_ with a release (fetch_add),
    // which sync() and switching_now() acquire.
    alignas(cache_line_size) std::atomic<std::uint32_t> epoch_{0};
    std::atomic<std::uint8_t> phase_{phase_idle};
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

// The members, one header per job (docs/design.md, "The shell").
#include <npa/shell/audit.hpp>
#include <npa/shell/capability_events.hpp>
#include <npa/shell/control_forwarding.hpp>
#include <npa/shell/data_path.hpp>
#include <npa/shell/stats.hpp>
#include <npa/shell/switch_engine.hpp>
#include <npa/shell/switch_queue.hpp>
