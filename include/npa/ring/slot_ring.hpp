// npa/ring/slot_ring.hpp: the driver side's record of a descriptor ring, shared by every
// plugin: which buffer sits in which slot (buf_info), next_to_fill, next_to_clean and how
// many slots the device holds (in_flight); and the latch that stops trusting a device
// that wrote something impossible.
//
// A descriptor carries a device address, not a pointer the driver can use, so every
// driver keeps a shadow array beside each ring (Linux vmxnet3_int.h `buf_info`, ixy
// `virtual_addresses`). Slots [next_to_clean, next_to_fill) hold what the device owns,
// oldest first; the rest are free. Ring sizes need not be powers of two (vmxnet3 takes
// multiples of 32, Intel multiples of 8), so the cursors wrap by a compare, as
// gen_ring.hpp's ring_cursor does.
//
// What a plugin writes into the ring's descriptors is its own business: this type only
// keeps the books, moves buffers in from the shell's pool (refill: two runs at most, the
// run to the end of the ring and the rest from slot 0) and hands them back in ring order
// (give_back: the same two runs), and answers "does this completion name a slot the
// device holds, and how many older ones does it pass over?" (completion_skip), the check
// every plugin makes before it believes a completion.
#pragma once

#include <npa/stats.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <type_traits>

namespace npa {

/// The books of one descriptor ring. `Slot` is what a slot remembers: a buffer handle
/// for rings with one descriptor per buffer, or a plugin's own record where a packet
/// spans several descriptors (igbvf: a context descriptor, then the buffer).
///
/// Semantic requirements (not checked by the compiler): one thread (the queue's) uses
/// it; reset() and release() are control-path calls (reset allocates), everything else
/// is data path and never allocates.
template <class Slot>
class slot_ring {
public:
    using slot_type = Slot;
    /// completion_skip's answer for a completion that names no slot the device holds.
    static constexpr std::uint32_t not_filled = ~std::uint32_t{0};

    slot_ring() noexcept = default;
    slot_ring(slot_ring&&) noexcept = default;
    slot_ring& operator=(slot_ring&&) noexcept = default;
    slot_ring(const slot_ring&) = delete;
    slot_ring& operator=(const slot_ring&) = delete;
    ~slot_ring() = default;

    /// `size` empty slots, both cursors at slot 0. False (and no slots) if the memory
    /// cannot be had.
    [[nodiscard]] bool reset(std::uint32_t size) noexcept {
        buf_info_.reset(size != 0 ? new (std::nothrow) Slot[size]() : nullptr);
        size_ = buf_info_ ? size : 0;
        next_to_fill_ = next_to_clean_ = filled_ = cleaned_ = 0;
        return buf_info_ != nullptr;
    }
    /// Frees the slots. What they held must have been handed back first.
    void release() noexcept {
        buf_info_.reset();
        size_ = next_to_fill_ = next_to_clean_ = filled_ = cleaned_ = 0;
    }

