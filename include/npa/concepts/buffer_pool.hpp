// npa/concepts/buffer_pool.hpp: a source and sink of buffers.
//
// Checked by the compiler: the pool names its buffer type, which is an npa::buffer, and
// offers burst and bulk allocation, burst free, and its size and fill level.
//
// Semantic requirements (not checked by the compiler):
//   - alloc_burst returns 0..n buffers, alloc_bulk 0 or n; a shortfall is counted by the
//     pool, never an abort or an exception;
//   - every buffer handed out is empty (length 0, offloads cleared, default headroom);
//   - free_burst takes ownership back; freeing a buffer twice or one from another pool
//     must not corrupt the pool (npa::fixed_pool counts and ignores both);
//   - neither call allocates memory: all of it was taken when the pool was created;
//   - size() is constant; size() - available() buffers are out of the pool.
#pragma once

#include <npa/concepts/buffer.hpp>

#include <concepts>
#include <cstdint>
#include <span>

namespace npa {

template <class P>
concept names_buffer_type = requires { typename P::buffer_type; } && buffer<typename P::buffer_type>;

template <class P>
concept buffer_source = names_buffer_type<P> &&
    requires(P& p, std::span<typename P::buffer_type> out) {
        { p.alloc_burst(out) } noexcept -> std::same_as<std::uint32_t>;
        { p.alloc_bulk(out) } noexcept -> std::same_as<std::uint32_t>;
    };

template <class P>
concept buffer_sink = names_buffer_type<P> &&
    requires(P& p, std::span<const typename P::buffer_type> in) {
        { p.free_burst(in) } noexcept;
    };

template <class P>
concept sized_pool = requires(const P& p) {
    { p.size() } noexcept -> std::convertible_to<std::uint32_t>;
    { p.available() } noexcept -> std::convertible_to<std::uint32_t>;
};

template <class P>
concept buffer_pool = buffer_source<P> && buffer_sink<P> && sized_pool<P>;

} // namespace npa
