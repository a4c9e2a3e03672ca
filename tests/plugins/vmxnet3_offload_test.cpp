// vmxnet3's offload fields (npa/plugins/vmxnet3/offload.hpp), checked as the bytes the
// device reads and writes (little-endian words, VMXNET3_TXD_* / VMXNET3_RCD_* bit
// positions): TSO, TCP and UDP checksums, VLAN insertion, what was not enabled left
// alone, and the RX completion's RSS hash, stripped tag and checksum verdicts.
#include <doctest/doctest.h>

#include <npa/endian.hpp>
#include <npa/plugins/vmxnet3/offload.hpp>

#include "../support/offload_request.hpp"

#include <cstdint>

using namespace npa::vmxnet3;
namespace cap = npa::cap;
namespace ol = npa::ol;
using npa::csum_state;
using npa::offload_info;

namespace {

constexpr std::uint32_t all_tx = cap::tx_l4_csum | cap::tso | cap::vlan_insert;

// A descriptor's dword 2 and 3 as the device reads them.
std::uint32_t word(const tx_desc& d, unsigned i) {
    return npa::load_le32(reinterpret_cast<const unsigned char*>(&d) + 4 * i);
}

} // namespace

TEST_CASE("TSO: offload mode 3, hlen every header, msscof the MSS") {
    tx_desc d{};
    set_tx_offload(d, npa_test::offload_request(ol::tx_tso, 14, 20, 32, 1448), all_tx, true);
    CHECK(word(d, 3) == (66u | 3u << 10)); // hlen 66, om TSO
    CHECK(word(d, 2) == 1448u << 18);      // msscof, nothing else in dword 2
}

TEST_CASE("L4 checksum: offload mode 2, hlen at the L4 header, msscof at its checksum field") {
    tx_desc tcp{};
    set_tx_offload(tcp, npa_test::offload_request(ol::tx_l4_csum, 18, 40, 20), all_tx, false);
    CHECK(word(tcp, 3) == (58u | 2u << 10));
    CHECK(word(tcp, 2) == (58u + 16u) << 18);
    tx_desc udp{};
    set_tx_offload(udp, npa_test::offload_request(ol::tx_l4_csum, 14, 20, 8), all_tx, false);
    CHECK(word(udp, 2) == (34u + 6u) << 18);
    // No header lengths: nothing asked of the device.
    tx_desc none{};
    set_tx_offload(none, npa_test::offload_request(ol::tx_l4_csum, 0, 0, 8), all_tx, false);
    CHECK(word(none, 2) == 0);
    CHECK(word(none, 3) == 0);
}

TEST_CASE("VLAN insertion: ti and the tag in dword 3, beside the offload mode") {
    tx_desc d{};
    set_tx_offload(d,
                   npa_test::offload_request(ol::tx_vlan | ol::tx_l4_csum, 14, 20, 20, 0, 0x2064),
                   all_tx, false);
    CHECK(word(d, 3) == (34u | 2u << 10 | 1u << 15 | 0x2064u << 16));
}

TEST_CASE("what the shell did not enable is not asked of the device") {
    tx_desc d{};
    set_tx_offload(d, npa_test::offload_request(ol::tx_l4_csum | ol::tx_vlan, 14, 20, 20, 0, 7),
                   cap::tso, false);
    CHECK(word(d, 2) == 0);
    CHECK(word(d, 3) == 0);
}

TEST_CASE("RX completion: RSS hash, stripped tag, and the checksum verdicts") {
    rx_comp_desc c{};
    c.dword0 = 2u << 26; // rssType TCPIPV4
    c.rssHash = 0xA5A5F00Du;
    c.dword2 = 60u | 1u << 15 | 0x0123u << 16;            // len 60, ts, tci
    c.dword3 = 1u << 16 | 1u << 18 | 1u << 19 | 1u << 21; // tuc, tcp, ipc, v4
    offload_info o = rx_offload(c);
    CHECK((o.flags & ol::rx_rss) != 0);
    CHECK(o.rss_hash == 0xA5A5F00Du);
    CHECK((o.flags & ol::rx_vlan) != 0);
    CHECK(o.vlan_tci == 0x0123);
    CHECK(o.csum == csum_state::good);

    c.dword3 = 1u << 18 | 1u << 19 | 1u << 21; // TCP checksum wrong (tuc clear)
    CHECK(rx_offload(c).csum == csum_state::bad);
    c.dword3 = 1u << 21; // IPv4 header checksum wrong (ipc clear)
    CHECK(rx_offload(c).csum == csum_state::bad);
    c.dword3 = 1u << 20; // IPv6, no L4: nothing the device could check
    CHECK(rx_offload(c).csum == csum_state::unknown);
    c.dword0 = 1u << 30; // cnc: not calculated, and no RSS type
    c.dword3 = 1u << 18 | 1u << 19 | 1u << 21;
    o = rx_offload(c);
    CHECK(o.csum == csum_state::unknown);
    CHECK((o.flags & ol::rx_rss) == 0);
    c.dword2 = 60u;
    CHECK((rx_offload(c).flags & ol::rx_vlan) == 0);
}

TEST_CASE("RX completion of a fragment: no L4 verdict, only its IPv4 header's") {
    rx_comp_desc c{};
    c.dword3 = 1u << 18 | 1u << 19 | 1u << 21 | 1u << 22; // tcp, ipc, v4, frg; tuc clear
    CHECK(rx_offload(c).csum == csum_state::good);
    c.dword3 = 1u << 17 | 1u << 21 | 1u << 22; // udp, v4, frg; ipc clear: the header failed
    CHECK(rx_offload(c).csum == csum_state::bad);
}

TEST_CASE("a TSO request is taken only with every header length and an MSS") {
    CHECK(tso_request_ok(npa_test::offload_request(ol::tx_tso, 14, 20, 20, 1448)));
    CHECK(tso_request_ok(npa_test::offload_request(ol::tx_tso, 18, 40, 32, 1428)));
    CHECK_FALSE(tso_request_ok(npa_test::offload_request(ol::tx_tso, 0, 0, 0, 1448)));
    CHECK_FALSE(tso_request_ok(npa_test::offload_request(ol::tx_tso, 14, 0, 20, 1448)));
    CHECK_FALSE(tso_request_ok(npa_test::offload_request(ol::tx_tso, 14, 20, 0, 1448)));
    CHECK_FALSE(tso_request_ok(npa_test::offload_request(ol::tx_tso, 14, 20, 20, 0)));
}
