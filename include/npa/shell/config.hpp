// npa/shell/config.hpp: what a shell is built from and reports in: the environment
// concept, the configuration, per-queue counters, the audit report, path ids.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/concepts/buffer_pool.hpp>
#include <npa/control.hpp>
#include <npa/switch.hpp>

#include <concepts>
#include <cstdint>

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

} // namespace npa
