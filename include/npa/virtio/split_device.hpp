// npa/virtio/split_device.hpp: the device's side of a split virtqueue (OASIS virtio v1.2,
// section 2.7), for device models, vhost-user and host back ends. The layouts, the memory
// order and the trust rules are in split_ring.hpp, which holds the driver's side.
//
// split_device takes available chains, walks and checks each one (idx no further than N
// ahead, every index below N, no loop, no more segments than the caller's array, no length
// overflow, no readable segment after a writable one, every address through the caller's
// check, indirect tables only when negotiated and checked the same way), pushes used
// entries, decides whether to interrupt and suppresses notifications. A violation is
// counted by cause and returned; nothing the driver wrote is followed before it is checked.
//
// Freestanding: no exceptions, no allocation, standard headers only.
#pragma once

#include <npa/virtio/split_ring.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::virtio {

// ---- device side ----------------------------------------------------------------------------
/// The device's side of one split virtqueue.
///
/// Semantic requirements (not checked by the compiler): one thread per queue; the address
/// check passed to pop() is the device's IOMMU (guest memory translation).
class split_device {
public:
    /// `event_idx`: VIRTIO_F_EVENT_IDX negotiated; `indirect`: VIRTIO_F_INDIRECT_DESC
    /// negotiated (tables are walked when pop() is given a reader for them). Starts from
    /// index `base` on both rings (0 for a fresh queue, 2.7.14; a vhost-user back end
    /// resumes at SET_VRING_BASE's index).
    [[nodiscard]] bool reset(const split_ring& r, bool event_idx, std::uint16_t base = 0,
                             bool indirect = false) noexcept {
        r_ = r;
        last_avail_ = avail_idx_ = used_idx_ = signalled_ = base;
        event_idx_ = event_idx;
        indirect_ = indirect;
        indirect_chains_ = 0;
        errors_.clear();
        return r.bound();
    }

    [[nodiscard]] const split_ring& ring() const noexcept { return r_; }
    [[nodiscard]] std::uint16_t last_avail() const noexcept { return last_avail_; }
    [[nodiscard]] std::uint16_t used_idx() const noexcept { return used_idx_; }
    [[nodiscard]] std::uint64_t errors(chain_error e) const noexcept { return errors_.of(e); }
    [[nodiscard]] std::uint64_t errors() const noexcept { return errors_.total(); }
    [[nodiscard]] chain_error last_error() const noexcept { return errors_.last(); }
    /// Chains taken whole from an indirect table since reset().
    [[nodiscard]] std::uint64_t indirect_chains() const noexcept { return indirect_chains_; }

    /// Chains available and not yet taken, or -1 (counted) when avail->idx is more than N
    /// ahead of the device.
    [[nodiscard]] std::int32_t avail_pending() noexcept {
        // acquire: the ring entries and descriptors before the index; pairs with the
        // driver's release in publish().
        const std::uint16_t idx = r_.avail()->idx.load(std::memory_order_acquire);
        const auto ahead = static_cast<std::uint16_t>(idx - last_avail_);
        if (ahead > r_.size()) {
            refuse(chain_error::avail_idx);
            return -1;
        }
        avail_idx_ = idx;
        return ahead;
    }

    /// Takes the next available chain and walks it into `segs`, checking each descriptor
    /// (index, loop, count, lengths, flags) and `addr_ok(addr, len, write)` for each
    /// segment, before anything of it is used. A head with INDIRECT names a table in driver
    /// memory: `read_table(addr, len)` says where it is readable (nullptr: refused), and
    /// its entries are checked as a chain's (chain_walk::table()).
    template <class AddrOk, class ReadTable>
    [[nodiscard]] pop_status pop(chain& c, std::span<segment> segs, AddrOk&& addr_ok,
                                 ReadTable&& read_table) noexcept {
        // avail->idx is loaded again only once the chains it showed last time are taken: one
        // load of the driver's line a burst, not one a chain (as DPDK's vhost library). The
        // entries up to the index seen were checked then (at most N ahead).
        if (last_avail_ == avail_idx_) {
            const std::int32_t pending = avail_pending();
            if (pending < 0) {
                return pop_status::broken;
            }
            if (pending == 0) {
                return pop_status::empty;
            }
        }
        const std::uint32_t n = r_.size();
        const std::uint16_t head = r_.avail_ring(last_avail_); // one snapshot
        ++last_avail_;
        c = chain{};
        c.head = head;
        if (head >= n) {
            return refuse(chain_error::head_range);
        }
        std::uint32_t id = head;
        detail::chain_walk walk;
        for (std::uint32_t k = 0;; ++k) {
            if (k == n) {
                return refuse(chain_error::loop); // N descriptors and still going: a loop
            }
            const virtq_desc d = r_.desc()[id]; // one snapshot
            const std::uint16_t flags = d.flags;
            if ((flags & desc_f_indirect) != 0) {
                const chain_error e = walk.table<detail::table_layout::linked>(
                    c, segs, k, flags, d.addr, d.len, n, indirect_, addr_ok, read_table);
                if (e != chain_error::none) {
                    return refuse(e);
                }
                ++indirect_chains_;
                break; // the table is the whole chain: NEXT was refused with it
            }
            const segment s{d.addr, d.len, (flags & desc_f_write) != 0};
            if (const chain_error e = walk.take(c, segs, k, flags, s, addr_ok); e != chain_error::none) {
                return refuse(e);
            }
            if ((flags & desc_f_next) == 0) {
                break;
            }
            id = d.next;
            if (id >= n) {
                return refuse(chain_error::next_range);
            }
        }
        walk.finish(c);
        return pop_status::ok;
    }
    /// pop() of a device that reads no indirect table (one is refused as not negotiated, or
    /// as outside driver memory when it was).
    template <class AddrOk>
    [[nodiscard]] pop_status pop(chain& c, std::span<segment> segs, AddrOk&& addr_ok) noexcept {
        return pop(c, segs, addr_ok, no_tables{});
    }

