// benchmarks/vhost_bench.cpp: npa's virtio-net front end over vhost-user against DPDK's
// net_virtio_user, both against the same kind of peer: DPDK's net_vhost in a dpdk-testpmd
// (tests/linux/vhost_testpmd.hpp starts it), in both directions.
//
//   npa_vhost_bench [--seconds T] [--rounds N] [--direction send|receive|both]
//   valgrind --tool=callgrind npa_vhost_bench --icount B
//   --packed (either form): npa's front end on packed rings instead of split ones
//
//   send     the peer in rxonly mode; npa: this process's main thread sends 64-byte frames
//            through npa::shell over one virtio-net path (polled rings): alloc, build,
//            tx_burst, free what was not taken, poll when the ring is full, as an
//            application of the shell would; virtio: a second dpdk-testpmd with a net_virtio_user port on
//            the peer's socket, --forward-mode=txonly, 64-byte frames. The peer's ipackets
//            count.
//   receive  the peer in txonly mode (64-byte frames); npa: the main thread polls the
//            plugin's receiveq (the sim's test_api as the shell, which checks every
//            buffer's owner at each hand-over, as tests/linux/vhost_net_kit.hpp does),
//            its frames count; virtio: net_virtio_user in rxonly mode,
//            its ipackets count.
//
// Rounds alternate npa, virtio, npa, virtio... (a fresh peer each), so a change in the
// machine's load hits both. The front end runs on CPU 0, the peer's forwarding lcore on
// CPU 1 (two busy pollers on two cores). Each round counts frames over T seconds of wall
// time (telemetry for testpmd's ports), and the on-CPU time of the front end's thread over
// the same window (npa: its own thread clock; virtio: the busiest thread of its testpmd,
// the forwarding lcore, from schedstat). Reports wall Mpps and frames per CPU-second per
// round, medians, npa/virtio of the medians and the median of each round's npa/virtio.
// --icount B [--via shell|test_api]: npa's send side only, through the shell (the rounds'
// way) or the plugin under the test API, B bursts counted by callgrind (client requests: the
// counters zeroed after a warm-up, dumped as "send" after the B bursts; instructions are
// stable where time on a shared machine is not; before each burst, uncounted, the peer
// is waited for until it has sent all it holds), then the frames the plugin took; the
// dump's total over those frames is instructions per frame (the whole loop: frame
// building, the shell's or the test API's bookkeeping, the plugin, the ring and the kicks).
// Needs root (testpmd's /var/run/dpdk). Measures; never fails on a number.
#define DOCTEST_CONFIG_IMPLEMENT
#include "cpu_time.hpp"
#include "vhost_net_kit.hpp"

#include <npa/shell.hpp>

#include <sched.h>
#include <time.h>
#include <valgrind/callgrind.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace npa::test::vhost_net;
using npa::test::testpmd;
using npa::test::wait_until;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr mac far_mac{0x02, 0, 0, 0, 0x76, 0x02};
constexpr std::uint32_t frame_bytes = 64;

struct result {
    std::int64_t frames = 0; // counted by the peer in the window
    double wall_s = 0;
    double cpu_s = 0; // the sending thread on a CPU in the window
    [[nodiscard]] double mpps() const { return static_cast<double>(frames) / wall_s / 1e6; }
    [[nodiscard]] double per_cpu_s() const {
        return cpu_s > 0 ? static_cast<double>(frames) / cpu_s / 1e6 : 0;
    }
};

struct rig {
    std::string dir, sock, prefix;
    testpmd peer;
    rig(int round, const std::vector<std::string>& peer_args) {
        char tmpl[] = "/tmp/npa-vhost-bench-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            std::perror("mkdtemp");
            std::exit(2);
        }
        dir = tmpl;
        sock = dir + "/vhost.sock";
        prefix = "npa-vb-" + std::to_string(::getpid()) + "-" + std::to_string(round);
        peer.start(NPA_TESTPMD, sock, prefix + "-peer", peer_args);
    }
    ~rig() {
        peer.kill9();
        // The socket directory and both testpmds' runtime directories (EAL leaves them).
        std::string cmd = "rm -rf '" + dir + "' /var/run/dpdk/" + prefix + "-peer /var/run/dpdk/" +
                          prefix + "-virtio";
        (void)std::system(cmd.c_str());
    }
    [[nodiscard]] bool link_up() const {
        return wait_until(30s, [&] {
            return peer.telemetry("/ethdev/link_status,0").find("\"UP\"") != std::string::npos;
        });
    }
};

