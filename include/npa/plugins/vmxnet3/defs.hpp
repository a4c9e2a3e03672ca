// npa/plugins/vmxnet3/defs.hpp: the vmxnet3 device ABI, as facts.
//
// Register offsets, commands, descriptor and shared-memory layouts of VMware's paravirtual
// NIC, so that a reader can put them next to the device's published definitions and find
// them identical:
//   - Linux drivers/net/vmxnet3/vmxnet3_defs.h and upt1_defs.h (the layouts, kept in sync
//     with the device by VMware);
//   - DPDK drivers/net/vmxnet3/base/vmxnet3_defs.h and upt1_defs.h (the same ABI).
// Names keep the spec's spelling (txdIdx, rqID, updateRxProd ...) so that a grep finds both
// sides. Descriptors are expressed as little-endian 32-bit words with accessors, not C bit
// fields, because bit-field order is implementation-defined; every size and offset is
// checked below (static_assert), so a layout slip does not compile.
//
// Only the layouts live here; the plugin (plugin.hpp), the control path
// (npa/control/vmxnet3.hpp) and the sim device model (npa/sim/vmxnet3_device.hpp) all use them,
// so the driver side and the device side cannot disagree about the ABI.
#pragma once

#include <npa/config.hpp>
#include <npa/endian.hpp>
#include <npa/ring/gen_ring.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace npa::vmxnet3 {

// ---- bit-field helper: Width bits at Shift of a 32-bit word ------------------------------
// Bit positions are the spec's, counted in the word's value (bit 0 = least significant), so
// they do not depend on the compiler's bit-field order or on the host's byte order: the
// le32 overloads convert the device's little-endian word first.
template <unsigned Shift, unsigned Width>
struct field {
    static_assert(Shift + Width <= 32);
    static constexpr std::uint32_t mask = (Width == 32 ? ~0u : ((1u << Width) - 1u)) << Shift;
    [[nodiscard]] static constexpr std::uint32_t get(std::uint32_t w) noexcept {
        return (w & mask) >> Shift;
    }
    static constexpr void set(std::uint32_t& w, std::uint32_t v) noexcept {
        w = (w & ~mask) | ((v << Shift) & mask);
    }
    [[nodiscard]] static constexpr std::uint32_t get(le32 w) noexcept { return get(w.get()); }
    static constexpr void set(le32& w, std::uint32_t v) noexcept {
        std::uint32_t x = w.get();
        set(x, v);
        w.set(x);
    }
};

// ---- PCI identity (vmxnet3 PCI id table) --------------------------------------------------
inline constexpr std::uint16_t pci_vendor_vmware = 0x15ad;
inline constexpr std::uint16_t pci_device_vmxnet3 = 0x07b0;

// ---- BAR1 ("VD", virtual device) registers: control, 8-byte aligned -----------------------
namespace reg {
inline constexpr std::uint32_t VRRS = 0x00;  ///< vmxnet3 revision report (read) / select (write)
inline constexpr std::uint32_t UVRS = 0x08;  ///< UPT revision report / select
inline constexpr std::uint32_t DSAL = 0x10;  ///< driver shared area address, low 32 bits
inline constexpr std::uint32_t DSAH = 0x18;  ///< ... high 32 bits
inline constexpr std::uint32_t CMD = 0x20;   ///< command (write); command result (read)
inline constexpr std::uint32_t MACL = 0x28;  ///< MAC address bytes 0..3
inline constexpr std::uint32_t MACH = 0x30;  ///< MAC address bytes 4..5
inline constexpr std::uint32_t ICR = 0x38;   ///< interrupt cause (INTx)
inline constexpr std::uint32_t ECR = 0x40;   ///< event cause (write 1 to clear)
inline constexpr std::uint32_t DCR = 0x48;   ///< device capability register (revision 7)
inline constexpr std::uint32_t PTCR = 0x88;  ///< passthrough capability register (revision 7)

// ---- BAR0 ("PT", passthrough) registers: the data-path doorbells, 8-byte stride ----------
inline constexpr std::uint32_t IMR = 0x000;      ///< interrupt mask, one per vector
inline constexpr std::uint32_t TXPROD = 0x600;   ///< TX producer index, one per TX queue
inline constexpr std::uint32_t RXPROD = 0x800;   ///< RX ring 1 producer index, per RX queue
inline constexpr std::uint32_t RXPROD2 = 0xA00;  ///< RX ring 2 producer index, per RX queue
inline constexpr std::uint32_t stride = 8;       ///< VMXNET3_REG_ALIGN

inline constexpr std::uint32_t pt_size = 4096;   ///< VMXNET3_PT_REG_SIZE (BAR0)
inline constexpr std::uint32_t vd_size = 4096;   ///< VMXNET3_VD_REG_SIZE (BAR1)

[[nodiscard]] constexpr std::uint32_t imr(std::uint32_t vector) noexcept { return IMR + vector * stride; }
[[nodiscard]] constexpr std::uint32_t txprod(std::uint32_t q) noexcept { return TXPROD + q * stride; }
[[nodiscard]] constexpr std::uint32_t rxprod(std::uint32_t q) noexcept { return RXPROD + q * stride; }
[[nodiscard]] constexpr std::uint32_t rxprod2(std::uint32_t q) noexcept { return RXPROD2 + q * stride; }
} // namespace reg

