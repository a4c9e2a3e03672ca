// npa/virtio/split_ring.hpp: the split virtqueue of virtio 1.x (OASIS virtio v1.2,
// section 2.7): its layouts and the driver's side; the device's side is split_device.hpp.
//
// A split virtqueue is three areas of memory the driver allocates:
//   descriptor table  N x {le64 addr, le32 len, le16 flags, le16 next}, 16-byte aligned;
//   available ring    {le16 flags, le16 idx, le16 ring[N], le16 used_event}, 2-byte aligned,
//                     written by the driver: the heads of the chains it hands over;
//   used ring         {le16 flags, le16 idx, {le32 id, le32 len}[N], le16 avail_event},
//                     4-byte aligned, written by the device: the chains it is done with.
// N is a power of two up to 32768 (2.7.1). avail->idx and used->idx run free over 16 bits;
// entry i lives at i mod N. Every field is little-endian (npa::le16/le32/le64).
//
// split_driver is the driver's side (a plugin): add chains, publish them, decide whether to
// notify, take used entries, suppress interrupts. split_device (split_device.hpp) is the
// device's side (a device model, a vhost-user or host back end): take available chains,
// walk them, push used entries, decide whether to interrupt, suppress notifications. Both keep their own
// state in memory the other side cannot reach; the rings are only read through snapshots.
//
// Memory order (docs/design.md "Memory order"): a side writes its entries first and its
// idx last with a release store; the other side loads idx with acquire before it reads
// entries. The notification decisions (need_notify(), need_interrupt(), enable_interrupts())
// are a store followed by a load of the other side's field, so a full fence sits between
// them, as Linux's virtio_mb() does (2.7.10, 2.7.7.2). With VIRTIO_F_ORDER_PLATFORM the
// driver adds the platform's DMA barriers (set_ordering(), barriers.hpp).
//
// Trust: the driver checks every used entry (idx no further than N ahead, id a head it
// handed over and has not had back, in ring order when IN_ORDER was negotiated; under
// IN_ORDER one entry may stand for a batch, virtio 1.2 2.7.9: it names the batch's last
// chain and used->idx moves by the batch's size, so an entry that names a later chain is
// a batch only when the index moved that far, and a violation otherwise); the
// device checks every chain (idx no further than N ahead, every index below N, no loop,
// no more segments than it can take, no length overflow, no readable segment after a
// writable one, every address through the caller's check; an indirect table only when
// VIRTIO_F_INDIRECT_DESC was negotiated, alone in its chain, of 1..N whole entries, at an
// address the caller's table reader maps, with the same checks of its entries, no
// INDIRECT among them, every next below the table's entry count and no loop). A
// violation is counted and returned; nothing the other side wrote is followed before it
// is checked.
//
// What the packed layout shares with this one (descriptor flags, need_event, segments,
// used and chain results, the per-descriptor checks) is in virtqueue.hpp.
//
// Freestanding: no exceptions, no allocation (the caller provides each side's private
// state), standard headers only.
#pragma once

#include <npa/endian.hpp>
#include <npa/virtio/barriers.hpp>
#include <npa/virtio/virtqueue.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::virtio {

// ---- layouts (2.7.5, 2.7.6, 2.7.8) ---------------------------------------------------------
/// VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY.
inline constexpr std::uint16_t avail_f_no_interrupt = 1;
inline constexpr std::uint16_t used_f_no_notify = 1;
struct virtq_desc {
    le64 addr;
    le32 len;
    le16 flags;
    le16 next;
};
static_assert(sizeof(virtq_desc) == 16 && alignof(virtq_desc) == 8);
static_assert(offsetof(virtq_desc, addr) == 0 && offsetof(virtq_desc, len) == 8 &&
              offsetof(virtq_desc, flags) == 12 && offsetof(virtq_desc, next) == 14);

/// The fixed head of the available ring; ring[N] and used_event follow it.
struct virtq_avail {
    le16 flags;
    le16 idx;
};
static_assert(sizeof(virtq_avail) == 4 && alignof(virtq_avail) == 2);

struct virtq_used_elem {
    le32 id;  ///< head of the chain (32 bits for padding reasons, 2.7.8)
    le32 len; ///< bytes the device wrote into the chain's writable buffers
};
static_assert(sizeof(virtq_used_elem) == 8 && alignof(virtq_used_elem) == 4);

