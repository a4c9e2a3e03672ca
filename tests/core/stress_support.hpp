// Waiting in the two-thread stress tests. The test machines may have two cores shared
// with other jobs, so a side that finds the ring full or empty spins briefly and then
// yields its core instead of burning it (a spinning thread can starve the very thread
// it waits for when both share one core).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
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

/// How many of a stress run's `items` the producer sends: all of them, unless the machine
/// is too loaded to move them within the time budget (NPA_STRESS_SECONDS, default 60 s,
/// well inside the tests' ctest timeout): then it stops once the budget is spent and at
/// least a tenth of them went through, and tells the consumer how many to expect. The
/// tests assert order and count of what was moved and report how many that was; how fast
/// the machine moved them is not what they test. (10 million items take seconds on a
/// quiet two-core machine and about 3 minutes with both cores busy elsewhere.)
class stress_budget {
public:
    explicit stress_budget(std::uint64_t items) noexcept
        : items_(items), floor_(items / 10 + 1), limit_(items),
          end_(std::chrono::steady_clock::now() + std::chrono::seconds(seconds())) {}
    stress_budget(const stress_budget&) = delete;
    stress_budget& operator=(const stress_budget&) = delete;

    /// Producer: may it go on, having sent `sent`? (Reads the clock every 256 calls.)
    bool more(std::uint64_t sent) noexcept {
        if (sent >= items_) {
            return false;
        }
        if (sent < floor_) {
            return true;
        }
        if (!stopped_ && ++calls_ % 256 == 0) {
            stopped_ = std::chrono::steady_clock::now() >= end_;
        }
        return !stopped_;
    }
    /// Producer: it sent `sent` in all and stops.
    void finish(std::uint64_t sent) noexcept { limit_.store(sent, std::memory_order_release); }
    /// Consumer: how many to expect (all the items, until the producer said otherwise).
    [[nodiscard]] std::uint64_t limit() const noexcept {
        return limit_.load(std::memory_order_acquire);
    }
    [[nodiscard]] std::uint64_t items() const noexcept { return items_; }
    [[nodiscard]] std::uint64_t floor() const noexcept { return floor_; }

private:
    static long seconds() noexcept {
        const char* env = std::getenv("NPA_STRESS_SECONDS");
        const long v = env != nullptr ? std::strtol(env, nullptr, 10) : 0;
        return v > 0 ? v : 60;
    }
    std::uint64_t items_, floor_;
    std::atomic<std::uint64_t> limit_;
    std::chrono::steady_clock::time_point end_;
    std::uint64_t calls_ = 0; // producer only
    bool stopped_ = false;    // producer only
};

} // namespace npa_test
