// npa/linux/shm_region.hpp between two processes: this test and shm_peer (fork + exec,
// the memfd passed over a unix socket with SCM_RIGHTS, mapped at another address).
// A million buffers each way, every one checked; kill -9 of either side seen by the other
// through a pidfd, the audit consistent and, after reclaim, every buffer back home.
#include <doctest/doctest.h>

#include "shm_stream.hpp"

#include <npa/linux/shm_region.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace shm = npa::shm;
using npa::lnx::shm_region;

constexpr std::uint64_t million = 1'000'000;
// How long a kill -9 may take to be seen (the pidfd answers at once; scheduling on a
// loaded two-core machine is what this bounds).
constexpr auto detect_bound = std::chrono::seconds(10);

struct helper {
    pid_t pid = -1;
    int sock = -1;
};

// Starts shm_peer with its end of a socket pair, sends it the memfd and waits until it
// has attached.
helper spawn(const shm_region& region, const char* role, std::uint64_t count,
             std::uint32_t hold = 0) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(sv[0]);
        const int fd = ::dup(sv[1]); // without CLOEXEC: the helper inherits it
        const std::string fds = std::to_string(fd);
        const std::string n = std::to_string(count);
        const std::string k = std::to_string(hold);
        ::execl(NPA_SHM_PEER, "shm_peer", role, fds.c_str(), n.c_str(), k.c_str(), nullptr);
        ::_exit(127);
    }
    ::close(sv[1]);
    REQUIRE(npa::lnx::send_fd(sv[0], region.fd()).ok());
    char ready = 0;
    REQUIRE(::read(sv[0], &ready, 1) == 1);
    CHECK(ready == 'R');
    return {pid, sv[0]};
}

// The helper's report (received or sent, bad, saw its parent die) and exit status.
struct outcome {
    std::uint64_t report[3] = {0, 0, 0};
    int exit_status = -1;
};

