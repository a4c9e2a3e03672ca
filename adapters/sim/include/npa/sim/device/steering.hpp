// npa/sim/device/steering.hpp: which RX queue a frame from the wire lands on.
//
// The sim's RSS is eth::flow_hash (wire.hpp): one flow always lands on one queue, on
// every device model. A model either spreads over the queues that are up (active_queues)
// or over all its RX queues once the guest turned RSS on (rss_queue; vmxnet3 goes through
// the indirection table the guest handed it, whose default spreads the same way).
#pragma once

#include <npa/sim/wire.hpp>

#include <array>
#include <cstdint>

namespace npa::sim {

/// The sim's RSS hash of a frame.
[[nodiscard]] inline std::uint32_t rss_hash(const frame& f) noexcept { return eth::flow_hash(f); }

/// RSS over n queues when on; queue 0 otherwise.
[[nodiscard]] constexpr std::uint32_t rss_queue(std::uint32_t hash, std::uint32_t n,
                                                bool rss_on) noexcept {
    return rss_on && n > 1 ? hash % n : 0;
}

/// The queues able to take a frame this step, in queue order; a hash picks one of them.
template <std::size_t N>
class active_queues {
public:
    void add(std::uint16_t q) noexcept { q_[n_++] = q; }
    [[nodiscard]] bool empty() const noexcept { return n_ == 0; }
    [[nodiscard]] std::uint16_t pick(std::uint32_t hash) const noexcept { return q_[hash % n_]; }

private:
    std::array<std::uint16_t, N> q_{};
    std::uint16_t n_ = 0;
};

} // namespace npa::sim
