// Fixture for headers_relaxed_comments_fixture: every relaxed access here has its comment
// where scan_relaxed_comments.cmake looks (the line itself, or the line just above).
#pragma once

#include <atomic>
#include <cstdint>

namespace fixture {

struct counters {
    std::atomic<std::uint64_t> packets{0};
    std::atomic<bool> stop{false};
    std::uint64_t seen[2] = {};
};

inline void count(counters& c) noexcept {
    // relaxed: a statistic, nothing is published through it
    c.packets.store(c.packets.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

inline bool stopping(const counters& c) noexcept {
    return c.stop.load(std::memory_order_relaxed); // relaxed: a lone flag; join() orders
}

inline std::uint64_t packets(const counters& c) noexcept {
    /* relaxed: a block comment on the line above counts too */
    return c.packets.load(std::memory_order_relaxed);
}

} // namespace fixture
