// npa/linux/vhost_user/virtq_device.hpp: the device side of one virtqueue as a vhost-user
// back end serves it, split (virtio 1.2, 2.7: virtio/split_ring.hpp) or packed (2.8,
// VIRTIO_F_RING_PACKED: virtio/packed_ring.hpp), whichever the front end negotiated. One
// interface for the ring walk (vring.hpp) and the daemon's loop, so neither knows which
// layout it walks; the layout is chosen once per ring start, and each call is one
// predictable branch.
//
// The two layouts differ where the data path sees it in two places: a packed buffer takes
// as many ring positions as it has descriptors, so push_used() and unpop() are told how
// many (pop() reports it); and a packed ring publishes each used buffer as it is written
// (its flags word), so publish_used() has nothing left to do there.
#pragma once

#include <npa/linux/vhost_user/ring_base.hpp>
#include <npa/virtio/packed_ring.hpp>
#include <npa/virtio/split_ring.hpp>

#include <cstdint>
#include <span>

namespace npa::vhost_user {

class virtq_device {
public:
    /// `indirect`: VIRTIO_F_INDIRECT_DESC negotiated (pop() walks tables through its reader).
    [[nodiscard]] bool reset(const virtio::split_ring& r, bool event_idx, std::uint16_t base,
                             bool indirect = false) noexcept {
        packed_ = false;
        return split_.reset(r, event_idx, base, indirect);
    }
    /// `base`: SET_VRING_BASE's value, encoded as encode_base() says. `event_idx`:
    /// VIRTIO_F_EVENT_IDX negotiated (enable_notify() names a position, RING_EVENT_FLAGS_DESC).
    [[nodiscard]] bool reset(const virtio::packed_ring& r, std::uint16_t base, bool indirect = false,
                             bool event_idx = false) noexcept {
        packed_ = true;
        return packed_dev_.reset(r, decode_base(base), indirect, event_idx);
    }

    [[nodiscard]] bool packed() const noexcept { return packed_; }
    [[nodiscard]] const virtio::split_device& split_side() const noexcept { return split_; }
    [[nodiscard]] const virtio::packed_device& packed_side() const noexcept { return packed_dev_; }
    /// Where the front end resumes (GET_VRING_BASE).
    [[nodiscard]] std::uint16_t base() const noexcept {
        return packed_ ? encode_base(packed_dev_.last_avail()) : split_.last_avail();
    }
    [[nodiscard]] std::uint64_t errors() const noexcept { return packed_ ? packed_dev_.errors() : split_.errors(); }
    [[nodiscard]] std::uint64_t errors(virtio::chain_error e) const noexcept {
        return packed_ ? packed_dev_.errors(e) : split_.errors(e);
    }
    [[nodiscard]] virtio::chain_error last_error() const noexcept {
        return packed_ ? packed_dev_.last_error() : split_.last_error();
    }
    [[nodiscard]] std::uint64_t indirect_chains() const noexcept {
        return packed_ ? packed_dev_.indirect_chains() : split_.indirect_chains();
    }

    /// Whether the front end has made a buffer available: one load, so that an empty ring
    /// is skipped cheaply (acquire on a split ring, as split_device::avail_pending(); the
    /// descriptor's flags on a packed one).
    [[nodiscard]] bool pending() noexcept {
        if (packed_) {
            return packed_dev_.pending();
        }
        return split_.ring().avail()->idx.load(std::memory_order_acquire) != split_.last_avail();
    }

    /// The next chain, walked and checked; `descs`: the ring positions it took (1 on a split
    /// ring, where a chain takes one available entry; 1 for a packed buffer with a table).
    /// `dir`: the queue's direction, which a packed table's entries take (table_direction).
    template <class AddrOk, class ReadTable = virtio::no_tables>
    [[nodiscard]] virtio::pop_status pop(virtio::chain& c, std::uint16_t& descs, std::span<virtio::segment> segs,
                                         AddrOk&& addr_ok, ReadTable&& read_table = {},
                                         virtio::table_direction dir = virtio::table_direction::entry) noexcept {
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
    void push_used(std::uint16_t id, std::uint32_t len, std::uint16_t descs) noexcept {
        if (packed_) {
            packed_dev_.push_used(id, len, descs);
        } else {
            split_.push_used(id, len);
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
    virtio::split_device split_{};
    virtio::packed_device packed_dev_{};
    bool packed_ = false;
};

} // namespace npa::vhost_user
