// npa::shell with the emulated path (the sim reference plugin on a simnic) and the
// 82576 VF (igbvf plugin on a VF of the sim SR-IOV NIC), both cabled to one L2 switch with
// a peer: bidirectional traffic while the data path switches back and forth, onto a
// second host's VF with smaller rings and fewer offloads, and away from a VF removed in
// the middle of a burst. Zero TX loss, no duplicates or reordering, the audit balances.
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/buffer/fixed_pool.hpp>
#include <npa/shell.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/sriov_nic.hpp>
#include <npa/sim/traffic.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace npa;
using namespace npa::sim;

namespace {

constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0x50, 0x01};
constexpr mac_addr peer_mac{0x02, 0, 0, 0, 0x50, 0x02};
constexpr std::uint32_t peer_flow = 1;
constexpr std::uint16_t queues = 2;

using pool_t = fixed_pool<borrowed_memory>;

struct sim_world;

struct env {
    using pool_type = pool_t;
    static inline std::uint64_t clock = 1'000'000'000;
    static std::uint64_t now_ns() noexcept { return clock; }
    sim_world* world = nullptr;
    void on_wait() noexcept;
};

using shell_t = shell<env, simnic_plugin, igbvf_plugin>;

/// The emulated path's authority: the hypervisor accepts what the guest asks (its policy
/// is tested with the vmxnet3 device model).
struct accept_all {
    status submit(const control_request&) { return {}; }
    status submit_batch(std::span<const control_request>) { return {}; }
};

struct sim_world {
    guest_memory mem{std::size_t{64} << 20};
    std::optional<pool_t> pool;
    std::unique_ptr<simnic> emu;
    std::unique_ptr<sriov_nic> host_a, host_b;
    l2_switch sw{4};
    traffic_peer peer{peer_flow, peer_mac, guest_mac};
    accept_all emu_ctl;
    std::optional<igbvf_control> vf_a_ctl, vf_b_ctl;
    env e;
    std::optional<shell_t> sh;
    path_id emu_path = shell_t::no_path;   ///< 0
    path_id vf_a_path = shell_t::no_path;  ///< 1: host A's VF 0
    path_id vf_b_path = shell_t::no_path;  ///< 2: host B's VF 0
    std::vector<traffic_gen> gens;
    std::vector<std::vector<buffer_ref>> pending;  // built, not yet taken by the shell
    traffic_sink guest_sink;
    std::uint64_t guest_sent = 0;

    explicit sim_world(bool vf_removed_reads_zero = false) {
        pool_config pc;
        pc.count = 8192;
        const guest_block b = mem.allocate(pool_t::required_bytes(pc));
        auto p = pool_t::create(pc, b.backing());
        REQUIRE(p.ok());
        pool.emplace(std::move(*p));
        simnic_config sc;
        sc.queues = queues;
        auto s = simnic::create(mem, sc);
        REQUIRE(s.ok());
        emu = std::move(*s);
        // Host A: a VF with the full ring range and offloads; host B: smaller rings and no
        // checksum offload (an older NIC firmware), to migrate onto.
        sriov_nic_config ca;
        ca.vfs = 2;
        ca.vf.removed_reads_zero = vf_removed_reads_zero;
        auto a = sriov_nic::create(mem, ca);
        REQUIRE(a.ok());
        host_a = std::move(*a);
        sriov_nic_config cb = ca;
        cb.vf.limits.max_ring = 256;
        cb.vf.limits.offloads = cap::vlan_insert | cap::vlan_strip;
        auto bb = sriov_nic::create(mem, cb);
        REQUIRE(bb.ok());
        host_b = std::move(*bb);
        vf_policy pol;
        pol.default_mac = guest_mac;
        host_a->pf().set_policy(0, pol);
        host_b->pf().set_policy(0, pol);
        connect(*emu, sw.port_at(0));
        connect(*host_a, sw.port_at(1));
        connect(*host_b, sw.port_at(2));
        connect(peer, sw.port_at(3));
        auto wait = [](void* w) noexcept { static_cast<sim_world*>(w)->step_devices(); };
        vf_a_ctl.emplace(host_a->vf(0).mailbox_port(), wait, this);
        vf_b_ctl.emplace(host_b->vf(0).mailbox_port(), wait, this);
        e.world = this;
        shell_config cfg;
        cfg.queues.queues = queues;
        cfg.queues.tx_ring_size = 512;
        cfg.queues.rx_ring_size = 512;
        cfg.policy.min_dwell_ns = 0;
        pool_t* pools[queues] = {&*pool, &*pool};
        sh.emplace(e, std::span<pool_t* const>(pools, queues), cfg);
        REQUIRE(sh->init_status().ok());
        emu_path = sh->add_path<simnic_plugin>(emu->window(), emu_link());
        vf_a_path = sh->add_path<igbvf_plugin>(host_a->vf(0).window(), vf_a_link());
        vf_b_path = sh->add_path<igbvf_plugin>(host_b->vf(0).window(), vf_b_link());
        REQUIRE(vf_b_path != shell_t::no_path);
        for (std::uint16_t q = 0; q < queues; ++q) {
            gens.emplace_back(100 + q, guest_mac, peer_mac);
        }
        pending.resize(queues);
    }

