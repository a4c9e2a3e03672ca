// npa/buffer/fixed_pool.hpp: a fixed-size packet buffer pool.
//
// All memory is taken from the backing at creation: buffer headers, the free stack and
// the data blocks. After that, alloc and free are O(1) per buffer, never allocate, and
// never abort: a pool that runs dry hands out fewer buffers and counts it; a buffer
// freed twice, or one that is not from this pool, is counted and ignored, so a bug in a
// caller cannot corrupt the free list.
//
//   backing:  [ headers: count x 64 B ][ free stack: count x 4 B ][ data: count x buf_size ]
#pragma once

#include <npa/buffer/memory.hpp>
#include <npa/concepts/memory_backing.hpp>
#include <npa/buffer/packet_buffer.hpp>
#include <npa/detail/spin_lock.hpp>
#include <npa/status.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace npa {

struct pool_config {
    std::uint32_t count = 1024;       ///< number of buffers
    std::uint32_t buf_size = 2176;    ///< bytes per buffer: 2048 of data + default headroom
    std::uint16_t headroom = 128;     ///< bytes left before the data on every alloc
    std::uint16_t pool_id = 0;
};

struct pool_stats {
    std::uint64_t alloc_fail = 0;     ///< buffers asked for and not available
    std::uint64_t double_free = 0;    ///< frees of a buffer already in the pool (ignored)
    std::uint64_t foreign_free = 0;   ///< frees of a buffer this pool does not own (ignored)
};

/// `Backing` is any npa::memory_backing: the pool keeps its headers, free stack and data
/// in that one block and never allocates after create().
template <memory_backing Backing = heap_memory, class Lock = detail::no_lock>
class fixed_pool {
public:
    using buffer_type = buffer_ref;
    using backing_type = Backing;

    static constexpr std::size_t header_bytes(std::uint32_t count) noexcept {
        return std::size_t{count} * sizeof(packet_buffer);
    }
    static constexpr std::size_t stack_bytes(std::uint32_t count) noexcept {
        return (std::size_t{count} * 4 + cache_line_size - 1) / cache_line_size * cache_line_size;
    }
    /// Bytes of backing memory a pool with this configuration needs.
    static constexpr std::size_t required_bytes(const pool_config& c) noexcept {
        const std::size_t stride = (std::size_t{c.buf_size} + cache_line_size - 1) /
                                   cache_line_size * cache_line_size;
        return header_bytes(c.count) + stack_bytes(c.count) + stride * c.count;
    }

    /// True if required_bytes(c) is representable: count and buf_size are 32-bit each, so
    /// their product can overflow a 64-bit size_t near the top of both ranges, and a
    /// wrapped size would size a block the pool then overruns.
    static constexpr bool size_fits(const pool_config& c) noexcept {
        const std::size_t stride = (std::size_t{c.buf_size} + cache_line_size - 1) /
                                   cache_line_size * cache_line_size;
        // Per buffer: a header, a stack slot (plus one line of rounding) and the data.
        const std::size_t per_buffer = sizeof(packet_buffer) + 4 + stride;
        return c.count == 0 ||
               per_buffer <= (static_cast<std::size_t>(-1) - cache_line_size) / c.count;
    }

    /// Builds a pool in `mem`. Fails (with a reason) on a bad configuration or backing
    /// memory that is too small or misaligned.
    [[nodiscard]] static result<fixed_pool> create(const pool_config& c, Backing mem) noexcept {
        if (c.count == 0) {
            return {errc::invalid_argument, "buffer pool: count must be at least 1"};
        }
        if (c.headroom >= c.buf_size) {
            return {errc::invalid_argument, "buffer pool: headroom must be smaller than buf_size"};
        }
        if (!size_fits(c)) {
            return {errc::invalid_argument,
                    "buffer pool: count x buf_size is too large to address"};
        }
        if (mem.base() == nullptr || mem.size() < required_bytes(c)) {
            return {errc::no_memory, "buffer pool: backing memory missing or too small"};
        }
        if (reinterpret_cast<std::uintptr_t>(mem.base()) % cache_line_size != 0) {
            return {errc::invalid_argument, "buffer pool: backing memory not cache-line aligned"};
        }
        return fixed_pool(c, std::move(mem));
    }

    /// Convenience: a pool on fresh heap memory.
    [[nodiscard]] static result<fixed_pool> create(const pool_config& c) noexcept
        requires std::is_same_v<Backing, heap_memory>
    {
        if (c.count == 0 || c.headroom >= c.buf_size || !size_fits(c)) {
            return create(c, heap_memory()); // the same checks, the same reasons
        }
        heap_memory mem(required_bytes(c));
        if (mem.base() == nullptr) {
            return {errc::no_memory, "buffer pool: heap allocation failed"};
        }
        return create(c, std::move(mem));
    }

    fixed_pool(fixed_pool&& o) noexcept
        : cfg_(o.cfg_), mem_(std::move(o.mem_)), headers_(std::exchange(o.headers_, nullptr)),
          stack_(std::exchange(o.stack_, nullptr)), free_count_(std::exchange(o.free_count_, 0)),
          stats_(o.stats_) {}
    fixed_pool(const fixed_pool&) = delete;
    fixed_pool& operator=(const fixed_pool&) = delete;
    fixed_pool& operator=(fixed_pool&&) = delete;
    ~fixed_pool() = default;

