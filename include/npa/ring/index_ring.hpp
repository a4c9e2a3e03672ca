// npa/ring/index_ring.hpp: a single-producer single-consumer ring of trivially
// copyable elements (buffer handles, descriptors).
//
// Layout (STYLE.md point 12, "memory layout is interface"):
//
//   line 0  producer: head (published), next (private: where the next element goes, less
//           what staged counts; ahead of head only while elements wait to be published),
//           cached_tail (private copy of the consumer's tail)
//   line 1  consumer: tail (published), cached_head (private copy of the producer's head)
//   line 2  producer: staged (private: elements stage_burst() wrote past next; 0 except
//           between stage_burst() and the next call that produces)
//   line 3+ slots[Capacity]
//
// Indices are free-running 32-bit counters masked on access, so "used = head - tail"
// holds across the 2^32 wrap and the ring never wastes a slot to tell full from empty.
// Each side reads the other side's published index only when its cached copy says the
// ring is full (producer) or empty (consumer); a burst costs one release store.
// stage_burst() writes elements without that store and flush() publishes all staged ones
// at once. A producer that can let the consumer see elements a batch later (a driver that
// flushes at the end of its poll pass) publishes once per batch: each publication is a
// store to the line a waiting consumer polls, and across cores that store holds up the
// producer's next ones (docs/benchmarks.md, "Where a streaming producer waits"). That is
// why stage_burst() counts what it staged on a line of its own and stores nothing to line 0:
// with the count there it was a store to the polled line on every burst after all. The
// other producing calls only test the count (from a line nobody else writes), which
// measured as fast as line 0 alone; moving the producer's private words off line 0
// altogether made them slower (one-element bursts of descriptors 27-37 -> 38-54 ns each).
//
// The object is standard-layout, trivially destructible and contains its storage, so it
// can be constructed in caller-provided memory (a shared-memory segment, a hugepage) with
// create_at() and mapped by a second party with attach_at().
#pragma once

#include <npa/config.hpp>
#include <npa/detail/bulk_copy.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <type_traits>

namespace npa {

/// Up to two contiguous runs of slots: what a zero-copy reserve() or peek() hands out
/// (the second run is non-empty only when the region wraps past the end of the ring).
template <class T>
struct ring_region {
    std::span<T> first;
    std::span<T> second;

    [[nodiscard]] std::uint32_t size() const noexcept {
        return static_cast<std::uint32_t>(first.size() + second.size());
    }
    [[nodiscard]] bool empty() const noexcept { return first.empty(); }
    [[nodiscard]] T& operator[](std::uint32_t i) const noexcept {
        return i < first.size() ? first[i] : second[i - first.size()];
    }
};

template <class T, std::uint32_t Capacity>
class index_ring {
    static_assert(std::is_trivially_copyable_v<T>,
                  "npa::index_ring: elements are copied with memcpy semantics, so T must be "
                  "trivially copyable (a handle or a descriptor, not an owning object)");
    static_assert(is_power_of_two(Capacity),
                  "npa::index_ring: Capacity must be a power of two (indices are masked)");
    static_assert(Capacity <= (1u << 31),
                  "npa::index_ring: Capacity must leave the top index bit free so that "
                  "head - tail is unambiguous");
    static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
                  "npa::index_ring: needs lock-free 32-bit atomics (to work in shared memory)");

    // ---- tuning constants ------------------------------------------------------------
    // Elements per fixed-size chunk in the small-copy path: 4 handles (32 bytes) or 4
    // descriptors (64 bytes, one cache line) per step, the unroll DPDK's
    // __rte_ring_enqueue_elems_64 also uses.
    static constexpr std::uint32_t copy_chunk = 4;
    // From this many bytes on (32 handles, 16 descriptors) a copy goes to
    // detail::bulk_copy (32-byte vectors where the CPU has them, else the C library's
    // memcpy): a call and a few instructions of dispatch, then the widest moves. Below it
    // the call costs more than it saves, by time: at a burst of 8 descriptors (128 bytes)
    // a memcpy call made enqueue + dequeue 2.5x slower in benchmarks/ring_bench.cpp
    // single/npa_index/16/8, although callgrind counted fewer instructions. See
    // docs/benchmarks.md.
    static constexpr std::size_t memcpy_min_bytes = detail::bulk_copy_min_bytes;
    static constexpr std::size_t bulk_min_elems = (memcpy_min_bytes + sizeof(T) - 1) / sizeof(T);

public:
    using value_type = T;
    static constexpr std::uint32_t capacity = Capacity;
    static constexpr std::uint32_t mask = Capacity - 1;

