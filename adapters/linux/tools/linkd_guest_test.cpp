// linkd_guest_test: npa-linkd over PCI paths, inside a guest. The daemon binds a TAP to two
// PCI functions driven from user space, a QEMU vmxnet3 (00:03.0) and an 82576 VF
// (01:10.0) whose PF Linux's igb drives; the peer is the second vmxnet3 (00:04.0) under
// Linux's own vmxnet3 driver, all three on one QEMU hub (the igb-sriov-peer profile,
// tests/guest/README.md). The daemon runs in a network namespace of its own, so the TAP
// and the peer's interface are in different namespaces and every frame between them
// crosses the hub.
//
//   1. The PF pins the VF's MAC (`ip link set PF vf 0 mac M`, RTM_SETLINK IFLA_VF_MAC)
//      before the daemon starts: the daemon, given no MAC, must take M from the VF's
//      mailbox RESET and use it on both paths (its status shows it).
//   2. Ping from the TAP's address to the peer (an ICMP echo every NPA_PING_MS, default
//      20 ms) and a TCP stream from the TAP's side to the peer, while the daemon is switched
//      vmxnet3 <-> VF NPA_SWITCHES times (default 100) through its control socket. Asserted:
//      every switch succeeded, no echo lost, the TCP bytes arrived intact and complete.
//   3. A second run with a MAC of its own (--mac, not the pinned one): the daemon reports
//      the PF's assignment beside the VF lower in its status, and a switch to the VF is
//      refused with the reason, not ignored.
//
// With NPA_LINKD_IMAGE=1 (npa.linkd_image=1, guest_linkd_pci_image) the VF lower is
// 'pci image': its plugin is the build's 82576 VF image file (the one the sim's tests
// load), copied to /npa/share with the TEST key's public key. Asserted beside the above:
// the daemon's status names that file, with the digest its header carries and the TEST key
// as its signer; then (5.) the vmxnet3 as 'pci image' (no image is for it) is refused and
// the daemon exits 1, and the VF as 'pci igbvf' keeps the compiled-in plugin, its status
// noting the unused image.
//
// Output: one line NPA-GUEST-RESULT {"test":"linkd_guest_test",...}, then
// `linkd_guest_test PASS|FAIL`. The daemon's log is printed with a `linkd: ` prefix.
#include <npa/capabilities.hpp>

#include "guest_test_support.hpp"
#include "tcp_pattern.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace npa_guest;

constexpr const char* linkd_path = "/npa/bin/npa-linkd";
constexpr const char* sock_path = "/tmp/npa-linkd.sock";
constexpr const char* log_path = "/tmp/npa-linkd.log";
constexpr const char* vmx_addr = "0000:00:03.0";
constexpr const char* peer_addr = "0000:00:04.0";
constexpr const char* vf_addr = "0000:01:10.0";
constexpr const char* tap_ip = "10.77.0.1";
constexpr const char* peer_ip = "10.77.0.2";
constexpr std::uint16_t tcp_port = 5201;
const npa::mac_addr pinned_mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr const char* share_dir = "/npa/share";
constexpr const char* vf_image = "/npa/share/igbvf_image.npai";
constexpr const char* test_key = "/npa/share/test_signing_key.pub";
/// The VF lower runs the plugin image (NPA_LINKD_IMAGE=1), not the compiled-in plugin.
const bool vf_from_image = env_u64("NPA_LINKD_IMAGE", 0) != 0;

