// npa-linkd end to end: ping and iperf3 from this namespace through the TAP to a peer
// namespace over each plugin, live switches under traffic, surprise removal, MAC/MTU/
// VLAN policy, and bad input. Every count asserted comes from the tools' own output
// (ping's summary, iperf3's receiver line) or from npactl.
#include "linkd_kit.hpp"

#include <npa/linux/announce.hpp>

#include <sys/stat.h>

#include <future>
#include <regex>

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
    const std::string p = std::to_string(port);
    sh(t.in_peer("iperf3 -s -1 -D -p " + p));
    // -D returns before the daemon listens: wait until it does, not for a fixed time.
    REQUIRE_MESSAGE(npa_test::eventually(
                        [&] { return !sh_out(t.in_peer("ss -Hltn sport = :" + p)).empty(); }),
                    "iperf3 -s never listened on port " << p);
    return "iperf3 -c 10.77.0.2 -p " + p;
}

// Polls the daemon until `lower` is the active one.
bool becomes_active(const linkd_process& d, const std::string& lower) {
    return npa_test::eventually([&] {
        return d.ctl("--json status").second.find("\"active\":\"" + lower + "\"") !=
               std::string::npos;
    });
}

// Pings the peer `n` times at 100 Hz; how many answers came back (-1: no summary).
int pings_answered(int n) {
    int sent = 0, received = 0;
    const std::string out = sh_out("ping -c " + std::to_string(n) + " -i 0.01 -W 2 10.77.0.2");
    return npa_test::ping_counts(out, sent, received) && sent == n ? received : -1;
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
        const std::string which = lower;
        CAPTURE(which);
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
    CHECK_MESSAGE(stats.find("\"audit_ok\":true") != std::string::npos, stats);
}

TEST_CASE("TCP both ways over each plugin, with the peer's offloads on (TSO, GRO) and off") {
    // The peer's TSO (veth's default) and GRO on the lowers hand the plugins frames far
    // larger than a buffer; the plugin must cut them into MTU-sized frames, not drop them.
    // A fixed transfer either completes or, with such frames dropped, crawls at a few
    // KB/s (every segment after the first retransmission is lost again) and times out.
    // 60 s: 16 MB at a few KB/s takes an hour, and ASan on a loaded two-core machine
    // still moves 30-100 Mbit/s (a few seconds).
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    sh("ping -c 1 -W 2 10.77.0.2");
    int port = 5230;
    for (const bool offloads : {true, false}) {
        CAPTURE(offloads);
        for (const char* dev : {"vb0", "vb1"}) {
            const std::string o = offloads ? "on" : "off";
            REQUIRE(sh(t.in_peer(std::string("ethtool -K ") + dev + " tso " + o + " gso " + o +
                                 " gro " + o + " tx " + o)));
        }
        for (const char* dev : {"va0", "va1"})
            sh(std::string("ethtool -K ") + dev + " gro " + (offloads ? "on" : "off"));
        const std::string k = sh_out(t.in_peer("ethtool -k vb1"));
        CHECK(k.find(std::string("tcp-segmentation-offload: ") + (offloads ? "on" : "off")) !=
              std::string::npos);
        for (const char* lower : {"va0", "va1"}) {
            const std::string which = lower;
            CAPTURE(which);
            if (d.ctl("--json status").second.find("\"active\":\"" + which + "\"") ==
                std::string::npos) {
                const auto [src, sout] = d.ctl(std::string("switch ") + lower);
                REQUIRE_MESSAGE(src == 0, sout);
            }
            for (const char* dir : {"", " -R"}) {
                const std::string direction = *dir ? "peer to host" : "host to peer";
                CAPTURE(direction);
                const std::string ip =
                    sh_out("timeout 60 " + iperf_server(t, port++) + " -n 16M" + dir + " 2>&1");
                CHECK_MESSAGE(npa_test::iperf_receiver_mbits(ip) > 0, ip << d.log());
                MESSAGE(which << ", " << direction << ", offloads "
                              << std::string(offloads ? "on" : "off") << ": "
                              << npa_test::iperf_receiver_mbits(ip) << " Mbit/s");
            }
        }
    }
    // Peer to host, the TAP writer merged segments of the iperf3 flow into larger frames
    // (npa/linux/tap_gro.hpp), and the TAP took every one of them.
    const std::string status = d.ctl("--json status").second;
    CHECK_MESSAGE(npa_test::json_number(status, "merged_writes") > 0, status);
    CHECK_MESSAGE(npa_test::json_number(status, "merged_segments") >
                      npa_test::json_number(status, "merged_writes"),
                  status);
    CHECK_MESSAGE(npa_test::json_number(status, "refused") == 0, status);
    // Over AF_PACKET with the offloads on, the peer's TSO frames went to the TAP whole
    // with their GSO header (af_packet_plugin::rx_whole), none refused.
    CHECK_MESSAGE(npa_test::json_number(status, "whole_writes") > 0, status);
    CHECK_MESSAGE(npa_test::json_number(status, "whole_segments") >
                      npa_test::json_number(status, "whole_writes"),
                  status);
    CHECK_MESSAGE(npa_test::json_number(status, "whole_refused") == 0, status);
    // No frame was dropped for its size on either lower.
    const std::string stats = d.ctl("--json stats").second;
    CHECK_MESSAGE(npa_test::json_number(stats, "rx_dropped") == 0, stats);
    CHECK_MESSAGE(npa_test::json_number(stats, "rx_dropped", stats.find("\"va1\"")) == 0, stats);
}

