// npa/virtio/packed_ring.hpp: the packed virtqueue of virtio 1.1+ (OASIS virtio 1.2,
// section 2.8), beside the split one (split_ring.hpp): its layout and the driver's side;
// the device's side is packed_device.hpp.
//
// A packed virtqueue is one ring of N descriptors {le64 addr, le32 len, le16 id, le16 flags}
// that both sides write, plus two 4-byte event suppression areas. Ownership is in each
// descriptor's flags: the driver makes a descriptor available by setting AVAIL to its wrap
// counter and USED to the inverse; the device marks a buffer used by writing one
// descriptor whose AVAIL and USED both equal its own wrap counter. Wrap counters start at
// 1 and flip each time a side passes the end of the ring. N need not be a power of two.
// A buffer (a chain of descriptors, NEXT set on all but the last) is named by its buffer
// id, which the driver chooses and the device echoes; the last descriptor of a chain
// carries it (2.8.6). A used descriptor stands for the whole buffer: the reader skips as
// many ring positions as the buffer had descriptors.
//
// Memory order: the side that hands descriptors over writes their bodies first and the
// flags of the first one last, with a release store; the other side loads that flags word
// with acquire before it reads anything else (docs/design.md, rules 1 and 2). The event
// decisions are store-load pairs with a seq_cst fence between (rule 7). With
// VIRTIO_F_ORDER_PLATFORM the driver adds the platform's DMA barriers (set_ordering(),
// barriers.hpp).
//
// Event suppression (2.8.10): each side tells the other in its area when it wants to hear
// of progress: always (ENABLE), never (DISABLE), or, with VIRTIO_F_EVENT_IDX, once the
// other side has written the descriptor at one ring position of one lap (DESC, off_wrap:
// position in bits 0..14, wrap counter in bit 15). Both sides read all three modes
// (wants_event); with EVENT_IDX the driver asks for an interrupt at its next used position
// (enable_interrupts) and the device for a notification at its next available one
// (enable_notify), as Linux's virtqueue_enable_cb_prepare_packed and DPDK's
// vhost_enable_notify_packed do. A side writes off_wrap before flags (release), so the
// other side, which loads flags with acquire first, never pairs DESC with a stale position.
//
// Trust, as in split_ring.hpp: the driver checks that a used descriptor's buffer id is one
// it made available and has not had back (an unknown id leaves the ring `broken`: how far
// to skip is then unknown, as Linux's BAD_RING); the device checks that a chain ends within
// N descriptors, fits the caller's segments, does not overflow 32 bits of length, has no
// readable descriptor after a writable one, and that every address passes the caller's
// check; an indirect table only when negotiated, as the buffer's one descriptor, of 1..N
// whole entries, mapped by the caller's table reader, its entries checked the same way and
// none of them INDIRECT. A chain refused for one of those is still taken off the ring (its
// end found, its buffer id and length in positions known) so that it can be given back
// unused; only a chain without an end leaves the device side stuck (pop() says broken).
// Freestanding: no exceptions, no allocation, caller-provided state.
#pragma once

#include <npa/endian.hpp>
#include <npa/virtio/barriers.hpp>
#include <npa/virtio/virtqueue.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::virtio {

/// VIRTQ_DESC_F_AVAIL and VIRTQ_DESC_F_USED (2.8.1).
inline constexpr std::uint16_t desc_f_avail = 1u << 7;
inline constexpr std::uint16_t desc_f_used = 1u << 15;
/// RING_EVENT_FLAGS_* of an event suppression area (2.8.10).
inline constexpr std::uint16_t ring_event_enable = 0, ring_event_disable = 1, ring_event_desc = 2;

struct pvirtq_desc {
    le64 addr;
    le32 len;
    le16 id;
    le16 flags;
};
static_assert(sizeof(pvirtq_desc) == 16 && alignof(pvirtq_desc) == 8);
static_assert(offsetof(pvirtq_desc, len) == 8 && offsetof(pvirtq_desc, id) == 12 &&
              offsetof(pvirtq_desc, flags) == 14);

