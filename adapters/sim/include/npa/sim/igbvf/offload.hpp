// npa/sim/igbvf/offload.hpp: the 82576 VF model's offloads (part of igbvf_device).
//
// TX: TCP segmentation over IPv4 and IPv6 (datasheet 7.2.4), IPv4 and TCP/UDP checksum
// insertion and VLAN tag insertion from the context descriptor (7.2.2.2). RX: IPv4 header and TCP/UDP
// checksum verdicts (7.1.5). The checksums are the Internet checksum of
// device/checksum.hpp.
#pragma once

#include <npa/sim/device/checksum.hpp>
#include <npa/sim/igbvf/device.hpp>

namespace npa::sim {

// TCP segmentation (datasheet 7.2.4): the headers of the context (MACLEN, IPLEN,
// L4LEN) are repeated on every segment of at most MSS payload bytes; the TCP sequence
// number and flags (FIN, PSH only on the last) and the TCP checksum are redone per
// segment, and so are IPv4's total length, id and header checksum (TUCMD.IPV4) or IPv6's
// payload length. TCP only, and the IP version the context names must be the packet's.
inline bool igbvf_device::segment(std::uint16_t q, dq& d, std::uint32_t len, std::uint32_t cmd,
                                  std::uint32_t olinfo, std::uint32_t eop) {
    const std::uint32_t maclen = (d.ctx.vlan_macip_lens >> igbvf::txd::maclen_shift) & 0x7F;
    const std::uint32_t iplen = d.ctx.vlan_macip_lens & igbvf::txd::iplen_mask;
    const std::uint32_t l4len = (d.ctx.mss_l4len_idx >> igbvf::txd::l4len_shift) & 0xFF;
    const std::uint32_t mss = d.ctx.mss_l4len_idx >> igbvf::txd::mss_shift;
    const std::uint32_t hdr = maclen + iplen + l4len;
    const std::uint32_t paylen = olinfo >> igbvf::txd::paylen_shift;
    const bool v4 = (d.ctx.type_tucmd_mlhl & igbvf::txd::tucmd_ipv4) != 0;
    const unsigned version =
        maclen < len ? std::to_integer<unsigned>(gather_.data()[maclen]) >> 4 : 0;
    if ((d.ctx.type_tucmd_mlhl & igbvf::txd::tucmd_l4t_tcp) == 0 || version != (v4 ? 4u : 6u) ||
        iplen < (v4 ? 20u : 40u) || l4len < 20 || mss == 0 || hdr >= len ||
        hdr + mss > max_frame_size - 4 || paylen != len - hdr) {
        violation(q, ring_kind::tx, eop, igbvf_rule::bad_length,
                  "TSO context: %s, packet IPv%u, MACLEN %u IPLEN %u L4LEN %u MSS %u PAYLEN %u "
                  "for %u bytes", v4 ? "IPV4" : "not IPV4", version, maclen, iplen, l4len, mss,
                  paylen, len);
        return false;
    }
    const std::byte* tcp0 = gather_.data() + maclen + iplen;
    const std::uint32_t seq0 = (std::uint32_t{eth::get16(tcp0 + 4)} << 16) | eth::get16(tcp0 + 6);
    const std::uint16_t id0 = v4 ? eth::get16(gather_.data() + maclen + 4) : std::uint16_t{0};
    const std::uint32_t payload = len - hdr;
    for (std::uint32_t off = 0, k = 0; off < payload; off += mss, ++k) {
        const std::uint32_t seg = payload - off < mss ? payload - off : mss;
        std::memcpy(scratch_.data.data(), gather_.data(), hdr);
        std::memcpy(scratch_.data.data() + hdr, gather_.data() + hdr + off, seg);
        scratch_.len = hdr + seg;
        std::byte* ip = scratch_.data.data() + maclen;
        std::byte* tcp = ip + iplen;
        if (v4) {
            eth::put16(ip + 2, static_cast<std::uint16_t>(iplen + l4len + seg));
            eth::put16(ip + 4, static_cast<std::uint16_t>(id0 + k));
        } else { // the payload length: extension headers, TCP header and segment
            eth::put16(ip + 4, static_cast<std::uint16_t>(iplen - 40 + l4len + seg));
        }
        const std::uint32_t seq = seq0 + off;
        eth::put16(tcp + 4, static_cast<std::uint16_t>(seq >> 16));
        eth::put16(tcp + 6, static_cast<std::uint16_t>(seq));
        if (off + seg < payload) {
            tcp[13] &= std::byte{0xF6};  // FIN and PSH on the last segment only
        }
        apply_tx_offloads(d, cmd, (v4 ? igbvf::txd::popts_ixsm : 0) | igbvf::txd::popts_txsm);
        send_frame(d);
    }
    return true;
}

// VLE, IXSM, TXSM from the context descriptor (datasheet 7.2.2.2).
inline void igbvf_device::apply_tx_offloads(const dq& d, std::uint32_t cmd, std::uint32_t olinfo) {
    const std::uint32_t maclen = (d.ctx.vlan_macip_lens >> igbvf::txd::maclen_shift) & 0x7F;
    const std::uint32_t iplen = d.ctx.vlan_macip_lens & igbvf::txd::iplen_mask;
    if ((olinfo & igbvf::txd::popts_ixsm) != 0 && maclen + 20 <= scratch_.len && iplen >= 20) {
        std::byte* ip = scratch_.data.data() + maclen;
        ip[10] = ip[11] = std::byte{0};
        eth::put16(ip + 10, inet::checksum(ip, iplen < scratch_.len - maclen ? iplen : 20));
    }
    const bool ip6 = maclen < scratch_.len &&
                     (std::to_integer<unsigned>(scratch_.data[maclen]) >> 4) == 6;
    if ((olinfo & igbvf::txd::popts_txsm) != 0 && maclen + iplen + 8 <= scratch_.len &&
        iplen >= (ip6 ? 40u : 20u)) {
        std::byte* ip = scratch_.data.data() + maclen;
        std::byte* l4 = ip + iplen;
        const std::uint32_t l4len = scratch_.len - maclen - iplen;
        const bool tcp = (d.ctx.type_tucmd_mlhl & igbvf::txd::tucmd_l4t_tcp) != 0;
        const std::uint32_t off = tcp ? 16 : 6;
        if (off + 2 <= l4len) {
            l4[off] = l4[off + 1] = std::byte{0};
            const std::uint16_t v = inet::checksum(l4, l4len, inet::pseudo_sum_of(ip, tcp ? 6u : 17u, l4len));
            eth::put16(l4 + off, v == 0 && !tcp ? std::uint16_t{0xFFFF} : v);  // UDP: 0 means none
        }
    }
    if ((cmd & igbvf::txd::dcmd_vle) != 0 && scratch_.len + 4 <= max_frame_size && scratch_.len >= 14) {
        std::memmove(scratch_.data.data() + 16, scratch_.data.data() + 12, scratch_.len - 12);
        eth::put16(scratch_.data.data() + 12, eth::type_vlan);
        eth::put16(scratch_.data.data() + 14, static_cast<std::uint16_t>(d.ctx.vlan_macip_lens >> 16));
        scratch_.len += 4;
    }
}

// IPv4 header and TCP/UDP checksum verdicts (datasheet 7.1.5: IPCS, L4CS, UDPCS).
inline std::uint32_t igbvf_device::rx_csum(const frame& f, le16& pkt_info) const noexcept {
    if ((cfg_.limits.offloads & cap::rx_csum) == 0) {
        return igbvf::rxd::stat_ixsm;
    }
    eth::header h;
    if (!eth::parse(f.bytes(), h) || h.type != 0x0800 || f.len < h.payload_off + 20) {
        return 0;
    }
    const std::byte* ip = f.data.data() + h.payload_off;
    const std::uint32_t ihl = (std::to_integer<std::uint32_t>(ip[0]) & 0xF) * 4;
    if (ihl < 20 || h.payload_off + ihl > f.len) {
        return 0;
    }
    pkt_info = igbvf::rxd::pkttype_ipv4;
    std::uint32_t st = igbvf::rxd::stat_ipcs;
    if (!inet::verify(ip, ihl)) {
        st |= igbvf::rxd::err_ipe;
    }
    const std::uint32_t proto = std::to_integer<std::uint32_t>(ip[9]);
    const std::uint32_t l4len = f.len - h.payload_off - ihl;
    if ((proto == 6 || proto == 17) && l4len >= 8) {
        const bool ok = inet::verify(ip + ihl, l4len, inet::pseudo_sum(ip, proto, l4len));
        pkt_info |= proto == 6 ? igbvf::rxd::pkttype_tcp : igbvf::rxd::pkttype_udp;
        st |= (proto == 6 ? igbvf::rxd::stat_l4cs : igbvf::rxd::stat_udpcs) |
              (ok ? 0 : igbvf::rxd::err_tcpe);
    }
    return st;
}

} // namespace npa::sim
