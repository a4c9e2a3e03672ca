// virtio-net: the header and config layouts byte by byte, feature negotiation, MRG_RXBUF
// end to end, IN_ORDER batches on both queues (and a receiveq entry no batch explains, still
// a fault), a device that lies about num_buffers, a hostile driver's chains against the
// sim device (refused, counted, never followed), and the shell switching between a simnic
// path and a virtio-net path under traffic.
#include <doctest/doctest.h>

#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/shell.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/virtio_net_rig.hpp>

#include "../support/rig_receive.hpp"
#include "../support/simnic_virtio_bench.hpp"

#include <array>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <vector>

using namespace npa::sim;
namespace vn = npa::virtio_net;
namespace vio = npa::virtio;
using plugin_t = npa::virtio_net_plugin<virtio_net_rig::api_type>;
using buffer_t = virtio_net_rig::buffer_type;

namespace {

// Receives on queue 0 until `want` frames came or the device went quiet.
std::uint32_t receive(virtio_net_rig& rig, plugin_t& p, std::uint32_t want) {
    return npa_test::receive_on_rig(rig, p, want);
}

// Reset, ACKNOWLEDGE, DRIVER, the driver features `f`, FEATURES_OK: what the device then
// says is in its status byte.
void negotiate(const vio::transport& t, std::uint64_t f) {
    t.set_status(0);
    t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER);
    t.set_driver_features(f);
    t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER | vio::status_bit::FEATURES_OK);
}

// One step of transmit traffic: frames of `flow` built into what the pool gives of N
// buffers (`prepare` then sees each), offered to the plugin; `accepted` sees the ones it
// took before the device runs; the rest go back. The device steps and the plugin reaps.
// Returns how many the plugin took.
template <std::size_t N, class Prepare, class Accepted>
std::uint16_t send_step(virtio_net_rig& rig, plugin_t& p, std::uint32_t flow, Prepare&& prepare,
                        Accepted&& accepted) {
    std::array<buffer_t, N> b{};
    const std::uint32_t got = rig.api().alloc_tx(b);
    for (std::uint32_t i = 0; i < got; ++i) {
        rig.build_tx(b[i], flow);
        prepare(b[i]);
    }
    rig.api().offer({b.data(), got});
    const std::uint16_t k = p.tx_burst(0, std::span(b.data(), got));
    accepted(std::span<const buffer_t>(b.data(), k));
    rig.api().not_accepted({b.data() + k, got - k});
    rig.api().free({b.data() + k, got - k});
    rig.step();
    (void)p.tx_reap(0);
    return k;
}

// Steps the device until the plugin has every transmit buffer back (or ten steps passed).
void drain_tx(virtio_net_rig& rig, plugin_t& p) {
    for (int i = 0; i < 10 && p.tx_in_flight(0) != 0; ++i) {
        rig.step();
        (void)p.tx_reap(0);
    }
}

// Frames of one length from the far end, straight into the device (one flow per length,
// so the sink checks each flow's order and bytes).
struct sized_flow {
    std::uint32_t flow, len;
    traffic_gen g{flow, virtio_net_rig::far_mac, virtio_net_rig::guest_mac, 0, len};
    sized_flow(std::uint32_t f, std::uint32_t l) : flow(f), len(l) {}
    void send(virtio_net_rig& rig, std::uint32_t n) {
        for (std::uint32_t i = 0; i < n; ++i) {
            frame f;
            g.build(f);
            rig.device().frame_in(f);
        }
    }
};

// Receives on queue 0 for a few steps; every frame delivered goes to the sink, and its
// length must be its flow's. Returns how many came.
std::uint32_t receive_sized(virtio_net_rig& rig, plugin_t& p, std::span<const sized_flow> flows) {
    std::uint32_t got = 0;
    std::array<buffer_t, 32> out{};
    for (int round = 0; round < 6; ++round) {
        rig.step();
        for (std::uint16_t n; (n = p.rx_burst(0, out)) != 0;) {
            for (std::uint16_t i = 0; i < n; ++i) {
                const std::span<const std::byte> f{out[i].data(), out[i].length()};
                const std::uint32_t flow = traffic_gen::get32(f.data() + 14 + 4);
                bool known = false;
                for (const sized_flow& s : flows) {
                    if (s.flow == flow) {
                        known = true;
                        CHECK(out[i].length() == s.len);
                    }
                }
                CHECK(known);
                (void)rig.guest_sink().record(f);
            }
            rig.api().received({out.data(), n});
            rig.api().free({out.data(), n});
            got += n;
        }
    }
    return got;
}

// What a run on queue 0 that met no fault ends with: nothing counted against the device,
// every buffer the device used replaced (a 64-entry receiveq), all back at detach.
void ends_clean(virtio_net_rig& rig, plugin_t& p) {
    CHECK(p.stats(0).bad_completion == 0);
    CHECK(p.health() == npa::errc::ok);
    CHECK(rig.device_rx_posted(0) == 64);
    p.detach();
    CHECK(rig.api().audit().balanced());
}