/// struct pvirtq_event_suppress: off_wrap holds a ring offset (bits 0..14) and a wrap
/// counter (bit 15), used with RING_EVENT_FLAGS_DESC (VIRTIO_F_EVENT_IDX).
struct pvirtq_event_suppress {
    le16 off_wrap;
    le16 flags;
};
static_assert(sizeof(pvirtq_event_suppress) == 4);

/// Alignments of the three areas (2.8.10, table "Packed Virtqueue Part Alignment").
inline constexpr std::size_t packed_desc_align = 16, packed_event_align = 4;
[[nodiscard]] constexpr std::size_t packed_desc_bytes(std::uint32_t n) noexcept { return 16u * std::size_t{n}; }
[[nodiscard]] constexpr bool packed_size_ok(std::uint32_t n) noexcept { return n != 0 && n <= max_queue_size; }

/// Where a driver that lays a packed ring out in one block puts its areas: the descriptor
/// ring, then the driver's and the device's event suppression areas (each aligned as 2.8.10
/// asks once the block is 16-aligned). Byte offsets from the block's start.
struct packed_layout {
    std::size_t desc = 0, driver = 0, device = 0, total = 0;
};
[[nodiscard]] constexpr packed_layout packed_layout_of(std::uint32_t n) noexcept {
    packed_layout l;
    l.driver = packed_desc_bytes(n);
    l.device = l.driver + sizeof(pvirtq_event_suppress);
    l.total = l.device + sizeof(pvirtq_event_suppress);
    return l;
}
static_assert(packed_layout_of(256).device == 4100 && packed_layout_of(256).total == 4104);

/// A view of one packed ring: the descriptor ring and the two suppression areas (the
/// driver's, which the device reads, and the device's, which the driver reads).
class packed_ring {
public:
    packed_ring() noexcept = default;
    packed_ring(void* desc, void* driver_event, void* device_event, std::uint32_t n) noexcept {
        const auto a = [](void* p, std::size_t al) {
            return p != nullptr && reinterpret_cast<std::uintptr_t>(p) % al == 0;
        };
        if (!packed_size_ok(n) || !a(desc, packed_desc_align) || !a(driver_event, packed_event_align) ||
            !a(device_event, packed_event_align)) {
            return;
        }
        desc_ = static_cast<pvirtq_desc*>(desc);
        drv_ = static_cast<pvirtq_event_suppress*>(driver_event);
        dev_ = static_cast<pvirtq_event_suppress*>(device_event);
        n_ = n;
    }
    /// The ring laid out in one block as packed_layout_of(n) says.
    [[nodiscard]] static packed_ring in_block(void* block, std::uint32_t n) noexcept {
        const packed_layout l = packed_layout_of(n);
        auto* b = static_cast<std::byte*>(block);
        return block == nullptr ? packed_ring{} : packed_ring(b + l.desc, b + l.driver, b + l.device, n);
    }
    [[nodiscard]] bool bound() const noexcept { return n_ != 0; }
    [[nodiscard]] std::uint32_t size() const noexcept { return n_; }
    [[nodiscard]] pvirtq_desc* desc() const noexcept { return desc_; }
    [[nodiscard]] pvirtq_event_suppress* driver_event() const noexcept { return drv_; }
    [[nodiscard]] pvirtq_event_suppress* device_event() const noexcept { return dev_; }

private:
    pvirtq_desc* desc_ = nullptr;
    pvirtq_event_suppress* drv_ = nullptr;
    pvirtq_event_suppress* dev_ = nullptr;
    std::uint32_t n_ = 0;
};

/// A position in a packed ring and the wrap counter of the lap it is on.
struct packed_cursor {
    std::uint16_t index = 0;
    bool wrap = true;
    void advance(std::uint32_t by, std::uint32_t n) noexcept {
        std::uint32_t i = index + by;
        if (i >= n) {
            i -= n;
            wrap = !wrap;
        }
        index = static_cast<std::uint16_t>(i);
    }
};