/// The BARs, as indices for an MMIO accessor.
enum class bar : std::uint8_t { pt = 0, vd = 1 };

// ---- commands: written to BAR1 CMD; the device answers in CMD ----------------------------
namespace cmd {
inline constexpr std::uint32_t first_set = 0xCAFE0000u;
inline constexpr std::uint32_t ACTIVATE_DEV = first_set + 0;
inline constexpr std::uint32_t QUIESCE_DEV = first_set + 1;
inline constexpr std::uint32_t RESET_DEV = first_set + 2;
inline constexpr std::uint32_t UPDATE_RX_MODE = first_set + 3;
inline constexpr std::uint32_t UPDATE_MAC_FILTERS = first_set + 4;
inline constexpr std::uint32_t UPDATE_VLAN_FILTERS = first_set + 5;
inline constexpr std::uint32_t UPDATE_RSSIDT = first_set + 6;
inline constexpr std::uint32_t UPDATE_IML = first_set + 7;
inline constexpr std::uint32_t UPDATE_PMCFG = first_set + 8;
inline constexpr std::uint32_t UPDATE_FEATURE = first_set + 9;
inline constexpr std::uint32_t RESERVED1 = first_set + 10;  ///< formerly STOP_EMULATION
inline constexpr std::uint32_t LOAD_PLUGIN = first_set + 11;
inline constexpr std::uint32_t SET_COALESCE = first_set + 14;
inline constexpr std::uint32_t REGISTER_MEMREGS = first_set + 15;
inline constexpr std::uint32_t SET_RSS_FIELDS = first_set + 16;
inline constexpr std::uint32_t SET_RING_BUFFER_SIZE = first_set + 19;

inline constexpr std::uint32_t first_get = 0xF00D0000u;
inline constexpr std::uint32_t GET_QUEUE_STATUS = first_get + 0;
inline constexpr std::uint32_t GET_STATS = first_get + 1;
inline constexpr std::uint32_t GET_LINK = first_get + 2;
inline constexpr std::uint32_t GET_PERM_MAC_LO = first_get + 3;
inline constexpr std::uint32_t GET_PERM_MAC_HI = first_get + 4;
inline constexpr std::uint32_t GET_DID_LO = first_get + 5;
inline constexpr std::uint32_t GET_DID_HI = first_get + 6;
inline constexpr std::uint32_t GET_DEV_EXTRA_INFO = first_get + 7;
inline constexpr std::uint32_t GET_CONF_INTR = first_get + 8;
inline constexpr std::uint32_t GET_TXDATA_DESC_SIZE = first_get + 10;
inline constexpr std::uint32_t GET_COALESCE = first_get + 11;
inline constexpr std::uint32_t GET_RSS_FIELDS = first_get + 12;
inline constexpr std::uint32_t GET_MAX_QUEUES_CONF = first_get + 15;
inline constexpr std::uint32_t GET_MAX_CAPABILITIES = first_get + 17;
inline constexpr std::uint32_t GET_DCR0_REG = first_get + 18;
} // namespace cmd

/// LOAD_PLUGIN: the hypervisor copies the plugin image it holds for a device into guest
/// memory (the NPA proposal: "the hypervisor injects the plugin into memory location
/// specified by the shell"). VMware reserved the command but published no layout; this is
/// the model's, in the style of the SET commands with data (Linux vmxnet3_set_coalesce):
/// the driver writes the arguments to driver_shared::cmdInfo, laid out as a
/// Vmxnet3_VariableLenConfDesc, issues the command, and reads the answer in CMD and cmdInfo.
struct load_plugin_info {
    le32 deviceId = 0;  ///< confVer: the device a plugin is wanted for (image::pci_device_id)
    le32 areaLen = 0;   ///< confLen: bytes of the guest area; the device writes the image's size
    le64 areaPA = 0;    ///< confPA: the guest area's address
};
static_assert(sizeof(load_plugin_info) == 16 && offsetof(load_plugin_info, areaLen) == 4 &&
              offsetof(load_plugin_info, areaPA) == 8);

/// load_plugin_info in and out of driver_shared::cmdInfo (the union's first 16 bytes;
/// copied, so that a value the device wrote is read once).
inline void put_load_plugin(le64 (&cmd_info)[2], const load_plugin_info& a) noexcept {
    std::memcpy(static_cast<void*>(cmd_info), &a, sizeof a);
}
[[nodiscard]] inline load_plugin_info get_load_plugin(const le64 (&cmd_info)[2]) noexcept {
    load_plugin_info a;
    std::memcpy(static_cast<void*>(&a), cmd_info, sizeof a);
    return a;
}