/// The fixed head of the used ring; ring[N] and avail_event follow it.
struct virtq_used {
    le16 flags;
    le16 idx;
};
static_assert(sizeof(virtq_used) == 4);

/// Alignments the specification requires of each area (2.7, table "Virtqueue Part
/// Alignment").
inline constexpr std::size_t desc_align = 16, avail_align = 2, used_align = 4;

/// Bytes of each area for a queue of n entries (2.7: 16*n, 6 + 2*n, 6 + 8*n).
[[nodiscard]] constexpr std::size_t desc_bytes(std::uint32_t n) noexcept { return 16u * std::size_t{n}; }
[[nodiscard]] constexpr std::size_t avail_bytes(std::uint32_t n) noexcept { return 6u + 2u * std::size_t{n}; }
[[nodiscard]] constexpr std::size_t used_bytes(std::uint32_t n) noexcept { return 6u + 8u * std::size_t{n}; }
static_assert(avail_bytes(256) == 518 && used_bytes(256) == 2054 && desc_bytes(256) == 4096);

/// The three areas laid out one after another in one block, each aligned as required:
/// descriptors at 0, the available ring right after them, the used ring at the next
/// multiple of 4. `total` is what the block needs.
struct split_layout {
    std::size_t desc = 0, avail = 0, used = 0, total = 0;
};
[[nodiscard]] constexpr split_layout layout_of(std::uint32_t n) noexcept {
    split_layout l;
    l.avail = desc_bytes(n);
    l.used = (l.avail + avail_bytes(n) + used_align - 1) / used_align * used_align;
    l.total = l.used + used_bytes(n);
    return l;
}
static_assert(layout_of(256).used == 4096 + 520 && layout_of(256).total == 4616 + 2054);

[[nodiscard]] constexpr bool queue_size_ok(std::uint32_t n) noexcept {
    return n != 0 && n <= max_queue_size && (n & (n - 1)) == 0;
}

/// A view of one split ring's three areas (the memory is the driver's, shared with the
/// device). Both sides build one from the addresses they agreed on.
class split_ring {
public:
    split_ring() noexcept = default;
    /// nullptr areas, a size that is not a power of two up to 32768 or a misaligned area
    /// give an unbound ring (bound() false).
    split_ring(void* desc, void* avail, void* used, std::uint32_t n) noexcept {
        const auto a = [](void* p, std::size_t al) {
            return p != nullptr && reinterpret_cast<std::uintptr_t>(p) % al == 0;
        };
        if (!queue_size_ok(n) || !a(desc, desc_align) || !a(avail, avail_align) ||
            !a(used, used_align)) {
            return;
        }
        desc_ = static_cast<virtq_desc*>(desc);
        avail_ = static_cast<virtq_avail*>(avail);
        used_ = static_cast<virtq_used*>(used);
        n_ = n;
    }
    /// The three areas in one block laid out by layout_of(n).
    [[nodiscard]] static split_ring in_block(void* block, std::uint32_t n) noexcept {
        auto* b = static_cast<std::byte*>(block);
        const split_layout l = layout_of(n);
        return b == nullptr ? split_ring{} : split_ring(b, b + l.avail, b + l.used, n);
    }

    [[nodiscard]] bool bound() const noexcept { return n_ != 0; }
    [[nodiscard]] std::uint32_t size() const noexcept { return n_; }
    [[nodiscard]] virtq_desc* desc() const noexcept { return desc_; }
    [[nodiscard]] virtq_avail* avail() const noexcept { return avail_; }
    [[nodiscard]] virtq_used* used() const noexcept { return used_; }
    [[nodiscard]] le16& avail_ring(std::uint32_t i) const noexcept {
        return reinterpret_cast<le16*>(avail_ + 1)[i & (n_ - 1)];
    }
    [[nodiscard]] le16& used_event() const noexcept { return reinterpret_cast<le16*>(avail_ + 1)[n_]; }
    [[nodiscard]] virtq_used_elem& used_ring(std::uint32_t i) const noexcept {
        return reinterpret_cast<virtq_used_elem*>(used_ + 1)[i & (n_ - 1)];
    }
    [[nodiscard]] le16& avail_event() const noexcept {
        return *reinterpret_cast<le16*>(reinterpret_cast<virtq_used_elem*>(used_ + 1) + n_);
    }

private:
    virtq_desc* desc_ = nullptr;
    virtq_avail* avail_ = nullptr;
    virtq_used* used_ = nullptr;
    std::uint32_t n_ = 0;
};