    void step_devices() {
        emu->step();
        host_a->step();
        host_b->step();
        env::clock += 1'000;
    }

    control_link emu_link() { return control_link::to(emu_ctl); }
    control_link vf_a_link() { return control_link::to(*vf_a_ctl); }
    control_link vf_b_link() { return control_link::to(*vf_b_ctl); }

    // One round of the guest and its peer: TX a burst per queue, the peer sends, RX, poll,
    // the devices run, the control thread services the shell.
    void round(std::uint32_t tx_per_queue, std::uint32_t peer_frames) {
        for (std::uint16_t q = 0; q < queues; ++q) {
            auto& pend = pending[q];
            while (pend.size() < tx_per_queue) {
                buffer_ref b{};
                if (sh->alloc(q, std::span(&b, 1)) == 0) break;
                b.set_length(gens[q].build(std::span<std::byte>(b.data(), b.capacity())));
                pend.push_back(b);
                ++guest_sent;
            }
            const std::uint16_t k = sh->tx_burst(q, pend);
            pend.erase(pend.begin(), pend.begin() + k);
        }
        peer.send(peer_frames);
        step_devices();
        receive_all();
        (void)sh->service();
    }
    void receive_all() {
        for (std::uint16_t q = 0; q < queues; ++q) {
            buffer_ref out[64];
            std::uint16_t n;
            while ((n = sh->rx_burst(q, out)) != 0) {
                for (std::uint16_t i = 0; i < n; ++i) {
                    (void)guest_sink.record(std::span<const std::byte>(out[i].data(), out[i].length()));
                }
                sh->free(q, std::span<const buffer_ref>(out, n));
            }
            (void)sh->poll(q);
        }
    }
    // No new traffic: send what is pending and let everything in flight complete.
    void settle() {
        for (int i = 0; i < 400; ++i) {
            round(0, 0);
        }
    }
    void switch_under_traffic(path_id p, switch_reason why) {
        const status st = sh->request_switch(p, why);
        REQUIRE_MESSAGE(st.ok(), st.reason());
        for (int i = 0; i < 2000 && sh->switching(); ++i) {
            round(32, 16);
        }
        REQUIRE_FALSE(sh->switching());
        CHECK(sh->active_path() == p);
    }
    void check_guest_tx() {
        for (std::uint16_t q = 0; q < queues; ++q) {
            const flow_report r = peer.report(100 + q, gens[q].sent() - pending[q].size());
            INFO("guest TX flow on queue ", q);
            CHECK(r.lost == 0);
            CHECK(r.duplicates == 0);
            CHECK(r.reordered == 0);
            CHECK(r.corrupt == 0);
        }
        CHECK(sh->history().total_tx_lost() == 0);
        CHECK(guest_sink.report(peer_flow, 0).corrupt == 0);
        CHECK(guest_sink.report(peer_flow, 0).duplicates == 0);
    }
    void release_pending() {
        for (std::uint16_t q = 0; q < queues; ++q) {
            sh->free(q, pending[q]);
            gens[q] = traffic_gen{};  // nothing more is built; counts were checked
            pending[q].clear();
        }
    }
};

