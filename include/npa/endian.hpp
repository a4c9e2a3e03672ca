// npa/endian.hpp: device byte order, spelled out.
//
// Devices define the byte order of what they share with the driver: vmxnet3's shared
// memory and descriptors, the 82576's descriptors and registers, virtio 1.x rings and
// PCI configuration space are all little-endian, whatever the CPU is (Linux declares
// such fields __le32 and reads them with le32_to_cpu). npa says the same in the type:
//
//   npa::le16 / le32 / le64   a field stored little-endian. It converts to and from the
//                             native integer, so `d.len = 60` and `std::uint32_t n = d.len`
//                             store and load the device's byte order on every host. On a
//                             little-endian host the conversion is nothing (a plain move);
//                             on a big-endian host it is one byte swap.
//   x.load(order) / x.store(v, order)
//                             the same through std::atomic_ref, for a field the other side
//                             polls (a generation word, txNumDeferred).
//   x.raw()                   the stored bytes as an integer, unconverted: only for code
//                             that compares or copies whole words in device order
//                             (gen_ring's ownership masks are kept in device order too).
//   load_le32(p) / store_le32(p, v) ...
//                             the same for a byte pointer (a packet header, a register
//                             mapped by a platform), through memcpy: no alignment needed.
//   to_le32(v) / from_le32(v) ...
//                             the conversion alone, constexpr.
//
// Headers the kernel defines in host order (AF_XDP descriptors, TPACKET frame headers) stay
// plain integers: wrapping them would be the bug.
//
// Freestanding: standard headers only, no OS headers, usable in the kernel-style build.
#pragma once

#include <atomic>
#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace npa {

static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big,
              "npa supports little- and big-endian hosts, not mixed-endian ones");

/// Reverses the bytes of an unsigned integer (std::byteswap is C++23).
template <std::unsigned_integral T>
[[nodiscard]] constexpr T byteswap(T v) noexcept {
    if constexpr (sizeof(T) == 1) {
        return v;
    } else if constexpr (sizeof(T) == 2) {
        return static_cast<T>(__builtin_bswap16(v));
    } else if constexpr (sizeof(T) == 4) {
        return static_cast<T>(__builtin_bswap32(v));
    } else {
        static_assert(sizeof(T) == 8, "byteswap: 1, 2, 4 or 8 bytes");
        return static_cast<T>(__builtin_bswap64(v));
    }
}

/// Converts between native order and `Order` (the same operation both ways).
template <std::endian Order, std::unsigned_integral T>
[[nodiscard]] constexpr T convert_order(T v) noexcept {
    if constexpr (Order == std::endian::native) {
        return v;
    } else {
        return byteswap(v);
    }
}

[[nodiscard]] constexpr std::uint16_t to_le16(std::uint16_t v) noexcept {
    return convert_order<std::endian::little>(v);
}
[[nodiscard]] constexpr std::uint32_t to_le32(std::uint32_t v) noexcept {
    return convert_order<std::endian::little>(v);
}
[[nodiscard]] constexpr std::uint64_t to_le64(std::uint64_t v) noexcept {
    return convert_order<std::endian::little>(v);
}
[[nodiscard]] constexpr std::uint16_t from_le16(std::uint16_t v) noexcept {
    return convert_order<std::endian::little>(v);
}
[[nodiscard]] constexpr std::uint32_t from_le32(std::uint32_t v) noexcept {
    return convert_order<std::endian::little>(v);
}
[[nodiscard]] constexpr std::uint64_t from_le64(std::uint64_t v) noexcept {
    return convert_order<std::endian::little>(v);
}

/// Loads and stores at any byte address (no alignment required).
[[nodiscard]] inline std::uint16_t load_le16(const void* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return from_le16(v);
}
[[nodiscard]] inline std::uint32_t load_le32(const void* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return from_le32(v);
}
[[nodiscard]] inline std::uint64_t load_le64(const void* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return from_le64(v);
}
inline void store_le16(void* p, std::uint16_t v) noexcept {
    v = to_le16(v);
    std::memcpy(p, &v, sizeof v);
}
inline void store_le32(void* p, std::uint32_t v) noexcept {
    v = to_le32(v);
    std::memcpy(p, &v, sizeof v);
}
inline void store_le64(void* p, std::uint64_t v) noexcept {
    v = to_le64(v);
    std::memcpy(p, &v, sizeof v);
}

/// An integer field stored in byte order `Order`, converted on every access.
///
/// Same size and alignment as T and trivially copyable, so device layouts keep their
/// sizes and offsets (static_assert'ed where they are defined) and can be memcpy'd. The
/// default constructor leaves the value uninitialised, as for T, so the type may sit in
/// a union (Intel's read / write-back descriptor formats).
template <std::unsigned_integral T, std::endian Order>
class endian_value {
public:
    using value_type = T;

    endian_value() noexcept = default;
    constexpr endian_value(T v) noexcept
        : raw_(convert_order<Order>(v)) {} // NOLINT: implicit by design

    constexpr operator T() const noexcept { return convert_order<Order>(raw_); } // NOLINT
    [[nodiscard]] constexpr T get() const noexcept { return convert_order<Order>(raw_); }
    constexpr void set(T v) noexcept { raw_ = convert_order<Order>(v); }

    constexpr endian_value& operator+=(T v) noexcept { return *this = static_cast<T>(get() + v); }
    constexpr endian_value& operator-=(T v) noexcept { return *this = static_cast<T>(get() - v); }
    constexpr endian_value& operator|=(T v) noexcept { return *this = static_cast<T>(get() | v); }
    constexpr endian_value& operator&=(T v) noexcept { return *this = static_cast<T>(get() & v); }
    constexpr endian_value& operator++() noexcept { return *this += T{1}; }

    /// The stored bytes as an integer, not converted (device order).
    [[nodiscard]] constexpr T& raw() noexcept { return raw_; }
    [[nodiscard]] constexpr T raw() const noexcept { return raw_; }

    /// Atomic access for a field the other side of the device interface reads or writes
    /// concurrently. A plain field, as far as the object model goes: not std::atomic.
    [[nodiscard]] T load(std::memory_order order) const noexcept {
        // atomic_ref<T> wants a non-const T; a load does not write, and device fields are
        // never const objects (they live in DMA memory).
        return convert_order<Order>(std::atomic_ref<T>(const_cast<T&>(raw_)).load(order));
    }
    void store(T v, std::memory_order order) noexcept {
        std::atomic_ref<T>(raw_).store(convert_order<Order>(v), order);
    }

private:
    T raw_;
};

using le16 = endian_value<std::uint16_t, std::endian::little>;
using le32 = endian_value<std::uint32_t, std::endian::little>;
using le64 = endian_value<std::uint64_t, std::endian::little>;

static_assert(sizeof(le16) == 2 && alignof(le16) == alignof(std::uint16_t));
static_assert(sizeof(le32) == 4 && alignof(le32) == alignof(std::uint32_t));
static_assert(sizeof(le64) == 8 && alignof(le64) == alignof(std::uint64_t));
static_assert(std::is_trivially_copyable_v<le32> &&
              std::is_trivially_default_constructible_v<le32>);
static_assert(std::is_standard_layout_v<le64>);
static_assert(le32(0x11223344u).get() == 0x11223344u);
static_assert(std::endian::native != std::endian::little || le32(0x11223344u).raw() == 0x11223344u);
static_assert(std::endian::native != std::endian::big || le32(0x11223344u).raw() == 0x44332211u);

} // namespace npa
