// Wire, traffic measurement and the L2 switch.
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/traffic.hpp>

#include <doctest/doctest.h>

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
    s.record(f[1].bytes());  // late
    s.record(f[2].bytes());  // again
    f[4].data[40] ^= std::byte{1};
    s.record(f[4].bytes());  // corrupt; f[3] and f[5] never arrive
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
    connect(sw.port_at(2), c);
    a.send(1);  // b unknown: flooded to b and c
    CHECK(b.frames_in() == 1);
    CHECK(c.frames_in() == 1);
    CHECK(sw.lookup(mac_a, 0) == 0);
    b.send(1);  // a known on VLAN 0: only a
    CHECK(a.frames_in() == 1);
    CHECK(c.frames_in() == 1);
    c.send(1);  // a on VLAN 7 is unknown: flooded
    CHECK(a.frames_in() == 2);
    CHECK(b.frames_in() == 2);
    CHECK(sw.lookup(mac_c, 7) == 2);
    CHECK(sw.lookup(mac_c, 0) == -1);
    CHECK(b.report(1, 1).received == 1);
    CHECK(sw.stats(0).flooded == 1);
}