/// LOAD_PLUGIN answers in CMD (0: the image is in the area, its size in areaLen).
namespace plugin_err {
inline constexpr std::uint32_t NO_PLUGIN = 1;  ///< no image held for that device
inline constexpr std::uint32_t TOO_SMALL = 2;  ///< the area is smaller than the image (areaLen: the size needed)
inline constexpr std::uint32_t BAD_AREA = 3;   ///< the area is not guest memory
} // namespace plugin_err

/// GET_LINK answer: bit 0 link up, bits 16..31 speed in Mbit/s (VMXNET3_LINK_UP).
inline constexpr std::uint32_t link_up_10g = (10000u << 16) | 1u;
inline constexpr std::uint32_t link_down = 0;

/// VRRS / UVRS: a read gives one bit per revision the device speaks (bit 0: revision 1);
/// the driver selects one by writing back that single bit (Linux vmxnet3_probe_device).
inline constexpr std::uint32_t REV1_BIT = 1u << 0;

/// ECR (event cause) bits.
namespace ecr {
inline constexpr std::uint32_t RQERR = 1u << 0;  ///< an RX queue hit an error
inline constexpr std::uint32_t TQERR = 1u << 1;  ///< a TX queue hit an error
inline constexpr std::uint32_t LINK = 1u << 2;   ///< link state changed
inline constexpr std::uint32_t DIC = 1u << 3;    ///< device implementation change
inline constexpr std::uint32_t DEBUG = 1u << 4;
} // namespace ecr

/// Queue error codes the device writes to Vmxnet3_QueueStatus::error.
namespace err {
inline constexpr std::uint32_t NOEOP = 0x80000000u;        ///< no EOP descriptor found for a packet
inline constexpr std::uint32_t TXD_REUSE = 0x80000001u;    ///< descriptor reused before completion
inline constexpr std::uint32_t BIG_PKT = 0x80000002u; ///< too many TX descriptors for one packet
inline constexpr std::uint32_t DESC_NOT_SPT = 0x80000003u; ///< descriptor type not supported
inline constexpr std::uint32_t SMALL_BUF = 0x80000004u;    ///< type 0 (head) RX buffer too small
inline constexpr std::uint32_t STRESS = 0x80000005u;
inline constexpr std::uint32_t SWITCH = 0x80000006u;
inline constexpr std::uint32_t TXD_INVALID = 0x80000007u;  ///< malformed TX descriptor
} // namespace err

// ---- limits --------------------------------------------------------------------------------
inline constexpr std::uint32_t INIT_GEN = 1;                 ///< both sides start at generation 1
inline constexpr std::uint32_t MAX_TX_BUF_SIZE = 1u << 14;   ///< a TX len of 0 means this
inline constexpr std::uint32_t MAX_TXD_PER_PKT = 16;
inline constexpr std::uint32_t MAX_TSO_TXD_PER_PKT = 24;
inline constexpr std::uint32_t MAX_RX_BUF_SIZE = (1u << 14) - 1;
inline constexpr std::uint32_t MIN_T0_BUF_SIZE = 128;
inline constexpr std::uint32_t MAX_CSUM_OFFSET = 1024;
inline constexpr std::uint32_t RING_BA_ALIGN = 512;          ///< ring base addresses
inline constexpr std::uint32_t RING_SIZE_ALIGN = 32;         ///< ring sizes are multiples of this
inline constexpr std::uint32_t TX_RING_MAX_SIZE = 4096;
inline constexpr std::uint32_t TC_RING_MAX_SIZE = 4096;
inline constexpr std::uint32_t RX_RING_MAX_SIZE = 4096;
inline constexpr std::uint32_t RX_RING2_MAX_SIZE = 4096;
inline constexpr std::uint32_t RC_RING_MAX_SIZE = 8192;
inline constexpr std::uint32_t HDR_COPY_SIZE = 128;          ///< TX data ring entry (revision 1..2)
inline constexpr std::uint32_t TXDATA_DESC_MIN_SIZE = 128;
inline constexpr std::uint32_t TXDATA_DESC_MAX_SIZE = 2048;
inline constexpr std::uint32_t TXDATA_DESC_SIZE_ALIGN = 64;
inline constexpr std::uint32_t MAX_TX_QUEUES = 8;
inline constexpr std::uint32_t MAX_RX_QUEUES = 16;
inline constexpr std::uint32_t MAX_INTRS = 25;
inline constexpr std::uint32_t EXT_MAX_INTRS = 65;
inline constexpr std::uint32_t QUEUE_DESC_ALIGN = 128;
inline constexpr std::uint32_t MAX_MTU = 9000;
inline constexpr std::uint32_t MIN_MTU = 60;
inline constexpr std::uint32_t VFT_SIZE = 4096 / 32;          ///< VLAN filter table, 32-bit words
inline constexpr std::uint32_t REV1_MAGIC = 0xBABEFEE1u;      ///< Vmxnet3_DriverShared::magic

