// Policy and abuse: a guest asks the vmxnet3 device (through the shell-side
// vmxnet3_control, as the shell would) for a MAC it does not own, a VLAN it was not given,
// and promiscuous mode it may not have; each request is refused and counted by the device
// and changes nothing (the guest sees the MAC refused in MACL/MACH, the filters only in
// the traffic, as no driver reads CMD after UPDATE_*). Frames it sends with a MAC it does not own, on a VLAN it was not
// given, or longer than the MTU it was given are dropped and counted, never delivered, and
// their buffers come back; the same for frames above its MTU on the 82576 VF (the
// embedded switch polices the MTU the PF accepted). The VF's other equivalents (PF
// mailbox NACKs, the embedded switch's anti-spoofing and VLAN checks) are in
// tests/plugins/igbvf_mailbox_test.cpp; fuzz/pf_mailbox_fuzz.cpp and
// fuzz/vmxnet3_command_fuzz.cpp check the same policies against any guest input.
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/sim/igbvf_rig.hpp>
#include <npa/sim/vmxnet3_rig.hpp>

#include <cstring>
#include <vector>

namespace sim = npa::sim;
using npa::control_request;
using npa::errc;

namespace {
constexpr npa::mac_addr rogue_mac{0x02, 0, 0, 0, 0, 0x66};

/// Sends n frames of flow `flow`, each `len` bytes long, through plugin p; every one is
/// taken (or refused and handed back) by the plugin, then the device runs.
template <class Rig, class Plugin>
void send_sized(Rig& r, Plugin& p, std::uint32_t flow, std::uint32_t len, std::uint32_t n) {
    std::vector<npa::buffer_ref> b(n);
    REQUIRE(r.api().alloc_tx(b) == n);
    for (auto& x : b) {
        REQUIRE(len <= x.capacity());
        r.build_tx(x, flow, len);
    }
    r.api().offer(b);
    REQUIRE(p.tx_burst(0, b) == n);
    r.step(4);
    (void)p.tx_reap(0);
}

template <class Rig, class Plugin>
void detach_and_audit(Rig& r, Plugin& p) {
    CHECK(p.tx_in_flight(0) == 0); // every descriptor completed
    p.detach();
    r.api().free(r.api().take_unsent());
    CHECK(r.api().audit().balanced());
    CHECK(r.api().audit().in_pool == r.api().audit().total);
    CHECK(r.violations().empty());
}

npa::igbvf_control vf_control(sim::igbvf_rig& r) {
    return npa::igbvf_control(
        r.device().mailbox_port(),
        [](void* c) noexcept { static_cast<sim::igbvf_rig*>(c)->step(); }, &r);
}
} // namespace

TEST_CASE("vmxnet3: MAC, VLAN and promiscuous requests outside policy are refused and counted") {
    sim::vmxnet3_rig r;
    REQUIRE(r.ok());
    sim::vmxnet3_list_policy pol;
    pol.allowed_macs = {sim::vmxnet3_rig::guest_mac};
    pol.allowed_vlans = {10};
    r.device().set_policy(&pol);
    const std::uint64_t before = r.device().refusals();

    CHECK(r.control().submit(control_request::make_set_mac(rogue_mac)).code() == errc::refused);
    CHECK(r.device().mac() == sim::vmxnet3_rig::guest_mac);

    // The filter commands have no answer the guest reads (Linux's driver never reads CMD
    // after them): the request goes through, and the device keeps what the policy allows.
    CHECK(r.control().submit(control_request::make_vlan(true, 11)).ok());
    CHECK_FALSE(r.device().vlan_allowed(11));
    CHECK(r.control().submit(control_request::make_vlan(true, 10)).ok());
    CHECK(r.device().vlan_allowed(10));

    CHECK(r.control().submit(control_request::make_rx_mode(npa::rx_mode::promisc)).ok());
    CHECK((r.device().rx_mode() & npa::vmxnet3::rxm::PROMISC) == 0);

    CHECK(r.device().refusals() >= before + 3); // MAC, VLAN, promiscuous: the device's count
}

