// npa/sim/device/checksum.hpp: the Internet checksum (RFC 1071) a device computes for a
// checksum offload or verifies on receive: one's-complement sums of big-endian 16-bit
// words, an odd byte padded with zero, folded to 16 bits.
#pragma once

#include <npa/sim/wire.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::sim::inet {

/// Adds the 16-bit words of p[0..n) to s (not folded).
[[nodiscard]] inline std::uint32_t sum(const std::byte* p, std::uint32_t n, std::uint32_t s) noexcept {
    for (std::uint32_t i = 0; i + 1 < n; i += 2) {
        s += eth::get16(p + i);
    }
    if (n % 2 != 0) {
        s += std::to_integer<std::uint32_t>(p[n - 1]) << 8;
    }
    return s;
}

/// Folds a sum to 16 bits (0xFFFF over data that carries a correct checksum).
[[nodiscard]] constexpr std::uint16_t fold(std::uint32_t s) noexcept {
    while ((s >> 16) != 0) {
        s = (s & 0xFFFF) + (s >> 16);
    }
    return static_cast<std::uint16_t>(s);
}

/// The IPv4 pseudo header of an L4 segment (addresses at ip + 12, protocol, length).
[[nodiscard]] inline std::uint32_t pseudo_sum(const std::byte* ip, std::uint32_t proto,
                                              std::uint32_t l4len) noexcept {
    return sum(ip + 12, 8, 0) + proto + l4len;
}

/// The IPv6 pseudo header of an L4 segment (addresses at ip + 8, the upper-layer length,
/// the next header; RFC 8200 8.1).
[[nodiscard]] inline std::uint32_t pseudo_sum6(const std::byte* ip, std::uint32_t proto,
                                               std::uint32_t l4len) noexcept {
    return sum(ip + 8, 32, 0) + (l4len >> 16) + (l4len & 0xFFFF) + proto;
}

/// The pseudo header of the IP header at `ip` by its version: IPv6 for 6, IPv4 otherwise.
[[nodiscard]] inline std::uint32_t pseudo_sum_of(const std::byte* ip, std::uint32_t proto,
                                                 std::uint32_t l4len) noexcept {
    return (std::to_integer<unsigned>(ip[0]) >> 4) == 6 ? pseudo_sum6(ip, proto, l4len)
                                                        : pseudo_sum(ip, proto, l4len);
}

/// The checksum to store over p[0..n) plus a starting sum s (the field itself zeroed).
[[nodiscard]] inline std::uint16_t checksum(const std::byte* p, std::uint32_t n,
                                            std::uint32_t s = 0) noexcept {
    return static_cast<std::uint16_t>(~fold(sum(p, n, s)));
}

/// Whether p[0..n) plus s carries a correct checksum.
[[nodiscard]] inline bool verify(const std::byte* p, std::uint32_t n, std::uint32_t s = 0) noexcept {
    return fold(sum(p, n, s)) == 0xFFFF;
}

} // namespace npa::sim::inet
