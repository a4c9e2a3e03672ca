// dpdk-testpmd with one net_vhost port (server mode) on a socket, for the vhost-user tests:
// its own file prefix, its log beside the socket, its standard input kept open on a pipe
// (testpmd runs until it ends), and its telemetry socket read for the port's view.
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace npa::test {

/// Starts `a[0]` with arguments `a`, its output appended to `log_path`, its standard input
/// `stdin_fd` (when not -1). The child polls a core flat out, so it dies with the test, even
/// one killed by a timeout (no destructor runs then) and cannot slow down what runs next.
inline pid_t spawn(std::vector<std::string> a, const std::string& log_path, int stdin_fd = -1) {
    std::vector<char*> argv;
    for (std::string& s : a) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (stdin_fd >= 0) {
            ::dup2(stdin_fd, 0);
        }
        ::dup2(log, 1);
        ::dup2(log, 2);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return pid;
}

struct testpmd {
    pid_t pid = -1;
    int stdin_w = -1;
    std::string prefix;

    /// `args`: testpmd's own arguments (after "--"), the forward mode first.
    void start(const char* program, const std::string& sock, const std::string& pfx,
               const std::vector<std::string>& args = {"--forward-mode=rxonly"}) {
        start_vdev(program, "net_vhost0,iface=" + sock + ",queues=1", sock + ".log", pfx, args);
    }
    /// Any one virtual device (`vdev`, e.g. net_virtio_user0,path=...), its log at `log`;
    /// `cores`: the EAL's core list (main lcore first, the forwarding lcore second).
    void start_vdev(const char* program, const std::string& vdev, const std::string& log_path,
                    const std::string& pfx, const std::vector<std::string>& args,
                    const std::vector<std::string>& cores = {"-l", "0-1"}) {
        prefix = pfx;
        int p[2];
        REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
        std::vector<std::string> a = {program,    "--no-huge",
                                      "-m",       "256",
                                      "--no-pci", "--file-prefix=" + pfx,
                                      "--vdev",   vdev};
        a.insert(a.end(), cores.begin(), cores.end());
        a.emplace_back("--");
        a.insert(a.end(), args.begin(), args.end());
        a.insert(a.end(), {"--total-num-mbufs=16384", "--stats-period=1000"});
        pid = spawn(a, log_path, p[0]);
        ::close(p[0]);
        stdin_w = p[1];
    }
    void kill9() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        if (stdin_w >= 0) {
            ::close(stdin_w);
        }
        pid = -1;
        stdin_w = -1;
    }
    ~testpmd() { kill9(); }

    // One telemetry request's JSON answer (the socket of the v2 protocol).
    [[nodiscard]] std::string telemetry(const std::string& cmd) const {
        const std::string path = "/var/run/dpdk/" + prefix + "/dpdk_telemetry.v2";
        const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
        std::string out;
        char buf[16384];
        if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            ::read(s, buf, sizeof buf) > 0 && // the greeting
            ::write(s, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size())) {
            const ssize_t n = ::read(s, buf, sizeof buf);
            out.assign(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
        }
        ::close(s);
        return out;
    }
    /// A counter of /ethdev/stats,0 ("ipackets", "opackets", "ibytes" ...); -1 when absent.
    [[nodiscard]] std::int64_t port_stat(const std::string& name) const {
        const std::string j = telemetry("/ethdev/stats,0");
        const std::string key = "\"" + name + "\":";
        const auto at = j.find(key);
        return at == std::string::npos ? -1
                                       : std::strtoll(j.c_str() + at + key.size(), nullptr, 10);
    }
    /// Queue q's entry of a per-queue array of /ethdev/stats,0 ("q_ipackets", "q_opackets"
    /// ...; the PMD fills the first RTE_ETHDEV_QUEUE_STAT_CNTRS); -1 when absent.
    [[nodiscard]] std::int64_t queue_stat(const std::string& name, unsigned q) const {
        const std::string j = telemetry("/ethdev/stats,0");
        const std::string key = "\"" + name + "\":[";
        auto at = j.find(key);
        if (at == std::string::npos) {
            return -1;
        }
        at += key.size();
        for (unsigned i = 0; i < q; ++i) {
            at = j.find(',', at);
            if (at == std::string::npos) {
                return -1;
            }
            ++at;
        }
        return std::strtoll(j.c_str() + at, nullptr, 10);
    }
};

inline bool wait_until(std::chrono::milliseconds limit, auto pred) {
    for (auto end = std::chrono::steady_clock::now() + limit;
         std::chrono::steady_clock::now() < end;) {
        if (pred()) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

} // namespace npa::test