void env::on_wait() noexcept { world->step_devices(); }

} // namespace

TEST_CASE("shell switches between the emulated path and the VF under traffic: zero TX loss") {
    sim_world w;
    REQUIRE(w.sh->start(w.emu_path).ok());
    w.sh->set_fallback(w.emu_path);
    for (int i = 0; i < 50; ++i) w.round(32, 16);
    CHECK(w.sh->active_path() == w.emu_path);

    // VF arrives on host A: passthrough on.
    w.switch_under_traffic(w.vf_a_path, switch_reason::vf_arrived);
    for (int i = 0; i < 50; ++i) w.round(32, 16);
    CHECK(w.host_a->vf(0).stats(0).tx_frames + w.host_a->vf(0).stats(1).tx_frames > 0);
    CHECK(w.host_a->vf(0).stats(0).rx_frames + w.host_a->vf(0).stats(1).rx_frames > 0);
    CHECK(w.sh->offloads() != 0);

    // The guest changes its MAC: the VF's PF refuses a MAC it does not own.
    CHECK(w.sh->set_mac({0x02, 0, 0, 0, 0x66, 0x66}).code() == errc::refused);

    // Live migration: out to the emulated path, in again on host B's smaller VF.
    w.switch_under_traffic(w.emu_path, switch_reason::migration);
    for (int i = 0; i < 20; ++i) w.round(32, 16);
    w.switch_under_traffic(w.vf_b_path, switch_reason::vf_arrived);
    CHECK(w.sh->plugin<igbvf_plugin>(w.vf_b_path)->tx_ring_size(0) == 256);  // host B's VF
    CHECK((w.sh->offloads() & cap::tx_l4_csum) == 0);  // lost with host B's VF
    for (int i = 0; i < 50; ++i) w.round(32, 16);
    CHECK(w.host_b->vf(0).stats(0).tx_frames + w.host_b->vf(0).stats(1).tx_frames > 0);

    // Surprise removal in the middle of a burst: the shell falls back on its own.
    fault_plan gone;
    gone.remove_after_tx = 40;
    w.host_b->vf(0).inject(gone);
    for (int i = 0; i < 400 && (w.sh->active_path() != w.emu_path || w.sh->switching()); ++i) {
        w.round(32, 16);
    }
    CHECK(w.host_b->vf(0).removed());
    CHECK(w.sh->active_path() == w.emu_path);
    CHECK(w.sh->history().recent(0).reason == switch_reason::surprise_removal);
    CHECK(w.sh->history().recent(0).requeued > 0);  // what the VF took but never sent, resent
    for (int i = 0; i < 50; ++i) w.round(32, 16);

    w.settle();
    w.check_guest_tx();
    CHECK(w.sh->history().count() >= 5);
    w.release_pending();
    const audit_report a = w.sh->audit();
    CHECK(a.ok());
    CHECK(a.caller == 0);
}

