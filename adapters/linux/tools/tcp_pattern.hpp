// tcp_pattern.hpp: the byte stream the guest tests send over TCP (byte i is i mod 251, so a
// byte lost, doubled or moved shows), and its check on arrival. Used by npa-linkd's guest test
// and by npa_traffic (the kernel module's).
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cstdint>

namespace npa_guest {

inline std::uint8_t tcp_pattern(std::uint64_t i) { return static_cast<std::uint8_t>(i % 251); }

/// What a receiver of the pattern saw: bytes, bytes not where the pattern puts them, whether
/// the stream ended (EOF) rather than went quiet or failed.
struct pattern_check {
    std::uint64_t got = 0, bad = 0;
    bool eof = false;

    /// Reads `fd` until EOF, an error, or `idle_ms` without data, checking every byte;
    /// `on_data` is called after each read that returned data.
    template <class OnData>
    void read_all(int fd, int idle_ms, OnData on_data) {
        static std::uint8_t buf[65536];
        pollfd q{fd, POLLIN, 0};
        while (::poll(&q, 1, idle_ms) == 1) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) {
                eof = n == 0;
                return;
            }
            for (ssize_t i = 0; i < n; ++i) {
                bad += buf[i] != tcp_pattern(got + static_cast<std::uint64_t>(i));
            }
            got += static_cast<std::uint64_t>(n);
            on_data();
        }
    }
};

} // namespace npa_guest
