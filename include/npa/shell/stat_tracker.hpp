// npa/shell/stat_tracker.hpp: a plugin's counters folded into monotonic totals
// (docs/design.md "Stats").
#pragma once

#include <npa/stats.hpp>

namespace npa::detail {

/// Folds a plugin's counters into monotonic totals. A device resets all its counters
/// at once, so any counter going backwards (device reset, re-attach) means every
/// counter restarted from zero: what was last seen becomes history. A reset whose
/// counters have all climbed past their last observed values before the next
/// observation cannot be told from values alone; that window is the time between two
/// reads (each burst's stats read, each detach), and the counts in it are missed.
struct stat_tracker {
    queue_stats base{};
    queue_stats last{};

    void observe(const queue_stats& cur) noexcept {
        const bool restarted =
            cur.rx_packets < last.rx_packets || cur.rx_bytes < last.rx_bytes ||
            cur.tx_packets < last.tx_packets || cur.tx_bytes < last.tx_bytes ||
            cur.rx_no_buffer < last.rx_no_buffer || cur.rx_dropped < last.rx_dropped ||
            cur.tx_ring_full < last.tx_ring_full || cur.tx_errors < last.tx_errors ||
            cur.bad_completion < last.bad_completion || cur.irqs < last.irqs ||
            cur.resets < last.resets;
        if (restarted) {
            base += last;
        }
        last = cur;
    }
    /// The device is going away: what it counted becomes history.
    void retire() noexcept {
        base += last;
        last = queue_stats{};
    }
    [[nodiscard]] queue_stats total() const noexcept {
        queue_stats t = base;
        t += last;
        return t;
    }
};

} // namespace npa::detail