namespace detail {
// off_wrap of an event suppression area naming position `at` (2.8.10: bit 15 the wrap counter).
[[nodiscard]] constexpr std::uint16_t off_wrap(packed_cursor at) noexcept {
    return static_cast<std::uint16_t>(at.index | (at.wrap ? 0x8000u : 0u));
}
[[nodiscard]] inline std::uint16_t load_flags(pvirtq_desc& d) noexcept {
    return d.flags.load(std::memory_order_acquire); // acquire: the body after the flags
}
// Flags `f` of a descriptor the driver made available on the lap whose wrap counter is
// `wrap` (AVAIL equal to it, USED its inverse: 2.8.1).
[[nodiscard]] constexpr bool avail_form(std::uint16_t f, bool wrap) noexcept {
    return ((f & desc_f_avail) != 0) == wrap && ((f & desc_f_used) != 0) != wrap;
}
// Flags `f` of a descriptor the device marked used on that lap (AVAIL and USED both equal it).
[[nodiscard]] constexpr bool used_form(std::uint16_t f, bool wrap) noexcept {
    return ((f & desc_f_avail) != 0) == wrap && ((f & desc_f_used) != 0) == wrap;
}
// Whether the other side asked to be told about the move from `old` to `now` (its
// suppression area `e`; 2.8.10, Linux virtqueue_kick_prepare_packed). The caller puts a
// store-load barrier first: its descriptors' flags before the load of the other side's hint.
[[nodiscard]] inline bool wants_event(const pvirtq_event_suppress& e, packed_cursor old,
                                      packed_cursor now, std::uint32_t n) noexcept {
    const std::uint16_t flags = e.flags.load(std::memory_order_acquire); // acquire: a hint
    if (flags != ring_event_desc) {
        return flags == ring_event_enable;
    }
    const std::uint16_t ow = e.off_wrap.load(std::memory_order_acquire); // acquire: a hint
    // Positions moved, and the event offset brought onto the current lap's numbering: one
    // ring further back when it names the other lap (Linux virtqueue_kick_prepare_packed).
    const std::uint32_t moved = now.wrap == old.wrap ? now.index - old.index : now.index + n - old.index;
    auto event = static_cast<std::uint16_t>(ow & 0x7FFFu);
    if (((ow >> 15) != 0) != now.wrap) {
        event = static_cast<std::uint16_t>(event - n);
    }
    return need_event(event, now.index, static_cast<std::uint16_t>(now.index - moved));
}
} // namespace detail

// ---- driver side ----------------------------------------------------------------------------
/// The driver's side of one packed virtqueue. Private state: state_words(N) 16-bit words
/// (free buffer ids, descriptors per buffer id in flight, and the ids in flight as a list in
/// the order they were made available: the device may use buffers in any order and its used
/// descriptors overwrite the ring, so the driver keeps that order itself).
class packed_driver {
public:
    [[nodiscard]] static constexpr std::size_t state_words(std::uint32_t n) noexcept {
        return 4u * std::size_t{n};
    }

