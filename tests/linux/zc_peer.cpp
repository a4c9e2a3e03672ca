// tests/linux/zc_peer.cpp: a zero-copy front end of npa-vswitchd (npa/linux/zc_port.hpp),
// one process, for the tests and the benchmark.
//
//   zc_peer send SOCKET COUNT SRC_MAC DST_MAC   COUNT frames (0: until SIGTERM), then
//                                               "sent N" on stdout
//   zc_peer recv SOCKET COUNT [any]             until COUNT frames came (0: until SIGTERM),
//                                               then "received N bad B gaps G"; with `any`
//                                               frames are counted, not checked (another
//                                               sender's)
//
// A frame: destination, source, EtherType 0x88b5, its sequence number (8 bytes), then a
// pattern of the sequence number and the offset, 60 to 1514 bytes long by sequence number.
// The receiver checks every byte, and that sequence numbers only grow (a gap is a frame
// the switch dropped and counted; going back would be a reorder, counted as bad), except
// back to 0: a new sender on the other port. It
// releases every buffer as soon as it has checked it, and with nothing to read it sleeps
// in wait_rx() (the daemon kicks it when frames come). On SIGTERM it reads what its
// receive ring holds, then reports. Exit 0, or 2 on a usage or attach
// error, 3 when the daemon went away first.
#include <npa/linux/zc_port.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace {

namespace zc = npa::lnx::zc;
namespace shm = npa::shm;

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

constexpr std::uint32_t burst = 32;

[[nodiscard]] std::uint32_t length_of(std::uint64_t seq) noexcept { return 60 + static_cast<std::uint32_t>(seq * 7 % 1455); }
[[nodiscard]] std::uint8_t pattern(std::uint64_t seq, std::uint32_t i) noexcept {
    return static_cast<std::uint8_t>(seq * 13 + i);
}

bool parse_mac(const char* s, unsigned char* m) {
    unsigned b[6];
    char tail;
    if (std::sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
        return false;
    }
    for (int i = 0; i < 6; ++i) {
        m[i] = static_cast<unsigned char>(b[i]);
    }
    return true;
}

void fill(std::byte* f, std::uint64_t seq, const unsigned char* src, const unsigned char* dst) {
    std::memcpy(f, dst, 6);
    std::memcpy(f + 6, src, 6);
    f[12] = std::byte{0x88};
    f[13] = std::byte{0xb5};
    std::memcpy(f + 14, &seq, sizeof(seq));
    const std::uint32_t len = length_of(seq);
    for (std::uint32_t i = 22; i < len; ++i) {
        f[i] = std::byte{pattern(seq, i)};
    }
}

int send(zc::port& p, std::uint64_t count, const unsigned char* src, const unsigned char* dst) {
    std::uint64_t sent = 0;
    shm::buf_desc held[burst];
    std::uint32_t held_n = 0, held_at = 0;
    std::uint32_t idle = 0;
    while ((sent < count || held_at < held_n) && stop_requested == 0) {
        if (held_at == held_n) {
            std::uint32_t bufs[burst];
            const std::uint64_t left = count - sent;
            const std::uint32_t want = left < burst ? static_cast<std::uint32_t>(left) : burst;
            held_n = p.alloc(std::span<std::uint32_t>(bufs, want));
            held_at = 0;
            for (std::uint32_t i = 0; i < held_n; ++i) {
                fill(p.payload(bufs[i]), sent + i, src, dst);
                held[i] = {bufs[i], length_of(sent + i)};
            }
            sent += held_n;
        }
        const std::uint32_t n = held_n > held_at ? p.send(std::span<const shm::buf_desc>(held + held_at, held_n - held_at)) : 0;
        held_at += n;
        if (n == 0 && ++idle % 4096 == 0) {
            p.beat();
            if (!p.daemon_alive()) {
                std::printf("sent %llu (daemon gone)\n", static_cast<unsigned long long>(sent - (held_n - held_at)));
                return 3;
            }
            ::usleep(50);
        }
    }
    std::printf("sent %llu\n", static_cast<unsigned long long>(sent - (held_n - held_at)));
    return 0;
}

int recv(zc::port& p, std::uint64_t count, bool check) {
    std::uint64_t received = 0, bad = 0, gaps = 0, next = 0;
    std::uint32_t idle = 0;
    shm::buf_desc d[burst];
    std::uint32_t bufs[burst];
    int rc = 0;
    while (received < count) {
        const std::uint32_t n = p.receive(std::span<shm::buf_desc>(d));
        if (n == 0 && stop_requested != 0) { // what was delivered before SIGTERM is read first
            break;
        }
        if (n == 0) {
            if (++idle % 64 == 0) { // a short spin, then sleep until the daemon kicks
                p.beat();
                if (!p.daemon_alive()) {
                    rc = 3;
                    break;
                }
                (void)p.wait_rx(100);
            }
            continue;
        }
        for (std::uint32_t i = 0; i < n && !check; ++i) {
            bufs[i] = d[i].buf;
        }
        for (std::uint32_t i = 0; i < n && check; ++i) {
            const std::byte* f = p.payload(d[i].buf);
            std::uint64_t seq = 0;
            bool ok = d[i].len >= 22 && f[12] == std::byte{0x88} && f[13] == std::byte{0xb5};
            if (ok) {
                std::memcpy(&seq, f + 14, sizeof(seq));
                ok = (seq >= next || seq == 0) && d[i].len == length_of(seq); // 0: a new sender
            }
            for (std::uint32_t k = 22; ok && k < d[i].len; ++k) {
                ok = f[k] == std::byte{pattern(seq, k)};
            }
            if (ok) {
                gaps += seq != next ? 1 : 0;
                next = seq + 1;
            } else {
                ++bad;
            }
            bufs[i] = d[i].buf;
        }
        for (std::uint32_t done = 0; done < n;) { // the back ring has room unless the daemon stopped
            done += p.release(std::span<const std::uint32_t>(bufs + done, n - done));
            if (done < n && !p.daemon_alive()) {
                rc = 3;
                break;
            }
        }
        received += n;
    }
    std::printf("received %llu bad %llu gaps %llu last %llu\n", static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(bad), static_cast<unsigned long long>(gaps),
                static_cast<unsigned long long>(next));
    return rc;
}

} // namespace

int main(int argc, char** argv) {
    const bool sending = argc == 6 && std::strcmp(argv[1], "send") == 0;
    const bool receiving = (argc == 4 || (argc == 5 && std::strcmp(argv[4], "any") == 0)) &&
                           std::strcmp(argv[1], "recv") == 0;
    unsigned char src[6], dst[6];
    if ((!sending && !receiving) || (sending && (!parse_mac(argv[4], src) || !parse_mac(argv[5], dst)))) {
        std::fprintf(stderr, "usage: zc_peer send SOCKET COUNT SRC_MAC DST_MAC | recv SOCKET COUNT [any]\n");
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    std::uint64_t count = std::strtoull(argv[3], nullptr, 10);
    if (count == 0) {
        count = std::numeric_limits<std::uint64_t>::max();
    }
    std::string why;
    auto p = zc::port::connect(argv[2], &why);
    if (!p) {
        std::fprintf(stderr, "zc_peer: %s%s%s\n", p.error().reason(), why.empty() ? "" : ": ", why.c_str());
        return 2;
    }
    return sending ? send(*p, count, src, dst) : recv(*p, count, argc != 5);
}
