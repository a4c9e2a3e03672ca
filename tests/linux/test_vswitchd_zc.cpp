// npa-vswitchd's zero-copy ports (npa/linux/zc_port.hpp): front ends that map the daemon's
// buffer pool, between which a frame moves by handing its buffer over.
//   - two zero-copy ports (zc_peer processes): every frame the sender published is taken,
//     delivered without a copy (tx_zero_copy) or counted; the receiver checks every byte and
//     the order; the pool is whole again when both left;
//   - a hostile front end (this process, writing its rings by hand): buffers it does not
//     own, past the pool, too long, too short, given back twice; a second front end on an
//     attached port, a connection that is not a front end and one that says nothing are
//     refused, the switch going on meanwhile; nothing is lost;
//   - kill -9 of a sending front end mid-stream: its buffers are reclaimed, and a new one
//     attaches and sends;
//   - the daemon killed: the front end sees it;
//   - waking (AF_XDP's need_wakeup): with front ends attached and idle, the daemon sleeps
//     its full timeout (its count of sleeps, read from its wake word); with a 60 s timeout, 200 single
//     frames, each sent while the daemon sleeps, wake it (the sender's kicks, every one
//     counted by the daemon) and reach a receiver blocked in wait_rx() (the daemon's kicks);
//     a front end flooding its connection with kicks and garbage is counted, does not keep
//     the daemon awake, and does not slow the others' frames;
//   - a zero-copy port and a vhost-user port (testpmd net_virtio_user), both ways: frames
//     copied across, every one accounted for (needs dpdk-testpmd and root, else skipped).
#include "vswitchd_kit.hpp"

#include <npa/linux/zc_port.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using npa::test::slurp;
using npa::test::vswitchd;
using npa::test::wait_until;
namespace zc = npa::lnx::zc;
namespace shm = npa::shm;

const std::string mac_a = "02:00:00:00:00:0a", mac_b = "02:00:00:00:00:0b", mac_c = "02:00:00:00:00:0c";
constexpr std::int64_t all_buffers = zc::pool_buffers;

std::string make_dir(const char* tag) {
    std::string t = std::string("/tmp/npa-vsw-zc-") + tag + "-XXXXXX";
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    return t;
}

struct peer {
    pid_t pid = -1;
    std::string log;
    void start(const std::vector<std::string>& args, const std::string& log_path) {
        log = log_path;
        std::vector<std::string> a = {NPA_ZC_PEER};
        a.insert(a.end(), args.begin(), args.end());
        pid = npa::test::spawn(a, log);
    }
    /// Waits for it to exit (SIGTERM first when `stop`); its exit status.
    int finish(bool stop, std::chrono::seconds limit = 60s) {
        if (stop) {
            ::kill(pid, SIGTERM);
        }
        int st = -1;
        const bool done = wait_until(limit, [&] { return ::waitpid(pid, &st, WNOHANG) == pid; });
        if (!done) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
        }
        pid = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    ~peer() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
    [[nodiscard]] std::int64_t after(const std::string& key) const { return npa::test::number_after(slurp(log), key); }
};

void start_receiver(peer& r, const vswitchd& d, const std::string& port, bool check = true) {
    std::vector<std::string> a = {"recv", d.dir + "/" + port + ".sock", "0"};
    if (!check) {
        a.emplace_back("any");
    }
    r.start(a, d.dir + "/recv-" + port + ".log");
    REQUIRE_MESSAGE(wait_until(10s, [&] { return d.state(port) == "running"; }), (slurp(r.log) + d.log()));
}