// Each flow's frames arrived once, in order, intact (none lost unless `may_lose`).
void flows_intact(virtio_net_rig& rig, std::span<const sized_flow> flows, bool may_lose = false) {
    for (const sized_flow& f : flows) {
        const auto rep = rig.guest_sink().report(f.flow, f.g.sent());
        CHECK((may_lose || rep.lost == 0));
        CHECK(rep.duplicates == 0);
        CHECK(rep.reordered == 0);
        CHECK(rep.corrupt == 0);
    }
}

virtio_net_rig::config one_queue() {
    virtio_net_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    return c;
}

// Buffers of 400 bytes on one queue (MRG_RXBUF merges what is longer), attached with an MTU
// to match.
virtio_net_rig::config small_buffers() {
    virtio_net_rig::config c = one_queue();
    c.buf_size = 128 + 400;
    return c;
}
void attach_small_mtu(virtio_net_rig& rig, plugin_t& p) {
    REQUIRE(rig.ok());
    npa::queue_config qc = rig.queue_cfg();
    qc.mtu = 400 - 18;
    REQUIRE(p.attach(rig.api(), rig.window(), qc));
}

} // namespace

TEST_CASE("virtio_net_hdr_v1 and the config space, byte by byte") {
    vn::net_hdr_v1 h{};
    h.flags = vn::HDR_F_NEEDS_CSUM;
    h.gso_type = vn::GSO_TCPV4;
    h.hdr_len = 0x0102;
    h.gso_size = 0x0304;
    h.csum_start = 0x0506;
    h.csum_offset = 0x0708;
    h.num_buffers = 0x090A;
    const std::uint8_t want[12] = {1, 1, 2, 1, 4, 3, 6, 5, 8, 7, 0x0A, 0x09};
    std::uint8_t got[12];
    std::memcpy(got, &h, 12);
    for (int i = 0; i < 12; ++i) {
        CHECK(got[i] == want[i]);
    }
    CHECK(vn::feature::MRG_RXBUF == 1ull << 15);
    CHECK(vn::feature::MQ == 1ull << 22);
    CHECK(vio::feature::VERSION_1 == 1ull << 32);
    CHECK(vio::feature::EVENT_IDX == 1ull << 29);
    CHECK(vn::rxq_index(3) == 6);
    CHECK(vn::txq_index(3) == 7);
}

TEST_CASE("attach negotiates what both sides have; a device without VERSION_1 is refused") {
    SUBCASE("the default device") {
        virtio_net_rig rig(one_queue());
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        const std::uint64_t f = rig.device().driver_features();
        CHECK((f & vio::feature::VERSION_1) != 0);
        CHECK((f & vn::feature::MRG_RXBUF) != 0);
        CHECK((f & vio::feature::IN_ORDER) != 0);
        CHECK((f & vio::feature::EVENT_IDX) != 0);
        CHECK((f & vn::feature::MQ) == 0);         // one pair asked for
        CHECK(rig.device().status_byte() == (vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER |
                                             vio::status_bit::FEATURES_OK | vio::status_bit::DRIVER_OK));
        CHECK(p.capabilities().has(npa::cap::tx_l4_csum | npa::cap::rx_csum));
        CHECK(rig.device_rx_posted(0) == 64);
        p.detach();
        CHECK(rig.device().status_byte() == 0);
        CHECK(rig.api().audit().balanced());
    }
    SUBCASE("a legacy-only device") {
        virtio_net_rig::config c = one_queue();
        c.features = vn::feature::MAC | vn::feature::MRG_RXBUF;
        virtio_net_rig rig(c);
        REQUIRE(rig.ok());
        plugin_t p;
        const npa::status st = p.attach(rig.api(), rig.window(), rig.queue_cfg());
        CHECK(st.code() == npa::errc::not_supported);
        CHECK((rig.device().status_byte() & vio::status_bit::FAILED) != 0);
        CHECK(rig.api().audit().balanced());
    }
    SUBCASE("more queue pairs than the device has") {
        virtio_net_rig rig(one_queue());
        plugin_t p;
        npa::queue_config qc = rig.queue_cfg();
        qc.queues = 5; // the device has 4
        CHECK(p.attach(rig.api(), rig.window(), qc).code() == npa::errc::invalid_argument);
    }
}

