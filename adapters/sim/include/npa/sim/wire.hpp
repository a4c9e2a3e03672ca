// npa/sim/wire.hpp: frames, ports and cables between sim devices and peers.
//
// A port takes frames in (frame_in, called by whatever is at the other end of its cable)
// and hands frames out (frame_out, to its peer). Device models, traffic peers and switch
// ports are all ports, so any of them can be cabled to any other; a device model added
// later (vmxnet3 backend, a VF) plugs into the same switch by being a port.
//
// frame_in may be called from another thread (a device running free): implementations
// take their own short lock. Wiring (connect/disconnect) happens before traffic starts.
#pragma once

#include <npa/control.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::sim {

/// Largest frame on the sim wire: 1500-byte MTU + 14-byte Ethernet header + 4-byte
/// 802.1Q tag (the FCS is not modelled).
inline constexpr std::uint32_t max_frame_size = 1518;
/// Smallest: an Ethernet header.
inline constexpr std::uint32_t min_frame_size = 14;

struct frame {
    std::uint32_t len = 0;
    std::array<std::byte, max_frame_size> data{};

    [[nodiscard]] std::span<std::byte> bytes() noexcept { return {data.data(), len}; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data.data(), len}; }
};

class frame_port {
public:
    frame_port() = default;
    frame_port(const frame_port&) = delete;
    frame_port& operator=(const frame_port&) = delete;
    virtual ~frame_port() = default;

    /// A frame arrives from the cable. The port copies what it keeps.
    virtual void frame_in(const frame& f) noexcept = 0;

    void set_peer(frame_port* p) noexcept { peer_.store(p, std::memory_order_release); }
    [[nodiscard]] frame_port* peer() const noexcept {
        return peer_.load(std::memory_order_acquire);
    }

protected:
    /// Sends a frame down the cable; false if nothing is plugged in.
    bool frame_out(const frame& f) noexcept {
        frame_port* p = peer();
        if (p == nullptr) {
            return false;
        }
        p->frame_in(f);
        return true;
    }

private:
    std::atomic<frame_port*> peer_{nullptr};
};

/// A cable between two ports.
inline void connect(frame_port& a, frame_port& b) noexcept {
    a.set_peer(&b);
    b.set_peer(&a);
}
inline void disconnect(frame_port& a, frame_port& b) noexcept {
    a.set_peer(nullptr);
    b.set_peer(nullptr);
}

/// Ethernet II / 802.1Q header access (IEEE 802.3 clause 3, 802.1Q clause 9).
namespace eth {
inline constexpr std::uint16_t type_vlan = 0x8100;
/// IEEE 802 "local experimental" EtherType: the sim's test traffic.
inline constexpr std::uint16_t type_sim = 0x88b5;
inline constexpr mac_addr broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

inline std::uint16_t get16(const std::byte* p) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                      std::to_integer<unsigned>(p[1]));
}
inline void put16(std::byte* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v & 0xff);
}

/// Writes dst, src, an optional VLAN tag (vlan != 0) and the EtherType; returns the
/// header length (14 or 18). `out` must hold 18 bytes.
inline std::uint32_t write_header(std::span<std::byte> out, const mac_addr& dst,
                                  const mac_addr& src, std::uint16_t vlan,
                                  std::uint16_t type) noexcept {
    std::memcpy(out.data(), dst.data(), 6);
    std::memcpy(out.data() + 6, src.data(), 6);
    std::uint32_t off = 12;
    if (vlan != 0) {
        put16(out.data() + off, type_vlan);
        put16(out.data() + off + 2, static_cast<std::uint16_t>(vlan & 0x0fff));
        off += 4;
    }
    put16(out.data() + off, type);
    return off + 2;
}

struct header {
    mac_addr dst{};
    mac_addr src{};
    std::uint16_t vlan = 0;       ///< 0: untagged
    std::uint16_t type = 0;
    std::uint32_t payload_off = 0;
};

/// Parses the header; false if the frame is shorter than its header.
inline bool parse(std::span<const std::byte> f, header& h) noexcept {
    if (f.size() < 14) {
        return false;
    }
    std::memcpy(h.dst.data(), f.data(), 6);
    std::memcpy(h.src.data(), f.data() + 6, 6);
    h.type = get16(f.data() + 12);
    h.payload_off = 14;
    h.vlan = 0;
    if (h.type == type_vlan) {
        if (f.size() < 18) {
            return false;
        }
        h.vlan = static_cast<std::uint16_t>(get16(f.data() + 14) & 0x0fff);
        h.type = get16(f.data() + 16);
        h.payload_off = 18;
    }
    return true;
}

[[nodiscard]] inline bool is_multicast(const mac_addr& m) noexcept { return (m[0] & 1u) != 0; }

/// The sim's RSS hash, shared by every device model: FNV-1a over the 8 bytes after the
/// Ethernet header (the sim traffic's magic and flow id), so one flow always lands on one
/// queue, whichever device receives it.
[[nodiscard]] inline std::uint32_t flow_hash(const frame& f) noexcept {
    header h;
    std::uint32_t x = 2166136261u;
    if (parse(f.bytes(), h)) {
        for (std::uint32_t i = h.payload_off; i < h.payload_off + 8 && i < f.len; ++i) {
            x = (x ^ std::to_integer<std::uint32_t>(f.data[i])) * 16777619u;
        }
    }
    return x;
}
} // namespace eth

} // namespace npa::sim
