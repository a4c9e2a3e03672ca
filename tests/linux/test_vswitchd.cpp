// npa-vswitchd between two DPDK front ends nobody here wrote: dpdk-testpmd with a
// net_virtio_user port on each of two of its sockets, one sending (txonly, the other's MAC
// as destination), one receiving (rxonly). Every frame the sender counted is either
// delivered to the receiver or counted by the daemon as a drop with a cause; frames from a
// source MAC that is not the port's are refused and counted as spoofed; a malformed message
// closes only its connection. Run with the default virtio-user features and with
// mrg_rxbuf=0,in_order=0, over split rings and over packed ones (packed_vq=1: the port's
// negotiated features say which it runs), and with two-segment frames, which DPDK sends as
// indirect tables. Skipped (exit 77) without dpdk-testpmd.
#include "vswitchd_kit.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using npa::test::number_after;
using npa::test::slurp;
using npa::test::stop_sender;
using npa::test::testpmd;
using npa::test::wait_until;

const std::string mac_a = "02:00:00:00:00:0a", mac_b = "02:00:00:00:00:0b", mac_x = "02:00:00:00:00:0c";

struct daemon_proc {
    pid_t pid = -1;
    std::string dir;
    /// `b_client`: port b in client mode, connecting to that socket (the front end's).
    void start(const std::string& run_dir, const std::string& b_client = "") {
        dir = run_dir;
        const std::string b = "b,mac=" + mac_b + ",vlans=10" + (b_client.empty() ? "" : ",client=" + b_client);
        pid = ::fork();
        if (pid == 0) {
            const int log = ::open((dir + "/vswitchd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::execl(NPA_VSWITCHD, NPA_VSWITCHD, "--run-dir", dir.c_str(), "--port", ("a,mac=" + mac_a).c_str(),
                    "--port", b.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        REQUIRE(wait_until(5s, [&] { return ::access((dir + "/b.json").c_str(), R_OK) == 0; }));
    }
    // A counter of a port, from its JSON.
    [[nodiscard]] std::int64_t counter(const std::string& port, const std::string& name) const {
        return number_after(slurp(dir + "/" + port + ".json"), "\"" + name + "\": ");
    }
    [[nodiscard]] std::string json_text(const std::string& port) const { return slurp(dir + "/" + port + ".json"); }
    [[nodiscard]] std::string state(const std::string& port) const {
        const std::string j = slurp(dir + "/" + port + ".json");
        const auto at = j.find("\"state\": \"");
        return at == std::string::npos ? "" : j.substr(at + 10, j.find('"', at + 10) - at - 10);
    }
    ~daemon_proc() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
        for (const char* f : {"vswitchd.log", "rx.log", "tx.log", "spoof.log"}) {
            ::unlink((dir + "/" + f).c_str());
        }
        ::rmdir(dir.c_str());
    }
};

std::int64_t rx_drops(const daemon_proc& d, const std::string& p) {
    std::int64_t t = 0;
    for (const char* k : {"rx_spoofed", "rx_vlan", "rx_runt", "rx_oversize", "rx_unknown_dst", "rx_hairpin"}) {
        t += d.counter(p, k);
    }
    return t;
}
std::int64_t tx_drops(const daemon_proc& d, const std::string& p) {
    std::int64_t t = 0;
    for (const char* k : {"tx_vlan", "tx_down", "tx_no_buffer", "tx_too_big"}) {
        t += d.counter(p, k);
    }
    return t;
}

// `b_client`: the receiver's port in client mode (testpmd's virtio-user is the server).
void run(const std::string& extra, const std::string& tag, bool b_client = false) {
    char tmpl[] = "/tmp/npa-vswitchd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    const std::string b_sock = dir + (b_client ? "/front-b.sock" : "/b.sock");
    daemon_proc d;
    d.start(dir, b_client ? b_sock : "");
    CHECK(d.state("a") == "listening");

    const std::string vu = ",queues=1" + extra;
    testpmd rx, tx;
    rx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + b_sock + ",mac=" + mac_b + vu + (b_client ? ",server=1" : ""),
                  dir + "/rx.log",
                  "npa-vsw-rx-" + tag + std::to_string(::getpid()), {"--forward-mode=rxonly"});
    REQUIRE_MESSAGE(wait_until(20s, [&] { return d.state("b") == "running"; }), slurp(dir + "/rx.log"));
    // the layout the front end asked for is the one the port runs (VIRTIO_F_RING_PACKED, bit 34)
    const bool packed = extra.find("packed_vq=1") != std::string::npos;
    CHECK(((d.counter("b", "features") >> 34) & 1) == (packed ? 1 : 0));

    // 1. the port's own MAC: everything is delivered or counted
    tx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/a.sock,mac=" + mac_a + vu, dir + "/tx.log",
                  "npa-vsw-tx-" + tag + std::to_string(::getpid()),
                  {"--forward-mode=txonly", "--eth-peer=0," + mac_b});
    REQUIRE_MESSAGE(wait_until(20s, [&] { return d.counter("a", "rx_packets") > 20000; }), slurp(dir + "/tx.log"));
    CHECK(((d.counter("a", "features") >> 34) & 1) == (packed ? 1 : 0));
    const std::int64_t sent = stop_sender(tx, dir + "/tx.log");
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "listening"; })); // the sender went away
    // Each port's JSON is its own snapshot (a's is rewritten when its front end leaves, b's
    // at the next announcement, up to 200 ms later): the books balance once both are taken
    // after the last frame, so wait for that rather than read b's older one.
    const std::int64_t a_rx = d.counter("a", "rx_packets");
    const auto balanced = [&] {
        return a_rx == rx_drops(d, "a") + d.counter("b", "tx_packets") + tx_drops(d, "b");
    };
    CHECK(wait_until(5s, balanced));
    MESSAGE(tag << ": testpmd sent " << sent << ", delivered " << d.counter("b", "tx_packets")
                << ", no buffer at the receiver " << d.counter("b", "tx_no_buffer"));
    CHECK(a_rx + d.counter("a", "rx_bad_chain") + d.counter("a", "rx_short_chain") == sent);
    CHECK(d.counter("a", "rx_bad_chain") == 0);
    CHECK(d.counter("a", "rx_spoofed") == 0);
    CHECK(a_rx == rx_drops(d, "a") + d.counter("b", "tx_packets") + tx_drops(d, "b"));
    CHECK(d.counter("b", "tx_packets") > 0);
    // the receiver saw exactly what the daemon delivered
    const std::int64_t delivered = d.counter("b", "tx_packets");
    CHECK(wait_until(5s, [&] { return rx.port_stat("ipackets") == delivered; }));
    CHECK(rx.port_stat("ipackets") == delivered);

    // 2. a malformed message (a version-2 header) closes that connection, logged and
    //    counted; the other port runs on and this one listens again
    {
        const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s/a.sock", dir.c_str());
        REQUIRE(::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        const std::uint32_t bad[3] = {1, 2, 0};
        REQUIRE(::write(s, bad, sizeof bad) == sizeof bad);
        CHECK(wait_until(5s, [&] { return d.counter("a", "protocol_errors") == 1; }));
        ::close(s);
        CHECK(d.state("b") == "running");
        CHECK(slurp(dir + "/vswitchd.log").find("a: vhost-user: a message of another protocol version") !=
              std::string::npos);
    }

    // 3. a source MAC that is not the port's: refused, counted, nothing delivered
    testpmd spoof;
    spoof.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/a.sock,mac=" + mac_x + vu,
                     dir + "/spoof.log", "npa-vsw-sp-" + tag + std::to_string(::getpid()),
                     {"--forward-mode=txonly", "--eth-peer=0," + mac_b});
    REQUIRE(wait_until(20s, [&] { return d.counter("a", "rx_spoofed") > 1000; }));
    const std::int64_t spoofed_sent = stop_sender(spoof, dir + "/spoof.log");
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "listening"; }));
    CHECK(d.counter("a", "rx_spoofed") == spoofed_sent);
    CHECK(d.counter("a", "rx_packets") == a_rx + spoofed_sent);
    CHECK(d.counter("b", "tx_packets") == delivered);
    CHECK(rx.port_stat("ipackets") == delivered);
    CHECK(d.counter("a", "protocol_errors") == 1);
    CHECK(d.counter("a", "connections") == 3);
    rx.kill9();
    ::unlink(b_sock.c_str());
    for (const testpmd* t : {&rx, &tx, &spoof}) { // testpmd leaves its runtime directory
        std::filesystem::remove_all("/var/run/dpdk/" + t->prefix);
    }
}