void pin_to_cpu0() {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    (void)::sched_setaffinity(0, sizeof set, &set);
}

// One 64-byte frame to far_mac: the MACs, EtherType 0x88B5 (local experimental), zeros.
void build64(buffer_t b, const mac& src) {
    std::byte* d = b.data();
    std::memcpy(d, far_mac.data(), 6);
    std::memcpy(d + 6, src.data(), 6);
    d[12] = std::byte{0x88};
    d[13] = std::byte{0xB5};
    std::memset(d + 14, 0, frame_bytes - 14);
    b.set_length(frame_bytes);
}

// One burst of up to 32 frames into the plugin's TX ring; what it did not take goes back.
// Returns the frames the plugin took.
std::uint16_t send_burst(net_port& p) {
    std::array<buffer_t, 32> b{};
    std::uint32_t got = p.api->alloc_tx(b);
    if (got < b.size()) {
        (void)p.plugin.tx_reap(0);
        got += p.api->alloc_tx(std::span(b.data() + got, b.size() - got));
    }
    for (std::uint32_t i = 0; i < got; ++i) {
        build64(b[i], p.cfg.mac);
    }
    p.api->offer(std::span<const buffer_t>(b.data(), got));
    const std::uint16_t acc = p.plugin.tx_burst(0, std::span(b.data(), got));
    p.api->not_accepted(std::span<const buffer_t>(b.data() + acc, got - acc));
    p.api->free(std::span<const buffer_t>(b.data() + acc, got - acc));
    if (acc < got) {
        (void)p.plugin.tx_reap(0);
    }
    return acc;
}

struct shell_env {
    using pool_type = pool_t;
    static std::uint64_t now_ns() noexcept {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
    }
};
using shell_t = npa::shell<shell_env, npa::virtio_net_plugin>;

// A testpmd port takes any MAC and RX mode: no authority behind the path.
struct no_authority {
    npa::status submit(const npa::control_request&) { return {}; }
    npa::status submit_batch(std::span<const npa::control_request>) { return {}; }
};

// The send side as an application of npa sees it: a shell with one virtio-net path over
// vhost-user, its pool in the path's memfd.
struct shell_port {
    vu::net_device dev{10000};
    std::optional<pool_t> pool;
    no_authority ctl;
    std::optional<shell_t> sh;
    mac self;

    shell_port(const vu::net_config& c, const mac& /*peer: every frame goes to far_mac*/ = far_mac)
        : self(c.mac) {
        open_device(dev, c, pool);
    }
    ~shell_port() { sh.reset(); }

    void attach() {
        REQUIRE(wait_until(30s, [&] { return static_cast<bool>(dev.connect()); }));
        pool_t* pools[] = {&*pool};
        npa::shell_config sc;
        sc.queues = one_pair();
        static shell_env env;
        sh.emplace(env, pools, sc);
        REQUIRE(sh->init_status());
        const npa::path_id v = sh->add_path<npa::virtio_net_plugin>(dev.window(), npa::control_link::to(ctl));
        REQUIRE(v != shell_t::no_path);
        const npa::status st = sh->start(v);
        INFO(std::string(st.reason()), " / ", dev.last_error());
        REQUIRE(st);
    }
    [[nodiscard]] npa::virtio_net_plugin<shell_t::api>& plugin() {
        return *sh->plugin<npa::virtio_net_plugin>(0);
    }
};

// One burst of up to 32 frames through the shell; what it did not take goes back to the
// pool, and the plugin's TX ring is polled. Returns the frames the shell took.
std::uint16_t send_burst(shell_port& p) {
    std::array<buffer_t, 32> b{};
    std::uint32_t got = p.sh->alloc(0, b);
    if (got < b.size()) {
        (void)p.sh->poll(0);
        got += p.sh->alloc(0, std::span(b.data() + got, b.size() - got));
    }
    for (std::uint32_t i = 0; i < got; ++i) {
        build64(b[i], p.self);
    }
    const std::uint16_t acc = p.sh->tx_burst(0, std::span(b.data(), got));
    p.sh->free(0, std::span<const buffer_t>(b.data() + acc, got - acc));
    if (acc < got) {
        (void)p.sh->poll(0);
    }
    return acc;
}