TEST_CASE("offloads the shell asks for are programmed into the VF, and follow a migration") {
    sim_world w;
    REQUIRE(w.sh->start(w.emu_path).ok());
    for (int i = 0; i < 10; ++i)
        w.round(32, 16);
    w.switch_under_traffic(w.vf_a_path, switch_reason::vf_arrived);
    const std::uint32_t host_a = igbvf_limits{}.offloads;
    CHECK(w.sh->plugin<igbvf_plugin>(w.vf_a_path)->offloads() == host_a);
    CHECK(w.sh->offloads() == host_a);
    // One frame asking for a VLAN tag: the VF's device inserts it (a context descriptor
    // with VLE), and the embedded switch, which gave this VF no VLAN 7, drops and counts it.
    auto send_tagged = [&w] {
        buffer_ref b{};
        REQUIRE(w.sh->alloc(0, std::span(&b, 1)) == 1);
        traffic_gen g(999, guest_mac, peer_mac);
        b.set_length(g.build(std::span<std::byte>(b.data(), b.capacity())));
        offload_info o{};
        o.flags = ol::tx_vlan;
        o.vlan_tci = 7;
        b.set_offload(o);
        REQUIRE(w.sh->tx_burst(0, std::span(&b, 1)) == 1);
        for (int i = 0; i < 10; ++i)
            w.round(0, 0);
    };
    const std::uint64_t v0 = w.host_a->switch_stats(0).vlan_violations;
    send_tagged();
    CHECK(w.host_a->switch_stats(0).vlan_violations == v0 + 1);
    // Onto host B's VF (no checksum offloads): the plugin is attached without them.
    w.switch_under_traffic(w.emu_path, switch_reason::migration);
    w.switch_under_traffic(w.vf_b_path, switch_reason::vf_arrived);
    CHECK(w.sh->plugin<igbvf_plugin>(w.vf_b_path)->offloads() ==
          (cap::vlan_insert | cap::vlan_strip));
    CHECK(w.sh->offloads() == (cap::vlan_insert | cap::vlan_strip));
    const std::uint64_t vb = w.host_b->switch_stats(0).vlan_violations;
    send_tagged();
    CHECK(w.host_b->switch_stats(0).vlan_violations == vb + 1);
    w.settle();
    w.check_guest_tx();
    w.release_pending();
    CHECK(w.sh->audit().ok());
}

TEST_CASE("a replay the VF's PF refuses half-way is undone there; the old path keeps running") {
    sim_world w;
    vf_policy pol;
    pol.default_mac = guest_mac;
    pol.allowed_vlans = {10};
    w.host_a->pf().set_policy(0, pol);
    REQUIRE(w.sh->start(w.emu_path).ok());
    for (int i = 0; i < 10; ++i)
        w.round(32, 16);
    // The emulated path's hypervisor accepts all of it; the VF's PF allows VLAN 10 only.
    const mac_addr group{0x01, 0x00, 0x5e, 0, 0, 9};
    REQUIRE(w.sh->set_mcast_list(std::span(&group, 1)).ok());
    REQUIRE(w.sh->add_vlan(10).ok());
    REQUIRE(w.sh->add_vlan(77).ok());
    const std::uint64_t m0 = w.vf_a_ctl->messages();
    const status st =
        w.sh->request_switch(w.vf_a_path, switch_reason::vf_arrived);
    CHECK(st.code() == errc::refused);
    // The bring-up's RESET (1), then MTU, RX mode, the multicast list and VLAN 10 went
    // through one message each before VLAN 77 was refused (5); the undo removed VLAN 10
    // and restored the empty list (2), and the PF is back where it was.
    CHECK(w.vf_a_ctl->messages() - m0 == 8);
    CHECK(w.host_a->pf().state(0).vlans.empty());
    CHECK(w.host_a->pf().state(0).mcast_count == 0);
    CHECK(w.sh->active_path() == w.emu_path);
    CHECK(w.sh->history().recent(0).result == errc::refused);
    CHECK(w.sh->desired_control().has_vlan(77)); // what the OS asked for is kept
    for (int i = 0; i < 20; ++i)
        w.round(32, 16);
    w.settle();
    w.check_guest_tx();
    w.release_pending();
    CHECK(w.sh->audit().ok());
}