// testpmd's txonly with two-segment frames (--txpkts=64,64): DPDK's virtio PMD cannot put
// the virtio-net header in front of a chained mbuf, so with VIRTIO_F_INDIRECT_DESC it sends
// header and segments as one indirect table (virtio_rxtx.c, use_indirect: split and packed,
// outside the in-order split path). Every frame arrives through a table, and is delivered
// or counted.
void run_indirect(const std::string& extra, const std::string& tag) {
    char tmpl[] = "/tmp/npa-vswitchd-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    daemon_proc d;
    d.start(dir);
    const std::string vu = ",queues=1,in_order=0" + extra;
    testpmd rx, tx;
    rx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/b.sock,mac=" + mac_b + vu, dir + "/rx.log",
                  "npa-vsw-irx-" + tag + std::to_string(::getpid()), {"--forward-mode=rxonly"});
    REQUIRE_MESSAGE(wait_until(20s, [&] { return d.state("b") == "running"; }), slurp(dir + "/rx.log"));
    tx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/a.sock,mac=" + mac_a + vu, dir + "/tx.log",
                  "npa-vsw-itx-" + tag + std::to_string(::getpid()),
                  {"--forward-mode=txonly", "--eth-peer=0," + mac_b, "--txpkts=64,64", "--tx-offloads=0x8000"});
    const bool flowing = wait_until(20s, [&] { return d.counter("a", "rx_packets") > 20000; });
    REQUIRE_MESSAGE(flowing, d.json_text("a"));
    CHECK(((d.counter("a", "features") >> 28) & 1) == 1); // VIRTIO_F_INDIRECT_DESC negotiated
    const std::int64_t sent = stop_sender(tx, dir + "/tx.log");
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "listening"; }));
    const std::int64_t a_rx = d.counter("a", "rx_packets");
    CHECK(wait_until(5s, [&] { return a_rx == rx_drops(d, "a") + d.counter("b", "tx_packets") + tx_drops(d, "b"); }));
    MESSAGE(tag << ": testpmd sent " << sent << " two-segment frames, " << d.counter("a", "rx_indirect")
                << " through indirect tables, delivered " << d.counter("b", "tx_packets"));
    CHECK(d.counter("a", "rx_bad_chain") == 0);
    CHECK(d.counter("a", "rx_short_chain") == 0);
    CHECK(a_rx == sent);
    CHECK(d.counter("a", "rx_indirect") == sent); // every frame came as a table
    CHECK(d.counter("a", "rx_runt") + d.counter("a", "rx_oversize") == 0);
    CHECK(d.counter("b", "tx_packets") > 0);
    const std::int64_t delivered = d.counter("b", "tx_packets");
    CHECK(wait_until(5s, [&] { return rx.port_stat("ipackets") == delivered; }));
    CHECK(rx.port_stat("ipackets") == delivered);
    CHECK(rx.port_stat("ibytes") == delivered * 128); // both segments of each frame arrived
    rx.kill9();
    for (const testpmd* t : {&rx, &tx}) {
        std::filesystem::remove_all("/var/run/dpdk/" + t->prefix);
    }
}

} // namespace

