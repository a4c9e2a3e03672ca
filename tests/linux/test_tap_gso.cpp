// TSO frames from the TAP sent whole to the lower (npa/linux/tap_tso.hpp, the AF_PACKET
// plugin's tx_gso): npa-linkd between this namespace and a peer namespace, TCP from the
// host to the peer with the TAP's default offloads (TSO on), every byte checked on arrival
// (byte i is i mod 251, so a byte lost, doubled, moved or altered shows).
//
// Over AF_PACKET the frames must go whole (the daemon's counters say how many); over
// AF_XDP, which has no GSO, they are cut into segments, and after a switch back they go
// whole again. The bytes arrive all the same every time.
#include "linkd_kit.hpp"

#include "tcp_pattern.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <future>

using npa_test::json_number;
using npa_test::linkd_process;
using npa_test::sh;
using npa_test::sh_out;
using npa_test::topology;

namespace {

/// A TCP listener on 10.77.0.2:port inside the peer namespace; -1 if that fails.
int listen_in_peer(const topology& t, std::uint16_t port) {
    int fd = -1;
    npa_test::in_netns(t.peer, [&] {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(0x0a4d0002); // 10.77.0.2
        if (fd >= 0 && (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
                        ::listen(fd, 1) != 0)) {
            ::close(fd);
            fd = -1;
        }
    });
    return fd;
}

struct transfer {
    std::uint64_t sent = 0;
    npa_guest::pattern_check rx;
};

/// Sends `bytes` of the pattern from this namespace to the peer over one TCP connection
/// and checks every byte the peer's end reads.
transfer send_pattern(const topology& t, std::uint16_t port, std::uint64_t bytes) {
    transfer r;
    const int lfd = listen_in_peer(t, port);
    REQUIRE(lfd >= 0);
    auto reader = std::async(std::launch::async, [lfd] {
        npa_guest::pattern_check c;
        pollfd p{lfd, POLLIN, 0};
        if (::poll(&p, 1, 30000) == 1) {
            const int c_fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
            if (c_fd >= 0) {
                c.read_all(c_fd, 30000, [] {}); // the bound ends only a stalled stream
                ::close(c_fd);
            }
        }
        return c;
    });
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(0x0a4d0002);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        std::vector<std::uint8_t> chunk(256 * 1024);
        while (r.sent < bytes) {
            const std::size_t n = std::min<std::uint64_t>(chunk.size(), bytes - r.sent);
            for (std::size_t i = 0; i < n; ++i)
                chunk[i] = npa_guest::tcp_pattern(r.sent + i);
            std::size_t off = 0;
            while (off < n) {
                const ssize_t w = ::write(fd, chunk.data() + off, n - off);
                if (w <= 0)
                    break;
                off += static_cast<std::size_t>(w);
            }
            r.sent += off;
            if (off < n)
                break;
        }
    }
    ::shutdown(fd, SHUT_WR);
    r.rx = reader.get();
    ::close(fd);
    ::close(lfd);
    return r;
}

/// The tap_tso counters of the daemon's status.
struct tso_counters {
    long long gso = -1, whole = -1, whole_segments = -1, segments = -1;
    std::string mode;
};
tso_counters tso_of(const linkd_process& d) {
    const std::string j = d.ctl("--json status").second;
    const auto at = j.find("\"tap_tso\":");
    tso_counters c;
    if (at == std::string::npos)
        return c;
    c.gso = json_number(j, "gso_frames", at);
    c.whole = json_number(j, "whole_frames", at);
    c.whole_segments = json_number(j, "whole_segments", at);
    c.segments = json_number(j, "segments", at);
    c.mode = npa_test::json_string(j.substr(at), "mode");
    return c;
}

} // namespace

TEST_CASE("TSO frames from the TAP go whole over AF_PACKET, cut over AF_XDP; every byte "
          "arrives") {
    topology t;
    linkd_process d({"--tap", "npa0", "--lower", "va0:af_packet", "--lower", "va1:af_xdp:copy",
                     "--min-dwell-ms", "0"});
    REQUIRE_MESSAGE(d.up(), d.log());
    REQUIRE(sh("ip addr add 10.77.0.1/24 dev npa0"));
    // The host's stack hands the TAP unsegmented TCP (TSO on, the default); the peer keeps
    // veth's defaults.
    const std::string k = sh_out("ethtool -k npa0");
    REQUIRE_MESSAGE(k.find("tcp-segmentation-offload: on") != std::string::npos, k);
    sh("ping -c 1 -W 2 10.77.0.2");
    // Which way TSO frames go is in the log and the status.
    CHECK_MESSAGE(d.log().find("TSO frames sent whole (PACKET_VNET_HDR)") != std::string::npos,
                  d.log());
    CHECK(tso_of(d).mode == "whole");
    CHECK(d.ctl("status").second.find("sent whole to the lower") != std::string::npos);

    constexpr std::uint64_t bytes = 48u << 20;
    std::uint16_t port = 5301;
    {
        INFO("over AF_PACKET");
        const tso_counters before = tso_of(d);
        const transfer r = send_pattern(t, port++, bytes);
        CHECK(r.sent == bytes);
        CHECK(r.rx.got == bytes);
        CHECK(r.rx.bad == 0);
        CHECK(r.rx.eof);
        const tso_counters after = tso_of(d);
        INFO(d.ctl("status").second);
        // Most of 48 MB went as TSO frames, and those went whole: at least a fifth of the
        // bytes in frames of several segments (the stack's TSO frames are 10-45 segments;
        // slow start and the tail are smaller), none of them cut.
        CHECK(after.whole - before.whole > 0);
        CHECK((after.whole_segments - before.whole_segments) * 1448 > static_cast<long long>(bytes / 5));
        CHECK(after.whole_segments - before.whole_segments > 2 * (after.whole - before.whole));
        CHECK(after.segments == before.segments);
    }
    {
        INFO("over AF_XDP: no GSO, the frames are cut");
        const auto [rc, out] = d.ctl("switch va1");
        REQUIRE_MESSAGE(rc == 0, out);
        CHECK(tso_of(d).mode == "cut");
        CHECK(d.ctl("status").second.find("cut into segments") != std::string::npos);
        const tso_counters before = tso_of(d);
        const transfer r = send_pattern(t, port++, bytes / 4);
        CHECK(r.rx.got == bytes / 4);
        CHECK(r.rx.bad == 0);
        const tso_counters after = tso_of(d);
        CHECK(after.whole == before.whole);
        CHECK(after.segments > before.segments);
    }
    {
        INFO("back on AF_PACKET: whole again");
        const auto [rc, out] = d.ctl("switch va0");
        REQUIRE_MESSAGE(rc == 0, out);
        CHECK(tso_of(d).mode == "whole");
        const tso_counters before = tso_of(d);
        const transfer r = send_pattern(t, port++, bytes / 4);
        CHECK(r.rx.got == bytes / 4);
        CHECK(r.rx.bad == 0);
        CHECK(tso_of(d).whole > before.whole);
    }
    const auto [src, stats] = d.ctl("--json stats");
    CHECK(src == 0);
    CHECK_MESSAGE(stats.find("\"audit_ok\":true") != std::string::npos, stats);
}

NPA_LINUX_TEST_MAIN