    /// Allocates up to out.size() buffers (0..n), reset to empty with the configured
    /// headroom. A shortfall is counted in stats().alloc_fail.
    [[nodiscard]] std::uint32_t alloc_burst(std::span<buffer_ref> out) noexcept {
        detail::lock_guard g(lock_);
        const auto want = static_cast<std::uint32_t>(out.size());
        const std::uint32_t n = want < free_count_ ? want : free_count_;
        stats_.alloc_fail += want - n;
        take(out.data(), n);
        return n;
    }

    /// Allocates exactly out.size() buffers or none.
    [[nodiscard]] std::uint32_t alloc_bulk(std::span<buffer_ref> out) noexcept {
        detail::lock_guard g(lock_);
        const auto want = static_cast<std::uint32_t>(out.size());
        if (want > free_count_) {
            stats_.alloc_fail += want;
            return 0;
        }
        take(out.data(), want);
        return want;
    }

    /// Returns buffers to the pool. Null handles are skipped; double and foreign frees
    /// are counted and ignored.
    void free_burst(std::span<const buffer_ref> bufs) noexcept {
        detail::lock_guard g(lock_);
        for (const buffer_ref b : bufs) {
            packet_buffer* p = b.get();
            if (p == nullptr) {
                continue;
            }
            if (!owns_locked(p)) {
                ++stats_.foreign_free;
                continue;
            }
            if (p->in_pool != 0) {
                ++stats_.double_free;
                continue;
            }
            p->in_pool = 1;
            stack_[free_count_++] = p->index;
        }
    }

    void free(buffer_ref b) noexcept { free_burst(std::span<const buffer_ref>(&b, 1)); }

    [[nodiscard]] bool owns(buffer_ref b) const noexcept { return owns_locked(b.get()); }
    [[nodiscard]] std::uint32_t size() const noexcept { return cfg_.count; }
    /// Buffers in the pool now. Taken under the pool's lock, so a shared pool can be
    /// audited from another thread while bursts run (a snapshot, exact when quiet).
    [[nodiscard]] std::uint32_t available() const noexcept {
        detail::lock_guard g(lock_);
        return free_count_;
    }
    [[nodiscard]] std::uint32_t in_use() const noexcept { return cfg_.count - available(); }
    /// The counters, copied under the pool's lock (safe from another thread).
    [[nodiscard]] pool_stats stats() const noexcept {
        detail::lock_guard g(lock_);
        return stats_;
    }
    [[nodiscard]] const pool_config& config() const noexcept { return cfg_; }
    [[nodiscard]] const Backing& backing() const noexcept { return mem_; }

    /// The buffer with a given pool index (diagnostics and device models).
    [[nodiscard]] buffer_ref at(std::uint32_t index) const noexcept {
        return index < cfg_.count ? buffer_ref(headers_ + index) : buffer_ref();
    }

private:
    fixed_pool(const pool_config& c, Backing mem) noexcept : cfg_(c), mem_(std::move(mem)) {
        std::byte* base = mem_.base();
        headers_ = reinterpret_cast<packet_buffer*>(base);
        stack_ = reinterpret_cast<std::uint32_t*>(base + header_bytes(c.count));
        const std::size_t data_off = header_bytes(c.count) + stack_bytes(c.count);
        const std::size_t stride =
            (std::size_t{c.buf_size} + cache_line_size - 1) / cache_line_size * cache_line_size;
        for (std::uint32_t i = 0; i < c.count; ++i) {
            packet_buffer* p = ::new (static_cast<void*>(headers_ + i)) packet_buffer{};
            p->buf_addr = base + data_off + stride * i;
            p->buf_iova = mem_.iova_base() + data_off + stride * i;
            p->buf_len = c.buf_size;
            p->data_off = c.headroom;
            p->pool_id = c.pool_id;
            p->index = i;
            p->in_pool = 1;
            // LIFO: the most recently freed buffer is handed out first (warm in cache).
            stack_[i] = c.count - 1 - i;
        }
        free_count_ = c.count;
    }

    // A handle is ours only if it points exactly at one of our headers.
    bool owns_locked(const packet_buffer* p) const noexcept {
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        const auto lo = reinterpret_cast<std::uintptr_t>(headers_);
        return a >= lo && a < lo + header_bytes(cfg_.count) &&
               (a - lo) % sizeof(packet_buffer) == 0;
    }

    void take(buffer_ref* out, std::uint32_t n) noexcept {
        for (std::uint32_t i = 0; i < n; ++i) {
            packet_buffer* p = headers_ + stack_[--free_count_];
            p->in_pool = 0;
            p->data_off = cfg_.headroom;
            p->data_len = 0;
            p->offload = offload_info{};
            p->user = 0;
            out[i] = buffer_ref(p);
        }
    }

    pool_config cfg_;
    Backing mem_;
    packet_buffer* headers_ = nullptr;
    std::uint32_t* stack_ = nullptr;
    std::uint32_t free_count_ = 0;
    pool_stats stats_{};
    // mutable: the const observers (available, in_use, stats) lock too.
    [[no_unique_address]] mutable Lock lock_{};
};

/// A pool that several threads may share (one short spin-locked section per burst).
template <memory_backing Backing = heap_memory>
using shared_fixed_pool = fixed_pool<Backing, detail::spin_lock>;

} // namespace npa