plugin_t& plugin_of(net_port& p) { return p.plugin; }
npa::virtio_net_plugin<shell_t::api>& plugin_of(shell_port& p) { return p.plugin(); }

// Both sides poll, as net_virtio_user and net_vhost do.
// --packed: npa's front end on packed rings (net_config::packed_ring); split otherwise.
bool packed_rings = false;

vu::net_config polled(const std::string& sock) {
    vu::net_config cfg;
    cfg.socket = sock;
    cfg.polled = true;
    cfg.packed_ring = packed_rings;
    return cfg;
}

// The plugin attached to the peer, the link up, this thread on CPU 0.
template <class Port>
void attach_and_pin(Port& p, const rig& r, int round) {
    p.attach();
    if (!r.link_up()) {
        std::fprintf(stderr, "npa round %d: the peer's link never came up\n", round);
        std::exit(2);
    }
    pin_to_cpu0();
}

const std::vector<std::string> rxonly = {"--forward-mode=rxonly"};
const std::vector<std::string> txonly = {"--forward-mode=txonly", "--txpkts=64"};

result round_npa(int round, double seconds) {
    rig r(round, rxonly);
    shell_port p(polled(r.sock));
    attach_and_pin(p, r, round);
    const npa_bench::thread_cpu_clock clk;
    const auto warm = clock_type::now() + 200ms;
    while (clock_type::now() < warm) {
        send_burst(p);
    }
    result res;
    const std::int64_t f0 = r.peer.port_stat("ipackets");
    const std::uint64_t c0 = clk.now_ns();
    const auto t0 = clock_type::now();
    const auto end = t0 + std::chrono::duration<double>(seconds);
    for (unsigned n = 0;; ++n) {
        send_burst(p);
        if ((n & 63) == 0 && clock_type::now() >= end) {
            break;
        }
    }
    res.frames = r.peer.port_stat("ipackets") - f0;
    res.cpu_s = static_cast<double>(clk.now_ns() - c0) / 1e9;
    res.wall_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    return res;
}

// --icount: `bursts` bursts to an rxonly peer between callgrind's zero and dump.
template <class Port>
int icount_send(unsigned bursts) {
    rig r(0, rxonly);
    Port p(polled(r.sock), far_mac);
    attach_and_pin(p, r, 0);
    for (int i = 0; i < 2048; ++i) { // the ring full and reaped a few times over
        send_burst(p);
    }
    std::uint64_t frames = 0;
    CALLGRIND_ZERO_STATS;
    for (unsigned i = 0; i < bursts; ++i) {
        // Uncounted: the peer through what it was given, so every burst finds the same
        // ring (a peer starved of CPU would otherwise turn bursts into refused frames).
        CALLGRIND_TOGGLE_COLLECT;
        const auto until = clock_type::now() + 1s;
        while (plugin_of(p).tx_reapable(0) != plugin_of(p).tx_in_flight(0) && clock_type::now() < until) {
        }
        CALLGRIND_TOGGLE_COLLECT;
        frames += send_burst(p);
    }
    CALLGRIND_DUMP_STATS_AT("send");
    std::printf("send %llu frames in %u bursts\n", static_cast<unsigned long long>(frames), bursts);
    return 0;
}

// npa receives what the peer sends (txonly); the frames npa took off its receiveq count.
result round_npa_rx(int round, double seconds) {
    rig r(round, txonly);
    net_port p(polled(r.sock), far_mac);
    attach_and_pin(p, r, round);
    const npa_bench::thread_cpu_clock clk;
    std::int64_t got = 0;
    const auto count = [&](const buffer_t&) { ++got; };
    const auto warm = clock_type::now() + 200ms;
    while (clock_type::now() < warm) {
        (void)p.receive(count);
    }
    result res;
    got = 0;
    const std::uint64_t c0 = clk.now_ns();
    const auto t0 = clock_type::now();
    const auto end = t0 + std::chrono::duration<double>(seconds);
    for (unsigned n = 0;; ++n) {
        (void)p.receive(count);
        if ((n & 63) == 0 && clock_type::now() >= end) {
            break;
        }
    }
    res.frames = got;
    res.cpu_s = static_cast<double>(clk.now_ns() - c0) / 1e9;
    res.wall_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    return res;
}

