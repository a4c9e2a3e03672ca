// Policy and abuse on the emulated path: a guest asks the vmxnet3 device (through the
// shell-side vmxnet3_control, as the shell would) for a MAC it does not own, a VLAN it was
// not given, and promiscuous mode it may not have; each request
// is refused, counted by the device, and changes nothing. The VF's equivalents (PF
// mailbox NACKs, the embedded switch's anti-spoofing and VLAN checks) are in
// tests/plugins/igbvf_mailbox_test.cpp; fuzz/pf_mailbox_fuzz.cpp and
// fuzz/vmxnet3_command_fuzz.cpp check the same policies against any guest input.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <npa/sim/vmxnet3_rig.hpp>

namespace sim = npa::sim;
using npa::control_request;
using npa::errc;

namespace {
constexpr npa::mac_addr rogue_mac{0x02, 0, 0, 0, 0, 0x66};
}

TEST_CASE("vmxnet3: MAC, VLAN and promiscuous requests outside policy are refused and counted") {
    sim::vmxnet3_rig r;
    REQUIRE(r.ok());
    sim::vmxnet3_list_policy pol;
    pol.macs = {sim::vmxnet3_rig::guest_mac};
    pol.vlans = {10};
    r.device().set_policy(&pol);
    const std::uint64_t before = r.device().refusals();

    CHECK(r.control().submit(control_request::make_set_mac(rogue_mac)).code() == errc::refused);
    CHECK(r.device().mac() == sim::vmxnet3_rig::guest_mac);

    CHECK(r.control().submit(control_request::make_vlan(true, 11)).code() == errc::refused);
    CHECK_FALSE(r.device().vlan_allowed(11));
    CHECK(r.control().submit(control_request::make_vlan(true, 10)).ok());
    CHECK(r.device().vlan_allowed(10));

    CHECK(r.control().submit(control_request::make_rx_mode(npa::rx_mode::promisc)).code() ==
          errc::refused);
    CHECK((r.device().rx_mode() & npa::vmxnet3::rxm::PROMISC) == 0);

    CHECK(r.device().refusals() >= before + 3);  // MAC, VLAN, promiscuous: the device's count
}

TEST_CASE("vmxnet3: a guest that empties its VLAN table still receives only the VLANs it was given") {
    // Regression: an empty VLAN table used to mean "no filtering" even under a VLAN policy.
    sim::vmxnet3_rig r;
    REQUIRE(r.ok());
    sim::vmxnet3_list_policy pol;
    pol.vlans = {10};
    r.device().set_policy(&pol);
    REQUIRE(r.control().submit(control_request::make_vlan(true, 10)).ok());
    REQUIRE(r.control().submit(control_request::make_vlan(false, 10)).ok());  // table empty
    CHECK(r.device().vlan_allowed(0));   // untagged
    CHECK(r.device().vlan_allowed(10));  // given
    CHECK_FALSE(r.device().vlan_allowed(11));
    CHECK_FALSE(r.device().vlan_allowed(4095));
}
