// npa/concepts/shell_api.hpp: what the shell offers a plugin (the "Shell API" of NPA).
//
// A plugin reaches the rest of the system only through this: buffers in (RX refill),
// buffers out (TX completed, TX not sent, RX buffers handed back) and logging. Device
// addresses come from the buffer handles themselves. There is deliberately no way to
// reach the control path (MAC, VLAN, MTU ...): that belongs to the shell and the
// hypervisor, and a plugin that tries does not compile.
//
// Checked by the compiler: the operations below exist, are noexcept and take queue ids
// and spans of the shell's buffer type.
//
// Optional (detected with if constexpr): provides_clock, a monotonic clock
//   std::uint64_t now_ns() noexcept, nanoseconds from an arbitrary origin. The shell's API
//   reads its Env::now_ns(); the sim's test_api a clock the test moves. A plugin uses it to
//   bound a wait in time (how long a device may keep a write-back back before it is
//   accused) and must still work without it (a host whose API has none): it then bounds
//   the wait by something it can count, conservatively. (A plugin image always sees a
//   clock, image/entry.hpp: one that stands still if its host has none.) A now_ns() of
//   another shape is refused (the API is then no shell_api), never taken for "no clock".
//   Read it only when something is waited for, not per packet: it is not free.
//
// Semantic requirements (not checked by the compiler):
//   - alloc_rx_buffers(q, out) gives 0..n empty buffers from queue q's pool; the plugin
//     posts what it got and counts the shortfall in its own queue_stats::rx_no_buffer (the
//     shell keeps no count of its own: path_stats and rx_drops read the plugin's);
//   - tx_complete(q, bufs): the device finished sending these; the shell frees them;
//   - tx_unsent(q, bufs): the plugin accepted these but cannot say they were sent
//     (detach, ring reset, device gone), in the order they were accepted; the shell sends
//     them again on the path that is active next, ahead of anything newer. Not for TX that
//     a completion passed over: the device took those and may have sent them, so they go
//     through tx_complete (concepts/plugin.hpp);
//   - release_rx_buffers(q, bufs): RX buffers the plugin no longer needs (detach, a
//     dropped packet not reposted);
//   - all are called from the thread that owns queue q, never allocate, never block;
//   - now_ns() never goes backwards, and may be read from any queue's thread.
#pragma once

#include <npa/concepts/buffer.hpp>

#include <concepts>
#include <cstdint>
#include <span>

namespace npa {

enum class log_level : std::uint8_t { debug, info, warning, error };

template <class A>
concept shell_buffer_api = requires { typename A::buffer_type; } && buffer<typename A::buffer_type>;

template <class A>
concept shell_rx_api = shell_buffer_api<A> &&
    requires(A& a, std::uint16_t q, std::span<typename A::buffer_type> out,
             std::span<const typename A::buffer_type> in) {
        { a.alloc_rx_buffers(q, out) } noexcept -> std::same_as<std::uint32_t>;
        { a.release_rx_buffers(q, in) } noexcept;
    };

template <class A>
concept shell_tx_api = shell_buffer_api<A> &&
    requires(A& a, std::uint16_t q, std::span<const typename A::buffer_type> in) {
        { a.tx_complete(q, in) } noexcept;
        { a.tx_unsent(q, in) } noexcept;
    };

template <class A>
concept shell_log_api = requires(A& a, const char* msg) {
    { a.log(log_level::info, msg) } noexcept;
};

/// Optional: a monotonic clock in nanoseconds (see above).
template <class A>
concept provides_clock = requires(A& a) {
    { a.now_ns() } noexcept -> std::same_as<std::uint64_t>;
};

/// An API either has no now_ns() at all or has the one provides_clock names: a clock that
/// may throw or answers in another type is an error, not an API without a clock.
template <class A>
concept shell_clock_api = provides_clock<A> || !requires(A& a) { a.now_ns(); };

template <class A>
concept shell_api = shell_rx_api<A> && shell_tx_api<A> && shell_log_api<A> && shell_clock_api<A>;

} // namespace npa
