// npa::shell_api (concepts/shell_api.hpp), the failing way: a shell API that conforms
// (case 0) and, per case, the same API with exactly one requirement broken.
//
// case 0 conforming: compiles
// case 1 no_buffer_type: shell_buffer_api
// case 2 buffer_type_not_a_buffer: shell_buffer_api
// case 3 no_alloc_rx_buffers: shell_rx_api && alloc_rx_buffers
// case 4 alloc_rx_buffers_returns_nothing: shell_rx_api && alloc_rx_buffers
// case 5 alloc_rx_buffers_may_throw: shell_rx_api && alloc_rx_buffers
// case 6 no_release_rx_buffers: shell_rx_api && release_rx_buffers
// case 7 no_tx_complete: shell_tx_api && tx_complete
// case 8 tx_complete_may_throw: shell_tx_api && tx_complete
// case 9 no_tx_unsent: shell_tx_api && tx_unsent
// case 10 no_log: shell_log_api && log
// case 11 log_may_throw: shell_log_api && log
// case 12 now_ns_may_throw: shell_clock_api && now_ns
// case 13 now_ns_returns_int: shell_clock_api && now_ns
#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/shell_api.hpp>

#include <cstdint>
#include <span>

#ifndef CASE
#define CASE 0
#endif

struct api {
#if CASE == 2
    using buffer_type = int;
#elif CASE != 1
    using buffer_type = npa::buffer_ref;
#endif
    using buf = npa::buffer_ref;

#if CASE == 4
    void alloc_rx_buffers(std::uint16_t, std::span<buf>) noexcept {}
#elif CASE == 5
    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<buf>) { return 0; }
#elif CASE != 3
    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<buf>) noexcept { return 0; }
#endif
#if CASE != 6
    void release_rx_buffers(std::uint16_t, std::span<const buf>) noexcept {}
#endif
#if CASE == 8
    void tx_complete(std::uint16_t, std::span<const buf>) {}
#elif CASE != 7
    void tx_complete(std::uint16_t, std::span<const buf>) noexcept {}
#endif
#if CASE != 9
    void tx_unsent(std::uint16_t, std::span<const buf>) noexcept {}
#endif
#if CASE == 11
    void log(npa::log_level, const char*) {}
#elif CASE != 10
    void log(npa::log_level, const char*) noexcept {}
#endif
#if CASE == 12
    std::uint64_t now_ns() { return 0; }
#elif CASE == 13
    int now_ns() noexcept { return 0; }
#endif
};

// One break per case (without a buffer type neither the RX nor the TX half can exist,
// so cases 1 and 2 take those down with them).
#define TARGETS(lo, hi) (CASE >= (lo) && CASE <= (hi))
static_assert(TARGETS(1, 2) || npa::shell_buffer_api<api>, "NPA_CF_COLLATERAL shell_buffer_api");
static_assert(TARGETS(1, 6) || npa::shell_rx_api<api>, "NPA_CF_COLLATERAL shell_rx_api");
static_assert(TARGETS(1, 2) || TARGETS(7, 9) || npa::shell_tx_api<api>, "NPA_CF_COLLATERAL shell_tx_api");
static_assert(TARGETS(10, 11) || npa::shell_log_api<api>, "NPA_CF_COLLATERAL shell_log_api");
static_assert(TARGETS(12, 13) || npa::shell_clock_api<api>, "NPA_CF_COLLATERAL shell_clock_api");

static_assert(npa::shell_api<api>);
