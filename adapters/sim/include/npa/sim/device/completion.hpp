// npa/sim/device/completion.hpp: the path from a finished descriptor to its completion,
// through the fault plan's completion faults (faults.hpp), for any descriptor type.
//
// judge() is the one decision every model makes for every completion: dropped (never
// written), delayed (written that many steps later, and every one behind it too, to keep
// the order), held back to be swapped with the next one (reorder), or written now. Counts
// in the plan are consumed as faults fire; the model's stats get comp_dropped,
// comp_delayed, comp_reordered (a mislabelled pair counts here too) and comp_corrupted
// (from take_corruption()).
//
// comp_path<Comp> applies the verdict for a model whose completions are entries on a ring
// of their own (simnic, vmxnet3): it keeps the delayed ones and the held one. A model that
// writes completions back into the descriptor ring (the 82576) keeps its own queue of
// write-backs and uses judge() alone.
#pragma once

#include <npa/ring/gen_ring.hpp>
#include <npa/sim/faults.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <utility>

namespace npa::sim {

/// One ring's completion faults, as references into a fault_plan (counts are consumed).
struct comp_faults {
    std::uint32_t& drop;
    std::uint32_t delay;
    std::uint32_t& reorder;
    std::uint32_t& mislabel; ///< pairs swapped with their indexes kept in ring order

    [[nodiscard]] static comp_faults of(fault_plan& p, ring_kind r) noexcept {
        return r == ring_kind::tx
                   ? comp_faults{p.drop_tx_completions, p.delay_tx_steps, p.reorder_tx_completions,
                                 p.mislabel_tx_completions}
                   : comp_faults{p.drop_rx_completions, p.delay_rx_steps, p.reorder_rx_completions,
                                 p.mislabel_rx_completions};
    }
};

enum class comp_verdict : std::uint8_t {
    write,        ///< no fault: written now
    drop,         ///< never written
    delay,        ///< written later (the plan's delay, or behind one that is)
    hold,         ///< the first of a reordered pair: waits for the next one
    release_pair, ///< the second of a reordered pair: written, then the held one
};

/// The fate of one completion under `f`. `behind_delayed`: an earlier one on this ring is
/// still delayed (order is kept). `holding`: this ring holds the first of a pair.
template <class Stats>
comp_verdict judge(comp_faults f, bool behind_delayed, bool& holding, Stats& st) noexcept {
    if (f.drop != 0) {
        --f.drop;
        ++st.comp_dropped;
        return comp_verdict::drop;
    }
    if (f.delay != 0 || behind_delayed) {
        ++st.comp_delayed;
        return comp_verdict::delay;
    }
    if (f.reorder != 0 || f.mislabel != 0) { // a mislabelled pair is a reordered one first
        if (!holding) {
            holding = true;
            return comp_verdict::hold;
        }
        holding = false;
        --(f.reorder != 0 ? f.reorder : f.mislabel);
        ++st.comp_reordered;
        return comp_verdict::release_pair;
    }
    return comp_verdict::write;
}

/// The completions of one ring that the fault plan holds back. buf_len travels with each
/// (RX: what the posted buffer could hold, for the length_too_large corruption).
/// `write(const Comp&, std::uint32_t buf_len)` puts one on the ring.
template <class Comp>
class comp_path {
public:
    template <class Stats, class Write>
    void complete(const Comp& c, std::uint32_t buf_len, comp_faults f, std::uint64_t now,
                  Stats& st, Write&& write) {
        const bool mislabel = f.reorder == 0 && f.mislabel != 0; // what judge() will consume
        switch (judge(f, !delayed_.empty(), holding_, st)) {
        case comp_verdict::drop: return;
        case comp_verdict::delay: delayed_.push_back({c, buf_len, now + f.delay}); return;
        case comp_verdict::hold: held_ = {c, buf_len, 0}; return;
        case comp_verdict::release_pair: {
            Comp first = c;
            if constexpr (requires(Comp& x) { x.index = x.tag; }) {
                if (mislabel) { // the later one goes first under the earlier one's index
                    std::swap(first.index, held_.c.index);
                }
            }
            write(first, buf_len);
            write(held_.c, held_.buf_len);
            return;
        }
        case comp_verdict::write:
            (void)flush_held(write); // an odd one left from a reorder goes first
            write(c, buf_len);
            return;
        }
    }

    /// Writes the delayed completions that are due at step `now`, in order.
    template <class Write>
    bool flush_due(std::uint64_t now, Write&& write) {
        bool any = false;
        while (!delayed_.empty() && delayed_.front().due <= now) {
            write(delayed_.front().c, delayed_.front().buf_len);
            delayed_.pop_front();
            any = true;
        }
        return any;
    }
    /// Writes the odd one held for a reorder that found no partner.
    template <class Write>
    bool flush_held(Write&& write) {
        if (!holding_) {
            return false;
        }
        holding_ = false;
        write(held_.c, held_.buf_len);
        return true;
    }
    /// flush_due(), and the held one once no reorder is planned any more.
    template <class Write>
    bool flush(std::uint64_t now, comp_faults f, Write&& write) {
        bool any = flush_due(now, write);
        if (f.reorder == 0 && f.mislabel == 0) {
            any |= flush_held(write);
        }
        return any;
    }
    void clear() noexcept {
        delayed_.clear();
        holding_ = false;
    }

private:
    struct pending {
        Comp c{};
        std::uint32_t buf_len = 0;
        std::uint64_t due = 0;
    };
    std::deque<pending> delayed_;
    pending held_{};
    bool holding_ = false;
};

/// The corruption planned for the next completion written on ring r, consumed (and counted
/// in st.comp_corrupted); comp_fault::none when none is planned.
template <class Stats>
comp_fault take_corruption(fault_plan& p, ring_kind r, Stats& st) noexcept {
    if (p.corrupt == comp_fault::none || p.corrupt_ring != r || p.corrupt_count == 0) {
        return comp_fault::none;
    }
    --p.corrupt_count;
    ++st.comp_corrupted;
    return p.corrupt;
}

/// Writes completion c onto a generation ring with corruption f: index_out_of_range and
/// length_too_large go through edit(c, f) first; gen_out_of_order leaves the generation
/// bit stale; never_posted adds a second entry edited by edit(x, never_posted);
/// double_completion writes it twice; none writes it as it is.
template <class Tr, class Edit>
void produce_corrupted(gen_producer<Tr>& p, typename Tr::desc_type c, comp_fault f, Edit&& edit) {
    switch (f) {
    case comp_fault::index_out_of_range:
    case comp_fault::length_too_large:
        edit(c, f);
        p.produce(c);
        break;
    case comp_fault::gen_out_of_order: {
        auto& slot = p.ring()[p.next_to_fill()];
        p.produce(c);
        std::atomic_ref<std::uint32_t>(Tr::own_word(slot))
            .fetch_xor(Tr::own_mask, std::memory_order_release);
        break;
    }
    case comp_fault::never_posted: {
        p.produce(c);
        typename Tr::desc_type x = c;
        edit(x, comp_fault::never_posted);
        p.produce(x);
        break;
    }
    case comp_fault::double_completion:
        p.produce(c);
        p.produce(c);
        break;
    case comp_fault::none: p.produce(c); break;
    }
}

} // namespace npa::sim