TEST_CASE("VF reset while active: the shell falls back, nothing lost") {
    sim_world w;
    REQUIRE(w.sh->start(w.vf_a_path).ok());
    w.sh->set_fallback(w.emu_path);
    for (int i = 0; i < 30; ++i) w.round(32, 16);
    fault_plan rst;
    rst.reset_after_tx = 50;
    w.host_a->vf(0).inject(rst);
    for (int i = 0; i < 400 && (w.sh->active_path() != w.emu_path || w.sh->switching()); ++i) {
        w.round(32, 16);
    }
    CHECK(w.sh->active_path() == w.emu_path);
    CHECK(w.sh->history().recent(0).reason == switch_reason::reset);
    // The PF took the VF's reset as igb does: nothing but RESET until the VF sends it.
    // The channel knows of the reset from the shell and sends RESET before the replay,
    // so the way back to the VF works, and the PF has the shell's VLAN again.
    CHECK(w.vf_a_ctl->reset_pending());
    REQUIRE(w.sh->add_vlan(10).ok());
    for (int i = 0; i < 5; ++i) w.round(32, 16);
    REQUIRE(w.sh->request_switch(w.vf_a_path, switch_reason::operator_request).ok());
    for (int i = 0; i < 400 && w.sh->switching(); ++i) w.round(32, 16);
    CHECK(w.sh->active_path() == w.vf_a_path);
    CHECK(w.sh->history().recent(0).result == errc::ok);
    CHECK_FALSE(w.vf_a_ctl->reset_pending());
    CHECK(w.host_a->pf().state(0).vlans.count(10) == 1);
    CHECK(w.host_a->pf().stats(0).nacks == 0);
    for (int i = 0; i < 30; ++i) w.round(32, 16);
    w.settle();
    w.check_guest_tx();
    w.release_pending();
    CHECK(w.sh->audit().ok());
}

TEST_CASE("a PF reset seen on the VF's mailbox: the shell falls back, and the way back redoes RESET") {
    sim_world w;
    REQUIRE(w.sh->start(w.vf_a_path).ok());
    w.sh->set_fallback(w.emu_path);
    REQUIRE(w.sh->add_vlan(10).ok());
    for (int i = 0; i < 30; ++i) w.round(32, 16);
    CHECK(w.sh->active_path() == w.vf_a_path);  // the RSTD a VF starts with: its bring-up's
    // The PF resets and comes back; the VF's queues run on, only its mailbox tells.
    w.host_a->pf().reset();
    w.host_a->pf().reset_done();
    for (int i = 0; i < 400 && (w.sh->active_path() != w.emu_path || w.sh->switching()); ++i) {
        w.round(32, 16);
    }
    CHECK(w.sh->active_path() == w.emu_path);
    CHECK(w.sh->history().recent(0).reason == switch_reason::reset);
    CHECK(w.vf_a_ctl->reset_pending());
    CHECK(w.host_a->pf().state(0).vlans.empty());
    for (int i = 0; i < 5; ++i) w.round(32, 16);
    REQUIRE(w.sh->request_switch(w.vf_a_path, switch_reason::operator_request).ok());
    for (int i = 0; i < 400 && w.sh->switching(); ++i) w.round(32, 16);
    CHECK(w.sh->active_path() == w.vf_a_path);
    CHECK(w.sh->history().recent(0).result == errc::ok);
    CHECK(w.vf_a_ctl->health() == errc::ok);
    CHECK(w.host_a->pf().state(0).vlans.count(10) == 1);
    for (int i = 0; i < 30; ++i) w.round(32, 16);
    CHECK(w.sh->active_path() == w.vf_a_path);
    w.settle();
    w.check_guest_tx();
    w.release_pending();
    CHECK(w.sh->audit().ok());
}

TEST_CASE("a VF reset without the shell's knowledge: igb's PF refuses all but RESET") {
    sim_world w;
    REQUIRE(w.sh->start(w.emu_path).ok());
    w.host_a->vf(0).reset();
    // Nobody told the channel: the PF refuses, with its reason, and nothing changes.
    const status st = w.vf_a_ctl->submit(control_request::make_vlan(true, 10));
    CHECK(st.code() == errc::refused);
    CHECK(std::string(st.reason()).find("not clear to send") != std::string::npos);
    CHECK(w.host_a->pf().state(0).vlans.empty());
    // Told, it redoes the handshake first and the request goes through.
    w.vf_a_ctl->device_reset();
    CHECK(w.vf_a_ctl->submit(control_request::make_vlan(true, 10)).ok());
    CHECK(w.host_a->pf().state(0).vlans.count(10) == 1);
}

