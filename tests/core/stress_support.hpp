// Waiting in the two-thread stress tests. The test machines may have two cores shared
// with other jobs, so a side that finds the ring full or empty spins briefly and then
// yields its core instead of burning it (a spinning thread can starve the very thread
// it waits for when both share one core).
#pragma once

#include <cstdint>
#include <thread>

namespace npa_test {

class backoff {
public:
    /// Spins this many times before yielding: long enough to ride out a burst on the
    /// other core, short enough not to steal a shared core for long.
    static constexpr std::uint32_t spins_before_yield = 64;

    void wait() noexcept {
        if (n_ < spins_before_yield) {
            ++n_;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            std::this_thread::yield();
        }
    }
    void reset() noexcept { n_ = 0; }

private:
    std::uint32_t n_ = 0;
};

} // namespace npa_test
