// vmxnet3: the ABI layout next to the published one, the device-set doorbell rules, the
// control path through the register interface (policy applies or refuses), and the
// shell switching between the vmxnet3 path and the simnic path under traffic.
#include <doctest/doctest.h>

#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/shell.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/vmxnet3_rig.hpp>

#include "../support/switch_traffic.hpp"

#include <cstddef>
#include <string>
#include <vector>

using namespace npa::sim;
namespace v = npa::vmxnet3;
using plugin_t = npa::vmxnet3_plugin<vmxnet3_rig::api_type>;

// ---- layout: every offset of the ABI, as Linux vmxnet3_defs.h lays it out ------------
TEST_CASE("vmxnet3 layout: registers and commands are the ABI's values") {
    CHECK(v::reg::VRRS == 0x0);
    CHECK(v::reg::UVRS == 0x8);
    CHECK(v::reg::DSAL == 0x10);
    CHECK(v::reg::DSAH == 0x18);
    CHECK(v::reg::CMD == 0x20);
    CHECK(v::reg::MACL == 0x28);
    CHECK(v::reg::MACH == 0x30);
    CHECK(v::reg::ICR == 0x38);
    CHECK(v::reg::ECR == 0x40);
    CHECK(v::reg::imr(3) == 0x18);
    CHECK(v::reg::txprod(1) == 0x608);
    CHECK(v::reg::rxprod(2) == 0x810);
    CHECK(v::reg::rxprod2(0) == 0xA00);
    CHECK(v::cmd::ACTIVATE_DEV == 0xCAFE0000u);
    CHECK(v::cmd::UPDATE_VLAN_FILTERS == 0xCAFE0005u);
    CHECK(v::cmd::UPDATE_FEATURE == 0xCAFE0009u);
    CHECK(v::cmd::GET_QUEUE_STATUS == 0xF00D0000u);
    CHECK(v::cmd::GET_LINK == 0xF00D0002u);
    CHECK(v::REV1_MAGIC == 3133079265u);
}

TEST_CASE("vmxnet3 layout: descriptor bit fields sit where the ABI puts them") {
    v::tx_desc t{};
    v::tx_desc::gen::set(t.dword2, 1);
    CHECK(t.dword2 == 1u << 14);  // VMXNET3_TXD_GEN_SHIFT, dword 2
    v::tx_desc::eop::set(t.dword3, 1);
    v::tx_desc::cq::set(t.dword3, 1);
    CHECK(t.dword3 == ((1u << 12) | (1u << 13)));  // VMXNET3_TXD_EOP / VMXNET3_TXD_CQ
    v::tx_desc::msscof::set(t.dword2, 0x3fff);
    CHECK(t.dword2 == ((0x3fffu << 18) | (1u << 14)));
    v::tx_desc::tci::set(t.dword3, 0xabcd);
    v::tx_desc::om_::set(t.dword3, v::om::TSO);
    CHECK(v::tx_desc::tci::get(t.dword3) == 0xabcdu);
    CHECK(v::tx_desc::om_::get(t.dword3) == 3u);
    v::rx_comp_desc c{};
    v::rx_comp_desc::rqID::set(c.dword0, 0x3ff);
    CHECK(c.dword0 == 0x3ffu << 16);
    v::rx_comp_desc::gen::set(c.dword3, 1);
    CHECK(c.dword3 == 1u << 31);  // VMXNET3_RCD_GEN_SHIFT 63 of the second qword
    v::rx_desc r{};
    v::rx_desc::btype_::set(r.dword2, v::btype::BODY);
    CHECK(r.dword2 == 1u << 14);  // VMXNET3_RXD_BTYPE_SHIFT
    CHECK(npa::from_le32(v::tx_traits::own_mask) == 1u << 14);
    CHECK(npa::from_le32(v::rx_traits::own_mask) == 1u << 31);
    CHECK(npa::from_le32(v::tx_comp_traits::own_mask) == 1u << 31);
    // Shared-area offsets (also static_asserted in npa/plugins/vmxnet3/defs.hpp).
    CHECK(offsetof(v::driver_shared, devRead) == 8);
    CHECK(offsetof(v::driver_shared, devRead) + offsetof(v::ds_dev_read, rxFilterConf) == 120);
    CHECK(offsetof(v::rx_filter_conf, vfTable) == 16);
    CHECK(sizeof(v::rx_filter_conf::vfTable) * 8 == 4096);
    CHECK(offsetof(v::tx_queue_desc, ctrl) + offsetof(v::tx_queue_ctrl, txThreshold) == 4);
    CHECK(sizeof(v::tx_queue_desc) == 256);
    CHECK(sizeof(v::rx_queue_desc) == 256);
}

// ---- device-set rules: txThreshold, updateRxProd, ring 2 ------------------------------
namespace {
struct bench {
    explicit bench(vmxnet3_rig::config c) : rig(c) {}
    vmxnet3_rig rig;
    plugin_t p;
    std::uint32_t send(std::uint32_t n, std::uint32_t len = 0) {
        std::vector<npa::buffer_ref> b(n);
        const std::uint32_t got = rig.api().alloc_tx(b);
        for (std::uint32_t i = 0; i < got; ++i) {
            rig.build_tx(b[i], 1);
            if (len != 0) {
                b[i].set_length(len);
            }
        }
        rig.api().offer(std::span(b.data(), got));
        const std::uint16_t k = p.tx_burst(0, std::span(b.data(), got));
        rig.api().not_accepted(std::span(b.data() + k, got - k));
        rig.api().free(std::span(b.data() + k, got - k));
        return k;
    }
    // One device step, then one rx_burst on queue 0: the frames recorded by the guest sink
    // and handed back to the pool. Returns how many came.
    std::uint16_t receive_step() {
        std::array<npa::buffer_ref, 32> out{};
        rig.step();
        const std::uint16_t n = p.rx_burst(0, out);
        for (std::uint16_t i = 0; i < n; ++i) {
            (void)rig.guest_sink().record(std::span<const std::byte>(out[i].data(), out[i].length()));
        }
        rig.api().received(std::span(out).first(n));
        rig.api().free(std::span(out).first(n));
        return n;
    }
    void finish() {
        p.detach();
        auto u = rig.api().take_unsent();
        rig.api().free(u);
        CHECK(rig.api().audit().balanced());
        CHECK(rig.api().audit().in_pool == rig.api().audit().total);
        CHECK(rig.violations().empty());
    }
};
vmxnet3_rig::config one_queue() {
    vmxnet3_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    return c;
}
} // namespace