outcome finish(helper& h) {
    outcome o;
    std::size_t got = 0;
    auto* bytes = reinterpret_cast<char*>(o.report);
    while (got < sizeof(o.report)) {
        const ssize_t n = ::read(h.sock, bytes + got, sizeof(o.report) - got);
        if (n <= 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    int ws = 0;
    REQUIRE(::waitpid(h.pid, &ws, 0) == h.pid);
    o.exit_status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    ::close(h.sock);
    return o;
}

struct rig {
    shm::layout l = shm_stream::make_layout();
    shm_region region = make();
    shm_stream::endpoints e = endpoints();

    shm_region make() {
        auto r = shm_region::create(l, "npa-shm-test");
        REQUIRE(r.ok());
        return std::move(*r);
    }
    shm_stream::endpoints endpoints() {
        auto opened = shm_stream::open(region.region(), true);
        REQUIRE(opened.ok());
        region.region().announce(0, static_cast<std::uint32_t>(::getpid()), npa::lnx::boot_ns());
        return *opened;
    }
    shm::audit_report audit(std::span<const std::uint32_t> held, std::vector<std::uint8_t>& m) {
        return shm::audit(e.pool, held, m, *e.ring);
    }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Kills the helper with SIGKILL and lets `resume` (this side's loop, whose idle path asks
// `dead`) run until it stops; checks that it stopped because of the death, within the bound,
// and that the helper died of the signal. Returns the seconds the death took to be seen.
template <class Resume>
double kill_and_detect(helper& h, Resume&& resume) {
    auto watch = npa::lnx::peer_watch::open(h.pid);
    REQUIRE(watch.ok());
    REQUIRE(::kill(h.pid, SIGKILL) == 0);
    const auto t0 = std::chrono::steady_clock::now();
    const bool ran_out = resume([&] { return watch->dead(0); });
    const double detect = seconds_since(t0);
    CHECK_FALSE(ran_out);
    CHECK(watch->dead(0));
    CHECK(detect < std::chrono::duration<double>(detect_bound).count());
    CHECK(finish(h).exit_status == 128 + SIGKILL);
    return detect;
}

} // namespace

TEST_CASE("shm region: the memfd is sealed and the peer refuses one that is not") {
    rig r;
    const int seals = ::fcntl(r.region.fd(), F_GET_SEALS);
    CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
          (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    CHECK(::ftruncate(r.region.fd(), 4096) != 0); // cannot shrink under the peer
    const int plain = ::memfd_create("npa-shm-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(plain >= 0);
    REQUIRE(::ftruncate(plain, static_cast<off_t>(r.l.total_bytes())) == 0);
    auto bad = shm_region::attach(plain);
    CHECK_FALSE(bad.ok());
    CHECK(std::string(bad.error().reason()).find("not sealed") != std::string::npos);
    // A sealed memfd whose header is garbage is refused by the validator.
    const int junk = ::memfd_create("npa-shm-junk", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(junk >= 0);
    REQUIRE(::ftruncate(junk, 4096) == 0);
    REQUIRE(::fcntl(junk, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    auto refused = shm_region::attach(junk);
    CHECK_FALSE(refused.ok());
    CHECK(std::string(refused.error().reason()).find("wrong magic") != std::string::npos);
}

TEST_CASE("shm region: a million buffers from this producer to a consumer process and back") {
    rig r;
    helper h = spawn(r.region, "consumer", million);
    CHECK(r.region.region().pid(1) == static_cast<std::uint32_t>(h.pid));
    auto watch = npa::lnx::peer_watch::open(h.pid);
    REQUIRE(watch.ok());
    shm_stream::producer p;
    const auto t0 = std::chrono::steady_clock::now();
    const bool all = shm_stream::produce(
        r.e, p, million, [&] { return watch->dead(0); }, [&] { r.region.region().beat(0); });
    const outcome o = finish(h);
    MESSAGE("1M buffers producer -> consumer process in " << seconds_since(t0) << " s");
    CHECK(all);
    CHECK(o.exit_status == 0);
    CHECK(o.report[0] == million); // received
    CHECK(o.report[1] == 0);       // bad
    std::vector<std::uint8_t> marks(shm_stream::pool_count);
    const auto a = r.audit({}, marks);
    CHECK(a.all_home());
}

TEST_CASE("shm region: a million buffers from a producer process to this consumer and back") {
    rig r;
    helper h = spawn(r.region, "producer", million);
    auto watch = npa::lnx::peer_watch::open(h.pid);
    REQUIRE(watch.ok());
    shm_stream::consumer c;
    const auto t0 = std::chrono::steady_clock::now();
    const bool all = shm_stream::consume(
        r.e, c, million, [&] { return watch->dead(0); }, [&] { r.region.region().beat(0); });
    const outcome o = finish(h);
    MESSAGE("1M buffers producer process -> consumer in " << seconds_since(t0) << " s");
    CHECK(all);
    CHECK(o.exit_status == 0);
    CHECK(o.report[0] == million); // sent
    CHECK(c.received == million);
    CHECK(c.bad == 0);
    std::vector<std::uint8_t> marks(shm_stream::pool_count);
    CHECK(r.audit({}, marks).all_home());
}

TEST_CASE("shm region: kill -9 of the producer mid-stream is seen by the consumer") {
    rig r;
    helper h = spawn(r.region, "producer", 0); // until killed
    shm_stream::consumer c;
    // Mid-stream: consume a while, then kill while the producer is running, and keep
    // consuming what it published; the idle loop looks at the pidfd.
    REQUIRE(shm_stream::consume(r.e, c, 100'000, [] { return false; }, [] {}));
    const double detect = kill_and_detect(h, [&](auto dead) {
        return shm_stream::consume(r.e, c, ~std::uint64_t{0}, dead, [] {});
    });
    MESSAGE("producer's kill -9 seen after " << detect << " s; consumed " << c.received);
    CHECK(c.bad == 0); // nothing half-written was ever published
    // The survivor audits: every buffer is in the pool, in the ring, or with the dead side.
    std::vector<std::uint8_t> marks(shm_stream::pool_count);
    const auto a = r.audit({}, marks);
    MESSAGE("after the producer died: pool " << a.in_pool << ", ring " << a.in_rings
                                             << ", with the dead producer " << a.with_peer);
    CHECK(a.consistent());
    CHECK(a.total == shm_stream::pool_count);
    // Reclaim: this side frees (it is the free ring's producer already).
    CHECK(shm::reclaim(r.e.pool, marks) == a.with_peer);
    shm::drain_to_pool(*r.e.ring, r.e.pool);
    CHECK(r.audit({}, marks).all_home());
    CHECK(r.e.pool.stats().overfree == 0);
}

TEST_CASE("shm region: kill -9 of the consumer mid-stream is seen by the producer") {
    rig r;
    constexpr std::uint32_t hold = 256; // buffers the consumer has in flight at any time
    helper h = spawn(r.region, "consumer", 0, hold);
    shm_stream::producer p;
    REQUIRE(shm_stream::produce(r.e, p, 100'000, [] { return false; }, [] {}));
    // Keep producing after the kill: the ring fills, the pool runs dry, the idle loop
    // sees the pidfd.
    const double detect = kill_and_detect(h, [&](auto dead) {
        return shm_stream::produce(r.e, p, ~std::uint64_t{0}, dead, [] {});
    });
    MESSAGE("consumer's kill -9 seen after " << detect << " s; produced " << p.sent);
    const std::span<const std::uint32_t> held(p.held + p.held_at, p.held_n - p.held_at);
    std::vector<std::uint8_t> marks(shm_stream::pool_count);
    const auto a = r.audit(held, marks);
    MESSAGE("after the consumer died: pool " << a.in_pool << ", ring " << a.in_rings << ", held "
                                             << a.held << ", with the dead consumer "
                                             << a.with_peer);
    CHECK(a.consistent());
    CHECK(a.held == held.size());
    CHECK(a.with_peer >= hold);
    // Reclaim: take the dead consumer's roles (the free ring's producer, the data ring's
    // consumer), empty the ring, return ours and what the dead side had.
    r.e.pool.ring().take_over_producer();
    CHECK(shm::drain_to_pool(*r.e.ring, r.e.pool) == a.in_rings);
    CHECK(shm::reclaim(r.e.pool, marks) == a.with_peer);
    r.e.pool.free_burst(held);
    CHECK(r.audit({}, marks).all_home());
    CHECK(r.e.pool.stats().overfree == 0);
}

TEST_CASE("shm region: a stopped peer's heartbeat stalls while its pidfd says alive") {
    rig r;
    helper h = spawn(r.region, "consumer", 0);
    auto watch = npa::lnx::peer_watch::open(h.pid);
    REQUIRE(watch.ok());
    shm::region& reg = r.region.region();
    // The idle consumer beats every idle_check loops; wait for a beat, then stop it.
    const std::uint64_t first = reg.heartbeat(1);
    const auto t0 = std::chrono::steady_clock::now();
    while (reg.heartbeat(1) == first && seconds_since(t0) < 10) {
        ::usleep(1000);
    }
    CHECK(reg.heartbeat(1) != first);
    REQUIRE(::kill(h.pid, SIGSTOP) == 0);
    int ws = 0;
    REQUIRE(::waitpid(h.pid, &ws, WUNTRACED) == h.pid);
    shm::heartbeat_watch hw(50'000'000); // 50 ms
    bool stalled = false;
    const auto t1 = std::chrono::steady_clock::now();
    while (!stalled && seconds_since(t1) < 5) {
        stalled = hw.stalled(reg.heartbeat(1), npa::lnx::boot_ns());
        ::usleep(1000);
    }
    CHECK(stalled);
    CHECK_FALSE(watch->dead(0));
    REQUIRE(::kill(h.pid, SIGKILL) == 0);
    CHECK(watch->dead(10'000));
    const outcome o = finish(h);
    CHECK(o.exit_status == 128 + SIGKILL);
}
