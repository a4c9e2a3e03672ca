// tests/linux/linkd_kit.hpp: a two-namespace topology and an npa-linkd process for the
// linkd_process tests.
//
//   this test's namespace ("guest")            peer namespace (npa-peer-<pid>)
//   npa0 (TAP, 10.77.0.1) <- npa-linkd -> va0 ==veth== vb0 -.
//                                      -> va1 ==veth== vb1 --+- br0 (10.77.0.2), iperf3 -s
//
// The peer's bridge learns the guest MAC from whichever lower carries it, as a physical
// switch does. The peer keeps its offloads on (veth's defaults: TX checksum, TSO): its
// frames cross veth with the TCP/UDP checksum still to be finished, which the plugins
// finish on receive, and the TAP hands npa-linkd frames with checksums to finish, which
// the plugins finish before TX (npa/linux/checksum.hpp).
#pragma once

#include "test_kit.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <regex>

namespace npa_test {

#ifndef NPA_LINKD_PATH
#error "NPA_LINKD_PATH must name the npa-linkd binary"
#endif

inline const std::string linkd_bin = NPA_LINKD_PATH;
inline const std::string npactl_bin = NPACTL_PATH;

struct topology {
    std::string peer = "npa-peer-" + std::to_string(::getpid());
    int queues = 1; ///< RX/TX queues of each veth end (more than one for multi-queue runs)

    explicit topology(int nq = 1) : queues(nq) {
        sh("ip netns del " + peer);
        REQUIRE(sh("ip netns add " + peer));
        sh("ip netns exec " + peer +
           " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
           "net.ipv6.conf.default.disable_ipv6=1");
        sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        sh("ip -n " + peer + " link set lo up");
        // A fixed bridge MAC: by default a bridge takes its ports' lowest MAC, which
        // changes when a port is deleted (surprise removal) and breaks the guest's ARP
        // entry; a real peer's MAC does not move.
        REQUIRE(sh("ip -n " + peer + " link add br0 address 02:77:00:00:00:02 type bridge"));
        for (int i = 0; i < 2; ++i)
            add_lower(i);
        sh("ip -n " + peer + " link set br0 up");
        REQUIRE(sh("ip -n " + peer + " addr add 10.77.0.2/24 dev br0"));
        // The offloads this topology exists to exercise must really be on.
        for (const char* dev : {"vb0", "vb1", "br0"}) {
            const std::string k = sh_out(in_peer(std::string("ethtool -k ") + dev));
            INFO(dev << ": " << k);
            REQUIRE(k.find("tx-checksumming: on") != std::string::npos);
        }
    }
    ~topology() {
        sh("ip link del va0");
        sh("ip link del va1");
        sh("ip netns del " + peer);
    }
    void add_lower(int i) {
        const std::string a = "va" + std::to_string(i), b = "vb" + std::to_string(i);
        const std::string nq =
            " numtxqueues " + std::to_string(queues) + " numrxqueues " + std::to_string(queues);
        REQUIRE(sh("ip link add " + a + nq + " type veth peer name " + b + nq + " netns " + peer));
        sh("ip -n " + peer + " link set " + b + " master br0");
        sh("ip link set " + a + " up");
        sh("ip -n " + peer + " link set " + b + " up");
    }
    std::string in_peer(const std::string& cmd) const {
        return "ip netns exec " + peer + " " + cmd;
    }
};

/// Runs f() on a short-lived thread inside the namespace `netns` (a socket stays in the
/// namespace it was made in, so this is how a test makes sockets there). False, without
/// running f, if the namespace cannot be entered.
template <class F>
bool in_netns(const std::string& netns, F&& f) {
    bool ran = false;
    std::thread([&] {
        const int ns = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0)
            return;
        const bool in = ::setns(ns, CLONE_NEWNET) == 0;
        ::close(ns);
        if (!in)
            return;
        f();
        ran = true;
    }).join();
    return ran;
}

/// An AF_PACKET socket on `ifname` in the namespace `netns`, receiving every frame
/// (non-blocking). ETH_P_ALL, because a bridge port's rx handler takes frames before any
/// socket bound to one ethertype sees them. -1 if that fails.
inline int capture_in(const std::string& netns, const std::string& ifname) {
    constexpr std::uint16_t proto = ETH_P_ALL;
    int fd = -1;
    in_netns(netns, [&] {
        fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(proto));
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(proto);
        sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
        if (fd >= 0 &&
            (sll.sll_ifindex == 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll))) {
            ::close(fd);
            fd = -1;
        }
    });
    return fd;
}

/// Reads frames from a capture socket for `ms` milliseconds, or until `enough` of them were
/// seen (0: the whole window); returns how many the interface received (not sent) with
/// ethertype `type` and source MAC `src` (6 bytes).
inline int count_frames_from(int fd, std::uint16_t type, const std::uint8_t* src, int ms,
                             int enough = 0) {
    int n = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until && (enough == 0 || n < enough)) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0)
            continue;
        std::uint8_t f[2048];
        sockaddr_ll from{};
        socklen_t fl = sizeof from;
        const ssize_t len = ::recvfrom(fd, f, sizeof f, 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (len >= 14 && from.sll_pkttype != PACKET_OUTGOING && std::memcmp(f + 6, src, 6) == 0 &&
            ((f[12] << 8) | f[13]) == type)
            ++n;
    }
    return n;
}

