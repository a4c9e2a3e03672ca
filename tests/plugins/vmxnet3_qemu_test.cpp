// vmxnet3 on a device that behaves as QEMU's (hw/net/vmxnet3.c) where QEMU's differs from
// the sim's default (VMware's) model, and the event register as both devices have it: each
// difference the plugin met on QEMU's device (docs/real-devices.md), kept as a case.
#include <doctest/doctest.h>

#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/shell.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/vmxnet3_rig.hpp>

#include <array>
#include <cstdint>

using namespace npa::sim;
namespace v = npa::vmxnet3;
using plugin_t = npa::vmxnet3_plugin<vmxnet3_rig::api_type>;

namespace {
vmxnet3_rig::config one_queue(bool qemu) {
    vmxnet3_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    c.qemu = qemu;
    return c;
}

// Frames from the far end to the guest's queue 0; what rx_burst delivers (then freed).
std::uint32_t receive(vmxnet3_rig& rig, plugin_t& p, std::uint32_t n) {
    rig.far_send(rig.flow_for_queue(0), n);
    rig.step(4);
    std::array<npa::buffer_ref, 64> out{};
    const std::uint16_t got = p.rx_burst(0, out);
    rig.api().received(std::span(out).first(got));
    rig.api().free(std::span(out).first(got));
    return got;
}

void finish(vmxnet3_rig& rig, plugin_t& p) {
    p.detach();
    auto u = rig.api().take_unsent();
    rig.api().free(u);
    CHECK(rig.api().audit().balanced());
    CHECK(rig.api().audit().in_pool == rig.api().audit().total);
}
} // namespace

TEST_CASE("vmxnet3 on QEMU's device: RX completions of type 0 are packets, not bad completions") {
    // QEMU's vmxnet3_indicate_packet fills rxdIdx, len, sop, eop, gen and rqID and leaves
    // type 0; Linux's and DPDK's drivers look at type only for LRO.
    vmxnet3_rig rig(one_queue(true));
    REQUIRE(rig.ok());
    plugin_t p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    REQUIRE(rig.apply_control().ok());
    CHECK(receive(rig, p, 20) == 20);
    CHECK(p.stats(0).rx_packets == 20);
    CHECK(p.stats(0).bad_completion == 0);
    CHECK(p.health() == npa::errc::ok);
    finish(rig, p);
}

TEST_CASE("vmxnet3 on QEMU's device: a completion type that is neither 0 nor RXCOMP is still refused") {
    vmxnet3_rig rig(one_queue(false));
    REQUIRE(rig.ok());
    plugin_t p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    // A completion in slot 0 of the RX completion ring, valid but for its type (5: an
    // encapsulated-packet type this plugin never asked for), written as the device would.
    const v::dma_block area = rig.window().ring_area();
    auto* ring = reinterpret_cast<v::rx_comp_desc*>(
        area.virt + (rig.window().rxq(1, 0)->conf.compRingBasePA - area.iova));
    v::rx_comp_desc c{};
    using rcd = v::rx_comp_desc;
    rcd::rxdIdx::set(c.dword0, 0);
    rcd::sop::set(c.dword0, 1);
    rcd::eop::set(c.dword0, 1);
    rcd::len::set(c.dword2, 60);
    rcd::type::set(c.dword3, 5);
    rcd::gen::set(c.dword3, v::INIT_GEN);
    ring[0] = c;
    std::array<npa::buffer_ref, 4> out{};
    CHECK(p.rx_burst(0, out) == 0);
    CHECK(p.stats(0).bad_completion >= 1);
    CHECK(p.health() == npa::errc::device_error);
    finish(rig, p);
}

TEST_CASE("vmxnet3 on QEMU's device: GET_CONF_INTR answers 0 (AUTO, AUTO): a vector per queue "
          "pair, auto-masked") {
    vmxnet3_rig rig(one_queue(true));
    REQUIRE(rig.ok());
    CHECK(rig.window().conf_intr() == 0);  // vmxnet3_get_interrupt_config
    plugin_t p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    REQUIRE(rig.apply_control().ok());  // QEMU's ACTIVATE_DEV took the permanent MAC back
    CHECK(p.irq_layout().type == v::it::MSIX);
    CHECK_FALSE(p.irq_layout().shared);
    CHECK(rig.window().intr().autoMask == 1);
    CHECK(rig.window().intr().numIntrs == 2);
    CHECK(rig.window().intr().eventIntrIdx == 1);
    CHECK(rig.window().icr() == 0);  // ICR is INTx's: 0 with MSI-X
    CHECK(receive(rig, p, 3) == 3);
    finish(rig, p);
}

