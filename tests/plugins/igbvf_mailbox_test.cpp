// The VF control path: igbvf_control speaks the PF mailbox; the sim PF driver applies
// policy and the embedded switch enforces it (anti-spoofing, VLANs).
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/sim/igbvf_rig.hpp>

#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using namespace npa;
using namespace npa::sim;

namespace {

constexpr mac_addr vf_mac{0x02, 0, 0, 0, 0x10, 0x01};
constexpr mac_addr second_mac{0x02, 0, 0, 0, 0x10, 0x02};
constexpr mac_addr foreign_mac{0x02, 0, 0, 0, 0x66, 0x66};
constexpr mac_addr peer_mac{0x02, 0, 0, 0, 0x20, 0x01};

struct bench {
    guest_memory mem{std::size_t{8} << 20};
    std::unique_ptr<sriov_nic> nic;
    traffic_peer peer{1, peer_mac, vf_mac};
    igbvf_control ctl;
    explicit bench(vf_policy pol = {}) {
        sriov_nic_config c;
        c.vfs = 2;
        auto n = sriov_nic::create(mem, c);
        REQUIRE(n.ok());
        nic = std::move(*n);
        if (pol.default_mac == mac_addr{}) {
            pol.default_mac = vf_mac;
            pol.allowed_macs = {second_mac};
        }
        nic->pf().set_policy(0, pol);
        vf_policy other;
        other.default_mac = {0x02, 0, 0, 0, 0x10, 0x09};
        nic->pf().set_policy(1, other);
        connect(*nic, peer);
        ctl = igbvf_control(nic->vf(0).mailbox_port());
    }
};

// A guest for VF 0: a buffer pool in the bench's guest memory, the test API, the plugin.
struct vf_guest {
    using pool_t = fixed_pool<borrowed_memory>;
    explicit vf_guest(guest_memory& mem) {
        pool_config pc;
        pc.count = 256;
        const guest_block blk = mem.allocate(pool_t::required_bytes(pc));
        auto made = pool_t::create(pc, blk.backing());
        REQUIRE(made.ok());
        pool.emplace(std::move(*made));
        api.emplace(*pool);
    }
    std::optional<pool_t> pool;
    std::optional<test_api<pool_t>> api;
    igbvf_plugin<test_api<pool_t>> p;
};

// Sends one raw frame from VF 0's TX ring through the igbvf plugin.
template <class Api>
void send_frame(igbvf_plugin<Api>& p, Api& api, const mac_addr& src, std::uint16_t vlan = 0) {
    buffer_ref b{};
    REQUIRE(api.alloc_tx(std::span(&b, 1)) == 1);
    traffic_gen g(3, src, peer_mac, vlan);
    b.set_length(g.build(std::span<std::byte>(b.data(), b.capacity())));
    api.offer(std::span(&b, 1));
    REQUIRE(p.tx_burst(0, std::span(&b, 1)) == 1);
}

} // namespace

TEST_CASE("VF reset returns the MAC the PF assigned") {
    bench b;
    mac_addr got{};
    REQUIRE(b.ctl.reset(got).ok());
    CHECK(got == vf_mac);
    CHECK(b.nic->pf().stats(0).acks == 1);
}

TEST_CASE("an allowed MAC is accepted; a foreign MAC is NACKed with the PF's reason") {
    bench b;
    const status ok = b.ctl.submit(control_request::make_set_mac(second_mac));
    CHECK(ok.ok());
    CHECK(b.nic->pf().state(0).mac == second_mac);
    const status no = b.ctl.submit(control_request::make_set_mac(foreign_mac));
    CHECK(no.code() == errc::refused);
    CHECK(std::string(no.reason()).find("MAC address not allowed") != std::string::npos);
    CHECK(b.nic->pf().state(0).mac == second_mac);  // a refusal changes nothing
    CHECK(b.nic->pf().stats(0).last_nack == igbvf::nack_reason::mac_not_allowed);
}

