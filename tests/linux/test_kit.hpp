// tests/linux/test_kit.hpp: what the Linux adapter tests share.
//
// - a private network namespace per test process (unshare), so veth pairs and TAP
//   devices never touch the machine's own interfaces and vanish with the process;
// - a main() that skips (CTest SKIP_RETURN_CODE 77) with a clear message when the
//   process is not root or network namespaces cannot be created;
// - a small shell API over a UMEM-backed pool that records every buffer hand-back, so
//   the tests can check that a plugin loses nothing;
// - raw packet helpers on the far end of a veth pair.
#pragma once

#include <npa/concepts/shell_api.hpp>
#include <npa/linux/umem.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace npa_test {

/// Runs a command (through /bin/sh) quietly; true on exit status 0.
inline bool sh(const std::string& cmd) {
    const std::string full = cmd + " >/dev/null 2>&1";
    return std::system(full.c_str()) == 0;
}

/// Runs a command and returns its standard output.
inline std::string sh_out(const std::string& cmd) {
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) {
        return out;
    }
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        out.append(buf, n);
    }
    ::pclose(f);
    return out;
}

/// Why this process cannot run the namespace tests at all (not root), or empty. Only this
/// is a skip: as root, everything the tests need must work.
inline std::string why_not_privileged() {
    if (::geteuid() != 0) {
        return "not root: the Linux adapter tests need CAP_NET_ADMIN and CAP_NET_RAW";
    }
    return {};
}

/// Moves this process into a fresh network namespace with loopback up. Returns an empty
/// string on success, or why it could not (a failure: the caller is root).
inline std::string enter_private_netns() {
    if (::unshare(CLONE_NEWNET) != 0) {
        return std::string("cannot create a network namespace: ") + std::strerror(errno);
    }
    if (!sh("ip link set lo up")) {
        return "cannot run 'ip' (iproute2) inside the test namespace";
    }
    return {};
}

/// A veth pair inside the current namespace, both ends up, IPv6 off (no router
/// solicitations or DAD frames in the way of counting packets).
struct veth_pair {
    std::string a, b;
    veth_pair(std::string an, std::string bn) : a(std::move(an)), b(std::move(bn)) {
        REQUIRE_MESSAGE(sh("ip link add " + a + " type veth peer name " + b),
                        "cannot create the veth pair " << a << "/" << b);
        sh("sysctl -qw net.ipv6.conf." + a + ".disable_ipv6=1");
        sh("sysctl -qw net.ipv6.conf." + b + ".disable_ipv6=1");
        sh("ip link set " + a + " up");
        sh("ip link set " + b + " up");
    }
    ~veth_pair() { sh("ip link del " + a); }
    veth_pair(const veth_pair&) = delete;
    veth_pair& operator=(const veth_pair&) = delete;
};

/// The shell API as the tests need it: a UMEM pool, every hand-back recorded.
struct test_api {
    using buffer_type = npa::buffer_ref;

    npa::lnx::umem_pool* pool = nullptr;
    std::vector<npa::buffer_ref> completed; ///< tx_complete, in order
    std::vector<npa::buffer_ref> unsent;    ///< tx_unsent, in order
    std::uint64_t released = 0;             ///< release_rx_buffers
    std::uint64_t alloc_fail = 0;
    bool free_completed = true;

    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<npa::buffer_ref> out) noexcept {
        const std::uint32_t n = pool->alloc_burst(out);
        alloc_fail += out.size() - n;
        return n;
    }
    void release_rx_buffers(std::uint16_t, std::span<const npa::buffer_ref> in) noexcept {
        released += in.size();
        pool->free_burst(in);
    }
    void tx_complete(std::uint16_t, std::span<const npa::buffer_ref> in) noexcept {
        for (auto b : in) {
            completed.push_back(b);
        }
        if (free_completed) {
            pool->free_burst(in);
        }
    }
    void tx_unsent(std::uint16_t, std::span<const npa::buffer_ref> in) noexcept {
        for (auto b : in) {
            unsent.push_back(b);
        }
    }
    void log(npa::log_level, const char* msg) noexcept { MESSAGE(std::string(msg)); }
};
static_assert(npa::shell_api<test_api>);

/// A raw packet socket on one interface, for the far end of a veth pair.
class raw_socket {
public:
    explicit raw_socket(const std::string& ifname) {
        fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
        ifindex_ = sll.sll_ifindex;
        ::bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll);
        int one = 1;
        ::setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
        // Room for a whole test burst: the tests send first and read after.
        int rcvbuf = 16 << 20;
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    }
    ~raw_socket() { ::close(fd_); }
    raw_socket(const raw_socket&) = delete;
    raw_socket& operator=(const raw_socket&) = delete;

    bool send(std::span<const std::uint8_t> frame) const {
        return ::send(fd_, frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size());
    }
    /// A frame with our test ethertype already waiting, or empty (no waiting).
    std::vector<std::uint8_t> recv_now() const {
        for (;;) {
            std::vector<std::uint8_t> buf(4096);
            const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
            if (n < 0) {
                return {};
            }
            if (n >= 14 && buf[12] == 0x88 && buf[13] == 0xb5) {
                buf.resize(static_cast<std::size_t>(n));
                return buf;
            }
        }
    }
    /// Next frame with our test ethertype within timeout_ms, or empty.
    std::vector<std::uint8_t> recv(int timeout_ms) const {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  end - std::chrono::steady_clock::now())
                                  .count();
            if (left <= 0) {
                return {};
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) {
                continue;
            }
            std::vector<std::uint8_t> buf(4096);
            const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
            if (n >= 14 && buf[12] == 0x88 && buf[13] == 0xb5) {
                buf.resize(static_cast<std::size_t>(n));
                return buf;
            }
        }
    }

private:
    int fd_ = -1;
    int ifindex_ = 0;
};

/// A test frame: broadcast, ethertype 0x88B5 (IEEE local experimental), a 32-bit
/// sequence number, padded to `len` bytes with a pattern derived from it.
inline std::vector<std::uint8_t> make_frame(std::uint32_t seq, std::size_t len = 128) {
    std::vector<std::uint8_t> f(len);
    std::memset(f.data(), 0xff, 6);
    const std::uint8_t src[6] = {0x02, 0, 0, 0, 0, 1};
    std::memcpy(f.data() + 6, src, 6);
    f[12] = 0x88;
    f[13] = 0xb5;
    std::memcpy(f.data() + 14, &seq, 4);
    for (std::size_t i = 18; i < len; ++i) {
        f[i] = static_cast<std::uint8_t>(seq + i);
    }
    return f;
}

inline std::uint32_t frame_seq(const std::uint8_t* p) {
    std::uint32_t s = 0;
    std::memcpy(&s, p + 14, 4);
    return s;
}

} // namespace npa_test

/// main() for the Linux adapter tests: not root, exit 77 (CTest: skipped) with the reason;
/// root, enter a private network namespace or fail (exit 1) saying why.
#define NPA_LINUX_TEST_MAIN                                                                        \
    int main(int argc, char** argv) {                                                              \
        if (const std::string why = npa_test::why_not_privileged(); !why.empty()) {                \
            std::printf("SKIPPED: %s\n", why.c_str());                                             \
            return 77;                                                                             \
        }                                                                                          \
        if (const std::string why = npa_test::enter_private_netns(); !why.empty()) {               \
            std::printf("FAILED: running as root, but %s\n", why.c_str());                         \
            return 1;                                                                              \
        }                                                                                          \
        doctest::Context ctx(argc, argv);                                                          \
        return ctx.run();                                                                          \
    }