// A connection to a port's socket that says nothing yet.
int connect_raw(const std::string& path) {
    const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    REQUIRE(::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    return s;
}

// The daemon's refusal on connection `s` (closed): its sentence, "" if none came.
std::string refusal(int s) {
    zc::welcome w{};
    const bool got = ::recv(s, &w, sizeof w, 0) == static_cast<ssize_t>(sizeof w);
    ::close(s);
    w.reason[sizeof w.reason - 1] = '\0';
    return got && w.status != 0 ? std::string(w.reason) : std::string();
}

// The daemon with zero-copy ports a and b.
void start_two(vswitchd& d, const std::string& dir) {
    d.start(NPA_VSWITCHD, dir, {"a,mac=" + mac_a + ",zero-copy", "b,mac=" + mac_b + ",zero-copy"});
}

// Frames the switch took from `from` equal what it delivered to `to` or dropped anywhere.
void check_accounted(const vswitchd& d, const std::string& from, const std::string& to) {
    const std::int64_t taken = d.counter(from, "rx_packets");
    CHECK(wait_until(5s, [&] {
        return d.counter(from, "rx_packets") == d.rx_drops(from) + d.counter(to, "tx_packets") + d.tx_drops(to);
    }));
    MESSAGE(from << " -> " << to << ": taken " << taken << ", delivered " << d.counter(to, "tx_packets")
                 << " (zero-copy " << d.counter(to, "tx_zero_copy") << "), no room at the receiver "
                 << d.counter(to, "tx_no_buffer"));
}

// A front end of `port` in this process.
zc::port attach(const vswitchd& d, const std::string& port) {
    std::string why;
    auto p = zc::port::connect(d.dir + "/" + port + ".sock", &why);
    REQUIRE_MESSAGE(p.ok(), why);
    return std::move(*p);
}

// Writes a 60-byte frame from a to b carrying `seq` into buffer `b` of `p`.
shm::buf_desc frame_to_b(zc::port& p, std::uint32_t b, std::uint32_t seq) {
    std::byte* f = p.payload(b);
    const unsigned char dst[6] = {2, 0, 0, 0, 0, 0x0b}, src[6] = {2, 0, 0, 0, 0, 0x0a};
    std::memcpy(f, dst, 6);
    std::memcpy(f + 6, src, 6);
    f[12] = std::byte{0x88};
    f[13] = std::byte{0xb5};
    std::memcpy(f + 14, &seq, sizeof seq);
    std::memset(f + 18, 0x5a, 42);
    return {b, 60};
}

// The daemon's count of sleeps tried, from its wake word in `p`'s region (read while it
// sleeps: the word is 0 while it polls).
std::uint32_t sleeps_so_far(const zc::port& p) {
    std::uint32_t w = 0;
    REQUIRE(wait_until(5s, [&] { return ((w = p.daemon_wake_word()) & zc::daemon_sleeps) != 0; }));
    return w >> 1;
}
// Sleeps tried over about 1.5 s, and the seconds.
std::pair<std::uint32_t, double> sleeps_over_a_while(const zc::port& p) {
    const std::uint32_t before = sleeps_so_far(p);
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(1500ms);
    const std::uint32_t after = sleeps_so_far(p);
    return {after - before, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

// Sends one frame from `a` while the daemon sleeps (a sleep other than `slept`, the one
// the last frame was sent into: a front end kicks once per sleep) and receives it on `b`
// (blocked in wait_rx()) within 20 s: a third of the daemon's 60 s sleep, so only a kick
// explains it, and room for a loaded machine. False if it did not come. `kicked`: the
// send woke the daemon.
bool one_frame(zc::port& a, zc::port& b, std::uint32_t seq, std::uint32_t& slept, bool& kicked) {
    std::uint32_t buf;
    if (!wait_until(5s, [&] { return a.alloc(std::span<std::uint32_t>(&buf, 1)) == 1; }) ||
        !wait_until(5s, [&] {
            const std::uint32_t w = a.daemon_wake_word();
            return (w & zc::daemon_sleeps) != 0 && w != slept ? (slept = w, true) : false;
        })) {
        return false;
    }
    const std::uint64_t kicks = a.stats().kicks;
    const shm::buf_desc d = frame_to_b(a, buf, seq);
    if (a.send(std::span<const shm::buf_desc>(&d, 1)) != 1) {
        return false;
    }
    kicked = a.stats().kicks == kicks + 1;
    const auto until = std::chrono::steady_clock::now() + 20s;
    shm::buf_desc got{};
    std::uint32_t n = 0;
    while (n == 0 && std::chrono::steady_clock::now() < until) {
        (void)b.wait_rx(100);
        n = b.receive(std::span<shm::buf_desc>(&got, 1));
    }
    if (n == 0) {
        return false;
    }
    std::uint32_t at = 0;
    std::memcpy(&at, b.payload(got.buf) + 14, sizeof at);
    const std::uint32_t back = got.buf;
    return b.release(std::span<const std::uint32_t>(&back, 1)) == 1 && at == seq && got.len == 60;
}

} // namespace

TEST_CASE("two zero-copy ports: frames handed over, never copied, every one accounted for") {
    const std::string dir = make_dir("two");
    vswitchd d;
    start_two(d, dir);
    CHECK(slurp(dir + "/a.json").find("\"transport\": \"zero-copy\"") != std::string::npos);
    CHECK(d.counter("a", "pool_free") == all_buffers);
    peer r, s;
    start_receiver(r, d, "b");
    constexpr std::int64_t n = 300000;
    s.start({"send", dir + "/a.sock", std::to_string(n), mac_a, mac_b}, dir + "/send.log");
    REQUIRE_MESSAGE(s.finish(false, 120s) == 0, (slurp(s.log) + d.log()));
    CHECK(s.after("sent ") == n);
    REQUIRE(wait_until(10s, [&] { return d.counter("a", "rx_packets") == n; }));
    check_accounted(d, "a", "b");
    const std::int64_t delivered = d.counter("b", "tx_packets");
    CHECK(d.counter("b", "tx_zero_copy") == delivered); // not one copied
    CHECK(d.rx_drops("a") == 0);
    CHECK(d.counter("a", "zc_bad_buffer") == 0);
    CHECK(d.counter("b", "zc_bad_buffer") == 0);
    CHECK(d.counter("b", "tx_down") == 0);
    CHECK(delivered > 0); // the rest: no room on the receiver's ring (it checks every byte)
    // what the receiver read: every byte as sent, in order, gaps only where dropped
    REQUIRE_MESSAGE(r.finish(true) == 0, slurp(r.log));
    CHECK(r.after("received ") == delivered);
    CHECK(r.after(" bad ") == 0);
    CHECK(r.after(" gaps ") <= d.counter("b", "tx_no_buffer"));
    // both gone: every buffer back in the pool
    CHECK(wait_until(5s, [&] { return d.state("a") == "listening" && d.state("b") == "listening"; }));
    CHECK(wait_until(5s, [&] { return d.counter("a", "pool_free") == all_buffers; }));
    CHECK(d.counter("a", "zc_owned") == 0);
    CHECK(d.counter("b", "zc_owned") == 0);
    d.stop();
    std::filesystem::remove_all(dir);
}

TEST_CASE("a hostile zero-copy front end: every wrong index refused and counted, nothing lost") {
    const std::string dir = make_dir("hostile");
    vswitchd d;
    start_two(d, dir);
    peer r;
    start_receiver(r, d, "b", /*check=*/false); // the test's frame is not zc_peer's
    std::string why;
    auto conn = zc::port::connect(dir + "/a.sock", &why);
    REQUIRE_MESSAGE(conn.ok(), why);
    std::optional<zc::port> p;
    p.emplace(std::move(*conn));
    // a connection to b that never says hello: the switch goes on meanwhile (the frames
    // below go through), and refuses it after 200 ms
    const int silent = connect_raw(dir + "/b.sock");
    std::uint32_t lent[4];
    REQUIRE(wait_until(5s, [&] { return p->alloc(std::span<std::uint32_t>(lent, 1)) == 1; }));
    REQUIRE(wait_until(5s, [&] { return p->alloc(std::span<std::uint32_t>(lent + 1, 3)) == 3; }));

    // a good frame from lent[0] to b: delivered without a copy
    std::byte* f = p->payload(lent[0]);
    const unsigned char dst[6] = {2, 0, 0, 0, 0, 0x0b}, src[6] = {2, 0, 0, 0, 0, 0x0a};
    std::memcpy(f, dst, 6);
    std::memcpy(f + 6, src, 6);
    f[12] = std::byte{0x88};
    f[13] = std::byte{0xb5};
    std::memset(f + 14, 0x5a, 46);
    const shm::buf_desc frames[] = {
        {lent[0], 60},              // good
        {lent[0], 60},              // the same buffer again: no longer this port's
        {zc::pool_buffers + 7, 60}, // past the pool
        {lent[1], 5000},            // longer than a buffer
        {lent[2], 10},              // shorter than an Ethernet header
    };
    REQUIRE(p->send(frames) == 5);
    REQUIRE(wait_until(5s, [&] { return d.counter("a", "rx_packets") == 3; }));
    CHECK(wait_until(5s, [&] { return d.counter("a", "zc_bad_buffer") == 2; }));
    CHECK(d.counter("a", "rx_oversize") == 1);
    CHECK(d.counter("a", "rx_runt") == 1);
    CHECK(wait_until(5s, [&] { return d.counter("b", "tx_zero_copy") == 1; }));
    // buffers given back: one twice, one never lent, one past the pool
    const std::uint32_t back[] = {lent[3], lent[3], lent[0], zc::pool_buffers};
    REQUIRE(p->release(back) == 4);
    CHECK(wait_until(5s, [&] { return d.counter("a", "zc_bad_buffer") == 5; }));

    // refused connections: a second front end on an attached port, and not a front end
    std::string why2;
    auto second = zc::port::connect(dir + "/a.sock", &why2);
    CHECK(!second.ok());
    CHECK(why2 == "the port has a front end already");
    CHECK(refusal(silent) == "no hello within 200 ms");
    const int garbage = connect_raw(dir + "/b.sock");
    REQUIRE(::send(garbage, "hello", 5, 0) == 5);
    CHECK(refusal(garbage) == "the first message is not a zero-copy hello");
    CHECK(wait_until(5s, [&] { return d.counter("a", "protocol_errors") == 1 && d.counter("b", "protocol_errors") == 2; }));
    CHECK(d.state("b") == "running"); // the refused connection did not touch the attached one
    CHECK(p->daemon_alive());
    CHECK(p->stats().bad_from_daemon == 0);

    // the hostile front end leaves: what it held (lent[1], lent[2] were the switch's once
    // refused; the rest of its lend ring) is back; the receiver's buffers come back with it
    p.reset();
    REQUIRE_MESSAGE(r.finish(true) == 0, slurp(r.log));
    CHECK(r.after("received ") == 1);
    CHECK(r.after(" bad ") == 0);
    CHECK(wait_until(5s, [&] { return d.counter("a", "pool_free") == all_buffers; }));
    CHECK(d.log().find("a: front end refused: the port has a front end already") != std::string::npos);
    d.stop();
    std::filesystem::remove_all(dir);
}

TEST_CASE("kill -9 of a zero-copy sender mid-stream: its buffers reclaimed, a new one attaches") {
    const std::string dir = make_dir("kill");
    vswitchd d;
    start_two(d, dir);
    peer r;
    start_receiver(r, d, "b");
    {
        peer s;
        s.start({"send", dir + "/a.sock", "0", mac_a, mac_b}, dir + "/send1.log");
        REQUIRE_MESSAGE(wait_until(30s, [&] { return d.counter("b", "tx_packets") > 20000; }), d.log());
        ::kill(s.pid, SIGKILL);
        ::waitpid(s.pid, nullptr, 0);
        s.pid = -1;
    }
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "listening"; }));
    CHECK(wait_until(5s, [&] { return d.counter("a", "zc_reclaimed") > 0; }));
    CHECK(d.counter("a", "zc_owned") == 0);
    check_accounted(d, "a", "b");
    // a new sender: attaches to the same port and its frames arrive
    const std::int64_t before = d.counter("b", "tx_packets") + d.counter("b", "tx_no_buffer");
    peer s2;
    s2.start({"send", dir + "/a.sock", "50000", mac_a, mac_b}, dir + "/send2.log");
    REQUIRE_MESSAGE(s2.finish(false) == 0, (slurp(s2.log) + d.log()));
    CHECK(wait_until(10s, [&] { return d.counter("b", "tx_packets") + d.counter("b", "tx_no_buffer") == before + 50000; }));
    CHECK(d.counter("a", "connections") == 2);
    check_accounted(d, "a", "b");
    REQUIRE_MESSAGE(r.finish(true) == 0, slurp(r.log));
    CHECK(r.after(" bad ") == 0); // the second sender starts at 0 again: allowed once, as a new sender
    CHECK(r.after("received ") == d.counter("b", "tx_packets"));
    CHECK(wait_until(5s, [&] { return d.counter("a", "pool_free") == all_buffers; }));
    d.stop();
    std::filesystem::remove_all(dir);
}

