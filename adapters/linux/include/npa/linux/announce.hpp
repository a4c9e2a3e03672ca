// npa/linux/announce.hpp: the frame that tells the network where a MAC went.
//
// After a switch the shell's MAC is reachable through a different lower interface;
// bridges and switches still forward to the old port until they see a frame from the
// MAC on the new one. Hypervisors solve the same problem after a live migration by
// sending RARP frames from the guest's MAC (QEMU's "announce-self"); npa does the same:
// a RARP request (RFC 903, opcode 3) from the MAC, broadcast, needing no IP address.
#pragma once

#include <npa/control.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::lnx {

/// Minimum Ethernet frame without FCS; the announcement is padded to it.
inline constexpr std::size_t announce_frame_len = 60;
/// How many announcements follow a switch (the first right after the new path is
/// prepared, the rest once it carries traffic), as hypervisors repeat theirs in case
/// one is lost.
inline constexpr unsigned announce_count = 3;

/// Writes the announcement for `mac` into out (at least announce_frame_len bytes);
/// returns its length, or 0 if out is too small.
[[nodiscard]] inline std::size_t build_announce(const mac_addr& mac,
                                                std::span<std::byte> out) noexcept {
    if (out.size() < announce_frame_len) {
        return 0;
    }
    auto* f = reinterpret_cast<std::uint8_t*>(out.data());
    std::memset(f, 0, announce_frame_len);
    std::memset(f, 0xff, 6);           // destination: broadcast
    std::memcpy(f + 6, mac.data(), 6); // source: the MAC that moved
    f[12] = 0x80;
    f[13] = 0x35; // ethertype RARP
    f[14] = 0x00;
    f[15] = 0x01; // hardware type: Ethernet
    f[16] = 0x08;
    f[17] = 0x00; // protocol type: IPv4
    f[18] = 6;    // hardware address length
    f[19] = 4;    // protocol address length
    f[20] = 0x00;
    f[21] = 0x03;                       // opcode: reverse request
    std::memcpy(f + 22, mac.data(), 6); // sender hardware address
    std::memcpy(f + 32, mac.data(), 6); // target hardware address
    return announce_frame_len;
}

} // namespace npa::lnx
