// The virtio-net plugin passes the conformance kit on the sim virtio-net device model with
// packed virtqueues (VIRTIO_F_RING_PACKED), every hostile-device case included: the ids a
// packed ring's used descriptors carry, read as a packed ring without IN_ORDER allows, and
// again with IN_ORDER taken. And
// the model's own packed path: what was negotiated, the buffers it counts available, and a
// frame spread over several buffers (MRG_RXBUF) given back whole when it does not fit.
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/virtio_net_rig.hpp>

#include "../support/rig_receive.hpp"

#include <array>

using npa::virtio_net_plugin;
using npa::sim::virtio_net_packed_rig;

static_assert(npa::check_plugin<virtio_net_plugin<virtio_net_packed_rig::api_type>, virtio_net_packed_rig::api_type>());
static_assert(npa::sim::rig_has_any_order_completions<virtio_net_packed_rig>);
static_assert(!npa::sim::rig_has_tx_completion_batches<virtio_net_packed_rig>);

NPA_SIM_CONFORMANCE_SUITE(virtio_net_plugin, virtio_net_packed_rig)

// And with IN_ORDER taken: buffers used in order, a dropped transmit completion read as a
// batch, a reordered or dropped receive completion passing buffers over (refused).
using npa::sim::virtio_net_packed_in_order_rig;
static_assert(npa::sim::rig_has_unannounced_batches<virtio_net_packed_in_order_rig>);
NPA_SIM_CONFORMANCE_SUITE(virtio_net_plugin, virtio_net_packed_in_order_rig)

namespace {

using plugin_t = virtio_net_plugin<virtio_net_packed_rig::api_type>;
using buffer_t = virtio_net_packed_rig::buffer_type;
namespace vio = npa::virtio;

// Receives on queue 0 until `want` frames came or the device went quiet.
std::uint32_t receive(virtio_net_packed_rig& rig, plugin_t& p, std::uint32_t want) {
    return npa_test::receive_on_rig(rig, p, want);
}

} // namespace

TEST_CASE("the packed rig: RING_PACKED without IN_ORDER, traffic both ways, MRG_RXBUF") {
    virtio_net_packed_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    c.buf_size = 128 + 400; // frames past 400 bytes need more than one buffer
    virtio_net_packed_rig rig(c);
    REQUIRE(rig.ok());
    plugin_t p;
    npa::queue_config qc = rig.queue_cfg();
    qc.mtu = 400 - 18;
    REQUIRE(p.attach(rig.api(), rig.window(), qc));
    const std::uint64_t f = rig.device().driver_features();
    CHECK((f & vio::feature::RING_PACKED) != 0);
    CHECK((f & vio::feature::IN_ORDER) == 0); // offered, left: the plugin's packed rings take none
    CHECK(rig.device_rx_posted(0) == 64);     // counted by walking the descriptor ring

    // TX: 5 bursts of 8, every frame on the far side, every buffer back.
    std::array<buffer_t, 8> b{};
    for (int burst = 0; burst < 5; ++burst) {
        REQUIRE(rig.api().alloc_tx(b) == b.size());
        for (const buffer_t& x : b) {
            rig.build_tx(x, 7, 200);
        }
        rig.api().offer(b);
        CHECK(p.tx_burst(0, b) == b.size());
        rig.step();
        (void)p.tx_reap(0);
    }
    const auto tx = rig.far_report(7, 40);
    CHECK(tx.lost + tx.duplicates + tx.corrupt == 0);

    // RX of varied lengths: a frame spread over several buffers is dropped and counted by
    // the plugin (its MTU is 382), the rest delivered; every buffer taken is replaced.
    const std::uint32_t flow = rig.flow_for_queue(0);
    std::uint32_t got = 0;
    for (int round = 0; round < 5; ++round) {
        rig.far_send_varied(flow, 8);
        got += receive(rig, p, 8);
    }
    const npa::sim::virtio_net_queue_counters dc = rig.device().counters(0);
    CHECK(dc.rx_merged > 0);
    CHECK(dc.rx_frames == 40);
    CHECK(got == 40 - dc.rx_merged);
    CHECK(p.stats(0).rx_dropped == dc.rx_merged);
    CHECK(rig.guest_sink().report(flow, 40).corrupt == 0);
    CHECK(p.stats(0).bad_completion == 0);
    CHECK(rig.device().refused_chains() == 0);
    CHECK(rig.device_rx_posted(0) == 64);

    // With one buffer left, frames that need two: the device takes the last chain, finds it
    // short and gives it back (unpop by descriptor count), counting a drop, not a violation.
    // The flow's next frames are 544..1062 bytes (traffic_gen::varied_len of 40..54).
    const std::uint32_t small = flow + 1000; // one queue: every flow lands on it
    rig.api().set_empty_pool(true);
    rig.far_send(small, 63);
    CHECK(receive(rig, p, 63) == 63);
    REQUIRE(rig.device_rx_posted(0) == 1);
    const std::uint64_t no_desc0 = rig.device().counters(0).rx_no_desc;
    rig.far_send_varied(flow, 5);
    rig.step();
    CHECK(rig.device().counters(0).rx_no_desc == no_desc0 + 5);
    CHECK(rig.device_rx_posted(0) == 1);
    CHECK(rig.violations().empty());
    // Buffers again: the ring fills, and the chain given back is used by the next frame.
    rig.api().set_empty_pool(false);
    (void)p.rx_burst(0, std::span<buffer_t>{});
    CHECK(rig.device_rx_posted(0) == 64);
    rig.far_send(small, 8);
    CHECK(receive(rig, p, 8) == 8);
    CHECK(rig.guest_sink().report(small, 71).lost == 0);
    CHECK(p.stats(0).bad_completion == 0);
    p.detach();
    CHECK(rig.api().audit().balanced());
}

TEST_CASE("the model takes a packed ring of any size up to its maximum, a split ring a power of two") {
    // virtio 1.2 2.8: a packed ring's size need not be a power of two; a split ring's must.
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        virtio_net_packed_rig::config c;
        c.queues = 1;
        c.packed_ring = packed;
        npa::sim::virtio_net_rig rig(c); // the plain rig: RING_PACKED offered only when asked
        REQUIRE(rig.ok());
        const vio::transport& t = rig.window().transport();
        namespace st = vio::status_bit;
        t.set_status(0);
        t.set_status(st::ACKNOWLEDGE | st::DRIVER);
        t.set_driver_features(vio::feature::VERSION_1 | (packed ? vio::feature::RING_PACKED : 0));
        t.set_status(st::ACKNOWLEDGE | st::DRIVER | st::FEATURES_OK);
        REQUIRE((t.status() & st::FEATURES_OK) != 0);
        const npa::virtio_net::ring_memory m = rig.window().ring_area();
        // 100 entries: the descriptor ring (1600 bytes), then the two 4-byte event areas
        const vio::queue_setup s100{m.iova, m.iova + 1600, m.iova + 1604, 100, 0};
        CHECK(t.queue_enable(0, s100) == packed);
        const vio::queue_setup s64{m.iova + 8192, m.iova + 8192 + 1024, m.iova + 8192 + 1028, 64, 0};
        CHECK(t.queue_enable(1, packed ? s64 : vio::queue_setup{m.iova + 8192, m.iova + 9216, m.iova + 9728, 64, 0}));
        CHECK(rig.violations().empty());
        t.set_status(0);
    }
}