TEST_CASE("vmxnet3 RSS: more than one queue hands the device a UPT1_RSSConf, which steers") {
    auto c = one_queue();
    c.queues = 2;
    bench b(c);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    REQUIRE((b.rig.window().misc().uptFeatures & v::upt1::F_RSS) != 0);
    // What Linux's vmxnet3 and DPDK's PMD hand over with UPT1_F_RSS.
    const v::var_len_conf_desc& d = b.rig.window().rss_conf_desc();
    const v::dma_block area = b.rig.window().rss_area(2);
    CHECK(d.confVer == 1);
    CHECK(d.confLen == 176);
    CHECK(d.confPA == area.iova);
    auto* conf = reinterpret_cast<v::rss_conf*>(area.virt);
    CHECK(conf->hashFunc == v::rss::FUNC_TOEPLITZ);
    CHECK(conf->hashType == 0x0f);  // IPv4, TCP/IPv4, IPv6, TCP/IPv6
    CHECK(conf->hashKeySize == 40);
    CHECK(conf->hashKey[0] == 0x6d);
    CHECK(conf->indTableSize == 32);
    bool spread = true;
    for (std::uint32_t i = 0; i < 32; ++i) {
        spread = spread && conf->indTable[i] == i % 2;
    }
    CHECK(spread);
    auto receive = [&](std::uint16_t q) {
        b.rig.step();
        std::array<npa::buffer_ref, 32> out{};
        const std::uint16_t n = b.p.rx_burst(q, out);
        b.rig.api().received(std::span(out).first(n));
        b.rig.api().free(std::span(out).first(n));
        return n;
    };
    // Each flow lands where the table sends its hash.
    const std::uint32_t f1 = b.rig.flow_for_queue(1);
    b.rig.far_send(f1, 4);
    CHECK(receive(0) == 0);
    CHECK(receive(1) == 4);
    // The device goes by the guest's table: every entry on queue 0, re-read at UPDATE_RSSIDT.
    std::memset(conf->indTable, 0, sizeof conf->indTable);
    CHECK(b.rig.device().mmio().command(v::cmd::UPDATE_RSSIDT) == 0);
    b.rig.far_send(f1, 4);
    CHECK(receive(1) == 0);
    CHECK(receive(0) == 4);
    // A table naming a queue the guest never activated is refused, the old one kept.
    conf->indTable[3] = 2;
    CHECK(b.rig.device().mmio().command(v::cmd::UPDATE_RSSIDT) == 1);
    CHECK(b.rig.violations().size() == 1);
    b.p.detach();
    b.rig.api().free(b.rig.api().take_unsent());
    CHECK(b.rig.api().audit().balanced());
}

TEST_CASE("vmxnet3 RSS: three queue pairs are refused, as Linux and DPDK take powers of two") {
    auto c = one_queue();
    c.queues = 3;
    bench b(c);
    const npa::status st = b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg());
    CHECK(st.code() == npa::errc::invalid_argument);
    npa::queue_config no_rss = b.rig.queue_cfg();
    no_rss.offloads &= ~npa::cap::rss;  // without RSS three queues are fine (queue 0 takes all)
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), no_rss).ok());
    CHECK(b.rig.window().rss_conf_desc().confPA == 0);
    b.finish();
}

TEST_CASE("vmxnet3: TXPROD is written only once txNumDeferred reaches the device's txThreshold") {
    auto c = one_queue();
    c.tx_threshold = 8;
    bench b(c);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    CHECK(b.rig.device().tx_threshold_written(0) == 8);
    CHECK(b.send(5) == 5);
    CHECK(b.rig.window().txq(0)->ctrl.txNumDeferred == 5);
    b.rig.step();
    CHECK(b.rig.device().counters(0).tx_doorbells == 0);
    CHECK(b.send(3) == 3);  // 8 deferred: doorbell, counter back to 0
    CHECK(b.rig.window().txq(0)->ctrl.txNumDeferred == 0);
    b.rig.step();
    CHECK(b.rig.device().counters(0).tx_doorbells == 1);
    CHECK(b.rig.device().counters(0).tx_frames == 8);
    // Below the threshold nothing is stranded: the emulation's TX timer picks it up.
    CHECK(b.send(2) == 2);
    b.rig.step(3);
    CHECK(b.rig.device().counters(0).tx_frames == 10);
    CHECK(b.p.tx_reap(0) == 10);
    CHECK(b.rig.far_report(1, 10).lost == 0);
    b.finish();
}

// What the plugin writes to guest memory, byte by byte, as a little-endian device reads it:
// on a big-endian host each of these fails if a byte swap is missing.
TEST_CASE("vmxnet3 byte order: the shared area, queue descriptors and TX ring are little-endian") {
    bench b(one_queue());
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    auto bytes = [](const void* p) { return static_cast<const unsigned char*>(p); };
    // Vmxnet3_DriverShared::magic = 0xBABEFEE1 at offset 0.
    const unsigned char* sh = bytes(&b.rig.window().misc()) - offsetof(v::ds_dev_read, misc) -
                              offsetof(v::driver_shared, devRead);
    CHECK(sh[0] == 0xE1);
    CHECK(sh[1] == 0xFE);
    CHECK(sh[2] == 0xBE);
    CHECK(sh[3] == 0xBA);
    // misc.mtu (offset 48 of misc_conf) and the TX ring size in the queue descriptor.
    const std::uint32_t mtu = b.rig.window().misc().mtu;
    CHECK(mtu >= 60);
    CHECK(npa::load_le32(bytes(&b.rig.window().misc()) + 48) == mtu);
    CHECK(bytes(&b.rig.window().misc())[48] == (mtu & 0xff));
    const unsigned char* tq = bytes(b.rig.window().txq(0));
    CHECK(tq[16 + 40] == 64);  // conf.txRingSize = 64, low byte first
    CHECK(tq[16 + 41] == 0);
    CHECK(tq[4] == 32);        // ctrl.txThreshold as the device wrote it (32)
    // A 60-byte frame: len 60 in the low 14 bits of dword 2, gen (bit 14) set on the first
    // lap, eop (bit 12) and cq (bit 13) of dword 3.
    CHECK(b.send(1, 60) == 1);
    const unsigned char* td = bytes(b.rig.window().ring_area().virt);
    const std::uint64_t data_pa = b.rig.window().txq(0)->conf.dataRingBasePA;
    CHECK(npa::load_le64(td) == data_pa);
    CHECK(td[0] == (data_pa & 0xff));
    CHECK(td[8] == 60);
    CHECK(td[9] == 0x40);
    CHECK(td[13] == 0x30);
    CHECK(tq[0] == 1);         // ctrl.txNumDeferred
    CHECK(tq[3] == 0);
    b.rig.step(3);
    CHECK(b.rig.device().counters(0).tx_frames == 1);
    b.finish();
}

