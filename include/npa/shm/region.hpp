// npa/shm/region.hpp: rings and a buffer pool placed in a shared region (shm/layout.hpp),
// used by two processes: one allocates and produces, the other consumes and frees.
//
// The rings are npa::index_ring as they are: the ring is standard-layout, trivially
// destructible and holds its slots, so it lives in the region at its object's offset (the
// same index arithmetic and memory orders as between threads; lock-free 32-bit atomics are
// address-free, so they work across processes). Elements name buffers by index (buf_desc),
// never by pointer.
//
// npa::fixed_pool cannot be placed there: its free count and stats live in the pool
// object, its headers carry buffer pointers (buf_addr) and its handles are pointers, all
// meaningless in the other process, and its free list takes a lock a killed process could
// die holding. shm::pool keeps the same idea (fixed buffers, O(1), no allocation, bad frees
// counted and ignored) with its free list as an index_ring of buffer indices: the side that
// allocates is that ring's consumer, the side that frees its producer, so the pool is shared
// without a lock, and a side killed at any instruction leaves every buffer in one place:
// published in a ring, or with that side.
//
// A hostile or broken peer can make a ring hand out garbage but never make either side
// touch memory outside the region: ring indices are masked, buffer indices are checked
// against the pool before use (alloc_burst, free_burst, buffer, payload), and the layout
// itself was validated at attach.
//
// Audit and reclaim (after the peer died, or while both sides are quiet): audit() marks
// each buffer it finds in the pool's free ring, in the rings given, or in the caller's
// hands; what no one holds is with the peer. reclaim() returns those to the pool. The
// caller first takes over the dead side's role on the free ring (take_over_producer() if
// the peer was the freeing side).
//
// Each side's line of the header (side_state) holds its liveness words and its wake word:
// a side about to sleep sets the word, the other reads it after publishing and signals the
// sleeper (set_wake() says the ordering; the signal itself is the application's).
#pragma once

#include <npa/ring/index_ring.hpp>
#include <npa/shm/layout.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::shm {

/// A data ring's element: a buffer of the pool by index, and the bytes it carries after
/// its headroom. Host byte order (both sides on one machine, as AF_XDP's xdp_desc).
struct buf_desc {
    std::uint32_t buf;
    std::uint32_t len;
};
static_assert(sizeof(buf_desc) == 8);

[[nodiscard]] constexpr std::uint32_t buffer_index(std::uint32_t v) noexcept { return v; }
[[nodiscard]] constexpr std::uint32_t buffer_index(const buf_desc& d) noexcept { return d.buf; }

/// A validated region mapped in this process: its base address and the header copy that
/// validate() checked (later writes by the peer to the header are never read).
class region {
public:
    /// Validates `mem` (the whole mapping) and returns a view of it.
    [[nodiscard]] static result<region> attach(std::span<std::byte> mem) noexcept {
        region r;
        if (status st = validate(mem, r.h_); !st) {
            return st;
        }
        r.mem_ = mem;
        return r;
    }

    [[nodiscard]] std::byte* base() const noexcept { return mem_.data(); }
    [[nodiscard]] std::uint64_t size() const noexcept { return mem_.size(); }
    [[nodiscard]] const region_header& header() const noexcept { return h_; }

    /// The ring at object `i`, checked against the type: kind, element size, capacity.
    /// Construct it (`create`, the creator, once) or find it as the creator left it.
    template <class Ring>
    [[nodiscard]] result<Ring*> ring(std::uint32_t i, bool create = false) const noexcept {
        using T = typename Ring::value_type;
        static_assert(sizeof(Ring) == ring_bytes(Ring::capacity, sizeof(T)),
                      "npa::shm: an index_ring's size must be what shm::ring_bytes() says");
        if (i >= h_.object_count ||
            h_.objects[i].kind != static_cast<std::uint32_t>(object_kind::ring)) {
            return {errc::invalid_argument, "shared region: no ring at that object index"};
        }
        const object_desc& o = h_.objects[i];
        if (o.elem_size != sizeof(T) || o.count != Ring::capacity) {
            return {errc::invalid_argument,
                    "shared region: the ring's element size or capacity is not the type's"};
        }
        void* at = mem_.data() + static_cast<std::uint64_t>(o.offset);
        return create ? Ring::create_at(at) : Ring::attach_at(at);
    }

    // ---- liveness: each side writes its own line, reads the other's ----------------------