TEST_CASE("the daemon killed: a zero-copy front end sees it go") {
    const std::string dir = make_dir("daemon");
    vswitchd d;
    d.start(NPA_VSWITCHD, dir, {"a,mac=" + mac_a + ",zero-copy"});
    auto p = zc::port::connect(dir + "/a.sock");
    REQUIRE(p.ok());
    CHECK(p->daemon_alive());
    ::kill(d.pid, SIGKILL);
    ::waitpid(d.pid, nullptr, 0);
    d.pid = -1;
    CHECK(wait_until(5s, [&] { return !p->daemon_alive(); }));
    std::filesystem::remove_all(dir);
}

TEST_CASE("a zero-copy port and a vhost-user port (testpmd): frames copied across, both ways") {
#ifndef NPA_TESTPMD
    MESSAGE("dpdk-testpmd not found: skipped");
#else
    if (::geteuid() != 0) {
        MESSAGE("not root: skipped");
        return;
    }
    const std::string dir = make_dir("mixed");
    vswitchd d;
    d.start(NPA_VSWITCHD, dir, {"a,mac=" + mac_a + ",zero-copy", "c,mac=" + mac_c});
    const std::string tag = std::to_string(::getpid());
    // 1. testpmd txonly on the vhost-user port -> the zero-copy port
    peer r;
    start_receiver(r, d, "a", /*check=*/false);
    npa::test::testpmd tx;
    tx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/c.sock,mac=" + mac_c, dir + "/tx.log",
                  "npa-vszc-tx-" + tag, {"--forward-mode=txonly", "--eth-peer=0," + mac_a});
    REQUIRE_MESSAGE(wait_until(30s, [&] { return d.counter("a", "tx_packets") > 20000; }), (slurp(dir + "/tx.log") + d.log()));
    const std::int64_t sent = npa::test::stop_sender(tx, dir + "/tx.log");
    REQUIRE(wait_until(5s, [&] { return d.state("c") == "listening"; }));
    CHECK(d.counter("c", "rx_packets") + d.counter("c", "rx_bad_chain") + d.counter("c", "rx_short_chain") == sent);
    check_accounted(d, "c", "a");
    CHECK(d.counter("a", "tx_zero_copy") == 0); // from a vhost-user port: copied
    REQUIRE_MESSAGE(r.finish(true) == 0, slurp(r.log));
    CHECK(r.after("received ") == d.counter("a", "tx_packets"));
    // 2. the zero-copy port -> testpmd rxonly on the vhost-user port
    npa::test::testpmd rx;
    rx.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + dir + "/c.sock,mac=" + mac_c, dir + "/rx.log",
                  "npa-vszc-rx-" + tag, {"--forward-mode=rxonly"});
    // running at DRIVER_OK; frames before testpmd starts forwarding would be flushed unseen
    REQUIRE_MESSAGE(wait_until(30s, [&] { return d.state("c") == "running" && slurp(dir + "/rx.log").find("Port statistics") != std::string::npos; }),
                    (slurp(dir + "/rx.log") + d.log()));
    peer s;
    constexpr std::int64_t n = 100000;
    s.start({"send", dir + "/a.sock", std::to_string(n), mac_a, mac_c}, dir + "/send.log");
    REQUIRE_MESSAGE(s.finish(false, 120s) == 0, (slurp(s.log) + d.log()));
    REQUIRE(wait_until(10s, [&] { return d.counter("a", "rx_packets") == n; }));
    check_accounted(d, "a", "c");
    CHECK(d.counter("c", "tx_packets") > 0);
    CHECK(wait_until(5s, [&] { return rx.port_stat("ipackets") == d.counter("c", "tx_packets"); }));
    CHECK(wait_until(5s, [&] { return d.counter("a", "pool_free") == all_buffers; }));
    rx.kill9();
    for (const npa::test::testpmd* t : {&rx, &tx}) {
        std::filesystem::remove_all("/var/run/dpdk/" + t->prefix);
    }
    d.stop();
    std::filesystem::remove_all(dir);
