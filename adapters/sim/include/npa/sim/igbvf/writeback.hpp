// npa/sim/igbvf/writeback.hpp: when an 82576 VF descriptor write-back lands (part of igbvf_device).
//
// The VF writes completions back into the descriptor ring and moves the head register
// past the written-back prefix. The completion faults (device/completion.hpp, judge())
// decide when a write-back lands: never (dropped: the head passes it, nothing is written),
// N steps late, or one step after the next one's (a reordered pair).
#pragma once

#include <npa/sim/igbvf/device.hpp>

namespace npa::sim {

// Returns whether a fault applied.
inline bool igbvf_device::plan_fault(dq& d, ring_kind r, write_back& p) {
    const comp_faults f = comp_faults::of(faults_, r);
    bool& hold = r == ring_kind::tx ? tx_reorder_hold_ : rx_reorder_hold_;
    switch (judge(f, false, hold, d.st)) {
    case comp_verdict::drop:
        p.written = true;
        p.dd = false;
        return true;
    case comp_verdict::delay: p.due = steps_ + f.delay; return true;
    case comp_verdict::hold: p.due = steps_ + 1; return true; // lands after the next one's
    case comp_verdict::release_pair: return true;
    case comp_verdict::write: return false;
    }
    return false;
}

// Write back what is due (in ring order, or out of it for a reorder), then move the
// head register past the prefix that is written back (unless head_reg is head_by_caller:
// the caller moves it, flush_tx() with tx_head_ahead).
template <class Write>
bool igbvf_device::flush_due(std::deque<write_back>& inflight, std::uint32_t head_reg, Write write) {
    bool any = false;
    for (write_back& p : inflight) {
        if (!p.written && p.due <= steps_) {
            write(p);
            p.written = true;
            any = true;
        }
    }
    while (!inflight.empty() && inflight.front().written) {
        if (head_reg != head_by_caller) {
            set_reg(head_reg, inflight.front().next);
        }
        inflight.pop_front();
    }
    return any;
}

} // namespace npa::sim