TEST_CASE("without MRG_RXBUF an RX buffer must hold the device's largest frame (5.1.6.3.1, 5.1.4.2)") {
    // The device may send frames of its own MTU (plus the Ethernet header and a VLAN tag)
    // whatever MTU the shell asked for; without MRG_RXBUF each must fit one buffer.
    const std::uint64_t no_mrg = virtio_net_device_config{}.features & ~vn::feature::MRG_RXBUF;
    const auto rig_of = [&](std::uint64_t features, std::uint16_t mtu, std::uint32_t data) {
        virtio_net_rig::config c = one_queue();
        c.features = features;
        c.mtu = mtu;
        c.buf_size = 128 + data;
        c.buffers = 256;
        return c;
    };
    const auto refused = [](virtio_net_rig& rig, const char* cap, const char* need) {
        plugin_t p;
        const npa::status st = p.attach(rig.api(), rig.window(), rig.queue_cfg()); // MTU 1500
        CHECK(st.code() == npa::errc::invalid_argument);
        const std::string why = st.reason();
        MESSAGE(why);
        CHECK(why.find(cap) != std::string::npos);
        CHECK(why.find(need) != std::string::npos);
        CHECK((rig.device().status_byte() & vio::status_bit::FAILED) != 0);
        CHECK((rig.device().status_byte() & vio::status_bit::FEATURES_OK) == 0);
        CHECK(rig.device_rx_posted(0) == 0);
        CHECK(rig.api().audit().balanced());
    };
    const auto flows = [](virtio_net_rig& rig) {
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        CHECK((p.features() & vn::feature::MRG_RXBUF) == 0);
        const std::uint32_t flow = rig.flow_for_queue(0);
        std::uint32_t got = 0;
        for (int round = 0; round < 5; ++round) {
            rig.far_send_varied(flow, 8); // 60 to 1514 bytes
            got += receive(rig, p, 8);
        }
        CHECK(got == 40);
        CHECK(rig.device().counters(0).rx_oversize == 0);
        CHECK(rig.guest_sink().report(flow, 40).corrupt == 0);
        CHECK(p.health() == npa::errc::ok);
        p.detach();
        CHECK(rig.api().audit().balanced());
    };
    SUBCASE("the device's MTU of 9000 and buffers of 2048 bytes: attach refused, naming both") {
        virtio_net_rig rig(rig_of(no_mrg, 9000, 2048));
        REQUIRE(rig.ok());
        refused(rig, "2048", "9018");
    }
    SUBCASE("the device's MTU of 9000 and buffers of 9018 bytes: attached, frames arrive") {
        virtio_net_rig rig(rig_of(no_mrg, 9000, 9018));
        REQUIRE(rig.ok());
        flows(rig);
    }
    SUBCASE("no MTU offered: 1500, and buffers of 1514 bytes lack room for a VLAN tag") {
        virtio_net_rig rig(rig_of(no_mrg & ~vn::feature::MTU, 1500, 1514));
        REQUIRE(rig.ok());
        refused(rig, "1514", "1518");
    }
    SUBCASE("no MTU offered and buffers of 1518 bytes: attached, frames arrive") {
        virtio_net_rig rig(rig_of(no_mrg & ~vn::feature::MTU, 1500, 1518));
        REQUIRE(rig.ok());
        flows(rig);
    }
    SUBCASE("with MRG_RXBUF the device merges buffers: small ones are taken") {
        virtio_net_rig rig(rig_of(virtio_net_device_config{}.features, 9000, 1024));
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        CHECK(rig.device_rx_posted(0) == 64);
        p.detach();
        CHECK(rig.api().audit().balanced());
    }
}

TEST_CASE("ORDER_PLATFORM offered, as a device in hardware may: taken, and traffic flows both ways") {
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        virtio_net_rig::config c = one_queue();
        c.features = virtio_net_device_config{}.features | vio::feature::ORDER_PLATFORM;
        c.packed_ring = packed;
        virtio_net_rig rig(c);
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        CHECK((rig.device().driver_features() & vio::feature::ORDER_PLATFORM) != 0);
        CHECK(((p.features() & vio::feature::RING_PACKED) != 0) == packed);
        CHECK(rig.device().features_not_offered() == 0);
        const std::uint32_t flow = rig.flow_for_queue(0);
        std::uint32_t sent = 0, got = 0;
        for (int round = 0; round < 20; ++round) {
            sent += send_step<16>(rig, p, flow, [](buffer_t&) {}, [](std::span<const buffer_t>) {});
            rig.far_send_varied(flow, 8);
            got += receive(rig, p, 8);
        }
        drain_tx(rig, p);
        CHECK(sent == 20 * 16);
        CHECK(rig.far_report(flow, sent).received == sent);
        CHECK(got == 20 * 8);
        CHECK(rig.guest_sink().report(flow, got).corrupt == 0);
        CHECK(p.health() == npa::errc::ok);
        CHECK(rig.violations().empty());
        p.detach();
        CHECK(rig.api().audit().balanced());
    }
}