#endif
}

TEST_CASE("zero-copy front ends attached and idle: the daemon sleeps its full timeout") {
    const std::string dir = make_dir("idle");
    vswitchd d;
    start_two(d, dir);
    zc::port a = attach(d, "a");
    zc::port b = attach(d, "b");
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "running" && d.state("b") == "running"; }));
    REQUIRE(wait_until(5s, [&] { return a.daemon_asleep() && b.daemon_asleep(); }));
    // sleeps of 100 ms: about 10 a second (the 1 ms sleeps of a daemon that cannot be
    // woken were about 1000); a loaded machine makes fewer, never more
    const auto [slept, secs] = sleeps_over_a_while(a);
    MESSAGE("idle with two zero-copy front ends: " << slept << " sleeps in " << secs << " s");
    CHECK(slept > 0);
    CHECK(static_cast<double>(slept) < 30.0 * secs);
    CHECK(b.daemon_wake_word() == a.daemon_wake_word()); // one word, in every port region
    CHECK(d.counter("a", "zc_kicks") == 0); // nothing published: nothing to kick for
    CHECK(a.stats().kicks == 0);
    d.stop();
    std::filesystem::remove_all(dir);
}

TEST_CASE("a frame sent while the daemon sleeps wakes it: 200 single frames, none stranded") {
    const std::string dir = make_dir("wake");
    vswitchd d;
    // a sleep of 60 s: a frame that arrives within 20 s was brought by the kick
    d.start(NPA_VSWITCHD, dir, {"a,mac=" + mac_a + ",zero-copy", "b,mac=" + mac_b + ",zero-copy"},
            {"--idle-sleep-ms", "60000"});
    zc::port a = attach(d, "a");
    zc::port b = attach(d, "b");
    REQUIRE(wait_until(5s, [&] { return d.state("a") == "running" && d.state("b") == "running"; }));
    constexpr std::uint32_t n = 200;
    std::uint32_t kicked = 0, slept = 0;
    const std::uint32_t sleeps0 = sleeps_so_far(a);
    for (std::uint32_t i = 0; i < n; ++i) {
        if (i < 5) {
            // the JSON written after the last frame's traffic: the daemon's sleep now is
            // the 60 s one (the one before it ends early to write the JSON)
            REQUIRE(wait_until(5s, [&] {
                return d.counter("b", "tx_packets") == i && d.counter("b", "zc_owned") == zc::lend_target;
            }));
        }
        bool k = false;
        REQUIRE_MESSAGE(one_frame(a, b, i, slept, k), "frame " << i << " did not arrive within 20 s\n" << d.log());
        kicked += k ? 1 : 0;
    }
    MESSAGE(kicked << " of " << n << " frames were sent while the daemon slept (and kicked it)");
    CHECK(kicked >= n / 2); // the rest: the daemon woke (its JSON due) between the look and the send
    // the daemon read every kick the sender sent, and kicked the receiver in its waits
    CHECK(wait_until(5s, [&] { return d.counter("b", "tx_packets") == n; }));
    CHECK(wait_until(5s, [&] { return d.counter("a", "zc_kicks") == static_cast<std::int64_t>(a.stats().kicks); }));
    CHECK(d.counter("a", "zc_kicks") >= kicked);
    CHECK(d.counter("b", "zc_rx_kicks") > 0);
    CHECK(d.counter("a", "zc_bad_kick") == 0);
    CHECK(d.counter("b", "tx_zero_copy") == n);
    CHECK(sleeps_so_far(a) - sleeps0 >= n); // it slept between the frames
    d.stop();
    std::filesystem::remove_all(dir);
}

