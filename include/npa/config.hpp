// npa/config.hpp: the few macros and constants every npa header relies on.
//
// The core is header-only C++20. It must also build under kernel-style flags
// (-ffreestanding -fno-exceptions -fno-rtti), so nothing here pulls in iostreams,
// exceptions or RTTI.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__GNUC__) || defined(__clang__)
#define NPA_LIKELY(x) __builtin_expect(!!(x), 1)
#define NPA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NPA_ALWAYS_INLINE inline __attribute__((always_inline))
#define NPA_NOINLINE __attribute__((noinline))
#else
#define NPA_LIKELY(x) (x)
#define NPA_UNLIKELY(x) (x)
#define NPA_ALWAYS_INLINE inline
#define NPA_NOINLINE
#endif

namespace npa {

/// Size of the unit of cache coherence. 64 on every x86-64 and most arm64 parts; the
/// producer and consumer halves of a ring are kept this far apart so that they never
/// share a line (false sharing costs more than the ring operation itself).
inline constexpr std::size_t cache_line_size = 64;

/// A device (DMA) address: what the device puts on the bus to reach a buffer.
using iova_t = std::uint64_t;

/// Sentinel for "no device address" (for example a buffer whose memory is not mapped
/// for DMA).
inline constexpr iova_t bad_iova = ~iova_t{0};

[[nodiscard]] constexpr bool is_power_of_two(std::uint64_t v) noexcept {
    return v != 0 && (v & (v - 1)) == 0;
}

} // namespace npa
