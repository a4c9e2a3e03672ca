// operator new and delete inside a plugin image. The core's ring books (slot_ring::reset)
// allocate on the control path with new (std::nothrow); an image has no C++ runtime, so
// these forward to the memory functions of the host table the image was entered with
// (npa/image/entry.hpp). They are never called on the data path.
#include <npa/image/entry.hpp>

#include <cstddef>
#include <new>

// The tag object new (std::nothrow) names: the C++ runtime defines it, and an image has
// none of its own.
namespace std {
extern const nothrow_t nothrow;
const nothrow_t nothrow{};
} // namespace std

namespace {
void* image_alloc(std::size_t n, std::size_t align) noexcept {
    const npa::image::shell_table* t = npa::image::entry_table;
    return t != nullptr ? t->mem_alloc(n == 0 ? 1 : n, align) : nullptr;
}
void image_free(void* p) noexcept {
    if (p != nullptr && npa::image::entry_table != nullptr) {
        npa::image::entry_table->mem_free(p);
    }
}
constexpr std::size_t default_align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
} // namespace

// Without exceptions a failed plain new cannot throw: it traps (the core never uses it).
void* operator new(std::size_t n) {
    void* p = image_alloc(n, default_align);
    if (p == nullptr) {
        __builtin_trap();
    }
    return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return image_alloc(n, default_align); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return image_alloc(n, default_align);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return image_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    return image_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { image_free(p); }
void operator delete[](void* p) noexcept { image_free(p); }
void operator delete(void* p, std::size_t) noexcept { image_free(p); }
void operator delete[](void* p, std::size_t) noexcept { image_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { image_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { image_free(p); }