    /// Marks side `s` attached: its identity, a new generation, a first heartbeat.
    void announce(std::uint32_t s, std::uint32_t pid, std::uint64_t start_time) noexcept {
        side_state& st = side(s);
        // relaxed: identity words read only as a snapshot; the heartbeat below is the
        // release that publishes them.
        st.start_time.store(start_time, std::memory_order_relaxed);
        st.pid.store(pid, std::memory_order_relaxed); // relaxed: as start_time
        st.generation.store(st.generation.load(std::memory_order_relaxed) + 1, // relaxed: own word
                            std::memory_order_relaxed); // relaxed: as start_time
        st.heartbeat.store(st.heartbeat.load(std::memory_order_relaxed) + 1, // relaxed: own word
                           std::memory_order_release);
    }
    /// Side `s` is still running (call it from its polling loop; cheap, one store).
    void beat(std::uint32_t s) noexcept {
        side_state& st = side(s);
        // relaxed: a counter that publishes nothing; only its changing matters.
        st.heartbeat.store(st.heartbeat.load(std::memory_order_relaxed) + 1, // relaxed: own word
                           std::memory_order_relaxed);
    }
    /// Side `s` detached cleanly.
    void leave(std::uint32_t s) noexcept {
        side(s).pid.store(0, std::memory_order_release); // release: after its last ring use
    }
    /// Side `s`'s wake word (side_state::wake), written by that side only. The pattern is a
    /// store-load one (docs/design.md, memory order rule 7): the sleeper sets its word, takes
    /// a seq_cst fence, looks at its rings once more and only then sleeps; the other side
    /// publishes, takes a seq_cst fence, then reads the word and signals. One of the two
    /// always sees the other, so nothing published is left while the sleeper sleeps.
    void set_wake(std::uint32_t s, std::uint32_t v) noexcept {
        // relaxed: the caller's seq_cst fence orders it
        side(s).wake.store(v, std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint32_t wake(std::uint32_t s) const noexcept {
        // relaxed: after the caller's seq_cst fence
        return side(s).wake.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint64_t heartbeat(std::uint32_t s) const noexcept {
        // relaxed: only compared with the previous read (a stall detector)
        return side(s).heartbeat.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint32_t pid(std::uint32_t s) const noexcept {
        return side(s).pid.load(std::memory_order_acquire); // acquire: pairs with announce/leave
    }
    [[nodiscard]] std::uint32_t generation(std::uint32_t s) const noexcept {
        // relaxed: a snapshot of an identity word
        return side(s).generation.load(std::memory_order_relaxed);
    }

private:
    side_state& side(std::uint32_t s) const noexcept {
        return reinterpret_cast<side_state*>(mem_.data() + sides_offset)[s & 1];
    }

    std::span<std::byte> mem_;
    region_header h_{};
};

/// Stall detection over a peer's heartbeat when no process handle is at hand (a VM):
/// the peer is presumed dead once the word has not moved for `bound_ns`.
class heartbeat_watch {
public:
    explicit heartbeat_watch(std::uint64_t bound_ns) noexcept : bound_ns_(bound_ns) {}
    /// Feed the peer's heartbeat and the time now; true once it has stalled.
    [[nodiscard]] bool stalled(std::uint64_t beat, std::uint64_t now_ns) noexcept {
        if (beat != last_ || !seen_) {
            last_ = beat;
            since_ = now_ns;
            seen_ = true;
            return false;
        }
        return now_ns - since_ >= bound_ns_;
    }

private:
    std::uint64_t bound_ns_;
    std::uint64_t last_ = 0;
    std::uint64_t since_ = 0;
    bool seen_ = false;
};

struct pool_view_stats {
    std::uint64_t alloc_fail = 0;   ///< buffers asked for and not available
    std::uint64_t foreign_free = 0; ///< frees of an index past the pool (ignored)
    std::uint64_t overfree = 0;     ///< frees the free ring had no room for: a double free
    std::uint64_t bad_index = 0;    ///< indices past the pool found in the free ring (dropped)
};

/// A pool in a region, seen from one side. `FreeCapacity` is its free ring's capacity
/// (the largest buffer count it can hold, a power of two). The view is per process; the
/// counters in it are this side's.
template <std::uint32_t FreeCapacity>
class pool {
public:
    using free_ring = index_ring<std::uint32_t, FreeCapacity>;

    /// The pool at object `i` of `r`. With `create` (the creator, once, before the peer
    /// attaches), builds its free ring holding every buffer.
    [[nodiscard]] static result<pool> at(const region& r, std::uint32_t i,
                                         bool create = false) noexcept {
        const region_header& h = r.header();
        if (i >= h.object_count ||
            h.objects[i].kind != static_cast<std::uint32_t>(object_kind::pool)) {
            return {errc::invalid_argument, "shared region: no pool at that object index"};
        }
        const object_desc& o = h.objects[i];
        auto ring = r.ring<free_ring>(o.link, create);
        if (!ring) {
            return ring.error();
        }
        pool p(r.base() + static_cast<std::uint64_t>(o.offset), o.count, o.elem_size,
               o.headroom, *ring);
        if (create) {
            for (std::uint32_t b = 0; b < p.count_; ++b) {
                p.free(b); // the ring holds at least count_ indices: each one fits
            }
        }
        return p;
    }

    /// Allocating side (the free ring's consumer): up to out.size() buffer indices. The
    /// peer wrote them (it frees into the ring): an index past the pool is counted in
    /// bad_index and dropped, never handed out.
    [[nodiscard]] std::uint32_t alloc_burst(std::span<std::uint32_t> out) noexcept {
        const std::uint32_t got = free_->dequeue_burst(out);
        std::uint32_t n = 0;
        for (std::uint32_t i = 0; i < got; ++i) {
            if (out[i] < count_) {
                out[n++] = out[i];
            }
        }
        stats_.bad_index += got - n;
        stats_.alloc_fail += out.size() - n;
        return n;
    }

    /// Freeing side (the free ring's producer): returns buffers. Indices past the pool are
    /// counted and dropped; so is what the ring has no room for (it holds every buffer, so
    /// only a double free overfills it).
    void free_burst(std::span<const std::uint32_t> bufs) noexcept {
        std::uint32_t batch[64];
        std::size_t i = 0;
        while (i < bufs.size()) {
            std::uint32_t n = 0;
            for (; i < bufs.size() && n < 64; ++i) {
                if (bufs[i] < count_) {
                    batch[n++] = bufs[i];
                } else {
                    ++stats_.foreign_free;
                }
            }
            stats_.overfree +=
                n - free_->enqueue_burst(std::span<const std::uint32_t>(batch, n));
        }
    }
    void free(std::uint32_t b) noexcept { free_burst(std::span<const std::uint32_t>(&b, 1)); }

    /// The start of buffer `b` (its headroom first), or nullptr for an index past the pool:
    /// an index read from a ring is the peer's word and is checked before use.
    [[nodiscard]] std::byte* buffer(std::uint32_t b) const noexcept {
        return b < count_ ? data_ + std::uint64_t{b} * buf_size_ : nullptr;
    }
    /// The first byte after the headroom of buffer `b` (nullptr past the pool).
    [[nodiscard]] std::byte* payload(std::uint32_t b) const noexcept {
        std::byte* p = buffer(b);
        return p != nullptr ? p + headroom_ : nullptr;
    }
    /// Bytes a buffer can carry after its headroom.
    [[nodiscard]] std::uint32_t room() const noexcept { return buf_size_ - headroom_; }

    [[nodiscard]] std::uint32_t count() const noexcept { return count_; }
    [[nodiscard]] std::uint32_t buf_size() const noexcept { return buf_size_; }
    [[nodiscard]] std::uint32_t headroom() const noexcept { return headroom_; }
    [[nodiscard]] std::uint32_t available() const noexcept { return free_->size(); }
    [[nodiscard]] free_ring& ring() const noexcept { return *free_; }
    [[nodiscard]] const pool_view_stats& stats() const noexcept { return stats_; }

private:
    pool(std::byte* data, std::uint32_t count, std::uint32_t buf_size, std::uint32_t headroom,
         free_ring* ring) noexcept
        : data_(data), count_(count), buf_size_(buf_size), headroom_(headroom), free_(ring) {}

    std::byte* data_;
    std::uint32_t count_;
    std::uint32_t buf_size_;
    std::uint32_t headroom_;
    free_ring* free_;
    pool_view_stats stats_{};
};

/// Where every buffer of a pool is (audit()).
struct audit_report {
    std::uint32_t total = 0;        ///< buffers in the pool's table
    std::uint32_t in_pool = 0;      ///< in the free ring
    std::uint32_t in_rings = 0;     ///< published in one of the rings given, not yet consumed
    std::uint32_t held = 0;         ///< in the caller's hands (the list it passed)
    std::uint32_t with_peer = 0;    ///< none of the above: with the other side
    std::uint32_t duplicates = 0;   ///< found in two places (a double free or a corrupt ring)
    std::uint32_t out_of_range = 0; ///< indices past the pool found in a ring or the held list

    /// Every buffer in exactly one place.
    [[nodiscard]] bool consistent() const noexcept {
        return duplicates == 0 && out_of_range == 0 &&
               in_pool + in_rings + held + with_peer == total;
    }
    /// Every buffer back in the pool.
    [[nodiscard]] bool all_home() const noexcept { return consistent() && in_pool == total; }
};

/// Marks of audit(): one byte per buffer, what reclaim() reads.
enum class buffer_place : std::uint8_t { with_peer = 0, in_pool, in_ring, held };

namespace detail {

template <class T>
void mark_all(std::span<const T> items, std::span<std::uint8_t> marks, buffer_place where,
              std::uint32_t& counter, audit_report& r) noexcept {
    for (const T& item : items) {
        const std::uint32_t b = buffer_index(item);
        if (b >= marks.size()) {
            ++r.out_of_range;
        } else if (marks[b] != 0) {
            ++r.duplicates;
        } else {
            marks[b] = static_cast<std::uint8_t>(where);
            ++counter;
        }
    }
}

template <class Ring>
void mark_ring(const Ring& ring, std::span<std::uint8_t> marks, buffer_place where,
               std::uint32_t& counter, audit_report& r) noexcept {
    const auto c = ring.published();
    mark_all(c.first, marks, where, counter, r);
    mark_all(c.second, marks, where, counter, r);
}

} // namespace detail

/// Finds every buffer of `p`: in its free ring, published in one of `rings`, or in `held`
/// (the caller's own); the rest are with the peer. `marks` has a byte per buffer (the
/// caller's memory, count() bytes; no allocation here). Exact when the peer is dead or
/// quiet and the caller is not using the rings meanwhile.
template <std::uint32_t FreeCapacity, class... Rings>
[[nodiscard]] audit_report audit(const pool<FreeCapacity>& p, std::span<const std::uint32_t> held,
                                 std::span<std::uint8_t> marks, const Rings&... rings) noexcept {
    audit_report r;
    r.total = p.count();
    if (marks.size() < p.count()) {
        r.out_of_range = r.total; // no room to mark: nothing can be proven
        return r;
    }
    marks = marks.first(p.count());
    for (std::uint8_t& m : marks) {
        m = static_cast<std::uint8_t>(buffer_place::with_peer);
    }
    detail::mark_ring(p.ring(), marks, buffer_place::in_pool, r.in_pool, r);
    (detail::mark_ring(rings, marks, buffer_place::in_ring, r.in_rings, r), ...);
    detail::mark_all(held, marks, buffer_place::held, r.held, r);
    for (const std::uint8_t m : marks) {
        r.with_peer += m == static_cast<std::uint8_t>(buffer_place::with_peer) ? 1u : 0u;
    }
    return r;
}

/// Returns to the pool every buffer the last audit() left with the (dead) peer; the caller
/// holds the free ring's producer role (take_over_producer() first if the peer had it).
/// Returns how many.
template <std::uint32_t FreeCapacity>
std::uint32_t reclaim(pool<FreeCapacity>& p, std::span<std::uint8_t> marks) noexcept {
    std::uint32_t n = 0;
    for (std::uint32_t b = 0; b < p.count() && b < marks.size(); ++b) {
        if (marks[b] == static_cast<std::uint8_t>(buffer_place::with_peer)) {
            p.free(b);
            marks[b] = static_cast<std::uint8_t>(buffer_place::in_pool);
            ++n;
        }
    }
    return n;
}

/// Consumes everything published in `ring` and frees it to `p` (the survivor empties a
/// ring whose consumer died, or its own). Indices past the pool are counted by the pool.
template <std::uint32_t FreeCapacity, class Ring>
std::uint32_t drain_to_pool(Ring& ring, pool<FreeCapacity>& p) noexcept {
    typename Ring::value_type items[64];
    std::uint32_t idx[64];
    std::uint32_t total = 0;
    for (;;) {
        const std::uint32_t n = ring.dequeue_burst(std::span<typename Ring::value_type>(items));
        if (n == 0) {
            return total;
        }
        for (std::uint32_t i = 0; i < n; ++i) {
            idx[i] = buffer_index(items[i]);
        }
        p.free_burst(std::span<const std::uint32_t>(idx, n));
        total += n;
    }
}

} // namespace npa::shm
