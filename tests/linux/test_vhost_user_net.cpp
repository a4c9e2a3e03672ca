// The virtio-net plugin over vhost-user (npa/linux/vhost_user/transport.hpp) against a back
// end nobody here wrote: DPDK's net_vhost in dpdk-testpmd (NPA_TESTPMD; without it only the
// no-back-end case runs). The plugin's rings and its buffer pool live in the memfd the back
// end maps; the test drives the plugin with the sim's test_api, which knows where every
// buffer is, and reads testpmd's port counters through its telemetry socket.
//   rxonly:   npa sends 10,000 frames of 60..1514 bytes; testpmd's ipackets and ibytes match;
//             detach and attach again on the same connection, 1,000 more counted.
//   macswap:  npa's frames come back with the MACs swapped, every byte and the order checked,
//             with MRG_RXBUF and IN_ORDER and eventfds, and without either on polled rings.
//   txonly:   npa receives testpmd's frames (64-byte UDP); npa's count equals opackets.
//   packed:   rxonly, txonly and macswap again on packed rings (net_config::packed_ring),
//             MRG_RXBUF on and off, EVENT_IDX negotiated; GET_VRING_BASE's answer read with
//             the wrap counter.
//   killed:   testpmd killed mid-stream: nothing hangs, health() says removed, detach hands
//             every buffer back.
//   two pairs: net_vhost with queues=2, testpmd macswap on two queues: 4,000 frames on each
//             pair come back on that pair, whole and in order; testpmd's rx_qN/tx_qN and the
//             plugin's per-queue counters each count 4,000.
//   shell:    npa::shell with two queues over one virtio-net path on the same port: what
//             shell queue q sends arrives on testpmd's queue q and comes back on shell queue q.
// Without testpmd: the multi-queue negotiation against npa's own back end (back_end.hpp),
// whose queue count and features are set exactly: MQ and GET_QUEUE_NUM taken, every ring of
// the asked pairs enabled; fewer pairs, no MQ, MQ without the protocol feature refused
// before any ring is handed over; more pairs than the plugin takes clamped and said.
// This file: the cases without testpmd. test_vhost_user_net_testpmd.cpp: one queue pair
// (rxonly, macswap, txonly, packed, killed). test_vhost_user_net_queues.cpp: two pairs, the
// shell's two queues and the controlq. One program: linux_vhost_user_net.
#include <doctest/doctest.h>

#include "vhost_user_net_rig.hpp"

#include <npa/control/virtio_net.hpp>
#include <npa/linux/vhost_user/back_end.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace npa::test::vhost_net;

static_assert(npa::check_plugin<plugin_t, api_t>());

TEST_CASE("vhost-user transport: no back end reads as removed, and attach says so") {
    vu::net_config c;
    c.socket = "/tmp/npa-no-such-vhost.sock";
    port p(c);
    CHECK(p.dev.connect().code() == npa::errc::removed);
    CHECK_FALSE(p.dev.window().present());
    const npa::status st = p.plugin.attach(*p.api, p.dev.window(), one_pair());
    CHECK(st.code() == npa::errc::removed);
    CHECK(p.api->audit().balanced());
    // The pool's device addresses are the front end's addresses inside the memfd.
    CHECK(p.dev.pool_memory().iova_base() ==
          reinterpret_cast<std::uintptr_t>(p.dev.pool_memory().base()));
    CHECK(p.dev.pool_memory().base() == p.dev.memory().base() + c.ring_bytes);
}

namespace {

// npa's own back end (back_end.hpp) with `pairs` queue pairs, served from a thread: what a
// vhost-user back end tells a front end about its queues, played exactly.
struct served_back_end {
    std::string dir, sock;
    vu::back_end be;
    std::atomic<bool> stop{false};
    std::thread t;

