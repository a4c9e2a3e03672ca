// Fixture for headers_relaxed_comments_fixture: the load in packets() has no comment on
// its line or the line above, and the scan must name that line (line 20) and no other.
#pragma once

#include <atomic>
#include <cstdint>

namespace fixture {

struct queue_counters {
    std::atomic<std::uint64_t> packets{0};
};

inline void count(queue_counters& c) noexcept {
    // relaxed: a statistic with one writer
    c.packets.store(c.packets.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

inline std::uint64_t packets(const queue_counters& c) noexcept {
    return c.packets.load(std::memory_order_relaxed);
}

} // namespace fixture