TEST_CASE("VF removed by its PF (registers read 0, as on QEMU): the shell falls back, TX goes on") {
    sim_world w(true);
    REQUIRE(w.sh->start(w.vf_a_path).ok());
    w.sh->set_fallback(w.emu_path);
    for (int i = 0; i < 30; ++i) w.round(32, 16);
    // TX the VF takes and never sends: it is gone before it runs again. Its head register
    // then reads 0 too, which must not pass for "sent".
    for (std::uint16_t q = 0; q < queues; ++q) {
        auto& pend = w.pending[q];
        for (int i = 0; i < 32; ++i) {
            buffer_ref b{};
            if (w.sh->alloc(q, std::span(&b, 1)) == 0) break;
            b.set_length(w.gens[q].build(std::span<std::byte>(b.data(), b.capacity())));
            pend.push_back(b);
            ++w.guest_sent;
        }
        const std::uint16_t k = w.sh->tx_burst(q, pend);
        pend.erase(pend.begin(), pend.begin() + k);
    }
    w.host_a->vf(0).remove();
    for (int i = 0; i < 400 && (w.sh->active_path() != w.emu_path || w.sh->switching()); ++i) {
        w.round(32, 16);
    }
    REQUIRE(w.sh->active_path() == w.emu_path);
    const std::uint64_t tx_before = w.sh->path_stats(w.emu_path, 0).tx_packets;
    for (int i = 0; i < 50; ++i) w.round(32, 16);
    // The emulated path carries the traffic after the fallback.
    CHECK(w.sh->path_stats(w.emu_path, 0).tx_packets > tx_before);
    w.settle();
    w.check_guest_tx();
    CHECK(w.sh->path_stats(w.vf_a_path, 0).tx_errors + w.sh->path_stats(w.vf_a_path, 1).tx_errors == 0);
    w.release_pending();
    CHECK(w.sh->audit().ok());
}

TEST_CASE("a switch away from the VF reads every frame its RX rings hold, however long a "
          "data-path round takes") {
    // As on QEMU under TCG (docs/real-devices.md, "Frames lost at the switch"): each round
    // of the data path outlasts the shell's drain timeout. Without rx_drain_bound the
    // timeout ended the read of the VF's rings, and what they held went with the detach.
    sim_world w;
    REQUIRE(w.sh->start(w.emu_path).ok());
    for (int i = 0; i < 50; ++i) w.round(32, 16);  // the switch learns where the guest is
    w.switch_under_traffic(w.vf_a_path, switch_reason::vf_arrived);
    w.settle();
    const std::uint64_t before = w.guest_sink.report(peer_flow, 0).received;
    // 96 frames wait in the VF's RX rings when the switch starts; the emulated path is
    // not attached and never sees them.
    REQUIRE(w.peer.send(96) == 96);
    w.step_devices();
    REQUIRE(w.sh->request_switch(w.emu_path, switch_reason::migration).ok());
    for (int i = 0; i < 50 && w.sh->switching(); ++i) {
        for (std::uint16_t q = 0; q < queues; ++q) {
            (void)w.sh->poll(q);  // picks up the drain and starts its clock
            env::clock += 3 * switch_policy{}.drain_timeout_ns / 2;  // the default policy
            buffer_ref out[32];
            const std::uint16_t n = w.sh->rx_burst(q, out);
            for (std::uint16_t k = 0; k < n; ++k) {
                (void)w.guest_sink.record(std::span<const std::byte>(out[k].data(), out[k].length()));
            }
            w.sh->free(q, std::span<const buffer_ref>(out, n));
        }
        (void)w.sh->service();
    }
    REQUIRE_FALSE(w.sh->switching());
    CHECK(w.sh->active_path() == w.emu_path);
    w.settle();
    CHECK(w.guest_sink.report(peer_flow, 0).received - before == 96);
    w.check_guest_tx();
    w.release_pending();
    CHECK(w.sh->audit().ok());
}
