// virtio-net's control virtqueue: the shell's control channel (npa/control/virtio_net.hpp)
// against the sim device model, whose receive filter applies what the commands set
// (QEMU's receive_filter order): frames the filter refuses are not received. A device
// that refuses, never answers, answers garbage or writes out of bounds is an error with a
// sentence, not a hang; a failed batch is rolled back; MQ's VQ_PAIRS_SET; and the shell
// replaying its control state onto the virtio-net path at a switch.
#include <doctest/doctest.h>

#include <npa/control/virtio_net.hpp>
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/shell.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/virtio_net_rig.hpp>

#include "../support/simnic_virtio_bench.hpp"

#include <array>
#include <cstring>
#include <string>

using namespace npa::sim;
namespace vn = npa::virtio_net;
using plugin_t = npa::virtio_net_plugin<virtio_net_rig::api_type>;
using buffer_t = virtio_net_rig::buffer_type;
using npa::control_request;
using npa::errc;

namespace {

constexpr npa::mac_addr other_mac{0x02, 0, 0, 0, 0, 0x77};
constexpr npa::mac_addr new_mac{0x02, 0, 0, 0, 0, 0x55};
constexpr npa::mac_addr mcast_a{0x01, 0, 0x5e, 0, 0, 0x01};
constexpr npa::mac_addr mcast_b{0x01, 0, 0x5e, 0, 0, 0x02};
constexpr npa::mac_addr bcast{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
constexpr std::uint32_t normal_mode = npa::rx_mode::unicast | npa::rx_mode::multicast | npa::rx_mode::broadcast;

void step_device(void* ctx) noexcept { static_cast<virtio_net_device*>(ctx)->step(); }

// A rig, the shell-side control channel in guest memory of its own, the plugin attached.
struct bench {
    virtio_net_rig rig;
    guest_block cmem;
    npa::virtio_net_control ctl;
    plugin_t p;

    explicit bench(std::uint16_t queues = 1, std::uint64_t features = 0)
        : rig(config(queues, features)), cmem(rig.memory().allocate(npa::virtio_net_control::memory_bytes)),
          ctl({cmem.virt, cmem.iova, cmem.size}, &step_device, &rig.device()) {
        rig.window().set_control(ctl.hook());
    }
    static virtio_net_rig::config config(std::uint16_t queues, std::uint64_t features) {
        virtio_net_rig::config c;
        c.queues = queues;
        c.tx_ring = c.rx_ring = 64;
        c.features = features;
        return c;
    }
    npa::status attach() { return p.attach(rig.api(), rig.window(), rig.queue_cfg()); }

    // A frame from the wire to `dst` (with an 802.1Q tag when vid >= 0): whether the plugin
    // received it on any queue.
    bool delivered(const npa::mac_addr& dst, int vid = -1) {
        frame f;
        std::memcpy(f.data.data(), dst.data(), 6);
        std::memcpy(f.data.data() + 6, virtio_net_rig::far_mac.data(), 6);
        std::size_t at = 12;
        if (vid >= 0) {
            f.data[12] = std::byte{0x81};
            f.data[13] = std::byte{0x00};
            f.data[14] = static_cast<std::byte>(vid >> 8);
            f.data[15] = static_cast<std::byte>(vid & 0xFF);
            at = 16;
        }
        f.data[at] = std::byte{0x88};
        f.data[at + 1] = std::byte{0xB5}; // local experimental EtherType
        f.len = 64;
        rig.device().frame_in(f);
        std::uint32_t got = 0;
        std::array<buffer_t, 8> out{};
        for (int round = 0; round < 4; ++round) {
            rig.step();
            for (std::uint16_t q = 0; q < rig.cfg().queues; ++q) {
                const std::uint16_t n = p.rx_burst(q, out);
                rig.api().free({out.data(), n});
                got += n;
            }
        }
        return got == 1;
    }
};

control_request mcast_list(std::initializer_list<npa::mac_addr> l) {
    control_request r;
    r.op = npa::control_op::set_mcast_list;
    for (const npa::mac_addr& m : l) {
        r.mcast[r.mcast_count++] = m;
    }
    return r;
}

} // namespace

TEST_CASE("the control channel negotiates the controlq through the plugin, which sends nothing on it") {
    bench b;
    CHECK(b.ctl.submit(control_request::make_rx_mode(normal_mode)).code() == errc::bad_state);
    REQUIRE(b.attach().ok());
    const std::uint64_t f = b.rig.device().driver_features();
    CHECK((f & vn::feature::CTRL_VQ) != 0);
    CHECK((f & vn::feature::CTRL_RX) != 0);
    CHECK((f & vn::feature::CTRL_VLAN) != 0);
    CHECK((f & vn::feature::CTRL_MAC_ADDR) != 0);
    CHECK(b.ctl.live());
    CHECK(b.ctl.queue_index() == vn::ctrlq_index(false, 4)); // no MQ with one pair: queue 2
    CHECK(b.rig.device().ctrl_commands() == 0);
    b.p.detach();
    CHECK_FALSE(b.ctl.live());
    CHECK(b.ctl.submit(control_request::make_rx_mode(normal_mode)).code() == errc::bad_state);

    // A window without a control channel: no CTRL_VQ, the device stays promiscuous.
    virtio_net_rig plain(bench::config(1, 0));
    plugin_t p;
    REQUIRE(p.attach(plain.api(), plain.window(), plain.queue_cfg()).ok());
    CHECK((plain.device().driver_features() & vn::feature::CTRL_VQ) == 0);
    CHECK(plain.device().promiscuous());
    p.detach();
}

TEST_CASE("the device's filter applies what the channel sends: RX mode, MAC, multicast list, VLANs") {
    bench b;
    REQUIRE(b.attach().ok());
    // After its reset the device is promiscuous (QEMU's virtio_net_reset).
    CHECK(b.rig.device().promiscuous());
    CHECK(b.delivered(other_mac));

    REQUIRE(b.ctl.submit(control_request::make_rx_mode(normal_mode)).ok());
    CHECK_FALSE(b.rig.device().promiscuous());
    CHECK_FALSE(b.delivered(other_mac));
    CHECK(b.rig.device().rx_filtered() == 1);
    CHECK(b.delivered(virtio_net_rig::guest_mac));
    CHECK(b.delivered(bcast));

    SUBCASE("MAC") {
        REQUIRE(b.ctl.submit(control_request::make_set_mac(new_mac)).ok());
        CHECK(b.delivered(new_mac));
        CHECK_FALSE(b.delivered(virtio_net_rig::guest_mac));
        CHECK(b.ctl.submit(control_request::make_set_mac(mcast_a)).code() == errc::invalid_argument);
    }
    SUBCASE("multicast list and all-multicast") {
        CHECK_FALSE(b.delivered(mcast_a));
        REQUIRE(b.ctl.submit(mcast_list({mcast_a})).ok());
        CHECK(b.delivered(mcast_a));
        CHECK_FALSE(b.delivered(mcast_b));
        REQUIRE(b.ctl.submit(control_request::make_rx_mode(normal_mode | npa::rx_mode::all_multi)).ok());
        CHECK(b.delivered(mcast_b));
        REQUIRE(b.ctl.submit(control_request::make_rx_mode(npa::rx_mode::unicast)).ok()); // NOMULTI, NOBCAST
        CHECK_FALSE(b.delivered(mcast_a));
        CHECK_FALSE(b.delivered(bcast));
        CHECK(b.delivered(virtio_net_rig::guest_mac));
    }
    SUBCASE("VLAN filter") {
        // QEMU 10.0.2's table starts with every VLAN allowed (docs/real-devices.md).
        CHECK(b.delivered(virtio_net_rig::guest_mac, 100));
        REQUIRE(b.ctl.submit(control_request::make_vlan(true, 100)).ok());
        CHECK(b.delivered(virtio_net_rig::guest_mac, 100));
        REQUIRE(b.ctl.submit(control_request::make_vlan(false, 100)).ok());
        CHECK_FALSE(b.delivered(virtio_net_rig::guest_mac, 100));
        CHECK(b.delivered(virtio_net_rig::guest_mac, 101));
        CHECK_FALSE(b.delivered(other_mac, 101)); // still the MAC filter behind it
        CHECK(b.ctl.submit(control_request::make_vlan(true, 4096)).code() == errc::invalid_argument);
    }
    SUBCASE("promiscuous again") {
        REQUIRE(b.ctl.submit(control_request::make_rx_mode(normal_mode | npa::rx_mode::promisc)).ok());
        CHECK(b.delivered(other_mac));
        CHECK(b.delivered(other_mac, 7));
    }
    CHECK(b.rig.device().ctrl_errors() == 0);
    CHECK(b.rig.device().violations().empty());
    b.p.detach();
}

TEST_CASE("a device without a command's feature: not_supported, nothing sent") {
    const std::uint64_t f = virtio_net_device_config{}.features &
                            ~(vn::feature::CTRL_VLAN | vn::feature::CTRL_MAC_ADDR | vn::feature::CTRL_RX_EXTRA);
    bench b(1, f);
    REQUIRE(b.attach().ok());
    CHECK(b.ctl.submit(control_request::make_vlan(true, 5)).code() == errc::not_supported);
    CHECK(b.ctl.submit(control_request::make_set_mac(new_mac)).code() == errc::not_supported);
    CHECK(b.ctl.submit(control_request::make_rx_mode(npa::rx_mode::unicast)).code() == errc::not_supported);
    CHECK(b.rig.device().ctrl_commands() == 0);
    // Without CTRL_VLAN the device filters no VLAN.
    REQUIRE(b.ctl.submit(control_request::make_rx_mode(normal_mode)).ok());
    CHECK(b.delivered(virtio_net_rig::guest_mac, 5));
    b.p.detach();
}

TEST_CASE("a refused command changes nothing, and a failed batch is rolled back") {
    bench b;
    REQUIRE(b.attach().ok());
    b.rig.device().set_ctrl_fault(ctrl_fault::refuse);
    const npa::status st = b.ctl.submit(control_request::make_vlan(true, 10));
    CHECK(st.code() == errc::refused);
    CHECK(std::string(st.reason()).find("VLAN") != std::string::npos);
    CHECK(b.ctl.live()); // a refusal is an answer: the queue goes on

    // PROMISC off, VLAN 10 deleted, then the MAC refused: the first two are undone.
    const control_request batch[] = {control_request::make_rx_mode(normal_mode),
                                     control_request::make_vlan(false, 10),
                                     control_request::make_set_mac(new_mac)};
    b.rig.device().set_ctrl_fault(ctrl_fault::refuse, 1, 2);
    CHECK(b.ctl.submit_batch(batch).code() == errc::refused);
    CHECK(b.rig.device().promiscuous());
    REQUIRE(b.ctl.submit(control_request::make_rx_mode(normal_mode)).ok());
    CHECK(b.delivered(virtio_net_rig::guest_mac, 10));       // VLAN 10 was added back
    CHECK(b.delivered(virtio_net_rig::guest_mac));           // the MAC is the old one
    CHECK_FALSE(b.delivered(new_mac));
    REQUIRE(b.ctl.submit_batch(batch).ok());
    CHECK(b.delivered(new_mac));
    CHECK_FALSE(b.delivered(new_mac, 10));
    b.p.detach();
}

TEST_CASE("a hostile controlq: no answer, garbage, an id or a length out of bounds are errors, never hangs") {
    struct kase {
        ctrl_fault f;
        errc want;
        const char* words;
    };
    const kase cases[] = {{ctrl_fault::no_answer, errc::timeout, "did not answer"},
                          {ctrl_fault::garbage, errc::device_error, "neither OK nor ERR"},
                          {ctrl_fault::bad_id, errc::device_error, "names no command"},
                          {ctrl_fault::long_len, errc::device_error, "past the one-byte answer"}};
    for (const kase& k : cases) {
        CAPTURE(static_cast<int>(k.f));
        bench b;
        REQUIRE(b.attach().ok());
        b.rig.device().set_ctrl_fault(k.f);
        const npa::status st = b.ctl.submit(control_request::make_rx_mode(normal_mode));
        CHECK(st.code() == k.want);
        CHECK(std::string(st.reason()).find(k.words) != std::string::npos);
        CHECK_FALSE(b.ctl.live());
        // The queue takes nothing more: the command's buffers may still be the device's.
        CHECK(b.ctl.submit(control_request::make_vlan(true, 3)).code() == errc::device_error);
        // The next attach resets the device and sets the controlq up afresh.
        b.p.detach();
        REQUIRE(b.attach().ok());
        CHECK(b.ctl.live());
        REQUIRE(b.ctl.submit(control_request::make_rx_mode(normal_mode)).ok());
        CHECK_FALSE(b.delivered(other_mac));
        b.p.detach();
    }
}

TEST_CASE("a driver's command without header or answer byte: the device refuses the chain") {
    bench b;
    REQUIRE(b.attach().ok());
    // Write a one-descriptor, read-only, one-byte chain on the controlq by hand.
    const npa::virtio::split_layout l = npa::virtio::layout_of(npa::virtio_net_control_tuning::queue_size);
    auto ring = npa::virtio::split_ring::in_block(b.cmem.virt, npa::virtio_net_control_tuning::queue_size);
    (void)l;
    ring.desc()[0].addr = b.cmem.iova + 2048;
    ring.desc()[0].len = 1;
    ring.desc()[0].flags = 0;
    ring.avail_ring(0) = 0;
    ring.avail()->idx.store(1, std::memory_order_release);
    b.rig.step();
    CHECK(b.rig.device().violations().size() == 1);
    CHECK((b.rig.device().status_byte() & npa::virtio::status_bit::DEVICE_NEEDS_RESET) != 0);
    b.p.detach();
}

TEST_CASE("MQ: VQ_PAIRS_SET goes at attach, after DRIVER_OK and before a buffer is posted (5.1.6.5.5)") {
    bench b(2);
    REQUIRE(b.attach().ok());
    CHECK((b.rig.device().driver_features() & vn::feature::MQ) != 0);
    CHECK((b.rig.device().driver_features() & vn::feature::CTRL_VQ) != 0);
    CHECK(b.ctl.queue_index() == vn::ctrlq_index(true, 4));
    // The device runs both pairs before any request of the shell's.
    CHECK(b.rig.device().queue_pairs_in_use() == 2);
    CHECK(b.rig.device().ctrl_commands() == 1);
    CHECK(b.ctl.commands_ok() == 1);
    REQUIRE(b.ctl.submit_batch({}).ok());
    CHECK(b.rig.device().ctrl_commands() == 1); // nothing owed any more
    // Frames land on both pairs.
    const std::uint32_t f0 = b.rig.flow_for_queue(0), f1 = b.rig.flow_for_queue(1);
    b.rig.far_send(f0, 20);
    b.rig.far_send(f1, 20);
    std::array<std::uint32_t, 2> got{};
    std::array<buffer_t, 32> out{};
    for (int round = 0; round < 20; ++round) {
        b.rig.step();
        for (std::uint16_t q = 0; q < 2; ++q) {
            const std::uint16_t n = b.p.rx_burst(q, out);
            b.rig.api().received({out.data(), n});
            b.rig.api().free({out.data(), n});
            got[q] += n;
        }
    }
    CHECK(got[0] == 20);
    CHECK(got[1] == 20);
    b.p.detach();
    CHECK(b.rig.api().audit().balanced());
}

TEST_CASE("MQ only with CTRL_VQ (5.1.3.1): without a controlq more than one pair is refused") {
    SUBCASE("the device offers both, the window has no control channel") {
        bench b(2);
        b.rig.window().set_control(nullptr);
        const npa::status st = b.attach();
        CHECK(st.code() == errc::invalid_argument);
        CHECK(std::string(st.reason()).find("CTRL_VQ") != std::string::npos);
        CHECK((b.rig.device().status_byte() & npa::virtio::status_bit::FAILED) != 0);
        CHECK((b.rig.device().status_byte() & npa::virtio::status_bit::FEATURES_OK) == 0);
        CHECK(b.rig.api().audit().balanced());
    }
    SUBCASE("the device offers MQ without CTRL_VQ: two pairs refused, one pair without MQ") {
        const std::uint64_t no_cvq = virtio_net_device_config{}.features &
                                     ~(vn::feature::CTRL_VQ | vn::feature::CTRL_RX | vn::feature::CTRL_RX_EXTRA |
                                       vn::feature::CTRL_VLAN | vn::feature::CTRL_MAC_ADDR);
        bench b(2, no_cvq);
        CHECK(b.attach().code() == errc::invalid_argument);
        CHECK(b.rig.api().audit().balanced());
        npa::queue_config qc = b.rig.queue_cfg();
        qc.queues = 1;
        REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), qc));
        CHECK((b.rig.device().driver_features() & (vn::feature::MQ | vn::feature::CTRL_VQ)) == 0);
        CHECK_FALSE(b.ctl.live());
        b.p.detach();
        CHECK(b.rig.api().audit().balanced());
    }
    SUBCASE("the device answers VQ_PAIRS_SET with ERR: attach fails with the channel's reason") {
        bench b(2);
        b.rig.device().set_ctrl_fault(ctrl_fault::refuse);
        const npa::status st = b.attach();
        CHECK(st.code() == errc::refused);
        CHECK(std::string(st.reason()).find("queue pairs") != std::string::npos);
        CHECK((b.rig.device().status_byte() & npa::virtio::status_bit::DRIVER_OK) == 0);
        CHECK(b.rig.device_rx_posted(0) == 0);
        CHECK_FALSE(b.ctl.live());
        CHECK(b.rig.api().audit().balanced());
    }
}

