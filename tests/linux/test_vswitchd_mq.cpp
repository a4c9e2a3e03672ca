// npa-vswitchd's multi-queue ports between two DPDK front ends nobody here wrote: dpdk-testpmd
// with a net_virtio_user port of queues=2 on each of two sockets, one sending on both of its
// transmitqs (txonly, --txq=2), one receiving (rxonly). DPDK's virtio-user keeps the control
// queue to itself (the daemon has none) and enables the pairs it uses with SET_VRING_ENABLE.
// Every frame sent is delivered or counted by cause; every transmitq that runs is polled; a
// frame that came in on queue q goes out on the receiver's (q mod running)-th running
// receiveq, so with two pairs on each side both receiveqs carry frames, and the daemon's
// per-queue counts equal testpmd's (its telemetry socket's q_ipackets). A 1-pair port
// takes a 2-queue sender's frames on its one receiveq, its own front end configured with
// queues=2 too (MQ not offered: virtio-user runs one pair, the rings it sets up past the
// port's are ignored); a front end that enables one pair of two gets everything on that
// one. Skipped (exit 77) without dpdk-testpmd or root.
#include "vswitchd_kit.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using npa::test::number_after;
using npa::test::stop_sender;
using npa::test::testpmd;
using npa::test::vswitchd;
using npa::test::wait_until;

const std::string mac_a = "02:00:00:00:00:0a", mac_b = "02:00:00:00:00:0b";
constexpr int mq_bit = 22; // VIRTIO_NET_F_MQ

// One of a port's per-queue counts ("rx_queue", "tx_queue") from its JSON.
std::int64_t queue_count(const vswitchd& d, const std::string& port, const std::string& name, unsigned q) {
    const std::string j = d.json(port);
    auto at = j.find("\"" + name + "\": [");
    if (at == std::string::npos) {
        return -1;
    }
    at += name.size() + 5;
    const auto end = j.find(']', at);
    for (unsigned i = 0; i < q; ++i) {
        at = j.find(',', at);
        if (at == std::string::npos || at > end) {
            return -1; // no such queue
        }
        ++at;
    }
    return std::strtoll(j.c_str() + at, nullptr, 10);
}

struct shape {
    unsigned a_pairs, b_pairs;   // the ports' queue pairs
    unsigned tx_queues, rx_queues; // the pairs each testpmd runs (--txq/--rxq)
    unsigned b_vu_queues;        // net_virtio_user's queues= on the receiver
};

