// tests/linux/shm_stream.hpp: the stream the shared-region tests and benchmark run: one
// pool and one data ring in a region; the producer allocates buffers, writes a sequence
// number and a pattern into each and publishes it on the ring; the consumer checks every
// buffer and frees it straight back into the pool (the pool's free ring carries it home).
#pragma once

#include <npa/shm/region.hpp>

#include <cstdint>
#include <cstring>

namespace shm_stream {

namespace shm = npa::shm;

inline constexpr std::uint32_t pool_count = 4096;
inline constexpr std::uint32_t buf_size = 256;
inline constexpr std::uint32_t headroom = 64;
inline constexpr std::uint32_t ring_capacity = 1024;
inline constexpr std::uint32_t burst = 32;
/// Idle loops between two looks at the peer's liveness (a syscall), and between beats.
inline constexpr std::uint32_t idle_check = 1024;

using data_ring = npa::index_ring<shm::buf_desc, ring_capacity>;
using pool_type = shm::pool<pool_count>;

/// Object indices the layout below gives (free ring 0, pool 1, data ring 2).
inline constexpr std::uint32_t pool_obj = 1;
inline constexpr std::uint32_t ring_obj = 2;

[[nodiscard]] inline shm::layout make_layout() {
    shm::layout l;
    l.add_pool(pool_count, buf_size, headroom, pool_count, /*tag=*/1);
    l.add_ring(ring_capacity, sizeof(shm::buf_desc), /*tag=*/2);
    return l;
}

struct endpoints {
    data_ring* ring;
    pool_type pool;
};

/// The stream's objects in `r`; `create` builds them (the creator, before the peer).
[[nodiscard]] inline npa::result<endpoints> open(const shm::region& r, bool create) {
    auto ring = r.ring<data_ring>(ring_obj, create);
    if (!ring) {
        return ring.error();
    }
    auto pool = pool_type::at(r, pool_obj, create);
    if (!pool) {
        return pool.error();
    }
    return endpoints{*ring, *pool};
}

/// Payload length of sequence number `seq`: 16..63 bytes.
[[nodiscard]] constexpr std::uint32_t length_of(std::uint64_t seq) noexcept {
    return 16 + static_cast<std::uint32_t>(seq % 48);
}
[[nodiscard]] constexpr std::uint8_t pattern(std::uint64_t seq, std::uint32_t i) noexcept {
    return static_cast<std::uint8_t>(seq * 31 + i);
}

/// Counts an idle loop; every idle_check of them, beats and asks `stop()`. True: stop.
template <class Stop, class Beat>
bool idle_tick(std::uint32_t& idle, std::uint64_t& idle_loops, Stop& stop, Beat& beat) {
    ++idle_loops;
    if (++idle < idle_check) {
        return false;
    }
    idle = 0;
    beat();
    return stop();
}

/// The producer's state: what it has allocated and not yet published is `held`.
struct producer {
    std::uint64_t sent = 0;
    std::uint32_t held[burst];
    std::uint32_t held_n = 0;
    std::uint32_t held_at = 0; ///< held[held_at, held_n) are filled and waiting for room
    std::uint64_t idle_loops = 0;
};

/// Runs the producer until `total` buffers are published or `stop()` says so (checked
/// every idle_check idle loops). Returns true when all were sent.
template <class Stop, class Beat>
bool produce(endpoints& e, producer& p, std::uint64_t total, Stop&& stop, Beat&& beat) {
    shm::buf_desc d[burst];
    std::uint32_t idle = 0;
    while (p.sent < total || p.held_at < p.held_n) {
        if (p.held_at == p.held_n) {
            const std::uint64_t left = total - p.sent;
            const auto want = static_cast<std::uint32_t>(left < burst ? left : burst);
            p.held_n = e.pool.alloc_burst(std::span<std::uint32_t>(p.held, want));
            p.held_at = 0;
            for (std::uint32_t i = 0; i < p.held_n; ++i) {
                const std::uint64_t seq = p.sent + i;
                std::byte* b = e.pool.payload(p.held[i]);
                const std::uint32_t len = length_of(seq);
                std::memcpy(b, &seq, sizeof(seq));
                for (std::uint32_t k = sizeof(seq); k < len; ++k) {
                    b[k] = std::byte{pattern(seq, k)};
                }
            }
            p.sent += p.held_n;
        }
        const std::uint32_t pending = p.held_n - p.held_at;
        const std::uint64_t first_seq = p.sent - pending;
        for (std::uint32_t i = 0; i < pending; ++i) {
            d[i] = {p.held[p.held_at + i], length_of(first_seq + i)};
        }
        const std::uint32_t n =
            pending == 0 ? 0 : e.ring->enqueue_burst(std::span<const shm::buf_desc>(d, pending));
        p.held_at += n;
        if (n == 0 && idle_tick(idle, p.idle_loops, stop, beat)) {
            return false;
        }
    }
    return true;
}

struct consumer {
    std::uint64_t received = 0;
    std::uint64_t bad = 0;     ///< wrong sequence, length, pattern or buffer index
    std::uint64_t idle_loops = 0;
    /// Buffers kept before they are freed (a consumer with work in flight); 0: free at once.
    std::uint32_t hold = 0;
    npa::index_ring<std::uint32_t, 1024> window; ///< the held ones, oldest first
};

/// Frees `idx` to the pool, through the consumer's window when it holds buffers.
inline void release(shm_stream::endpoints& e, consumer& c, std::span<const std::uint32_t> idx) {
    if (c.hold == 0) {
        e.pool.free_burst(idx);
        return;
    }
    (void)c.window.enqueue_bulk(idx); // hold + burst <= the window's capacity
    std::uint32_t out[burst];
    while (c.window.size() > c.hold) {
        const std::uint32_t excess = c.window.size() - c.hold;
        const std::uint32_t n = c.window.dequeue_burst(
            std::span<std::uint32_t>(out, excess < burst ? excess : burst));
        e.pool.free_burst(std::span<const std::uint32_t>(out, n));
    }
}

/// Checks one buffer of the stream against the sequence number it must carry.
[[nodiscard]] inline bool check(const pool_type& pool, const shm::buf_desc& d,
                                std::uint64_t seq) noexcept {
    const std::byte* b = pool.payload(d.buf); // nullptr for an index past the pool
    if (b == nullptr || d.len != length_of(seq)) {
        return false;
    }
    std::uint64_t got = 0;
    std::memcpy(&got, b, sizeof(got));
    if (got != seq) {
        return false;
    }
    for (std::uint32_t k = sizeof(seq); k < d.len; ++k) {
        if (b[k] != std::byte{pattern(seq, k)}) {
            return false;
        }
    }
    return true;
}

/// Runs the consumer until `total` buffers were received or `stop()` says so. Every
/// buffer is checked and freed to the pool at once.
template <class Stop, class Beat>
bool consume(endpoints& e, consumer& c, std::uint64_t total, Stop&& stop, Beat&& beat) {
    shm::buf_desc d[burst];
    std::uint32_t idx[burst];
    std::uint32_t idle = 0;
    while (c.received < total) {
        const std::uint64_t left = total - c.received;
        const auto want = static_cast<std::uint32_t>(left < burst ? left : burst);
        const std::uint32_t n = e.ring->dequeue_burst(std::span<shm::buf_desc>(d, want));
        if (n == 0) {
            if (idle_tick(idle, c.idle_loops, stop, beat)) {
                return false;
            }
            continue;
        }
        for (std::uint32_t i = 0; i < n; ++i) {
            c.bad += check(e.pool, d[i], c.received + i) ? 0 : 1;
            idx[i] = d[i].buf;
        }
        release(e, c, std::span<const std::uint32_t>(idx, n));
        c.received += n;
    }
    return true;
}

} // namespace shm_stream