// On-CPU nanoseconds of every thread of process `pid` (schedstat's first field).
std::vector<std::pair<long, std::uint64_t>> threads_cpu(pid_t pid) {
    std::vector<std::pair<long, std::uint64_t>> out;
    const std::string task = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(task.c_str());
    if (d == nullptr) {
        return out;
    }
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        std::FILE* f = std::fopen((task + "/" + e->d_name + "/schedstat").c_str(), "r");
        unsigned long long ns = 0;
        if (f != nullptr) {
            if (std::fscanf(f, "%llu", &ns) != 1) {
                ns = 0;
            }
            std::fclose(f);
        }
        out.emplace_back(std::strtol(e->d_name, nullptr, 10), ns);
    }
    ::closedir(d);
    return out;
}

// A second testpmd with net_virtio_user on the peer's socket: `tx` sends to the peer
// (txonly, the peer's ipackets count), otherwise it receives from it (rxonly, its own
// ipackets count).
result round_virtio(int round, double seconds, bool tx) {
    rig r(round, tx ? rxonly : txonly);
    // net_virtio_user connects once, at probe: the peer's socket must be there first.
    if (!wait_until(30s, [&] { return ::access(r.sock.c_str(), F_OK) == 0; })) {
        std::fprintf(stderr, "virtio round %d: the peer never made %s\n", round, r.sock.c_str());
        std::exit(2);
    }
    testpmd sender;
    // Its forwarding lcore on CPU 0, its main lcore on CPU 1 (it sleeps there).
    sender.start_vdev(NPA_TESTPMD, "net_virtio_user0,path=" + r.sock + ",queues=1",
                      r.dir + "/virtio.log", r.prefix + "-virtio", tx ? txonly : rxonly,
                      {"--lcores", "0@1,1@0"});
    const testpmd& counter = tx ? r.peer : sender;
    if (!r.link_up() || !wait_until(30s, [&] { return counter.port_stat("ipackets") > 0; })) {
        std::fprintf(stderr, "virtio round %d: no frames counted (log: %s)\n", round,
                     (r.dir + "/virtio.log").c_str());
        std::exit(2);
    }
    std::this_thread::sleep_for(200ms);
    result res;
    const auto before = threads_cpu(sender.pid);
    const std::int64_t f0 = counter.port_stat("ipackets");
    const auto t0 = clock_type::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    res.frames = counter.port_stat("ipackets") - f0;
    res.wall_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    const auto after = threads_cpu(sender.pid);
    std::uint64_t busiest = 0;
    for (const auto& [tid, ns] : after) {
        for (const auto& [tid0, ns0] : before) {
            if (tid0 == tid && ns >= ns0) {
                busiest = std::max(busiest, ns - ns0);
            }
        }
    }
    res.cpu_s = static_cast<double>(busiest) / 1e9;
    sender.kill9();
    return res;
}