TEST_CASE("vmxnet3: small packets go through the TX data ring") {
    bench b(one_queue());
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    CHECK(b.send(1, 100) == 1);
    const v::tx_desc& d = reinterpret_cast<const v::tx_desc*>(b.rig.window().ring_area().virt)[0];
    CHECK(d.addr == b.rig.window().txq(0)->conf.dataRingBasePA);
    CHECK(b.send(1, 600) == 1);
    const v::tx_desc& d2 = reinterpret_cast<const v::tx_desc*>(b.rig.window().ring_area().virt)[1];
    CHECK(d2.addr != b.rig.window().txq(0)->conf.dataRingBasePA + 128);
    b.rig.step(3);
    CHECK(b.rig.device().counters(0).tx_frames == 2);
    b.finish();
}

TEST_CASE("vmxnet3: buffers the device hands back unused or passes over are posted again, not a fault") {
    // Both legal on a vmxnet3: a completion of length 0 for a buffer it did not use, and
    // a completion naming a later slot than the oldest posted (Linux's
    // vmxnet3_rq_rx_complete recycles the first and moves next2comp past the second).
    for (const bool length_zero : {true, false}) {
        INFO((length_zero ? "completions of length 0" : "slots passed over with no completion"));
        bench b(one_queue());
        REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
        npa::sim::fault_plan pl;
        (length_zero ? pl.skip_rx_buffers : pl.pass_over_rx_buffers) = length_zero ? 2 : 3;
        b.rig.inject(pl);
        const std::uint32_t flow = b.rig.flow_for_queue(0);
        b.rig.far_send(flow, 4);
        std::uint32_t got = 0;
        for (int r = 0; r < 3; ++r) {
            got += b.receive_step();
        }
        CHECK(got == 4);
        CHECK(b.rig.guest_sink().report(flow, 4).lost == 0);
        CHECK(b.p.stats(0).bad_completion == 0);
        CHECK(b.p.stats(0).rx_dropped == 0);
        CHECK(b.p.health() == npa::errc::ok);
        (void)b.receive_step();  // the ring refilled: every slot holds a buffer again
        CHECK(b.rig.device_rx_posted(0) == b.rig.cfg().rx_ring);
        b.finish();
    }
}

TEST_CASE("vmxnet3: a TSO request without its header lengths is refused, not sent with hlen 0") {
    bench b(one_queue());
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    REQUIRE((b.p.capabilities().offloads & npa::cap::tso) != 0);
    std::vector<npa::buffer_ref> x(2);
    REQUIRE(b.rig.api().alloc_tx(x) == 2);
    for (std::size_t i = 0; i < x.size(); ++i) {
        b.rig.build_tx(x[i], 1);
        x[i].set_length(3000);
        npa::offload_info o{};
        o.flags = npa::ol::tx_tso;
        o.tso_mss = 1448;
        if (i == 1) { // the second one names its headers
            o.l2_len = 14;
            o.l3_len = 20;
            o.l4_len = 20;
        }
        x[i].set_offload(o);
    }
    b.rig.api().offer(std::span(x));
    CHECK(b.p.tx_burst(0, std::span(x)) == 2);  // both taken: one refused, one queued
    CHECK(b.p.stats(0).tx_errors == 1);
    CHECK(b.p.tx_in_flight(0) == 1);
    const v::tx_desc& d = reinterpret_cast<const v::tx_desc*>(b.rig.window().ring_area().virt)[0];
    CHECK(v::tx_desc::om_::get(d.dword3) == v::om::TSO);
    CHECK(v::tx_desc::hlen::get(d.dword3) == 54);
    b.rig.step(3);
    (void)b.p.tx_reap(0);
    b.finish();
}

TEST_CASE("vmxnet3: with updateRxProd the plugin writes RXPROD and keeps one slot empty") {
    auto c = one_queue();
    c.update_rx_prod = true;
    bench b(c);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    b.rig.step();
    CHECK(b.rig.device_rx_posted(0) == 63);  // the device may take only up to RXPROD
    CHECK(b.rig.device().rx_posted(0, 1) == v::RING_SIZE_ALIGN - 1);
    b.rig.far_send(b.rig.flow_for_queue(0), 10);
    b.rig.step();
    std::array<npa::buffer_ref, 32> out{};
    const std::uint16_t n = b.p.rx_burst(0, out);
    CHECK(n == 10);
    b.rig.api().received(std::span(out).first(n));
    b.rig.api().free(std::span(out).first(n));
    b.rig.step();
    CHECK(b.rig.device_rx_posted(0) == 63);
    b.finish();
}

TEST_CASE("vmxnet3: a packet larger than its head buffer spills to ring 2 and is dropped whole") {
    auto c = one_queue();
    bench b(c);
    // Shrink every head buffer the device sees to 32 bytes: post, then patch ring 1.
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    auto* ring1 = reinterpret_cast<v::rx_desc*>(b.rig.memory().translate(b.rig.window().rxq(1, 0)->conf.rxRingBasePA[0], 64 * 16));
    REQUIRE(ring1 != nullptr);
    for (int i = 0; i < 64; ++i) {
        v::rx_desc::len::set(ring1[i].dword2, 32);
    }
    b.rig.far_send(b.rig.flow_for_queue(0), 1);  // longer than 32 bytes
    b.rig.step();
    std::array<npa::buffer_ref, 32> out{};
    const std::uint16_t n = b.p.rx_burst(0, out);
    CHECK(n == 0);
    b.rig.api().received(std::span(out).first(n));
    b.rig.api().free(std::span(out).first(n));
    CHECK(b.rig.device().counters(0).rx_chained == 1);
    CHECK(b.p.stats(0).rx_dropped == 1);
    CHECK(b.p.stats(0).bad_completion == 0);
    b.finish();
}

