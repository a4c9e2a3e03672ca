// npa/virtio/device_queue.hpp: the device side of one virtqueue, split (virtio 1.2, 2.7:
// split_ring.hpp) or packed (2.8, VIRTIO_F_RING_PACKED: packed_ring.hpp), whichever the
// driver negotiated. One interface for a device's data path (the vhost-user back end's ring
// walk, the sim device model), so that neither knows which layout it walks: the layout is
// chosen once per queue start, and each call is one predictable branch.
//
// The two layouts differ where a data path sees it in two places: a packed buffer takes as
// many ring positions as it has descriptors, so push_used(), skip_used() and unpop() are
// told how many (pop() reports it); and a packed ring publishes each used buffer as it is
// written (its flags word), so publish_used() has nothing left to do there.
// Freestanding: no exceptions, no allocation.
#pragma once

#include <npa/config.hpp>
#include <npa/virtio/packed_device.hpp>
#include <npa/virtio/split_device.hpp>

#include <atomic>
#include <cstdint>
#include <span>

namespace npa::virtio {

class device_queue {
public:
    /// A split ring from index `base` (split_device::reset).
    [[nodiscard]] bool reset(const split_ring& r, bool event_idx, std::uint16_t base = 0,
                             bool indirect = false) noexcept {
        packed_ = false;
        return split_.reset(r, event_idx, base, indirect);
    }
    /// A packed ring from position `base` (packed_device::reset).
    [[nodiscard]] bool reset(const packed_ring& r, packed_cursor base = {}, bool indirect = false,
                             bool event_idx = false) noexcept {
        packed_ = true;
        return packed_dev_.reset(r, base, indirect, event_idx);
    }

    [[nodiscard]] bool packed() const noexcept { return packed_; }
    [[nodiscard]] const split_device& split_side() const noexcept { return split_; }
    [[nodiscard]] const packed_device& packed_side() const noexcept { return packed_dev_; }
    /// Descriptors in the ring (the queue size).
    [[nodiscard]] std::uint32_t size() const noexcept {
        return packed_ ? packed_dev_.ring().size() : split_.ring().size();
    }
    [[nodiscard]] std::uint64_t errors() const noexcept { return packed_ ? packed_dev_.errors() : split_.errors(); }
    [[nodiscard]] std::uint64_t errors(chain_error e) const noexcept {
        return packed_ ? packed_dev_.errors(e) : split_.errors(e);
    }
    [[nodiscard]] chain_error last_error() const noexcept {
        return packed_ ? packed_dev_.last_error() : split_.last_error();
    }
    [[nodiscard]] std::uint64_t indirect_chains() const noexcept {
        return packed_ ? packed_dev_.indirect_chains() : split_.indirect_chains();
    }

    /// Whether the driver has made a buffer available: one load, so that an empty ring is
    /// skipped cheaply (acquire on a split ring, as split_device::avail_pending(); the
    /// descriptor's flags on a packed one).
    [[nodiscard]] bool pending() noexcept {
        if (packed_) {
            return packed_dev_.pending();
        }
        // acquire: as split_device::avail_pending(), the entries before the index
        return split_.ring().avail()->idx.load(std::memory_order_acquire) != split_.last_avail();
    }
    /// Buffers available and not yet taken, or -1 (split: avail->idx more than N ahead,
    /// counted as split_device::avail_pending() does).
    [[nodiscard]] std::int32_t available_buffers() noexcept {
        return packed_ ? static_cast<std::int32_t>(packed_dev_.available_buffers()) : split_.avail_pending();
    }

    /// The next chain, walked and checked; `descs`: the ring positions it took (1 on a split
    /// ring, where a chain takes one available entry; 1 for a packed buffer with a table).
    /// `dir`: the queue's direction, which a packed table's entries take (table_direction).
    template <class AddrOk, class ReadTable = no_tables>
    [[nodiscard]] pop_status pop(chain& c, std::uint16_t& descs, std::span<segment> segs, AddrOk&& addr_ok,
                                 ReadTable&& read_table = {},
                                 table_direction dir = table_direction::entry) noexcept {
        if (packed_) {
            return packed_dev_.pop(c, descs, segs, addr_ok, read_table, dir);
        }
        descs = 1;
        return split_.pop(c, segs, addr_ok, read_table);
    }
    /// Gives back the last `chains` chains taken, `descs` positions in all.
    void unpop(std::uint16_t chains, std::uint32_t descs) noexcept {
        if (packed_) {
            packed_dev_.unpop(descs);
        } else {
            split_.unpop(chains);
        }
    }
    /// Always inline: a split ring's used entry is two stores, which a call would double.
    NPA_ALWAYS_INLINE void push_used(std::uint16_t id, std::uint32_t len, std::uint16_t descs) noexcept {
        if (packed_) {
            packed_dev_.push_used(id, len, descs);
        } else {
            split_.push_used(id, len);
        }
    }
    /// Moves the used side past one buffer without writing it (fault injection).
    void skip_used(std::uint16_t descs) noexcept {
        if (packed_) {
            packed_dev_.skip_used(descs);
        } else {
            split_.skip_used();
        }
    }
    void publish_used() noexcept {
        if (!packed_) {
            split_.publish_used();
        }
    }
    [[nodiscard]] bool need_interrupt() noexcept {
        return packed_ ? packed_dev_.need_interrupt() : split_.need_interrupt();
    }
    [[nodiscard]] bool enable_notify(bool on) noexcept {
        return packed_ ? packed_dev_.enable_notify(on) : split_.enable_notify(on);
    }

private:
    split_device split_{};
    packed_device packed_dev_{};
    bool packed_ = false;
};

} // namespace npa::virtio