TEST_CASE("EVENT_IDX: kicks follow avail_event, and a receiveq interrupts once per poll") {
    // The same traffic with and without EVENT_IDX offered: 8 TX bursts of 4 frames, then
    // 4 device steps of RX frames with no poll in between, then a poll.
    struct counts {
        std::uint64_t tx_kicks, rx_raised, received, sent;
    };
    auto run = [](bool event_idx) {
        virtio_net_rig::config c = one_queue();
        c.features = virtio_net_device_config{}.features & ~(event_idx ? 0 : vio::feature::EVENT_IDX);
        virtio_net_rig rig(c);
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        CHECK(((rig.device().driver_features() & vio::feature::EVENT_IDX) != 0) == event_idx);
        counts k{};
        std::array<buffer_t, 4> b{};
        for (int burst = 0; burst < 8; ++burst) {
            REQUIRE(rig.api().alloc_tx(b) == 4);
            for (const buffer_t& x : b) {
                rig.build_tx(x, 1);
            }
            rig.api().offer(b);
            k.sent += p.tx_burst(0, b);
            rig.step();
            (void)p.tx_reap(0);
        }
        k.tx_kicks = rig.device().kicks(vn::txq_index(0));
        std::array<buffer_t, 32> out{};
        (void)p.rx_burst(0, out); // nothing yet: used_event set at this poll
        p.irq_arm(0);
        const std::uint64_t r0 = rig.device().interrupts_raised(0);
        for (int s = 0; s < 4; ++s) {
            rig.far_send(rig.flow_for_queue(0), 2);
            rig.step();
        }
        k.rx_raised = rig.device().interrupts_raised(0) - r0;
        k.received = receive(rig, p, 8);
        CHECK(rig.irq(0).fired() >= 1);
        p.detach();
        CHECK(rig.far_report(1, k.sent).lost == 0);
        CHECK(rig.api().audit().balanced());
        return k;
    };
    const counts without = run(false), with = run(true);
    CHECK(without.sent == 32);
    CHECK(with.sent == 32);
    CHECK(without.received == 8);
    CHECK(with.received == 8);
    // Without: a kick per burst (the model never sets NO_NOTIFY) and an interrupt per
    // step's used entries. With: the model leaves avail_event at 0 (it polls), so only the
    // first publish passes it; one interrupt for the four steps.
    CHECK(without.tx_kicks == 8);
    CHECK(with.tx_kicks == 1);
    CHECK(without.rx_raised >= 4);
    CHECK(with.rx_raised == 1);
}

TEST_CASE("the model answers as QEMU's virtio-net-pci does (docs/real-devices.md, virtio-net-pci)") {
    // What QEMU 10 offers on a hub (no vnet header, so no checksum offloads): MAC, STATUS,
    // MRG_RXBUF, EVENT_IDX, VERSION_1 (the control-queue bits left out: no control queue here).
    virtio_net_rig::config c = one_queue();
    c.features = vio::feature::VERSION_1 | vio::feature::EVENT_IDX | vn::feature::MRG_RXBUF |
                 vn::feature::MAC | vn::feature::STATUS;
    virtio_net_rig rig(c);
    REQUIRE(rig.ok());
    const vio::transport& t = rig.window().transport();
    SUBCASE("1: bits not offered are dropped and FEATURES_OK sticks") {
        negotiate(t, vio::feature::VERSION_1 | vio::feature::IN_ORDER | vn::feature::MTU);
        CHECK((t.status() & vio::status_bit::FEATURES_OK) != 0);
        CHECK(rig.device().driver_features() == vio::feature::VERSION_1);
        CHECK(rig.device().features_not_offered() == (vio::feature::IN_ORDER | vn::feature::MTU));
    }
    SUBCASE("2: without VERSION_1 the model refuses FEATURES_OK (it has no legacy layout)") {
        negotiate(t, vn::feature::MAC);
        CHECK((t.status() & vio::status_bit::FEATURES_OK) == 0);
    }
    SUBCASE("3: the configuration space ends where the offered features end") {
        std::uint8_t cfg[24];
        t.read_config(0, cfg, sizeof cfg);
        CHECK(cfg[6] == vn::S_LINK_UP); // status: STATUS offered
        for (std::size_t i = 8; i < sizeof cfg; ++i) {
            CHECK(cfg[i] == 0xFF); // max_virtqueue_pairs, mtu, ...: no MQ, no MTU
        }
        CHECK(rig.window().max_virtqueue_pairs() == 0xFFFF);
        plugin_t p; // the plugin reads neither without its feature
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        CHECK(p.capabilities().max_queues == 1);
        CHECK(p.capabilities().max_mtu == vn::DEFAULT_MTU);
        p.detach();
        CHECK(rig.api().audit().balanced());
    }
    SUBCASE("4: a queue with no vector (VIRTIO_MSI_NO_VECTOR) is enabled, and polled") {
        negotiate(t, vio::feature::VERSION_1);
        const vn::ring_memory m = rig.window().ring_area();
        const vio::split_layout l = vio::layout_of(8);
        CHECK(t.queue_enable(0, {m.iova, m.iova + l.avail, m.iova + l.used, 8, 0xFFFF}));
        CHECK(t.queue_enable(1, {m.iova + 4096, m.iova + 4096 + l.avail, m.iova + 4096 + l.used, 8, 0xFFFF}));
    }
    SUBCASE("3: with MTU offered the mtu field is there, speed and duplex still are not") {
        virtio_net_rig::config m = c;
        m.features |= vn::feature::MTU;
        virtio_net_rig r2(m);
        REQUIRE(r2.ok());
        CHECK(r2.window().mtu() == 1500);
        std::uint8_t speed[5];
        r2.window().transport().read_config(12, speed, 5);
        for (const std::uint8_t b : speed) {
            CHECK(b == 0xFF);
        }
    }
}