// ---- TX descriptor (Vmxnet3_TxDesc), 16 bytes -------------------------------------------
/// OM (offload mode) values of Vmxnet3_TxDesc::om.
namespace om {
inline constexpr std::uint32_t NONE = 0;
inline constexpr std::uint32_t ENCAP = 1;
inline constexpr std::uint32_t CSUM = 2;  ///< msscof = checksum offset from the packet start
inline constexpr std::uint32_t TSO = 3;   ///< msscof = MSS; hlen = all headers
} // namespace om

struct tx_desc {
    le64 addr = 0;    ///< buffer (or TX data ring entry) device address
    le32 dword2 = 0;  ///< len:14 gen:1 oco:1 dtype:1 ext1:1 msscof:14
    le32 dword3 = 0;  ///< hlen:10 om:2 eop:1 cq:1 ext2:1 ti:1 tci:16

    using len = field<0, 14>;      ///< 0 means MAX_TX_BUF_SIZE
    using gen = field<14, 1>;      ///< VMXNET3_TXD_GEN_SHIFT, dword 2
    using oco = field<15, 1>;      ///< outer checksum offload (revision 4; reserved before)
    using dtype = field<16, 1>;    ///< descriptor type; 0 = TX
    using ext1 = field<17, 1>;
    using msscof = field<18, 14>;  ///< MSS (TSO) or checksum offset (CSUM)
    using hlen = field<0, 10>;     ///< header length
    using om_ = field<10, 2>;      ///< offload mode (namespace om)
    using eop = field<12, 1>;      ///< VMXNET3_TXD_EOP_SHIFT, dword 3: end of packet
    using cq = field<13, 1>;       ///< VMXNET3_TXD_CQ_SHIFT: ask for a completion
    using ext2 = field<14, 1>;
    using ti = field<15, 1>;       ///< VLAN tag insertion (ext3 in early revisions)
    using tci = field<16, 16>;     ///< the tag to insert
};
static_assert(sizeof(tx_desc) == 16 && alignof(tx_desc) == 8);
static_assert(offsetof(tx_desc, addr) == 0 && offsetof(tx_desc, dword2) == 8 &&
              offsetof(tx_desc, dword3) == 12);
/// Ownership: gen at bit 14 of dword 2 (VMXNET3_TXD_GEN_DWORD_SHIFT 2).
using tx_traits = gen_bit_traits<tx_desc, 2, 14>;

/// A TX data ring entry (Vmxnet3_TxDataDesc): headers or a whole small packet, copied by
/// the driver so that the device fetches descriptor and data from one place.
struct tx_data_desc {
    std::uint8_t data[HDR_COPY_SIZE];
};
static_assert(sizeof(tx_data_desc) == 128);

// ---- TX completion (Vmxnet3_TxCompDesc), 16 bytes ---------------------------------------
/// Completion descriptor types (the `type` field of both completion layouts).
namespace cdtype {
inline constexpr std::uint32_t TXCOMP = 0;
inline constexpr std::uint32_t RXCOMP = 3;
inline constexpr std::uint32_t RXCOMP_LRO = 4;
} // namespace cdtype

struct tx_comp_desc {
    le32 dword0 = 0;  ///< txdIdx:12 ext1:20
    le32 ext2 = 0;
    le32 ext3 = 0;
    le32 dword3 = 0;  ///< rsvd:24 type:7 gen:1

    using txdIdx = field<0, 12>;  ///< index of the EOP descriptor of the completed packet
    using type = field<24, 7>;
    using gen = field<31, 1>;     ///< VMXNET3_TCD_GEN_SHIFT 31, dword 3
};
static_assert(sizeof(tx_comp_desc) == 16 && offsetof(tx_comp_desc, dword0) == 0 &&
              offsetof(tx_comp_desc, ext2) == 4 && offsetof(tx_comp_desc, ext3) == 8 &&
              offsetof(tx_comp_desc, dword3) == 12);
using tx_comp_traits = gen_bit_traits<tx_comp_desc, 3, 31>;

// ---- RX descriptor (Vmxnet3_RxDesc), 16 bytes -------------------------------------------
namespace btype {
inline constexpr std::uint32_t HEAD = 0;  ///< may start a packet (ring 1)
inline constexpr std::uint32_t BODY = 1;  ///< only continues one (ring 2, and ring 1 after a head)
} // namespace btype

struct rx_desc {
    le64 addr = 0;
    le32 dword2 = 0;  ///< len:14 btype:1 dtype:1 rsvd:15 gen:1
    le32 ext1 = 0;