TEST_CASE("vmxnet3: RX completions dropped, delayed and reordered on the completion ring") {
    for (int kind = 0; kind < 3; ++kind) {
        const char* what[] = {"dropped", "delayed", "reordered"};
        INFO(what[kind]);
        bench b(one_queue());
        REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
        npa::sim::fault_plan pl;
        (kind == 0   ? pl.drop_rx_completions
         : kind == 1 ? pl.delay_rx_steps
                     : pl.reorder_rx_completions) = 1;
        b.rig.inject(pl);
        const std::uint32_t flow = b.rig.flow_for_queue(0);
        b.rig.far_send(flow, 4);
        std::uint32_t got = 0;
        for (int r = 0; r < 3; ++r) {
            const std::uint16_t n = b.receive_step();
            if (kind == 1 && r == 0) {
                CHECK(n == 0); // filled, its completion not yet written
            }
            got += n;
        }
        const auto dc = b.rig.device().counters(0);
        const auto r = b.rig.guest_sink().report(flow, 4);
        CHECK(r.duplicates + r.reordered + r.corrupt == 0);
        if (kind == 1) { // late is not bad: all four, in order
            CHECK(dc.comp_delayed == 4);
            CHECK(got == 4);
            CHECK(b.p.stats(0).bad_completion == 0);
        } else { // the skipped buffer is taken back, the rest delivered in order
            CHECK((kind == 0 ? dc.comp_dropped : dc.comp_reordered) == 1);
            CHECK(got == 3);
            CHECK(r.lost == 1);
            // A completion that never comes looks like a slot the device passed over,
            // which is legal: only the device's counters show the frame. The late half of
            // a swapped pair names a slot already taken back: that one is a fault.
            CHECK(b.p.stats(0).bad_completion == (kind == 0 ? 0u : 1u));
            CHECK(b.p.health() == (kind == 0 ? npa::errc::ok : npa::errc::device_error));
        }
        b.finish();
    }
}

// ---- bring-up: the driver's probe, activation, reset, link -----------------------------
TEST_CASE(
    "vmxnet3 bring-up: the device refuses registers and commands out of order, and bad values") {
    guest_memory mem(std::size_t{4} << 20);
    vmxnet3_device_config vc;
    vc.profile.max_ring_size = 64;
    auto d = vmxnet3_device::create(mem, vc);
    REQUIRE(d.ok());
    vmxnet3_device& dev = **d;
    const v::mmio io = dev.mmio();
    CHECK(io.read32(v::bar::vd, v::reg::VRRS) == v::REV1_BIT); // what the device speaks
    // Nothing the driver asks before selecting the revisions happens.
    CHECK(io.command(v::cmd::ACTIVATE_DEV) == 1);
    io.write32(v::bar::vd, v::reg::DSAL, 0x1000);
    io.write32(v::bar::vd, v::reg::UVRS, v::REV1_BIT); // UPT before vmxnet3
    io.write32(v::bar::vd, v::reg::VRRS, 3);           // two revisions at once
    io.write32(v::bar::vd, v::reg::VRRS, 2);           // one the device does not speak
    CHECK(dev.protocol_violations() == 5);
    std::vector<std::string> vs = dev.violations();
    REQUIRE(vs.size() == 5);
    CHECK(vs[0].find("command 0xcafe0000 before the revisions were selected") != std::string::npos);
    CHECK(vs[1].find("DSAL written before the revisions were selected") != std::string::npos);
    CHECK(vs[2].find("UVRS written before a vmxnet3 revision was selected") != std::string::npos);
    CHECK(vs[3].find("VRRS: 0x3 does not select one revision") != std::string::npos);
    // Revisions selected, but no shared area yet: nothing that reads it runs.
    io.write32(v::bar::vd, v::reg::VRRS, v::REV1_BIT);
    io.write32(v::bar::vd, v::reg::UVRS, v::REV1_BIT);
    CHECK(io.command(v::cmd::UPDATE_RX_MODE) == 1);
    CHECK(io.command(v::cmd::ACTIVATE_DEV) == 1);
    CHECK(dev.protocol_violations() == 7);
    CHECK(dev.violations()[5].find("UPDATE_RX_MODE before the driver registered its shared area") !=
          std::string::npos);
    // A shared-area address outside guest memory: refused at the first command that reads it.
    io.write32(v::bar::vd, v::reg::DSAL, 0xdead0000u);
    io.write32(v::bar::vd, v::reg::DSAH, 0x7);
    CHECK(io.command(v::cmd::ACTIVATE_DEV) == 1);
    CHECK(dev.protocol_violations() == 8);
    CHECK(dev.violations()[7].find("is not a driver shared area") != std::string::npos);
    // The probe registers the real one; without the queue configuration, ACTIVATE_DEV is
    // refused with the reason, and the magic is checked first.
    REQUIRE(v::probe(dev.window()) == nullptr);
    CHECK(io.command(v::cmd::ACTIVATE_DEV) == 1);
    CHECK(dev.violations().back().find("ACTIVATE_DEV refused: 0 TX / 0 RX queues") !=
          std::string::npos);
    CHECK(dev.protocol_violations() == 9);
    CHECK_FALSE(dev.active());
}

TEST_CASE(
    "vmxnet3 bring-up: attach probes a fresh device, reads the link; detach quiesces and resets") {
    vmxnet3_rig rig(one_queue());
    REQUIRE(rig.ok());
    vmxnet3_device_config vc;
    vc.name = "fresh";
    vc.profile.max_ring_size = 64;
    auto d = vmxnet3_device::create(rig.memory(), vc);
    REQUIRE(d.ok());
    vmxnet3_device& dev = **d;
    plugin_t p;
    npa::queue_config qc = rig.queue_cfg();
    REQUIRE(p.attach(rig.api(), dev.window(), qc).ok());
    CHECK(dev.active());
    CHECK(dev.violations().empty());
    CHECK(p.link_up());
    CHECK(p.link_speed_mbps() == 10000);
    // A second ACTIVATE_DEV without QUIESCE_DEV or RESET_DEV is refused and counted.
    CHECK(dev.mmio().command(v::cmd::ACTIVATE_DEV) == 1);
    CHECK(dev.protocol_violations() == 1);
    CHECK(dev.active());
    // Link down for 3 steps: ECR.LINK, the plugin asks GET_LINK again.
    fault_plan down;
    down.link_down_steps = 3;
    dev.inject(down);
    CHECK_FALSE(p.link_up());
    CHECK(p.link_speed_mbps() == 0);
    // acknowledged: cleared in the shared area, where the device keeps its events
    CHECK((dev.window().ecr() & v::ecr::LINK) == 0);
    for (int i = 0; i < 3; ++i)
        dev.step();
    CHECK(p.link_up());
    CHECK(p.link_speed_mbps() == 10000);
    // Detach: QUIESCE_DEV, every buffer back, RESET_DEV.
    p.detach();
    CHECK(dev.resets() == 1);
    CHECK_FALSE(dev.active());
    CHECK(rig.api().audit().balanced());
    CHECK(rig.api().audit().in_pool == rig.api().audit().total);
    // And it comes up again on the same device (the revisions stay selected).
    REQUIRE(p.attach(rig.api(), dev.window(), qc).ok());
    CHECK(dev.active());
    p.detach();
    CHECK(dev.resets() == 2);
    CHECK(dev.protocol_violations() == 1);
    CHECK(rig.api().audit().in_pool == rig.api().audit().total);
}

