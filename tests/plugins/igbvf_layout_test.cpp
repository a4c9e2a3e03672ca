// Descriptor layouts and register offsets of the 82576 VF, next to the datasheet's.
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/window.hpp>

#include <cstring>

using namespace npa::igbvf;

TEST_CASE("advanced RX descriptor: read and write-back share 16 bytes, DD in word 2") {
    adv_rx_desc d{};
    d.read.pkt_addr = 0x1122334455667788ull;
    d.read.hdr_addr = 0;
    CHECK((d.wb.status_error & rxd::stat_dd) == 0);  // hdr_addr = 0 clears DD
    adv_rx_wb wb{};
    wb.status_error = rxd::stat_dd | rxd::stat_eop;
    wb.length = 60;
    wb.vlan = 0x0123;
    std::memcpy(&d, &wb, sizeof wb);
    // The bytes as the device writes them: little-endian words, whatever the host.
    const auto* bytes = reinterpret_cast<const unsigned char*>(&d);
    CHECK(npa::load_le32(bytes + 8) == 0x3u);
    CHECK(bytes[8] == 0x03);  // DD and EOP in the first byte of word 2
    CHECK(npa::load_le32(bytes + 12) == (0x0123u << 16 | 60u));
    CHECK(bytes[12] == 60);
    CHECK(bytes[14] == 0x23);
    auto* w = reinterpret_cast<std::uint32_t*>(&d);
    CHECK(rx_done_traits::own_word(d) == w[2]);
    CHECK((rx_done_traits::own_word(d) & rx_done_traits::own_mask) == rx_done_traits::own_bits(true));
    adv_rx_desc r{};
    r.read.pkt_addr = 0x1122334455667788ull;
    CHECK(reinterpret_cast<const unsigned char*>(&r)[0] == 0x88);
}

TEST_CASE("advanced TX descriptors: data, context, write-back") {
    adv_tx_desc d{};
    d.read.cmd_type_len = txd::dtyp_data | txd::dcmd_dext | txd::dcmd_eop | txd::dcmd_rs | 60;
    d.read.olinfo_status = 60u << txd::paylen_shift;
    CHECK(d.read.cmd_type_len == 0x29300000u + 60);
    CHECK((d.wb.status & txd::stat_dd) == 0);
    CHECK(npa::from_le32(tx_done_traits::own_mask) == 1u);
    // DTALEN sits in the first two bytes, DCMD in the last (datasheet 7.2.2.3).
    const auto* tb = reinterpret_cast<const unsigned char*>(&d);
    CHECK(tb[8] == 60);
    CHECK(tb[11] == 0x29);
    adv_tx_context_desc c{};
    c.vlan_macip_lens = (5u << txd::vlan_shift) | (14u << txd::maclen_shift) | 20u;
    CHECK(c.vlan_macip_lens == 0x00051C14u);
    CHECK((txd::dcmd_dext | txd::dtyp_ctxt) == 0x20200000u);
}

TEST_CASE("VF register offsets (igbvf regs.h)") {
    CHECK(reg::rdbal(0) == 0x2800);
    CHECK(reg::rdt(0) == 0x2818);
    CHECK(reg::srrctl(1) == 0x290C);
    CHECK(reg::tdh(0) == 0x3810);
    CHECK(reg::tdt(1) == 0x3918);
    CHECK(reg::eims == 0x1524);
    CHECK(reg::eimc == 0x1528);
    CHECK(reg::vmmb == 0x0C40);
    CHECK(reg::vmbmem == 0x0800);
    CHECK(npa::igbvf_window::offset(npa::igbvf_reg::tdt, 1) == 0x3918);
    CHECK(npa::igbvf_window::offset(npa::igbvf_reg::eitr, 1) == 0x1684);
}

TEST_CASE("mailbox message ids and flags (mbx.h)") {
    CHECK(mbx::vf_reset == 1);
    CHECK(mbx::vf_set_mac_addr == 2);
    CHECK(mbx::vf_set_multicast == 3);
    CHECK(mbx::vf_set_vlan == 4);
    CHECK(mbx::vf_set_lpe == 5);
    CHECK(mbx::vf_set_promisc == 6);
    CHECK(mbx::msgtype_ack == 0x80000000u);
    CHECK(mbx::msgtype_nack == 0x40000000u);
    CHECK(mbx::msgtype_cts == 0x20000000u);
    CHECK(mbx::r2c_bits == 0xB0u);
}

TEST_CASE("ring sizes: multiples of 8 descriptors (128 bytes)") {
    CHECK(ring_size_ok(8));
    CHECK(ring_size_ok(4096));
    CHECK_FALSE(ring_size_ok(100));
    CHECK_FALSE(ring_size_ok(0));
    CHECK_FALSE(ring_size_ok(4104));
}

TEST_CASE("RX write-back status: informational bits a real device writes are legal, reserved ones not") {
    // QEMU's igb: IPIDV on IPv4 frames when the PF leaves RXCSUM.PCSD clear, ACK on TCP ACKs
    // (QEMU 8.0); timestamps and DYNINT on parts that have them.
    for (const std::uint32_t bit : {rxd::stat_ipidv, rxd::stat_ack, rxd::stat_udpv, rxd::stat_tst,
                                    rxd::stat_ts, rxd::stat_dynint, rxd::stat_lb}) {
        CAPTURE(bit);
        CHECK((bit & ~rxd::known) == 0);
    }
    // Reserved positions (datasheet 7.1.5.2) are device garbage.
    for (const std::uint32_t bit : {0x1000u, 0x2000u, 0x4000u, 0x80000u}) {
        CAPTURE(bit);
        CHECK((bit & ~rxd::known) != 0);
    }
}
