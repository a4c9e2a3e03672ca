// npa's own virtio-net front end (the plugin over the vhost-user transport) as one port of
// npa-vswitchd, and DPDK's net_virtio_user in dpdk-testpmd (macswap) as another: npa sends
// numbered frames to testpmd's MAC, testpmd sends each back with the MACs swapped, so every
// frame crosses the switch once each way. Every frame is accounted for on both sides: what
// npa sent equals the switch's rx_packets on npa's port, which equal the drops by cause plus
// what the DPDK port was given (testpmd's ipackets); what testpmd sent back equals the
// switch's rx_packets on its port, which equal the drops plus what npa's port was given (npa's
// rx_packets); what came back is checked byte for byte and in order, and after the warm-up
// nothing is dropped. Run with MRG_RXBUF on both front ends (eventfds), and off on both
// (npa's rings polled, the switch busy-polling); and both again with packed rings on both
// front ends (npa's net_config::packed_ring, testpmd's packed_vq=1). Skipped (exit 77) without dpdk-testpmd or
// root.
#include "vhost_net_kit.hpp"
#include "vswitchd_kit.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace npa::test::vhost_net;
using npa::test::testpmd;
using npa::test::vswitchd;
using npa::test::wait_until;

const std::string mac_npa = "02:00:00:00:00:0a", mac_dpdk = "02:00:00:00:00:0b";
constexpr mac self_mac{0x02, 0, 0, 0, 0, 0x0a}, peer_mac{0x02, 0, 0, 0, 0, 0x0b};