    /// Starts a fresh queue. `event_idx`: VIRTIO_F_EVENT_IDX negotiated; the driver's area
    /// then starts at DESC for position 0 of lap 1 (one interrupt for the first used buffer,
    /// as a split ring's used_event of 0) and enable_interrupts() moves it. `in_order`:
    /// VIRTIO_F_IN_ORDER (buffers are used in the order they were made available);
    /// `batches`: under it, take one used descriptor for a batch (poll_used()), as
    /// split_driver::reset().
    [[nodiscard]] bool reset(const packed_ring& r, std::span<std::uint16_t> state,
                             bool event_idx = false, bool in_order = false, bool batches = false) noexcept {
        if (!r.bound() || state.size() < state_words(r.size())) {
            r_ = {};
            return false;
        }
        r_ = r;
        const std::uint32_t n = r.size();
        free_ids_ = state.data();
        descs_ = free_ids_ + n;
        next_ = descs_ + n;
        prev_ = next_ + n;
        for (std::uint32_t i = 0; i < n; ++i) {
            free_ids_[i] = static_cast<std::uint16_t>(i);
            descs_[i] = 0;
            next_[i] = prev_[i] = nil;
            r.desc()[i] = pvirtq_desc{0, 0, 0, 0}; // flags 0: no descriptor available on lap 1
        }
        *r.driver_event() = event_idx ? pvirtq_event_suppress{detail::off_wrap(packed_cursor{}), ring_event_desc}
                                      : pvirtq_event_suppress{0, ring_event_enable};
        *r.device_event() = pvirtq_event_suppress{0, ring_event_enable};
        event_idx_ = event_idx;
        in_order_ = in_order;
        batches_ = in_order && batches;
        batch_left_ = 0;
        batch_len_ = 0;
        free_top_ = n;
        num_free_ = n;
        in_flight_ = 0;
        oldest_ = newest_ = nil;
        avail_ = published_ = used_ = packed_cursor{};
        st_ = {};
        return true;
    }

    /// The barriers around the ring (barriers.hpp), as split_driver::set_ordering().
    void set_ordering(ordering o) noexcept { bar_.set(o); }
    [[nodiscard]] ordering order() const noexcept { return bar_.get(); }

    [[nodiscard]] std::uint32_t size() const noexcept { return r_.size(); }
    [[nodiscard]] std::uint32_t free_descs() const noexcept { return num_free_; }
    [[nodiscard]] std::uint32_t in_flight() const noexcept { return in_flight_; }
    [[nodiscard]] const driver_stats& stats() const noexcept { return st_; }
    [[nodiscard]] const packed_ring& ring() const noexcept { return r_; }

    /// Writes `segs` as one buffer and makes it available (the first descriptor's flags last,
    /// release). Returns the buffer id, or -1 when the ring has too few free descriptors.
    [[nodiscard]] std::int32_t add(std::span<const segment> segs) noexcept {
        const auto k = static_cast<std::uint32_t>(segs.size());
        if (k == 0 || k > num_free_ || free_top_ == 0) {
            return -1;
        }
        const std::uint16_t id = free_ids_[--free_top_];
        const packed_cursor head = avail_;
        std::uint16_t head_flags = 0;
        for (std::uint32_t i = 0; i < k; ++i) {
            pvirtq_desc& d = r_.desc()[avail_.index];
            d.addr = segs[i].addr;
            d.len = segs[i].len;
            d.id = id;
            const auto f = static_cast<std::uint16_t>(
                (i + 1 < k ? desc_f_next : 0) | (segs[i].write ? desc_f_write : 0) |
                (avail_.wrap ? desc_f_avail : desc_f_used));
            if (i == 0) {
                head_flags = f;
            } else {
                d.flags = f;
            }
            avail_.advance(1, r_.size());
        }
        // release: the chain's bodies (and its later descriptors' flags) before the head's
        // flags; pairs with the device's acquire in pop().
        bar_.before_publish();
        r_.desc()[head.index].flags.store(head_flags, std::memory_order_release);
        descs_[id] = static_cast<std::uint16_t>(k);
        link_newest(id);
        num_free_ -= k;
        ++in_flight_;
        return id;
    }

    /// Whether to notify the device for what add() made available since the last call.
    [[nodiscard]] bool publish() noexcept {
        const packed_cursor old = published_;
        published_ = avail_;
        if (old.index == avail_.index && old.wrap == avail_.wrap) {
            return false;
        }
        bar_.store_load(); // the heads' flags before the load of the device's hint
        return detail::wants_event(*r_.device_event(), old, avail_, r_.size());
    }

