// npa_traffic: TCP and UDP traffic for the kernel module's guest test (busybox has neither
// iperf3 nor a TCP sender that reports retransmits). A static program, one end per process:
//
//   npa_traffic tcp-sink PORT
//       accepts one connection, reads it to the end (20 s without data is a failure) and
//       checks every byte against the pattern the sender writes;
//       prints "tcp-sink bytes=N bad=B eof=0|1 seconds=S mbit_s=R"; exits 0 when the stream
//       ended cleanly with no byte wrong.
//   npa_traffic tcp-send ADDR PORT SECONDS [MBIT_S]
//       connects (retrying 5 s while nobody listens), sends the pattern for SECONDS, at most
//       MBIT_S when given, then closes; prints "tcp-send bytes=N seconds=S mbit_s=R
//       retrans=T", T being the kernel's count of this connection's retransmitted segments
//       (TCP_INFO tcpi_total_retrans); exits 0 when the stream was sent and closed.
//   npa_traffic udp-sink PORT SECONDS
//       counts datagrams for SECONDS after the first one; prints "udp-sink packets=N
//       seconds=S kpps=R".
//   npa_traffic udp-send ADDR PORT SECONDS SIZE
//       sends SIZE-byte datagrams as fast as the socket takes them for SECONDS (ADDR may be
//       a broadcast address); prints
//       "udp-send packets=N seconds=S kpps=R".
//
// Bad arguments print the usage and exit 2.
#include "tcp_pattern.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int usage() {
    std::fprintf(stderr, "usage: npa_traffic tcp-sink PORT\n"
                         "       npa_traffic tcp-send ADDR PORT SECONDS [MBIT_S]\n"
                         "       npa_traffic udp-sink PORT SECONDS\n"
                         "       npa_traffic udp-send ADDR PORT SECONDS SIZE\n");
    return 2;
}

// A whole decimal number in [lo, hi], or false.
bool number(const char* s, unsigned long lo, unsigned long hi, unsigned long& out) {
    if (s == nullptr || *s < '0' || *s > '9') {
        return false;
    }
    char* end = nullptr;
    errno = 0;
    out = std::strtoul(s, &end, 10);
    return errno == 0 && *end == '\0' && out >= lo && out <= hi;
}

bool address(const char* ip, unsigned long port, sockaddr_in& a) {
    a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    return ip == nullptr ? (a.sin_addr.s_addr = htonl(INADDR_ANY), true)
                         : ::inet_pton(AF_INET, ip, &a.sin_addr) == 1;
}

int bound_socket(int type, unsigned long port) {
    const int s = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    int one = 1;
    sockaddr_in a{};
    address(nullptr, port, a);
    if (s < 0 || ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("npa_traffic: bind");
        std::exit(1);
    }
    return s;
}

int tcp_sink(unsigned long port) {
    const int l = bound_socket(SOCK_STREAM, port);
    if (::listen(l, 1) != 0) {
        std::perror("npa_traffic: listen");
        return 1;
    }
    pollfd p{l, POLLIN, 0};
    if (::poll(&p, 1, 30000) != 1) {
        std::fprintf(stderr, "npa_traffic: nobody connected in 30 s\n");
        return 1;
    }
    const int c = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
        std::perror("npa_traffic: accept");
        return 1;
    }
    const double t0 = now_s();
    double last = t0;
    npa_guest::pattern_check check;
    check.read_all(c, 20000, [&] { last = now_s(); });
    const std::uint64_t got = check.got, bad = check.bad;
    const bool eof = check.eof;
    const double secs = last - t0;
    std::printf("tcp-sink bytes=%" PRIu64 " bad=%" PRIu64 " eof=%d seconds=%.3f mbit_s=%.2f\n", got,
                bad, eof ? 1 : 0, secs, secs > 0 ? static_cast<double>(got) * 8 / secs / 1e6 : 0.0);
    return eof && bad == 0 && got > 0 ? 0 : 1;
}

