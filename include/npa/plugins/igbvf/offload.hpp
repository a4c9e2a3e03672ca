// npa/plugins/igbvf/offload.hpp: npa's per-packet offload metadata (npa/offload.hpp) to and
// from an 82576 VF's advanced descriptors (defs.hpp; datasheet 7.2.2.2 and 7.2.4 for TX,
// 7.1.5 for RX), as Linux's igb and igbvf drivers fill and read them.
//
//   TX  an offload needs a context descriptor: MACLEN, IPLEN and the VLAN tag to insert
//       (vlan_macip_lens), the packet type (TUCMD: IPV4, L4T TCP or UDP) and, for TSO, MSS
//       and L4LEN; the data descriptor then asks for VLE, TSE, IXSM and TXSM. TSO takes
//       the IP version from the packet itself (the header's first nibble): an IPv4 packet
//       gets TUCMD.IPV4 and IXSM, so its header checksum is redone for every segment, an
//       IPv6 packet neither, as Linux's igb_tso() does.
//   RX  a tag the device stripped (VP) is always reported, since on an 82576 stripping is
//       the PF's choice (VMOLR.STRVLAN) and a tag left unreported would be lost; a
//       checksum verdict only when RX checksum offload is enabled and the device checked
//       something (IXSM clear, IPCS, L4CS or UDPCS set): bad on IPE or TCPE.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/offload.hpp>
#include <npa/plugins/igbvf/defs.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::igbvf {

/// What one packet's offloads ask of the TX descriptors.
struct tx_offload {
    adv_tx_context_desc ctx{}; ///< type_tucmd_mlhl == 0: no context descriptor needed
    std::uint32_t cmd = 0;     ///< data descriptor DCMD bits: VLE, TSE
    std::uint32_t olinfo = 0;  ///< data descriptor POPTS bits: IXSM, TXSM
};

/// The offloads of the `len`-byte packet at `frame` whose request is `ol`; `enabled` is
/// what the shell enabled at attach (cap:: bits), `tso` whether the packet is to be
/// segmented (asked for and enabled). MACLEN is ol.l2_len, or 14 (an untagged Ethernet
/// header) when the request leaves it 0.
[[nodiscard]] inline tx_offload tx_offload_for(const std::byte* frame, std::uint32_t len,
                                               const offload_info& ol, std::uint32_t enabled,
                                               bool tso) noexcept {
    tx_offload t{};
    const bool vlan = (ol.flags & ol::tx_vlan) != 0 && (enabled & cap::vlan_insert) != 0;
    const bool ip = (ol.flags & ol::tx_ip_csum) != 0 && (enabled & cap::tx_ip_csum) != 0;
    const bool l4 = (ol.flags & ol::tx_l4_csum) != 0 && (enabled & cap::tx_l4_csum) != 0;
    if (!vlan && !ip && !l4 && !tso) {
        return t;
    }
    const std::uint32_t l2 = ol.l2_len != 0 ? ol.l2_len : 14;
    // TSO: IPv4 unless the header the packet carries says IPv6.
    const bool v6 = tso && l2 < len && (std::to_integer<unsigned>(frame[l2]) >> 4) == 6;
    const bool v4_tso = tso && !v6;
    t.ctx.vlan_macip_lens = (vlan ? std::uint32_t{ol.vlan_tci} << txd::vlan_shift : 0) |
                            (l2 << txd::maclen_shift) | (ol.l3_len & txd::iplen_mask);
    t.ctx.type_tucmd_mlhl =
        txd::dcmd_dext | txd::dtyp_ctxt | (ip || v4_tso ? txd::tucmd_ipv4 : 0) |
        (tso || (l4 && ol.l4_len >= 20) ? txd::tucmd_l4t_tcp : txd::tucmd_l4t_udp);
    t.ctx.mss_l4len_idx = tso ? (std::uint32_t{ol.tso_mss} << txd::mss_shift) |
                                    (std::uint32_t{ol.l4_len} << txd::l4len_shift)
                              : 0;
    t.cmd = (vlan ? txd::dcmd_vle : 0) | (tso ? txd::dcmd_tse : 0);
    t.olinfo = (ip || v4_tso ? txd::popts_ixsm : 0) | (l4 || tso ? txd::popts_txsm : 0);
    return t;
}

/// What a one-buffer RX write-back says of its packet's offloads; `rx_csum`: RX checksum
/// offload enabled at attach.
[[nodiscard]] inline offload_info rx_offload(const adv_rx_wb& wb, bool rx_csum) noexcept {
    offload_info o{};
    const std::uint32_t st = wb.status_error;
    if ((st & rxd::stat_vp) != 0) {
        o.flags |= ol::rx_vlan;
        o.vlan_tci = wb.vlan;
    }
    if (rx_csum && (st & rxd::stat_ixsm) == 0 &&
        (st & (rxd::stat_ipcs | rxd::stat_l4cs | rxd::stat_udpcs)) != 0) {
        o.csum = (st & (rxd::err_ipe | rxd::err_tcpe)) != 0 ? csum_state::bad : csum_state::good;
    }
    return o;
}

} // namespace npa::igbvf
