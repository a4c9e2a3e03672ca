// npa/concepts/memory_backing.hpp: memory a pool or ring can be built in.
//
// Checked by the compiler: base address, size and the device address of the base.
//
// Semantic requirements (not checked by the compiler):
//   - [base(), base() + size()) is one mapping, contiguous for the device too: the
//     device address of base() + k is iova_base() + k;
//   - the memory stays mapped, at the same address, while any pool or ring built on it
//     exists (an owning backing moves without moving the memory).
#pragma once

#include <npa/config.hpp>

#include <concepts>
#include <cstddef>

namespace npa {

template <class M>
concept memory_backing = std::move_constructible<M> && requires(const M& m) {
    { m.base() } noexcept -> std::same_as<std::byte*>;
    { m.size() } noexcept -> std::convertible_to<std::size_t>;
    { m.iova_base() } noexcept -> std::same_as<iova_t>;
};

} // namespace npa
