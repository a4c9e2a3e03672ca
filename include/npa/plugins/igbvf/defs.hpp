// npa/plugins/igbvf/defs.hpp: the programming interface of an Intel 82576 virtual
// function ("Kawela" VF), as the igbvf plugin and the sim device model both use it.
//
// Sources of the facts (offsets, bit positions, layouts): Intel 82576EB GbE Controller
// Datasheet, chapter 7 (descriptors) and 8 (registers), as mirrored by Linux
// drivers/net/ethernet/intel/igbvf/{regs.h,defines.h,mbx.h,vf.h} and DPDK
// drivers/net/e1000/base. Names keep the datasheet's spelling (STYLE.md point 7).
//
// What a VF is given (datasheet 7.8 "Virtualization"): a 16 KiB register BAR with its own
// queue registers, interrupt registers and a mailbox to the PF; nothing else. MAC,
// VLAN, multicast and MTU are not VF registers: the VF asks the PF through the mailbox
// and the PF programs the embedded switch, which is what makes NPA's split natural here.
#pragma once

#include <npa/config.hpp>
#include <npa/endian.hpp>
#include <npa/ring/gen_ring.hpp>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace npa::igbvf {

// ---- device limits (datasheet 7.1.3 / 7.2.3; igbvf.h) --------------------------------
/// Queue pairs an 82576 VF owns (16 queues shared by 8 VFs, 2 each).
inline constexpr std::uint16_t max_queues = 2;
/// RDLEN/TDLEN must be a multiple of 128 bytes: rings are multiples of 8 descriptors.
inline constexpr std::uint32_t ring_multiple = 8;
inline constexpr std::uint32_t min_ring_size = 8;
inline constexpr std::uint32_t max_ring_size = 4096;  // igbvf's IGBVF_MAX_{T,R}XD
inline constexpr std::uint32_t desc_size = 16;
/// Register BAR of a VF (BAR0): 16 KiB.
inline constexpr std::uint32_t bar_size = 16 * 1024;

[[nodiscard]] constexpr bool ring_size_ok(std::uint32_t n) noexcept {
    return n >= min_ring_size && n <= max_ring_size && n % ring_multiple == 0;
}
/// Ethernet header and 802.1Q tag: the frame bounds around the MTU.
inline constexpr std::uint32_t eth_hlen = 14, vlan_hlen = 4;