// ---- driver side ----------------------------------------------------------------------------
/// The driver's side of one split virtqueue. Its private state (free list, chains, the
/// order chains were made available in) lives in `state`, state_words(N) 16-bit words the
/// caller provides and the device never sees: the descriptor table is not read back.
///
/// Semantic requirements (not checked by the compiler): one thread per queue; reset() is
/// a control-path call, the rest is data path (no allocation, no blocking).
class split_driver {
public:
    [[nodiscard]] static constexpr std::size_t state_words(std::uint32_t n) noexcept {
        return 4u * std::size_t{n};
    }

    /// Starts a fresh queue: rings zeroed, every descriptor free. `event_idx`: the driver
    /// and device negotiated VIRTIO_F_EVENT_IDX. `in_order`: VIRTIO_F_IN_ORDER (used
    /// entries must come in the order chains were made available). `batches`: under
    /// IN_ORDER, take one entry for a batch (2.7.9, poll_used()): the chains before the
    /// one it names come back `whole` (used completely: a receiveq's buffer holds all the
    /// bytes posted). Without it every chain passed over goes to on_passed(). False if the
    /// ring is unbound or the state too small.
    [[nodiscard]] bool reset(const split_ring& r, std::span<std::uint16_t> state, bool event_idx,
                             bool in_order = false, bool batches = false) noexcept {
        if (!r.bound() || state.size() < state_words(r.size())) {
            r_ = {};
            return false;
        }
        r_ = r;
        const std::uint32_t n = r.size();
        next_ = state.data();
        chain_len_ = next_ + n;
        free_fifo_ = chain_len_ + n;
        order_ = free_fifo_ + n;
        for (std::uint32_t i = 0; i < n; ++i) {
            free_fifo_[i] = static_cast<std::uint16_t>(i);
            chain_len_[i] = 0;
            next_[i] = 0;
        }
        free_head_ = 0;
        free_count_ = n;
        order_head_ = order_tail_ = 0;
        avail_idx_ = published_ = last_used_ = 0;
        batch_left_ = 0;
        batch_len_ = 0;
        event_idx_ = event_idx;
        in_order_ = in_order;
        batches_ = in_order && batches;
        st_ = {};
        std::byte* a = reinterpret_cast<std::byte*>(r.avail());
        for (std::size_t i = 0; i < avail_bytes(n); ++i) {
            a[i] = std::byte{0};
        }
        std::byte* u = reinterpret_cast<std::byte*>(r.used());
        for (std::size_t i = 0; i < used_bytes(n); ++i) {
            u[i] = std::byte{0};
        }
        return true;
    }

    /// The barriers around the rings (barriers.hpp): `platform` once VIRTIO_F_ORDER_PLATFORM
    /// was negotiated. Kept across reset(); a fresh driver starts with `smp`.
    void set_ordering(ordering o) noexcept { bar_.set(o); }
    [[nodiscard]] ordering order() const noexcept { return bar_.get(); }

    [[nodiscard]] const split_ring& ring() const noexcept { return r_; }
    [[nodiscard]] std::uint32_t size() const noexcept { return r_.size(); }
    [[nodiscard]] std::uint32_t free_descs() const noexcept { return free_count_; }
    /// Chains the device holds (added and not yet back).
    [[nodiscard]] std::uint32_t in_flight() const noexcept {
        return static_cast<std::uint16_t>(order_tail_ - order_head_);
    }
    [[nodiscard]] const driver_stats& stats() const noexcept { return st_; }
    /// Used entries the device has published and the driver not yet taken (a snapshot,
    /// unchecked: poll_used() checks each entry; more than N is an index it refuses).
    [[nodiscard]] std::uint32_t used_ready() const noexcept {
        // acquire: as poll_used() would read the entries behind it
        return static_cast<std::uint16_t>(r_.used()->idx.load(std::memory_order_acquire) - last_used_) +
               std::uint32_t{batch_left_};
    }