/// The first line of a text file ("" if unreadable).
std::string first_line(const char* path) {
    std::string s;
    if (std::FILE* f = std::fopen(path, "r")) {
        char b[256];
        if (std::fgets(b, sizeof b, f) != nullptr) {
            s = b;
        }
        std::fclose(f);
    }
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

/// The digest field of an image file's header (npa/image/format.hpp: 64 bytes at offset
/// 88), hex; "" if the file is shorter.
std::string header_digest(const char* path) {
    std::string hex;
    if (std::FILE* f = std::fopen(path, "rb")) {
        unsigned char h[152];
        if (std::fread(h, 1, sizeof h, f) == sizeof h) {
            char b[3];
            for (int i = 88; i < 152; ++i) {
                std::snprintf(b, sizeof b, "%02x", h[i]);
                hex += b;
            }
        }
        std::fclose(f);
    }
    return hex;
}

/// The string value of `"key":"..."` in a JSON reply, after `from` ("" if absent).
std::string json_value(const std::string& j, const std::string& key, std::size_t from = 0) {
    const std::string k = "\"" + key + "\":\"";
    const auto at = j.find(k, from);
    if (at == std::string::npos) {
        return {};
    }
    return j.substr(at + k.size(), j.find('"', at + k.size()) - at - k.size());
}

// ---- the daemon -------------------------------------------------------------------------

/// Starts npa-linkd in a new network namespace with `extra` flags over `lowers` (default:
/// the vmxnet3, then the VF); its output goes to log_path. Returns its pid (0 on failure).
pid_t start_linkd(const std::vector<std::string>& extra, std::vector<std::string> lowers = {}) {
    if (lowers.empty()) {
        lowers = {std::string(vmx_addr) + ":pci:vmxnet3",
                  std::string(vf_addr) + (vf_from_image ? ":pci:image" : ":pci:igbvf")};
    }
    ::unlink(sock_path);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::unshare(CLONE_NEWNET) != 0) {
            std::perror("unshare(CLONE_NEWNET)");
            ::_exit(126);
        }
        const int fd = ::open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<std::string> args = {linkd_path, "--tap", "npa0", "--socket", sock_path,
                                         "--min-dwell-ms", "0"};
        for (const std::string& l : lowers) {
            args.insert(args.end(), {"--lower", l});
        }
        if (vf_from_image) {
            args.insert(args.end(), {"--plugin-dir", share_dir, "--trusted-key", test_key});
        }
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        ::execv(linkd_path, argv.data());
        std::perror("execv npa-linkd");
        ::_exit(127);
    }
    return pid < 0 ? 0 : pid;
}

/// One request on the control socket, its one-line reply ("" when nothing answers).
std::string ask(const std::string& line) {
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    std::string reply;
    if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        const std::string req = line + "\n";
        if (::write(s, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            char buf[4096];
            pollfd p{s, POLLIN, 0};
            while (reply.find('\n') == std::string::npos && ::poll(&p, 1, 10000) == 1) {
                const ssize_t n = ::read(s, buf, sizeof buf);
                if (n <= 0) {
                    break;
                }
                reply.append(buf, static_cast<std::size_t>(n));
            }
        }
    }
    if (s >= 0) {
        ::close(s);
    }
    if (const auto nl = reply.find('\n'); nl != std::string::npos) {
        reply.resize(nl);
    }
    return reply;
}

/// Waits up to `limit_s` for the daemon to answer (false if it exited or never did).
bool wait_linkd(pid_t pid, double limit_s) {
    const double t0 = now_s();
    while (now_s() - t0 < limit_s) {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid) {
            failf("npa-linkd exited (status %d) before answering", st);
            return false;
        }
        if (ask("ping").find("\"ok\":true") != std::string::npos) {
            return true;
        }
        ::usleep(50000);
    }
    failf("npa-linkd did not answer on %s within %.0f s", sock_path, limit_s);
    return false;
}

void stop_linkd(pid_t pid) {
    if (pid <= 0) {
        return;
    }
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 50; ++i) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) {
            return;
        }
        ::usleep(100000);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

/// The daemon's output so far.
std::string log_text() {
    std::string t;
    if (std::FILE* f = std::fopen(log_path, "r")) {
        char b[512];
        while (std::fgets(b, sizeof b, f) != nullptr) {
            t += b;
        }
        std::fclose(f);
    }
    return t;
}