    using len = field<0, 14>;     ///< buffer bytes available
    using btype_ = field<14, 1>;  ///< VMXNET3_RXD_BTYPE_SHIFT
    using dtype = field<15, 1>;
    using gen = field<31, 1>;     ///< VMXNET3_RXD_GEN_SHIFT, dword 2
};
static_assert(sizeof(rx_desc) == 16 && alignof(rx_desc) == 8 && offsetof(rx_desc, addr) == 0 &&
              offsetof(rx_desc, dword2) == 8 && offsetof(rx_desc, ext1) == 12);
using rx_traits = gen_bit_traits<rx_desc, 2, 31>;

// ---- RX completion (Vmxnet3_RxCompDesc), 16 bytes ---------------------------------------
namespace rss_type {
inline constexpr std::uint32_t NONE = 0;
inline constexpr std::uint32_t IPV4 = 1;
inline constexpr std::uint32_t TCPIPV4 = 2;
inline constexpr std::uint32_t IPV6 = 3;
inline constexpr std::uint32_t TCPIPV6 = 4;
inline constexpr std::uint32_t UDPIPV4 = 5;
inline constexpr std::uint32_t UDPIPV6 = 6;
} // namespace rss_type

struct rx_comp_desc {
    le32 dword0 = 0;   ///< rxdIdx:12 ext1:2 eop:1 sop:1 rqID:10 rssType:4 cnc:1 ext2:1
    le32 rssHash = 0;
    le32 dword2 = 0;   ///< len:14 err:1 ts:1 tci:16
    le32 dword3 = 0;   ///< csum:16 tuc:1 udp:1 tcp:1 ipc:1 v6:1 v4:1 frg:1 fcs:1 type:7 gen:1

    using rxdIdx = field<0, 12>;   ///< slot of the RX descriptor used
    using ext1 = field<12, 2>;
    using eop = field<14, 1>;      ///< last buffer of the packet
    using sop = field<15, 1>;      ///< first buffer of the packet
    using rqID = field<16, 10>;    ///< which ring: qid (ring 1), qid + nrxq (ring 2) ...
    using rssType = field<26, 4>;
    using cnc = field<30, 1>;      ///< checksum not calculated
    using ext2 = field<31, 1>;
    using len = field<0, 14>;      ///< bytes written to this buffer
    using err = field<14, 1>;      ///< the packet is bad (drop it)
    using ts = field<15, 1>;       ///< a VLAN tag was stripped into tci
    using tci = field<16, 16>;
    using csum = field<0, 16>;
    using tuc = field<16, 1>;      ///< TCP/UDP checksum correct
    using udp = field<17, 1>;
    using tcp = field<18, 1>;
    using ipc = field<19, 1>;      ///< IPv4 header checksum correct
    using v6 = field<20, 1>;
    using v4 = field<21, 1>;
    using frg = field<22, 1>;      ///< IP fragment
    using fcs = field<23, 1>;      ///< frame CRC correct (set: the FCS checked out)
    using type = field<24, 7>;
    using gen = field<31, 1>;      ///< dword 3 (VMXNET3_RCD_GEN_SHIFT 63 of the second qword)
};
static_assert(sizeof(rx_comp_desc) == 16 && offsetof(rx_comp_desc, dword0) == 0 &&
              offsetof(rx_comp_desc, rssHash) == 4 && offsetof(rx_comp_desc, dword2) == 8 &&
              offsetof(rx_comp_desc, dword3) == 12);
using rx_comp_traits = gen_bit_traits<rx_comp_desc, 3, 31>;

// ---- UPT1 (upt1_defs.h): features, interrupt moderation, queue statistics ----------------
namespace upt1 {
inline constexpr std::uint64_t F_RXCSUM = 0x0001;      ///< RX checksum verification
inline constexpr std::uint64_t F_RSS = 0x0002;
inline constexpr std::uint64_t F_RXVLAN = 0x0004;      ///< VLAN tag stripping
inline constexpr std::uint64_t F_LRO = 0x0008;
inline constexpr std::uint64_t F_RXINNEROFLD = 0x0010; ///< inner (encapsulated) offloads, rev 4

/// Interrupt moderation levels (Vmxnet3_IntrConf::modLevels).
inline constexpr std::uint8_t IML_NONE = 0;
inline constexpr std::uint8_t IML_HIGHEST = 7;
inline constexpr std::uint8_t IML_ADAPTIVE = 8;

struct tx_stats {  // UPT1_TxStats
    le64 TSOPktsTxOK, TSOBytesTxOK;
    le64 ucastPktsTxOK, ucastBytesTxOK;
    le64 mcastPktsTxOK, mcastBytesTxOK;
    le64 bcastPktsTxOK, bcastBytesTxOK;
    le64 pktsTxError, pktsTxDiscard;
};
static_assert(sizeof(tx_stats) == 80 && offsetof(tx_stats, pktsTxDiscard) == 72);

struct rx_stats {  // UPT1_RxStats
    le64 LROPktsRxOK, LROBytesRxOK;
    le64 ucastPktsRxOK, ucastBytesRxOK;
    le64 mcastPktsRxOK, mcastBytesRxOK;
    le64 bcastPktsRxOK, bcastBytesRxOK;
    le64 pktsRxOutOfBuf, pktsRxError;
};
static_assert(sizeof(rx_stats) == 80 && offsetof(rx_stats, pktsRxError) == 72);
} // namespace upt1

