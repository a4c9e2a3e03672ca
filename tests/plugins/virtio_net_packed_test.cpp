// virtio-net on packed virtqueues (VIRTIO_F_RING_PACKED) against a device played by hand:
// the test is the device, through a transport of its own and packed_device over the rings
// the plugin laid out. The ring layout the device is told (descriptor ring, driver and device
// event areas), a frame each way, and what a hostile device writes: an unknown buffer id on
// either queue, a length past the buffer, a wrong num_buffers. Each is caught, counted
// (bad_completion), nothing is delivered from it, and detach gets every buffer back.
// The real devices (DPDK's net_vhost, npa-vswitchd) are in tests/linux.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/sim/virtio_net_rig.hpp>
#include <npa/virtio/packed_ring.hpp>

#include <array>
#include <cstring>
#include <vector>

using namespace npa::sim;
namespace vn = npa::virtio_net;
namespace vio = npa::virtio;
using plugin_t = npa::virtio_net_plugin<virtio_net_rig::api_type>;
using buffer_t = virtio_net_rig::buffer_type;

namespace {

constexpr std::uint32_t ring = 64;

// The device: feature bits, status byte, the queues the plugin enabled, a config space.
struct hand_device {
    guest_memory* mem = nullptr;
    std::uint64_t offered = vio::feature::VERSION_1 | vio::feature::RING_PACKED |
                            vio::feature::IN_ORDER | vio::feature::EVENT_IDX |
                            vn::feature::MRG_RXBUF;
    std::uint64_t driver = 0;
    std::uint8_t status = 0;
    std::array<vio::queue_setup, 2> q{};
    std::array<vio::packed_device, 2> dev{};
    std::uint64_t notifies = 0;

    static hand_device& self(void* c) { return *static_cast<hand_device*>(c); }
    static constexpr vio::transport_ops ops{
        [](void* c) noexcept { return self(c).offered; },
        [](void* c, std::uint64_t f) noexcept { self(c).driver = f; },
        [](void* c) noexcept { return self(c).status; },
        [](void* c, std::uint8_t s) noexcept { self(c).status = s; },
        [](void*, std::uint16_t q) noexcept {
            return q < 2 ? std::uint16_t{256} : std::uint16_t{0};
        },
        [](void* c, std::uint16_t q, const vio::queue_setup& s) noexcept {
            hand_device& d = self(c);
            if (q >= 2) {
                return false;
            }
            d.q[q] = s;
            const vio::packed_ring r(d.mem->translate(s.desc, vio::packed_desc_bytes(s.size)),
                                     d.mem->translate(s.driver, 4), d.mem->translate(s.device, 4),
                                     s.size);
            return d.dev[q].reset(r);
        },
        [](void* c, std::uint16_t) noexcept { ++self(c).notifies; },
        [](void*, std::uint16_t, bool) noexcept {},
        [](void*, std::uint32_t off, void* out, std::uint32_t len) noexcept {
            vn::net_config nc{};
            nc.status = vn::S_LINK_UP;
            nc.max_virtqueue_pairs = 1;
            nc.mtu = 1500;
            for (std::uint32_t i = 0; i < len; ++i) {
                static_cast<std::byte*>(out)[i] =
                    off + i < sizeof nc ? reinterpret_cast<const std::byte*>(&nc)[off + i]
                                        : std::byte{0};
            }
        }};

    // Takes the next RX buffer and writes a header (num_buffers `nb`) and a frame of `len`
    // bytes into it; marks it used with `used_len` (header included) and id `id` unless
    // those are overridden (-1: the true ones).
    bool receive(std::uint32_t len, std::uint16_t nb = 1, std::int64_t used_len = -1,
                 std::int64_t id = -1) {
        vio::chain c;
        std::uint16_t descs = 0;
        std::array<vio::segment, 4> segs{};
        if (dev[0].pop(c, descs, segs, [](std::uint64_t, std::uint32_t, bool) { return true; }) !=
            vio::pop_status::ok) {
            return false;
        }
        std::byte* p = mem->translate(segs[0].addr, segs[0].len);
        vn::net_hdr_v1 h{};
        h.num_buffers = nb;
        std::memcpy(p, &h, sizeof h);
        for (std::uint32_t i = 0; i < len; ++i) {
            p[vn::HDR_LEN + i] = static_cast<std::byte>(i);
        }
        dev[0].push_used(id < 0 ? c.head : static_cast<std::uint16_t>(id),
                         used_len < 0 ? vn::HDR_LEN + len : static_cast<std::uint32_t>(used_len),
                         descs);
        return true;
    }
    // Takes the next TX buffer and marks it used (len 0) under id `id` (-1: the true one).
    bool transmit(std::int64_t id = -1) {
        vio::chain c;
        std::uint16_t descs = 0;
        std::array<vio::segment, 4> segs{};
        if (dev[1].pop(c, descs, segs, [](std::uint64_t, std::uint32_t, bool) { return true; }) !=
            vio::pop_status::ok) {
            return false;
        }
        dev[1].push_used(id < 0 ? c.head : static_cast<std::uint16_t>(id), 0, descs);
        return true;
    }
};

struct bench {
    virtio_net_rig rig;
    guest_block rings;
    hand_device d;
    vn::window win;
    plugin_t p;

