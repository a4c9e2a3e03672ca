// npa::memory_backing (concepts/memory_backing.hpp), the failing way.
//
// case 0 conforming: compiles
// case 1 not_movable: memory_backing && move_constructible
// case 2 no_base: memory_backing && m.base()
// case 3 base_is_void_pointer: memory_backing && m.base()
// case 4 no_size: memory_backing && m.size()
// case 5 no_iova_base: memory_backing && m.iova_base()
// case 6 iova_base_may_throw: memory_backing && m.iova_base()
// case 7 pool_over_non_backing: fixed_pool && memory_backing
#include <npa/buffer/fixed_pool.hpp>
#include <npa/concepts/memory_backing.hpp>

#include <cstddef>

#ifndef CASE
#define CASE 0
#endif

struct backing {
    backing() = default;
#if CASE == 1
    backing(backing&&) = delete;
#endif
#if CASE == 3
    void* base() const noexcept { return nullptr; }
#elif CASE != 2
    std::byte* base() const noexcept { return nullptr; }
#endif
#if CASE != 4
    std::size_t size() const noexcept { return 0; }
#endif
#if CASE == 6
    npa::iova_t iova_base() const { return 0; }
#elif CASE != 5
    npa::iova_t iova_base() const noexcept { return 0; }
#endif
};

#if CASE == 7
// A pool asked to live in something that is not memory: refused at the template, with
// the concept named, instead of deep inside create().
struct not_memory {};
npa::fixed_pool<not_memory>* pool = nullptr;
#else
static_assert(npa::memory_backing<backing>);
npa::fixed_pool<backing>* pool = nullptr;
#endif