TEST_CASE("vmxnet3 events: the device keeps them in the shared area; the ECR register acknowledges") {
    // Linux vmxnet3_process_events and DPDK read Vmxnet3_DriverShared::ecr and write the
    // register only to acknowledge; QEMU's device answers 0 to a read of the register.
    vmxnet3_rig rig(one_queue(false));
    REQUIRE(rig.ok());
    plugin_t p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    REQUIRE(p.link_up());
    fault_plan down;
    down.link_down_steps = 3;
    rig.inject(down);
    CHECK((rig.window().ecr() & v::ecr::LINK) != 0);  // raised in the shared area
    CHECK(rig.device().mmio().read32(v::bar::vd, v::reg::ECR) == 0);
    CHECK_FALSE(p.link_up());                            // seen there, asked again, acknowledged
    CHECK((rig.window().ecr() & v::ecr::LINK) == 0);
    rig.step(3);
    CHECK(p.link_up());
    // A queue error (here: the queues gone in a reset under the driver) reaches health().
    CHECK(p.health() == npa::errc::ok);
    rig.reset_device();
    CHECK((rig.window().ecr() & (v::ecr::TQERR | v::ecr::RQERR)) != 0);
    CHECK(p.health() == npa::errc::device_error);
    finish(rig, p);
}

TEST_CASE("vmxnet3 on QEMU's device: ACTIVATE_DEV takes the permanent MAC back; the control "
          "replay after attach sets it again") {
    vmxnet3_rig rig(one_queue(true));
    REQUIRE(rig.ok());
    CHECK(rig.control().mac() == vmxnet3_rig::guest_mac);  // set before attach
    plugin_t p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    const npa::mac_addr perm = vmxnet3_device_config{}.perm_mac;
    CHECK(rig.control().mac() == perm);
    CHECK(receive(rig, p, 5) == 0);  // addressed to the MAC the device no longer has
    CHECK(rig.device().rx_filtered() == 5);
    REQUIRE(rig.apply_control().ok());  // what the shell does after every attach
    CHECK(rig.control().mac() == vmxnet3_rig::guest_mac);
    CHECK(receive(rig, p, 5) == 5);
    finish(rig, p);
}

TEST_CASE("vmxnet3 on QEMU's device: txThreshold 1, updateRxProd never set") {
    vmxnet3_rig rig(one_queue(true));
    REQUIRE(rig.ok());
    plugin_t p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    CHECK(rig.window().txq(0)->ctrl.txThreshold == 1u);
    CHECK(rig.window().rxq(1, 0)->ctrl.updateRxProd == 0);
    // Without updateRxProd the whole RX ring is posted (the device goes by the gen bit).
    rig.step(2);
    CHECK(rig.device_rx_posted(0) == 64);
    finish(rig, p);
}

TEST_CASE("vmxnet3 on QEMU's device: RESET_DEV forgets the shared area; the next attach registers "
          "it again") {
    vmxnet3_rig rig(one_queue(true));
    REQUIRE(rig.ok());
    plugin_t p;
    for (int round = 0; round < 2; ++round) {
        CAPTURE(round);
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
        REQUIRE(rig.apply_control().ok());
        CHECK(receive(rig, p, 8) == 8);
        finish(rig, p);
    }
    // Detached: a filter command now finds no shared area, as on QEMU (which would read
    // guest address 0); the shell sends control requests to the active path only. The
    // guest reads no answer after it (as Linux's driver), the device counts it.
    const std::uint64_t before = rig.device().protocol_violations();
    CHECK(rig.control().submit(npa::control_request::make_rx_mode(npa::rx_mode::unicast)).ok());
    CHECK(rig.device().protocol_violations() == before + 1);
    CHECK(rig.device().resets() == 2);
}

// ---- the switch between two QEMU vmxnet3 paths ----------------------------------------
namespace {
struct slow_env {
    using pool_type = npa::fixed_pool<npa::borrowed_memory>;
    static inline std::uint64_t clock = 1'000'000'000;
    static std::uint64_t now_ns() noexcept { return clock; }
};
} // namespace