    [[nodiscard]] explicit operator bool() const noexcept { return buf_info_ != nullptr; }
    [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint32_t next_to_fill() const noexcept { return next_to_fill_; }
    [[nodiscard]] std::uint32_t next_to_clean() const noexcept { return next_to_clean_; }
    /// Slots the device holds: [next_to_clean, next_to_fill).
    [[nodiscard]] std::uint32_t in_flight() const noexcept { return filled_ - cleaned_; }
    /// Slots not held by the device. A ring whose head == tail means "empty" (Intel,
    /// vmxnet3's RX with updateRxProd) hands over one fewer: the plugin says so.
    [[nodiscard]] std::uint32_t free_slots() const noexcept { return size_ - in_flight(); }
    /// Slots ever filled since reset, free-running (wraps at 2^32): the count a doorbell
    /// or a descriptor tag carries (virtio's avail->idx, the simnic's tags). The slot
    /// filled as number n is n mod size.
    [[nodiscard]] std::uint32_t filled_count() const noexcept { return filled_; }
    /// Slots ever cleaned since reset, free-running: the number of the slot at
    /// next_to_clean.
    [[nodiscard]] std::uint32_t cleaned_count() const noexcept { return cleaned_; }

    [[nodiscard]] Slot& operator[](std::uint32_t slot) noexcept { return buf_info_[slot]; }
    [[nodiscard]] const Slot& operator[](std::uint32_t slot) const noexcept {
        return buf_info_[slot];
    }
    /// The slot after `slot`.
    [[nodiscard]] std::uint32_t next(std::uint32_t slot) const noexcept {
        return slot + 1 == size_ ? 0 : slot + 1;
    }
    /// Slots from `from` forward to `to` (0 .. size - 1); both must be slots of the ring.
    [[nodiscard]] std::uint32_t distance(std::uint32_t from, std::uint32_t to) const noexcept {
        return to >= from ? to - from : to + size_ - from;
    }

    // ---- filling ------------------------------------------------------------------------
    /// Takes the slot at next_to_fill for the device and returns it (a descriptor that
    /// carries no buffer of its own, such as a context descriptor, or one whose record the
    /// caller writes through operator[]).
    std::uint32_t fill() noexcept {
        const std::uint32_t slot = next_to_fill_;
        next_to_fill_ = next(slot);
        ++filled_;
        return slot;
    }
    /// Records `s` in the slot at next_to_fill and takes it for the device; returns the slot.
    std::uint32_t fill(const Slot& s) noexcept {
        buf_info_[next_to_fill_] = s;
        return fill();
    }

    /// Moves up to `want` buffers from the shell into the free slots from next_to_fill on,
    /// and posts each: `alloc(std::span<Slot>)` fills a span and returns how many it
    /// filled; it is called for the run up to the end of the ring and, if that came in
    /// full, once more for the rest from slot 0. Then `post(slot, buffer)` is called for
    /// each buffer in ring order, at the slot it will occupy; it writes the descriptor. A
    /// `post` that returns false refuses that buffer (it has handed it back itself) and
    /// the next one takes the slot. Returns how many were posted; want - posted is what
    /// the pool could not give or the plugin refused. The caller has made sure `want`
    /// slots are free.
    template <class Alloc, class Post>
    std::uint32_t refill(std::uint32_t want, Alloc&& alloc, Post&& post) noexcept {
        const std::uint32_t first = next_to_fill_;
        const std::uint32_t run = want < size_ - first ? want : size_ - first;
        std::uint32_t got = run != 0 ? alloc(std::span<Slot>(buf_info_.get() + first, run)) : 0;
        if (got == run && want > run) {
            got += alloc(std::span<Slot>(buf_info_.get(), want - run));
        }
        if constexpr (std::is_void_v<decltype(post(next_to_fill_, buf_info_[0]))>) {
            for (std::uint32_t i = 0; i < got; ++i) {
                post(next_to_fill_, buf_info_[next_to_fill_]);
                (void)fill();
            }
            return got;
        } else {
            // A refused buffer leaves a hole: the later ones move down to close it.
            std::uint32_t from = first;
            std::uint32_t posted = 0;
            for (std::uint32_t i = 0; i < got; ++i) {
                const Slot s = buf_info_[from];
                from = next(from);
                if (post(next_to_fill_, s)) {
                    (void)fill(s);
                    ++posted;
                }
            }
            return posted;
        }
    }

    // ---- cleaning -----------------------------------------------------------------------
    /// How many slots the device holds that come before `slot` (0: it is the oldest), or
    /// not_filled if `slot` is outside the ring or not one the device holds: a completion
    /// naming it is stale, duplicated or invented. A skip above 0 means the device passed
    /// over older slots without a completion of their own.
    [[nodiscard]] std::uint32_t completion_skip(std::uint32_t slot) const noexcept {
        if (slot >= size_) {
            return not_filled;
        }
        const std::uint32_t skip = distance(next_to_clean_, slot);
        return skip < in_flight() ? skip : not_filled;
    }
    /// The same for a ring whose descriptors carry their fill number as a tag (echoed in
    /// the completion): the tag must be that of the slot's current filling, or the
    /// completion is a stale one from an earlier lap.
    [[nodiscard]] std::uint32_t completion_skip(std::uint32_t slot,
                                                std::uint32_t tag) const noexcept {
        const std::uint32_t skip = completion_skip(slot);
        return skip != not_filled && tag == cleaned_ + skip ? skip : not_filled;
    }

    /// The record at next_to_clean (the oldest the device holds). in_flight() != 0.
    [[nodiscard]] const Slot& oldest() const noexcept { return buf_info_[next_to_clean_]; }
    /// Takes the oldest slot back from the device and returns its record. in_flight() != 0.
    Slot take() noexcept {
        const Slot s = buf_info_[next_to_clean_];
        clean(1);
        return s;
    }
    /// Takes the `n` oldest slots back from the device, records left as they are.
    void clean(std::uint32_t n) noexcept {
        next_to_clean_ += n;
        next_to_clean_ -= next_to_clean_ >= size_ ? size_ : 0;
        cleaned_ += n;
    }
    /// Takes the `n` oldest slots back from the device and hands their records on to
    /// `fn(std::span<const Slot>)`, in ring order: two calls at most.
    template <class Fn>
    void give_back(std::uint32_t n, Fn&& fn) noexcept {
        const std::uint32_t first = next_to_clean_;
        const std::uint32_t run = n < size_ - first ? n : size_ - first;
        if (run != 0) {
            fn(std::span<const Slot>(buf_info_.get() + first, run));
        }
        if (n > run) {
            fn(std::span<const Slot>(buf_info_.get(), n - run));
        }
        clean(n);
    }

private:
    std::unique_ptr<Slot[]> buf_info_;
    std::uint32_t size_ = 0;
    std::uint32_t next_to_fill_ = 0;
    std::uint32_t next_to_clean_ = 0;
    std::uint32_t filled_ = 0;  // free-running: in_flight = filled_ - cleaned_
    std::uint32_t cleaned_ = 0;
};

/// "The device lied: stop trusting it." A plugin that reads something impossible from
/// device memory (a completion for a slot it never filled, a length past the buffer, a
/// generation bit out of order) counts it in the queue's bad_completion and trips this
/// latch; health() then reports device_error until detach, so the shell switches to
/// another path instead of driving a device that may write anywhere. One per plugin
/// instance: the data path trips it, the control thread reads it (relaxed: a lone flag
/// that publishes no other data).
class trust_latch {
public:
    /// Counts `n` violations (none: nothing happens) and, if there were any, trips the latch.
    void distrust(queue_stats& st, std::uint64_t n = 1) noexcept {
        if (n != 0) {
            st.bad_completion += n;
            // relaxed: a lone flag; health() acts on it alone, nothing is read through it
            tripped_.store(true, std::memory_order_relaxed);
        }
    }
    /// True once anything was distrusted since the last reset().
    [[nodiscard]] bool distrusted() const noexcept {
        return tripped_.load(std::memory_order_relaxed); // relaxed: as in distrust()
    }
    /// A fresh device (attach) or none (detach): trusted again.
    /// Relaxed: attach and detach run on the control thread, and the epochs that start and
    /// stop the queues order them against the data path's distrust().
    void reset() noexcept { tripped_.store(false, std::memory_order_relaxed); }

private:
    std::atomic<bool> tripped_{false};
};

} // namespace npa
