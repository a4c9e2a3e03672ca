// npa::detail::bulk_copy (detail/bulk_copy.hpp), the copy behind ring bursts of 256 bytes
// and more: every length from its minimum to past the string move's threshold, at source and
// destination offsets that put the 32-byte vectors at every alignment, checked byte for
// byte against the source, with guard bytes on both sides of the destination that must
// stay untouched (the overlapping tail blocks must not reach outside the range).
#include <doctest/doctest.h>

#include <npa/detail/bulk_copy.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// Past the string move's threshold too, with lengths that are not multiples of 8.
constexpr std::size_t max_len = npa::detail::bulk_copy_string_min_bytes + 512 + 100;
constexpr std::size_t guard = 64;
constexpr std::array<std::size_t, 6> offsets = {0, 1, 8, 16, 24, 31};

using copy_fn = void (*)(void*, const void*, std::size_t) noexcept;

/// Copies every length at every offset pair with `fn`; returns the number of bad copies.
std::size_t check_all(copy_fn fn, std::size_t min_len = npa::detail::bulk_copy_min_bytes) {
    std::vector<std::uint8_t> src(max_len + 64);
    for (std::size_t i = 0; i < src.size(); ++i) {
        src[i] = static_cast<std::uint8_t>(i * 131 + 7);
    }
    std::vector<std::uint8_t> dst(guard + max_len + 64 + guard);
    std::size_t bad = 0;
    for (std::size_t len = min_len; len <= max_len; ++len) {
        for (const std::size_t so : offsets) {
            for (const std::size_t d_off : offsets) {
                std::memset(dst.data(), 0xA5, dst.size());
                std::uint8_t* const d = dst.data() + guard + d_off;
                fn(d, src.data() + so, len);
                bool ok = std::memcmp(d, src.data() + so, len) == 0;
                for (std::uint8_t* p = dst.data(); p < d; ++p) {
                    ok = ok && *p == 0xA5;
                }
                for (std::uint8_t* p = d + len; p < dst.data() + dst.size(); ++p) {
                    ok = ok && *p == 0xA5;
                }
                if (!ok) {
                    ++bad;
                    if (bad <= 5) {
                        MESSAGE("bad copy: length " << len << ", source offset " << so
                                                    << ", destination offset " << d_off);
                    }
                }
            }
        }
    }
    return bad;
}

} // namespace

TEST_CASE("bulk_copy: every length from 256 bytes, every alignment, nothing outside") {
    CHECK(check_all(&npa::detail::bulk_copy) == 0);
}

#if NPA_BULK_COPY_AVX2
TEST_CASE("bulk_copy: the AVX2 routine itself, where the CPU has AVX2") {
    if (!__builtin_cpu_supports("avx2")) {
        MESSAGE("no AVX2 on this CPU: bulk_copy uses memcpy, the routine is not run");
        return;
    }
    CHECK(check_all(&npa::detail::bulk_copy_avx2) == 0);
}
#endif

#if NPA_BULK_COPY_AVX2
TEST_CASE("bulk_copy: the string move itself, every length from 8 bytes") {
    CHECK(check_all(&npa::detail::bulk_copy_string, 8) == 0);
}
#endif
