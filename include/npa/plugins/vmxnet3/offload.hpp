// npa/plugins/vmxnet3/offload.hpp: npa's per-packet offload metadata (npa/offload.hpp) to
// and from vmxnet3's TX descriptors and RX completions (defs.hpp), as Linux's vmxnet3
// driver (vmxnet3_tq_xmit, vmxnet3_rx_csum) fills and reads them.
//
//   TX  TSO: offload mode TSO, hlen every header (L2 + L3 + L4), msscof the MSS. An L4
//       checksum: offload mode CSUM, hlen where the L4 header starts, msscof where its
//       checksum field is (TCP at 16, UDP at 6). A VLAN tag to insert: ti and tci.
//   RX  the RSS hash when rssType says one was computed; a stripped tag (ts, tci); a
//       checksum verdict only when the device checked (cnc clear): bad if an IPv4 header
//       (v4) failed (ipc clear) or a TCP/UDP checksum did (tuc clear), good when an IPv4
//       header or a TCP/UDP checksum passed, else unknown. A fragment (frg) has no L4
//       checksum the device could check: only its IPv4 header counts.
// The caller prepares the packet as Linux's stack and DPDK's rte_net_intel_cksum_prepare()
// do: for an L4 checksum or TSO the checksum field holds the pseudo-header's sum (for TSO
// without the length) and, for IPv4 TSO, the header checksum is 0. A TSO request is taken
// only with its header lengths (tso_request_ok()).
#pragma once

#include <npa/capabilities.hpp>
#include <npa/offload.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>

#include <cstdint>

namespace npa::vmxnet3 {

/// Whether a TSO request names its headers: an Ethernet header, an L3 and an L4 length (hlen
/// is every header, and a device cannot segment without it), and an MSS.
[[nodiscard]] constexpr bool tso_request_ok(const offload_info& ol) noexcept {
    return ol.l2_len >= 14 && ol.l3_len != 0 && ol.l4_len != 0 && ol.tso_mss != 0;
}

/// Writes the offload fields of TX descriptor `d` for a packet whose request is `ol`;
/// `enabled` is what the shell enabled at attach (cap:: bits), `tso` whether the packet is
/// to be segmented (asked for with an MSS, and enabled).
inline void set_tx_offload(tx_desc& d, const offload_info& ol, std::uint32_t enabled,
                           bool tso) noexcept {
    using td = tx_desc;
    const std::uint32_t l23 = std::uint32_t{ol.l2_len} + ol.l3_len;
    if (tso) {
        td::om_::set(d.dword3, om::TSO);
        td::hlen::set(d.dword3, l23 + ol.l4_len);
        td::msscof::set(d.dword2, ol.tso_mss);
    } else if ((ol.flags & ol::tx_l4_csum) != 0 && (enabled & cap::tx_l4_csum) != 0 && l23 != 0) {
        td::om_::set(d.dword3, om::CSUM);
        td::hlen::set(d.dword3, l23);
        td::msscof::set(d.dword2, l23 + l4::csum_off(ol.l4_len));
    }
    if ((ol.flags & ol::tx_vlan) != 0 && (enabled & cap::vlan_insert) != 0) {
        td::ti::set(d.dword3, 1);
        td::tci::set(d.dword3, ol.vlan_tci);
    }
}

/// What an RX completion says of its packet's offloads.
[[nodiscard]] inline offload_info rx_offload(const rx_comp_desc& c) noexcept {
    using rcd = rx_comp_desc;
    offload_info o{};
    if (rcd::rssType::get(c.dword0) != rss_type::NONE) {
        o.flags |= ol::rx_rss;
        o.rss_hash = c.rssHash;
    }
    if (rcd::ts::get(c.dword2) != 0) {
        o.flags |= ol::rx_vlan;
        o.vlan_tci = static_cast<std::uint16_t>(rcd::tci::get(c.dword2));
    }
    if (rcd::cnc::get(c.dword0) == 0) {
        const bool l4 = (rcd::tcp::get(c.dword3) != 0 || rcd::udp::get(c.dword3) != 0) &&
                        rcd::frg::get(c.dword3) == 0;
        const bool bad_ip = rcd::v4::get(c.dword3) != 0 && rcd::ipc::get(c.dword3) == 0;
        const bool bad_l4 = l4 && rcd::tuc::get(c.dword3) == 0;
        if (bad_ip || bad_l4) {
            o.csum = csum_state::bad;
        } else if (l4 || rcd::v4::get(c.dword3) != 0) {
            o.csum = csum_state::good;
        }
    }
    return o;
}

} // namespace npa::vmxnet3
