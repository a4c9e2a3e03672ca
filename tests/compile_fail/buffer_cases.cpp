// npa::buffer (concepts/buffer.hpp), the failing way: a handle that conforms (case 0)
// and, per case, the same handle with exactly one requirement broken.
//
// case 0 conforming: compiles
// case 1 not_trivially_copyable: buffer_handle && is_trivially_copyable_v
// case 2 larger_than_two_words: buffer_handle && <= 16
// case 3 no_null_state: buffer_handle
// case 4 not_comparable: buffer_handle && equality_comparable
// case 5 no_data: addressable_buffer && h.data()
// case 6 data_not_bytes: addressable_buffer && h.data()
// case 7 data_may_throw: addressable_buffer
// case 8 no_iova: addressable_buffer && h.iova()
// case 9 no_length: sized_buffer && h.length()
// case 10 no_set_length: sized_buffer && h.set_length(n)
// case 11 no_capacity: sized_buffer && h.capacity()
// case 12 no_offload: offload_carrier && h.offload()
// case 13 no_set_offload: offload_carrier && h.set_offload(o)
#include <npa/concepts/buffer.hpp>

#include <cstddef>
#include <cstdint>

#ifndef CASE
#define CASE 0
#endif

struct handle {
#if CASE == 3
    explicit handle(int) noexcept {}
#else
    handle() noexcept = default;
#endif
#if CASE == 1
    handle(const handle& o) noexcept : p(o.p) {}
    handle& operator=(const handle&) noexcept = default;
#endif
#if CASE != 4
    friend bool operator==(handle, handle) noexcept = default;
#endif

#if CASE == 6
    void* data() const noexcept { return nullptr; }
#elif CASE == 7
    std::byte* data() const { return nullptr; }
#elif CASE != 5
    std::byte* data() const noexcept { return nullptr; }
#endif
#if CASE != 8
    npa::iova_t iova() const noexcept { return 0; }
#endif
#if CASE != 9
    std::uint32_t length() const noexcept { return 0; }
#endif
#if CASE != 10
    void set_length(std::uint32_t) const noexcept {}
#endif
#if CASE != 11
    std::uint32_t capacity() const noexcept { return 0; }
#endif
#if CASE != 12
    npa::offload_info offload() const noexcept { return {}; }
#endif
#if CASE != 13
    void set_offload(const npa::offload_info&) const noexcept {}
#endif

    void* p = nullptr;
#if CASE == 2
    void* extra[2] = {nullptr, nullptr};
#endif
};

// One break per case: every requirement the case does not target still holds.
#define TARGETS(lo, hi) (CASE >= (lo) && CASE <= (hi))
static_assert(TARGETS(1, 4) || npa::buffer_handle<handle>, "NPA_CF_COLLATERAL buffer_handle");
static_assert(TARGETS(5, 8) || npa::addressable_buffer<handle>, "NPA_CF_COLLATERAL addressable");
static_assert(TARGETS(9, 11) || npa::sized_buffer<handle>, "NPA_CF_COLLATERAL sized_buffer");
static_assert(TARGETS(12, 13) || npa::offload_carrier<handle>, "NPA_CF_COLLATERAL offload");

static_assert(npa::buffer<handle>);