TEST_CASE("vmxnet3 GET_STATS: the device's UPT1 counters, read through the plugin") {
    bench b(one_queue());
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    CHECK(b.p.device_stats(0).tx.ucastPktsTxOK == 0);
    CHECK(b.send(10) == 10);
    b.rig.far_send(b.rig.flow_for_queue(0), 5);
    b.rig.step(4);
    std::array<npa::buffer_ref, 32> out{};
    const std::uint16_t n = b.p.rx_burst(0, out);
    CHECK(n == 5);
    b.rig.api().received(std::span(out).first(n));
    b.rig.api().free(std::span(out).first(n));
    const auto st = b.p.device_stats(0);
    CHECK(st.tx.ucastPktsTxOK == 10);
    CHECK(st.tx.ucastBytesTxOK == b.rig.device().counters(0).tx_bytes);
    CHECK(st.rx.ucastPktsRxOK == 5);
    CHECK(st.rx.pktsRxOutOfBuf == 0);
    CHECK(b.p.device_stats(1).tx.ucastPktsTxOK == 0); // no such queue
    b.finish();
}

// ---- interrupt moderation: modLevels, UPDATE_IML, the device spacing interrupts -------
TEST_CASE("vmxnet3 interrupt moderation: the level in modLevels, UPDATE_IML, interrupts spaced by "
          "the device") {
    CHECK(npa::vmxnet3_mod_level(0) == v::upt1::IML_NONE);
    CHECK(npa::vmxnet3_mod_level(1) == 1);
    CHECK(npa::vmxnet3_mod_level(8) == 1);
    CHECK(npa::vmxnet3_mod_level(9) == 2);
    CHECK(npa::vmxnet3_mod_level(64) == 4);
    CHECK(npa::vmxnet3_mod_level(1'000'000) == v::upt1::IML_HIGHEST);

    bench b(one_queue());
    npa::queue_config qc = b.rig.queue_cfg();
    qc.irq_moderation_us = 16; // level 2: the model spaces interrupts 4 steps apart
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), qc).ok());
    CHECK(b.p.irq_moderation_level(0) == 2);
    CHECK(b.rig.device().mod_level(0) == 2);
    CHECK(b.rig.device().mod_level(1) == v::upt1::IML_NONE); // the event vector
    const std::uint32_t flow = b.rig.flow_for_queue(0);
    std::uint64_t received = 0;
    auto drain = [&] {
        std::array<npa::buffer_ref, 32> out{};
        const std::uint16_t n = b.p.rx_burst(0, out);
        received += n;
        b.rig.api().received(std::span(out).first(n));
        b.rig.api().free(std::span(out).first(n));
    };
    // One frame per step for `steps` steps; every interrupt is handled at once (RX drained,
    // the cause cleared, the vector re-armed). Returns the interrupts delivered.
    auto run = [&](int steps) {
        sim_irq& irq = b.rig.irq(0);
        const std::uint64_t before = irq.fired();
        std::uint64_t seen = before;
        b.p.irq_arm(0);
        for (int i = 0; i < steps; ++i) {
            b.rig.far_send(flow, 1);
            b.rig.step();
            if (irq.fired() != seen) {
                seen = irq.fired();
                drain();
                irq.clear();
                b.p.irq_arm(0);
            }
        }
        return irq.fired() - before;
    };
    const std::uint64_t level2 = run(64);
    CHECK(level2 >= 15);
    CHECK(level2 <= 17);
    CHECK(b.rig.device().irq_held_steps(0) > 0);
    // At run time: 64 us is level 4, 16 steps apart.
    REQUIRE(b.p.set_irq_moderation(0, 64).ok());
    CHECK(b.rig.device().mod_level(0) == 4);
    const std::uint64_t level4 = run(64);
    CHECK(level4 >= 3);
    CHECK(level4 <= 5);
    // Off: one interrupt per frame.
    REQUIRE(b.p.set_irq_moderation(0, 0).ok());
    CHECK(run(64) == 64);
    // Moderation delays interrupts, it loses no frame.
    for (int i = 0; i < 4; ++i) {
        b.rig.step();
        drain();
    }
    CHECK(received == 3 * 64);
    b.finish();
    // A level the ABI does not know is refused by UPDATE_IML, and counted.
    b.rig.window().intr().modLevels[0] = 9;
    CHECK(b.rig.device().mmio().command(v::cmd::UPDATE_IML) == 1);
    CHECK(b.rig.device().protocol_violations() == 1);
    CHECK(b.rig.device().mod_level(0) == v::upt1::IML_NONE);
}

// ---- interrupt layout: GET_CONF_INTR and the binder's vectors ------------------------
namespace {
// The layout the plugin wrote: numIntrs, eventIntrIdx, autoMask, and each queue's intrIdx.
struct written_layout {
    unsigned num, event, auto_mask;
    std::vector<unsigned> txq, rxq;
};
written_layout written(vmxnet3_rig& rig, std::uint32_t queues) {
    v::window& w = rig.window();
    written_layout l{w.intr().numIntrs, w.intr().eventIntrIdx, w.intr().autoMask, {}, {}};
    for (std::uint32_t q = 0; q < queues; ++q) {
        l.txq.push_back(w.txq(q)->conf.intrIdx);
        l.rxq.push_back(w.rxq(queues, q)->conf.intrIdx);
    }
    return l;
}
// A refused attach leaves nothing behind: every buffer in the pool, the device inactive.
void check_nothing_lost(vmxnet3_rig& rig) {
    CHECK(rig.api().audit().balanced());
    CHECK(rig.api().audit().in_pool == rig.api().audit().total);
    CHECK_FALSE(rig.device().active());
}
} // namespace

TEST_CASE("vmxnet3 interrupts: AUTO (QEMU's answer) or MSI-X with the vectors: one per queue "
          "pair, the events last") {
    for (const std::uint32_t answer : {v::it::AUTO, v::it::MSIX}) {
        CAPTURE(answer);
        auto c = one_queue();
        c.queues = 2;
        c.conf_intr = answer;
        bench b(c);
        CHECK(b.rig.window().conf_intr() == answer);
        REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
        const written_layout l = written(b.rig, 2);
        CHECK(l.num == 3);
        CHECK(l.event == 2);
        CHECK(l.auto_mask == 1);
        CHECK(l.txq == std::vector<unsigned>{0, 1});
        CHECK(l.rxq == std::vector<unsigned>{0, 1});
        CHECK_FALSE(b.p.irq_layout().shared);
        CHECK(b.p.irq_layout().type == v::it::MSIX);
        // Queue 1's frames raise vector 1 only; a link flap raises the event vector.
        b.p.irq_arm(0);
        b.p.irq_arm(1);
        b.rig.window().imr(2, false);
        b.rig.far_send(b.rig.flow_for_queue(1), 3);
        b.rig.step(2);
        CHECK(b.rig.irq(0).fired() == 0);
        CHECK(b.rig.irq(1).fired() == 1);
        CHECK(b.rig.device().irq(2).fired() == 0);
        fault_plan flap;
        flap.link_down_steps = 2;
        b.rig.inject(flap);
        b.rig.step();
        CHECK(b.rig.device().irq(2).fired() == 1);
        CHECK_FALSE(b.p.link_up());
        b.rig.device().irq(2).clear();  // the handler took it
        b.rig.step(3);                  // the link comes back: the line masked itself
        CHECK(b.rig.device().irq(2).fired() == 1);
        b.rig.window().imr(2, false);
        CHECK(b.rig.device().irq(2).fired() == 2);
        CHECK(b.p.link_up());
        std::array<npa::buffer_ref, 32> out{};
        const std::uint16_t n = b.p.rx_burst(1, out);
        CHECK(n == 3);
        b.rig.api().received(std::span(out).first(n));
        b.rig.api().free(std::span(out).first(n));
        b.finish();
    }
}

