// npa-linkd end to end: ping and iperf3 from this namespace through the TAP to a peer
// namespace over each plugin, live switches under traffic, surprise removal, MAC/MTU/
// VLAN policy, and bad input. Every count asserted comes from the tools' own output
// (ping's summary, iperf3's receiver line) or from npactl.
#define DOCTEST_CONFIG_IMPLEMENT
#include "linkd_kit.hpp"

#include <future>

using npa_test::linkd_process;
using npa_test::sh;
using npa_test::sh_out;
using npa_test::topology;

namespace {

const std::vector<std::string> two_lowers = {"--tap",           "npa0",    "--lower",
                                             "va0:af_xdp:copy", "--lower", "va1:af_packet",
                                             "--min-dwell-ms",  "0"};

void guest_ip() { REQUIRE(sh("ip addr add 10.77.0.1/24 dev npa0")); }

// Runs a command in the background; get() waits for it and returns its output.
std::future<std::string> background(const std::string& cmd) {
    return std::async(std::launch::async, [cmd] { return sh_out(cmd + " 2>&1"); });
}

std::string iperf_server(const topology& t, int port) {
    sh(t.in_peer("iperf3 -s -1 -D -p " + std::to_string(port)));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return "iperf3 -c 10.77.0.2 -p " + std::to_string(port);
}

} // namespace

TEST_CASE("ping and iperf3 through the TAP over AF_XDP, then over AF_PACKET") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    const auto [rc, st] = d.ctl("--json status");
    CHECK(rc == 0);
    CHECK(st.find("\"active\":\"va0\"") != std::string::npos);
    CHECK(st.find("\"plugin\":\"af_xdp\"") != std::string::npos);
    // The stack hands the TAP frames with TCP/UDP checksums to finish (TUN_F_CSUM); the
    // peer's veth ends offload theirs too (topology checks): both directions must work.
    const std::string k = sh_out("ethtool -k npa0");
    CHECK_MESSAGE(k.find("tx-checksumming: on") != std::string::npos, k);

    for (const char* lower : {"va0", "va1"}) {
        CAPTURE(lower);
        if (std::string(lower) == "va1") {
            const auto [src, sout] = d.ctl("switch va1");
            REQUIRE_MESSAGE(src == 0, sout);
            CHECK(d.ctl("--json status").second.find("\"plugin\":\"af_packet\"") !=
                  std::string::npos);
        }
        int sent = 0, received = 0;
        const std::string p = sh_out("ping -c 20 -i 0.01 -W 2 10.77.0.2");
        REQUIRE(npa_test::ping_counts(p, sent, received));
        CHECK(sent == 20);
        CHECK(received == 20);
        const std::string ip = sh_out(iperf_server(t, 5201) + " -t 1 2>&1");
        const double mbits = npa_test::iperf_receiver_mbits(ip);
        CHECK_MESSAGE(mbits > 0, ip);
        MESSAGE(lower << ": " << mbits << " Mbit/s");
    }
    const auto [xrc, stats] = d.ctl("--json stats");
    CHECK(xrc == 0);
    CHECK(stats.find("\"lost\":0") != std::string::npos);
    CHECK(stats.find("\"audit_ok\":true") != std::string::npos);
}