// ---- the driver shared area (Vmxnet3_DriverShared) and what it points to ---------------
namespace rxm {  // Vmxnet3_RxFilterConf::rxMode (the same bits as npa::rx_mode)
inline constexpr std::uint32_t UCAST = 0x01;
inline constexpr std::uint32_t MCAST = 0x02;
inline constexpr std::uint32_t BCAST = 0x04;
inline constexpr std::uint32_t ALL_MULTI = 0x08;
inline constexpr std::uint32_t PROMISC = 0x10;
} // namespace rxm

inline constexpr std::uint32_t IC_DISABLE_ALL = 0x1;  ///< Vmxnet3_IntrConf::intrCtrl

// GET_CONF_INTR answers with the interrupt type the device wants in bits 0-1 and the mask
// mode in bits 2-3 (Linux vmxnet3_alloc_intr_resources, DPDK and FreeBSD read the same two
// fields and nothing above them).
namespace it {  // enum vmxnet3_intr_type
inline constexpr std::uint32_t AUTO = 0;  ///< the driver's choice: Linux and DPDK take MSI-X
inline constexpr std::uint32_t INTX = 1;
inline constexpr std::uint32_t MSI = 2;
inline constexpr std::uint32_t MSIX = 3;
[[nodiscard]] constexpr std::uint32_t of(std::uint32_t conf_intr) noexcept { return conf_intr & 0x3; }
} // namespace it
namespace imm {  // enum vmxnet3_intr_mask_mode
inline constexpr std::uint32_t AUTO = 0;    ///< the device masks a vector as it raises it (autoMask)
inline constexpr std::uint32_t ACTIVE = 1;  ///< the driver masks it in its handler
inline constexpr std::uint32_t LAZY = 2;    ///< nobody masks it
[[nodiscard]] constexpr std::uint32_t of(std::uint32_t conf_intr) noexcept {
    return (conf_intr >> 2) & 0x3;
}
} // namespace imm

struct driver_info {  // Vmxnet3_DriverInfo
    le32 version = 0;
    le32 gos = 0;  ///< Vmxnet3_GOSInfo: gosBits:2 gosType:4 gosVer:16 gosMisc:10
    le32 vmxnet3RevSpt = 0;
    le32 uptVerSpt = 0;
};
static_assert(sizeof(driver_info) == 16);

struct misc_conf {  // Vmxnet3_MiscConf
    driver_info driverInfo;
    le64 uptFeatures = 0;
    le64 ddPA = 0;
    le64 queueDescPA = 0;  ///< the queue descriptor table: TX queues, then RX queues
    le32 ddLen = 0;
    le32 queueDescLen = 0;
    le32 mtu = 0;
    le16 maxNumRxSG = 0;
    std::uint8_t numTxQueues = 0;
    std::uint8_t numRxQueues = 0;
    le32 reserved[4] = {};
};
static_assert(sizeof(misc_conf) == 72 && offsetof(misc_conf, uptFeatures) == 16 &&
              offsetof(misc_conf, queueDescPA) == 32 && offsetof(misc_conf, ddLen) == 40 &&
              offsetof(misc_conf, queueDescLen) == 44 && offsetof(misc_conf, mtu) == 48 &&
              offsetof(misc_conf, maxNumRxSG) == 52 && offsetof(misc_conf, numTxQueues) == 54 &&
              offsetof(misc_conf, numRxQueues) == 55);

struct intr_conf {  // Vmxnet3_IntrConf
    std::uint8_t autoMask = 0;      ///< the device masks a vector when it raises it
    std::uint8_t numIntrs = 0;
    std::uint8_t eventIntrIdx = 0;
    std::uint8_t modLevels[MAX_INTRS] = {};
    le32 intrCtrl = 0;
    le32 reserved[2] = {};
};
static_assert(sizeof(intr_conf) == 40 && offsetof(intr_conf, modLevels) == 3 &&
              offsetof(intr_conf, intrCtrl) == 28);

struct rx_filter_conf {  // Vmxnet3_RxFilterConf
    le32 rxMode = 0;
    le16 mfTableLen = 0;  ///< bytes of the multicast table (6 per address)
    le16 pad1 = 0;
    le64 mfTablePA = 0;
    le32 vfTable[VFT_SIZE] = {};  ///< one bit per VLAN id