TEST_CASE("vmxnet3 on QEMU's device: a switch reads every frame the old device holds, however long "
          "a data-path round takes") {
    // On QEMU under TCG one round of the guest test's data path (32 frames out, a burst
    // in) takes longer than the shell's drain timeout (2 ms). The old device still held
    // what the peer had sent before the switch, which the new device never saw; the
    // timeout ended the drain before the first burst or after it (the plugin declared no
    // rx_drain_bound, and the first rx_burst of the drain came after the deadline), and
    // the rest went with the detach, counted by no one (docs/real-devices.md, "Frames
    // lost at the switch").
    using shell_t = npa::shell<slow_env, npa::vmxnet3_plugin>;
    constexpr npa::mac_addr guest{0x02, 0, 0, 0, 0, 0x01}, peer_mac{0x02, 0, 0, 0, 0, 0x02};
    guest_memory mem(std::size_t{24} << 20);
    npa::pool_config pc;
    pc.count = 2048;
    const guest_block pb = mem.allocate(slow_env::pool_type::required_bytes(pc));
    auto pool = slow_env::pool_type::create(pc, pb.backing());
    REQUIRE(pool.ok());
    vmxnet3_device_config ca = vmxnet3_device_config::qemu(), cb = ca;
    ca.name = "vmxnet3-a";
    cb.name = "vmxnet3-b";
    cb.perm_mac = {0x00, 0x50, 0x56, 0, 0, 0x02};
    ca.profile.max_ring_size = cb.profile.max_ring_size = 256;
    auto da = vmxnet3_device::create(mem, ca);
    auto db = vmxnet3_device::create(mem, cb);
    REQUIRE(da.ok());
    REQUIRE(db.ok());
    vmxnet3_device& a = **da;
    vmxnet3_device& b = **db;
    l2_switch sw(3);
    far_end peer(peer_mac, guest);
    connect(a, sw.port_at(0));
    connect(b, sw.port_at(1));
    connect(peer, sw.port_at(2));
    REQUIRE(v::probe(a.window()) == nullptr);
    REQUIRE(v::probe(b.window()) == nullptr);
    npa::vmxnet3_control ctl_a(a.control_port()), ctl_b(b.control_port());

    npa::shell_config cfg;
    cfg.queues.queues = 1;
    cfg.queues.tx_ring_size = cfg.queues.rx_ring_size = 256;
    cfg.policy.min_dwell_ns = 0;
    cfg.inline_switch = false;  // the test is the queue's thread
    slow_env env;
    slow_env::pool_type* pools[] = {&*pool};
    shell_t sh(env, pools, cfg);
    REQUIRE(sh.init_status().ok());
    const npa::path_id pa = sh.add_path<npa::vmxnet3_plugin>(a.window(), npa::control_link::to(ctl_a));
    const npa::path_id pbb = sh.add_path<npa::vmxnet3_plugin>(b.window(), npa::control_link::to(ctl_b));
    auto serve = [&] {
        for (int i = 0; i < 50 && sh.switching(); ++i) {
            npa::buffer_ref in[32];
            sh.free(0, std::span<const npa::buffer_ref>(in, sh.rx_burst(0, in)));
            (void)sh.poll(0);
            (void)sh.service();
        }
    };
    REQUIRE(sh.request_switch(pa, npa::switch_reason::boot).ok());
    serve();
    REQUIRE_FALSE(sh.switching());
    REQUIRE(sh.active_path() == pa);
    // After attach: ACTIVATE_DEV put the permanent MAC back; the shell replays this one.
    REQUIRE(sh.set_mac(guest).ok());
    REQUIRE(sh.set_rx_mode(npa::rx_mode::unicast | npa::rx_mode::broadcast).ok());

    traffic_sink sink;
    auto receive_burst = [&] {
        npa::buffer_ref in[32];
        const std::uint16_t n = sh.rx_burst(0, in);
        for (std::uint16_t i = 0; i < n; ++i) {
            (void)sink.record(std::span<const std::byte>(in[i].data(), in[i].length()));
        }
        sh.free(0, std::span<const npa::buffer_ref>(in, n));
        return n;
    };
    // Two bursts wait in A's RX ring when the switch starts; B is not attached yet.
    REQUIRE(peer.send(1, 64) == 64);
    a.step();
    b.step();
    REQUIRE(sh.request_switch(pbb, npa::switch_reason::operator_request).ok());
    // The test's round: tx_burst (here poll: nothing to send) picks up the drain, the
    // round outlasts the drain timeout, then rx_burst.
    for (int round = 0; round < 50 && sh.switching(); ++round) {
        (void)sh.poll(0);
        slow_env::clock += 3 * cfg.policy.drain_timeout_ns / 2;
        (void)receive_burst();
        (void)sh.service();
    }
    REQUIRE_FALSE(sh.switching());
    CHECK(sh.active_path() == pbb);
    CHECK(sh.history().recent(0).result == npa::errc::ok);
    for (int i = 0; i < 4; ++i) {
        (void)receive_burst();
    }
    const flow_report r = sink.report(1, 64);
    CHECK(r.received == 64);
    CHECK(r.lost == 0);
    CHECK(r.duplicates == 0);
    CHECK(r.reordered == 0);
    CHECK(a.violations().empty());
    CHECK(b.violations().empty());
    sh.stop();
    CHECK(sh.audit().ok());
}