    /// Writes `segs` as one chain (readable segments before writable ones, as 2.7.4.2
    /// asks) and puts its head on the available ring, not yet published. Returns the head,
    /// or -1 when fewer than segs.size() descriptors are free (nothing written).
    [[nodiscard]] std::int32_t add(std::span<const segment> segs) noexcept {
        const auto k = static_cast<std::uint32_t>(segs.size());
        if (k == 0 || k > free_count_) {
            return -1;
        }
        const std::uint32_t mask = r_.size() - 1;
        const std::uint16_t head = free_fifo_[free_head_ & mask];
        if (k == 1) { // a frame in one buffer (virtio-net's TX and RX): no links to write
            virtq_desc& d = r_.desc()[head];
            d.addr = segs[0].addr;
            d.len = segs[0].len;
            d.flags = segs[0].write ? desc_f_write : std::uint16_t{0};
            d.next = 0;
            return make_available(head, 1);
        }
        std::uint16_t id = head;
        for (std::uint32_t i = 0; i < k; ++i) {
            const std::uint16_t next = i + 1 < k ? free_fifo_[(free_head_ + i + 1) & mask] : 0;
            virtq_desc& d = r_.desc()[id];
            d.addr = segs[i].addr;
            d.len = segs[i].len;
            d.flags = static_cast<std::uint16_t>((i + 1 < k ? desc_f_next : 0) |
                                                 (segs[i].write ? desc_f_write : 0));
            d.next = next;
            next_[id] = next;
            id = next;
        }
        return make_available(head, k);
    }

    /// Publishes what add() wrote (release store of avail->idx) and says whether the device
    /// must be notified: with EVENT_IDX when avail->idx passed the device's avail_event,
    /// otherwise unless the device set VIRTQ_USED_F_NO_NOTIFY (2.7.10, 2.7.7.2).
    [[nodiscard]] bool publish() noexcept {
        const std::uint16_t old = published_;
        if (old == avail_idx_) {
            return false;
        }
        // release: the descriptors and ring entries before the index; pairs with the
        // device's acquire in avail_pending().
        bar_.before_publish();
        r_.avail()->idx.store(avail_idx_, std::memory_order_release);
        published_ = avail_idx_;
        // store-load: the idx store before the load of the device's suppression field
        // (Linux virtio_mb before vring_need_event).
        bar_.store_load();
        if (event_idx_) {
            // acquire: the device's avail_event, a hint that publishes no data; acquire keeps
            // the load after the fence on every architecture's mapping
            return need_event(r_.avail_event().load(std::memory_order_acquire), avail_idx_, old);
        }
        // acquire: as above, for used->flags
        return (r_.used()->flags.load(std::memory_order_acquire) & used_f_no_notify) == 0;
    }

    /// The next used entry, checked. With IN_ORDER and batches an entry that names a later
    /// chain than the oldest is a batch when used->idx moved past it by the chains up to that one:
    /// they come back one per call, oldest first, the last with the entry's length and the
    /// others `whole` with length 0 (2.7.9: the buffers no entry was written for were used
    /// completely; Linux's in-order driver gives each the whole length it posted, which the
    /// caller knows).
    /// Otherwise it passes over the older ones: each is freed and handed to
    /// on_passed(head) (the caller decides what that means for its buffers) and counted.
    template <class OnPassed>
    [[nodiscard]] used_status poll_used(used_chain& out, OnPassed&& on_passed) noexcept {
        if (batch_left_ != 0) { // the rest of a batch the device announced with one entry
            return next_of_batch(out);
        }
        // acquire: the entries before the index; pairs with the device's release in
        // publish_used().
        const std::uint16_t idx = r_.used()->idx.load(std::memory_order_acquire);
        const auto ahead = static_cast<std::uint16_t>(idx - last_used_);
        if (ahead == 0) {
            return used_status::empty;
        }
        if (ahead > r_.size()) {
            // More than N entries ahead: the device wrote an index it cannot have; nothing
            // behind it can be trusted.
            ++st_.bad_used_idx;
            return used_status::broken;
        }
        bar_.after_acquire();
        const virtq_used_elem e = r_.used_ring(last_used_); // one snapshot
        ++last_used_;
        const std::uint32_t id = e.id, len = e.len;
        if (id >= r_.size() || chain_len_[id] == 0) {
            ++st_.bad_used_id;
            return used_status::bad_id;
        }
        if (in_order_) {
            const std::uint32_t mask = r_.size() - 1;
            std::uint16_t pos = order_head_;
            while (pos != order_tail_ && order_[pos & mask] != id) {
                ++pos;
            }
            const auto older = static_cast<std::uint16_t>(pos - order_head_);
            if (batches_ && older != 0 && older < ahead) { // a batch of older + 1 chains (2.7.9)
                last_used_ = static_cast<std::uint16_t>(last_used_ + older);
                batch_left_ = static_cast<std::uint16_t>(older + 1);
                batch_len_ = len;
                ++st_.batches;
                return next_of_batch(out);
            }
            while (order_head_ != pos) { // older chains the device passed over
                const std::uint16_t old = order_[order_head_ & mask];
                ++order_head_;
                free_chain(old);
                ++st_.passed_over;
                on_passed(old);
            }
        }
        take_from_order(static_cast<std::uint16_t>(id));
        free_chain(static_cast<std::uint16_t>(id));
        out.id = static_cast<std::uint16_t>(id);
        out.len = len;
        out.whole = false;
        return used_status::ok;
    }
    [[nodiscard]] used_status poll_used(used_chain& out) noexcept {
        return poll_used(out, [](std::uint16_t) {});
    }