TEST_CASE("vmxnet3 interrupts: INTx is one vector for the queue pair and the events; ICR says "
          "whose the interrupt was") {
    auto c = one_queue();
    c.conf_intr = v::it::INTX;
    bench b(c);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    const written_layout l = written(b.rig, 1);
    CHECK(l.num == 1);
    CHECK(l.event == 0);
    CHECK(l.auto_mask == 1);
    CHECK(l.txq == std::vector<unsigned>{0});
    CHECK(l.rxq == std::vector<unsigned>{0});
    CHECK(b.p.irq_layout().shared);
    CHECK(b.p.irq_layout().type == v::it::INTX);
    CHECK(b.rig.device().active());
    sim_irq& line = b.rig.irq(0);
    CHECK(b.rig.window().icr() == 0);  // nothing raised: another function's interrupt
    // RX: the line fires, ICR says it was this device's (and lowers it), the frames are there.
    b.p.irq_arm(0);
    b.rig.far_send(b.rig.flow_for_queue(0), 4);
    b.rig.step();
    CHECK(line.fired() == 1);
    CHECK(b.rig.window().icr() == 1);
    CHECK(b.rig.window().icr() == 0);
    CHECK(b.receive_step() == 4);
    // TX: its completions raise the same line.
    b.p.irq_arm(0);
    CHECK(b.send(5) == 5);
    b.rig.step(3);
    CHECK(line.fired() == 2);
    CHECK(b.rig.window().icr() == 1);
    CHECK(b.p.tx_reap(0) == 5);
    // Events too: a link flap wakes the queue's line, and the link state reads through.
    b.p.irq_arm(0);
    fault_plan flap;
    flap.link_down_steps = 2;
    b.rig.inject(flap);
    b.rig.step();
    CHECK(line.fired() == 3);
    CHECK_FALSE(b.p.link_up());
    b.rig.step(3);
    CHECK(b.p.link_up());
    // Moderation on the one vector is the queue's.
    REQUIRE(b.p.set_irq_moderation(0, 64).ok());
    CHECK(b.p.irq_moderation_level(0) == 4);
    CHECK(b.rig.device().mod_level(0) == 4);
    CHECK(b.rig.device().mod_level(1) == v::upt1::IML_NONE);
    b.finish();
}

TEST_CASE("vmxnet3 interrupts: MSI, or MSI-X with too few vectors, is one vector and one queue "
          "pair; more pairs are refused with nothing lost") {
    struct row {
        std::uint32_t answer, vectors;
        std::uint16_t queues;
        bool ok, shared;
    };
    const row rows[] = {
        {v::it::MSI, v::MAX_INTRS, 1, true, true},   {v::it::MSI, v::MAX_INTRS, 2, false, true},
        {v::it::MSIX, 2, 1, true, false},            {v::it::MSIX, 2, 2, false, true},
        {v::it::AUTO, 1, 1, true, true},             {v::it::INTX, v::MAX_INTRS, 2, false, true},
    };
    for (const row& r : rows) {
        CAPTURE(r.answer);
        CAPTURE(r.vectors);
        CAPTURE(r.queues);
        auto c = one_queue();
        c.queues = r.queues;
        c.conf_intr = r.answer;
        c.irq_vectors = r.vectors;
        bench b(c);
        const npa::status st = b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg());
        if (!r.ok) {
            CHECK(st.code() == npa::errc::invalid_argument);
            CHECK(std::string(st.reason()).find("one queue pair") != std::string::npos);
            check_nothing_lost(b.rig);
            CHECK(b.rig.violations().empty());
            continue;
        }
        REQUIRE(st.ok());
        CHECK(b.p.irq_layout().shared == r.shared);
        const written_layout l = written(b.rig, 1);
        CHECK(l.num == (r.shared ? 1u : 2u));
        CHECK(l.event == (r.shared ? 0u : 1u));
        b.p.irq_arm(0);
        b.rig.far_send(b.rig.flow_for_queue(0), 2);
        b.rig.step();
        CHECK(b.rig.irq(0).fired() == 1);
        CHECK(b.receive_step() == 2);
        CHECK(b.rig.window().icr() == 0);  // ICR is INTx's only
        b.finish();
    }
}

TEST_CASE("vmxnet3 interrupts: a binder enables the type asked for and falls back MSI-X, MSI, "
          "INTx; one queue pair runs on whatever it got") {
    CHECK(v::first_irq_type(v::it::AUTO) == v::it::MSIX);
    CHECK(v::first_irq_type(v::it::MSIX) == v::it::MSIX);
    CHECK(v::first_irq_type(v::it::MSI | v::imm::LAZY << 2) == v::it::MSI);
    CHECK(v::first_irq_type(v::it::INTX) == v::it::INTX);
    CHECK(v::next_irq_type(v::it::MSIX) == v::it::MSI);
    CHECK(v::next_irq_type(v::it::MSI) == v::it::INTX);
    CHECK(v::next_irq_type(v::it::INTX) == v::it::AUTO);  // nothing after INTx
    // The kernel module's outcomes: two MSI-X vectors, or one (MSI, INTx) after a fallback.
    // The vector count decides, whatever the device asked for.
    for (const std::uint32_t answer : {v::it::AUTO, v::it::INTX, v::it::MSI, v::it::MSIX}) {
        for (std::uint32_t type = v::first_irq_type(answer); type != v::it::AUTO;
             type = v::next_irq_type(type)) {
            CAPTURE(answer);
            CAPTURE(type);
            const std::uint32_t vectors = type == v::it::MSIX ? 2 : 1;
            const npa::result<v::intr_layout> l = v::decide_intr_layout(answer, 1, vectors);
            REQUIRE(l.ok());
            CHECK(l->shared == (vectors == 1));
            CHECK(l->num_intrs == vectors);
            CHECK(l->event_idx == vectors - 1);
            CHECK(l->queue_vector(0) == 0);
            CHECK(l->type == v::first_irq_type(answer));
            // A second queue pair needs a vector of its own.
            CHECK_FALSE(v::decide_intr_layout(answer, 2, vectors).ok());
        }
    }
}

