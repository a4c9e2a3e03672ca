// npa/virtio/packed_device.hpp: the device's side of a packed virtqueue (OASIS virtio 1.2,
// section 2.8), beside split_device.hpp. The layout, the wrap counters, event suppression
// and the trust rules are in packed_ring.hpp, which holds the driver's side.
//
// packed_device takes available buffers (a chain ends within N descriptors, fits the
// caller's segments, does not overflow 32 bits of length, has no readable descriptor after
// a writable one, every address passes the caller's check, an indirect table only when
// negotiated), writes used descriptors, decides whether to interrupt and asks for
// notifications. A refused chain is still taken off the ring so that it can be given back
// unused; only a chain without an end leaves the device side stuck (pop() says broken).
//
// Freestanding: no exceptions, no allocation, caller-provided state.
#pragma once

#include <npa/virtio/packed_ring.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::virtio {

// ---- device side ----------------------------------------------------------------------------
/// The device's side of one packed virtqueue. pop() reports each buffer's id in
/// chain::head and its descriptor count in `descs`, which push_used() takes back.
class packed_device {
public:
    /// Starts at `base` on both sides (lap 1, position 0 for a fresh queue; a vhost-user back
    /// end resumes where SET_VRING_BASE says). `indirect`: VIRTIO_F_INDIRECT_DESC negotiated.
    /// `event_idx`: VIRTIO_F_EVENT_IDX negotiated (enable_notify() then asks for one
    /// notification, at the next available position). False when the ring is unbound or
    /// `base` lies past its end.
    [[nodiscard]] bool reset(const packed_ring& r, packed_cursor base = {}, bool indirect = false,
                             bool event_idx = false) noexcept {
        r_ = r;
        avail_ = used_ = signalled_ = base;
        indirect_ = indirect;
        event_idx_ = event_idx;
        indirect_chains_ = 0;
        errors_.clear();
        return r.bound() && base.index < r.size();
    }
    [[nodiscard]] const packed_ring& ring() const noexcept { return r_; }
    /// The next position to take from (and, once every buffer taken is marked used, the next
    /// to write a used descriptor at).
    [[nodiscard]] packed_cursor last_avail() const noexcept { return avail_; }
    [[nodiscard]] packed_cursor used_pos() const noexcept { return used_; }
    [[nodiscard]] std::uint64_t errors(chain_error e) const noexcept { return errors_.of(e); }
    [[nodiscard]] std::uint64_t errors() const noexcept { return errors_.total(); }
    [[nodiscard]] chain_error last_error() const noexcept { return errors_.last(); }
    /// Buffers taken whole from an indirect table since reset().
    [[nodiscard]] std::uint64_t indirect_chains() const noexcept { return indirect_chains_; }

    /// Takes the next available buffer and walks it into `segs` (see split_device::pop for
    /// the checks and `read_table`). `descs` is set to the ring positions it took (pass it to
    /// push_used). A buffer with an indirect table is one ring descriptor (2.8.13); `dir`:
    /// where its entries take their direction from (virtqueue.hpp, table_direction).
    ///
    /// A buffer refused for one of its descriptors (too many, INDIRECT, an order, a length or
    /// an address) is still taken off the ring: the rest of it is only scanned for its end
    /// (NEXT clear, where the buffer id is; nothing else of it is read), so that `c.head` and
    /// `descs` name it and the device can give it back unused, as a split ring's refused
    /// chain. Only a buffer without an end (NEXT on every descriptor of the ring, or a chain
    /// running into descriptors the driver has not made available) leaves the ring broken:
    /// where the next buffer starts is then unknown.
    template <class AddrOk, class ReadTable>
    [[nodiscard]] pop_status pop(chain& c, std::uint16_t& descs, std::span<segment> segs,
                                 AddrOk&& addr_ok, ReadTable&& read_table,
                                 table_direction dir = table_direction::entry) noexcept {
        if (!available(avail_)) {
            return pop_status::empty;
        }
        const std::uint32_t n = r_.size();
        packed_cursor at = avail_;
        c = chain{};
        detail::chain_walk walk;
        chain_error err = chain_error::none;
        std::uint32_t k = 0;
        for (;; ++k) {
            if (k == n || (k != 0 && !available(at))) {
                errors_.add(chain_error::loop);
                return pop_status::broken;
            }
            const pvirtq_desc d = r_.desc()[at.index]; // one snapshot (flags acquired)
            const std::uint16_t flags = d.flags;
            at.advance(1, n);
            if (err == chain_error::none && (flags & desc_f_indirect) != 0) {
                err = walk.table<detail::table_layout::sequential>(c, segs, k, flags, d.addr, d.len, n,
                                                                   indirect_, addr_ok, read_table, dir);
            } else if (err == chain_error::none) {
                const segment s{d.addr, d.len, (flags & desc_f_write) != 0};
                err = walk.take(c, segs, k, flags, s, addr_ok);
            }
            if ((flags & desc_f_next) == 0) {
                c.head = d.id; // the buffer id is the last descriptor's (2.8.6)
                break;
            }
        }
        descs = static_cast<std::uint16_t>(k + 1);
        avail_ = at;
        if (err != chain_error::none) {
            errors_.add(err);
            return pop_status::refused;
        }
        indirect_chains_ += c.indirect ? 1 : 0;
        walk.finish(c);
        return pop_status::ok;
    }
    /// pop() of a device that reads no indirect table (split_device::pop's twin).
    template <class AddrOk>
    [[nodiscard]] pop_status pop(chain& c, std::uint16_t& descs, std::span<segment> segs,
                                 AddrOk&& addr_ok) noexcept {
        return pop(c, descs, segs, addr_ok, no_tables{});
    }