void run(bool mrg, bool polled, const std::string& tag, bool packed = false) {
    char tmpl[] = "/tmp/npa-vsw-npa-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    vswitchd d;
    // npa's rings polled (no kick descriptor): the switch polls too, as it never sleeps then.
    d.start(NPA_VSWITCHD, dir, {"npa,mac=" + mac_npa, "dpdk,mac=" + mac_dpdk},
            polled ? std::vector<std::string>{"--busy-poll"} : std::vector<std::string>{});

    testpmd pmd;
    pmd.start_vdev(NPA_TESTPMD,
                   "net_virtio_user0,path=" + dir + "/dpdk.sock,mac=" + mac_dpdk + ",queues=1" +
                       (mrg ? "" : ",mrg_rxbuf=0") + (packed ? ",packed_vq=1" : ""),
                   dir + "/testpmd.log", "npa-vswn-" + tag + std::to_string(::getpid()),
                   {"--forward-mode=macswap"});
    REQUIRE_MESSAGE(wait_until(20s, [&] { return d.state("dpdk") == "running"; }), d.log());
    vu::net_config c;
    c.socket = dir + "/npa.sock";
    c.polled = polled;
    c.mac = self_mac;
    c.packed_ring = packed;
    if (!mrg) {
        c.features_mask &= ~npa::virtio_net::feature::MRG_RXBUF;
    }
    net_port p(c, peer_mac);
    p.attach();
    CHECK(((p.plugin.features() & npa::virtio_net::feature::MRG_RXBUF) != 0) == mrg);
    CHECK(((p.plugin.features() & npa::virtio::feature::RING_PACKED) != 0) == packed);
    // EVENT_IDX on both layouts: on packed rings both event areas name positions (DESC).
    CHECK((p.plugin.features() & npa::virtio::feature::EVENT_IDX) != 0);
    REQUIRE_MESSAGE(wait_until(10s, [&] { return d.state("npa") == "running"; }), d.log());

    // The switch's counters once they no longer move (the JSON is rewritten five times a
    // second at most) and npa's port shows what the plugin counted.
    const auto settled = [&] {
        return wait_until(10s, [&] {
            const std::string a = d.json("npa") + d.json("dpdk");
            std::this_thread::sleep_for(300ms);
            (void)p.plugin.tx_reap(0);
            return a == d.json("npa") + d.json("dpdk") &&
                   d.counter("npa", "rx_packets") == static_cast<std::int64_t>(p.plugin.stats(0).tx_packets) &&
                   d.counter("npa", "tx_packets") == static_cast<std::int64_t>(p.plugin.stats(0).rx_packets);
        });
    };
    // Warm-up: virtio-user's rings run (DRIVER_OK at configure time) before testpmd's port
    // start posts receive buffers, so the first frames may find none: the switch counts
    // them (tx_no_buffer on testpmd's port). One frame at a time until one came back.
    constexpr std::uint64_t probe = 1ull << 40; // sequence numbers of warm-up frames
    std::uint64_t probes = 0, probes_back = 0;
    CHECK(wait_until(20s, [&] {
        probes += p.send(probe + probes, probe + probes + 1) - (probe + probes);
        (void)wait_until(200ms, [&] {
            return p.receive([&](const buffer_t&) { ++probes_back; }) != 0;
        });
        return probes_back != 0;
    }));
    REQUIRE(p.tx_drained());
    REQUIRE(settled());
    const std::int64_t drops0 = d.rx_drops("npa") + d.tx_drops("npa") + d.rx_drops("dpdk") + d.tx_drops("dpdk");
    const std::int64_t to_dpdk0 = d.counter("dpdk", "tx_packets"), from_dpdk0 = d.counter("dpdk", "rx_packets");
    // testpmd's own counters start at its forwarding start, which flushes what its receive
    // queue held then: they are compared over the counted run only.
    const std::int64_t i0 = pmd.port_stat("ipackets"), o0 = pmd.port_stat("opackets");

    constexpr std::uint64_t n = 10000;
    constexpr std::uint64_t window = 128; // fewer than either receive ring holds
    std::uint64_t next = 0, back = 0, bad = 0;
    const auto on_frame = [&](const buffer_t& b) { bad += swapped_back(b, self_mac, peer_mac, back++) ? 0 : 1; };
    const auto t0 = std::chrono::steady_clock::now();
    const bool done = wait_until(60s, [&] {
        for (int k = 0; k < 64 && back < n; ++k) {
            if (next < n && next - back < window) {
                next = p.send(next, std::min(n, back + window));
            }
            (void)p.receive(on_frame);
        }
        return back >= n;
    });
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(p.tx_drained());
    CHECK(settled());
    INFO("sent ", next, ", back ", back, ", warm-up frames ", probes, "\n", d.json("npa"), "\n", d.json("dpdk"),
         "\n", pmd.telemetry("/ethdev/xstats,0"), "\n", d.log());
    CHECK(done);
    CHECK(bad == 0);
    // Every frame that left one side is delivered or counted by cause, warm-up included:
    //   npa -> switch -> testpmd
    const std::int64_t to_dpdk = d.counter("dpdk", "tx_packets");
    CHECK(d.counter("npa", "rx_packets") == static_cast<std::int64_t>(next + probes));
    CHECK(d.counter("npa", "rx_packets") == d.rx_drops("npa") + to_dpdk + d.tx_drops("dpdk"));
    CHECK(pmd.port_stat("ipackets") - i0 == to_dpdk - to_dpdk0);
    //   testpmd -> switch -> npa
    CHECK(d.counter("dpdk", "rx_packets") - from_dpdk0 == pmd.port_stat("opackets") - o0);
    CHECK(d.counter("dpdk", "rx_packets") == d.rx_drops("dpdk") + d.counter("npa", "tx_packets") + d.tx_drops("npa"));
    CHECK(static_cast<std::int64_t>(p.plugin.stats(0).rx_packets) == d.counter("npa", "tx_packets"));
    // After the warm-up, with at most `window` in flight, nothing is dropped at all.
    CHECK(back == n);
    CHECK(to_dpdk - to_dpdk0 == static_cast<std::int64_t>(n));
    CHECK(d.rx_drops("npa") + d.tx_drops("npa") + d.rx_drops("dpdk") + d.tx_drops("dpdk") == drops0);
    CHECK(d.counter("npa", "rx_bad_chain") + d.counter("npa", "tx_bad_chain") == 0);
    CHECK(p.plugin.stats(0).bad_completion == 0);
    CHECK(p.plugin.health() == npa::errc::ok);
    char line[200];
    std::snprintf(line, sizeof line,
                  "%s: %llu frames npa -> testpmd -> npa through npa-vswitchd in %.2f s, %llu warm-up frames "
                  "(%lld dropped: no buffer yet), features 0x%llx",
                  tag.c_str(), static_cast<unsigned long long>(n), secs, static_cast<unsigned long long>(probes),
                  static_cast<long long>(drops0), static_cast<unsigned long long>(p.plugin.features()));
    MESSAGE(line);
    p.plugin.detach();
    CHECK(p.api->audit().balanced());
    pmd.kill9();
    std::filesystem::remove_all("/var/run/dpdk/" + pmd.prefix);
    ::unlink((dir + "/testpmd.log").c_str());
}

} // namespace

TEST_CASE("npa's virtio-net front end and a testpmd virtio-user port on npa-vswitchd") {
#ifndef NPA_TESTPMD
    MESSAGE("dpdk-testpmd not found: skipped");
    std::exit(77);
#else
    if (::geteuid() != 0) {
        MESSAGE("not root: skipped");
        std::exit(77);
    }
    SUBCASE("MRG_RXBUF on both front ends, eventfds") { run(true, false, "m"); }
    SUBCASE("MRG_RXBUF off on both, npa's rings polled") { run(false, true, "p"); }
    SUBCASE("packed rings on both, MRG_RXBUF on, eventfds") { run(true, false, "km", true); }
    SUBCASE("packed rings on both, MRG_RXBUF off, npa's rings polled") {
        run(false, true, "kp", true);
    }
#endif
}