    served_back_end(std::uint32_t pairs, bool mq, bool protocol_mq) : be(pairs) {
        char tmpl[] = "/tmp/npa-vun-mq-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        sock = dir + "/be.sock";
        // back_end offers MQ with more than one pair; a back end without it, made here
        be.offered = mq ? be.offered | npa::virtio_net::feature::MQ : be.offered & ~npa::virtio_net::feature::MQ;
        be.offered &= ~npa::virtio::feature::RING_PACKED; // the plugin takes split rings
        if (!protocol_mq) {
            be.offered_protocol &= ~vu::protocol::mq;
        }
        REQUIRE(be.listen(sock));
    }
    void serve() {
        stop = false;
        t = std::thread([this] {
            while (!stop.load()) {
                (void)be.service();
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        });
    }
    void halt() {
        stop = true;
        if (t.joinable()) {
            t.join();
        }
    }
    ~served_back_end() {
        halt();
        ::unlink(sock.c_str());
        ::rmdir(dir.c_str());
    }
};

npa::queue_config pairs_of(std::uint16_t n, std::uint32_t ring = 256) {
    npa::queue_config qc = one_pair(ring);
    qc.queues = n;
    return qc;
}

// A back end with `pairs` pairs (MQ and the MQ protocol feature as asked), and the plugin
// attached over the transport asking for `asked` pairs. The port goes first (its detach
// needs the back end's answers).
struct mq_rig {
    served_back_end b;
    std::optional<port> p;
    npa::status attached;