    /// Up to heads.size() used chains in one call, for a queue whose used lengths do not
    /// matter (a transmitq): used->idx is read once for the lot, and an entry that names
    /// the oldest chain the device holds (every entry, when the device keeps to the
    /// order: IN_ORDER's case and the usual one without it) is taken in a few
    /// instructions: being that head is every check poll_used() makes of it. Any other entry,
    /// or the rest of a batch, goes through poll_used() and its checks, alone: the chains
    /// taken before it are returned first, so every chain comes back in the order
    /// poll_used() alone would give (passed-over ones through on_passed). `got`: the
    /// heads written, oldest first; the status is what stopped the call (ok: `heads` is
    /// full, or an entry for poll_used() is next; call again).
    template <class OnPassed>
    [[nodiscard]] used_status poll_used_bulk(std::span<std::uint16_t> heads, std::uint32_t& got,
                                             OnPassed&& on_passed) noexcept {
        got = 0;
        if (batch_left_ == 0) {
            // acquire: the entries before the index; pairs with the device's release in
            // publish_used().
            const std::uint16_t idx = r_.used()->idx.load(std::memory_order_acquire);
            const auto ahead = static_cast<std::uint16_t>(idx - last_used_);
            if (ahead > r_.size()) {
                ++st_.bad_used_idx; // as poll_used(): nothing behind it can be trusted
                return used_status::broken;
            }
            bar_.after_acquire();
            const std::uint32_t mask = r_.size() - 1;
            const std::uint32_t k = ahead < heads.size() ? ahead : static_cast<std::uint32_t>(heads.size());
            while (got < k && order_head_ != order_tail_) {
                const std::uint16_t oldest = order_[order_head_ & mask];
                if (std::uint32_t{r_.used_ring(last_used_).id} != oldest) {
                    break;
                }
                ++last_used_;
                ++order_head_;
                free_chain(oldest);
                heads[got++] = oldest;
            }
            if (got != 0 || ahead == 0) {
                return got != 0 ? used_status::ok : used_status::empty;
            }
        }
        if (heads.empty()) {
            return used_status::ok;
        }
        used_chain u;
        const used_status st = poll_used(u, on_passed);
        if (st == used_status::ok) {
            heads[got++] = u.id;
        }
        return st;
    }

    /// Asks the device not to interrupt (VIRTQ_AVAIL_F_NO_INTERRUPT; with EVENT_IDX the
    /// flag is only a hint, 2.7.7.2, and used_event is left behind).
    void disable_interrupts() noexcept {
        // relaxed: a hint to the device that publishes no data; a late interrupt is harmless
        r_.avail()->flags.store(avail_f_no_interrupt, std::memory_order_relaxed);
    }
    /// Chains of a batch entry not yet handed out by poll_used() (they come first).
    [[nodiscard]] std::uint32_t batch_pending() const noexcept { return batch_left_; }