// ---- the shell replays its control state onto the virtio-net path at every switch -----------
using bench_t = npa_test::simnic_virtio_bench;

TEST_CASE("shell<simnic, virtio-net>: the control state is replayed through the controlq at each switch") {
    using shell_t = npa::shell<bench_t::env_type, simnic_plugin, npa::virtio_net_plugin>;
    bench_t b;
    REQUIRE(b.ok());
    virtio_net_device* vdev = b.vdev.get();
    const guest_block cm = b.mem.allocate(npa::virtio_net_control::memory_bytes);
    npa::virtio_net_control vctl({cm.virt, cm.iova, cm.size}, &step_device, vdev);
    vdev->window().set_control(vctl.hook());
    npa_test::allow_all_channel sctl;
    bench_t::env_type::pool_type* pools[] = {&*b.pool};
    shell_t sh(b.env, pools, b.cfg);
    REQUIRE(sh.init_status().ok());
    REQUIRE(sh.start<0>(b.sdev->window(), npa::control_link::to(sctl)).ok());
    REQUIRE(sh.set_rx_mode(normal_mode).ok());
    REQUIRE(sh.add_vlan(100).ok());

    // A frame the filter must refuse once the replay turned promiscuous mode off.
    auto stray = [&] {
        frame f;
        std::memcpy(f.data.data(), other_mac.data(), 6);
        std::memcpy(f.data.data() + 6, bench_t::peer_mac.data(), 6);
        f.data[12] = std::byte{0x88};
        f.data[13] = std::byte{0xB5};
        f.len = 64;
        vdev->frame_in(f);
    };
    int switches = 0;
    std::uint64_t filtered_at_switch = 0;
    const auto res = npa_test::run_switch_traffic<bench_t::env_type>(
        sh, b.peer, bench_t::guest, bench_t::peer_mac, 400, [&] { b.step(); },
        [&](int round) {
            if (round == 100 || round == 300) {
                CHECK(vdev->promiscuous()); // reset state, or the reset at the last detach
                REQUIRE(sh.switch_to<1>(vdev->window(), npa::control_link::to(vctl),
                                        npa::switch_reason::vf_arrived).ok());
                CHECK_FALSE(vdev->promiscuous());
                filtered_at_switch = vdev->rx_filtered();
                stray();
                ++switches;
            }
            if (round == 150 || round == 350) {
                CHECK(vdev->rx_filtered() == filtered_at_switch + 1);
            }
            if (round == 200) {
                REQUIRE(sh.switch_to<0>(b.sdev->window(), npa::control_link::to(sctl),
                                        npa::switch_reason::vf_leaving).ok());
                ++switches;
            }
        });
    CHECK(switches == 3);
    CHECK(res.far.lost == 0);
    CHECK(res.far.duplicates == 0);
    CHECK(res.far.reordered == 0);
    // Each replay: PROMISC off, the (empty) multicast table, VLAN 100.
    CHECK(vdev->ctrl_commands() == 6);
    CHECK(vdev->ctrl_errors() == 0);
    CHECK(vdev->violations().empty());
    CHECK(sh.audit().ok());
    sh.stop();
}
