// npa/sim/device/inbox.hpp: frames from the wire waiting for a device model's next step.
//
// The wire (a cable, a switch, a PF's embedded switch) calls push() from any thread; the
// device takes up to a step's worth into its RX batch under its own lock. A full inbox
// drops and counts (rx_overrun); so does a device that is gone (rx_removed).
#pragma once

#include <npa/sim/wire.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace npa::sim {

class frame_inbox {
public:
    explicit frame_inbox(std::size_t limit = 8192) noexcept : limit_(limit) {}
    void set_limit(std::size_t limit) noexcept { limit_ = limit; }

    /// A frame from the wire (any thread). `gone()`, asked under the inbox lock: nobody is
    /// there any more; the frame is dropped and counted as removed.
    void push(const frame& f) noexcept {
        push(f, [] { return false; });
    }
    template <class Gone>
    void push(const frame& f, Gone gone) noexcept {
        std::lock_guard g(mu_);
        if (gone()) {
            ++removed_;
            return;
        }
        if (q_.size() >= limit_) {
            ++overrun_;
            return;
        }
        q_.push_back(f);
    }

    /// Moves up to n frames, oldest first, into `batch` (replacing what it held).
    void take(std::size_t n, std::vector<frame>& batch) {
        std::lock_guard g(mu_);
        n = std::min(n, q_.size());
        batch.assign(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(n));
        q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(n));
    }

    /// Empties the inbox; returns how many frames it held.
    std::size_t drop_all() noexcept {
        std::lock_guard g(mu_);
        const std::size_t n = q_.size();
        q_.clear();
        return n;
    }
    /// Empties the inbox of a device that is going away: the frames count as removed, and
    /// `mark_gone()` runs under the inbox lock, so no push() slips in between.
    template <class MarkGone>
    void remove_all(MarkGone mark_gone) noexcept {
        std::lock_guard g(mu_);
        removed_ += q_.size();
        q_.clear();
        mark_gone();
    }

    [[nodiscard]] std::size_t size() const {
        std::lock_guard g(mu_);
        return q_.size();
    }
    [[nodiscard]] std::uint64_t overrun() const {
        std::lock_guard g(mu_);
        return overrun_;
    }
    [[nodiscard]] std::uint64_t removed() const {
        std::lock_guard g(mu_);
        return removed_;
    }

private:
    mutable std::mutex mu_;
    std::deque<frame> q_;
    std::size_t limit_;
    std::uint64_t overrun_ = 0;
    std::uint64_t removed_ = 0;
};

} // namespace npa::sim
