// npa/concepts/buffer.hpp: what the data path needs of a packet buffer handle.
//
// Checked by the compiler: the handle is a small trivially copyable value, comparable,
// with a null state; it gives the packet's bytes and their device address, the length
// and room, and the offload metadata.
//
// Semantic requirements (not checked by the compiler):
//   - a handle is a reference, not an owner: copying it does not copy the packet, and
//     exactly one party (pool, caller, shell backlog or a plugin's ring) owns the buffer
//     behind it at any instant; passing a handle across an API transfers that ownership;
//   - iova() is the device address of data(), valid for DMA for as long as the buffer is
//     out of its pool, and data() .. data() + capacity() is one contiguous mapping;
//   - length() <= capacity() always; set_length() with more than capacity() is a bug of
//     the caller (plugins check device-written lengths before calling it);
//   - no accessor allocates, blocks or throws.
#pragma once

#include <npa/config.hpp>
#include <npa/offload.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace npa {

/// A cheap value that names a buffer: trivially copyable, at most two words, comparable,
/// default-constructible to "no buffer".
template <class H>
concept buffer_handle = std::is_trivially_copyable_v<H> && (sizeof(H) <= 16) &&
                        std::default_initializable<H> && std::equality_comparable<H>;

/// Gives the packet bytes and their device address.
template <class H>
concept addressable_buffer = requires(const H h) {
    { h.data() } noexcept -> std::same_as<std::byte*>;
    { h.iova() } noexcept -> std::same_as<iova_t>;
};

/// Gives and sets the packet length, and the room available for it.
template <class H>
concept sized_buffer = requires(const H h, std::uint32_t n) {
    { h.length() } noexcept -> std::convertible_to<std::uint32_t>;
    { h.set_length(n) } noexcept;
    { h.capacity() } noexcept -> std::convertible_to<std::uint32_t>;
};

/// Carries offload metadata (checksum, VLAN, TSO, RSS) by value.
template <class H>
concept offload_carrier = requires(const H h, const offload_info& o) {
    { h.offload() } noexcept -> std::convertible_to<offload_info>;
    { h.set_offload(o) } noexcept;
};

template <class H>
concept buffer = buffer_handle<H> && addressable_buffer<H> && sized_buffer<H> && offload_carrier<H>;

} // namespace npa