TEST_CASE("VLAN policy: an assigned port VLAN forbids guest VLANs; an allow list is enforced") {
    vf_policy pv;
    pv.default_mac = vf_mac;
    pv.port_vlan = 100;
    bench b(pv);
    const status st = b.ctl.submit(control_request::make_vlan(true, 7));
    CHECK(st.code() == errc::refused);
    CHECK(std::string(st.reason()).find("VLAN not allowed") != std::string::npos);

    vf_policy al;
    al.default_mac = vf_mac;
    al.allowed_vlans = {10, 20};
    bench c(al);
    CHECK(c.ctl.submit(control_request::make_vlan(true, 10)).ok());
    CHECK(c.ctl.submit(control_request::make_vlan(true, 30)).code() == errc::refused);
    CHECK(c.nic->pf().state(0).vlans.count(10) == 1);
    CHECK(c.nic->pf().state(0).vlans.count(30) == 0);
}

TEST_CASE("MTU and promiscuous policy; RSS is not a VF feature") {
    bench b;
    CHECK(b.ctl.submit(control_request::make_mtu(1500)).ok());
    CHECK(b.ctl.submit(control_request::make_mtu(9000)).code() == errc::refused);
    CHECK(b.ctl.submit(control_request::make_rx_mode(rx_mode::promisc)).code() == errc::refused);
    CHECK(b.ctl.submit(control_request::make_rx_mode(rx_mode::unicast | rx_mode::all_multi)).ok());
    control_request r;
    r.op = control_op::set_rss;
    CHECK(b.ctl.submit(r).code() == errc::not_supported);
}

TEST_CASE("a batch is all or nothing: a refused request rolls back the ones before it") {
    vf_policy al;
    al.default_mac = vf_mac;
    al.allowed_macs = {second_mac};
    al.allowed_vlans = {10};
    bench b(al);
    mac_addr assigned{};
    REQUIRE(b.ctl.reset(assigned).ok());  // the driver's first message: it learns its MAC
    const std::array<control_request, 3> batch{control_request::make_set_mac(second_mac),
                                               control_request::make_vlan(true, 10),
                                               control_request::make_vlan(true, 11)};
    const status st = b.ctl.submit_batch(batch);
    CHECK(st.code() == errc::refused);
    CHECK(b.nic->pf().state(0).mac == vf_mac);
    CHECK(b.nic->pf().state(0).vlans.empty());
}

TEST_CASE("a rolled-back batch restores the multicast list the PF had before") {
    bench b;
    mac_addr assigned{};
    REQUIRE(b.ctl.reset(assigned).ok());
    control_request one;
    one.op = control_op::set_mcast_list;
    one.mcast_count = 1;
    one.mcast[0] = {0x01, 0x00, 0x5e, 0, 0, 1};
    REQUIRE(b.ctl.submit(one).ok());
    REQUIRE(b.nic->pf().state(0).mcast_count == 1);
    // A longer list is applied, then the MAC after it is refused: the list goes back.
    control_request three = one;
    three.mcast_count = 3;
    three.mcast[1] = {0x01, 0x00, 0x5e, 0, 0, 2};
    three.mcast[2] = {0x01, 0x00, 0x5e, 0, 0, 3};
    const std::array<control_request, 2> batch{three, control_request::make_set_mac(foreign_mac)};
    CHECK(b.ctl.submit_batch(batch).code() == errc::refused);
    CHECK(b.nic->pf().state(0).mcast_count == 1);
    CHECK(b.nic->pf().state(0).mac == vf_mac);
    // And the channel's own record is the one before the batch: a second rollback of the
    // same kind restores 1 again, not 3.
    CHECK(b.ctl.submit_batch(batch).code() == errc::refused);
    CHECK(b.nic->pf().state(0).mcast_count == 1);
}

