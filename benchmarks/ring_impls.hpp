// benchmarks/ring_impls.hpp: every ring under comparison behind one small interface.
//
// Each implementation is a struct template over the element size (8 bytes: a buffer
// handle; 16 bytes: a descriptor) with
//
//   static constexpr const char* name;        the <impl> part of the benchmark name
//   using value_type;                         what goes through the ring
//   std::uint32_t enqueue(const value_type*, std::uint32_t n) noexcept;   0..n
//   std::uint32_t dequeue(value_type*, std::uint32_t n) noexcept;         0..n
//   static value_type make(std::uint64_t seq) noexcept;   an element carrying seq
//   static std::uint64_t seq_of(const value_type&) noexcept;
//
// and, where the ring has one, an all-or-nothing dequeue_bulk(value_type*, n) (0 or n).
//
// Every adapter's enqueue/dequeue is forced inline, so each benchmark loop holds the
// ring's own code (as in an application) and no implementation pays an extra call.
//
// Burst semantics everywhere (DPDK's rte_ring_*_burst: take what fits, return the count).
// Rings without a burst call (ReaderWriterQueue, atomic_queue) loop over their single-
// element call, which is exactly what a user of those rings writes.
//
// Every ring gets the same usable capacity where the library allows it: npa and the
// generation ring hold ring_slots elements; rte_ring, Boost and atomic_queue keep one
// slot free or round differently and hold ring_slots - 1 (or ring_slots).
#pragma once

#include <npa/ring/gen_ring.hpp>
#include <npa/ring/index_ring.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <boost/lockfree/spsc_queue.hpp>
#include <atomic_queue/atomic_queue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#if NPA_BENCH_HAVE_RTE_RING
#include <rte_ring.h>
#include <rte_ring_elem.h>
#endif

namespace npa_bench {

// ---- tuning constants --------------------------------------------------------------
// 1024 slots: DPDK's test_ring_perf and most PMD queues use rings of this order; large
// enough that a streaming producer is rarely blocked by a consumer hiccup, small enough
// (8-16 KiB) to stay in L1/L2 so the benchmark measures the ring, not DRAM.
inline constexpr std::uint32_t ring_slots = 1024;

// ---- elements ------------------------------------------------------------------------

/// 8 bytes: what npa moves on its data path (npa::buffer_ref is one pointer).
using elem8 = std::uint64_t;

/// 16 bytes: a descriptor (address + length/flags), the size of a vmxnet3 TX descriptor.
struct elem16 {
    std::uint64_t addr;
    std::uint64_t meta;
};
static_assert(sizeof(elem16) == 16);

template <unsigned Bytes>
struct elem_of;
template <>
struct elem_of<8> {
    using type = elem8;
    static type make(std::uint64_t s) noexcept { return s + 1; } // never 0 (atomic_queue NIL)
    static std::uint64_t seq(const type& v) noexcept { return v - 1; }
};
template <>
struct elem_of<16> {
    using type = elem16;
    static type make(std::uint64_t s) noexcept { return {s + 1, ~s}; }
    static std::uint64_t seq(const type& v) noexcept { return v.addr - 1; }
};

// ---- npa index ring --------------------------------------------------------------------

template <unsigned Bytes>
struct npa_index_impl {
    static constexpr const char* name = "npa_index";
    using traits = elem_of<Bytes>;
    using value_type = typename traits::type;

    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        return ring_.enqueue_burst(std::span<const value_type>(p, n));
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        return ring_.dequeue_burst(std::span<value_type>(p, n));
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue_bulk(value_type* p, std::uint32_t n) noexcept {
        return ring_.dequeue_bulk(std::span<value_type>(p, n));
    }
    static value_type make(std::uint64_t s) noexcept { return traits::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return traits::seq(v); }

    npa::index_ring<value_type, ring_slots> ring_;
};

// ---- npa index ring, batched publish ----------------------------------------------------
//
// The same ring driven through stage_burst() + flush(): elements are written at once but
// published (one release store to the producer's line, which the consumer then has to
// fetch) only once publish_batch of them are staged, or when the ring had no room for all
// of a burst. Only the streaming cases use it: their producer flushes at the end of a
// transfer, as a driver flushes at the end of a poll pass.

template <unsigned Bytes>
struct npa_index_batched_impl {
    static constexpr const char* name = "npa_index_batched";
    // At most a quarter of the ring unpublished. Every publish is a store to a line the
    // waiting consumer holds, and the producer's slot stores queue behind it; publishing
    // every 8 elements (one line of handles) gained at 8-byte burst 1 only, every 256 at
    // every burst below 256 (docs/benchmarks.md, "Where a streaming producer waits").
    static constexpr std::uint32_t publish_batch = ring_slots / 4;
    using traits = elem_of<Bytes>;
    using value_type = typename traits::type;

    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        const std::uint32_t k = ring_.stage_burst(std::span<const value_type>(p, n));
        staged_ += k;
        // Publish a full batch, or what is staged when the ring has no room for the rest
        // (the consumer must see it before room can appear); nothing staged, no store: a
        // producer spinning on a full ring leaves its line alone.
        if (staged_ >= publish_batch || (k < n && staged_ != 0)) {
            ring_.flush();
            staged_ = 0;
        }
        return k;
    }
    NPA_ALWAYS_INLINE void flush() noexcept {
        ring_.flush();
        staged_ = 0;
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        return ring_.dequeue_burst(std::span<value_type>(p, n));
    }
    static value_type make(std::uint64_t s) noexcept { return traits::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return traits::seq(v); }

