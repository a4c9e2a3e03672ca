// npa/sim/health_watch.hpp: reads a plugin's health() from a thread of its own, as the
// shell's control thread does (shell::service()) while the data path runs. Threaded plugin
// tests use it to prove health() is safe to ask concurrently (run them under TSan) and
// that a clean device never looks unhealthy.
#pragma once

#include <npa/status.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

namespace npa::sim {

template <class Plugin>
class health_watch {
public:
    explicit health_watch(const Plugin& p) : thread_([this, &p] { run(p); }) {}
    health_watch(const health_watch&) = delete;
    health_watch& operator=(const health_watch&) = delete;
    ~health_watch() { stop(); }

    /// Stops watching (idempotent); the counts are final afterwards.
    void stop() {
        running_.store(false, std::memory_order_relaxed);
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    /// Returns once health() has been read at least once, so that the data path a test runs
    /// next overlaps a watch that is already looking (a thread just started may not have
    /// run at all by the time a short run ends on a loaded machine).
    void wait_first_look() const noexcept {
        while (looks_.load() == 0) {
            std::this_thread::yield();
        }
    }
    /// How many times health() was read, and how many of those did not say ok.
    [[nodiscard]] std::uint64_t looks() const noexcept { return looks_.load(); }
    [[nodiscard]] std::uint64_t unhealthy() const noexcept { return unhealthy_.load(); }

private:
    void run(const Plugin& p) {
        while (running_.load(std::memory_order_relaxed)) {
            if (p.health() != errc::ok) {
                unhealthy_.fetch_add(1, std::memory_order_relaxed);
            }
            looks_.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
        }
    }

    std::atomic<bool> running_{true};
    std::atomic<std::uint64_t> looks_{0}, unhealthy_{0};
    std::thread thread_;  // last: started once the counters exist
};

} // namespace npa::sim
