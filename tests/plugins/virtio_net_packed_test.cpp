// virtio-net on packed virtqueues (VIRTIO_F_RING_PACKED) against a device played by hand:
// the test is the device, through a transport of its own and packed_device over the rings
// the plugin laid out. The ring layout the device is told (descriptor ring, driver and device
// event areas), a frame each way, and what a hostile device writes: an unknown buffer id on
// either queue, a length past the buffer, a wrong num_buffers. Each is caught, counted
// (bad_completion), nothing is delivered from it, and detach gets every buffer back. The
// shell's control channel lays its controlq out packed too, and a command goes through it.
// EVENT_IDX on and off: kicks follow the device's event area, a receiveq asks for one
// interrupt per empty poll, and no used buffer is left behind by a suppressed interrupt.
// The real devices (DPDK's net_vhost, npa-vswitchd) are in tests/linux.
#include <doctest/doctest.h>

#include <npa/control/virtio_net.hpp>
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/sim/virtio_net_rig.hpp>
#include <npa/virtio/packed_device.hpp>
#include <npa/virtio/packed_ring.hpp>

#include <array>
#include <cstring>
#include <optional>
#include <span>
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
    std::array<vio::queue_setup, 3> q{}; // receiveq, transmitq, controlq (with CTRL_VQ)
    std::array<vio::packed_device, 3> dev{};
    std::uint64_t notifies = 0;
    std::array<std::uint64_t, 3> kicks{}; // notifications per queue
    // The controlq's commands as served (class, command, first data byte), and the answer.
    std::vector<std::array<std::uint8_t, 3>> commands;
    std::uint8_t answer = vn::ctrl::OK;

    static hand_device& self(void* c) { return *static_cast<hand_device*>(c); }
    static constexpr vio::transport_ops ops{
        [](void* c) noexcept { return self(c).offered; },
        [](void* c, std::uint64_t f) noexcept { self(c).driver = f; },
        [](void* c) noexcept { return self(c).status; },
        [](void* c, std::uint8_t s) noexcept { self(c).status = s; },
        [](void* c, std::uint16_t q) noexcept {
            const bool ctrl = q == 2 && (self(c).offered & vn::feature::CTRL_VQ) != 0;
            return q < 2 ? std::uint16_t{256} : ctrl ? std::uint16_t{64} : std::uint16_t{0};
        },
        [](void* c, std::uint16_t q, const vio::queue_setup& s) noexcept {
            hand_device& d = self(c);
            if (q >= 3) {
                return false;
            }
            d.q[q] = s;
            const vio::packed_ring r(d.mem->translate(s.desc, vio::packed_desc_bytes(s.size)),
                                     d.mem->translate(s.driver, 4), d.mem->translate(s.device, 4),
                                     s.size);
            return d.dev[q].reset(r, {}, false, (d.driver & vio::feature::EVENT_IDX) != 0);
        },
        [](void* c, std::uint16_t q) noexcept {
            ++self(c).notifies;
            if (q < 3) {
                ++self(c).kicks[q];
            }
        },
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
    // The control channel's wait hook: answers every command on the controlq (the header
    // and its data readable, then the one-byte answer, which gets `answer`).
    static void serve_ctrl(void* ctx) noexcept {
        hand_device& d = self(ctx);
        vio::chain c;
        std::uint16_t descs = 0;
        std::array<vio::segment, 4> segs{};
        while (d.dev[2].pop(c, descs, segs, [](std::uint64_t, std::uint32_t, bool) {
            return true;
        }) == vio::pop_status::ok) {
            const std::byte* h = d.mem->translate(segs[0].addr, segs[0].len);
            std::array<std::uint8_t, 3> cmd{};
            std::memcpy(cmd.data(), h, segs[0].len < 3 ? segs[0].len : 3);
            d.commands.push_back(cmd);
            const vio::segment& ack = segs[c.readable];
            *d.mem->translate(ack.addr, 1) = static_cast<std::byte>(d.answer);
            d.dev[2].push_used(c.head, 1, descs);
        }
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

    guest_block cmem;
    std::optional<npa::virtio_net_control> ctl;

    /// `event_idx`: the device offers VIRTIO_F_EVENT_IDX. `with_ctl`: a control channel (its
    /// memory in the rig's guest memory, the hand device its wait hook), so the device offers
    /// a controlq and the channel's hook is in the window.
    explicit bench(bool event_idx = true, bool with_ctl = false) : rig(config()) {
        REQUIRE(rig.ok());
        if (!event_idx) {
            d.offered &= ~vio::feature::EVENT_IDX;
        }
        rings = rig.memory().allocate(64 * 1024);
        REQUIRE(rings);
        d.mem = &rig.memory();
        win =
            vn::window(vio::transport{&hand_device::ops, &d}, {rings.virt, rings.iova, rings.size});
        if (with_ctl) {
            cmem = rig.memory().allocate(npa::virtio_net_control::memory_bytes);
            REQUIRE(cmem);
            ctl.emplace(vn::ring_memory{cmem.virt, cmem.iova, cmem.size}, &hand_device::serve_ctrl,
                        &d);
            d.offered |= vn::feature::CTRL_VQ | vn::feature::CTRL_RX;
            win.set_control(ctl->hook());
        }
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
    /// One rx_burst of up to 32 frames (each checked, counted and freed).
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
    /// One tx_burst of `n` frames (up to 8); true when all were accepted.
    bool tx(std::size_t n = 1) {
        std::array<buffer_t, 8> all{};
        const std::span<buffer_t> b(all.data(), n);
        if (rig.api().alloc_tx(b) != n) {
            return false;
        }
        for (buffer_t& x : b) {
            x.set_length(60);
            std::memset(x.data(), 0xAB, 60);
        }
        rig.api().offer(b);
        const std::uint16_t sent = p.tx_burst(0, b);
        if (sent != n) {
            rig.api().not_accepted(b.subspan(sent));
            rig.api().free(b.subspan(sent));
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
    // RING_PACKED, EVENT_IDX and IN_ORDER taken (a transmitq's used descriptor may then
    // stand for a batch: virtio_net_device_test and core_virtio_packed_ring).
    CHECK((b.d.driver & vio::feature::RING_PACKED) != 0);
    CHECK((b.d.driver & vio::feature::EVENT_IDX) != 0);
    CHECK((b.d.driver & vio::feature::IN_ORDER) != 0);
    CHECK((b.p.features() & vio::feature::RING_PACKED) != 0);
    for (std::size_t i = 0; i < 2; ++i) {
        const vio::queue_setup& s = b.d.q[i];
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

TEST_CASE("packed rings, EVENT_IDX on and off: kicks follow the device's area, a receiveq "
          "interrupts once per poll") {
    // The same traffic with and without EVENT_IDX offered: 8 TX bursts of 4 frames, then 48
    // rounds of an empty poll and 3 RX frames (144 buffers: past both wrap counters' flips).
    // The device asks for notifications once and then polls its rings (as the split case's
    // model leaves avail_event at 0); it takes an interrupt decision after every used buffer.
    struct counts {
        std::uint64_t tx_kicks = 0, rx_irqs = 0, received = 0;
    };
    auto run = [](bool event_idx) {
        bench b(event_idx);
        CHECK(((b.d.driver & vio::feature::EVENT_IDX) != 0) == event_idx);
        counts k{};
        CHECK_FALSE(b.d.dev[1].enable_notify(true)); // DESC at position 0 of lap 1, or ENABLE
        CHECK(b.d.dev[1].ring().device_event()->flags ==
              (event_idx ? vio::ring_event_desc : vio::ring_event_enable));
        const std::uint64_t k0 = b.d.kicks[1];
        for (int burst = 0; burst < 8; ++burst) {
            REQUIRE(b.tx(4));
            for (int i = 0; i < 4; ++i) {
                REQUIRE(b.d.transmit());
            }
            CHECK(b.p.tx_reap(0) == 4);
        }
        k.tx_kicks = b.d.kicks[1] - k0;
        constexpr int rounds = 48;
        for (int r = 0; r < rounds; ++r) {
            CHECK(b.rx() == 0); // empty: with EVENT_IDX an interrupt asked at the next buffer
            b.p.irq_arm(0);
            for (int i = 0; i < 3; ++i) {
                REQUIRE(b.d.receive(60));
                k.rx_irqs += b.d.dev[0].need_interrupt() ? 1 : 0;
            }
            const std::uint16_t got = b.rx();
            CHECK(got == 3);
            k.received += got;
            b.p.irq_disarm(0);
        }
        CHECK(b.p.stats(0).tx_packets == 32);
        CHECK(b.p.stats(0).bad_completion == 0);
        b.done();
        return k;
    };
    const counts without = run(false), with = run(true);
    CHECK(without.received == 3 * 48);
    CHECK(with.received == 3 * 48);
    // Without: ENABLE in both areas, a kick per burst and an interrupt per used buffer.
    // With: the device's off_wrap names position 0 of lap 1, which only the first publish
    // passes; the driver's names its next used position after each empty poll.
    CHECK(without.tx_kicks == 8);
    CHECK(with.tx_kicks == 1);
    CHECK(without.rx_irqs == 3 * 48);
    CHECK(with.rx_irqs == 48);
}

TEST_CASE("packed rings, EVENT_IDX: no used buffer is left behind by a suppressed interrupt") {
    bench b;
    REQUIRE((b.d.driver & vio::feature::EVENT_IDX) != 0);
    CHECK(b.rx() == 0);
    // A buffer used right after the empty poll: its interrupt is asked for, and it is taken.
    REQUIRE(b.d.receive(60));
    CHECK(b.d.dev[0].need_interrupt());
    CHECK(b.rx() == 1);
    // 40 used: one interrupt. A full burst (32) stops before the ring is empty, so nothing
    // is re-armed: the next 2 are suppressed, and the next poll takes all 10.
    for (int i = 0; i < 40; ++i) {
        REQUIRE(b.d.receive(60));
        CHECK(b.d.dev[0].need_interrupt() == (i == 0));
    }
    CHECK(b.rx() == 32);
    for (int i = 0; i < 2; ++i) {
        REQUIRE(b.d.receive(60));
        CHECK_FALSE(b.d.dev[0].need_interrupt());
    }
    CHECK(b.rx() == 10);
    // That poll ended empty and asked again: the next buffer interrupts.
    REQUIRE(b.d.receive(60));
    CHECK(b.d.dev[0].need_interrupt());
    CHECK(b.rx() == 1);
    CHECK(b.p.stats(0).rx_packets == 1 + 40 + 2 + 1);
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

TEST_CASE("packed rings: the control channel's controlq is packed too, and answers go through it") {
    namespace rx = npa::rx_mode;
    using npa::control_request;
    bench b(true, true);
    npa::virtio_net_control& ctl = *b.ctl;
    REQUIRE((b.p.features() & vn::feature::CTRL_VQ) != 0);
    REQUIRE(ctl.live());
    CHECK(ctl.queue_index() == 2);
    const vio::queue_setup& s = b.d.q[2];
    CHECK(s.size == npa::virtio_net_control_tuning::queue_size);
    CHECK(s.desc == b.cmem.iova); // the descriptor ring, then the two event areas
    CHECK(s.driver == s.desc + vio::packed_desc_bytes(s.size));
    CHECK(s.device == s.driver + 4);
    constexpr std::uint32_t normal = rx::unicast | rx::multicast | rx::broadcast;
    CHECK(ctl.submit(control_request::make_rx_mode(normal)).ok());
    REQUIRE(!b.d.commands.empty());
    CHECK(b.d.commands[0][0] == vn::ctrl::RX);
    CHECK(b.d.commands[0][1] == vn::ctrl::RX_PROMISC);
    CHECK(b.d.commands[0][2] == 0); // promiscuous off
    // More commands than the controlq has descriptors: the wrap counters flip and the
    // channel still finds each answer.
    for (int i = 0; i < 3 * npa::virtio_net_control_tuning::queue_size; ++i) {
        const std::uint32_t m = i % 2 == 0 ? normal | rx::promisc : normal;
        INFO("command " << i);
        REQUIRE(ctl.submit(control_request::make_rx_mode(m)).ok());
    }
    CHECK(b.d.commands.size() >= 1 + 3 * npa::virtio_net_control_tuning::queue_size);
    CHECK(ctl.commands_ok() == b.d.commands.size());
    // A refusal is ERR, not a device error: the queue stays live.
    b.d.answer = vn::ctrl::ERR;
    CHECK(ctl.submit(control_request::make_rx_mode(normal | rx::promisc)).code() ==
          npa::errc::refused);
    CHECK(ctl.live());
    b.done();
}
