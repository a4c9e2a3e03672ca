// lanes.hpp: net_npa's per-burst data path, one cache line per queue and direction.
//
// In the steady state (no switch seen or pending for the queue, nothing waiting in the
// shell to go first) a burst is one load, one branch and a direct call into the
// sub-port's own burst function: the shell is not involved at all. The function and
// queue pointer are published by the queue's own thread once the shell says the queue
// is steady on a path (shell::steady_path), and cleared by the control thread after it
// starts a switch or marks a path gone; a burst that finds them cleared goes through
// the shell, which runs the switch (drain, flip) on that thread.
//
// Publication protocol (why a stale pointer cannot stay published): the control thread
// first moves the shell's epoch (request_switch) or the plugin's health (mark_removed),
// then bumps `gen` and clears every lane. The queue's thread reads `gen`, checks the
// shell and the plugin, publishes, and reads `gen` again; if it moved, it clears its own
// lane. All four accesses are sequentially consistent, so either the re-read sees the
// bump or the control thread's clear comes after the publication.
//
// Counting: one counter per lane, bumped for every packet the lane delivered or took,
// directly or through the shell: the port's packet counters. Which path carried the
// direct bursts is booked when a lane is published and unpublished (per path, for
// xstats); the shell counts the bursts that went through it.
#pragma once

#include "datapath.hpp"

#include <ethdev_driver.h>
#include <rte_ethdev.h>

#include <array>
#include <atomic>
#include <cstdint>

namespace npa::dpdk {

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// One direction of one queue. The first three fields are what a burst reads.
template <class Fn>
struct alignas(RTE_CACHE_LINE_SIZE) lane {
    std::atomic<Fn> direct{nullptr};  ///< the sub-port's burst function, or null
    void* sub_queue = nullptr;        ///< its queue (valid while direct is set)
    std::atomic<std::uint64_t> packets{0};
    void* owner = nullptr;            ///< the npa_port
    std::uint16_t q = 0;
    std::uint16_t port_id = 0;        ///< net_npa's own port id (mbuf->port)
    // Booking of direct bursts (queue's thread writes, readers retry on seq).
    std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint8_t> path{shell_paths::no_path};
    std::atomic<std::uint64_t> base{0};
};
static_assert(sizeof(lane<eth_rx_burst_t>) == RTE_CACHE_LINE_SIZE);

/// Per lane, per path: packets moved by direct bursts (cold: written at unpublish).
using lane_books = std::array<std::atomic<std::uint64_t>, max_sub_devices>;

/// The lanes of one port, both directions.
class port_lanes {
public:
    using rx_lane = lane<eth_rx_burst_t>;
    using tx_lane = lane<eth_tx_burst_t>;

    void setup(void* owner, std::uint16_t port_id) noexcept {
        for (std::uint16_t q = 0; q < ethdev_max_queues; ++q) {
            rx_[q].owner = tx_[q].owner = owner;
            rx_[q].q = tx_[q].q = q;
            rx_[q].port_id = tx_[q].port_id = port_id;
        }
    }
    rx_lane& rx(std::uint16_t q) noexcept { return rx_[q]; }
    tx_lane& tx(std::uint16_t q) noexcept { return tx_[q]; }

    /// Control thread, after the shell's epoch or a plugin's health moved.
    void clear() noexcept {
        gen_.fetch_add(1, std::memory_order_seq_cst);
        for (std::uint16_t q = 0; q < ethdev_max_queues; ++q) {
            rx_[q].direct.store(nullptr, std::memory_order_seq_cst);
            tx_[q].direct.store(nullptr, std::memory_order_seq_cst);
        }
    }

    /// Queue's thread, on a burst that found its lane cleared: books what the lane moved
    /// directly since it was published.
    template <class L>
    void unpublish(L& l, lane_books& books) noexcept {
        const std::uint8_t p = l.path.load(std::memory_order_relaxed);
        if (p == shell_paths::no_path) return;
        const std::uint32_t s = l.seq.load(std::memory_order_relaxed);
        l.seq.store(s + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        bump(books[p], l.packets.load(std::memory_order_relaxed) -
                           l.base.load(std::memory_order_relaxed));
        l.path.store(shell_paths::no_path, std::memory_order_relaxed);
        l.seq.store(s + 2, std::memory_order_release);
    }

    /// Queue's thread, after a burst through the shell: publishes the sub-port's burst
    /// function when the queue is steady on a live path.
    template <class L, class Pick>
    void publish(L& l, shell_paths& paths, Pick pick) noexcept {
        const std::uint32_t g = gen_.load(std::memory_order_seq_cst);
        const shell_paths::steady_port s = paths.steady(l.q);
        if (s.port >= RTE_MAX_ETHPORTS) return;
        const struct rte_eth_fp_ops& ops = rte_eth_fp_ops[s.port];
        const auto [fn, queue] = pick(ops, l.q);
        if (fn == nullptr || queue == nullptr) return;
        const std::uint32_t q = l.seq.load(std::memory_order_relaxed);
        l.seq.store(q + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        l.base.store(l.packets.load(std::memory_order_relaxed), std::memory_order_relaxed);
        l.path.store(static_cast<std::uint8_t>(s.path), std::memory_order_relaxed);
        l.seq.store(q + 2, std::memory_order_release);
        l.sub_queue = queue;
        l.direct.store(fn, std::memory_order_seq_cst);
        if (gen_.load(std::memory_order_seq_cst) != g) {
            l.direct.store(nullptr, std::memory_order_seq_cst);
        }
    }

    /// Any thread: packets lane l moved directly on path p (monotonic).
    template <class L>
    static std::uint64_t direct_on(const L& l, const lane_books& books, std::uint32_t p) noexcept {
        for (;;) {
            const std::uint32_t s = l.seq.load(std::memory_order_acquire);
            std::uint64_t v = books[p].load(std::memory_order_relaxed);
            if (l.path.load(std::memory_order_relaxed) == p) {
                v += l.packets.load(std::memory_order_relaxed) -
                     l.base.load(std::memory_order_relaxed);
            }
            std::atomic_thread_fence(std::memory_order_acquire);
            if ((s & 1u) == 0 && l.seq.load(std::memory_order_relaxed) == s) return v;
        }
    }

    lane_books& rx_books(std::uint16_t q) noexcept { return rx_books_[q]; }
    lane_books& tx_books(std::uint16_t q) noexcept { return tx_books_[q]; }

private:
    std::array<rx_lane, ethdev_max_queues> rx_{};
    std::array<tx_lane, ethdev_max_queues> tx_{};
    alignas(RTE_CACHE_LINE_SIZE) std::atomic<std::uint32_t> gen_{0};
    std::array<lane_books, ethdev_max_queues> rx_books_{};
    std::array<lane_books, ethdev_max_queues> tx_books_{};
};

} // namespace npa::dpdk