TEST_CASE("a removed VF's mailbox reports removal, not a hang") {
    bench b;
    b.nic->vf(0).remove();
    CHECK(b.ctl.submit(control_request::make_set_mac(second_mac)).code() == errc::removed);
}

TEST_CASE("embedded switch: a spoofed source MAC is dropped and counted, the own MAC passes") {
    bench b;
    vf_guest guest(b.mem);
    auto& api = *guest.api;
    auto& p = guest.p;
    queue_config qc;
    qc.tx_ring_size = qc.rx_ring_size = 64;
    REQUIRE(p.attach(api, b.nic->vf(0).window(), qc).ok());

    send_frame(p, api, vf_mac);
    send_frame(p, api, foreign_mac);
    send_frame(p, api, foreign_mac);
    b.nic->step();
    (void)p.tx_reap(0);
    (void)p.tx_reap(0);
    CHECK(b.peer.frames_in() == 1);
    CHECK(b.nic->switch_stats(0).spoofed == 2);
    CHECK(p.stats(0).tx_packets == 3);  // the VF sent them; the switch dropped two

    // After the PF accepts the second MAC, frames from it pass; the old one is now spoofed.
    REQUIRE(b.ctl.submit(control_request::make_set_mac(second_mac)).ok());
    send_frame(p, api, second_mac);
    send_frame(p, api, vf_mac);
    b.nic->step();
    CHECK(b.peer.frames_in() == 2);
    CHECK(b.nic->switch_stats(0).spoofed == 3);

    // A guest VLAN the PF did not accept is a VLAN violation.
    send_frame(p, api, second_mac, 42);
    b.nic->step();
    CHECK(b.nic->switch_stats(0).vlan_violations == 1);
    CHECK(b.peer.frames_in() == 2);

    p.detach();
    auto un = api.take_unsent();
    api.free(un);
    CHECK(api.audit().balanced());
    CHECK(api.audit().in_pool == api.audit().total);
}

TEST_CASE("embedded switch: a port VLAN is inserted on the way out and stripped on the way in") {
    vf_policy pv;
    pv.default_mac = vf_mac;
    pv.port_vlan = 100;
    bench b(pv);
    struct tap final : frame_port {
        std::vector<frame> got;
        void frame_in(const frame& f) noexcept override { got.push_back(f); }
        void send(const frame& f) { frame_out(f); }
    } wire;
    connect(*b.nic, wire);
    vf_guest guest(b.mem);
    auto& api = *guest.api;
    auto& p = guest.p;
    queue_config qc;
    qc.queues = 1;
    qc.tx_ring_size = qc.rx_ring_size = 64;
    REQUIRE(p.attach(api, b.nic->vf(0).window(), qc).ok());
    send_frame(p, api, vf_mac);
    b.nic->step();
    REQUIRE(wire.got.size() == 1);
    eth::header h;
    REQUIRE(eth::parse(wire.got[0].bytes(), h));
    CHECK(h.vlan == 100);

    // In: tagged 100 reaches the VF untagged; tagged 200 or untagged does not.
    frame f;
    traffic_gen g(9, peer_mac, vf_mac, 100);
    g.build(f);
    wire.send(f);
    traffic_gen g2(9, peer_mac, vf_mac, 200);
    g2.build(f);
    wire.send(f);
    b.nic->step();
    std::array<buffer_ref, 8> out{};
    const std::uint16_t n = p.rx_burst(0, out);
    REQUIRE(n == 1);
    api.received(std::span(out).first(n));
    REQUIRE(eth::parse(std::span<const std::byte>(out[0].data(), out[0].length()), h));
    CHECK(h.vlan == 0);
    api.free(std::span(out).first(n));
    p.detach();
    auto un = api.take_unsent();
    api.free(un);
    CHECK(api.audit().balanced());
}