    npa::index_ring<value_type, ring_slots> ring_;
    std::uint32_t staged_ = 0;
};

// ---- npa generation-bit ring -------------------------------------------------------------
//
// The descriptor carries ownership (vmxnet3 `gen`): the consumer polls only the slot it is
// about to read and never reads the producer's index. The producer learns how far the
// consumer got from a completion counter the consumer publishes once per burst (what a
// vmxnet3 device reports through its completion ring, or an Intel NIC's head write-back).

/// 8-byte descriptor: a 63-bit handle plus the generation bit in the top bit of word 1
/// (x86-64 and arm64 user pointers leave the top bits free).
struct gen_desc8 {
    std::uint32_t lo;
    std::uint32_t hi_gen;
};
/// 16-byte descriptor laid out like vmxnet3's Vmxnet3_TxDesc: addr, then a word whose
/// bit 14 is `gen` (len:14 gen:1 ...), then a word of flags.
struct gen_desc16 {
    std::uint64_t addr;
    std::uint32_t len_gen;
    std::uint32_t flags;
};
static_assert(sizeof(gen_desc8) == 8 && sizeof(gen_desc16) == 16);

template <unsigned Bytes>
struct gen_of;
template <>
struct gen_of<8> {
    using desc = gen_desc8;
    using traits = npa::gen_bit_traits<desc, 1, 31>;
    static desc make(std::uint64_t s) noexcept {
        return {static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(s >> 32) & 0x7fffffffu};
    }
    static std::uint64_t seq(const desc& d) noexcept {
        return (std::uint64_t{d.hi_gen & 0x7fffffffu} << 32) | d.lo;
    }
};
template <>
struct gen_of<16> {
    using desc = gen_desc16;
    using traits = npa::gen_bit_traits<desc, 2, 14>;
    static desc make(std::uint64_t s) noexcept { return {s, 64u, 0u}; }
    static std::uint64_t seq(const desc& d) noexcept { return d.addr; }
};

template <unsigned Bytes>
struct npa_gen_impl {
    static constexpr const char* name = "npa_gen";
    using g = gen_of<Bytes>;
    using value_type = typename g::desc;

    npa_gen_impl() noexcept : prod_(ring_, ring_slots), cons_(ring_, ring_slots) {}

    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        std::uint32_t free = ring_slots - (produced_ - cached_done_);
        if (free < n) {
            cached_done_ = done_.load(std::memory_order_acquire);
            free = ring_slots - (produced_ - cached_done_);
        }
        const std::uint32_t k = n < free ? n : free;
        prod_.produce_burst(std::span<const value_type>(p, k));
        produced_ += k;
        return k;
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        const std::uint32_t k = cons_.poll_burst(std::span<value_type>(p, n));
        if (k != 0) {
            done_.store(consumed_ += k, std::memory_order_release);
        }
        return k;
    }
    static value_type make(std::uint64_t s) noexcept { return g::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return g::seq(v); }

    alignas(npa::cache_line_size) value_type ring_[ring_slots]{};
    // producer line
    alignas(npa::cache_line_size) npa::gen_producer<typename g::traits> prod_;
    std::uint32_t produced_ = 0;
    std::uint32_t cached_done_ = 0;
    // consumer line
    alignas(npa::cache_line_size) npa::gen_consumer<typename g::traits> cons_;
    std::uint32_t consumed_ = 0;
    // completion counter: written by the consumer, read by the producer when it runs short
    alignas(npa::cache_line_size) std::atomic<std::uint32_t> done_{0};
};

// ---- DPDK rte_ring, SP/SC, element API, on plain memory (no EAL) ----------------------

#if NPA_BENCH_HAVE_RTE_RING
template <unsigned Bytes>
struct rte_ring_impl {
    static constexpr const char* name = "rte_ring";
    using traits = elem_of<Bytes>;
    using value_type = typename traits::type;

