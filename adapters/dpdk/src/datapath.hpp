// datapath.hpp: the one place net_npa's data path is decided.
//
// Until npa::shell (include/npa/shell.hpp) drives the plugins, this thin stand-in does
// the switch the way DESIGN.md section 4 describes it for ethdev sub-ports, whose PMDs own
// their rings (so there is nothing for a shell to hold back: what a sub-port accepted it
// sends, and TX after the flip goes to the new path):
//   prepare  every sub-port is attached and started at dev_start (warm standby);
//   drain    a queue that sees a new target stops feeding the old path and keeps reading
//            the old path's RX until it is empty, so nothing it already received is lost
//            or overtaken by packets from the new path;
//   flip     per queue, one relaxed load of the target per burst, on the queue's thread;
//   release  the switch completes when every queue has drained; its duration is recorded.
// Replacing this file's class with npa::shell<env, ethdev_plugin...> is the one change
// the PMD needs: it only calls tx_burst / rx_burst / request_switch / the accessors.
#pragma once

#include "devargs.hpp"

#include <npa/dpdk/ethdev_plugin.hpp>

#include <rte_cycles.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <span>

namespace npa::dpdk {

enum class switch_reason : std::uint8_t { none, request, removal, link_down, preferred_back };

[[nodiscard]] constexpr const char* to_string(switch_reason r) noexcept {
    switch (r) {
    case switch_reason::none: return "none";
    case switch_reason::request: return "request";
    case switch_reason::removal: return "removal";
    case switch_reason::link_down: return "link-down";
    case switch_reason::preferred_back: return "preferred-back";
    }
    return "unknown";
}

/// Switch telemetry (DESIGN.md section 3: count, duration, reason, held, lost).
struct switch_history {
    std::uint64_t switches = 0;
    std::uint64_t last_ns = 0;
    std::uint64_t max_ns = 0;
    std::uint64_t held = 0;  ///< packets held back during switches (none for ethdev paths)
    std::uint64_t lost = 0;  ///< packets lost by switches (left on a removed device)
    switch_reason last_reason = switch_reason::none;
    std::uint32_t from = 0;
    std::uint32_t to = 0;
};

class ethdev_paths {
public:
    using plugin_type = ethdev_plugin<ethdev_shell_api>;
    static constexpr std::uint32_t no_path = ~0u;

    [[nodiscard]] static std::uint64_t now_ns() noexcept {
        return rte_get_timer_cycles() * 1'000'000'000ull / rte_get_timer_hz();
    }

    // ---- data path: called by the thread that owns queue q ------------------------
    std::uint16_t tx_burst(std::uint16_t q, std::span<mbuf_ref> bufs) noexcept {
        queue_state& s = sync(q);
        return plugins_[s.active].tx_burst(q, bufs);
    }

    std::uint16_t rx_burst(std::uint16_t q, std::span<mbuf_ref> out) noexcept {
        queue_state& s = sync(q);
        if (NPA_UNLIKELY(s.draining != no_path)) {
            const std::uint16_t k = plugins_[s.draining].rx_burst(q, out);
            if (k != 0) return k;
            s.draining = no_path;
            queue_done();
        }
        return plugins_[s.active].rx_burst(q, out);
    }

    // ---- control path -------------------------------------------------------------
    plugin_type& plugin(std::size_t i) noexcept { return plugins_[i]; }
    const plugin_type& plugin(std::size_t i) const noexcept { return plugins_[i]; }
    [[nodiscard]] std::uint32_t target() const noexcept {
        return target_.load(std::memory_order_acquire);
    }
    [[nodiscard]] bool switching() const noexcept {
        return pending_.load(std::memory_order_acquire) != 0;
    }

    /// Starts the data path on `path` with `queues` queues (the device is stopped: no
    /// data-path thread runs, so the control thread sets every queue directly).
    void reset(std::uint32_t path, std::uint16_t queues) noexcept {
        queues_ = queues;
        for (auto& s : q_) {
            s.active = path;
            s.draining = no_path;
        }
        pending_.store(0, std::memory_order_relaxed);
        target_.store(path, std::memory_order_release);
    }

    /// Asks every queue to move to `path`. `running`: data-path threads are polling (else
    /// the flip is done here at once). Returns busy while a previous switch drains.
    status request_switch(std::uint32_t path, switch_reason why, bool running) noexcept {
        if (pending_.load(std::memory_order_acquire) != 0) {
            return {errc::busy, "a switch is still draining"};
        }
        const std::uint32_t from = target_.load(std::memory_order_relaxed);
        if (path == from) return status::success();
        hist_.last_reason = why;
        hist_.from = from;
        hist_.to = path;
        started_ns_ = now_ns();
        if (!running) {
            reset(path, queues_);
            record(0);
            return status::success();
        }
        pending_.store(queues_, std::memory_order_relaxed);
        target_.store(path, std::memory_order_release);
        return status::success();
    }

    /// The old path's device is gone: its queues must not be drained.
    void forget_drain(std::uint32_t path) noexcept { dead_path_.store(path, std::memory_order_release); }

    [[nodiscard]] const switch_history& history() const noexcept { return hist_; }
    [[nodiscard]] std::uint16_t queues() const noexcept { return queues_; }

private:
    struct alignas(cache_line_size) queue_state {
        std::uint32_t active = 0;
        std::uint32_t draining = no_path;
    };

    queue_state& sync(std::uint16_t q) noexcept {
        queue_state& s = q_[q];
        const std::uint32_t t = target_.load(std::memory_order_relaxed);
        if (NPA_UNLIKELY(t != s.active)) {
            std::atomic_thread_fence(std::memory_order_acquire);
            const bool dead = dead_path_.load(std::memory_order_acquire) == s.active;
            s.draining = dead ? no_path : s.active;
            s.active = t;
            if (dead) queue_done();
        }
        return s;
    }

    void queue_done() noexcept {
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            record(now_ns() - started_ns_);
        }
    }

    void record(std::uint64_t ns) noexcept {
        ++hist_.switches;
        hist_.last_ns = ns;
        if (ns > hist_.max_ns) hist_.max_ns = ns;
    }

    std::array<plugin_type, max_sub_devices> plugins_{};
    std::array<queue_state, ethdev_max_queues> q_{};
    std::atomic<std::uint32_t> target_{0};
    std::atomic<std::uint32_t> pending_{0};
    std::atomic<std::uint32_t> dead_path_{no_path};
    std::uint16_t queues_ = 1;
    std::uint64_t started_ns_ = 0;
    switch_history hist_{};
};

} // namespace npa::dpdk