    /// Gives the last `count` chains taken back to the available ring's order (a device that
    /// took chains it cannot use yet, e.g. RX buffers for a frame that needs more).
    void unpop(std::uint16_t count) noexcept { last_avail_ = static_cast<std::uint16_t>(last_avail_ - count); }

    /// Writes a used entry (not yet published).
    void push_used(std::uint32_t id, std::uint32_t len) noexcept {
        virtq_used_elem& e = r_.used_ring(used_idx_);
        e.id = id;
        e.len = len;
        ++used_idx_;
    }
    /// Moves the used index without writing an entry (fault injection: an index that runs
    /// ahead of the entries).
    void skip_used() noexcept { ++used_idx_; }
    /// Publishes the used entries (release store of used->idx).
    void publish_used() noexcept {
        // release: the entries (and the buffers' contents) before the index; pairs with the
        // driver's acquire in poll_used().
        r_.used()->idx.store(used_idx_, std::memory_order_release);
    }
    /// Whether the driver wants an interrupt for what was published since the last time
    /// this answered true: with EVENT_IDX when used->idx passed used_event, otherwise unless
    /// VIRTQ_AVAIL_F_NO_INTERRUPT is set (2.7.7.2).
    [[nodiscard]] bool need_interrupt() noexcept {
        // seq_cst fence: the used->idx store before the load of the driver's hint
        std::atomic_thread_fence(std::memory_order_seq_cst);
        const std::uint16_t old = signalled_;
        if (old == used_idx_) {
            return false;
        }
        bool want;
        if (event_idx_) {
            // acquire: a hint; keeps the load after the fence
            want = need_event(r_.used_event().load(std::memory_order_acquire), used_idx_, old);
        } else {
            // acquire: as above
            want = (r_.avail()->flags.load(std::memory_order_acquire) & avail_f_no_interrupt) == 0;
        }
        signalled_ = used_idx_;
        return want;
    }
    /// Notification suppression (2.7.10): off asks the driver not to notify
    /// (VIRTQ_USED_F_NO_NOTIFY, or avail_event left behind with EVENT_IDX); on asks for a
    /// notification at the next available chain. True when chains are already waiting.
    [[nodiscard]] bool enable_notify(bool on) noexcept {
        // relaxed: hints to the driver; the fence below orders them before the idx load
        r_.used()->flags.store(on ? 0 : used_f_no_notify, std::memory_order_relaxed);
        if (event_idx_ && on) {
            r_.avail_event().store(last_avail_, std::memory_order_relaxed); // relaxed: as above
        }
        // seq_cst fence: the hint before the load of avail->idx (store-load)
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return r_.avail()->idx.load(std::memory_order_acquire) != last_avail_; // acquire: entries
    }

private:
    pop_status refuse(chain_error e) noexcept {
        errors_.add(e);
        return e == chain_error::avail_idx ? pop_status::broken : pop_status::refused;
    }

    split_ring r_{};
    /// avail_idx_: avail->idx at its last load; last_avail_ never passes it (unpop() moves
    /// last_avail_ back, so the chains between them are all ones the driver made available).
    std::uint16_t last_avail_ = 0, avail_idx_ = 0, used_idx_ = 0, signalled_ = 0;
    bool event_idx_ = false, indirect_ = false;
    std::uint64_t indirect_chains_ = 0;
    chain_error_counts errors_{};
};

} // namespace npa::virtio