namespace {

// A unix socket left at `path` by a process that is gone (bound, never unlinked).
bool stale_socket(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
}

constexpr unsigned nobody = 65534;

} // namespace

TEST_CASE("the control socket: only a stale socket of ours is removed, peers are checked "
          "(SO_PEERCRED) on both sides") {
    topology t;
    const std::string dir = "/tmp/npa-test-sockdir-" + std::to_string(::getpid());
    sh("rm -rf " + dir);
    REQUIRE(sh("mkdir -m 1777 " + dir));
    const std::string path = dir + "/linkd.sock";
    auto start = [&] {
        return sh_out(npa_test::linkd_bin + " --lower va1:af_packet --socket " + path +
                      " 2>&1 & sleep 0.5; kill $! 2>/dev/null; wait");
    };
    SUBCASE("a regular file at the path is not removed") {
        std::FILE* f = std::fopen(path.c_str(), "w");
        REQUIRE(f != nullptr);
        std::fputs("precious\n", f);
        std::fclose(f);
        const std::string out = start();
        CHECK_MESSAGE(out.find("exists and is not a socket") != std::string::npos, out);
        CHECK(sh_out("cat " + path) == "precious\n");
    }
    SUBCASE("another user's stale socket is not removed") {
        REQUIRE(stale_socket(path));
        REQUIRE(::chown(path.c_str(), nobody, nobody) == 0);
        const std::string out = start();
        CHECK_MESSAGE(out.find("owned by uid 65534") != std::string::npos, out);
        struct stat st {};
        CHECK(::lstat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
    }
    SUBCASE("a stale socket of ours is replaced, and the log says so") {
        REQUIRE(stale_socket(path));
        linkd_process d({"--tap", "npa0", "--lower", "va1:af_packet"}, path);
        REQUIRE_MESSAGE(d.up(), d.log());
        CHECK_MESSAGE(d.log().find("removed the stale socket " + path) != std::string::npos,
                      d.log());
    }
    SUBCASE("npactl refuses a socket another user serves") {
        // Another user got to the path first and answers everything with "ok".
        const pid_t fake = ::fork();
        if (fake == 0) {
            if (::setgid(nobody) != 0 || ::setuid(nobody) != 0)
                ::_exit(1);
            const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            sockaddr_un sa{};
            sa.sun_family = AF_UNIX;
            std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
            if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 4))
                ::_exit(1);
            ::chmod(path.c_str(), 0666);
            for (;;) {
                const int c = ::accept(fd, nullptr, nullptr);
                char b[512];
                (void)!::read(c, b, sizeof b);
                (void)!::write(c, "{\"ok\":true}\n", 12);
                ::close(c);
            }
        }
        for (int i = 0; i < 100 && ::access(path.c_str(), F_OK) != 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const std::string out =
            sh_out(npa_test::npactl_bin + " --socket " + path + " switch next 2>&1; echo rc=$?");
        ::kill(fake, SIGKILL);
        ::waitpid(fake, nullptr, 0);
        CHECK_MESSAGE(out.find("served by uid 65534") != std::string::npos, out);
        CHECK(out.find("rc=2") != std::string::npos);
    }
    SUBCASE("the daemon refuses a client of another user, even when the socket lets it in") {
        linkd_process d({"--tap", "npa0", "--lower", "va1:af_packet"}, path);
        REQUIRE_MESSAGE(d.up(), d.log());
        REQUIRE(::chmod(path.c_str(), 0666) == 0);
        const std::string out =
            sh_out("setpriv --reuid=65534 --regid=65534 --clear-groups " + npa_test::npactl_bin +
                   " --socket " + path + " switch next 2>&1; echo rc=$?");
        CHECK_MESSAGE(out.find("uid 65534 may not control npa-linkd") != std::string::npos, out);
        CHECK(out.find("rc=1") != std::string::npos);
        CHECK(npa_test::json_number(d.ctl("--json stats").second, "refused_clients") == 1);
    }
    sh("rm -rf " + dir);
}