// The kit's REQUIRE outside a test case: say which and stop.
void failed_require(const doctest::AssertData& ad) {
    std::fprintf(stderr, "npa_vhost_bench: %s:%d: %s failed\n", ad.m_file, ad.m_line, ad.m_expr);
    std::exit(2);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

// Rounds of npa and virtio in one direction (`tx`: they send to the peer; otherwise they
// receive from it): a table, the medians and the ratios.
void run_direction(bool tx, double seconds, int rounds, int& round) {
    std::vector<double> mpps[2], per_cpu[2];
    const char* names[2] = {"npa", "virtio"};
    std::printf("\n%s: 64-byte frames %s a net_vhost port in testpmd (%s)\n\n",
                tx ? "send" : "receive", tx ? "into" : "from", tx ? "rxonly" : "txonly");
    std::printf("| round | front end | frames | wall s | Mpps | CPU s | Mpps per CPU-s |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < rounds; ++k) {
        for (int s = 0; s < 2; ++s) {
            const int n = round++;
            const result r = s == 0 ? (tx ? round_npa(n, seconds) : round_npa_rx(n, seconds))
                                    : round_virtio(n, seconds, tx);
            mpps[s].push_back(r.mpps());
            per_cpu[s].push_back(r.per_cpu_s());
            std::printf("| %d | %s | %lld | %.2f | %.3f | %.2f | %.3f |\n", k + 1, names[s],
                        static_cast<long long>(r.frames), r.wall_s, r.mpps(), r.cpu_s,
                        r.per_cpu_s());
            std::fflush(stdout);
        }
    }
    const double a_wall = median(mpps[0]), b_wall = median(mpps[1]);
    const double a_cpu = median(per_cpu[0]), b_cpu = median(per_cpu[1]);
    std::printf("\nmedians: npa %.3f Mpps (%.3f per CPU-s), virtio %.3f Mpps (%.3f per CPU-s)\n",
                a_wall, a_cpu, b_wall, b_cpu);
    std::printf("npa/virtio of the medians: wall %.2f, per CPU-second %.2f\n",
                b_wall > 0 ? a_wall / b_wall : 0, b_cpu > 0 ? a_cpu / b_cpu : 0);
    // Each round's pair ran back to back, under much the same load: the median of their
    // ratios is steadier than the ratio of medians when the load moves between rounds.
    std::vector<double> wall_ratio, cpu_ratio;
    for (std::size_t k = 0; k < mpps[0].size(); ++k) {
        if (mpps[1][k] > 0 && per_cpu[1][k] > 0) {
            wall_ratio.push_back(mpps[0][k] / mpps[1][k]);
            cpu_ratio.push_back(per_cpu[0][k] / per_cpu[1][k]);
        }
    }
    std::printf("npa/virtio, median of the rounds' ratios: wall %.2f, per CPU-second %.2f\n",
                median(wall_ratio), median(cpu_ratio));
}

} // namespace

int main(int argc, char** argv) {
    double seconds = 3;
    int rounds = 3;
    std::string direction = "both";
    unsigned icount = 0;
    std::string via = "shell";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) {
            seconds = std::strtod(argv[++i], nullptr);
        } else if (a == "--rounds" && i + 1 < argc) {
            rounds = std::atoi(argv[++i]);
        } else if (a == "--icount" && i + 1 < argc) {
            icount = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
        } else if (a == "--packed") {
            packed_rings = true;
        } else if (a == "--via" && i + 1 < argc) {
            via = argv[++i];
        } else if (a == "--direction" && i + 1 < argc) {
            direction = argv[++i];
        } else {
            std::fprintf(stderr,
                         "usage: %s [--packed] [--seconds T] [--rounds N] [--direction "
                         "send|receive|both] | --icount B [--via shell|test_api]\n",
                         argv[0]);
            return 2;
        }
    }
    if (seconds <= 0 || rounds <= 0) {
        std::fprintf(stderr, "--seconds and --rounds must be positive\n");
        return 2;
    }
    if (direction != "send" && direction != "receive" && direction != "both") {
        std::fprintf(stderr, "--direction: send, receive or both, not '%s'\n", direction.c_str());
        return 2;
    }
    doctest::Context checks;
    checks.setAsDefaultForAssertsOutOfTestCases();
    checks.setAssertHandler(failed_require);
    if (via != "shell" && via != "test_api") {
        std::fprintf(stderr, "--via: shell or test_api, not '%s'\n", via.c_str());
        return 2;
    }
    if (icount != 0) {
        return via == "shell" ? icount_send<shell_port>(icount) : icount_send<net_port>(icount);
    }
    const double load0 = npa_bench::load_average_1min();
    int round = 0;
    if (direction != "receive") {
        run_direction(true, seconds, rounds, round);
    }
    if (direction != "send") {
        run_direction(false, seconds, rounds, round);
    }
    std::printf("load average (1 min): %.2f -> %.2f\n", load0, npa_bench::load_average_1min());
    return 0;
}