    bench() : rig(config()) {
        REQUIRE(rig.ok());
        rings = rig.memory().allocate(64 * 1024);
        REQUIRE(rings);
        d.mem = &rig.memory();
        win =
            vn::window(vio::transport{&hand_device::ops, &d}, {rings.virt, rings.iova, rings.size});
        const npa::status st = p.attach(rig.api(), win, rig.queue_cfg());
        INFO(st.reason());
        REQUIRE(st);
    }
    static virtio_net_rig::config config() {
        virtio_net_rig::config c;
        c.queues = 1;
        c.tx_ring = c.rx_ring = ring;
        return c;
    }
    std::uint16_t rx() {
        std::array<buffer_t, 32> out{};
        const std::uint16_t n = p.rx_burst(0, out);
        for (std::uint16_t i = 0; i < n; ++i) {
            CHECK(out[i].length() == 60);
        }
        rig.api().received({out.data(), n});
        rig.api().free({out.data(), n});
        return n;
    }
    bool tx() {
        std::array<buffer_t, 1> b{};
        if (rig.api().alloc_tx(b) != 1) {
            return false;
        }
        b[0].set_length(60);
        std::memset(b[0].data(), 0xAB, 60);
        rig.api().offer(b);
        if (p.tx_burst(0, b) != 1) {
            rig.api().not_accepted(b);
            rig.api().free(b);
            return false;
        }
        return true;
    }
    void done() {
        p.detach();
        const std::vector<buffer_t> unsent = rig.api().take_unsent();
        rig.api().free(unsent);
        CHECK(rig.api().audit().balanced());
    }
};

} // namespace

TEST_CASE("packed rings: the layout the device is told, and a frame each way") {
    bench b;
    // RING_PACKED taken; IN_ORDER and EVENT_IDX not (the plugin's packed path takes neither).
    CHECK((b.d.driver & vio::feature::RING_PACKED) != 0);
    CHECK((b.d.driver & (vio::feature::IN_ORDER | vio::feature::EVENT_IDX)) == 0);
    CHECK((b.p.features() & vio::feature::RING_PACKED) != 0);
    for (const vio::queue_setup& s : b.d.q) {
        CHECK(s.size == ring);
        CHECK(s.desc % vio::packed_desc_align == 0);
        CHECK(s.driver == s.desc + vio::packed_desc_bytes(ring)); // the event areas behind it
        CHECK(s.device == s.driver + 4);
    }
    CHECK(b.d.q[1].desc >= b.d.q[0].device + 4); // the queues' blocks do not overlap
    // Every RX buffer posted: the device can take all of them.
    for (std::uint32_t i = 0; i < 3 * ring; ++i) { // three laps: the wrap counters flip
        REQUIRE(b.d.receive(60));
        CHECK(b.rx() == 1);
        REQUIRE(b.tx());
        REQUIRE(b.d.transmit());
        CHECK(b.p.tx_reapable(0) == 1);
        CHECK(b.p.tx_reap(0) == 1);
    }
    CHECK(b.p.stats(0).rx_packets == 3 * ring);
    CHECK(b.p.stats(0).tx_packets == 3 * ring);
    CHECK(b.p.stats(0).bad_completion == 0);
    CHECK(b.p.health() == npa::errc::ok);
    b.done();
}

TEST_CASE("packed rings: a hostile device is caught, counted, and loses no buffer") {
    SUBCASE("receiveq: an unknown buffer id") {
        bench b;
        REQUIRE(b.d.receive(60, 1, -1, 1000));
        CHECK(b.rx() == 0);
        CHECK(b.p.stats(0).bad_completion >= 1);
        CHECK(b.p.health() == npa::errc::device_error);
        b.done();
    }
    SUBCASE("receiveq: a length past the buffer") {
        bench b;
        REQUIRE(b.d.receive(60, 1, 0xFFFF));
        CHECK(b.rx() == 0);
        CHECK(b.p.stats(0).bad_completion >= 1);
        CHECK(b.p.health() == npa::errc::device_error);
        b.done();
    }
    SUBCASE("receiveq: num_buffers 0 and num_buffers past the ring") {
        for (const std::uint16_t nb : {std::uint16_t{0}, std::uint16_t{ring + 1}}) {
            bench b;
            REQUIRE(b.d.receive(60, nb));
            CHECK(b.rx() == 0);
            CHECK(b.p.stats(0).bad_completion >= 1);
            CHECK(b.p.health() == npa::errc::device_error);
            b.done();
        }
    }
    SUBCASE("transmitq: an unknown buffer id") {
        bench b;
        REQUIRE(b.tx());
        REQUIRE(b.d.transmit(ring + 5));
        CHECK(b.p.tx_reap(0) == 0);
        CHECK(b.p.stats(0).bad_completion >= 1);
        CHECK(b.p.health() == npa::errc::device_error);
        b.done(); // the frame goes back unsent
    }
    SUBCASE("transmitq: an id the driver has had back already") {
        bench b;
        REQUIRE(b.tx());
        REQUIRE(b.tx());
        vio::chain c;
        std::uint16_t descs = 0;
        std::array<vio::segment, 4> segs{};
        REQUIRE(b.d.dev[1].pop(c, descs, segs, [](std::uint64_t, std::uint32_t, bool) {
            return true;
        }) == vio::pop_status::ok);
        b.d.dev[1].push_used(c.head, 0, descs);
        b.d.dev[1].push_used(c.head, 0, descs); // the same id twice
        CHECK(b.p.tx_reap(0) == 1);
        CHECK(b.p.stats(0).bad_completion >= 1);
        CHECK(b.p.health() == npa::errc::device_error);
        b.done();
    }
}