    mq_rig(std::uint32_t pairs, bool mq, bool protocol_mq, std::uint16_t asked, std::uint32_t ring = 256,
           std::uint64_t features_mask = ~0ull, bool control_queue = true)
        : b(pairs, mq, protocol_mq) {
        b.serve();
        vu::net_config c;
        c.socket = b.sock;
        c.features_mask = features_mask;
        c.control_queue = control_queue; // MQ needs the controlq (5.1.3.1)
        p.emplace(c);
        REQUIRE(p->dev.connect());
        attach(asked, ring);
    }
    void attach(std::uint16_t asked, std::uint32_t ring = 256) {
        attached = p->plugin.attach(*p->api, p->dev.window(), pairs_of(asked, ring));
    }
    // Whether the back end's ring i was handed over and enabled (SET_VRING_ENABLE 1), and how
    // many were; read with its thread stopped.
    std::uint32_t rings_ready(std::uint32_t* upto = nullptr) {
        b.halt();
        std::uint32_t n = 0, lead = 0;
        bool gap = false;
        for (const vu::vring& r : b.be.rings()) {
            n += r.ready() ? 1 : 0;
            gap = gap || !r.ready();
            lead += gap ? 0 : 1; // rings 0..lead-1 all ready
        }
        if (upto != nullptr) {
            *upto = lead;
        }
        b.serve();
        return n;
    }
    [[nodiscard]] std::string reason() const {
        return std::string(attached.reason()) + " / " + p->dev.last_error();
    }
};

} // namespace

TEST_CASE("vhost-user transport, multi-queue: negotiation against a back end's queue count") {
    SUBCASE("4 pairs offered, 2 asked: MQ both ways, GET_QUEUE_NUM read, rings 0-3 enabled") {
        mq_rig r(4, true, true, 2);
        INFO(r.reason());
        REQUIRE(r.attached);
        CHECK((r.p->plugin.features() & npa::virtio_net::feature::MQ) != 0);
        CHECK((r.p->dev.session().protocol_features() & vu::protocol::mq) != 0);
        CHECK(r.p->dev.back_end_queue_pairs() == 4);
        CHECK(r.p->dev.queue_pairs() == 4);
        CHECK(r.p->plugin.capabilities().max_queues == 4);
        CHECK(std::string(r.p->dev.note()).empty());
        std::uint32_t upto = 0;
        CHECK(r.rings_ready(&upto) == 4);
        CHECK(upto == 4); // rings 0-3: receiveq and transmitq of pairs 0 and 1
        CHECK(r.b.be.has(npa::virtio_net::feature::MQ));
        r.p->plugin.detach(); // GET_VRING_BASE on all four rings, answered
        CHECK(r.p->api->audit().balanced());
    }
    SUBCASE("1 pair offered, 2 asked: refused before any ring; 1 pair then attaches") {
        mq_rig r(1, true, true, 2);
        CHECK(r.attached.code() == npa::errc::invalid_argument);
        CHECK(r.reason().find("more queue pairs asked than the device has") != std::string::npos);
        CHECK(r.p->dev.back_end_queue_pairs() == 1);
        CHECK(r.p->api->audit().balanced());
        CHECK(r.p->api->audit().with_plugin == 0);
        CHECK(r.rings_ready() == 0);
        CHECK(r.b.be.protocol_errors() == 0);
        r.attach(1);
        REQUIRE(r.attached);
        CHECK((r.p->plugin.features() & npa::virtio_net::feature::MQ) == 0); // not asked for
        CHECK(r.rings_ready() == 2);
        r.p->plugin.detach();
        CHECK(r.p->api->audit().balanced());
    }
    SUBCASE("a back end without VIRTIO_NET_F_MQ: 2 pairs refused") {
        mq_rig r(2, false, true, 2);
        CHECK(r.attached.code() == npa::errc::invalid_argument);
        CHECK(r.reason().find("without MQ") != std::string::npos);
        CHECK(r.p->dev.back_end_queue_pairs() == 0); // never asked: MQ not offered
        CHECK(r.p->api->audit().balanced());
        CHECK(r.rings_ready() == 0);
    }
    SUBCASE("VIRTIO_NET_F_MQ without the MQ protocol feature: one pair, said why, 2 refused") {
        mq_rig r(2, true, false, 2);
        CHECK(r.attached.code() == npa::errc::invalid_argument);
        CHECK(r.reason().find("without MQ") != std::string::npos);
        CHECK(std::string(r.p->dev.note()).find("without the MQ protocol feature") != std::string::npos);
        CHECK(r.p->dev.queue_pairs() == 1);
        CHECK(r.rings_ready() == 0);
    }
    SUBCASE("no controlq served: MQ not offered (5.1.3.1), said why; 2 refused, 1 attaches") {
        mq_rig r(4, true, true, 2, 256, ~0ull, /*control_queue=*/false);
        CHECK(r.attached.code() == npa::errc::invalid_argument);
        CHECK(std::string(r.p->dev.note()).find("needs the control queue") != std::string::npos);
        CHECK(r.p->dev.back_end_queue_pairs() == 0); // not asked
        CHECK(r.p->dev.queue_pairs() == 1);
        CHECK(r.rings_ready() == 0);
        r.attach(1);
        INFO(r.reason());
        REQUIRE(r.attached);
        CHECK((r.p->plugin.features() & npa::virtio_net::feature::MQ) == 0);
        CHECK(r.rings_ready() == 2);
        r.p->plugin.detach();
        CHECK(r.p->api->audit().balanced());
    }
    SUBCASE("a driver taking MQ without CTRL_VQ is refused FEATURES_OK") {
        mq_rig r(4, true, true, 1);
        REQUIRE(r.attached);
        r.p->plugin.detach();
        const npa::virtio::transport& t = r.p->dev.window().transport();
        namespace st = npa::virtio::status_bit;
        t.set_status(0);
        t.set_status(st::ACKNOWLEDGE | st::DRIVER);
        t.set_driver_features(npa::virtio::feature::VERSION_1 | npa::virtio_net::feature::MQ);
        t.set_status(st::ACKNOWLEDGE | st::DRIVER | st::FEATURES_OK);
        CHECK((t.status() & st::FEATURES_OK) == 0);
        CHECK(std::string(r.p->dev.last_error()).find("without CTRL_VQ") != std::string::npos);
        t.set_status(0);
    }
    SUBCASE("MQ masked off by the caller: GET_QUEUE_NUM is never asked, one pair attaches") {
        mq_rig r(4, true, true, 1, 256, ~npa::virtio_net::feature::MQ);
        INFO(r.reason());
        REQUIRE(r.attached);
        CHECK(r.p->dev.back_end_queue_pairs() == 0); // not asked
        CHECK(r.p->dev.queue_pairs() == 1);
        CHECK((r.p->plugin.features() & npa::virtio_net::feature::MQ) == 0);
        CHECK(r.rings_ready() == 2);
        r.p->plugin.detach();
        CHECK(r.p->api->audit().balanced());
    }
    SUBCASE("more pairs than the plugin takes: clamped to 8, and the note says so") {
        mq_rig r(16, true, true, 8, 64);
        INFO(r.reason());
        REQUIRE(r.attached);
        CHECK(r.p->dev.back_end_queue_pairs() == 16);
        CHECK(r.p->dev.queue_pairs() == 8);
        CHECK(std::string(r.p->dev.note()).find("16 queue pairs") != std::string::npos);
        std::uint32_t upto = 0;
        CHECK(r.rings_ready(&upto) == 16);
        CHECK(upto == 16);
    }
}

TEST_CASE("vhost-user transport, the controlq served in the front end: every command checked, "
          "VQ_PAIRS_SET enabling and disabling the back end's rings (npa's back end, 4 pairs)") {
    namespace vf = npa::virtio_net::feature;
    namespace vc = npa::virtio_net::ctrl;
    served_back_end b(4, true, true);
    b.serve();
    vu::net_config c;
    c.socket = b.sock;
    c.control_queue = true;
    vu::net_device dev{10000};
    REQUIRE(dev.create(c));
    REQUIRE(dev.connect());
    const npa::virtio::transport& t = dev.window().transport();
    const std::uint64_t own = vf::CTRL_VQ | vf::CTRL_RX | vf::CTRL_VLAN | vf::CTRL_MAC_ADDR;
    REQUIRE((t.device_features() & own) == own);
    const std::uint64_t f = npa::virtio::feature::VERSION_1 | vf::MQ | own;
    t.set_driver_features(f);
    t.set_status(npa::virtio::status_bit::ACKNOWLEDGE | npa::virtio::status_bit::DRIVER |
                 npa::virtio::status_bit::FEATURES_OK);
    REQUIRE((t.status() & npa::virtio::status_bit::FEATURES_OK) != 0);
    CHECK((dev.session().features() & own) == 0); // the back end is not told
    // The four pairs' rings, 4 KiB apart in the ring area; then the controlq (index 8).
    const npa::virtio_net::ring_memory area = dev.window().ring_area();
    constexpr std::uint16_t n = 64;
    const npa::virtio::split_layout l = npa::virtio::layout_of(n);
    for (std::uint16_t q = 0; q < 8; ++q) {
        const npa::iova_t at = area.iova + q * 4096u;
        REQUIRE(t.queue_enable(q, {at + l.desc, at + l.avail, at + l.used, n, 0}));
    }
    const auto rings_on = [&] {
        b.halt();
        std::uint32_t k = 0;
        for (const vu::vring& r : b.be.rings()) {
            k += r.enabled ? 1 : 0;
        }
        b.serve();
        return k;
    };
    CHECK(rings_on() == 2); // pair 0 only, until VQ_PAIRS_SET
    const npa::virtio_net::ring_memory cm = dev.control_memory();
    constexpr std::uint16_t cn = 16;
    CHECK(t.queue_max(8) >= cn);
    CHECK(t.queue_max(9) == 0);
    const npa::virtio::split_layout cl = npa::virtio::layout_of(cn);
    // A controlq outside control_memory() is refused.
    CHECK_FALSE(t.queue_enable(8, {area.iova + cl.desc, area.iova + cl.avail, area.iova + cl.used, cn, 0}));
    REQUIRE(t.queue_enable(8, {cm.iova + cl.desc, cm.iova + cl.avail, cm.iova + cl.used, cn, 0}));
    std::vector<std::uint16_t> state(npa::virtio::split_driver::state_words(cn));
    npa::virtio::split_driver drv;
    REQUIRE(drv.reset(npa::virtio::split_ring::in_block(cm.virt, cn), state, false));
    // A command: header and data at 4096, the answer byte at 6144.
    std::byte* cmd = cm.virt + 4096;
    std::byte* ack = cm.virt + 6144;
    const auto run = [&](std::initializer_list<std::uint8_t> bytes, bool answer = true,
                         std::uint64_t addr = 0) -> int {
        std::size_t k = 0;
        for (const std::uint8_t v : bytes) {
            cmd[k++] = std::byte{v};
        }
        *ack = std::byte{0xEE};
        const npa::virtio::segment seg[2] = {{addr != 0 ? addr : cm.iova + 4096, static_cast<std::uint32_t>(k), false},
                                             {cm.iova + 6144, 1, true}};
        if (drv.add(std::span(seg, answer ? 2 : 1)) < 0) {
            return -2;
        }
        (void)drv.publish();
        t.notify(8);
        npa::virtio::used_chain u;
        if (drv.poll_used(u) != npa::virtio::used_status::ok) {
            return -3;
        }
        return u.len == 1 ? static_cast<int>(*ack) : -1; // -1: used with nothing written
    };
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 3, 0}) == vc::OK);
    CHECK(dev.controlq().pairs == 3);
    CHECK(rings_on() == 6);
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 1, 0}) == vc::OK);
    CHECK(rings_on() == 2); // disabled again
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 4, 0}) == vc::OK);
    CHECK(rings_on() == 8);
    // Refused, each answered ERR and changing nothing:
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 0, 0}) == vc::ERR);  // no pairs
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 5, 0}) == vc::ERR);  // more than the device has
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 2}) == vc::ERR);     // data short
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 2, 0, 0}) == vc::ERR); // data long
    CHECK(run({vc::MQ}) == vc::ERR);                                // header short
    CHECK(run({9, 0, 1}) == vc::ERR);                               // no such class
    CHECK(run({vc::RX, vc::RX_NOUNI, 1}) == vc::ERR);               // CTRL_RX_EXTRA not offered
    CHECK(run({vc::RX, vc::RX_PROMISC, 2}) == vc::ERR);             // neither on nor off
    CHECK(run({vc::VLAN, vc::VLAN_ADD, 0x88, 0x13}) == vc::ERR);    // VLAN 5000
    CHECK(run({vc::MAC, vc::MAC_ADDR_SET, 2, 0, 0, 0, 1}) == vc::ERR); // five bytes
    CHECK(run({vc::MAC, vc::MAC_TABLE_SET, 1, 0, 0, 0}) == vc::ERR); // an entry the data lacks
    CHECK(run({vc::MAC, vc::MAC_TABLE_SET, 0, 0, 0, 0, 0, 0, 0, 0, 9}) == vc::ERR); // a byte over
    CHECK(dev.controlq().pairs == 4);
    CHECK(rings_on() == 8);
    CHECK(dev.controlq().err == 12);
    // Served:
    CHECK(run({vc::RX, vc::RX_PROMISC, 0}) == vc::OK);
    CHECK_FALSE(dev.controlq().promisc);
    CHECK(run({vc::MAC, vc::MAC_ADDR_SET, 2, 0, 0, 0, 1, 2}) == vc::OK);
    CHECK(dev.controlq().mac == std::array<std::uint8_t, 6>{2, 0, 0, 0, 1, 2});
    CHECK(run({vc::MAC, vc::MAC_TABLE_SET, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0x5e, 0, 0, 1}) == vc::OK);
    CHECK(dev.controlq().mc_entries == 1);
    CHECK(run({vc::VLAN, vc::VLAN_ADD, 0xFF, 0x0F}) == vc::OK); // 4095
    CHECK(dev.controlq().vlan(4095));
    // No answer byte: used, nothing written, nothing done; a buffer outside
    // control_memory(): refused by the walk, used unanswered.
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 1, 0}, false) == -1);
    CHECK(dev.controlq().pairs == 4);
    CHECK(run({vc::MQ, vc::MQ_VQ_PAIRS_SET, 1, 0}, true, area.iova) == -1);
    CHECK(dev.controlq().refused == 1);
    CHECK(dev.controlq().pairs == 4);
    CHECK(rings_on() == 8);
    CHECK(dev.controlq().ok == 7);
    t.set_status(0); // reset: every ring handed over stopped, the controlq gone
    CHECK(b.be.protocol_errors() == 0);
}