/// Waits up to `limit_s` for a daemon that must refuse to start; its exit status (-1 if it
/// is still running: it is then stopped).
int wait_exit(pid_t pid, double limit_s) {
    const double t0 = now_s();
    int st = 0;
    while (now_s() - t0 < limit_s) {
        if (::waitpid(pid, &st, WNOHANG) == pid) {
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        ::usleep(50000);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    return -1;
}

void print_log() {
    std::FILE* f = std::fopen(log_path, "r");
    char line[512];
    while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr) {
        std::printf("linkd: %s", line);
    }
    if (f != nullptr) {
        std::fclose(f);
    }
}

/// Enters the daemon's network namespace (this thread only).
bool enter_netns(pid_t pid) {
    const std::string p = "/proc/" + std::to_string(pid) + "/ns/net";
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    return ok;
}

// ---- traffic ----------------------------------------------------------------------------

std::uint16_t icmp_sum(const std::uint8_t* p, std::size_t n) {
    std::uint32_t s = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        s += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
    }
    if (n % 2 != 0) {
        s += static_cast<std::uint32_t>(p[n - 1] << 8);
    }
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return static_cast<std::uint16_t>(~s);
}

// Echo requests to the peer every `gap_ms` until `stop`, then up to 3 s for the last
// replies. Runs in the daemon's namespace (its own thread).
struct pinger {
    std::atomic<bool> stop{false};
    std::uint64_t sent = 0, received = 0, dups = 0;
    double max_rtt_ms = 0;
    bool ok = false;

    void run(pid_t ns_pid, unsigned gap_ms) {
        if (!enter_netns(ns_pid)) {
            return;
        }
        const int s = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
        if (s < 0) {
            return;
        }
        ok = true;
        sockaddr_in to{};
        to.sin_family = AF_INET;
        ::inet_pton(AF_INET, peer_ip, &to.sin_addr);
        const std::uint16_t id = static_cast<std::uint16_t>(::getpid());
        std::vector<double> sent_at;
        std::vector<bool> seen;
        double next = now_s(), stop_at = 0;
        while (true) {
            const double t = now_s();
            if (stop_at == 0 && stop.load()) {
                stop_at = t;
            }
            if (stop_at != 0 && (received >= sent || t - stop_at > 3)) {
                break;
            }
            if (stop_at == 0 && t >= next) {
                std::uint8_t pkt[64] = {};
                pkt[0] = ICMP_ECHO;
                pkt[4] = static_cast<std::uint8_t>(id >> 8);
                pkt[5] = static_cast<std::uint8_t>(id);
                pkt[6] = static_cast<std::uint8_t>(sent >> 8);
                pkt[7] = static_cast<std::uint8_t>(sent);
                const std::uint16_t c = icmp_sum(pkt, sizeof pkt);
                pkt[2] = static_cast<std::uint8_t>(c >> 8);
                pkt[3] = static_cast<std::uint8_t>(c);
                if (::sendto(s, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
                    sizeof pkt) {
                    sent_at.push_back(t);
                    seen.push_back(false);
                    ++sent;
                }
                next += gap_ms / 1000.0;
            }
            pollfd p{s, POLLIN, 0};
            if (::poll(&p, 1, 2) != 1) {
                continue;
            }
            std::uint8_t buf[256];
            const ssize_t n = ::recv(s, buf, sizeof buf, 0);
            if (n < 28) {
                continue;
            }
            const std::size_t ihl = std::size_t{buf[0] & 0x0fu} * 4;
            if (static_cast<std::size_t>(n) < ihl + 8 || buf[ihl] != ICMP_ECHOREPLY ||
                (buf[ihl + 4] << 8 | buf[ihl + 5]) != id) {
                continue;
            }
            const std::size_t seq = static_cast<std::size_t>(buf[ihl + 6] << 8 | buf[ihl + 7]);
            // 16-bit sequence: the newest echo with these low bits
            std::size_t k = sent_at.size();
            while (k-- > 0 && (k & 0xffff) != seq) {
            }
            if (k >= sent_at.size()) {
                continue;
            }
            if (seen[k]) {
                ++dups;
                continue;
            }
            seen[k] = true;
            ++received;
            max_rtt_ms = std::max(max_rtt_ms, (now_s() - sent_at[k]) * 1000);
        }
        ::close(s);
    }
};

// The peer's end of the TCP stream (the initial namespace): counts and checks the bytes.
struct tcp_sink {
    int listen_fd = -1;
    std::uint64_t got = 0, bad = 0;
    bool eof = false;