TEST_CASE("MRG_RXBUF: a frame spread over several buffers is taken off the ring and counted") {
    // Buffers of 400 bytes and an MTU to match: frames beyond it (which the far end sends
    // all the same) need more than one buffer.
    virtio_net_rig rig(small_buffers());
    plugin_t p;
    attach_small_mtu(rig, p);
    const std::uint32_t flow = rig.flow_for_queue(0);
    std::uint32_t got = 0;
    for (int round = 0; round < 5; ++round) { // 8 at a time: at most 32 of the 64 buffers
        rig.far_send_varied(flow, 8);         // lengths of their own, 60 to 1514 bytes
        got += receive(rig, p, 8);
    }
    const auto rep = rig.guest_sink().report(flow, 40);
    const virtio_net_queue_counters dc = rig.device().counters(0);
    CHECK(dc.rx_merged > 0);                        // the device spread some frames
    CHECK(dc.rx_frames == 40);
    CHECK(got == 40 - dc.rx_merged);                // those are dropped, the rest delivered
    CHECK(p.stats(0).rx_dropped == dc.rx_merged);   // and counted
    CHECK(rep.corrupt == 0);
    ends_clean(rig, p);
}

TEST_CASE("IN_ORDER: a device that confirms transmitq chains in batches (virtio 1.2 2.7.9, 2.8)") {
    // One used entry for up to 8 chains, the id of the batch's last, used->idx moved by the
    // batch (packed: one used descriptor at the batch's first position, the used position
    // moved past the whole batch): every chain completes, in order, and nothing counts as
    // a violation.
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        virtio_net_rig::config c = one_queue();
        c.tx_batch = 8;
        c.packed_ring = packed;
        virtio_net_rig rig(c);
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        REQUIRE((p.features() & vio::feature::IN_ORDER) != 0);
        REQUIRE(((p.features() & vio::feature::RING_PACKED) != 0) == packed);
        const std::uint32_t flow = 7;
        std::uint64_t sent = 0;
        for (int round = 0; round < 40; ++round) { // 19 a step, not a multiple of 8: every
                                                   // step ends a short batch
            sent += send_step<19>(rig, p, flow, [](buffer_t&) {}, [](std::span<const buffer_t>) {});
        }
        drain_tx(rig, p);
        CHECK(p.tx_in_flight(0) == 0);
        CHECK(rig.device().tx_batch_entries() > 0);
        const auto rep = rig.far_report(flow, sent);
        CHECK(rep.received == sent);
        CHECK(rep.lost == 0);
        CHECK(rep.duplicates == 0);
        CHECK(rep.reordered == 0);
        CHECK(rep.corrupt == 0);
        CHECK(p.stats(0).tx_packets == sent);
        CHECK(p.stats(0).tx_errors == 0);
        CHECK(p.stats(0).bad_completion == 0);
        CHECK(p.health() == npa::errc::ok);
        p.detach();
        CHECK(rig.api().audit().balanced());
    }
}