TEST_CASE("vhost-user back end: before GET_VRING_BASE stops a ring, its owner walks what is still "
          "available on it") {
    mq_rig r(1, false, true, 1);
    INFO(r.reason());
    REQUIRE(r.attached);
    // The back end serves only its control path here: what the front end sends stays in
    // the transmitq until the hook walks it.
    std::atomic<unsigned> stopped{0}, taken{0};
    r.b.halt();
    r.b.be.before_ring_stop = [&](std::uint32_t ring) {
        stopped |= 1u << ring;
        if (ring != 1) {
            return;
        }
        vu::vring& q = r.b.be.rings()[1];
        std::array<std::byte, 2048> scratch{};
        vu::io_stats st;
        for (bool more = true; more;) {
            const vu::tx_frame f = vu::take_frame_in_place(q, r.b.be.memory(), r.b.be.hdr_len(),
                                                           scratch, st, more);
            taken += f.len != 0 ? 1 : 0;
        }
        q.dev.publish_used();
    };
    r.b.serve();
    REQUIRE(r.p->send(0, 10) == 10);
    r.p->plugin.detach(); // GET_VRING_BASE on the receiveq and the transmitq
    CHECK(stopped.load() == 3u);
    CHECK(taken.load() == 10u);
    CHECK(r.p->api->audit().balanced());
}

#ifndef NPA_TESTPMD
TEST_CASE("virtio-net over vhost-user against DPDK's net_vhost" * doctest::skip(true)) {
    MESSAGE("dpdk-testpmd not found at configure time: the testpmd cases are not built");
}
#endif