TEST_CASE("--persist: a killed daemon leaves the TAP, its address and MAC; a restart "
          "re-attaches; the carrier is off while no lower is usable") {
    topology t;
    const std::vector<std::string> args = {"--tap", "npa0", "--lower", "va1:af_packet",
                                           "--persist"};
    std::string mac;
    {
        linkd_process d(args);
        REQUIRE_MESSAGE(d.up(), d.log());
        guest_ip();
        CHECK(pings_answered(5) == 5);
        mac = npa_test::json_string(d.ctl("--json status").second, "mac");
        // No usable lower: carrier off; back: carrier on.
        REQUIRE(sh("ip link set va1 down"));
        auto carrier = [] {
            return sh_out("ip link show dev npa0").find("NO-CARRIER") == std::string::npos;
        };
        for (int i = 0; i < 60 && carrier(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(carrier());
        REQUIRE(sh("ip link set va1 up"));
        for (int i = 0; i < 60 && !carrier(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK(carrier());
        d.kill_hard();
    }
    // The daemon is gone (SIGKILL): the interface and its configuration stayed.
    const std::string link = sh_out("ip addr show dev npa0");
    CHECK_MESSAGE(link.find("10.77.0.1/24") != std::string::npos, link);
    CHECK(link.find(mac) != std::string::npos);
    {
        linkd_process d(args);
        REQUIRE_MESSAGE(d.up(), d.log());
        CHECK(npa_test::json_string(d.ctl("--json status").second, "mac") == mac);
        CHECK(pings_answered(5) == 5); // no address added again: it was kept
    }
    sh("ip link del npa0");
}

TEST_CASE("the XDP program a killed daemon left on its lower is removed by the next start, "
          "which says so, and is gone after a clean stop") {
    topology t;
    const std::vector<std::string> args = {"--tap", "npa0", "--lower", "va0:af_xdp:copy"};
    {
        linkd_process d(args);
        REQUIRE_MESSAGE(d.up(), d.log());
        d.kill_hard();
    }
    CHECK(sh_out("ip link show dev va0").find("xdp") != std::string::npos);
    {
        linkd_process d(args);
        REQUIRE_MESSAGE(d.up(), d.log());
        CHECK_MESSAGE(d.log().find("removed the XDP program (xsk_def_prog) an earlier run left "
                                   "on va0") != std::string::npos,
                      d.log());
        guest_ip();
        CHECK(pings_answered(5) == 5);
    }
    const std::string link = sh_out("ip link show dev va0");
    CHECK_MESSAGE(link.find("xdp") == std::string::npos, link);
}

TEST_CASE("once running, the daemon keeps only the capabilities it uses, and still switches") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    const std::string st = sh_out("cat /proc/" + std::to_string(d.pid()) + "/status");
    auto mask = [&](const std::string& key) {
        const auto at = st.find(key + ":\t");
        return at == std::string::npos
                   ? ~0ull
                   : std::stoull(st.substr(at + key.size() + 2, 16), nullptr, 16);
    };
    // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_IPC_LOCK 14, CAP_SYS_ADMIN 21, CAP_BPF 39.
    const unsigned long long keep =
        (1ull << 12) | (1ull << 13) | (1ull << 14) | (1ull << 21) | (1ull << 39);
    CHECK_MESSAGE((mask("CapEff") & ~keep) == 0, st);
    CHECK_MESSAGE((mask("CapPrm") & ~keep) == 0, st);
    CHECK_MESSAGE((mask("CapBnd") & ~keep) == 0, st);
    CHECK(st.find("NoNewPrivs:\t1") != std::string::npos);
    // Switching still works both ways (AF_XDP loads its program again on the way back).
    REQUIRE(d.ctl("switch va1").first == 0);
    REQUIRE_MESSAGE(d.ctl("switch va0").first == 0, d.log());
    CHECK(pings_answered(5) == 5);
}

TEST_CASE("npactl behaves like iproute2: abbreviations, -j -p -s, --socket=PATH, help, "
          "--version") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    const std::string npactl = npa_test::npactl_bin + " --socket=" + d.socket_path();
    auto run = [&](const std::string& args) {
        return sh_out(npactl + " " + args + " 2>&1; echo rc=$?");
    };
    const std::string st = run("st");
    CHECK_MESSAGE(st.find("1 switch\n") != std::string::npos, st); // the boot; singular
    CHECK(st.find("rc=0") != std::string::npos);
    CHECK(run("-j s").find("{\"ok\":true,\"tap\":\"npa0\"") != std::string::npos);
    const std::string pretty = run("-j -p status");
    CHECK_MESSAGE(pretty.find("{\n  \"ok\": true,\n  \"tap\": \"npa0\",") != std::string::npos,
                  pretty);
    CHECK(run("-s status").find("switches: 1 (failed 0)") != std::string::npos);
    CHECK(run("pi").find("ok\nrc=0") != std::string::npos);
    const std::string help = run("help");
    CHECK(help.find("ping") != std::string::npos);
    CHECK(help.find("--socket=PATH") != std::string::npos);
    CHECK(help.find("rc=0") != std::string::npos);
    CHECK(run("--version").find("npactl (npa) ") != std::string::npos);
    CHECK(run("frob").find("unknown command 'frob'") != std::string::npos);
    CHECK(run("sw va1").find("switched to va1") != std::string::npos);
    CHECK(run("st").find("2 switches\n") != std::string::npos);
}

TEST_CASE("100 switches during an iperf3 run and a fast ping: no ping lost, TCP completes") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    // Warm up ARP so the first ping is not spent resolving.
    sh("ping -c 1 -W 2 10.77.0.2");
    const long long switches_before = npa_test::json_number(d.ctl("--json stats").second, "count");
    // The traffic runs in rounds: an iperf3 run (20 s) and a 200 Hz ping (3,600 requests),
    // each left to end on its own so that both report complete results. Switches go on
    // while both of a round are running; a switch counts as inside the traffic when both
    // were still running after the daemon answered it, and rounds follow one another until
    // 100 switches fell inside. A quiet machine needs one round (100 switches take about
    // 10 s); a loaded one needs more (ASan with load average 20: a switch and its npactl
    // round trip take about a second), and the test asserts the same things either way.
    constexpr int wanted = 100;
    const auto t0 = std::chrono::steady_clock::now();
    int inside = 0, ok = 0, issued = 0, rounds = 0;
    const std::string log = "/tmp/npa-test-iperf-" + std::to_string(::getpid()) + ".log";
    for (int this_round = 1; inside < wanted;) {
        // A round with no switch inside means the traffic did not run at all; any other
        // round is progress (a hung run is left to the ctest timeout).
        REQUIRE_MESSAGE(this_round > 0, "no switch fell inside round " << rounds);
        ++rounds;
        CAPTURE(rounds);
        const std::string client = iperf_server(t, 5220 + rounds);
        ::unlink(log.c_str());
        auto iperf =
            background(client + " -t 20 -i 1 --forceflush >" + log + " 2>&1; cat " + log);
        auto ping = background("ping -c 3600 -i 0.005 -W 2 10.77.0.2");
        auto running = [&] {
            return iperf.wait_for(std::chrono::seconds(0)) == std::future_status::timeout &&
                   ping.wait_for(std::chrono::seconds(0)) == std::future_status::timeout;
        };
        // Switch only once TCP flows: iperf3's data connection is up.
        CHECK(npa_test::eventually([&] {
            return !running() ||
                   sh_out("cat " + log + " 2>/dev/null").find(" connected to ") != std::string::npos;
        }));
        this_round = 0;
        while (inside < wanted && running()) {
            const auto [rc, out] = d.ctl("--json switch next");
            ++issued;
            if (rc == 0) {
                ++ok;
            } else {
                MESSAGE(out);
            }
            if (running()) {
                ++inside;
                ++this_round;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        const std::string p = ping.get();
        const std::string ip = iperf.get();
        ::unlink(log.c_str());
        MESSAGE("round " << rounds << ": " << this_round << " switches inside the traffic");
        // iperf3's own per-second lines (sender side) cover the whole run; seconds in which
        // TCP was backing off after a lost segment carry no data and are reported.
        {
            static const std::regex interval(
                R"(\]\s+(\d+\.\d+)-(\d+\.\d+)\s+sec\s+[\d.]+ \w?Bytes\s+([\d.]+) (\w?)bits/sec\s+\d+)");
            int seconds = 0, idle = 0;
            for (auto it = std::sregex_iterator(ip.begin(), ip.end(), interval);
                 it != std::sregex_iterator(); ++it) {
                if (std::stod((*it)[2]) - std::stod((*it)[1]) > 1.5)
                    continue; // the summary line
                ++seconds;
                idle += std::stod((*it)[3]) > 0 ? 0 : 1;
            }
            CHECK_MESSAGE(seconds >= 19, ip);
            MESSAGE("iperf3: " << seconds << " one-second intervals, " << idle << " without data");
        }
        int sent = 0, received = 0;
        REQUIRE_MESSAGE(npa_test::ping_counts(p, sent, received), p);
        CHECK(sent == 3600);
        CHECK_MESSAGE(received == sent, p);
        CHECK_MESSAGE(npa_test::iperf_receiver_mbits(ip) > 0, ip);
        MESSAGE("iperf3 across " << this_round
                                 << " switches: " << npa_test::iperf_receiver_mbits(ip)
                                 << " Mbit/s");
    }
    MESSAGE(issued << " switches (" << inside << " inside the traffic) in " << rounds
                   << " round(s), "
                   << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                   << " s");
    CHECK(ok == issued);
    // The daemon counted exactly the switches requested.
    CHECK(npa_test::json_number(d.ctl("--json stats").second, "count") == switches_before + issued);
    const auto [rc, stats] = d.ctl("--json stats");
    CHECK(stats.find("\"lost\":0") != std::string::npos);
    CHECK(stats.find("\"failures\":0") != std::string::npos);
    MESSAGE(stats);
}

TEST_CASE("the active lower disappears or goes down during traffic: the daemon fails over, TCP "
          "and ping survive, failback when it returns") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    sh("ping -c 1 -W 2 10.77.0.2");
    const std::string client = iperf_server(t, 5203);
    const std::string log = "/tmp/npa-test-iperf-" + std::to_string(::getpid()) + ".log";
    auto iperf = background(client + " -t 3 --forceflush >" + log + " 2>&1; cat " + log);
    auto ping = background("ping -c 300 -i 0.01 -W 2 10.77.0.2");
    // The lower fails while TCP flows: once iperf3's data connection is up, not after a
    // fixed time (which a loaded machine may not have used to connect at all).
    CHECK(npa_test::eventually([&] {
        return sh_out("cat " + log + " 2>/dev/null").find(" connected to ") != std::string::npos;
    }));
    bool removed = true;
    SUBCASE("surprise removal (ip link del)") { removed = true; }
    SUBCASE("link down (ip link set down)") { removed = false; }
    CAPTURE(removed);
    REQUIRE(sh(removed ? "ip link del va0" : "ip link set va0 down"));
    const std::string p = ping.get();
    const std::string ip = iperf.get();
    ::unlink(log.c_str());
    CHECK_MESSAGE(npa_test::iperf_receiver_mbits(ip) > 0, ip << d.log());
    CHECK_MESSAGE(d.alive(), d.log());
    int sent = 0, received = 0;
    REQUIRE_MESSAGE(npa_test::ping_counts(p, sent, received), p);
    CHECK(sent == 300);
    // What the old path had already handed to the device that failed is gone with it
    // (the kernel drops it), so a ping or two may be lost at the moment of the failure.
    CHECK_MESSAGE(received >= sent - 3, p);
    MESSAGE((removed ? "ip link del" : "ip link set down")
            << ": " << received << "/" << sent << " pings answered");
    const auto [rc, st] = d.ctl("--json status");
    CHECK_MESSAGE(st.find("\"active\":\"va1\"") != std::string::npos, st << d.log());
    CHECK(st.find(removed ? "\"state\":\"missing\"" : "\"state\":\"down\"") != std::string::npos);
    // A deleted interface is first reported down, then gone (the kernel's order), so
    // either report may be the one that starts the switch; a downed one only says down.
    if (removed) {
        CHECK_MESSAGE(d.log().find("switching away") != std::string::npos, d.log());
        // The down report names the switch device-error when it is read while the
        // interface still exists, surprise-removal once it is gone.
        CHECK_MESSAGE((d.log().find("va0 -> va1 (surprise-removal): ok") != std::string::npos ||
                       d.log().find("va0 -> va1 (device-error): ok") != std::string::npos),
                      d.log());
    } else {
        CHECK_MESSAGE(d.log().find("va0 went down: switching away") != std::string::npos, d.log());
        CHECK(d.log().find("va0 -> va1 (device-error): ok") != std::string::npos);
    }
    CHECK(pings_answered(10) == 10);
    // The lower comes back: the daemon prefers it again (failback), traffic flows.
    if (removed) {
        t.add_lower(0);
    } else {
        REQUIRE(sh("ip link set va0 up"));
    }
    CHECK(becomes_active(d, "va0"));
    CHECK_MESSAGE(pings_answered(10) == 10,
                  d.log() << sh_out(t.in_peer("bridge fdb show br br0; ip -s link show vb0")));
}

TEST_CASE("after a switch the shell's MAC is announced on the new lower, and the peer's bridge "
          "learns it there") {
    topology t;
    linkd_process d(two_lowers);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    sh("ping -c 2 -i 0.05 -W 2 10.77.0.2");
    const std::uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    constexpr std::uint16_t rarp = 0x8035;
    const std::string mac_s = "02:00:00:00:00:01";
    REQUIRE(sh("ip link set npa0 address " + mac_s)); // a MAC the test knows
    auto fdb = [&](const std::string& port) {
        return sh_out(t.in_peer("bridge fdb show br br0 brport " + port));
    };
    CHECK_MESSAGE(npa_test::eventually([&] { return fdb("vb0").find(mac_s) != std::string::npos; }),
                  fdb("vb0"));
    // Capture RARP (ethertype 0x8035) where the frames arrive: the peer's ends of both lowers.
    const int on_vb1 = npa_test::capture_in(t.peer, "vb1");
    const int on_vb0 = npa_test::capture_in(t.peer, "vb0");
    REQUIRE(on_vb1 >= 0);
    REQUIRE(on_vb0 >= 0);
    const long long before = npa_test::json_number(d.ctl("--json stats").second, "announces");
    const auto [src, out] = d.ctl("switch va1");
    REQUIRE_MESSAGE(src == 0, out);
    // The announcements: one on the lower as soon as it is prepared, then announce_count
    // (3) through the new path, 20 ms apart. Read until all have come (a loaded machine
    // may take seconds), then 200 ms more for any extra one.
    constexpr int announced = 1 + static_cast<int>(npa::lnx::announce_count);
    int seen = npa_test::count_frames_from(on_vb1, rarp, mac, 30'000, announced);
    seen += npa_test::count_frames_from(on_vb1, rarp, mac, 200);
    const int stray = npa_test::count_frames_from(on_vb0, rarp, mac, 50);
    const long long after = npa_test::json_number(d.ctl("--json stats").second, "announces");
    CHECK(seen == announced);
    CHECK(stray == 0);
    CHECK(after - before == seen);
    // Without any other traffic from the guest, the bridge moved the MAC to vb1.
    CHECK_MESSAGE(fdb("vb1").find(mac_s) != std::string::npos, fdb("vb1") << fdb("vb0"));
    CHECK(fdb("vb0").find(mac_s) == std::string::npos);
    // And back: announced on va0's peer end this time.
    REQUIRE(d.ctl("switch va0").first == 0);
    CHECK(npa_test::count_frames_from(on_vb0, rarp, mac, 30'000, announced) +
              npa_test::count_frames_from(on_vb0, rarp, mac, 200) ==
          announced);
    CHECK(npa_test::count_frames_from(on_vb1, rarp, mac, 50) == 0);
    CHECK(fdb("vb0").find(mac_s) != std::string::npos);
    ::close(on_vb1);
    ::close(on_vb0);
}

TEST_CASE("two TAP queues over two-queue lowers: ping, iperf3 with 16 flows, a switch") {
    topology t(2);
    auto args = two_lowers;
    args.insert(args.end(), {"--queues", "2"});
    linkd_process d(args);
    REQUIRE_MESSAGE(d.up(), d.log());
    guest_ip();
    const std::string dl = sh_out("ip -d link show dev npa0");
    CHECK_MESSAGE(dl.find("multi_queue numqueues 2 ") != std::string::npos, dl);
    CHECK(dl.find("vnet_hdr on") != std::string::npos);
    int port = 5210;
    for (const char* lower : {"va0", "va1"}) {
        const std::string which = lower;
        CAPTURE(which);
        if (std::string(lower) == "va1") {
            const auto [src, sout] = d.ctl("switch va1");
            REQUIRE_MESSAGE(src == 0, sout);
        }
        CHECK(pings_answered(20) == 20);
        const std::string ip = sh_out(iperf_server(t, port++) + " -t 2 -P 16 2>&1");
        CHECK_MESSAGE(npa_test::iperf_receiver_mbits(ip) > 0, ip);
    }
    // Both queues carried traffic in both directions (16 flows spread by the TAP's and the
    // lowers' flow hashes; all on one queue would be a 1 in 32768 chance).
    const std::string stats = d.ctl("--json stats").second;
    const auto q = stats.find("\"queues\":[");
    REQUIRE(q != std::string::npos);
    const auto q1 = stats.find("},{", q);
    REQUIRE(q1 != std::string::npos);
    CHECK_MESSAGE(npa_test::json_number(stats, "tx_accepted", q) > 0, stats);
    CHECK_MESSAGE(npa_test::json_number(stats, "tx_accepted", q1) > 0, stats);
    CHECK_MESSAGE(npa_test::json_number(stats, "rx_delivered", q) > 0, stats);
    CHECK_MESSAGE(npa_test::json_number(stats, "rx_delivered", q1) > 0, stats);
    CHECK(stats.find("\"lost\":0") != std::string::npos);
    CHECK_MESSAGE(stats.find("\"audit_ok\":true") != std::string::npos, stats);
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
    using npa_test::eventually;
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
    // The kernel's TAP accepts any MTU, so `ip link` cannot fail: the refusal is a warning
    // in the daemon's log, with the reason.
    CHECK_MESSAGE(d.log().find("warning: MTU of npa0 -> 1000: refused (MTU outside the "
                               "policy's range), reverted to 1400") != std::string::npos,
                  d.log());
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
    CHECK(run("--lower nosuch0:af_packet --socket /tmp/npa-test-x.sock")
              .find("nosuch0: no such interface") != std::string::npos);
    CHECK(run("--lower va0:af_packet --tap 'x%d'").find("is a name template") != std::string::npos);

    // A good config file, then hostile control messages.
    {
        std::FILE* f = std::fopen(cfg.c_str(), "w");
        std::fputs("# two lowers\ntap = npa0\nlower = va0 af_xdp copy\nlower = va1 af_packet\n", f);
        std::fclose(f);
    }
    linkd_process d({"--config", cfg});
    REQUIRE_MESSAGE(d.up(), d.log());
    // A second daemon on the same TAP: says the TAP is in use.
    CHECK(run("--tap npa0 --lower va1:af_packet --socket /tmp/npa-test-y.sock")
              .find("in use by another process") != std::string::npos);
    // A config file that does not end, or is too large, is refused without reading it all.
    CHECK(run("--config /dev/zero").find("/dev/zero: not a regular file") != std::string::npos);
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