    bool open() {
        listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(tcp_port);
        ::inet_pton(AF_INET, peer_ip, &a.sin_addr);
        return listen_fd >= 0 && ::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
               ::listen(listen_fd, 1) == 0;
    }
    void run() {
        pollfd p{listen_fd, POLLIN, 0};
        if (::poll(&p, 1, 20000) != 1) {
            return;
        }
        const int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            return;
        }
        pattern_check check;
        check.read_all(c, 20000, [] {});
        got = check.got;
        bad = check.bad;
        eof = check.eof;
        ::close(c);
    }
};

// The TAP's end: sends the pattern until `stop`, then closes. The daemon's namespace.
struct tcp_source {
    std::atomic<bool> stop{false};
    std::uint64_t sent = 0;
    bool connected = false;

    void run(pid_t ns_pid) {
        if (!enter_netns(ns_pid)) {
            return;
        }
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(tcp_port);
        ::inet_pton(AF_INET, peer_ip, &a.sin_addr);
        if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            if (s >= 0) {
                ::close(s);
            }
            return;
        }
        connected = true;
        std::uint8_t buf[8192];
        while (!stop.load()) {
            for (std::size_t i = 0; i < sizeof buf; ++i) {
                buf[i] = tcp_pattern(sent + i);
            }
            pollfd p{s, POLLOUT, 0};
            if (::poll(&p, 1, 100) != 1) {
                continue;
            }
            const ssize_t n = ::send(s, buf, sizeof buf, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN) {
                break;
            }
            if (n > 0) {
                sent += static_cast<std::uint64_t>(n);
            }
            // At most about 4 MB/s: an unbounded stream keeps the guest's one emulated CPU
            // busy and stretches every switch (the VF's attach waits on mailbox round trips).
            ::usleep(2000);
        }
        ::shutdown(s, SHUT_WR);
        ::close(s);
    }
};