TEST_CASE("IN_ORDER: a device that uses receiveq chains in batches (virtio 1.2 2.7.9, 2.8)") {
    // One used entry for up to 8 chains, the id of the batch's last (packed: one used
    // descriptor at the batch's first position, the positions of the whole batch skipped).
    // The chains before the last were written completely, so each is a buffer full: the
    // frame is the whole length posted less the header, and the last is as long as the
    // entry says. Every frame arrives with its own length, none counts as a violation.
    const std::uint64_t no_mrg = virtio_net_device_config{}.features & ~vn::feature::MRG_RXBUF;
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        SUBCASE("without MRG_RXBUF: buffers of 1518 bytes, a frame each, full ones batched") {
            virtio_net_rig::config c = one_queue();
            c.rx_batch = 8;
            c.packed_ring = packed;
            c.features = no_mrg;
            c.buf_size = 128 + 1518; // the largest frame of the device's MTU 1500
            c.buffers = 256;
            virtio_net_rig rig(c);
            REQUIRE(rig.ok());
            plugin_t p;
            REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
            REQUIRE((p.features() & vio::feature::IN_ORDER) != 0);
            REQUIRE((p.features() & vn::feature::MRG_RXBUF) == 0);
            std::array<sized_flow, 2> flows{sized_flow{1, 1518}, sized_flow{2, 200}};
            std::uint32_t sent = 0, got = 0;
            std::uint64_t bytes = 0;
            for (int round = 0; round < 12; ++round) { // 10 full (a batch of 8 ends at its
                flows[0].send(rig, 10);                // count), 1 short, 2 full, 1 short
                flows[1].send(rig, 1);
                flows[0].send(rig, 2);
                flows[1].send(rig, 1);
                sent += 14;
                bytes += 12 * 1518 + 2 * 200;
                got += receive_sized(rig, p, flows);
            }
            CHECK(got == sent);
            CHECK(rig.device().rx_batch_entries() >= 12 * 2);
            flows_intact(rig, flows);
            CHECK(p.stats(0).rx_packets == sent);
            CHECK(p.stats(0).rx_bytes == bytes);
            CHECK(p.stats(0).rx_dropped == 0);
            ends_clean(rig, p);
        }
        SUBCASE("with MRG_RXBUF: buffers of 400 bytes, full frames and merged ones batched") {
            // A frame of 900 bytes takes three buffers, the first two full: one entry for
            // all three. It is larger than one npa buffer and dropped, counted once.
            virtio_net_rig::config c = small_buffers();
            c.rx_batch = 8;
            c.packed_ring = packed;
            virtio_net_rig rig(c);
            plugin_t p;
            attach_small_mtu(rig, p);
            REQUIRE((p.features() & vn::feature::MRG_RXBUF) != 0);
            std::array<sized_flow, 3> flows{sized_flow{1, 400}, sized_flow{2, 100}, sized_flow{3, 900}};
            std::uint32_t delivered = 0, got = 0;
            for (int round = 0; round < 12; ++round) { // 16 buffers a round
                flows[0].send(rig, 5);
                flows[1].send(rig, 1);
                flows[2].send(rig, 2);
                flows[0].send(rig, 3);
                flows[1].send(rig, 1);
                delivered += 10;
                got += receive_sized(rig, p, std::span<const sized_flow>(flows.data(), 2));
            }
            const virtio_net_queue_counters dc = rig.device().counters(0);
            CHECK(dc.rx_merged == 24);
            CHECK(rig.device().rx_batch_entries() >= 12 * 3);
            CHECK(got == delivered);
            flows_intact(rig, std::span<const sized_flow>(flows.data(), 2));
            CHECK(rig.guest_sink().report(3, 24).received == 0);
            CHECK(p.stats(0).rx_packets == delivered);
            CHECK(p.stats(0).rx_dropped == 24); // each merged frame once
            ends_clean(rig, p);
        }
    }
}

TEST_CASE("IN_ORDER receiveq batches: an entry the spec does not allow is still a fault") {
    // The device batches as above; then one entry is wrong. Caught, counted, no frame
    // delivered wrong, every buffer back at detach. Last, short frames in buffers of 2048
    // bytes, an entry per chain: a lost or swapped entry makes the next one read as a
    // batch, whose buffer passed over would hold a frame of 2048 bytes, longer than the
    // device may send (its MTU 1500 with the Ethernet header and a VLAN tag): a fault.
    struct bad {
        const char* name;
        fault_plan plan;
        bool split_only;
        bool short_frames = false;
    };
    const auto corrupt = [](comp_fault f) {
        fault_plan fp;
        fp.corrupt = f;
        fp.corrupt_ring = ring_kind::rx;
        fp.corrupt_count = 1;
        return fp;
    };
    fault_plan drop, swap;
    drop.drop_rx_completions = 1;
    swap.reorder_rx_completions = 1;
    const std::array<bad, 7> cases{{
        {"an id past the ring", corrupt(comp_fault::index_out_of_range), false},
        {"a length past the buffer", corrupt(comp_fault::length_too_large), false},
        {"an id the driver did not hand over", corrupt(comp_fault::never_posted), false},
        {"an id already used", corrupt(comp_fault::double_completion), false},
        // a split ring announces a batch's size: an entry naming a later chain without
        // used->idx moved past the one before it is no batch (a packed ring cannot tell)
        {"an entry lost, the next naming a later chain", drop, true},
        {"an entry lost, read as a batch over a frame too long", drop, false, true},
        {"two entries swapped, read as a batch over a frame too long", swap, false, true},
    }};
    const std::uint64_t no_mrg = virtio_net_device_config{}.features & ~vn::feature::MRG_RXBUF;
    for (const bad& b : cases) {
        for (const bool packed : {false, true}) {
            if (packed && b.split_only) {
                continue;
            }
            INFO(b.name);
            CAPTURE(packed);
            virtio_net_rig::config c = one_queue();
            c.packed_ring = packed;
            if (!b.short_frames) {
                c.rx_batch = 8;
                c.features = no_mrg;
                c.buf_size = 128 + 1518;
                c.buffers = 256;
            }
            virtio_net_rig rig(c);
            REQUIRE(rig.ok());
            plugin_t p;
            REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
            const std::uint32_t full = b.short_frames ? 128 : 1518;
            std::array<sized_flow, 2> flows{sized_flow{1, full}, sized_flow{2, 200}};
            flows[0].send(rig, 6); // batches work first
            flows[1].send(rig, 1);
            CHECK(receive_sized(rig, p, flows) == 7);
            REQUIRE(p.stats(0).bad_completion == 0);
            rig.inject(b.plan);
            for (int round = 0; round < 4; ++round) {
                flows[0].send(rig, 6);
                flows[1].send(rig, 1);
                (void)receive_sized(rig, p, flows); // lengths checked there
            }
            CHECK(p.stats(0).bad_completion > 0);
            CHECK(p.health() == npa::errc::device_error);
            flows_intact(rig, flows, /*may_lose=*/true);
            p.detach();
            CHECK(rig.api().audit().balanced());
        }
    }
}