TEST_CASE("a front end flooding its connection: counted, the daemon still sleeps, the others' frames pass") {
    const std::string dir = make_dir("flood");
    vswitchd d;
    d.start(NPA_VSWITCHD, dir,
            {"a,mac=" + mac_a + ",zero-copy", "b,mac=" + mac_b + ",zero-copy", "c,mac=" + mac_c + ",zero-copy"});
    zc::port a = attach(d, "a");
    zc::port b = attach(d, "b");
    zc::port c = attach(d, "c");
    REQUIRE(wait_until(5s, [&] { return d.state("c") == "running"; }));
    // c writes kicks and anything else (empty messages, wrong magic, 200 bytes) as fast as
    // its socket takes them
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> flooded{0};
    std::thread flood([&] {
        unsigned char m[200];
        std::memset(m, 0xab, sizeof m);
        const zc::kick k{zc::kick_magic, 0};
        for (std::uint32_t i = 0; !stop.load(); ++i) {
            const std::size_t len = i % 4 == 0 ? 0 : i % 4 == 1 ? sizeof k : i % 4 == 2 ? 8 : sizeof m;
            const void* what = i % 4 == 1 ? static_cast<const void*>(&k) : m;
            if (::send(c.socket_fd(), what, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
                flooded.fetch_add(1);
            } else {
                std::this_thread::sleep_for(50us);
            }
        }
    });
    // 1. the flood alone: the daemon sleeps (100 ms each, c not listened to), not spins
    REQUIRE(wait_until(5s, [&] { return d.counter("c", "zc_bad_kick") > 0; }));
    const auto [sleeps, secs] = sleeps_over_a_while(a);
    MESSAGE("flooded: " << sleeps << " sleeps in " << secs << " s, " << flooded.load() << " messages sent");
    CHECK(static_cast<double>(sleeps) < 60.0 * secs);
    // 2. single frames from a to b meanwhile: every one wakes the daemon and arrives
    std::uint32_t kicked = 0, slept = 0;
    for (std::uint32_t i = 0; i < 50; ++i) {
        bool k = false;
        REQUIRE_MESSAGE(one_frame(a, b, i, slept, k), "frame " << i << " did not arrive within 20 s\n" << d.log());
        kicked += k ? 1 : 0;
    }
    stop = true;
    flood.join();
    MESSAGE(kicked << " of 50 frames kicked the daemon during the flood");
    CHECK(kicked > 0);
    CHECK(wait_until(5s, [&] { return d.counter("b", "tx_packets") == 50; }));
    CHECK(d.counter("a", "zc_bad_kick") == 0);
    CHECK(d.counter("c", "zc_kicks") > 0);
    CHECK(d.counter("c", "zc_bad_kick") > d.counter("c", "zc_kicks")); // three in four were garbage
    CHECK(d.state("c") == "running"); // counted and dropped, not a reason to end the connection
    CHECK(c.daemon_alive());
    d.stop();
    std::filesystem::remove_all(dir);
}
