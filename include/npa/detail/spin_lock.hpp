// npa/detail/spin_lock.hpp: the two locking policies of shared structures.
#pragma once

#include <atomic>

namespace npa::detail {

/// No locking: the structure is used by one thread at a time (the default; a queue pair
/// owns its pool).
struct no_lock {
    void lock() noexcept {}
    void unlock() noexcept {}
};

/// A test-and-test-and-set spin lock for short critical sections taken once per burst.
class spin_lock {
public:
    void lock() noexcept {
        for (;;) {
            // acquire: pairs with unlock()'s release (the last holder's critical section)
            if (!flag_.exchange(true, std::memory_order_acquire)) {
                return;
            }
            // relaxed: only waits for the flag to look free; the exchange above (acquire)
            // is what takes the lock and orders the critical section.
            while (flag_.load(std::memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#elif defined(__aarch64__)
                __asm__ __volatile__("yield");
#endif
            }
        }
    }
    /// Release: pairs with the next lock()'s acquiring exchange.
    void unlock() noexcept { flag_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> flag_{false};
};

template <class Lock>
class lock_guard {
public:
    explicit lock_guard(Lock& l) noexcept : l_(l) { l_.lock(); }
    ~lock_guard() { l_.unlock(); }
    lock_guard(const lock_guard&) = delete;
    lock_guard& operator=(const lock_guard&) = delete;

private:
    Lock& l_;
};

} // namespace npa::detail