TEST_CASE("a transmit header is this frame's whatever the headroom held before") {
    // The plugin writes the 12-byte header only where the buffer does not hold it already
    // (an unchanged header leaves the line shared with the device). A headroom holding a
    // stale one (a checksum request pointing into the frame, a GSO type) must still be
    // replaced: the device would otherwise write a checksum into the frame.
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        virtio_net_rig::config c = one_queue();
        c.packed_ring = packed;
        virtio_net_rig rig(c);
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        REQUIRE(p.capabilities().has(npa::cap::tx_l4_csum)); // the device honours NEEDS_CSUM
        const std::uint32_t flow = 9;
        vn::net_hdr_v1 stale{};
        stale.flags = vn::HDR_F_NEEDS_CSUM;
        stale.gso_type = vn::GSO_TCPV4;
        stale.csum_start = 14;
        stale.csum_offset = 2;
        const vn::net_hdr_v1 none{};
        std::uint64_t sent = 0;
        for (int round = 0; round < 8; ++round) {
            // even rounds: a stale header in the headroom; odd ones: the right one already
            const vn::net_hdr_v1& before = round % 2 == 0 ? stale : none;
            sent += send_step<8>(
                rig, p, flow,
                [&](buffer_t& b) { std::memcpy(b.data() - vn::HDR_LEN, &before, vn::HDR_LEN); },
                [&](std::span<const buffer_t> took) {
                    for (const buffer_t& b : took) {
                        CHECK(std::memcmp(b.data() - vn::HDR_LEN, &none, vn::HDR_LEN) == 0);
                    }
                });
        }
        drain_tx(rig, p);
        CHECK(sent == 64);
        const auto rep = rig.far_report(flow, sent);
        CHECK(rep.received == sent);
        CHECK(rep.corrupt == 0);
        p.detach();
        CHECK(rig.api().audit().balanced());
    }
}

TEST_CASE("a device that lies about num_buffers is caught, and nothing is lost") {
    for (const std::int32_t delta : {1, 1000, -1}) {
        CAPTURE(delta);
        virtio_net_rig rig(one_queue());
        REQUIRE(rig.ok());
        plugin_t p;
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()));
        const std::uint32_t flow = rig.flow_for_queue(0);
        rig.far_send(flow, 4);
        CHECK(receive(rig, p, 4) == 4);
        rig.device().set_num_buffers_fault(2, delta);
        rig.far_send(flow, 8);
        (void)receive(rig, p, 8);
        if (delta == -1) { // num_buffers 0: no frame spans zero buffers
            CHECK(p.stats(0).bad_completion >= 1);
        } else {
            CHECK(p.stats(0).bad_completion >= 1);
            CHECK(p.stats(0).rx_dropped >= 1);
        }
        CHECK(rig.guest_sink().report(flow, rig.far_sent(flow)).corrupt == 0);
        CHECK(p.health() == npa::errc::device_error);
        p.detach();
        CHECK(rig.api().audit().balanced());
        CHECK(rig.violations().empty());
    }
}

