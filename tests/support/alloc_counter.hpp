// tests/support/alloc_counter.hpp: counts heap allocations made while a test says the
// data path is running, so "no allocation on the data path" is asserted, not claimed.
//
// Include it in exactly one translation unit of a test program: it replaces the global
// operator new and delete (C++ [replacement.functions]). Counting is per thread and off by
// default; `npa::test::no_alloc_scope` turns it on for the calls inside its scope.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace npa::test {

inline thread_local bool counting = false;
inline thread_local std::uint64_t allocations = 0;

/// While alive, every operator new on this thread is counted in allocations().
class no_alloc_scope {
public:
    no_alloc_scope() noexcept : was_(counting) { counting = true; }
    ~no_alloc_scope() { counting = was_; }
    no_alloc_scope(const no_alloc_scope&) = delete;
    no_alloc_scope& operator=(const no_alloc_scope&) = delete;

private:
    bool was_;
};

inline void* counted_alloc(std::size_t n, std::size_t align) {
    if (counting)
        ++allocations;
    if (n == 0)
        n = 1;
    void* p = align > alignof(std::max_align_t)
                  ? std::aligned_alloc(align, (n + align - 1) / align * align)
                  : std::malloc(n);
    if (p == nullptr)
        throw std::bad_alloc();
    return p;
}

// Out of line so that GCC, seeing operator new and std::free meet after inlining, does not
// take the pair for a mismatch (-Wmismatched-new-delete): both sides are ours.
[[gnu::noinline]] inline void counted_free(void* p) noexcept { std::free(p); }

} // namespace npa::test

void* operator new(std::size_t n) { return npa::test::counted_alloc(n, 0); }
void* operator new[](std::size_t n) { return npa::test::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
    return npa::test::counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return npa::test::counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return npa::test::counted_alloc(n, 0);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return ::operator new(n, std::nothrow);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try {
        return npa::test::counted_alloc(n, static_cast<std::size_t>(a));
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return ::operator new(n, a, std::nothrow);
}
void operator delete(void* p) noexcept { npa::test::counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { npa::test::counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { npa::test::counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    npa::test::counted_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    npa::test::counted_free(p);
}
void operator delete[](void* p) noexcept { npa::test::counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { npa::test::counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { npa::test::counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { npa::test::counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { npa::test::counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    npa::test::counted_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    npa::test::counted_free(p);
}