    /// The next used buffer, checked. An unknown buffer id leaves the ring `broken` (how
    /// many descriptors to skip is then unknown); nothing is consumed. Without IN_ORDER
    /// buffers may come back in any order. With it (2.8's in-order use of descriptors), a used descriptor that names a
    /// later buffer than the oldest in flight is, with `batches`, a batch: the device wrote
    /// one descriptor, the last buffer's id, and skipped the positions of the whole batch;
    /// its buffers come back one per call, oldest first, the last with the descriptor's
    /// length and the others `whole` (2.8's in-order use: used completely, no length
    /// written). Without `batches` the older buffers were passed over: each is freed,
    /// handed to on_passed(id) and counted.
    template <class OnPassed>
    [[nodiscard]] used_status poll_used(used_chain& out, OnPassed&& on_passed) noexcept {
        if (batch_left_ != 0) { // the rest of a batch announced by one descriptor
            return next_of_batch(out);
        }
        pvirtq_desc& d = r_.desc()[used_.index];
        if (!detail::used_form(detail::load_flags(d), used_.wrap)) {
            return used_status::empty;
        }
        bar_.after_acquire();
        const pvirtq_desc e = d; // one snapshot, after the acquire
        const std::uint32_t id = e.id;
        if (id >= r_.size() || descs_[id] == 0) {
            ++st_.bad_used_id;
            return used_status::broken;
        }
        if (in_order_ && id != oldest_) {
            if (batches_) {
                std::uint32_t k = 1;
                for (std::uint16_t i = oldest_; i != id; i = next_[i]) {
                    used_.advance(descs_[i], r_.size());
                    ++k;
                }
                used_.advance(descs_[id], r_.size());
                batch_left_ = k;
                batch_len_ = e.len;
                ++st_.batches;
                return next_of_batch(out);
            }
            while (oldest_ != id) { // older buffers the device passed over
                const std::uint16_t old = oldest_;
                used_.advance(descs_[old], r_.size());
                release(old);
                ++st_.passed_over;
                on_passed(old);
            }
        }
        used_.advance(descs_[id], r_.size());
        release(static_cast<std::uint16_t>(id));
        out.id = static_cast<std::uint16_t>(id);
        out.len = e.len;
        out.whole = false;
        return used_status::ok;
    }
    [[nodiscard]] used_status poll_used(used_chain& out) noexcept {
        return poll_used(out, [](std::uint16_t) {});
    }

    /// Up to ids.size() used buffers, oldest first: poll_used() until `ids` is full or it
    /// stops (passed-over ones through on_passed). `got`: the ids written; the status is
    /// what stopped the call (ok: `ids` full).
    template <class OnPassed>
    [[nodiscard]] used_status poll_used_bulk(std::span<std::uint16_t> ids, std::uint32_t& got,
                                             OnPassed&& on_passed) noexcept {
        got = 0;
        while (got < ids.size()) {
            used_chain u;
            const used_status st = poll_used(u, on_passed);
            if (st != used_status::ok) {
                return st;
            }
            ids[got++] = u.id;
        }
        return used_status::ok;
    }

    [[nodiscard]] used_status poll_used_bulk(std::span<std::uint16_t> ids, std::uint32_t& got) noexcept {
        return poll_used_bulk(ids, got, [](std::uint16_t) {});
    }

    /// Used buffers the device has marked and the driver not yet taken (a snapshot; it
    /// stops at a descriptor poll_used() would refuse). Under IN_ORDER a descriptor counts
    /// the buffers up to the one it names (a batch's, or those it passed over).
    [[nodiscard]] std::uint32_t used_ready() const noexcept {
        packed_cursor at = used_;
        std::uint32_t k = batch_left_;
        // Under IN_ORDER: the oldest buffer no descriptor has accounted for yet.
        std::uint16_t next_old = oldest_;
        for (std::uint32_t i = 0; i < batch_left_; ++i) {
            next_old = next_[next_old];
        }
        while (k < in_flight_) {
            pvirtq_desc& d = r_.desc()[at.index];
            if (!detail::used_form(detail::load_flags(d), at.wrap)) {
                break;
            }
            bar_.after_acquire();
            const std::uint32_t id = d.id;
            if (id >= r_.size() || descs_[id] == 0) {
                break;
            }
            if (in_order_) {
                for (; next_old != nil && next_old != id; next_old = next_[next_old]) {
                    at.advance(descs_[next_old], r_.size());
                    ++k;
                }
                if (next_old == nil) {
                    break; // an id already accounted for: poll_used() refuses it
                }
                next_old = next_[next_old];
            }
            at.advance(descs_[id], r_.size());
            ++k;
        }
        return k;
    }