TEST_CASE("the device refuses a hostile driver's chains and asks for a reset") {
    // A raw driver on the device's transport, with its own split_driver.
    struct raw {
        explicit raw(virtio_net_rig& r) : rig(r) {}
        virtio_net_rig& rig;
        vio::split_driver drv;
        std::vector<std::uint16_t> state = std::vector<std::uint16_t>(vio::split_driver::state_words(8));

        void bring_up(std::uint16_t q) {
            const vio::transport& t = rig.window().transport();
            t.set_status(0);
            t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER);
            t.set_driver_features(vio::feature::VERSION_1);
            t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER | vio::status_bit::FEATURES_OK);
            const vn::ring_memory m = rig.window().ring_area();
            const vio::split_layout l = vio::layout_of(8);
            REQUIRE(drv.reset(vio::split_ring::in_block(m.virt, 8), state, false));
            // both queues of pair 0 at the same place: only queue q is used
            for (std::uint16_t i = 0; i < 2; ++i) {
                REQUIRE(t.queue_enable(i, {m.iova, m.iova + l.avail, m.iova + l.used, 8, 0}));
            }
            t.set_status(vio::status_bit::ACKNOWLEDGE | vio::status_bit::DRIVER |
                         vio::status_bit::FEATURES_OK | vio::status_bit::DRIVER_OK);
            (void)q;
        }
    };
    const vio::segment frame{0, 0, false};
    (void)frame;
    SUBCASE("a TX chain that loops") {
        virtio_net_rig rig(one_queue());
        raw d(rig);
        d.bring_up(1);
        const vn::ring_memory m = rig.window().ring_area();
        const vio::segment s[2] = {{m.iova + 4096, 64, false}, {m.iova + 4096, 64, false}};
        REQUIRE(d.drv.add(s) == 0);
        d.drv.ring().desc()[1].flags = vio::desc_f_next;
        d.drv.ring().desc()[1].next = 0;
        (void)d.drv.publish();
        rig.step();
        CHECK(rig.device().refused_chains() == 1);
        CHECK((rig.device().status_byte() & vio::status_bit::DEVICE_NEEDS_RESET) != 0);
        REQUIRE(rig.violations().size() == 1);
        CHECK(rig.violations()[0].find("chain loops") != std::string::npos);
        CHECK(rig.device().counters(0).tx_frames == 0);
    }
    SUBCASE("a TX buffer outside guest memory") {
        virtio_net_rig rig(one_queue());
        raw d(rig);
        d.bring_up(1);
        const vio::segment s{0xDEAD00000000ull, 64, false};
        REQUIRE(d.drv.add({&s, 1}) == 0);
        (void)d.drv.publish();
        rig.step();
        REQUIRE(rig.violations().size() == 1);
        CHECK(rig.violations()[0].find("outside driver memory") != std::string::npos);
    }
    SUBCASE("an available index that runs past the ring") {
        virtio_net_rig rig(one_queue());
        raw d(rig);
        d.bring_up(1);
        d.drv.ring().avail()->idx = 9;
        rig.step();
        CHECK(rig.device().refused_chains() == 1);
        CHECK((rig.device().status_byte() & vio::status_bit::DEVICE_NEEDS_RESET) != 0);
    }
    SUBCASE("a queue outside guest memory is refused at enable") {
        virtio_net_rig rig(one_queue());
        const vio::transport& t = rig.window().transport();
        negotiate(t, vio::feature::VERSION_1);
        CHECK_FALSE(t.queue_enable(0, {0xDEAD00000000ull, 0xDEAD00001000ull, 0xDEAD00002000ull, 8, 0}));
        const vn::ring_memory m = rig.window().ring_area();
        CHECK_FALSE(t.queue_enable(0, {m.iova + 8, m.iova + 1024, m.iova + 2048, 8, 0})); // desc misaligned
        CHECK_FALSE(t.queue_enable(0, {m.iova, m.iova + 1024, m.iova + 2048, 12, 0}));    // not a power of two
    }
}

// ---- the shell: simnic <-> virtio-net under traffic, zero TX loss ----------------------
using bench_t = npa_test::simnic_virtio_bench;

TEST_CASE("shell<simnic, virtio-net>: switching to and from the virtio-net path under traffic loses no TX") {
    using shell_t = npa::shell<bench_t::env_type, simnic_plugin, npa::virtio_net_plugin>;
    bench_t b;
    REQUIRE(b.ok());
    npa_test::allow_all_channel ctl;
    bench_t::env_type::pool_type* pools[] = {&*b.pool};
    shell_t sh(b.env, pools, b.cfg);
    REQUIRE(sh.init_status().ok());
    REQUIRE(sh.start<0>(b.sdev->window(), npa::control_link::to(ctl)).ok());

    int switches = 0;
    const auto res = npa_test::run_switch_traffic<bench_t::env_type>(
        sh, b.peer, bench_t::guest, bench_t::peer_mac, 400, [&] { b.step(); },
        [&](int round) {
            if (round == 100 || round == 300) {
                REQUIRE(sh.switch_to<1>(b.vdev->window(), npa::control_link::to(ctl),
                                        npa::switch_reason::vf_arrived).ok());
                ++switches;
            }
            if (round == 200) {
                REQUIRE(sh.switch_to<0>(b.sdev->window(), npa::control_link::to(ctl),
                                        npa::switch_reason::vf_leaving).ok());
                ++switches;
            }
        });
    CHECK(switches == 3);
    CHECK(res.sent > 1000);
    CHECK(res.far.lost == 0);
    CHECK(res.far.duplicates == 0);
    CHECK(res.far.reordered == 0);
    CHECK(res.far.corrupt == 0);
    CHECK(b.vdev->violations().empty());
    CHECK(b.vdev->counters(0).tx_frames > 0);
    CHECK(sh.audit().ok());
    sh.stop();
}