// ---- register offsets (regs.h; datasheet 8.x, VF register space) ----------------------
namespace reg {
inline constexpr std::uint32_t ctrl = 0x00000;     ///< VTCTRL: device control (RST)
inline constexpr std::uint32_t status = 0x00008;   ///< VTSTATUS: link up, speed
inline constexpr std::uint32_t vmbmem = 0x00800;   ///< VMBMEM: 16 dwords of mailbox memory
inline constexpr std::uint32_t vmmb = 0x00C40;     ///< V2PMAILBOX: mailbox control
inline constexpr std::uint32_t eics = 0x01520;     ///< extended interrupt cause set
inline constexpr std::uint32_t eims = 0x01524;     ///< extended interrupt mask set / read
inline constexpr std::uint32_t eimc = 0x01528;     ///< extended interrupt mask clear
inline constexpr std::uint32_t eiac = 0x0152C;     ///< extended interrupt auto clear
inline constexpr std::uint32_t eiam = 0x01530;     ///< extended interrupt auto mask
inline constexpr std::uint32_t eicr = 0x01580;     ///< extended interrupt cause read
[[nodiscard]] constexpr std::uint32_t eitr(std::uint32_t n) noexcept { return 0x01680 + 4 * n; }
inline constexpr std::uint32_t ivar0 = 0x01700;
inline constexpr std::uint32_t ivar_misc = 0x01740;
// Statistics (regs.h E1000_VFG*): good packets and octets received and sent, 32 bits,
// counting from the VF's reset and wrapping.
inline constexpr std::uint32_t vfgprc = 0x00F10;
inline constexpr std::uint32_t vfgptc = 0x00F14;
inline constexpr std::uint32_t vfgorc = 0x00F18;
inline constexpr std::uint32_t vfgotc = 0x00F34;

// Queue registers: queue n < 4 at 0x2800/0x3800 + n * 0x100 (a VF has 2).
[[nodiscard]] constexpr std::uint32_t rdbal(std::uint32_t n) noexcept { return 0x02800 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t rdbah(std::uint32_t n) noexcept { return 0x02804 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t rdlen(std::uint32_t n) noexcept { return 0x02808 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t srrctl(std::uint32_t n) noexcept { return 0x0280C + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t rdh(std::uint32_t n) noexcept { return 0x02810 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t rdt(std::uint32_t n) noexcept { return 0x02818 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t rxdctl(std::uint32_t n) noexcept { return 0x02828 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t tdbal(std::uint32_t n) noexcept { return 0x03800 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t tdbah(std::uint32_t n) noexcept { return 0x03804 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t tdlen(std::uint32_t n) noexcept { return 0x03808 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t tdh(std::uint32_t n) noexcept { return 0x03810 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t tdt(std::uint32_t n) noexcept { return 0x03818 + n * 0x100; }
/// DCA_TXCTRL: the queue's TX DMA attributes; in the VF's BAR as in the PF's (igbvf's regs.h;
/// QEMU's igbvf maps it to the PF's TXCTL of the VF's queue).
[[nodiscard]] constexpr std::uint32_t dca_txctrl(std::uint32_t n) noexcept { return 0x03814 + n * 0x100; }
[[nodiscard]] constexpr std::uint32_t txdctl(std::uint32_t n) noexcept { return 0x03828 + n * 0x100; }

static_assert(rdbal(1) == 0x2900 && rdt(1) == 0x2918 && rxdctl(0) == 0x2828);
static_assert(tdbal(1) == 0x3900 && tdt(0) == 0x3818 && txdctl(1) == 0x3928);
static_assert(eitr(2) == 0x1688 && vmmb == 0xC40 && vmbmem == 0x800);
static_assert(txdctl(max_queues - 1) < bar_size && eicr < bar_size);
} // namespace reg

// ---- register bits (defines.h) --------------------------------------------------------
inline constexpr std::uint32_t ctrl_rst = 0x04000000;         ///< CTRL.RST: VF reset
inline constexpr std::uint32_t status_fd = 0x00000001;
inline constexpr std::uint32_t status_lu = 0x00000002;        ///< link up
inline constexpr std::uint32_t status_speed_1000 = 0x00000080;
/// A read of all ones: the function is gone (PCIe master abort on a removed device).
inline constexpr std::uint32_t reg_removed = 0xFFFFFFFF;

inline constexpr std::uint32_t rxdctl_enable = 0x02000000;    ///< RXDCTL.ENABLE
inline constexpr std::uint32_t txdctl_enable = 0x02000000;    ///< TXDCTL.ENABLE
/// DCA_TXCTRL.TX_WB_RO_EN: descriptor write-backs may use PCIe relaxed ordering, so one
/// may land before an earlier one. Set at reset (with the read relaxed-ordering bits,
/// 0x2A00 as QEMU's igb resets TXCTL); igbvf_configure_tx clears it.
inline constexpr std::uint32_t dca_txctrl_tx_wb_ro_en = 0x00000800;
inline constexpr std::uint32_t dca_txctrl_reset = 0x00002A00;

inline constexpr std::uint32_t srrctl_bsizepkt_shift = 10;    ///< packet buffer size in KiB
inline constexpr std::uint32_t srrctl_bsizepkt_mask = 0x0000007F;
inline constexpr std::uint32_t srrctl_desctype_adv_onebuf = 0x02000000;
inline constexpr std::uint32_t srrctl_desctype_mask = 0x0E000000;
inline constexpr std::uint32_t srrctl_drop_en = 0x80000000;

// ---- advanced RX descriptor (vf.h union e1000_adv_rx_desc; datasheet 7.1.5) ---------
// Descriptor types are trivial (no member initialisers): they live in DMA memory and are
// copied with memcpy; value-initialise them ({}) to get zeroes.
/// Read format: what the driver writes.
struct adv_rx_read {
    le64 pkt_addr;  ///< packet buffer address
    le64 hdr_addr;  ///< header buffer address (0: no header split); bit 0 is DD
};
/// Write-back format: what the device writes over it when the packet is in.
struct alignas(8) adv_rx_wb {
    le16 pkt_info;      ///< RSS type (3:0), packet type (16:4)
    le16 hdr_info;      ///< header length (SPH set), 0 in one-buffer mode
    le32 rss;           ///< RSS hash
    le32 status_error;  ///< extended status (19:0) and errors (31:20)
    le16 length;        ///< bytes written to the packet buffer
    le16 vlan;          ///< stripped 802.1Q tag (VP set)
};
/// One slot, seen either way.
union adv_rx_desc {
    adv_rx_read read;
    adv_rx_wb wb;
};
static_assert(sizeof(adv_rx_read) == desc_size && offsetof(adv_rx_read, hdr_addr) == 8);
static_assert(sizeof(adv_rx_wb) == desc_size && offsetof(adv_rx_wb, hdr_info) == 2 &&
              offsetof(adv_rx_wb, rss) == 4 && offsetof(adv_rx_wb, status_error) == 8 &&
              offsetof(adv_rx_wb, length) == 12 && offsetof(adv_rx_wb, vlan) == 14);
static_assert(sizeof(adv_rx_desc) == desc_size && alignof(adv_rx_desc) == 8);

// status_error bits (defines.h E1000_RXD_STAT_*, E1000_RXDEXT_STATERR_*)
namespace rxd {
inline constexpr std::uint32_t stat_dd = 0x01;     ///< descriptor done
inline constexpr std::uint32_t stat_eop = 0x02;    ///< end of packet
inline constexpr std::uint32_t stat_ixsm = 0x04;   ///< checksum not checked
inline constexpr std::uint32_t stat_vp = 0x08;     ///< 802.1Q packet, tag in `vlan`
inline constexpr std::uint32_t stat_udpcs = 0x10;  ///< UDP checksum checked
inline constexpr std::uint32_t stat_l4cs = 0x20;   ///< TCP (L4) checksum checked (TCPCS)
inline constexpr std::uint32_t stat_ipcs = 0x40;   ///< IPv4 header checksum checked
inline constexpr std::uint32_t stat_pif = 0x80;    ///< passed in-exact filter
inline constexpr std::uint32_t stat_tst = 0x100;   ///< timestamp in the packet
inline constexpr std::uint32_t stat_ipidv = 0x200; ///< IP identification valid
inline constexpr std::uint32_t stat_udpv = 0x400;  ///< valid UDP checksum field
inline constexpr std::uint32_t stat_dynint = 0x800;  ///< interrupt raised by DYNINT
inline constexpr std::uint32_t stat_ack = 0x8000;  ///< TCP ACK (TSIP on later parts)
inline constexpr std::uint32_t stat_ts = 0x10000;  ///< time stamped
inline constexpr std::uint32_t stat_secp = 0x20000;  ///< security processing applied
inline constexpr std::uint32_t stat_lb = 0x00040000;  ///< loopback from another VF (VM-to-VM)
inline constexpr std::uint32_t err_ce = 0x01000000;   ///< CRC / alignment error
inline constexpr std::uint32_t err_se = 0x02000000;   ///< symbol error
inline constexpr std::uint32_t err_seq = 0x04000000;  ///< sequence error
inline constexpr std::uint32_t err_cxe = 0x10000000;  ///< carrier extension error
inline constexpr std::uint32_t err_tcpe = 0x20000000; ///< L4 checksum error
inline constexpr std::uint32_t err_ipe = 0x40000000;  ///< IPv4 checksum error
inline constexpr std::uint32_t err_rxe = 0x80000000;  ///< RX data error (DMA, FIFO)
/// Errors that make the frame unusable (E1000_RXDEXT_ERR_FRAME_ERR_MASK).
inline constexpr std::uint32_t err_frame = err_ce | err_se | err_seq | err_cxe | err_rxe;
/// Every bit a one-buffer write-back may legally carry; anything else is device garbage.
/// The informational status bits count as legal: QEMU's igb writes IPIDV on IPv4 frames
/// when the PF leaves RXCSUM.PCSD clear, and ACK on TCP ACKs in some versions; Linux's
/// igbvf_clean_rx_irq reads only DD, EOP and the frame errors.
inline constexpr std::uint32_t known = stat_dd | stat_eop | stat_ixsm | stat_vp | stat_udpcs |
                                       stat_l4cs | stat_ipcs | stat_pif | stat_tst | stat_ipidv |
                                       stat_udpv | stat_dynint | stat_ack | stat_ts | stat_secp |
                                       stat_lb | err_frame | err_tcpe | err_ipe;
/// pkt_info packet type bits (datasheet 7.1.5.2; E1000_RXDADV_PKTTYPE_*).
inline constexpr std::uint16_t pkttype_ipv4 = 0x0010;
inline constexpr std::uint16_t pkttype_ipv6 = 0x0040;
inline constexpr std::uint16_t pkttype_tcp = 0x0100;
inline constexpr std::uint16_t pkttype_udp = 0x0200;
/// hdr_info: SPH (header split) and the header length field.
inline constexpr std::uint16_t hdr_sph = 0x8000;
inline constexpr std::uint16_t hdrbuflen_mask = 0x7FE0;
} // namespace rxd

/// The DD bit is bit 0 of 32-bit word 2 (status_error) of the write-back; in the read
/// format the same word is the low half of hdr_addr, which the driver writes as 0.
using rx_done_traits = done_bit_traits<adv_rx_desc, 2, 0>;

// ---- advanced TX descriptors (vf.h union e1000_adv_tx_desc; datasheet 7.2.2) --------
struct adv_tx_read {
    le64 buffer_addr;
    le32 cmd_type_len;   ///< DCMD (31:24), DTYP (23:20), DTALEN (15:0)
    le32 olinfo_status;  ///< PAYLEN (31:14), POPTS (13:8), CC, IDX (6:4), STA (3:0)
};
struct adv_tx_wb {
    le64 rsvd;
    le32 nxtseq_seed;
    le32 status;         ///< STA: DD is bit 0
};
union adv_tx_desc {
    adv_tx_read read;
    adv_tx_wb wb;
};
/// Advanced context descriptor: offload parameters for the data descriptors that follow.
struct adv_tx_context_desc {
    le32 vlan_macip_lens;  ///< VLAN (31:16), MACLEN (15:9), IPLEN (8:0)
    le32 seqnum_seed;
    le32 type_tucmd_mlhl;  ///< DEXT, DTYP=CTXT, TUCMD (IPV4, L4T)
    le32 mss_l4len_idx;    ///< MSS (31:16), L4LEN (15:8), IDX (6:4)
};
static_assert(sizeof(adv_tx_read) == desc_size && offsetof(adv_tx_read, cmd_type_len) == 8 &&
              offsetof(adv_tx_read, olinfo_status) == 12);
static_assert(sizeof(adv_tx_wb) == desc_size && offsetof(adv_tx_wb, nxtseq_seed) == 8 &&
              offsetof(adv_tx_wb, status) == 12);
static_assert(sizeof(adv_tx_desc) == desc_size && alignof(adv_tx_desc) == 8);
static_assert(sizeof(adv_tx_context_desc) == desc_size &&
              offsetof(adv_tx_context_desc, seqnum_seed) == 4 &&
              offsetof(adv_tx_context_desc, type_tucmd_mlhl) == 8 &&
              offsetof(adv_tx_context_desc, mss_l4len_idx) == 12);

namespace txd {
inline constexpr std::uint32_t dtyp_ctxt = 0x00200000;  ///< advanced context descriptor
inline constexpr std::uint32_t dtyp_data = 0x00300000;  ///< advanced data descriptor
inline constexpr std::uint32_t dtyp_mask = 0x00F00000;
inline constexpr std::uint32_t dcmd_eop = 0x01000000;   ///< end of packet
inline constexpr std::uint32_t dcmd_ifcs = 0x02000000;  ///< insert FCS
inline constexpr std::uint32_t dcmd_rs = 0x08000000;    ///< report status (write back DD)
inline constexpr std::uint32_t dcmd_dext = 0x20000000;  ///< descriptor extension (advanced)
inline constexpr std::uint32_t dcmd_vle = 0x40000000;   ///< insert the context's VLAN tag
inline constexpr std::uint32_t dcmd_tse = 0x80000000;   ///< TCP segmentation
inline constexpr std::uint32_t dtalen_mask = 0x0000FFFF;
inline constexpr std::uint32_t paylen_shift = 14;
/// The shortest frame the TX engine takes: with TCTL.PSP set (short packets padded on the
/// wire) the 82576 needs at least 17 bytes in host memory, so Linux's igb pads anything
/// shorter before it is handed over (igb_xmit_frame).
inline constexpr std::uint32_t min_frame = 17;
inline constexpr std::uint32_t popts_ixsm = 0x00000100; ///< insert IPv4 header checksum
inline constexpr std::uint32_t popts_txsm = 0x00000200; ///< insert TCP/UDP checksum
inline constexpr std::uint32_t idx_shift = 4;           ///< context slot (0 or 1)
inline constexpr std::uint32_t stat_dd = 0x00000001;    ///< write-back: descriptor done
// context descriptor fields
inline constexpr std::uint32_t maclen_shift = 9;
inline constexpr std::uint32_t vlan_shift = 16;
inline constexpr std::uint32_t iplen_mask = 0x1FF;
inline constexpr std::uint32_t tucmd_ipv4 = 0x00000400;
inline constexpr std::uint32_t tucmd_l4t_udp = 0x00000000;
inline constexpr std::uint32_t tucmd_l4t_tcp = 0x00000800;
inline constexpr std::uint32_t l4len_shift = 8;
inline constexpr std::uint32_t mss_shift = 16;
} // namespace txd

/// DD is bit 0 of word 3 (status) of the TX write-back.
using tx_done_traits = done_bit_traits<adv_tx_desc, 3, 0>;

// ---- descriptor words as the driver reads and clears them (the plugin's TX and RX) -----
// acquire: pairs with the device's release store of the word it writes back last
// (DD in the status word); the fields are read only after it.
template <class Desc>
[[nodiscard]] inline std::uint32_t load_word(Desc& d, std::size_t w) noexcept {
    return from_le32(std::atomic_ref<std::uint32_t>(reinterpret_cast<std::uint32_t*>(&d)[w])
                         .load(std::memory_order_acquire));
}
template <class Desc>
inline void clear_word(Desc& d, std::size_t w) noexcept {
    // relaxed: the slot is the driver's until the tail write, which a release fence
    // precedes; 0 is the same in every byte order.
    std::atomic_ref<std::uint32_t> word(reinterpret_cast<std::uint32_t*>(&d)[w]);
    word.store(0, std::memory_order_relaxed);  // relaxed: see above
}

// ---- mailbox (mbx.h; datasheet 7.8.2.9 "PF/VF mailbox") -------------------------------
namespace mbx {
inline constexpr std::uint32_t size = 16;           ///< dwords of VMBMEM
// V2PMAILBOX (VMMB) bits
inline constexpr std::uint32_t req = 0x00000001;    ///< VF: request for the PF (message ready)
inline constexpr std::uint32_t ack = 0x00000002;    ///< VF: PF message received
inline constexpr std::uint32_t vfu = 0x00000004;    ///< VF owns the buffer
inline constexpr std::uint32_t pfu = 0x00000008;    ///< PF owns the buffer
inline constexpr std::uint32_t pfsts = 0x00000010;  ///< PF wrote a message (read to clear)
inline constexpr std::uint32_t pfack = 0x00000020;  ///< PF took the VF's message (read to clear)
inline constexpr std::uint32_t rsti = 0x00000040;   ///< PF reset in progress (read to clear)
inline constexpr std::uint32_t rstd = 0x00000080;   ///< PF reset done (read to clear)
inline constexpr std::uint32_t r2c_bits = pfsts | pfack | rstd;
// Message word 0: id (15:0), info (23:16), type flags (31:29)
inline constexpr std::uint32_t msgtype_ack = 0x80000000;   ///< the PF did it
inline constexpr std::uint32_t msgtype_nack = 0x40000000;  ///< the PF refused it
inline constexpr std::uint32_t msgtype_cts = 0x20000000;   ///< the VF is clear to send
inline constexpr std::uint32_t msgtype_mask = 0xF0000000;
inline constexpr std::uint32_t msginfo_shift = 16;
inline constexpr std::uint32_t msginfo_mask = 0xFF << msginfo_shift;
inline constexpr std::uint32_t msgid_mask = 0x0000FFFF;
// Message ids
inline constexpr std::uint32_t vf_reset = 0x01;         ///< reply: MAC in words 1-2
inline constexpr std::uint32_t vf_set_mac_addr = 0x02;  ///< MAC bytes in words 1-2
inline constexpr std::uint32_t vf_set_multicast = 0x03; ///< info = count, hashes in words 1..
inline constexpr std::uint32_t vf_set_vlan = 0x04;      ///< info = add, VLAN id in word 1
inline constexpr std::uint32_t vf_set_lpe = 0x05;       ///< max frame size in word 1
inline constexpr std::uint32_t vf_set_promisc = 0x06;   ///< info = unicast / multicast
/// A message the PF starts (mbx.h E1000_PF_CONTROL_MSG): Linux's igb sends it with CTS to
/// every VF when it comes up or resets (igb_ping_all_vfs). It waits in VMBMEM with PFSTS
/// until the VF reads and ACKs it.
inline constexpr std::uint32_t pf_control_msg = 0x0100;
inline constexpr std::uint32_t vf_set_vlan_add = 1u << msginfo_shift;
inline constexpr std::uint32_t vf_set_promisc_unicast = 0x01u << msginfo_shift;
inline constexpr std::uint32_t vf_set_promisc_multicast = 0x02u << msginfo_shift;
/// Hashes one SET_MULTICAST carries: 30 (the message is 16 dwords of 2 hashes each,
/// minus the header word; igbvf sends at most 30).
inline constexpr std::uint32_t max_mcast_hashes = 30;
/// A sim PF puts a reason code in word 1 of a NACK, tagged: nack_reason_tag | reason.
/// Linux's igb PF writes only word 0 of a reply (3 words for RESET), so word 1 of its NACK
/// still holds what the VF wrote there (a VLAN id, MAC bytes): an untagged word is no
/// reason, read as "refused by the PF".
inline constexpr std::uint32_t nack_reason_word = 1;
inline constexpr std::uint32_t nack_reason_tag = 0x4E414B00;  ///< "NAK" in the top 24 bits
inline constexpr std::uint32_t nack_reason_tag_mask = 0xFFFFFF00;
} // namespace mbx

/// Why a PF refused a request (word 1 of a NACK, see mbx::nack_reason_word).
enum class nack_reason : std::uint32_t {
    unspecified = 0,
    mac_not_allowed = 1,
    vlan_not_allowed = 2,
    mtu_too_large = 3,
    promisc_not_allowed = 4,
    too_many_mcast = 5,
    bad_message = 6,
    not_clear_to_send = 7,
};
/// The largest nack_reason a tagged reason word may carry.
inline constexpr std::uint32_t nack_reason_max = 7;

[[nodiscard]] constexpr const char* to_string(nack_reason r) noexcept {
    switch (r) {
    case nack_reason::unspecified: return "refused by the PF";
    case nack_reason::mac_not_allowed: return "PF policy: MAC address not allowed for this VF";
    case nack_reason::vlan_not_allowed: return "PF policy: VLAN not allowed for this VF";
    case nack_reason::mtu_too_large: return "PF policy: MTU above this VF's limit";
    case nack_reason::promisc_not_allowed: return "PF policy: promiscuous mode not allowed";
    case nack_reason::too_many_mcast: return "PF: multicast list longer than 30 entries";
    case nack_reason::bad_message: return "PF: malformed mailbox message";
    case nack_reason::not_clear_to_send:
        return "PF: the VF was reset and has not sent RESET since (not clear to send)";
    }
    return "refused by the PF";
}

/// 12-bit multicast hash of a MAC as the 82576 MTA uses it with filter type 0
/// (bits 47:36 of the address; datasheet 8.10.15 "MTA", e1000_hash_mc_addr_vf).
[[nodiscard]] constexpr std::uint16_t mta_hash(const std::uint8_t* mac) noexcept {
    return static_cast<std::uint16_t>(((mac[4] >> 4) | (std::uint32_t{mac[5]} << 4)) & 0xFFF);
}

} // namespace npa::igbvf