TEST_CASE(
    "vmxnet3: a guest that empties its VLAN table still receives only the VLANs it was given") {
    // Regression: an empty VLAN table used to mean "no filtering" even under a VLAN policy.
    sim::vmxnet3_rig r;
    REQUIRE(r.ok());
    sim::vmxnet3_list_policy pol;
    pol.allowed_vlans = {10};
    r.device().set_policy(&pol);
    REQUIRE(r.control().submit(control_request::make_vlan(true, 10)).ok());
    REQUIRE(r.control().submit(control_request::make_vlan(false, 10)).ok());
    CHECK(r.device().vlan_allowed(0)); // VID 0 stays in the table: untagged only
    CHECK_FALSE(r.device().vlan_allowed(10));
    REQUIRE(r.control().submit(control_request::make_vlan(false, 0)).ok()); // table empty
    CHECK(r.device().vlan_allowed(0));                                       // untagged
    CHECK(r.device().vlan_allowed(10));                                      // given
    CHECK_FALSE(r.device().vlan_allowed(11));
    CHECK_FALSE(r.device().vlan_allowed(4095));
}

TEST_CASE("vmxnet3: frames sent with a MAC the guest does not own or on a VLAN it was not given "
          "are dropped") {
    sim::vmxnet3_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    sim::vmxnet3_rig r(c);
    REQUIRE(r.ok());
    sim::vmxnet3_list_policy pol;
    pol.allowed_macs = {sim::vmxnet3_rig::guest_mac};
    pol.allowed_vlans = {10};
    r.device().set_policy(&pol);
    REQUIRE(r.control().submit(control_request::make_vlan(true, 10)).ok());
    npa::vmxnet3_plugin<sim::vmxnet3_rig::api_type> p;
    REQUIRE(p.attach(r.api(), r.window(), r.queue_cfg()).ok());

    // kind 0: honest; 1: forged source MAC; 2: tagged VLAN 11 (not given); 3: tagged VLAN 10.
    auto send = [&](std::uint32_t flow, int kind, std::uint32_t n) {
        std::vector<npa::buffer_ref> b(n);
        REQUIRE(r.api().alloc_tx(b) == n);
        for (auto& x : b) {
            r.build_tx(x, flow);
            std::byte* f = x.data();
            if (kind == 1) {
                std::memcpy(f + 6, rogue_mac.data(), 6);
            } else if (kind >= 2) { // an 802.1Q tag written into the frame by the guest
                std::memmove(f + 16, f + 12, x.length() - 12);
                f[12] = std::byte{0x81};
                f[13] = std::byte{0x00};
                f[14] = std::byte{0x00};
                f[15] = std::byte{static_cast<unsigned char>(kind == 2 ? 11 : 10)};
                x.set_length(x.length() + 4);
            }
        }
        r.api().offer(b);
        REQUIRE(p.tx_burst(0, b) == n);
        r.step(4);
        (void)p.tx_reap(0);
    };
    send(1, 0, 8);
    send(2, 1, 8);
    send(3, 2, 8);
    send(4, 3, 8);
    r.step(4);
    (void)p.tx_reap(0);

    const auto st = r.device().counters(0);
    CHECK(st.tx_spoofed == 8);
    CHECK(st.tx_vlan_refused == 8);
    CHECK(st.tx_frames == 16);               // the honest frames and VLAN 10's
    CHECK(r.far_report(1, 8).lost == 0);     // delivered
    CHECK(r.far_report(2, 8).received == 0); // never delivered
    detach_and_audit(r, p);
}