void run(const shape& s, const std::string& tag) {
    char tmpl[] = "/tmp/npa-vsw-mq-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    vswitchd d;
    d.start(NPA_VSWITCHD, dir,
            {"a,mac=" + mac_a + ",queues=" + std::to_string(s.a_pairs),
             "b,mac=" + mac_b + ",queues=" + std::to_string(s.b_pairs)});
    CHECK(d.counter("a", "queues") == s.a_pairs);
    CHECK(d.counter("b", "queues") == s.b_pairs);

    const auto qargs = [](unsigned n) {
        return std::vector<std::string>{"--rxq=" + std::to_string(n), "--txq=" + std::to_string(n)};
    };
    testpmd rx, tx;
    std::vector<std::string> rx_args = {"--forward-mode=rxonly"};
    for (const std::string& a : qargs(s.rx_queues)) {
        rx_args.push_back(a);
    }
    rx.start_vdev(NPA_TESTPMD,
                  "net_virtio_user0,path=" + dir + "/b.sock,mac=" + mac_b + ",queues=" + std::to_string(s.b_vu_queues),
                  dir + "/rx.log", "npa-vsmq-rx-" + tag + std::to_string(::getpid()), rx_args);
    REQUIRE_MESSAGE(wait_until(20s, [&] { return d.counter("b", "queues_running") == s.rx_queues; }),
                    (npa::test::slurp(dir + "/rx.log") + d.log()));
    // multiqueue negotiated only where the port offers it
    CHECK(((d.counter("b", "features") >> mq_bit) & 1) == (s.b_pairs > 1 ? 1 : 0));

    std::vector<std::string> tx_args = {"--forward-mode=txonly", "--eth-peer=0," + mac_b};
    for (const std::string& a : qargs(s.tx_queues)) {
        tx_args.push_back(a);
    }
    tx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/a.sock,mac=" + mac_a + ",queues=2",
                  dir + "/tx.log", "npa-vsmq-tx-" + tag + std::to_string(::getpid()), tx_args);
    REQUIRE_MESSAGE(wait_until(20s, [&] { return d.counter("a", "rx_packets") > 20000; }),
                    (npa::test::slurp(dir + "/tx.log") + d.log()));
    CHECK(d.counter("a", "queues_running") == s.tx_queues);
    CHECK(d.counter("b", "protocol_errors") == 0);
    if (s.b_vu_queues > s.b_pairs) { // the rings set up past the port's: ignored, said once
        CHECK(d.log().find("b: ring 2 is past the port's 1 queue pair(s)") != std::string::npos);
    }
    CHECK(((d.counter("a", "features") >> mq_bit) & 1) == 1);
    const std::int64_t sent = stop_sender(tx, dir + "/tx.log");
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "listening"; }));

    // 1. every frame sent is delivered or counted by cause, the port's counters adding up
    //    its queues' (each JSON is its own snapshot: wait for b's after the last frame)
    const std::int64_t a_rx = d.counter("a", "rx_packets");
    CHECK(wait_until(5s, [&] { return a_rx == d.rx_drops("a") + d.counter("b", "tx_packets") + d.tx_drops("b"); }));
    const std::int64_t delivered = d.counter("b", "tx_packets");
    MESSAGE(tag << ": testpmd sent " << sent << ", delivered " << delivered << " (" << queue_count(d, "b", "tx_queue", 0)
                << " + " << queue_count(d, "b", "tx_queue", 1) << "), no buffer at the receiver "
                << d.counter("b", "tx_no_buffer"));
    CHECK(a_rx + d.counter("a", "rx_bad_chain") + d.counter("a", "rx_short_chain") == sent);
    CHECK(d.counter("a", "rx_bad_chain") == 0);
    CHECK(d.counter("b", "tx_down") == 0);
    CHECK(delivered > 0);
    std::int64_t in_sum = 0, out_sum = 0;
    for (unsigned q = 0; q < s.a_pairs; ++q) {
        in_sum += queue_count(d, "a", "rx_queue", q);
    }
    for (unsigned q = 0; q < s.b_pairs; ++q) {
        out_sum += queue_count(d, "b", "tx_queue", q);
    }
    CHECK(in_sum == a_rx);
    CHECK(out_sum == delivered);

    // 2. every transmitq the sender ran was polled; the others were never used
    for (unsigned q = 0; q < s.a_pairs; ++q) {
        INFO("transmitq ", q);
        CHECK((queue_count(d, "a", "rx_queue", q) > 0) == (q < s.tx_queues));
    }
    // 3. a frame from transmitq q goes to the receiver's (q mod running)-th running receiveq:
    //    the first min(sender's, receiver's) receiveqs carry frames, each exactly what testpmd
    //    counted on that queue; one it did not enable carries none (and none was tried:
    //    tx_down is 0 above)
    CHECK(wait_until(5s, [&] { return rx.port_stat("ipackets") == delivered; }));
    for (unsigned q = 0; q < s.b_pairs; ++q) {
        INFO("receiveq ", q);
        const std::int64_t got = queue_count(d, "b", "tx_queue", q);
        CHECK((got > 0) == (q < std::min(s.tx_queues, s.rx_queues)));
        if (q < s.rx_queues) {
            CHECK(rx.queue_stat("q_ipackets", q) == got);
        }
    }
    rx.kill9();
    for (const testpmd* t : {&rx, &tx}) { // testpmd leaves its runtime directory
        std::filesystem::remove_all("/var/run/dpdk/" + t->prefix);
    }
}

} // namespace

TEST_CASE("npa-vswitchd multi-queue ports between two testpmd virtio-user ports (queues=2)") {
#ifndef NPA_TESTPMD
    MESSAGE("dpdk-testpmd not found: skipped");
    std::exit(77);
#else
    if (::geteuid() != 0) { // testpmd's runtime directory and telemetry socket live in /var/run/dpdk
        MESSAGE("not root: skipped");
        std::exit(77);
    }
    SUBCASE("two 2-pair ports, both pairs running on each side") { run({2, 2, 2, 2, 2}, "2"); }
    SUBCASE("a 1-pair port (its front end's queues=2) receives from a 2-queue sender: all on its one receiveq") {
        run({2, 1, 2, 1, 2}, "1");
    }
    SUBCASE("a receiver that enables one pair of two: both of the sender's queues go to it") {
        run({2, 2, 2, 1, 2}, "e");
    }
    SUBCASE("a sender that enables one pair of two") { run({2, 2, 1, 2, 2}, "s"); }
#endif
}