    /// Asks for an interrupt at the next used entry; true when entries are already waiting
    /// (the caller polls again rather than waits: the interrupt for them may have been
    /// suppressed).
    [[nodiscard]] bool enable_interrupts() noexcept {
        // relaxed: hints to the device; the fence below orders them before the idx load
        r_.avail()->flags.store(0, std::memory_order_relaxed);
        if (event_idx_) {
            r_.used_event().store(last_used_, std::memory_order_relaxed); // relaxed: as above
        }
        // store-load: the hint before the load of used->idx (2.7.7.2, Linux
        // virtqueue_enable_cb's virtio_mb)
        bar_.store_load();
        return batch_left_ != 0 ||
               r_.used()->idx.load(std::memory_order_acquire) != last_used_; // acquire: entries
    }

    /// Every chain the device still holds, oldest first (detach: the device is stopped).
    /// A batch entry's chains not handed out yet count as in flight here: poll until
    /// empty first to have them back as used.
    template <class Fn>
    void drain_in_flight(Fn&& fn) noexcept {
        batch_left_ = 0;
        const std::uint32_t mask = r_.size() - 1;
        while (order_head_ != order_tail_) {
            const std::uint16_t head = order_[order_head_ & mask];
            ++order_head_;
            if (chain_len_[head] != 0) {
                free_chain(head);
                fn(head);
            }
        }
    }

private:
    // The chain of k descriptors at `head` (written) leaves the free list and goes on the
    // available ring, not yet published.
    std::int32_t make_available(std::uint16_t head, std::uint32_t k) noexcept {
        free_head_ += k;
        free_count_ -= k;
        chain_len_[head] = static_cast<std::uint16_t>(k);
        order_[order_tail_ & (r_.size() - 1)] = head;
        ++order_tail_;
        r_.avail_ring(avail_idx_) = head;
        ++avail_idx_;
        return head;
    }
    // The oldest chain of the batch in progress; the batch's last takes the entry's length,
    // the others are whole.
    used_status next_of_batch(used_chain& out) noexcept {
        const std::uint16_t head = order_[order_head_ & (r_.size() - 1)];
        ++order_head_;
        --batch_left_;
        out.id = head;
        out.whole = batch_left_ != 0;
        out.len = out.whole ? 0 : batch_len_;
        free_chain(head);
        return used_status::ok;
    }
    void free_chain(std::uint16_t head) noexcept {
        const std::uint32_t mask = r_.size() - 1;
        std::uint16_t id = head;
        const std::uint16_t k = chain_len_[head];
        chain_len_[head] = 0;
        if (k == 1) { // no links to follow
            free_fifo_[(free_head_ + free_count_) & mask] = id;
            ++free_count_;
            return;
        }
        // The chain is walked in the driver's own copy (next_), never in the table the
        // device could have rewritten.
        for (std::uint16_t i = 0; i < k; ++i) {
            free_fifo_[(free_head_ + free_count_) & mask] = id;
            ++free_count_;
            id = next_[id];
        }
    }
    // Removes `id` from the order list (without IN_ORDER it may sit anywhere in it).
    void take_from_order(std::uint16_t id) noexcept {
        const std::uint32_t mask = r_.size() - 1;
        if (order_[order_head_ & mask] == id) {
            ++order_head_;
            return;
        }
        std::uint16_t pos = order_head_;
        while (order_[pos & mask] != id) {
            ++pos;
        }
        for (; static_cast<std::uint16_t>(pos + 1) != order_tail_; ++pos) {
            order_[pos & mask] = order_[(pos + 1) & mask];
        }
        --order_tail_;
    }

    split_ring r_{};
    std::uint16_t* next_ = nullptr;      // chain links, the driver's copy
    std::uint16_t* chain_len_ = nullptr; // descriptors in the chain at this head; 0: not a live head
    std::uint16_t* free_fifo_ = nullptr; // free descriptors, oldest freed first (ring order under IN_ORDER)
    std::uint16_t* order_ = nullptr;     // live heads in the order they were made available
    std::uint32_t free_head_ = 0, free_count_ = 0;
    std::uint16_t order_head_ = 0, order_tail_ = 0;
    std::uint16_t avail_idx_ = 0, published_ = 0, last_used_ = 0;
    std::uint16_t batch_left_ = 0; // chains of the current batch entry not yet handed out
    std::uint32_t batch_len_ = 0;  // the batch entry's length (its last chain's)
    bool event_idx_ = false, in_order_ = false, batches_ = false;
    driver_barriers bar_{};
    driver_stats st_{};
};

} // namespace npa::virtio
