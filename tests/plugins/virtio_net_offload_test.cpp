// virtio-net's per-packet header against npa's offload metadata (npa/plugins/virtio_net/
// offload.hpp): the TX header for checksum and TSO requests over IPv4, IPv6 and a VLAN tag,
// and the RX verdict, with a partial checksum completed and then checked the way a receiver
// checks it (the sum over the pseudo-header and the segment folds to 0xFFFF).
#include <doctest/doctest.h>

#include <npa/plugins/virtio_net/offload.hpp>

#include "../support/offload_request.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace vn = npa::virtio_net;
using npa::csum_state;
using npa::offload_info;

namespace {

void put16(std::vector<std::byte>& f, std::size_t at, std::uint16_t v) {
    f[at] = static_cast<std::byte>(v >> 8);
    f[at + 1] = static_cast<std::byte>(v & 0xFF);
}
std::uint16_t get16(const std::vector<std::byte>& f, std::size_t at) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(f[at]) << 8 |
                                      std::to_integer<unsigned>(f[at + 1]));
}
// The one's-complement sum (unfolded) of big-endian 16-bit words, a trailing odd byte
// padded with zero (RFC 1071).
std::uint32_t sum16(const std::vector<std::byte>& f, std::size_t from, std::size_t to) {
    std::uint32_t s = 0;
    for (std::size_t i = from; i < to; i += 2) {
        s += static_cast<std::uint32_t>(std::to_integer<unsigned>(f[i])) << 8;
        if (i + 1 < to) {
            s += std::to_integer<unsigned>(f[i + 1]);
        }
    }
    return s;
}
std::uint16_t fold(std::uint32_t s) {
    while (s >> 16 != 0) {
        s = (s & 0xFFFF) + (s >> 16);
    }
    return static_cast<std::uint16_t>(s);
}

// An Ethernet + IPv4 + TCP frame with `payload` bytes, as a sender with checksum offload
// hands it over: the TCP checksum field holds the folded pseudo-header sum (CHECKSUM_PARTIAL).
struct tcp4_frame {
    static constexpr std::size_t l2 = 14, l3 = 20, l4 = 20;
    std::vector<std::byte> f;
    std::uint32_t pseudo = 0; // the pseudo-header's sum

    explicit tcp4_frame(std::size_t payload) : f(l2 + l3 + l4 + payload) {
        put16(f, 12, 0x0800);
        f[l2] = std::byte{0x45};
        put16(f, l2 + 2, static_cast<std::uint16_t>(l3 + l4 + payload));
        f[l2 + 9] = std::byte{6}; // TCP
        const std::array<std::uint16_t, 4> addrs = {0x0A00, 0x0001, 0x0A00, 0x0002};
        for (std::size_t i = 0; i < addrs.size(); ++i) {
            put16(f, l2 + 12 + 2 * i, addrs[i]);
        }
        put16(f, l2 + l3, 40000);    // source port
        put16(f, l2 + l3 + 2, 5201); // destination port
        f[l2 + l3 + 12] = std::byte{0x50};
        for (std::size_t i = 0; i < payload; ++i) {
            f[l2 + l3 + l4 + i] = static_cast<std::byte>(i * 7 + 3);
        }
        pseudo = sum16(f, l2 + 12, l2 + 20) + 6 + static_cast<std::uint32_t>(l4 + payload);
        put16(f, l2 + l3 + 16, fold(pseudo));
    }
    [[nodiscard]] vn::net_hdr_v1 partial_hdr() const {
        vn::net_hdr_v1 h{};
        h.flags = vn::HDR_F_NEEDS_CSUM;
        h.csum_start = static_cast<std::uint16_t>(l2 + l3);
        h.csum_offset = 16;
        return h;
    }
    // What a receiver checks: pseudo-header plus segment, checksum field included.
    [[nodiscard]] bool checksum_ok() const {
        return fold(pseudo + sum16(f, l2 + l3, f.size())) == 0xFFFF;
    }
};

offload_info request(std::uint8_t l2, std::uint8_t l3, std::uint8_t l4, std::uint16_t mss = 0) {
    return npa_test::offload_request(0, l2, l3, l4, mss);
}

} // namespace

TEST_CASE("tx_hdr: a checksum request points the device at the L4 checksum field") {
    std::vector<std::byte> frame(64);
    put16(frame, 12, 0x0800);
    const vn::net_hdr_v1 tcp = vn::tx_hdr(frame.data(), request(14, 20, 20), false, true);
    CHECK(tcp.flags == vn::HDR_F_NEEDS_CSUM);
    CHECK(tcp.csum_start == 34);
    CHECK(tcp.csum_offset == 16);
    CHECK(tcp.gso_type == vn::GSO_NONE);
    CHECK(tcp.num_buffers == 0);
    const vn::net_hdr_v1 udp = vn::tx_hdr(frame.data(), request(14, 20, 8), false, true);
    CHECK(udp.csum_offset == 6);
    // Nothing asked: an all-zero header.
    const vn::net_hdr_v1 none = vn::tx_hdr(frame.data(), request(14, 20, 20), false, false);
    CHECK(none.flags == 0);
    CHECK(none.csum_start == 0);
}

