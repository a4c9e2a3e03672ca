// npa::buffer_pool (concepts/buffer_pool.hpp), the failing way: a pool that conforms
// (case 0) and, per case, the same pool with exactly one requirement broken.
//
// case 0 conforming: compiles
// case 1 no_buffer_type: names_buffer_type
// case 2 buffer_type_not_a_buffer: names_buffer_type
// case 3 no_alloc_burst: buffer_source && alloc_burst
// case 4 alloc_burst_may_throw: buffer_source
// case 5 alloc_bulk_returns_bool: buffer_source && alloc_bulk
// case 6 no_free_burst: buffer_sink && free_burst
// case 7 free_burst_may_throw: buffer_sink
// case 8 no_size: sized_pool && size
// case 9 no_available: sized_pool && available
#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/buffer_pool.hpp>

#include <cstdint>
#include <span>

#ifndef CASE
#define CASE 0
#endif

struct pool {
#if CASE == 2
    using buffer_type = npa::packet_buffer*;
#elif CASE != 1
    using buffer_type = npa::buffer_ref;
#endif

#if CASE == 4
    std::uint32_t alloc_burst(std::span<npa::buffer_ref>) { return 0; }
#elif CASE != 3
    std::uint32_t alloc_burst(std::span<npa::buffer_ref>) noexcept { return 0; }
#endif
#if CASE == 5
    bool alloc_bulk(std::span<npa::buffer_ref>) noexcept { return false; }
#else
    std::uint32_t alloc_bulk(std::span<npa::buffer_ref>) noexcept { return 0; }
#endif
#if CASE == 7
    void free_burst(std::span<const npa::buffer_ref>) {}
#elif CASE != 6
    void free_burst(std::span<const npa::buffer_ref>) noexcept {}
#endif
#if CASE != 8
    std::uint32_t size() const noexcept { return 0; }
#endif
#if CASE != 9
    std::uint32_t available() const noexcept { return 0; }
#endif
};

// One break per case. (A pool without a buffer type cannot be a source or a sink at
// all, so cases 1 and 2 are allowed to take those two down with them.)
#define TARGETS(lo, hi) (CASE >= (lo) && CASE <= (hi))
static_assert(TARGETS(1, 2) || npa::names_buffer_type<pool>, "NPA_CF_COLLATERAL names_buffer_type");
static_assert(TARGETS(1, 5) || npa::buffer_source<pool>, "NPA_CF_COLLATERAL buffer_source");
static_assert(TARGETS(1, 2) || TARGETS(6, 7) || npa::buffer_sink<pool>, "NPA_CF_COLLATERAL buffer_sink");
static_assert(TARGETS(8, 9) || npa::sized_pool<pool>, "NPA_CF_COLLATERAL sized_pool");

static_assert(npa::buffer_pool<pool>);