    [[nodiscard]] bool vlan(std::uint16_t vid) const noexcept {
        return (vfTable[(vid >> 5) & (VFT_SIZE - 1)] >> (vid & 31)) & 1u;
    }
    void set_vlan(std::uint16_t vid, bool on) noexcept {
        le32& w = vfTable[(vid >> 5) & (VFT_SIZE - 1)];
        w = on ? (w | (1u << (vid & 31))) : (w & ~(1u << (vid & 31)));
    }
};
static_assert(sizeof(rx_filter_conf) == 528 && offsetof(rx_filter_conf, mfTableLen) == 4 &&
              offsetof(rx_filter_conf, mfTablePA) == 8 && offsetof(rx_filter_conf, vfTable) == 16);

struct var_len_conf_desc {  // Vmxnet3_VariableLenConfDesc
    le32 confVer = 0;
    le32 confLen = 0;
    le64 confPA = 0;
};
static_assert(sizeof(var_len_conf_desc) == 16);

// ---- RSS (UPT1_RSSConf): what the device hashes and where each hash goes -----------------
// With UPT1_F_RSS the driver hands the device this block through rssConfDesc
// (Vmxnet3_VariableLenConfDesc: confVer 1, confLen its size, confPA its address); the
// device reads it at ACTIVATE_DEV and reads the indirection table again at UPDATE_RSSIDT.
namespace rss {
inline constexpr std::uint16_t HASH_IPV4 = 0x01;      ///< UPT1_RSS_HASH_TYPE_IPV4
inline constexpr std::uint16_t HASH_TCP_IPV4 = 0x02;
inline constexpr std::uint16_t HASH_IPV6 = 0x04;
inline constexpr std::uint16_t HASH_TCP_IPV6 = 0x08;
inline constexpr std::uint16_t FUNC_TOEPLITZ = 0x01;  ///< UPT1_RSS_HASH_FUNC_TOEPLITZ
inline constexpr std::uint32_t MAX_KEY_SIZE = 40;
inline constexpr std::uint32_t MAX_IND_TABLE_SIZE = 128;
inline constexpr std::uint32_t CONF_VERSION = 1;
} // namespace rss

struct rss_conf {  // UPT1_RSSConf
    le16 hashType = 0;
    le16 hashFunc = 0;
    le16 hashKeySize = 0;
    le16 indTableSize = 0;
    std::uint8_t hashKey[rss::MAX_KEY_SIZE] = {};
    std::uint8_t indTable[rss::MAX_IND_TABLE_SIZE] = {};
};
static_assert(sizeof(rss_conf) == 176 && offsetof(rss_conf, hashKey) == 8 &&
              offsetof(rss_conf, indTable) == 48);

struct ds_dev_read {  // Vmxnet3_DSDevRead: read by the device on activation and SET commands
    misc_conf misc;
    intr_conf intrConf;
    rx_filter_conf rxFilterConf;
    var_len_conf_desc rssConfDesc;
    var_len_conf_desc pmConfDesc;
    var_len_conf_desc pluginConfDesc;
};
static_assert(sizeof(ds_dev_read) == 688 && offsetof(ds_dev_read, intrConf) == 72 &&
              offsetof(ds_dev_read, rxFilterConf) == 112 && offsetof(ds_dev_read, rssConfDesc) == 640 &&
              offsetof(ds_dev_read, pmConfDesc) == 656 && offsetof(ds_dev_read, pluginConfDesc) == 672);

struct intr_conf_ext {  // Vmxnet3_IntrConfExt (revision 7)
    std::uint8_t autoMask = 0, numIntrs = 0, eventIntrIdx = 0, reserved = 0;
    le32 intrCtrl = 0;
    le32 reserved1 = 0;
    std::uint8_t modLevels[EXT_MAX_INTRS] = {};
    std::uint8_t reserved2[3] = {};
};
static_assert(sizeof(intr_conf_ext) == 80 && offsetof(intr_conf_ext, modLevels) == 12);

struct driver_shared {  // Vmxnet3_DriverShared
    le32 magic = 0;  ///< REV1_MAGIC
    le32 size = 0;   ///< sizeof(driver_shared) (revision 7; 0 before)
    ds_dev_read devRead;
    le32 ecr = 0;
    le32 reserved = 0;
    le64 cmdInfo[2] = {};  ///< union Vmxnet3_CmdInfo: per-command arguments
    intr_conf_ext devReadExt;       ///< Vmxnet3_DSDevReadExt
};
static_assert(sizeof(driver_shared) == 800 && offsetof(driver_shared, devRead) == 8 &&
              offsetof(driver_shared, ecr) == 696 && offsetof(driver_shared, cmdInfo) == 704 &&
              offsetof(driver_shared, devReadExt) == 720);

// ---- queue descriptors (Vmxnet3_TxQueueDesc / Vmxnet3_RxQueueDesc), 256 bytes each ----
struct tx_queue_ctrl {  // Vmxnet3_TxQueueCtrl: shared between driver and device at run time
    le32 txNumDeferred = 0;  ///< packets queued since the last TXPROD write (driver)
    le32 txThreshold = 0;    ///< write TXPROD once txNumDeferred reaches this (device)
    le64 reserved = 0;
};
static_assert(sizeof(tx_queue_ctrl) == 16 && offsetof(tx_queue_ctrl, txThreshold) == 4);