    index_ring() noexcept = default;
    index_ring(const index_ring&) = delete;
    index_ring& operator=(const index_ring&) = delete;

    /// Constructs an empty ring in caller-provided memory of at least sizeof(index_ring)
    /// bytes, aligned to cache_line_size.
    [[nodiscard]] static index_ring* create_at(void* mem) noexcept {
        return ::new (mem) index_ring();
    }
    /// Returns the ring that another party created at `mem` with create_at().
    [[nodiscard]] static index_ring* attach_at(void* mem) noexcept {
        return std::launder(static_cast<index_ring*>(mem));
    }

    // ---- producer side --------------------------------------------------------------

    /// Enqueues up to items.size() elements; returns how many (0..n). What was not
    /// enqueued stays with the caller.
    /// When it enqueues anything it also publishes what stage_burst() left unpublished.
    [[nodiscard]] NPA_ALWAYS_INLINE std::uint32_t enqueue_burst(std::span<const T> items) noexcept {
        const auto n = static_cast<std::uint32_t>(items.size());
        const std::uint32_t next = fold_staged();
        std::uint32_t k = n;
        if (NPA_UNLIKELY(!cached_room_for(next, n))) {
            k = refresh_room(next, n);
            if (k == 0) {
                return 0; // no store: a producer spinning on a full ring leaves its line alone
            }
        }
        copy_in(next, items.data(), k);
        publish(next + k);
        return k;
    }

    /// Writes up to items.size() elements like enqueue_burst() but does not publish them:
    /// the consumer sees them only after flush() (or the next enqueue_burst, enqueue_bulk
    /// or commit). Returns how many (0..n); 0 also when staged elements fill the ring, so a
    /// producer that stages must flush before it waits for room.
    [[nodiscard]] NPA_ALWAYS_INLINE std::uint32_t stage_burst(std::span<const T> items) noexcept {
        const auto n = static_cast<std::uint32_t>(items.size());
        const std::uint32_t next = prod_.next + stage_.staged;
        std::uint32_t k = n;
        if (NPA_UNLIKELY(!cached_room_for(next, n))) {
            k = refresh_room(next, n);
            if (k == 0) {
                return 0; // no store to the producer's line while it waits for room
            }
        }
        copy_in(next, items.data(), k);
        stage_.staged += k; // nothing to line 0, which the consumer polls
        return k;
    }

    /// Publishes every staged element with one release store.
    NPA_ALWAYS_INLINE void flush() noexcept { publish(fold_staged()); }

    /// Enqueues all of items or none; returns items.size() or 0.
    [[nodiscard]] NPA_ALWAYS_INLINE std::uint32_t enqueue_bulk(std::span<const T> items) noexcept {
        const auto n = static_cast<std::uint32_t>(items.size());
        const std::uint32_t next = fold_staged();
        if (NPA_UNLIKELY(free_from(next, n) < n)) {
            return 0;
        }
        copy_in(next, items.data(), n);
        publish(next + n);
        return n;
    }

    [[nodiscard]] bool try_enqueue(const T& item) noexcept {
        return enqueue_bulk(std::span<const T>(&item, 1)) == 1;
    }

    /// Zero-copy: up to n free slots to write in place. Nothing is visible to the
    /// consumer until commit().
    [[nodiscard]] ring_region<T> reserve(std::uint32_t n) noexcept {
        const std::uint32_t next = fold_staged();
        return region(next, clamp_free(next, n));
    }

    /// Publishes the first n slots of the last reserve() (n <= its size), and what
    /// stage_burst() left unpublished before them.
    void commit(std::uint32_t n) noexcept { publish(fold_staged() + n); }

    // ---- consumer side --------------------------------------------------------------

    /// Dequeues up to out.size() elements into out; returns how many (0..n).
    [[nodiscard]] NPA_ALWAYS_INLINE std::uint32_t dequeue_burst(std::span<T> out) noexcept {
        const auto n = static_cast<std::uint32_t>(out.size());
        // relaxed: own index (only the consumer writes tail)
        const std::uint32_t tail = cons_.tail.load(std::memory_order_relaxed);
        std::uint32_t k = n;
        if (NPA_UNLIKELY(!cached_fill_for(tail, n))) {
            k = refresh_fill(tail, n);
            if (k == 0) {
                return 0;
            }
        }
        copy_out(tail, out.data(), k);
        // release: the slots are read before they are freed; pairs with the producer's
        // acquire of tail in reload_free().
        cons_.tail.store(tail + k, std::memory_order_release);
        return k;
    }