TEST_CASE("vmxnet3 interrupts: mask mode ACTIVE or LAZY writes autoMask 0; the device does not "
          "mask the vector as it fires") {
    for (const std::uint32_t mode : {v::imm::ACTIVE, v::imm::LAZY}) {
        CAPTURE(mode);
        auto c = one_queue();
        c.conf_intr = v::it::MSIX | mode << 2;
        bench b(c);
        REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
        CHECK(b.rig.window().intr().autoMask == 0);
        CHECK_FALSE(b.p.irq_layout().auto_mask());
        b.p.irq_arm(0);
        b.rig.far_send(b.rig.flow_for_queue(0), 1);
        b.rig.step();
        b.rig.far_send(b.rig.flow_for_queue(0), 1);
        b.rig.step();
        CHECK(b.rig.irq(0).fired() == 2);  // still armed after the first
        b.p.irq_disarm(0);
        CHECK(b.receive_step() == 2);
        b.finish();
    }
}

TEST_CASE("vmxnet3 interrupts: a GET_CONF_INTR answer the ABI does not define refuses the attach, "
          "nothing lost") {
    for (const std::uint32_t answer : {0x0cu, 0x0fu, 0xffffffffu}) {
        CAPTURE(answer);
        auto c = one_queue();
        c.conf_intr = answer;
        bench b(c);
        const npa::status st = b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg());
        CHECK(st.code() == npa::errc::device_error);
        CHECK(std::string(st.reason()).find("GET_CONF_INTR") != std::string::npos);
        check_nothing_lost(b.rig);
        b.p.detach();  // nothing attached: a no-op
        check_nothing_lost(b.rig);
    }
    // Bits above the mask mode mean nothing to any driver: ignored.
    auto c = one_queue();
    c.conf_intr = 0xabcd0000u | v::it::MSIX;
    bench b(c);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    CHECK(written(b.rig, 1).num == 2);
    b.finish();
}

// ---- control path: the hypervisor's policy through the register interface -----------
TEST_CASE("vmxnet3 control: MAC change applied or refused by policy, read back from MACL/MACH") {
    vmxnet3_rig rig(one_queue());
    REQUIRE(rig.ok());
    vmxnet3_list_policy pol;
    const npa::mac_addr a{0x02, 0, 0, 0, 0, 0x0a}, spoof{0x02, 0, 0, 0, 0, 0x66};
    pol.allowed_macs = {vmxnet3_rig::guest_mac, a};
    rig.device().set_policy(&pol);
    npa::vmxnet3_control& ctl = rig.control();
    CHECK(ctl.submit(npa::control_request::make_set_mac(a)).ok());
    CHECK(rig.device().mac() == a);
    CHECK(ctl.mac() == a);
    const npa::status st = ctl.submit(npa::control_request::make_set_mac(spoof));
    CHECK(st.code() == npa::errc::refused);
    CHECK(rig.device().mac() == a);  // the old address stays in effect
    CHECK(std::string(rig.device().last_refusal()) == "MAC address not assigned to this guest");
    // A batch is all or nothing: the MAC it could not set undoes the rest.
    const npa::control_request batch[] = {
        npa::control_request::make_rx_mode(npa::rx_mode::unicast),
        npa::control_request::make_set_mac(spoof)};
    CHECK(ctl.submit_batch(batch).code() == npa::errc::refused);
    CHECK(rig.device().mac() == a);
    CHECK((rig.device().rx_mode() & v::rxm::BCAST) != 0);  // the RX mode put back
    CHECK(rig.device().refusals() == 2);
    // A removed device answers nothing.
    rig.remove_device();
    CHECK(ctl.submit(npa::control_request::make_set_mac(a)).code() == npa::errc::removed);
    CHECK(ctl.submit(npa::control_request::make_vlan(true, 10)).code() == npa::errc::removed);
}

TEST_CASE("vmxnet3 control: the filter commands are not read back; a filter the hypervisor "
          "refuses shows in the traffic") {
    // Linux's driver writes UPDATE_VLAN_FILTERS, UPDATE_RX_MODE and UPDATE_MAC_FILTERS and
    // never reads CMD after them. The device model answers 1 in CMD for a refusal: a driver
    // that read it would see errc::refused; this one reports success, and the frames show
    // what the hypervisor took.
    bench b(one_queue());
    vmxnet3_list_policy pol;
    pol.allowed_macs = {vmxnet3_rig::guest_mac};
    pol.allowed_vlans = {10};
    b.rig.device().set_policy(&pol);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    REQUIRE(b.rig.apply_control().ok());
    npa::vmxnet3_control& ctl = b.rig.control();
    // Frames from the far end to `dst` on `vlan` (0: untagged): how many the guest got.
    std::uint32_t flow = 100;
    auto deliver = [&](npa::mac_addr dst, std::uint16_t vlan, std::uint32_t n) {
        traffic_gen g(flow++, vmxnet3_rig::far_mac, dst, vlan);
        for (std::uint32_t i = 0; i < n; ++i) {
            frame f;
            g.build(f);
            b.rig.device().frame_in(f);
        }
        b.rig.step();
        std::array<npa::buffer_ref, 32> out{};
        const std::uint16_t got = b.p.rx_burst(0, out);
        b.rig.api().received(std::span(out).first(got));
        b.rig.api().free(std::span(out).first(got));
        return got;
    };
    const std::uint64_t refusals = b.rig.device().refusals();
    const std::uint64_t cmd_reads = b.rig.device().cmd_reads();
    CHECK(ctl.submit(npa::control_request::make_vlan(true, 10)).ok());
    CHECK(ctl.submit(npa::control_request::make_vlan(true, 20)).ok());  // refused, unseen
    CHECK(b.rig.device().refusals() == refusals + 1);
    CHECK(std::string(b.rig.device().last_refusal()).find("VLAN") != std::string::npos);
    CHECK(b.rig.window().bound());
    CHECK(deliver(vmxnet3_rig::guest_mac, 10, 3) == 3);
    CHECK(deliver(vmxnet3_rig::guest_mac, 0, 3) == 3);   // untagged: VID 0 stays in the table
    CHECK(deliver(vmxnet3_rig::guest_mac, 20, 3) == 0);  // the table the device kept
    const npa::mac_addr other{0x02, 0, 0, 0, 0, 0x77};
    CHECK(deliver(other, 0, 2) == 0);
    CHECK(ctl.submit(npa::control_request::make_rx_mode(npa::rx_mode::promisc)).ok());
    CHECK(b.rig.device().refusals() == refusals + 2);
    CHECK((b.rig.device().rx_mode() & v::rxm::PROMISC) == 0);
    CHECK(deliver(other, 0, 2) == 0);  // still not promiscuous
    CHECK(deliver(vmxnet3_rig::guest_mac, 0, 2) == 2);
    npa::control_request mc;
    mc.op = npa::control_op::set_mcast_list;
    mc.mcast_count = 1;
    mc.mcast[0] = npa::mac_addr{0x01, 0, 0x5e, 0, 0, 1};
    CHECK(ctl.submit(mc).ok());
    CHECK(b.rig.device().cmd_reads() == cmd_reads);  // CMD never read after UPDATE_*
    b.finish();
}