bool sh(const std::string& cmd) {
    const int rc = std::system(cmd.c_str());
    if (rc != 0) {
        failf("'%s' exited %d", cmd.c_str(), rc);
    }
    return rc == 0;
}

} // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const double t_start = now_s();
    const std::uint64_t switches = env_u64("NPA_SWITCHES", 100);
    const auto gap_ms = static_cast<unsigned>(env_u64("NPA_PING_MS", 20));
    std::string pf, pf_if, peer_if, status, mac_in_use, refusal, note;
    std::uint64_t sw_ok = 0, sw_failed = 0;
    std::vector<double> sw_ms;
    pinger ping;
    tcp_sink sink;
    tcp_source source;
    bool pf_mac_used = false, refusal_reported = false, image_checked = false;
    bool image_refused = false, compiled_in_kept = false;
    std::string image_digest;
    pid_t pid = 0;
    do {
        // 1. The PF with its VFs, the VF's MAC pinned; the peer under Linux's vmxnet3.
        if (!sriov_pf_up(2, pf, pf_if) || !wait_function(vf_addr)) {
            failf("no VF %s", vf_addr);
            break;
        }
        if (const int err = pin_vf_mac(pf_if, 0, pinned_mac); err != 0) {
            failf("ip link set %s vf 0 mac %s: %s", pf_if.c_str(), mac_text(pinned_mac).c_str(),
                  std::strerror(err));
            break;
        }
        for (int i = 0; i < 50 && peer_if.empty(); ++i) {
            peer_if = interface_of(peer_addr);
            ::usleep(100000);
        }
        if (peer_if.empty()) {
            failf("the peer %s has no interface (is vmxnet3 loaded? npa.modules=vmxnet3)", peer_addr);
            break;
        }
        if (!sh("ip addr add " + std::string(peer_ip) + "/24 dev " + peer_if) ||
            !sh("ip link set dev " + peer_if + " up") || !wait_carrier(pf_if)) {
            break;
        }
        // 2. The daemon in its own namespace; the TAP's address there.
        pid = start_linkd({});
        if (pid == 0 || !wait_linkd(pid, 20)) {
            break;
        }
        const std::string ns = "nsenter -t " + std::to_string(pid) + " -n ";
        if (!sh(ns + "ip addr add " + tap_ip + "/24 dev npa0") || !sh(ns + "ip link set dev lo up")) {
            break;
        }
        status = ask("status");
        {
            const auto at = status.find("\"mac\":\"");
            mac_in_use = at == std::string::npos ? "" : status.substr(at + 7, 17);
        }
        pf_mac_used = mac_in_use == mac_text(pinned_mac);
        std::printf("daemon up (pid %d); its MAC %s, the PF pinned %s\nstatus: %s\n", pid,
                    mac_in_use.c_str(), mac_text(pinned_mac).c_str(), status.c_str());
        if (!pf_mac_used) {
            failf("the daemon uses MAC %s, not the %s the PF pinned for the VF", mac_in_use.c_str(),
                  mac_text(pinned_mac).c_str());
        }
        if (vf_from_image) {
            // The VF's path runs the image file the build produced: status names it, with
            // the digest in its header (the loader checked the file against it) and the
            // TEST key as its signer.
            const auto img = status.find("\"image\":{");
            image_digest = img == std::string::npos ? "" : json_value(status, "digest", img);
            const std::string file = json_value(status, "file", img);
            const std::string signer = json_value(status, "signer", img);
            std::printf("VF path from image %s: sha512 %s signer %s\n", file.c_str(),
                        image_digest.c_str(), signer.c_str());
            image_checked = file == vf_image && !image_digest.empty() &&
                            image_digest == header_digest(vf_image) &&
                            signer == first_line(test_key);
            if (!image_checked) {
                failf("the VF path does not run %s (digest %s, file's %s; signer %s, key %s)",
                      vf_image, image_digest.c_str(), header_digest(vf_image).c_str(),
                      signer.c_str(), first_line(test_key).c_str());
            }
        }
        if (!sink.open()) {
            failf("TCP listen on %s:%u: %s", peer_ip, tcp_port, std::strerror(errno));
            break;
        }
        // 3. Ping and TCP across the switches.
        std::thread tsink([&] { sink.run(); });
        std::thread tping([&] { ping.run(pid, gap_ms); });
        std::thread tsrc([&] { source.run(pid); });
        ::usleep(500000); // ARP and the first echoes on the first path
        const std::string targets[2] = {vf_addr, vmx_addr};
        for (std::uint64_t i = 0; i < switches; ++i) {
            const double t0 = now_s();
            const std::string r = ask("switch " + targets[i % 2]);
            if (r.find("\"ok\":true") != std::string::npos) {
                ++sw_ok;
                sw_ms.push_back((now_s() - t0) * 1000);
            } else {
                ++sw_failed;
                std::printf("switch %" PRIu64 " to %s: %s\n", i, targets[i % 2].c_str(), r.c_str());
            }
            ::usleep(50000);
        }
        ::usleep(300000);
        source.stop = true;
        ping.stop = true;
        tsrc.join();
        tping.join();
        tsink.join();
        if (!ping.ok || ping.sent == 0) {
            failf("no echo could be sent from the TAP's namespace");
        }
        if (ping.received != ping.sent) {
            failf("ping: %" PRIu64 " of %" PRIu64 " echoes lost across %" PRIu64 " switches",
                  ping.sent - ping.received, ping.sent, sw_ok);
        }
        if (sw_failed != 0) {
            failf("%" PRIu64 " of %" PRIu64 " switches failed", sw_failed, switches);
        }
        if (!source.connected || sink.got == 0) {
            failf("TCP: no stream through the TAP (connected %d, peer got %" PRIu64 ")",
                  source.connected, sink.got);
        } else if (sink.got != source.sent || sink.bad != 0 || !sink.eof) {
            failf("TCP: sent %" PRIu64 ", peer got %" PRIu64 " (%" PRIu64 " bad, eof %d)", source.sent,
                  sink.got, sink.bad, sink.eof);
        }
        std::printf("%" PRIu64 " switches (%" PRIu64 " failed); ping %" PRIu64 "/%" PRIu64
                    " (max rtt %.1f ms); TCP %" PRIu64 " bytes\n",
                    sw_ok, sw_failed, ping.received, ping.sent, ping.max_rtt_ms, sink.got);
        std::printf("stats: %s\n", ask("stats").c_str());
        stop_linkd(pid);
        print_log();
        pid = 0;

        // 4. A MAC of its own: the PF's assignment must show, and the VF be refused.
        pid = start_linkd({"--mac", "02:4e:50:41:00:01"});
        if (pid == 0 || !wait_linkd(pid, 20)) {
            break;
        }
        status = ask("status");
        {
            const auto at = status.find("\"note\":\"");
            note = at == std::string::npos ? "" : status.substr(at + 8, status.find('"', at + 8) - at - 8);
        }
        refusal = ask(std::string("switch ") + vf_addr);
        refusal_reported = note.find(mac_text(pinned_mac)) != std::string::npos &&
                           refusal.find("\"ok\":false") != std::string::npos;
        std::printf("with --mac 02:4e:50:41:00:01: note \"%s\"; switch to the VF: %s\n", note.c_str(),
                    refusal.c_str());
        if (!refusal_reported) {
            failf("a MAC the PF does not allow was not reported (note \"%s\", switch reply %s)",
                  note.c_str(), refusal.c_str());
        }
        stop_linkd(pid);
        print_log();
        pid = 0;
        if (!vf_from_image) {
            break;
        }

        // 5. Images: a function no image in the directory is for is refused by a sentence,
        //    and the daemon does not start; a lower naming the compiled-in plugin keeps it
        //    while the directory holds an image for its device, and status says so.
        pid = start_linkd({}, {std::string(vmx_addr) + ":pci:image"});
        const int rc = pid == 0 ? -1 : wait_exit(pid, 20);
        pid = 0;
        const std::string refused_log = log_text();
        std::printf("vmxnet3 as 'pci image': exit %d: %s", rc, refused_log.c_str());
        image_refused = rc == 1 && refused_log.find("holds no image for 15ad:07b0") != std::string::npos;
        if (!image_refused) {
            failf("a function without an image was not refused (exit %d)", rc);
        }
        pid = start_linkd({}, {std::string(vmx_addr) + ":pci:vmxnet3", std::string(vf_addr) + ":pci:igbvf"});
        if (pid == 0 || !wait_linkd(pid, 20)) {
            break;
        }
        status = ask("status");
        const std::string image_note = json_value(status, "image_note");
        std::printf("the VF as 'pci igbvf' beside its image: %s\n", image_note.c_str());
        compiled_in_kept = status.find("\"plugin\":\"pci igbvf\"") != std::string::npos &&
                           image_note.find(vf_image) != std::string::npos &&
                           status.find("\"image\":{") == std::string::npos;
        if (!compiled_in_kept) {
            failf("the compiled-in plugin and the unused image are not in the status: %s", status.c_str());
        }
        stop_linkd(pid);
        print_log();
        pid = 0;
    } while (false);
    if (pid != 0) {
        stop_linkd(pid);
        print_log();
    }

    std::sort(sw_ms.begin(), sw_ms.end());
    std::printf("NPA-GUEST-RESULT {\"test\":\"linkd_guest_test\",\"switches\":%" PRIu64
                ",\"switches_failed\":%" PRIu64 ",\"switch_ms_p50\":%.1f,\"switch_ms_max\":%.1f"
                ",\"pings_sent\":%" PRIu64 ",\"pings_lost\":%" PRIu64 ",\"ping_max_rtt_ms\":%.1f"
                ",\"tcp_bytes\":%" PRIu64 ",\"pf_mac_used\":%s,\"refusal_reported\":%s"
                ",\"vf_image\":%s,\"vf_image_sha512\":\"%s\",\"image_refused\":%s"
                ",\"compiled_in_kept\":%s"
                ",\"seconds\":%.1f,\"failures\":%zu}\n",
                sw_ok, sw_failed, sw_ms.empty() ? 0.0 : percentile(sw_ms, 0.5),
                sw_ms.empty() ? 0.0 : sw_ms.back(), ping.sent, ping.sent - ping.received,
                ping.max_rtt_ms, sink.got, pf_mac_used ? "true" : "false",
                refusal_reported ? "true" : "false", vf_from_image && image_checked ? "true" : "false",
                image_digest.c_str(), image_refused ? "true" : "false",
                compiled_in_kept ? "true" : "false", now_s() - t_start, failures.size());
    for (const auto& f : failures) {
        std::printf("FAIL: %s\n", f.c_str());
    }
    std::printf("linkd_guest_test %s\n", failures.empty() ? "PASS" : "FAIL");
    return failures.empty() ? 0 : 1;
}