TEST_CASE("npa-vswitchd between two testpmd virtio-user ports: delivered or counted, spoofing refused") {
#ifndef NPA_TESTPMD
    MESSAGE("dpdk-testpmd not found: skipped");
    std::exit(77);
#else
    if (::geteuid() != 0) { // testpmd's runtime directory and telemetry socket live in /var/run/dpdk
        MESSAGE("not root: skipped");
        std::exit(77);
    }
    SUBCASE("virtio-user defaults (MRG_RXBUF, IN_ORDER)") { run("", "d"); }
    SUBCASE("mrg_rxbuf=0, in_order=0") { run(",mrg_rxbuf=0,in_order=0", "m"); }
    SUBCASE("the receiving port in client mode (testpmd's virtio-user with server=1)") { run("", "c", true); }
    SUBCASE("packed rings (packed_vq=1)") { run(",packed_vq=1", "p"); }
    SUBCASE("packed rings, mrg_rxbuf=0, in_order=0") { run(",packed_vq=1,mrg_rxbuf=0,in_order=0", "q"); }
    SUBCASE("packed rings, the receiving port in client mode") { run(",packed_vq=1", "r", true); }
    SUBCASE("two-segment frames as indirect tables, split rings") { run_indirect("", "s"); }
    SUBCASE("two-segment frames as indirect tables, packed rings") { run_indirect(",packed_vq=1", "i"); }
#endif
}