    /// Gives back the last buffers taken, `descs` ring positions in all (a device that took
    /// buffers it cannot use yet, e.g. RX buffers for a frame that needs more).
    void unpop(std::uint32_t descs) noexcept {
        const std::uint32_t n = r_.size();
        std::uint32_t i = avail_.index;
        if (descs > i) {
            i += n;
            avail_.wrap = !avail_.wrap;
        }
        avail_.index = static_cast<std::uint16_t>(i - descs);
    }

    /// Marks buffer `id` used: one descriptor at the used position, flags last (release),
    /// then the position moves past the buffer's `descs` descriptors.
    void push_used(std::uint16_t id, std::uint32_t len, std::uint16_t descs) noexcept {
        pvirtq_desc& d = r_.desc()[used_.index];
        d.id = id;
        d.len = len;
        const auto f = static_cast<std::uint16_t>(
            (used_.wrap ? desc_f_avail | desc_f_used : 0) | (len != 0 ? desc_f_write : 0));
        // release: id and len before the flags; pairs with the driver's acquire in poll_used()
        d.flags.store(f, std::memory_order_release);
        used_.advance(descs, r_.size());
    }
    /// Moves the used position past a buffer's `descs` descriptors without writing one (fault
    /// injection, split_device::skip_used's twin: the driver waits at a position the device
    /// never marked used).
    void skip_used(std::uint16_t descs) noexcept { used_.advance(descs, r_.size()); }
    /// Whether the driver wants an interrupt for what was marked used since the last true.
    [[nodiscard]] bool need_interrupt() noexcept {
        const packed_cursor old = signalled_;
        if (old.index == used_.index && old.wrap == used_.wrap) {
            return false;
        }
        signalled_ = used_;
        // seq_cst fence: the used descriptors' flags before the load of the driver's hint
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return detail::wants_event(*r_.driver_event(), old, used_, r_.size());
    }

    /// Notification suppression (2.8.10): off asks the driver not to notify (the device's
    /// event area, RING_EVENT_FLAGS_DISABLE), on asks for a notification for every buffer
    /// made available (ENABLE), or with EVENT_IDX for the one at the next available
    /// position (off_wrap there, DESC). True when a buffer is already waiting.
    [[nodiscard]] bool enable_notify(bool on) noexcept {
        pvirtq_event_suppress& e = *r_.device_event();
        if (on && event_idx_) {
            // relaxed: a hint; the release below publishes it with the flags
            e.off_wrap.store(detail::off_wrap(avail_), std::memory_order_relaxed);
        }
        // release: off_wrap before DESC (the driver loads flags with acquire, then off_wrap);
        // the fence below orders both before the flags load
        e.flags.store(!on ? ring_event_disable : event_idx_ ? ring_event_desc : ring_event_enable,
                      std::memory_order_release);
        // seq_cst fence: the hint before the look at the next descriptor (store-load)
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return available(avail_);
    }

    /// Whether the driver has made the next buffer available (one load of its flags).
    [[nodiscard]] bool pending() noexcept { return available(avail_); }
    /// Buffers available and not yet taken: what a device could fill now. `on_buffer(id)`
    /// is called with each one's buffer id (its last descriptor's; nothing else of the
    /// buffer is read). A chain the driver has not finished making available ends the walk.
    template <class OnBuffer>
    std::uint32_t walk_available(OnBuffer&& on_buffer) const noexcept {
        const std::uint32_t n = r_.size();
        packed_cursor at = avail_;
        std::uint32_t buffers = 0;
        for (std::uint32_t k = 0; k < n; ++k) {
            pvirtq_desc& d = r_.desc()[at.index];
            const std::uint16_t f = detail::load_flags(d);
            if (!detail::avail_form(f, at.wrap)) {
                break;
            }
            if ((f & desc_f_next) == 0) {
                ++buffers;
                on_buffer(static_cast<std::uint16_t>(d.id));
            }
            at.advance(1, n);
        }
        return buffers;
    }
    [[nodiscard]] std::uint32_t available_buffers() const noexcept {
        return walk_available([](std::uint16_t) {});
    }

private:
    bool available(packed_cursor at) noexcept {
        return detail::avail_form(detail::load_flags(r_.desc()[at.index]), at.wrap);
    }

    packed_ring r_{};
    packed_cursor avail_{}, used_{}, signalled_{};
    bool indirect_ = false, event_idx_ = false;
    std::uint64_t indirect_chains_ = 0;
    chain_error_counts errors_{};
};

} // namespace npa::virtio