    /// Interrupt suppression: the driver's event area (the device reads it).
    void disable_interrupts() noexcept {
        // relaxed: a hint that publishes no data; a late interrupt is harmless
        r_.driver_event()->flags.store(ring_event_disable, std::memory_order_relaxed);
    }
    /// Asks for an interrupt: for every used buffer, or with EVENT_IDX for the one the
    /// device writes at the next used position (off_wrap there, flags DESC). True when a
    /// used buffer is already waiting (its interrupt may have been suppressed).
    [[nodiscard]] bool enable_interrupts() noexcept {
        pvirtq_event_suppress& e = *r_.driver_event();
        if (event_idx_) {
            // relaxed: a hint; the release below publishes it with the flags
            e.off_wrap.store(detail::off_wrap(used_), std::memory_order_relaxed);
        }
        // release: off_wrap before DESC (the device loads flags with acquire, then off_wrap);
        // the fence below orders both before the load of the next flags
        e.flags.store(event_idx_ ? ring_event_desc : ring_event_enable, std::memory_order_release);
        // store-load: the hint before the look at the next used descriptor
        bar_.store_load();
        const std::uint16_t f = detail::load_flags(r_.desc()[used_.index]);
        return detail::used_form(f, used_.wrap);
    }

    /// Every buffer id still in flight, oldest first: in the order add() made them
    /// available (detach: the device is stopped).
    template <class Fn>
    void drain_in_flight(Fn&& fn) noexcept {
        while (oldest_ != nil) {
            const std::uint16_t id = oldest_;
            release(id);
            fn(id);
        }
    }

private:
    static constexpr std::uint16_t nil = 0xFFFF; // no id (ids are below max_queue_size)

    // The oldest buffer of a batch whose positions poll_used() already skipped; the batch's
    // last takes the descriptor's length, the others are whole.
    used_status next_of_batch(used_chain& out) noexcept {
        const std::uint16_t id = oldest_;
        --batch_left_;
        release(id);
        out.id = id;
        out.whole = batch_left_ != 0;
        out.len = out.whole ? 0 : batch_len_;
        return used_status::ok;
    }
    void link_newest(std::uint16_t id) noexcept {
        prev_[id] = newest_;
        next_[id] = nil;
        (newest_ != nil ? next_[newest_] : oldest_) = id;
        newest_ = id;
    }
    // Buffer id back from the device: off the in-flight list, its descriptors and id free.
    void release(std::uint16_t id) noexcept {
        (prev_[id] != nil ? next_[prev_[id]] : oldest_) = next_[id];
        (next_[id] != nil ? prev_[next_[id]] : newest_) = prev_[id];
        num_free_ += descs_[id];
        descs_[id] = 0;
        free_ids_[free_top_++] = id;
        --in_flight_;
    }

    packed_ring r_{};
    std::uint16_t* free_ids_ = nullptr; // a stack of free buffer ids
    std::uint16_t* descs_ = nullptr;    // descriptors of each buffer id in flight; 0: not in flight
    std::uint16_t* next_ = nullptr;     // the in-flight list, oldest to newest: the id after
    std::uint16_t* prev_ = nullptr;     // and the id before each one
    std::uint16_t oldest_ = nil, newest_ = nil;
    std::uint32_t free_top_ = 0, num_free_ = 0, in_flight_ = 0;
    packed_cursor avail_{}, published_{}, used_{};
    bool event_idx_ = false, in_order_ = false, batches_ = false;
    std::uint32_t batch_left_ = 0, batch_len_ = 0; // the rest of a batch, and its descriptor's length
    driver_barriers bar_{};
    driver_stats st_{};
};

} // namespace npa::virtio