    /// Dequeues exactly out.size() elements or none; returns out.size() or 0.
    [[nodiscard]] NPA_ALWAYS_INLINE std::uint32_t dequeue_bulk(std::span<T> out) noexcept {
        const auto n = static_cast<std::uint32_t>(out.size());
        // relaxed: own index (only the consumer writes tail)
        const std::uint32_t tail = cons_.tail.load(std::memory_order_relaxed);
        if (NPA_UNLIKELY(used_from(tail, n) < n)) {
            return 0;
        }
        copy_out(tail, out.data(), n);
        cons_.tail.store(tail + n, std::memory_order_release); // release: as dequeue_burst()
        return n;
    }

    [[nodiscard]] bool try_dequeue(T& item) noexcept {
        return dequeue_bulk(std::span<T>(&item, 1)) == 1;
    }

    /// Zero-copy: up to n filled slots to read in place; they stay in the ring until
    /// release().
    [[nodiscard]] ring_region<T> peek(std::uint32_t n) noexcept {
        // relaxed: own index (only the consumer writes tail)
        const std::uint32_t tail = cons_.tail.load(std::memory_order_relaxed);
        return region(tail, clamp_used(tail, n));
    }

    /// Frees the first n slots of the last peek() (n <= its size).
    void release(std::uint32_t n) noexcept {
        // relaxed: own index (only the consumer writes tail)
        const std::uint32_t tail = cons_.tail.load(std::memory_order_relaxed);
        cons_.tail.store(tail + n, std::memory_order_release); // release: as dequeue_burst()
    }

    // ---- after the other side stopped for good (a process that died) ------------------

    /// Makes the caller the producer in place of one that stopped for good: what the old
    /// producer staged but never published is dropped (its slots count as never written),
    /// and the cached copy of tail is refreshed. Only for a producer that can no longer
    /// run; a consumer needs no such step (its cached head is a past value of head).
    void take_over_producer() noexcept {
        // acquire: pairs with the old producer's last release of head (flush()) and the
        // consumer's release of tail; the death notice that brought the caller here orders
        // nothing by itself in the C++ model.
        prod_.next = prod_.head.load(std::memory_order_acquire);
        prod_.cached_tail = cons_.tail.load(std::memory_order_acquire);
        stage_.staged = 0;
    }

    /// The published elements not yet consumed, read in place without consuming them (an
    /// audit's view: exact only while both sides are quiet or gone).
    [[nodiscard]] ring_region<const T> published() const noexcept {
        // acquire: as size(), tail first so that head - tail cannot wrap below zero.
        const std::uint32_t tail = cons_.tail.load(std::memory_order_acquire);
        const std::uint32_t head = prod_.head.load(std::memory_order_acquire);
        const std::uint32_t n = head - tail < Capacity ? head - tail : Capacity;
        const std::uint32_t idx = tail & mask;
        const std::uint32_t first = n < Capacity - idx ? n : Capacity - idx;
        return {std::span<const T>(slots_ + idx, first), std::span<const T>(slots_, n - first)};
    }

    // ---- either side (a snapshot; exact only when the other side is quiet; staged -----
    // ---- elements count once flushed) -------------------------------------------------

    [[nodiscard]] std::uint32_t size() const noexcept {
        // Tail first, then head: tail only grows and never passes head, so the difference
        // cannot go below zero (the two loads as operands of one `-` are unsequenced, and
        // a tail read after the head could be ahead of it and wrap to ~4 billion). From a
        // third thread both sides may move between the loads, so clamp to Capacity too.
        // acquire: pairs with the releases of tail (dequeue, release()) and head (flush()).
        const std::uint32_t tail = cons_.tail.load(std::memory_order_acquire);
        const std::uint32_t used = prod_.head.load(std::memory_order_acquire) - tail;
        return used < Capacity ? used : Capacity;
    }
    [[nodiscard]] std::uint32_t free_count() const noexcept { return Capacity - size(); }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] bool full() const noexcept { return size() == Capacity; }

