// Wire, traffic measurement and the L2 switch.
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/traffic.hpp>

#include <doctest/doctest.h>

#include <array>

using namespace npa::sim;

namespace {
constexpr npa::mac_addr mac_a{2, 0, 0, 0, 0, 0xa}, mac_b{2, 0, 0, 0, 0, 0xb},
    mac_c{2, 0, 0, 0, 0, 0xc};
}

TEST_CASE("the sink measures loss, duplicates, reordering and corruption") {
    traffic_gen g(3, mac_a, mac_b);
    traffic_sink s;
    std::array<frame, 6> f{};
    for (auto& x : f) {
        g.build(x);
    }
    s.record(f[0].bytes());
    s.record(f[2].bytes());
    s.record(f[1].bytes()); // late
    s.record(f[2].bytes()); // again
    f[4].data[40] ^= std::byte{1};
    s.record(f[4].bytes()); // corrupt; f[3] and f[5] never arrive
    const auto r = s.report(3, g.sent());
    CHECK(r.sent == 6);
    CHECK(r.received == 3);
    CHECK(r.lost == 3);
    CHECK(r.duplicates == 1);
    CHECK(r.reordered == 1);
    CHECK(r.corrupt == 1);
}

TEST_CASE("the switch learns, forwards by MAC and VLAN, and floods the unknown") {
    l2_switch sw(3);
    traffic_peer a(1, mac_a, mac_b), b(2, mac_b, mac_a), c(3, mac_c, mac_a, 7);
    connect(sw.port_at(0), a);
    connect(sw.port_at(1), b);
    connect(sw.port_at(2), c); // every port a trunk (the default): member of every VLAN
    a.send(1);                 // b unknown: flooded to every other member of VLAN 0, b and c
    CHECK(b.frames_in() == 1);
    CHECK(c.frames_in() == 1);
    CHECK(sw.lookup(mac_a, 0) == 0);
    b.send(1); // a known on VLAN 0: only a
    CHECK(a.frames_in() == 1);
    CHECK(c.frames_in() == 1);
    c.send(1); // a on VLAN 7 is unknown: flooded to the other members of VLAN 7
    CHECK(a.frames_in() == 2);
    CHECK(b.frames_in() == 2);
    CHECK(sw.lookup(mac_c, 7) == 2);
    CHECK(sw.lookup(mac_c, 0) == -1);
    CHECK(b.report(1, 1).received == 1);
    CHECK(sw.stats(0).flooded == 1);
}

TEST_CASE("the switch floods only within the frame's VLAN") {
    constexpr npa::mac_addr mac_d{2, 0, 0, 0, 0, 0xd}, mac_t{2, 0, 0, 0, 0, 0xe};
    l2_switch sw(5);
    // a, b on VLAN 0 (untagged); c, d on VLAN 7; t a trunk (an uplink).
    traffic_peer a(1, mac_a, mac_b), b(2, mac_b, mac_a), c(3, mac_c, mac_d, 7),
        d(4, mac_d, mac_c, 7), t(5, mac_t, mac_a);
    const std::array<traffic_peer*, 5> peers{&a, &b, &c, &d, &t};
    for (std::size_t i = 0; i < peers.size(); ++i) {
        connect(sw.port_at(i), *peers[i]);
    }
    sw.set_vlans(0, {0});
    sw.set_vlans(1, {0});
    sw.set_vlans(2, {7});
    sw.set_vlans(3, {7});
    CHECK(sw.is_member(4, 7));
    CHECK_FALSE(sw.is_member(0, 7));

    c.send(1); // d unknown on VLAN 7: flooded to d and the trunk, not into VLAN 0
    CHECK(d.frames_in() == 1);
    CHECK(t.frames_in() == 1);
    CHECK(a.frames_in() == 0);
    CHECK(b.frames_in() == 0);
    a.send(1); // b unknown on VLAN 0: flooded to b and the trunk, not into VLAN 7
    CHECK(b.frames_in() == 1);
    CHECK(t.frames_in() == 2);
    CHECK(c.frames_in() == 0);
    CHECK(d.frames_in() == 1);
    d.send(1); // c known on VLAN 7: only c
    CHECK(c.frames_in() == 1);
    CHECK(t.frames_in() == 2);
    CHECK(sw.stats(2).flooded == 1);
    CHECK(sw.stats(2).out == 1);

    // A VLAN-7 frame offered on a VLAN-0 port is refused (ingress filtering), not forwarded.
    sw.set_vlans(2, {0});
    c.send(1);
    CHECK(sw.stats(2).filtered == 1);
    CHECK(d.frames_in() == 1);
    CHECK(t.frames_in() == 2);
    CHECK(a.frames_in() + b.frames_in() == 1);
    // Back to a trunk: VLAN 7 is forwarded again, to the known station d.
    sw.set_trunk(2);
    c.send(1);
    CHECK(d.frames_in() == 2);
    CHECK(a.frames_in() + b.frames_in() == 1);
}
