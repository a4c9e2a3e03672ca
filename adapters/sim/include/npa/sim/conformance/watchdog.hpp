// npa/sim/conformance/watchdog.hpp: the watchdog every conformance case runs under (part
// of npa/sim/conformance.hpp). Two bounds:
//
//   - rounds: every loop the kit drives counts device steps, and gives up when a queue
//     makes no progress for conformance::stuck_rounds of them or the case as a whole
//     passes case_round_budget (bench.hpp). The case fails with a verdict naming the case,
//     the ring and the last slot, and the kit goes on to the next case.
//   - wall time: a plugin call that never returns (a reap or RX loop spinning on a
//     generation bit the device will never flip, in the single-threaded kit) cannot be
//     interrupted from the thread it runs on. So run_watched() runs the case on a worker
//     thread and waits for it until a deadline; past it, it prints the case, the call
//     that has not returned, its ring and the last slot, and ends the process with
//     EXIT_FAILURE. The stuck thread still holds the plugin and its buffers, so nothing
//     after it could be trusted: ending the process is the honest outcome, and it is
//     bounded, where a hang is not.
//
// The deadline is generous (case_deadline_default); NPA_CONFORMANCE_DEADLINE_MS overrides
// it, for a slow machine or a run under valgrind.
#pragma once

#include <npa/sim/conformance/report.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>

namespace npa::sim {

/// Wall time a case may take before the watchdog ends the process.
inline constexpr std::chrono::milliseconds case_deadline_default{60'000};
/// Device steps (kit rounds) a case may take in all: with the shipped plugins no case
/// takes more than about a thousand (surprise removal, with its stalls), so only a plugin
/// that makes progress too slowly to ever finish reaches it.
inline constexpr std::uint64_t case_round_budget = 20'000;

/// Where a case is: written by the bench before each plugin call the kit makes, read by
/// the watchdog from its own thread when the call has not returned.
struct case_watch {
    std::atomic<const char*> case_name{nullptr};
    std::atomic<const char*> call{nullptr};        ///< the plugin call in progress, if any
    std::atomic<bool> rx{false};                   ///< that call's ring: RX, else TX
    std::atomic<std::uint16_t> queue{0};
    std::atomic<std::uint64_t> done{0};      ///< buffers that ring has completed so far
    std::atomic<std::uint32_t> ring_size{0};
    std::atomic<std::uint64_t> rounds{0};    ///< device steps the kit has taken in this case

    /// The case's name, or a stand-in for a check called directly (not through run_watched).
    [[nodiscard]] const char* name() const noexcept {
        const char* n = case_name.load(std::memory_order_relaxed);
        return n != nullptr ? n : "this case";
    }
    /// The last slot the ring completed, counting one descriptor per buffer.
    [[nodiscard]] std::uint64_t last_slot() const noexcept {
        const std::uint64_t d = done.load(std::memory_order_relaxed);
        const std::uint32_t n = ring_size.load(std::memory_order_relaxed);
        return d == 0 || n == 0 ? 0 : (d - 1) % n;
    }
    /// Records where the case is: `call` is about to be made on ring (rx, q), which has
    /// `ring` slots and has completed `completed` buffers so far.
    void at(const char* c, bool is_rx, std::uint16_t q, std::uint32_t ring,
            std::uint64_t completed) noexcept {
        call.store(c, std::memory_order_relaxed);
        rx.store(is_rx, std::memory_order_relaxed);
        queue.store(q, std::memory_order_relaxed);
        ring_size.store(ring, std::memory_order_relaxed);
        done.store(completed, std::memory_order_relaxed);
    }
    /// Fails `v` with the case, the call, its ring and the last slot, and `what` happened:
    /// "watchdog: <case>: tx_reap on txq 0 <what>; last slot completed 16 (145 buffers
    /// completed on that ring)".
    void fail(verdict& v, const char* what) const {
        const char* c = call.load(std::memory_order_relaxed);
        const char r = rx.load(std::memory_order_relaxed) ? 'r' : 't';
        const unsigned q = queue.load(std::memory_order_relaxed);
        const std::uint64_t d = done.load(std::memory_order_relaxed);
        if (c == nullptr) {
            v.fail("watchdog: %s: %s before the kit's first plugin call (attach, or the "
                   "device's set-up)", name(), what);
            return;
        }
        if (d == 0) {
            v.fail("watchdog: %s: %s on %cxq %u %s; no slot of that ring completed yet", name(),
                   c, r, q, what);
            return;
        }
        v.fail("watchdog: %s: %s on %cxq %u %s; last slot completed %llu (%llu buffers "
               "completed on that ring)",
               name(), c, r, q, what, static_cast<unsigned long long>(last_slot()),
               static_cast<unsigned long long>(d));
    }
};

/// The watch of the case running on this thread (set by run_watched), or nullptr.
inline thread_local case_watch* current_case_watch = nullptr;

/// The deadline: NPA_CONFORMANCE_DEADLINE_MS if set to a positive number, else the default.
[[nodiscard]] inline std::chrono::milliseconds case_deadline() {
    const char* env = std::getenv("NPA_CONFORMANCE_DEADLINE_MS");
    if (env != nullptr) {
        char* end = nullptr;
        const long long ms = std::strtoll(env, &end, 10);
        if (end != env && *end == '\0' && ms > 0) {
            return std::chrono::milliseconds{ms};
        }
        std::fprintf(stderr, "conformance: NPA_CONFORMANCE_DEADLINE_MS='%s' is not a positive "
                             "number of milliseconds; using %lld\n",
                     env, static_cast<long long>(case_deadline_default.count()));
    }
    return case_deadline_default;
}

/// Runs one case, `run()` returning its verdict, under the watchdog (see the top of this
/// file). Returns the verdict; if the case has not returned by `deadline`, prints what it
/// was doing and ends the process.
template <class Run>
verdict run_watched(const char* name, Run&& run, std::chrono::milliseconds deadline = case_deadline()) {
    case_watch w;
    w.case_name.store(name, std::memory_order_relaxed);
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    verdict v;
    std::thread worker([&] {
        current_case_watch = &w;
        verdict r = run();
        current_case_watch = nullptr;
        const std::lock_guard g(mu);
        v = std::move(r);
        finished = true;
        cv.notify_one();
    });
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, deadline, [&] { return finished; })) {
        verdict late;
        w.fail(late, "has not returned");
        std::fprintf(stderr,
                     "conformance FAILED: %s\n  the case did not finish within %lld ms: a "
                     "plugin call that loops inside itself (a reap or RX loop waiting for a "
                     "generation bit the device does not flip) cannot be stopped, so the run "
                     "ends here\n",
                     late.message.c_str(), static_cast<long long>(deadline.count()));
        std::fflush(stderr);
        std::_Exit(EXIT_FAILURE);
    }
    lk.unlock();
    worker.join();
    return v;
}

} // namespace npa::sim