TEST_CASE(
    "VF RX drops are counted by cause, and no counter goes back to zero at reset or hot-add") {
    bench b;
    igbvf_device& vf = b.nic->vf(0);
    auto rx_frames = [&] {
        std::uint64_t n = 0;
        for (std::uint16_t q = 0; q < vf.limits().queues; ++q)
            n += vf.stats(q).rx_frames;
        return n;
    };
    // No RX queue enabled yet: nobody to take the frames.
    b.peer.send(2);
    b.nic->step();
    CHECK(vf.device_stats().rx_no_queue == 2);

    vf_guest guest(b.mem);
    auto& api = *guest.api;
    auto& p = guest.p;
    queue_config qc;
    qc.tx_ring_size = qc.rx_ring_size = 64;
    REQUIRE(p.attach(api, vf.window(), qc).ok());

    // The link goes down for three steps: what arrives meanwhile is dropped as link down.
    fault_plan down;
    down.link_down_steps = 3;
    vf.inject(down);
    b.peer.send(3);
    b.nic->step();
    CHECK(vf.device_stats().rx_link_down == 3);
    b.nic->step();
    b.nic->step();
    b.peer.send(4);
    b.nic->step();
    std::array<buffer_ref, 8> out{};
    const std::uint16_t n = p.rx_burst(0, out);
    CHECK(n == 4);
    api.received(std::span(out).first(n));
    api.free(std::span(out).first(n));
    CHECK(rx_frames() == 4);

    // A function-level reset turns the queues off; a removal leaves nobody there.
    vf.reset();
    b.peer.send(1);
    b.nic->step();
    CHECK(vf.device_stats().rx_no_queue == 3);
    vf.remove();
    b.peer.send(5);
    CHECK(vf.device_stats().rx_removed == 5);
    p.detach();
    auto un = api.take_unsent();
    api.free(un);
    CHECK(api.audit().balanced());

    // Hot-add: a fresh function, but the counts of its earlier lives stay.
    vf.revive();
    CHECK(rx_frames() == 4);
    const igbvf_device_stats s = vf.device_stats();
    CHECK(s.rx_link_down == 3);
    CHECK(s.rx_no_queue == 3);
    CHECK(s.rx_removed == 5);
    CHECK(s.rx_overrun == 0);
    b.peer.send(1);
    b.nic->step();
    CHECK(vf.device_stats().rx_no_queue == 4);
    CHECK(b.peer.frames_in() == 0);
}

// ---- what Linux's igb PF and QEMU's igb do (docs/real-devices.md, "igb VF") ------------

TEST_CASE("a VF the PF has no MAC for: RESET is NACKed, the VF is told no MAC and sets its own") {
    guest_memory mem{std::size_t{8} << 20};
    sriov_nic_config c;
    c.vfs = 1;
    auto n = sriov_nic::create(mem, c);
    REQUIRE(n.ok());
    igbvf_control ctl((*n)->vf(0).mailbox_port());
    mac_addr got{0x02, 0, 0, 0, 0, 0x77};
    const status st = ctl.reset(got);
    CHECK(st.ok());                       // a NACKed RESET is "no MAC", not a refusal
    CHECK(got == mac_addr{});
    CHECK((*n)->pf().stats(0).nacks == 1);  // as Linux's igb PF answers it
    CHECK(ctl.submit(control_request::make_set_mac(vf_mac)).ok());
    CHECK((*n)->pf().state(0).mac == vf_mac);
}