    rte_ring_impl() noexcept {
        // rte_ring_init() only fills in the header: no EAL, no memzone, no hugepages.
        const ssize_t sz = rte_ring_get_memsize_elem(Bytes, ring_slots);
        mem_ = sz > 0 ? std::aligned_alloc(RTE_CACHE_LINE_SIZE,
                                           (static_cast<std::size_t>(sz) + RTE_CACHE_LINE_SIZE - 1) &
                                               ~std::size_t{RTE_CACHE_LINE_SIZE - 1})
                      : nullptr;
        r_ = static_cast<rte_ring*>(mem_);
        if (r_ == nullptr || rte_ring_init(r_, "npa_bench", ring_slots,
                                           RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
            std::fprintf(stderr, "rte_ring_init failed\n");
            std::abort();
        }
    }
    ~rte_ring_impl() { std::free(mem_); }
    rte_ring_impl(const rte_ring_impl&) = delete;
    rte_ring_impl& operator=(const rte_ring_impl&) = delete;

    // The single-producer / single-consumer entry points directly (what the generic
    // rte_ring_enqueue_burst_elem dispatches to for a ring made with RING_F_SP_ENQ |
    // RING_F_SC_DEQ), so the baseline pays no dispatch.
    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        return rte_ring_sp_enqueue_burst_elem(r_, p, Bytes, n, nullptr);
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        return rte_ring_sc_dequeue_burst_elem(r_, p, Bytes, n, nullptr);
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue_bulk(value_type* p, std::uint32_t n) noexcept {
        return rte_ring_sc_dequeue_bulk_elem(r_, p, Bytes, n, nullptr);
    }
    static value_type make(std::uint64_t s) noexcept { return traits::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return traits::seq(v); }

    void* mem_ = nullptr;
    rte_ring* r_ = nullptr;
};
#endif

// ---- boost::lockfree::spsc_queue, compile-time capacity -------------------------------

template <unsigned Bytes>
struct boost_spsc_impl {
    static constexpr const char* name = "boost_spsc";
    using traits = elem_of<Bytes>;
    using value_type = typename traits::type;

    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        return static_cast<std::uint32_t>(q_.push(p, n));
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        return static_cast<std::uint32_t>(q_.pop(p, n));
    }
    static value_type make(std::uint64_t s) noexcept { return traits::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return traits::seq(v); }

    boost::lockfree::spsc_queue<value_type, boost::lockfree::capacity<ring_slots>> q_;
};

// ---- moodycamel::ReaderWriterQueue -----------------------------------------------------

template <unsigned Bytes>
struct rwqueue_impl {
    static constexpr const char* name = "rwqueue";
    using traits = elem_of<Bytes>;
    using value_type = typename traits::type;

    // try_enqueue never allocates: the queue is sized once here.
    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        std::uint32_t i = 0;
        while (i < n && q_.try_enqueue(p[i])) {
            ++i;
        }
        return i;
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        std::uint32_t i = 0;
        while (i < n && q_.try_dequeue(p[i])) {
            ++i;
        }
        return i;
    }
    static value_type make(std::uint64_t s) noexcept { return traits::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return traits::seq(v); }

    moodycamel::ReaderWriterQueue<value_type> q_{ring_slots - 1};
};

// ---- atomic_queue (SPSC flavour) -------------------------------------------------------
// 8 bytes: AtomicQueue (elements are atomics, 0 is the empty marker, which is how a user
// queues pointers); 16 bytes: AtomicQueue2 (a state word per element).

template <unsigned Bytes>
struct atomic_queue_of;
template <>
struct atomic_queue_of<8> {
    using type = atomic_queue::AtomicQueue<elem8, ring_slots, elem8{0}, true, true, false, true>;
};
template <>
struct atomic_queue_of<16> {
    using type = atomic_queue::AtomicQueue2<elem16, ring_slots, true, true, false, true>;
};

template <unsigned Bytes>
struct atomic_queue_impl {
    static constexpr const char* name = "atomic_queue";
    using traits = elem_of<Bytes>;
    using value_type = typename traits::type;

    NPA_ALWAYS_INLINE std::uint32_t enqueue(const value_type* p, std::uint32_t n) noexcept {
        std::uint32_t i = 0;
        while (i < n && q_.try_push(p[i])) {
            ++i;
        }
        return i;
    }
    NPA_ALWAYS_INLINE std::uint32_t dequeue(value_type* p, std::uint32_t n) noexcept {
        std::uint32_t i = 0;
        while (i < n && q_.try_pop(p[i])) {
            ++i;
        }
        return i;
    }
    static value_type make(std::uint64_t s) noexcept { return traits::make(s); }
    static std::uint64_t seq_of(const value_type& v) noexcept { return traits::seq(v); }

    typename atomic_queue_of<Bytes>::type q_;
};

/// Calls f.template operator()<Impl>() for every implementation, in the order they are
/// interleaved within one repetition.
template <unsigned Bytes, class F>
void for_each_impl(F&& f) {
    f.template operator()<npa_index_impl<Bytes>>();
    f.template operator()<npa_gen_impl<Bytes>>();
#if NPA_BENCH_HAVE_RTE_RING
    f.template operator()<rte_ring_impl<Bytes>>();
#endif
    f.template operator()<boost_spsc_impl<Bytes>>();
    f.template operator()<rwqueue_impl<Bytes>>();
    f.template operator()<atomic_queue_impl<Bytes>>();
}

/// The streaming cases' list: the batched-publish variant of npa's index ring, then every
/// implementation above.
template <unsigned Bytes, class F>
void for_each_stream_impl(F&& f) {
    f.template operator()<npa_index_batched_impl<Bytes>>();
    for_each_impl<Bytes>(f);
}

} // namespace npa_bench
