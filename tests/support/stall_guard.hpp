// tests/support/stall_guard.hpp: when a loop that waits on another thread gives up,
// counted in that thread's steps instead of seconds.
#pragma once

#include <cstdint>

namespace npa_test {

/// A test loop that drives traffic against a device stepping on a thread of its own gives up
/// only when both sides had their chances and nothing moved: `checks` times in a row, after
/// every `passes` idle passes of the loop, the device had stepped since the last check and
/// the loop still made no progress. A thread that the scheduler left waiting (a loaded
/// machine, a sanitizer) does not count against the test, so no wall-clock bound is needed;
/// a stall that is real is reported after about 100,000 idle passes.
class stall_guard {
public:
    explicit stall_guard(std::uint32_t passes = 1024, std::uint32_t checks = 100) noexcept
        : passes_(passes), checks_(checks) {}

    /// The loop moved something (sent, received, reaped).
    void progress() noexcept {
        idle_ = 0;
        dead_ = 0;
    }
    /// One pass without progress; `device_steps` is how many steps the device has taken in
    /// all. True when the loop should give up.
    bool idle(std::uint64_t device_steps) noexcept {
        if (++idle_ % passes_ != 0) {
            return false;
        }
        if (device_steps == steps_) {
            return false; // the device did not run since the last check: not its failure
        }
        steps_ = device_steps;
        return ++dead_ >= checks_;
    }

private:
    std::uint32_t passes_, checks_;
    std::uint64_t idle_ = 0, steps_ = 0;
    std::uint32_t dead_ = 0;
};

} // namespace npa_test