TEST_CASE("100 switches during an iperf3 run and a fast ping: no ping lost, TCP completes") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    // Warm up ARP so the first ping is not spent resolving.
    sh("ping -c 1 -W 2 10.77.0.2");
    const std::string client = iperf_server(t, 5202);
    auto iperf = background(client + " -t 8");
    auto ping = background("ping -c 1200 -i 0.005 -W 2 10.77.0.2");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int ok = 0;
    for (int i = 0; i < 100; ++i) {
        const auto [rc, out] = d.ctl("--json switch next");
        if (rc == 0) {
            ++ok;
        } else {
            MESSAGE(out);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(ok == 100);
    const std::string p = ping.get();
    const std::string ip = iperf.get();
    int sent = 0, received = 0;
    REQUIRE_MESSAGE(npa_test::ping_counts(p, sent, received), p);
    CHECK(sent == 1200);
    CHECK_MESSAGE(received == sent, p);
    CHECK_MESSAGE(npa_test::iperf_receiver_mbits(ip) > 0, ip);
    const auto [rc, stats] = d.ctl("--json stats");
    CHECK(stats.find("\"lost\":0") != std::string::npos);
    CHECK(stats.find("\"failures\":0") != std::string::npos);
    MESSAGE(stats);
    MESSAGE("iperf3 across 100 switches: " << npa_test::iperf_receiver_mbits(ip) << " Mbit/s");
}

TEST_CASE("surprise removal of the active lower during traffic: the linkd_process switches, TCP "
          "survives") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    sh("ping -c 1 -W 2 10.77.0.2");
    const std::string client = iperf_server(t, 5203);
    auto iperf = background(client + " -t 3");
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    REQUIRE(sh("ip link del va0"));
    const std::string ip = iperf.get();
    CHECK_MESSAGE(npa_test::iperf_receiver_mbits(ip) > 0, ip << d.log());
    CHECK_MESSAGE(d.alive(), d.log());
    const auto [rc, st] = d.ctl("--json status");
    CHECK_MESSAGE(st.find("\"active\":\"va1\"") != std::string::npos, d.log());
    CHECK(st.find("\"active\":\"va1\"") != std::string::npos);
    CHECK(st.find("\"state\":\"missing\"") != std::string::npos);
    int sent = 0, received = 0;
    REQUIRE(npa_test::ping_counts(sh_out("ping -c 10 -i 0.01 -W 2 10.77.0.2"), sent, received));
    CHECK(received == 10);
    CHECK_MESSAGE(d.log().find("switching away") != std::string::npos, d.log());
    // The lower comes back: the linkd_process prefers it again (failback).
    t.add_lower(0);
    bool back = false;
    for (int i = 0; i < 50 && !back; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        back = d.ctl("--json status").second.find("\"active\":\"va0\"") != std::string::npos;
    }
    CHECK(back);
}