TEST_CASE("tx_hdr: TSO by the EtherType in front of the L3 header, VLAN tag included") {
    std::vector<std::byte> frame(128);
    put16(frame, 12, 0x0800);
    const vn::net_hdr_v1 v4 = vn::tx_hdr(frame.data(), request(14, 20, 32, 1448), true, false);
    CHECK(v4.flags == vn::HDR_F_NEEDS_CSUM); // TSO implies the checksum
    CHECK(v4.gso_type == vn::GSO_TCPV4);
    CHECK(v4.gso_size == 1448);
    CHECK(v4.hdr_len == 66);
    CHECK(v4.csum_offset == 16);

    put16(frame, 12, 0x8100); // 802.1Q, then IPv6
    put16(frame, 16, 0x86DD);
    const vn::net_hdr_v1 v6 = vn::tx_hdr(frame.data(), request(18, 40, 20, 1428), true, false);
    CHECK(v6.gso_type == vn::GSO_TCPV6);
    CHECK(v6.csum_start == 58);
    CHECK(v6.hdr_len == 78);
}

TEST_CASE("tx_hdr: no offload without a whole L2 header and an L3 length") {
    std::vector<std::byte> frame(64);
    put16(frame, 12, 0x0800);
    for (const offload_info& o :
         {request(0, 20, 20, 1448), request(13, 20, 20, 1448), request(14, 0, 20, 1448)}) {
        const vn::net_hdr_v1 h = vn::tx_hdr(frame.data(), o, true, true);
        CHECK(h.flags == 0);
        CHECK(h.gso_type == vn::GSO_NONE);
        CHECK(h.gso_size == 0);
    }
}

TEST_CASE("rx_csum: a partial checksum is completed so that a receiver's check passes") {
    for (const std::size_t payload : {0u, 1u, 2u, 13u, 1000u, 1459u}) {
        CAPTURE(payload);
        tcp4_frame t(payload);
        REQUIRE_FALSE(t.checksum_ok()); // the sender left only the pseudo-header's sum
        csum_state v = csum_state::unknown;
        REQUIRE(vn::rx_csum(t.partial_hdr(), t.f.data(), static_cast<std::uint32_t>(t.f.size()),
                            true, v));
        CHECK(v == csum_state::good);
        CHECK(t.checksum_ok());
        // A corrupted byte is caught by the same check.
        t.f.back() ^= std::byte{0x10};
        CHECK_FALSE(t.checksum_ok());
    }
}

TEST_CASE("rx_csum: a header pointing outside the frame is refused and the frame untouched") {
    tcp4_frame t(10);
    const std::vector<std::byte> before = t.f;
    const auto len = static_cast<std::uint32_t>(t.f.size());
    vn::net_hdr_v1 h = t.partial_hdr();
    h.csum_offset =
        static_cast<std::uint16_t>(len - 34 - 1); // the field's second byte past the end
    csum_state v = csum_state::unknown;
    CHECK_FALSE(vn::rx_csum(h, t.f.data(), len, true, v));
    h = t.partial_hdr();
    h.csum_start = 0xFFF0; // start + offset far past the frame, no 16-bit wrap
    CHECK_FALSE(vn::rx_csum(h, t.f.data(), len, true, v));
    CHECK(v == csum_state::unknown);
    CHECK(t.f == before);
    CHECK(get16(t.f, 50) == fold(t.pseudo));
}

TEST_CASE("rx_csum: DATA_VALID is a good checksum; without GUEST_CSUM the flags mean nothing") {
    tcp4_frame t(20);
    const std::vector<std::byte> before = t.f;
    const auto len = static_cast<std::uint32_t>(t.f.size());
    vn::net_hdr_v1 valid{};
    valid.flags = vn::HDR_F_DATA_VALID;
    csum_state v = csum_state::unknown;
    CHECK(vn::rx_csum(valid, t.f.data(), len, true, v));
    CHECK(v == csum_state::good);

    v = csum_state::unknown;
    CHECK(vn::rx_csum(t.partial_hdr(), t.f.data(), len, false, v));
    CHECK(v == csum_state::unknown);
    CHECK(t.f == before); // not completed: the device was not allowed to leave it partial
    CHECK(vn::rx_csum(vn::net_hdr_v1{}, t.f.data(), len, true, v));
    CHECK(v == csum_state::unknown);
}