struct tx_queue_conf {  // Vmxnet3_TxQueueConf
    le64 txRingBasePA = 0;
    le64 dataRingBasePA = 0;
    le64 compRingBasePA = 0;
    le64 ddPA = 0;
    le64 reserved = 0;
    le32 txRingSize = 0;
    le32 dataRingSize = 0;
    le32 compRingSize = 0;
    le32 ddLen = 0;
    std::uint8_t intrIdx = 0;
    std::uint8_t pad1[1] = {};
    le16 txDataRingDescSize = 0;  ///< bytes per data ring entry (revision 3; 0 = 128)
    std::uint8_t pad2[4] = {};
};
static_assert(sizeof(tx_queue_conf) == 64 && offsetof(tx_queue_conf, dataRingBasePA) == 8 &&
              offsetof(tx_queue_conf, compRingBasePA) == 16 && offsetof(tx_queue_conf, txRingSize) == 40 &&
              offsetof(tx_queue_conf, dataRingSize) == 44 && offsetof(tx_queue_conf, compRingSize) == 48 &&
              offsetof(tx_queue_conf, intrIdx) == 56 && offsetof(tx_queue_conf, txDataRingDescSize) == 58);

struct queue_status {  // Vmxnet3_QueueStatus: written by the device on GET_QUEUE_STATUS
    std::uint8_t stopped = 0;
    std::uint8_t pad[3] = {};
    le32 error = 0;  ///< namespace err
};
static_assert(sizeof(queue_status) == 8 && offsetof(queue_status, error) == 4);

struct tx_queue_desc {
    tx_queue_ctrl ctrl;
    tx_queue_conf conf;
    queue_status status;
    upt1::tx_stats stats;
    std::uint8_t pad[88];
};
static_assert(sizeof(tx_queue_desc) == 256 && offsetof(tx_queue_desc, conf) == 16 &&
              offsetof(tx_queue_desc, status) == 80 && offsetof(tx_queue_desc, stats) == 88);

struct rx_queue_ctrl {  // Vmxnet3_RxQueueCtrl
    std::uint8_t updateRxProd = 0;  ///< set by the device: the driver must write RXPROD/RXPROD2
    std::uint8_t pad[7] = {};
    le64 reserved = 0;
};
static_assert(sizeof(rx_queue_ctrl) == 16);

struct rx_queue_conf {  // Vmxnet3_RxQueueConf
    le64 rxRingBasePA[2] = {};
    le64 compRingBasePA = 0;
    le64 ddPA = 0;
    le64 rxDataRingBasePA = 0;
    le32 rxRingSize[2] = {};
    le32 compRingSize = 0;  ///< rxRingSize[0] + rxRingSize[1]
    le32 ddLen = 0;
    std::uint8_t intrIdx = 0;
    std::uint8_t pad1[1] = {};
    le16 rxDataRingDescSize = 0;
    std::uint8_t pad2[4] = {};
};
static_assert(sizeof(rx_queue_conf) == 64 && offsetof(rx_queue_conf, compRingBasePA) == 16 &&
              offsetof(rx_queue_conf, rxDataRingBasePA) == 32 && offsetof(rx_queue_conf, rxRingSize) == 40 &&
              offsetof(rx_queue_conf, compRingSize) == 48 && offsetof(rx_queue_conf, intrIdx) == 56 &&
              offsetof(rx_queue_conf, rxDataRingDescSize) == 58);

struct rx_queue_desc {
    rx_queue_ctrl ctrl;
    rx_queue_conf conf;
    queue_status status;
    upt1::rx_stats stats;
    std::uint8_t pad[88];
};
static_assert(sizeof(rx_queue_desc) == 256 && offsetof(rx_queue_desc, conf) == 16 &&
              offsetof(rx_queue_desc, status) == 80 && offsetof(rx_queue_desc, stats) == 88);

/// Bytes of the queue descriptor block a binder gives the window for up to `queues` pairs:
/// the TX and RX queue descriptors, then room for the rss_conf a multi-queue attach hands
/// the device (window::rss_area).
[[nodiscard]] constexpr std::size_t queue_table_bytes(std::uint32_t queues) noexcept {
    return 2u * queues * sizeof(tx_queue_desc) + sizeof(rss_conf);
}

/// A ring size the device accepts: a non-zero multiple of RING_SIZE_ALIGN up to `max`.
[[nodiscard]] constexpr bool ring_size_ok(std::uint32_t n, std::uint32_t max) noexcept {
    return n != 0 && n % RING_SIZE_ALIGN == 0 && n <= max;
}

} // namespace npa::vmxnet3