private:
    // Where the producing calls other than stage_burst() write: next, after moving what
    // stage_burst() counted into it (a test and a branch when nothing is staged, the usual
    // case; the count's line is only read then). Nothing is published by that: head moves
    // only in publish().
    NPA_ALWAYS_INLINE std::uint32_t fold_staged() noexcept {
        if (NPA_UNLIKELY(stage_.staged != 0)) {
            prod_.next += stage_.staged;
            stage_.staged = 0;
        }
        return prod_.next;
    }
    // Makes everything before `end` visible to the consumer.
    NPA_ALWAYS_INLINE void publish(std::uint32_t end) noexcept {
        prod_.next = end;
        // release: the slots before the index; pairs with the consumer's acquire of head
        // in reload_used() (and size()).
        prod_.head.store(end, std::memory_order_release);
    }

    // The fast-path tests of the burst calls: the cached copy of the other side's index
    // already shows room for (elements for) all n, so the call moves exactly n, with no
    // remote load and no clamp, and a count fixed at compile time stays a constant for
    // the copy. False for n == 0 as well (n - 1 wraps): an empty request takes the slow
    // path, which returns 0 and publishes nothing.
    NPA_ALWAYS_INLINE bool cached_room_for(std::uint32_t next, std::uint32_t n) const noexcept {
        return n - 1 < Capacity - (next - prod_.cached_tail);
    }
    NPA_ALWAYS_INLINE bool cached_fill_for(std::uint32_t tail, std::uint32_t n) const noexcept {
        return n - 1 < cons_.cached_head - tail;
    }

    // The one read of the other side's index, for every call whose cached copy could not
    // satisfy it: the free (used) slots it shows. The copy is stored only when the ring is
    // not still full (empty): a side spinning on it stores nothing to the line the other
    // side reads (its index shares it).
    NPA_ALWAYS_INLINE std::uint32_t reload_free(std::uint32_t next) noexcept {
        // acquire: pairs with the consumer's release of tail (dequeue_*, release()): the
        // slots it freed are read before the producer overwrites them.
        const std::uint32_t t = cons_.tail.load(std::memory_order_acquire);
        const std::uint32_t free = Capacity - (next - t);
        if (free != 0) {
            prod_.cached_tail = t;
        }
        return free;
    }
    NPA_ALWAYS_INLINE std::uint32_t reload_used(std::uint32_t tail) noexcept {
        // acquire: pairs with flush()'s release of head: the slots are written.
        const std::uint32_t h = prod_.head.load(std::memory_order_acquire);
        const std::uint32_t used = h - tail;
        if (used != 0) {
            cons_.cached_head = h;
        }
        return used;
    }

    // The burst calls' slow path (the same condition as free_from() / used_from(): the
    // cached copy could not satisfy the whole burst): how many of n move now.
    NPA_ALWAYS_INLINE std::uint32_t refresh_room(std::uint32_t next, std::uint32_t n) noexcept {
        const std::uint32_t free = reload_free(next);
        if (free == 0) {
            return 0; // still full
        }
        if (n - 1 < free) {
            return n; // room for all of them now
        }
        return n < free ? n : free; // what fits (n == 0 included)
    }
    NPA_ALWAYS_INLINE std::uint32_t refresh_fill(std::uint32_t tail, std::uint32_t n) noexcept {
        const std::uint32_t used = reload_used(tail);
        if (used == 0) {
            return 0; // still empty
        }
        if (n - 1 < used) {
            return n;
        }
        return n < used ? n : used;
    }

    // Free slots seen from the producer, reading the consumer's index only when the cached
    // value cannot satisfy `want` (the common case touches no remote cache line).
    NPA_ALWAYS_INLINE std::uint32_t free_from(std::uint32_t head, std::uint32_t want) noexcept {
        const std::uint32_t free = Capacity - (head - prod_.cached_tail);
        return free < want ? reload_free(head) : free;
    }
    NPA_ALWAYS_INLINE std::uint32_t used_from(std::uint32_t tail, std::uint32_t want) noexcept {
        const std::uint32_t used = cons_.cached_head - tail;
        return used < want ? reload_used(tail) : used;
    }
    NPA_ALWAYS_INLINE std::uint32_t clamp_free(std::uint32_t head, std::uint32_t n) noexcept {
        const std::uint32_t free = free_from(head, n);
        return n < free ? n : free;
    }
    NPA_ALWAYS_INLINE std::uint32_t clamp_used(std::uint32_t tail, std::uint32_t n) noexcept {
        const std::uint32_t used = used_from(tail, n);
        return n < used ? n : used;
    }

    ring_region<T> region(std::uint32_t at, std::uint32_t n) noexcept {
        const std::uint32_t idx = at & mask;
        const std::uint32_t first = n < Capacity - idx ? n : Capacity - idx;
        return {std::span<T>(slots_ + idx, first), std::span<T>(slots_, n - first)};
    }

    // Copies n elements between the ring and the caller. Small runs are moved in fixed
    // chunks of copy_chunk elements (constant-size memcpy, so the compiler emits plain
    // vector moves with no call, no alignment peeling and no run-time alias check; loads
    // then line up with the stores that wrote the slots, so store-to-load forwarding
    // works when one thread both enqueues and dequeues). Runs of memcpy_min_bytes or more
    // go to detail::bulk_copy, which uses the machine's 32-byte vectors when it has them
    // (chosen at run time) whatever the header was compiled for, and from 2 KiB on one
    // string move (faster across cores); one of exactly
    // memcpy_min_bytes whose size the compiler knows stays inline.
    // GCC 12 (-O2 and up) cannot carry "n <= the caller's span size" through the clamp
    // and reports memcpy past the end of a caller's small array on paths that never run
    // (-Warray-bounds false positive); the bounds are the clamp's, checked by the tests.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif
    NPA_ALWAYS_INLINE static void copy_elems(T* dst, const T* src, std::uint32_t n) noexcept {
        if (n >= bulk_min_elems) {
#if defined(__GNUC__) || defined(__clang__)
            // A size the compiler knows (a burst the caller fixed at compile time, on the
            // path where the cached index already shows room for all of it) and no more
            // than bulk_copy's minimum: a constant memcpy becomes plain moves, no call.
            if (__builtin_constant_p(n) && std::size_t{n} * sizeof(T) <= memcpy_min_bytes) {
                std::memcpy(dst, src, std::size_t{n} * sizeof(T));
                return;
            }
#endif
            detail::bulk_copy(dst, src, std::size_t{n} * sizeof(T));
            return;
        }
        std::uint32_t i = 0;
        for (; i + copy_chunk <= n; i += copy_chunk) {
            std::memcpy(dst + i, src + i, copy_chunk * sizeof(T));
        }
        for (; i < n; ++i) { // 0 .. copy_chunk - 1 left over
            dst[i] = src[i];
        }
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    NPA_ALWAYS_INLINE void copy_in(std::uint32_t head, const T* src, std::uint32_t n) noexcept {
        const std::uint32_t idx = head & mask;
        if (n == 1) { // one element: no wrap to check, no chunking
            slots_[idx] = *src;
            return;
        }
        if (NPA_LIKELY(idx + n <= Capacity)) {
            copy_elems(slots_ + idx, src, n);
        } else {
            // Capacity - idx < n here; the min() only tells the compiler that first <= n
            // (GCC's -Warray-bounds cannot see it otherwise and warns on callers' arrays).
            const std::uint32_t first = n < Capacity - idx ? n : Capacity - idx;
            copy_elems(slots_ + idx, src, first);
            copy_elems(slots_, src + first, n - first);
        }
    }
    NPA_ALWAYS_INLINE void copy_out(std::uint32_t tail, T* dst, std::uint32_t n) noexcept {
        const std::uint32_t idx = tail & mask;
        if (n == 1) {
            *dst = slots_[idx];
            return;
        }
        if (NPA_LIKELY(idx + n <= Capacity)) {
            copy_elems(dst, slots_ + idx, n);
        } else {
            const std::uint32_t first = n < Capacity - idx ? n : Capacity - idx;
            copy_elems(dst, slots_ + idx, first);
            copy_elems(dst + first, slots_, n - first);
        }
    }

    // Memory order. Each index has one writer: head the producer, tail the consumer.
    // A side loads its own index relaxed (it wrote the value itself, so the load is
    // sequenced after that write and needs no synchronisation); it publishes it with a
    // release store after the slots are written (producer) or read (consumer); it loads
    // the other side's index with acquire, which makes the slots written before that
    // release visible (producer -> consumer) or guarantees they are no longer read
    // (consumer -> producer) before they are overwritten.
    struct alignas(cache_line_size) producer_state {
        std::atomic<std::uint32_t> head{0};
        std::uint32_t next{0};
        std::uint32_t cached_tail{0};
    };
    struct alignas(cache_line_size) consumer_state {
        std::atomic<std::uint32_t> tail{0};
        std::uint32_t cached_head{0};
    };
    struct alignas(cache_line_size) stage_state {
        std::uint32_t staged{0};
    };

    producer_state prod_;
    consumer_state cons_;
    stage_state stage_;
    alignas(cache_line_size) T slots_[Capacity];
};

} // namespace npa
