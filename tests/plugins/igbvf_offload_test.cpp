// The 82576 VF's offload bits (npa/plugins/igbvf/offload.hpp) against the datasheet's
// context and data descriptor fields (7.2.2.2, 7.2.4) and write-back status (7.1.5): TSO
// over IPv4 and IPv6 (the version read from the packet), checksums, VLAN insertion, what
// was not enabled left alone, and the RX verdicts.
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/offload.hpp>

#include "../support/offload_request.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

using namespace npa::igbvf;
namespace cap = npa::cap;
namespace ol = npa::ol;
using npa::csum_state;
using npa::offload_info;

namespace {

constexpr std::uint32_t all_tx = cap::tx_ip_csum | cap::tx_l4_csum | cap::tso | cap::vlan_insert;

// A frame whose IP header starts at `l2` with version `version` (the rest is not read).
std::array<std::byte, 128> frame_with_ip(std::uint32_t l2, unsigned version) {
    std::array<std::byte, 128> f{};
    f[l2] = static_cast<std::byte>(version << 4 | (version == 4 ? 5 : 0));
    return f;
}

std::uint32_t maclen(const tx_offload& t) {
    return (t.ctx.vlan_macip_lens >> txd::maclen_shift) & 0x7F;
}
std::uint32_t iplen(const tx_offload& t) { return t.ctx.vlan_macip_lens & txd::iplen_mask; }
std::uint32_t tucmd(const tx_offload& t) { return t.ctx.type_tucmd_mlhl; }

} // namespace

TEST_CASE("TSO over IPv4: TUCMD.IPV4 and L4T TCP, MSS and L4LEN, TSE, IXSM and TXSM") {
    const auto f = frame_with_ip(14, 4);
    // IXSM although the IP checksum was not asked for: every segment's header changes.
    const tx_offload t = tx_offload_for(
        f.data(), 1514, npa_test::offload_request(ol::tx_tso, 14, 20, 32, 1448), all_tx, true);
    CHECK((tucmd(t) & (txd::dcmd_dext | txd::dtyp_ctxt)) == (txd::dcmd_dext | txd::dtyp_ctxt));
    CHECK((tucmd(t) & txd::tucmd_ipv4) != 0);
    CHECK((tucmd(t) & txd::tucmd_l4t_tcp) != 0);
    CHECK(maclen(t) == 14);
    CHECK(iplen(t) == 20);
    CHECK(t.ctx.mss_l4len_idx == (1448u << txd::mss_shift | 32u << txd::l4len_shift));
    CHECK(t.cmd == txd::dcmd_tse);
    CHECK(t.olinfo == (txd::popts_ixsm | txd::popts_txsm));
}

TEST_CASE("TSO over IPv6, behind a VLAN tag: no TUCMD.IPV4 and no IXSM") {
    const auto f = frame_with_ip(18, 6);
    const tx_offload t = tx_offload_for(
        f.data(), 9000, npa_test::offload_request(ol::tx_tso, 18, 40, 20, 1428), all_tx, true);
    CHECK((tucmd(t) & txd::tucmd_ipv4) == 0);
    CHECK((tucmd(t) & txd::tucmd_l4t_tcp) != 0);
    CHECK(maclen(t) == 18);
    CHECK(iplen(t) == 40);
    CHECK(t.cmd == txd::dcmd_tse);
    CHECK(t.olinfo == txd::popts_txsm);
}

TEST_CASE("checksums without TSO: IXSM with IPV4 only when asked; L4T by the L4 header's length") {
    const auto f = frame_with_ip(14, 4);
    const tx_offload udp = tx_offload_for(
        f.data(), 300, npa_test::offload_request(ol::tx_l4_csum, 14, 20, 8), all_tx, false);
    CHECK((tucmd(udp) & txd::tucmd_l4t_tcp) == 0);
    CHECK((tucmd(udp) & txd::tucmd_ipv4) == 0);
    CHECK(udp.olinfo == txd::popts_txsm);
    CHECK(udp.cmd == 0);
    CHECK(udp.ctx.mss_l4len_idx == 0);
    const tx_offload both = tx_offload_for(
        f.data(), 300, npa_test::offload_request(ol::tx_ip_csum | ol::tx_l4_csum, 14, 20, 20),
        all_tx, false);
    CHECK((tucmd(both) & (txd::tucmd_ipv4 | txd::tucmd_l4t_tcp)) ==
          (txd::tucmd_ipv4 | txd::tucmd_l4t_tcp));
    CHECK(both.olinfo == (txd::popts_ixsm | txd::popts_txsm));
    // MACLEN 14 when the request leaves l2_len 0.
    const tx_offload dflt = tx_offload_for(
        f.data(), 300, npa_test::offload_request(ol::tx_ip_csum, 0, 20, 0), all_tx, false);
    CHECK(maclen(dflt) == 14);
}

TEST_CASE("VLAN insertion: the tag in the context, VLE on the data descriptor") {
    const auto f = frame_with_ip(14, 4);
    const tx_offload t =
        tx_offload_for(f.data(), 100, npa_test::offload_request(ol::tx_vlan, 14, 20, 20, 0, 0x2064),
                       all_tx, false);
    CHECK((t.ctx.vlan_macip_lens >> txd::vlan_shift) == 0x2064u);
    CHECK(t.cmd == txd::dcmd_vle);
    CHECK(t.olinfo == 0);
}

TEST_CASE("nothing asked, or nothing enabled: no context descriptor and no bits") {
    const auto f = frame_with_ip(14, 4);
    for (const tx_offload& t :
         {tx_offload_for(f.data(), 100, npa_test::offload_request(0, 14, 20, 20), all_tx, false),
          tx_offload_for(f.data(), 100,
                         npa_test::offload_request(ol::tx_ip_csum | ol::tx_l4_csum | ol::tx_vlan,
                                                   14, 20, 20, 0, 7),
                         cap::tso, false)}) {
        CHECK(tucmd(t) == 0);
        CHECK(t.ctx.vlan_macip_lens == 0);
        CHECK(t.cmd == 0);
        CHECK(t.olinfo == 0);
    }
}

TEST_CASE(
    "RX write-back: a stripped tag always, a checksum verdict only when checked and enabled") {
    adv_rx_wb wb{};
    wb.status_error = rxd::stat_dd | rxd::stat_eop | rxd::stat_vp | rxd::stat_ipcs | rxd::stat_l4cs;
    wb.vlan = 0x0123;
    offload_info o = rx_offload(wb, false);
    CHECK((o.flags & ol::rx_vlan) != 0);
    CHECK(o.vlan_tci == 0x0123);
    CHECK(o.csum == csum_state::unknown); // RX checksum offload not enabled
    o = rx_offload(wb, true);
    CHECK(o.csum == csum_state::good);
    wb.status_error = wb.status_error | rxd::err_tcpe;
    CHECK(rx_offload(wb, true).csum == csum_state::bad);
    wb.status_error = rxd::stat_dd | rxd::stat_eop | rxd::stat_ipcs | rxd::err_ipe;
    o = rx_offload(wb, true);
    CHECK(o.csum == csum_state::bad);
    CHECK((o.flags & ol::rx_vlan) == 0);
    wb.status_error = rxd::stat_dd | rxd::stat_eop | rxd::stat_ixsm | rxd::stat_l4cs;
    CHECK(rx_offload(wb, true).csum == csum_state::unknown); // IXSM: not checked
    wb.status_error = rxd::stat_dd | rxd::stat_eop;
    CHECK(rx_offload(wb, true).csum == csum_state::unknown); // nothing checked
}