/// Polls `pred` every 50 ms until it holds; false only after `seconds` without it. The
/// bound ends a test whose event never comes; one that comes returns at once, so the bound
/// is generous (a sanitizer build on a loaded two-core machine is 10-20x slower).
template <class Pred>
bool eventually(Pred pred, int seconds = 30) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (;;) {
        if (pred())
            return true;
        if (std::chrono::steady_clock::now() >= give_up)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

/// A number in npactl's JSON after `"key":` (the first occurrence at or after `from`).
inline long long json_number(const std::string& j, const std::string& key, std::size_t from = 0) {
    const auto at = j.find("\"" + key + "\":", from);
    return at == std::string::npos ? -1 : std::atoll(j.c_str() + at + key.size() + 3);
}

/// npa-linkd as a child process, stopped (SIGTERM, then waited for) on destruction.
class linkd_process {
public:
    explicit linkd_process(std::vector<std::string> args,
                           std::string sock = "/tmp/npa-test-" + std::to_string(::getpid()) +
                                              ".sock")
        : sock_(std::move(sock)), log_(sock_ + ".log") {
        args.insert(args.begin(), {"--socket", sock_});
        pid_ = ::fork();
        if (pid_ == 0) {
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>(linkd_bin.c_str()));
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            std::FILE* f = std::freopen(log_.c_str(), "w", stderr);
            (void)f;
            ::execv(linkd_bin.c_str(), argv.data());
            ::_exit(127);
        }
        // Ready when it answers on its socket (or gone, if it refused to start). The bound
        // only ends a daemon that never answers: sanitizers on a loaded machine take
        // seconds to start it (AF_XDP socket, XDP program), and a ready one returns at once.
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (std::chrono::steady_clock::now() < give_up) {
            if (ctl("ping").first == 0) {
                up_ = true;
                return;
            }
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    ~linkd_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
        ::unlink(sock_.c_str());
        ::unlink(log_.c_str());
    }
    linkd_process(const linkd_process&) = delete;
    linkd_process& operator=(const linkd_process&) = delete;

    [[nodiscard]] bool up() const { return up_; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    /// SIGKILL, as a crash: nothing of the daemon's own clean-up runs.
    void kill_hard() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    [[nodiscard]] bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
    [[nodiscard]] std::string log() const { return sh_out("cat " + log_); }
    /// npactl with `args`; returns its exit status and output (stdout and stderr).
    [[nodiscard]] std::pair<int, std::string> ctl(const std::string& args) const {
        const std::string out =
            sh_out(npactl_bin + " --socket " + sock_ + " " + args + " 2>&1; echo \"rc=$?\"");
        const auto at = out.rfind("rc=");
        const int rc = at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 3);
        return {rc, out.substr(0, at)};
    }
    /// Sends raw bytes on the control socket and returns the reply line.
    [[nodiscard]] std::string raw(const std::string& bytes) const;
    [[nodiscard]] const std::string& socket_path() const { return sock_; }

private:
    std::string sock_, log_;
    pid_t pid_ = -1;
    bool up_ = false;
};

inline std::string linkd_process::raw(const std::string& bytes) const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return "<connect failed>";
    }
    (void)!::write(fd, bytes.data(), bytes.size());
    std::string reply;
    while (reply.find('\n') == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 30000) <= 0) // only bounds a daemon that never answers
            break;
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        reply.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return reply;
}

/// A string in npactl's JSON after `"key":` (the first occurrence), or empty.
inline std::string json_string(const std::string& j, const std::string& key) {
    const auto at = j.find("\"" + key + "\":\"");
    if (at == std::string::npos)
        return {};
    const auto from = at + key.size() + 4;
    return j.substr(from, j.find('"', from) - from);
}

/// Parses "N packets transmitted, M received" from ping's summary.
inline bool ping_counts(const std::string& out, int& sent, int& received) {
    std::smatch m;
    static const std::regex re(R"((\d+) packets transmitted, (\d+) received)");
    if (!std::regex_search(out, m, re))
        return false;
    sent = std::stoi(m[1]);
    received = std::stoi(m[2]);
    return true;
}

/// The receiver's byte count from iperf3's summary, or -1 if the run did not complete.
inline double iperf_receiver_mbits(const std::string& out) {
    std::smatch m;
    static const std::regex re(R"(([\d.]+) (G|M|K)bits/sec\s+receiver)");
    if (!std::regex_search(out, m, re))
        return -1;
    double v = std::stod(m[1]);
    if (m[2] == "G")
        v *= 1000;
    if (m[2] == "K")
        v /= 1000;
    return v;
}

} // namespace npa_test