namespace {
// A PF as Linux's igb is one: it answers in word 0 only (NACK here), so word 1 still
// holds what the VF wrote.
struct word0_pf {
    std::uint32_t vmmb = 0;
    std::uint32_t mem[igbvf::mbx::size] = {};
    static std::uint32_t read(void* ctx, std::uint32_t off) noexcept {
        auto* p = static_cast<word0_pf*>(ctx);
        if (off == igbvf::reg::vmmb) {
            const std::uint32_t v = p->vmmb;
            p->vmmb &= ~igbvf::mbx::r2c_bits;
            return v;
        }
        return off >= igbvf::reg::vmbmem ? p->mem[(off - igbvf::reg::vmbmem) / 4 % igbvf::mbx::size] : 0;
    }
    static void write(void* ctx, std::uint32_t off, std::uint32_t v) noexcept {
        auto* p = static_cast<word0_pf*>(ctx);
        if (off == igbvf::reg::vmmb) {
            p->vmmb = (p->vmmb & ~(igbvf::mbx::vfu | igbvf::mbx::req)) | (v & igbvf::mbx::vfu);
            if ((v & igbvf::mbx::req) != 0) {
                p->mem[0] |= igbvf::mbx::msgtype_nack | igbvf::mbx::msgtype_cts;
                p->vmmb |= igbvf::mbx::pfack | igbvf::mbx::pfsts;
            }
        } else if (off >= igbvf::reg::vmbmem) {
            p->mem[(off - igbvf::reg::vmbmem) / 4 % igbvf::mbx::size] = v;
        }
    }
};
} // namespace

TEST_CASE("a NACK whose word 1 is the request's own data carries no reason") {
    word0_pf pf;
    igbvf_control ctl(igbvf_mailbox_port(igbvf_bar(&pf, &word0_pf::read, &word0_pf::write)));
    for (const std::uint16_t vid : std::initializer_list<std::uint16_t>{1, 2, 3, 4, 5, 6, 100}) {
        const status st = ctl.submit(control_request::make_vlan(true, vid));
        CHECK(st.code() == errc::refused);
        CHECK(std::string(st.reason()) == "refused by the PF");  // not a reason made of the VLAN id
    }
}

TEST_CASE("the sim PF writes only its reply's words and tags a NACK's reason") {
    bench b;
    const status no = b.ctl.submit(control_request::make_set_mac(foreign_mac));
    REQUIRE(no.code() == errc::refused);
    const igbvf_mailbox_port port = b.nic->vf(0).mailbox_port();
    CHECK(port.read_mem(1) == (igbvf::mbx::nack_reason_tag |
                               static_cast<std::uint32_t>(igbvf::nack_reason::mac_not_allowed)));
    CHECK(port.read_mem(2) == (std::uint32_t{foreign_mac[4]} | std::uint32_t{foreign_mac[5]} << 8));
}

TEST_CASE("a VF's CTRL.RST raises neither RSTI nor RSTD in its mailbox (only the PF's reset does)") {
    bench b;
    const igbvf_mailbox_port port = b.nic->vf(0).mailbox_port();
    CHECK((port.read_vmmb() & igbvf::mbx::rstd) != 0);  // the PF's reset done, at creation
    CHECK((port.read_vmmb() & igbvf::mbx::rstd) == 0);  // read to clear
    b.nic->vf(0).function_bar().write(igbvf::reg::ctrl, igbvf::ctrl_rst);
    CHECK((port.read_vmmb() & (igbvf::mbx::rsti | igbvf::mbx::rstd)) == 0);
}