int tcp_send(const char* ip, unsigned long port, unsigned long seconds, unsigned long mbit_s) {
    sockaddr_in a{};
    if (!address(ip, port, a)) {
        return usage();
    }
    int s = -1;
    for (const double give_up = now_s() + 5;;) {
        s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            break;
        }
        const int err = errno;
        ::close(s);
        if (err != ECONNREFUSED || now_s() > give_up) {
            std::fprintf(stderr, "npa_traffic: connect to %s:%lu: %s\n", ip, port, std::strerror(err));
            return 1;
        }
        ::usleep(50000);
    }
    static std::uint8_t buf[65536 + 251];
    for (std::size_t i = 0; i < sizeof buf; ++i) {
        buf[i] = npa_guest::tcp_pattern(i);
    }
    std::uint64_t sent = 0;
    const double t0 = now_s(), end = t0 + static_cast<double>(seconds);
    const double bytes_per_s = static_cast<double>(mbit_s) * 1e6 / 8;
    bool ok = true;
    for (double t = t0; t < end; t = now_s()) {
        std::size_t len = 65536;
        if (mbit_s != 0) {
            const double allowed = (t - t0) * bytes_per_s - static_cast<double>(sent);
            if (allowed < 1448) {
                ::usleep(1000);
                continue;
            }
            len = allowed < 65536 ? static_cast<std::size_t>(allowed) : 65536;
        }
        pollfd p{s, POLLOUT, 0};
        if (::poll(&p, 1, 100) != 1) {
            continue;
        }
        const ssize_t n = ::send(s, buf + sent % 251, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            std::perror("npa_traffic: send");
            ok = false;
            break;
        }
        sent += n > 0 ? static_cast<std::uint64_t>(n) : 0;
    }
    // Everything queued reaches the peer before the count is read: the shutdown's FIN is
    // acknowledged after the last byte, and close() would not wait for it.
    ::shutdown(s, SHUT_WR);
    pollfd p{s, POLLIN, 0};
    char c;
    while (::poll(&p, 1, 20000) == 1 && ::read(s, &c, 1) > 0) {
    }
    const double secs = now_s() - t0;
    tcp_info info{};
    socklen_t len = sizeof info;
    const bool have_info = ::getsockopt(s, IPPROTO_TCP, TCP_INFO, &info, &len) == 0;
    ::close(s);
    std::printf("tcp-send bytes=%" PRIu64 " seconds=%.3f mbit_s=%.2f retrans=%u\n", sent, secs,
                static_cast<double>(sent) * 8 / secs / 1e6, have_info ? info.tcpi_total_retrans : 0u);
    return ok && have_info && sent > 0 ? 0 : 1;
}

int udp_sink(unsigned long port, unsigned long seconds) {
    const int s = bound_socket(SOCK_DGRAM, port);
    static std::uint8_t buf[65536];
    std::uint64_t got = 0;
    double t0 = 0, last = 0;
    pollfd p{s, POLLIN, 0};
    while (::poll(&p, 1, t0 == 0 ? 30000 : 1000) == 1) {
        if (::recv(s, buf, sizeof buf, 0) < 0) {
            continue;
        }
        last = now_s();
        if (t0 == 0) {
            t0 = last;
        } else if (last - t0 > static_cast<double>(seconds)) {
            break;
        }
        ++got;
    }
    const double secs = last - t0;
    std::printf("udp-sink packets=%" PRIu64 " seconds=%.3f kpps=%.2f\n", got, secs,
                secs > 0 ? static_cast<double>(got) / secs / 1e3 : 0.0);
    return got > 0 ? 0 : 1;
}

int udp_send(const char* ip, unsigned long port, unsigned long seconds, unsigned long size) {
    sockaddr_in a{};
    if (!address(ip, port, a)) {
        return usage();
    }
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1;  // a subnet's broadcast address is a destination too
    if (s < 0 || ::setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0 ||
        ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("npa_traffic: udp connect");
        return 1;
    }
    static std::uint8_t buf[65536];
    std::uint64_t sent = 0;
    const double t0 = now_s(), end = t0 + static_cast<double>(seconds);
    for (double t = t0; t < end; t = now_s()) {
        for (int i = 0; i < 64; ++i) {
            sent += ::send(s, buf, size, 0) > 0 ? 1 : 0;
        }
    }
    const double secs = now_s() - t0;
    std::printf("udp-send packets=%" PRIu64 " seconds=%.3f kpps=%.2f\n", sent, secs,
                static_cast<double>(sent) / secs / 1e3);
    return sent > 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::string_view mode = argc > 1 ? argv[1] : "";
    unsigned long port = 0, secs = 0, extra = 0;
    if (mode == "tcp-sink" && argc == 3 && number(argv[2], 1, 65535, port)) {
        return tcp_sink(port);
    }
    if (mode == "tcp-send" && (argc == 5 || argc == 6) && number(argv[3], 1, 65535, port) &&
        number(argv[4], 1, 3600, secs) && (argc == 5 || number(argv[5], 1, 100000, extra))) {
        return tcp_send(argv[2], port, secs, extra);
    }
    if (mode == "udp-sink" && argc == 4 && number(argv[2], 1, 65535, port) &&
        number(argv[3], 1, 3600, secs)) {
        return udp_sink(port, secs);
    }
    if (mode == "udp-send" && argc == 6 && number(argv[3], 1, 65535, port) &&
        number(argv[4], 1, 3600, secs) && number(argv[5], 1, 1472, extra)) {
        return udp_send(argv[2], port, secs, extra);
    }
    return usage();
}