TEST_CASE("MAC, MTU and VLAN changes on the TAP are applied or refused by policy") {
    topology t;
    const std::string pol = "/tmp/npa-test-policy-" + std::to_string(::getpid());
    {
        std::FILE* f = std::fopen(pol.c_str(), "w");
        std::fputs("# test policy\nallow_mac = 02:00:00:00:00:01\nallow_mac = 02:00:00:00:00:02\n"
                   "allow_vlan = 10\nmtu_min = 1280\nmtu_max = 1500\n",
                   f);
        std::fclose(f);
    }
    auto args = two_lowers;
    args.insert(args.end(), {"--policy", pol});
    linkd_process d(args);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    auto link = [] { return sh_out("ip link show dev npa0"); };
    auto eventually = [](auto pred) {
        for (int i = 0; i < 60; ++i) {
            if (pred())
                return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    };
    CHECK(link().find("02:00:00:00:00:01") != std::string::npos);
    // Allowed MAC: applied, the shell reports it.
    REQUIRE(sh("ip link set npa0 address 02:00:00:00:00:02"));
    CHECK(eventually([&] {
        return d.ctl("--json status").second.find("02:00:00:00:00:02") != std::string::npos;
    }));
    // Disallowed MAC: refused and the interface reverted.
    REQUIRE(sh("ip link set npa0 address 02:00:00:00:00:99"));
    CHECK(eventually([&] { return link().find("02:00:00:00:00:02") != std::string::npos; }));
    CHECK(d.ctl("--json status").second.find("02:00:00:00:00:02") != std::string::npos);
    // MTU inside the range: applied; outside: refused, reverted.
    REQUIRE(sh("ip link set npa0 mtu 1400"));
    CHECK(eventually(
        [&] { return d.ctl("--json status").second.find("\"mtu\":1400") != std::string::npos; }));
    REQUIRE(sh("ip link set npa0 mtu 1000"));
    CHECK(eventually([&] { return link().find("mtu 1400") != std::string::npos; }));
    CHECK(d.ctl("--json status").second.find("\"mtu\":1400") != std::string::npos);
    // VLAN 10 allowed, 20 refused (the VLAN interface is removed again), where the
    // kernel has VLAN support (8021q).
    int vlans = 0;
    if (sh("ip link add link npa0 name npa0.10 type vlan id 10")) {
        vlans = 1;
        REQUIRE(sh("ip link add link npa0 name npa0.20 type vlan id 20"));
        CHECK(eventually([] { return !sh("ip link show dev npa0.20"); }));
        CHECK(sh("ip link show dev npa0.10"));
    } else {
        MESSAGE("this kernel has no 802.1Q support: VLAN policy not exercised");
    }
    const auto [rc, stats] = d.ctl("--json stats");
    CHECK(stats.find("\"control_refused\":" + std::to_string(2 + vlans)) != std::string::npos);
    CHECK(stats.find("\"control_applied\":" + std::to_string(2 + vlans)) != std::string::npos);
    // Traffic still flows with the new MAC and MTU.
    int sent = 0, received = 0;
    REQUIRE(npa_test::ping_counts(sh_out("ping -c 5 -i 0.01 -W 2 10.77.0.2"), sent, received));
    CHECK(received == 5);
    if (vlans != 0)
        sh("ip link del npa0.10");
    ::unlink(pol.c_str());
}

TEST_CASE("bad flags, config and control messages get a clear error; the linkd_process stays up") {
    topology t;
    auto run = [](const std::string& args) {
        const std::string out = sh_out(npa_test::linkd_bin + " " + args + " 2>&1; echo \"rc=$?\"");
        return out;
    };
    CHECK(run("--bogus").find("unknown flag '--bogus'") != std::string::npos);
    CHECK(run("--lower va0:af_foo").find("unknown plugin 'af_foo'") != std::string::npos);
    CHECK(run("--lower va0:af_packet:copy").find("only applies to af_xdp") != std::string::npos);
    CHECK(run("--lower va0:af_xdp --mac 01:00:00:00:00:01").find("not a unicast MAC") !=
          std::string::npos);
    CHECK(run("--tap npa0").find("no lower interface") != std::string::npos);
    CHECK(run("--lower va0:af_packet --lower va0:af_xdp").find("listed twice") !=
          std::string::npos);
    CHECK(run("--lower va0:af_packet --mtu-min 1500 --mtu-max 1400").find("above mtu_max") !=
          std::string::npos);
    CHECK(run("--lower va0:af_packet --queues 99").find("queues must be 1..8") !=
          std::string::npos);
    CHECK(run("--lower va0:af_foo").find("rc=2") != std::string::npos);
    const std::string cfg = "/tmp/npa-test-cfg-" + std::to_string(::getpid());
    {
        std::FILE* f = std::fopen(cfg.c_str(), "w");
        std::fputs("tap = npa0\nlower = va0 af_xdp\nthis line is wrong\n", f);
        std::fclose(f);
    }
    CHECK(run("--config " + cfg).find(cfg + ":3: expected 'key = value'") != std::string::npos);
    {
        std::FILE* f = std::fopen(cfg.c_str(), "w");
        std::fputs("lower = va0 af_xdp\nallow_vlan = 5000\n", f);
        std::fclose(f);
    }
    CHECK(run("--config " + cfg).find(":2: bad VLAN id or range '5000'") != std::string::npos);
    CHECK(run("--config /nonexistent/npa.conf").find("cannot open") != std::string::npos);
    // A lower that does not exist: refuses to start, says which and why.
    CHECK(run("--lower nosuch0:af_packet --socket /tmp/npa-test-x.sock").find("nosuch0: not up") !=
          std::string::npos);

    // A good config file, then hostile control messages.
    {
        std::FILE* f = std::fopen(cfg.c_str(), "w");
        std::fputs("# two lowers\ntap = npa0\nlower = va0 af_xdp copy\nlower = va1 af_packet\n", f);
        std::fclose(f);
    }
    linkd_process d({"--config", cfg});
    REQUIRE_MESSAGE(d.up(), d.log());
    CHECK(d.raw("bogus\n").find("unknown command 'bogus'") != std::string::npos);
    CHECK(d.raw("switch\n").find("usage: switch") != std::string::npos);
    CHECK(d.raw("switch nosuch0\n").find("no lower interface named 'nosuch0'") !=
          std::string::npos);
    CHECK(d.raw("switch va0\n").find("already active") != std::string::npos);
    CHECK(d.raw("status extra\n").find("takes no argument") != std::string::npos);
    CHECK(d.raw(std::string("stat\x01s\n")).find("non-printable") != std::string::npos);
    CHECK(d.raw(std::string(300, 'x')).find("longer than 256") != std::string::npos);
    CHECK(d.raw("\n").find("empty request") != std::string::npos);
    CHECK(d.raw("ping\n").find("\"ok\":true") != std::string::npos);
    CHECK(d.alive());
    // npactl: its own usage errors (exit 2), the linkd_process's refusals (exit 1).
    CHECK(d.ctl("frobnicate").first == 2);
    CHECK(d.ctl("--nope status").first == 2);
    const auto [rc, out] = d.ctl("switch nosuch0");
    CHECK(rc == 1);
    CHECK(out.find("no lower interface named 'nosuch0'") != std::string::npos);
    CHECK(d.ctl("status").first == 0);
    const auto [src, stats] = d.ctl("--json stats");
    CHECK(src == 0);
    CHECK(stats.find("\"bad_requests\":6") != std::string::npos);
    ::unlink(cfg.c_str());
}

NPA_LINUX_TEST_MAIN
