// fuzz/pf_mailbox_fuzz.cpp: a hostile guest on the PF mailbox of the sim 82576 (sriov_nic).
//
// The VF side of the mailbox (82576 datasheet 7.8.2.9: V2PMAILBOX and VMBMEM) belongs to
// the guest, so every bit of it is outside input for the PF driver: the fuzzer writes
// message words and mailbox control bits in any order, sends whole messages with any id,
// info and payload, and lets the NIC run.
//
// Invariants after every operation, for both VFs: what the PF has accepted stays inside
// the VF's policy (MAC assigned or allowed, VLANs allowed and never with a port VLAN, MTU
// within the maximum, promiscuous only if allowed, at most 30 multicast hashes), and a
// VF's messages never change the other VF's state.
#include "fuzz_input.hpp"

#include <npa/plugins/igbvf/defs.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/sriov_nic.hpp>

#include <algorithm>
#include <array>
#include <memory>

namespace {

namespace m = npa::igbvf::mbx;

constexpr std::uint32_t message_ids[] = {m::vf_reset,  m::vf_set_mac_addr, m::vf_set_multicast,
                                         m::vf_set_vlan, m::vf_set_lpe,   m::vf_set_promisc};

struct bench {
    npa::sim::guest_memory mem{std::size_t{1} << 20};
    std::unique_ptr<npa::sim::sriov_nic> nic;
    std::array<npa::sim::vf_state, 2> initial{};
};

void check_policy(npa::sim::sriov_nic& nic, std::uint16_t vf, const npa::sim::vf_state& initial) {
    const npa::sim::vf_policy& p = nic.pf().policy(vf);
    const npa::sim::vf_state s = nic.pf().state(vf);
    const bool mac_ok = s.mac == p.default_mac || s.mac == initial.mac ||
                        std::find(p.allowed_macs.begin(), p.allowed_macs.end(), s.mac) !=
                            p.allowed_macs.end();
    NPA_FUZZ_CHECK(mac_ok);
    for (const std::uint16_t v : s.vlans) {
        NPA_FUZZ_CHECK(v != 0 && v <= npa::max_vlan_id);
        NPA_FUZZ_CHECK(p.port_vlan == 0);
        NPA_FUZZ_CHECK(p.allowed_vlans.empty() ||
                       std::find(p.allowed_vlans.begin(), p.allowed_vlans.end(), v) !=
                           p.allowed_vlans.end());
    }
    NPA_FUZZ_CHECK(s.mtu <= p.max_mtu);
    NPA_FUZZ_CHECK(!s.promisc || p.promisc_allowed);
    NPA_FUZZ_CHECK(s.mcast_count <= m::max_mcast_hashes);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    npa::fuzz::input in(data, size);
    auto b = std::make_unique<bench>();
    npa::sim::sriov_nic_config nc;
    nc.vfs = 2;
    nc.vf.limits.queues = 1;
    auto nic = npa::sim::sriov_nic::create(b->mem, nc);
    NPA_FUZZ_CHECK(nic.ok());
    b->nic = std::move(*nic);
    npa::sim::sriov_nic& n = *b->nic;
    npa::sim::vf_policy p0;
    p0.default_mac = {0x02, 0, 0, 0, 0x76, 0x01};
    p0.allowed_macs = {{0x02, 0, 0, 0, 0x76, 0x11}};
    p0.allowed_vlans = {10, 20};
    p0.max_mtu = 1500;
    n.pf().set_policy(0, p0);
    npa::sim::vf_policy p1;
    p1.default_mac = {0x02, 0, 0, 0, 0x76, 0x02};
    p1.port_vlan = 5;
    p1.max_mtu = 9000;
    p1.promisc_allowed = true;
    n.pf().set_policy(1, p1);
    for (std::uint16_t v = 0; v < 2; ++v) b->initial[v] = n.pf().state(v);

    for (int op = 0; op < 256 && !in.empty(); ++op) {
        const auto vf = static_cast<std::uint16_t>(in.below(2));
        const npa::sim::vf_state other_before = n.pf().state(static_cast<std::uint16_t>(1 - vf));
        const npa::igbvf_mailbox_port port = n.vf(vf).mailbox_port();
        switch (in.u8() % 6) {
        case 0: port.write_mem(in.u8(), in.u32()); break;
        case 1: port.write_vmmb(in.u32()); break;
        case 2: (void)port.read_vmmb(); (void)port.read_mem(in.u8()); break;
        case 3: n.step(); break;
        default: { // a whole message, by the handshake or not
            std::uint32_t w0 = message_ids[in.below(6)];
            if (in.flag()) w0 = in.u32();
            w0 |= (std::uint32_t{in.u8()} << m::msginfo_shift) & m::msginfo_mask;
            if (in.flag()) port.write_vmmb(m::vfu);
            port.write_mem(0, w0);
            const std::uint32_t words = in.below(m::size);
            for (std::uint32_t i = 1; i <= words; ++i) port.write_mem(i, in.u32());
            port.write_vmmb(m::req | (in.flag() ? m::vfu : 0));
            if (in.flag()) {
                (void)port.read_vmmb();
                port.write_vmmb(m::ack);
            }
            break;
        }
        }
        check_policy(n, 0, b->initial[0]);
        check_policy(n, 1, b->initial[1]);
        const npa::sim::vf_state other_after = n.pf().state(static_cast<std::uint16_t>(1 - vf));
        NPA_FUZZ_CHECK(other_after.mac == other_before.mac &&
                       other_after.vlans == other_before.vlans &&
                       other_after.mtu == other_before.mtu &&
                       other_after.promisc == other_before.promisc);
    }
    return 0;
}