TEST_CASE("vmxnet3: frames above the MTU the guest activated with are dropped and counted, never "
          "delivered") {
    sim::vmxnet3_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    sim::vmxnet3_rig r(c);
    REQUIRE(r.ok());
    npa::vmxnet3_plugin<sim::vmxnet3_rig::api_type> p;
    npa::queue_config qc = r.queue_cfg();
    qc.mtu = 1000; // far below the 1518-byte wire limit: the device must police this MTU
    REQUIRE(p.attach(r.api(), r.window(), qc).ok());

    send_sized(r, p, 1, 1014, 8); // 1000 bytes of payload: at the MTU
    // 1002: the plugin lets it pass (room for a tag), the device drops it
    send_sized(r, p, 2, 1016, 8);
    send_sized(r, p, 3, 1018, 8); // 1004: the same
    send_sized(r, p, 4, 1200, 8); // refused by the plugin already
    r.step(4);
    (void)p.tx_reap(0);

    const auto st = r.device().counters(0);
    CHECK(st.tx_oversize == 16);
    CHECK(p.stats(0).tx_errors == 8);
    CHECK(st.tx_frames == 8);
    CHECK(r.far_report(1, 8).lost == 0);
    CHECK(r.far_report(2, 8).received == 0);
    CHECK(r.far_report(3, 8).received == 0);
    CHECK(r.far_report(4, 8).received == 0);
    detach_and_audit(r, p);
}

TEST_CASE(
    "82576 VF: frames above the MTU the PF gave are dropped by the embedded switch and counted") {
    sim::igbvf_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    sim::igbvf_rig r(c);
    REQUIRE(r.ok());
    sim::vf_policy pol;
    pol.default_mac = sim::igbvf_rig::guest_mac;
    pol.max_mtu = 1000; // the VF starts at 1000, not at 1500
    r.nic().pf().set_policy(0, pol);
    npa::igbvf_control ctl = vf_control(r);
    CHECK(ctl.submit(npa::control_request::make_mtu(1500)).code() == errc::refused);
    const std::uint64_t nacks = r.nic().pf().stats(0).nacks;
    CHECK(nacks >= 1);

    npa::igbvf_plugin<sim::igbvf_rig::api_type> p;
    REQUIRE(p.attach(r.api(), r.window(), r.queue_cfg()).ok()); // the plugin believes 1500

    send_sized(r, p, 1, 1014, 8); // at the MTU: delivered
    send_sized(r, p, 2, 1015, 8); // one byte over
    send_sized(r, p, 3, 1514, 8); // a full 1500-byte frame the PF never allowed
    r.step(4);
    (void)p.tx_reap(0);

    const auto sw = r.nic().switch_stats(0);
    CHECK(sw.oversize == 16);
    CHECK(p.stats(0).tx_packets == 24); // the VF sent them all; the switch dropped 16
    CHECK(r.far_report(1, 8).lost == 0);
    CHECK(r.far_report(2, 8).received == 0);
    CHECK(r.far_report(3, 8).received == 0);
    detach_and_audit(r, p);
}

TEST_CASE("82576 VF: a frame with no room left for its port VLAN tag is dropped and counted") {
    sim::igbvf_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    sim::igbvf_rig r(c);
    REQUIRE(r.ok());
    sim::vf_policy pol;
    pol.default_mac = sim::igbvf_rig::guest_mac;
    pol.port_vlan = 5;
    pol.max_mtu = 1504;
    r.nic().pf().set_policy(0, pol);
    npa::igbvf_control ctl = vf_control(r);
    REQUIRE(ctl.submit(npa::control_request::make_mtu(1504)).ok());

    npa::igbvf_plugin<sim::igbvf_rig::api_type> p;
    REQUIRE(p.attach(r.api(), r.window(), r.queue_cfg()).ok());
    send_sized(r, p, 1, 1518, 8); // within the MTU, but 1522 bytes once tagged: no wire carries it
    r.step(4);
    (void)p.tx_reap(0);

    const auto sw = r.nic().switch_stats(0);
    CHECK(sw.oversize == 8);
    CHECK(sw.to_uplink == 0);
    CHECK(r.far_report(1, 8).received == 0);
    detach_and_audit(r, p);
}