namespace {
// A PF as Linux's igb with QEMU's mailbox: its CTS ping (PF_CONTROL_MSG) waits with PFSTS
// before the VF's request, and the reply comes a few polls after REQ, not at once.
struct ping_pf {
    std::uint32_t vmmb = igbvf::mbx::pfsts;
    std::uint32_t mem[igbvf::mbx::size] = {igbvf::mbx::pf_control_msg | igbvf::mbx::msgtype_cts};
    int reply_in = -1;  // reads of V2PMAILBOX until the reply
    bool ping_acked = false;
    static std::uint32_t read(void* ctx, std::uint32_t off) noexcept {
        auto* p = static_cast<ping_pf*>(ctx);
        if (off == igbvf::reg::vmmb) {
            if (p->reply_in > 0 && --p->reply_in == 0) {
                p->mem[0] |= igbvf::mbx::msgtype_ack | igbvf::mbx::msgtype_cts;
                p->vmmb |= igbvf::mbx::pfack | igbvf::mbx::pfsts;
            }
            const std::uint32_t v = p->vmmb;
            p->vmmb &= ~igbvf::mbx::r2c_bits;
            return v;
        }
        return off >= igbvf::reg::vmbmem ? p->mem[(off - igbvf::reg::vmbmem) / 4 % igbvf::mbx::size] : 0;
    }
    static void write(void* ctx, std::uint32_t off, std::uint32_t v) noexcept {
        auto* p = static_cast<ping_pf*>(ctx);
        if (off == igbvf::reg::vmmb) {
            p->vmmb = (p->vmmb & ~(igbvf::mbx::vfu | igbvf::mbx::req)) | (v & igbvf::mbx::vfu);
            if ((v & igbvf::mbx::ack) != 0 && (p->mem[0] & igbvf::mbx::msgid_mask) == igbvf::mbx::pf_control_msg) {
                p->ping_acked = true;
            }
            if ((v & igbvf::mbx::req) != 0) {
                p->reply_in = 3;
            }
        } else if (off >= igbvf::reg::vmbmem) {
            p->mem[(off - igbvf::reg::vmbmem) / 4 % igbvf::mbx::size] = v;
        }
    }
};
} // namespace

TEST_CASE("the PF's own message waiting in the mailbox is ACKed, not taken for the reply") {
    ping_pf pf;
    igbvf_control ctl(igbvf_mailbox_port(igbvf_bar(&pf, &ping_pf::read, &ping_pf::write)));
    const status st = ctl.submit(control_request::make_vlan(true, 100));
    CHECK(st.ok());
    CHECK(pf.ping_acked);
}

TEST_CASE("the sim PF pings every VF when it creates them, and the first request ACKs the ping") {
    bench b;
    const igbvf_mailbox_port port = b.nic->vf(0).mailbox_port();
    CHECK(port.read_mem(0) == (igbvf::mbx::pf_control_msg | igbvf::mbx::msgtype_cts));
    mac_addr got{};
    REQUIRE(b.ctl.reset(got).ok());
    CHECK(got == vf_mac);
    CHECK(b.ctl.pf_messages() == 1);
}

TEST_CASE("the PF's own reset (RSTI, then RSTD) makes health() say reset until RESET is redone") {
    bench b;
    mac_addr got{};
    REQUIRE(b.ctl.reset(got).ok());  // takes the RSTD of creation and the PF's ping
    CHECK(b.ctl.health() == errc::ok);
    REQUIRE(b.ctl.submit(control_request::make_vlan(true, 10)).ok());
    b.nic->pf().reset();  // RSTI: the PF is resetting
    CHECK(b.ctl.health() == errc::reset);
    CHECK(b.nic->pf().state(0).vlans.empty());  // the PF forgot the VF's filters
    b.nic->pf().reset_done();  // RSTD, read to clear; the reset stays noted
    CHECK(b.ctl.health() == errc::reset);
    CHECK(b.ctl.health() == errc::reset);
    // The PF takes nothing but RESET now; the handshake, asked for by the shell, clears it.
    CHECK(b.ctl.submit(control_request::make_vlan(true, 10)).code() == errc::refused);
    b.ctl.device_reset();
    REQUIRE(b.ctl.submit(control_request::make_vlan(true, 10)).ok());
    CHECK(b.ctl.health() == errc::ok);
    CHECK(b.nic->pf().state(0).vlans.count(10) == 1);
}

TEST_CASE("a PF message health() read past is still ACKed by the next request") {
    ping_pf pf;
    igbvf_control ctl(igbvf_mailbox_port(igbvf_bar(&pf, &ping_pf::read, &ping_pf::write)));
    CHECK(ctl.health() == errc::ok);  // clears PFSTS of the waiting ping
    CHECK((pf.vmmb & igbvf::mbx::pfsts) == 0);
    CHECK(ctl.submit(control_request::make_vlan(true, 100)).ok());
    CHECK(pf.ping_acked);
}