TEST_CASE("vmxnet3: the device filters RX by MAC and RX mode set through the control path") {
    bench b(one_queue());
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    const npa::mac_addr other{0x02, 0, 0, 0, 0, 0x0b};
    REQUIRE(b.rig.control().submit(npa::control_request::make_set_mac(other)).ok());
    b.rig.far_send(b.rig.flow_for_queue(0), 5);  // addressed to the old MAC
    b.rig.step();
    std::array<npa::buffer_ref, 32> out{};
    CHECK(b.p.rx_burst(0, out) == 0);
    CHECK(b.rig.device().rx_filtered() == 5);
    b.finish();
}

TEST_CASE(
    "vmxnet3: RX dropped before a queue is counted by cause, and stays counted over a reset") {
    bench b(one_queue());
    vmxnet3_device& dev = b.rig.device();
    const std::uint32_t flow = b.rig.flow_for_queue(0);
    b.rig.far_send(flow, 2); // not activated yet
    b.rig.step();
    CHECK(dev.device_stats().rx_inactive == 2);
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg()).ok());
    fault_plan down;
    down.link_down_steps = 3;
    dev.inject(down);
    b.rig.far_send(flow, 3);
    b.rig.step();
    CHECK(dev.device_stats().rx_link_down == 3);
    CHECK(dev.device_stats().rx_filtered == 0); // a down link is not a filter decision
    b.rig.step(2);
    b.rig.far_send(flow, 4);
    b.rig.step();
    std::array<npa::buffer_ref, 32> out{};
    const std::uint16_t n = b.p.rx_burst(0, out);
    CHECK(n == 4);
    b.rig.api().received(std::span(out).first(n));
    b.rig.api().free(std::span(out).first(n));
    // The hypervisor resets the device: inactive again, and nothing counted is forgotten.
    b.rig.reset_device();
    b.rig.far_send(flow, 1);
    b.rig.step();
    const vmxnet3_device_stats s = dev.device_stats();
    CHECK(s.rx_inactive == 3);
    CHECK(s.rx_link_down == 3);
    CHECK(s.rx_overrun == 0);
    CHECK(dev.counters(0).rx_frames == 4);
    b.finish();
}

// ---- the shell: vmxnet3 <-> simnic under traffic, zero TX loss -------------------------
using shell_env = npa_test::two_device_env<vmxnet3_device, simnic>;

TEST_CASE("shell<vmxnet3, simnic>: switching to and from the simnic path under traffic loses no TX") {
    using shell_t = npa::shell<shell_env, npa::vmxnet3_plugin, simnic_plugin>;
    constexpr npa::mac_addr guest{0x02, 0, 0, 0, 0, 0x01}, peer_mac{0x02, 0, 0, 0, 0, 0x02};
    guest_memory mem(std::size_t{24} << 20);
    npa::pool_config pc;
    pc.count = 2048;
    const guest_block pb = mem.allocate(shell_env::pool_type::required_bytes(pc));
    auto pool = shell_env::pool_type::create(pc, pb.backing());
    REQUIRE(pool.ok());
    vmxnet3_device_config vc;
    vc.profile.max_ring_size = 256;
    auto vdev = vmxnet3_device::create(mem, vc);
    REQUIRE(vdev.ok());
    simnic_config sc;
    sc.queues = 1;
    sc.max_ring_size = 256;
    auto sdev = simnic::create(mem, sc);
    REQUIRE(sdev.ok());
    l2_switch sw(3);
    far_end peer(peer_mac, guest);
    connect(**vdev, sw.port_at(0));
    connect(**sdev, sw.port_at(1));
    connect(peer, sw.port_at(2));
    REQUIRE(npa::vmxnet3::probe((*vdev)->window()) == nullptr); // before any filter command
    npa::vmxnet3_control vctl((*vdev)->control_port());
    npa_test::allow_all_channel sctl;

    shell_env env{vdev->get(), sdev->get()};
    npa::shell_config cfg;
    cfg.queues.queues = 1;
    cfg.queues.tx_ring_size = cfg.queues.rx_ring_size = 256;
    cfg.policy.min_dwell_ns = 0;
    shell_env::pool_type* pools[] = {&*pool};
    shell_t sh(env, pools, cfg);
    REQUIRE(sh.init_status().ok());
    REQUIRE(vctl.submit(npa::control_request::make_rx_mode(npa::rx_mode::unicast | npa::rx_mode::broadcast)).ok());
    REQUIRE(vctl.submit(npa::control_request::make_set_mac(guest)).ok());
    REQUIRE(sh.start<0>((*vdev)->window(), npa::control_link::to(vctl)).ok());

    int switches = 0;
    const auto res = npa_test::run_switch_traffic<shell_env>(
        sh, peer, guest, peer_mac, 300,
        [&] {
            (*vdev)->step();
            (*sdev)->step();
        },
        [&](int round) {
            if (round == 100) {
                REQUIRE(sh.switch_to<1>((*sdev)->window(), npa::control_link::to(sctl), npa::switch_reason::vf_arrived).ok());
                ++switches;
            }
            if (round == 200) {
                REQUIRE(sh.switch_to<0>((*vdev)->window(), npa::control_link::to(vctl), npa::switch_reason::vf_leaving).ok());
                ++switches;
            }
        });
    CHECK(switches == 2);
    CHECK(res.sent > 1000);
    CHECK(res.far.lost == 0);
    CHECK(res.far.duplicates == 0);
    CHECK(res.far.reordered == 0);
    CHECK(res.far.corrupt == 0);
    CHECK((*vdev)->violations().empty());
    CHECK(sh.audit().ok());
    sh.stop();
}
