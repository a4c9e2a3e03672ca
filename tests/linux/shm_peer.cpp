// tests/linux/shm_peer.cpp: the other process of the shared-region tests (test_shm.cpp).
//
//   shm_peer producer|consumer <socket fd> <count> [hold]
//
// Receives the region's memfd over the inherited unix socket (SCM_RIGHTS), attaches as
// side 1 (mmap + validate), runs its half of the stream (tests/linux/shm_stream.hpp) for
// <count> buffers (0: until killed; a consumer keeps the last [hold] buffers before
// it frees them, as one with work in flight) while watching its parent through a pidfd, and writes
// back what it saw: received, bad, and 1 if it saw the parent die. Exit status 0 when
// every buffer checked, 2 on a usage or attach error, 3 when the parent died.
#include "shm_stream.hpp"

#include <npa/linux/shm_region.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: shm_peer producer|consumer <socket fd> <count> [hold]\n");
        return 2;
    }
    const bool producing = std::strcmp(argv[1], "producer") == 0;
    const int sock = std::atoi(argv[2]);
    std::uint64_t count = std::strtoull(argv[3], nullptr, 10);
    if (count == 0) {
        count = std::numeric_limits<std::uint64_t>::max();
    }
    auto fd = npa::lnx::recv_fd(sock);
    if (!fd) {
        std::fprintf(stderr, "shm_peer: %s\n", fd.error().reason());
        return 2;
    }
    auto region = npa::lnx::shm_region::attach(*fd);
    if (!region) {
        std::fprintf(stderr, "shm_peer: %s\n", region.error().reason());
        return 2;
    }
    npa::shm::region& r = region->region();
    auto e = shm_stream::open(r, false);
    if (!e) {
        std::fprintf(stderr, "shm_peer: %s\n", e.error().reason());
        return 2;
    }
    auto watch = npa::lnx::peer_watch::open(::getppid());
    if (!watch) {
        std::fprintf(stderr, "shm_peer: %s\n", watch.error().reason());
        return 2;
    }
    r.announce(1, static_cast<std::uint32_t>(::getpid()), npa::lnx::boot_ns());
    // Tell the parent we are attached, then run.
    const char ready = 'R';
    if (::write(sock, &ready, 1) != 1) {
        return 2;
    }
    bool parent_died = false;
    auto stop = [&] {
        parent_died = watch->dead(0);
        return parent_died;
    };
    auto beat = [&] { r.beat(1); };
    std::uint64_t report[3] = {0, 0, 0};
    if (producing) {
        shm_stream::producer p;
        shm_stream::produce(*e, p, count, stop, beat);
        report[0] = p.sent;
    } else {
        shm_stream::consumer c;
        c.hold = argc == 5 ? static_cast<std::uint32_t>(std::strtoul(argv[4], nullptr, 10)) : 0;
        if (c.hold > 512) {
            std::fprintf(stderr, "shm_peer: hold at most 512 buffers\n");
            return 2;
        }
        shm_stream::consume(*e, c, count, stop, beat);
        report[0] = c.received;
        report[1] = c.bad;
    }
    report[2] = parent_died ? 1 : 0;
    r.leave(1);
    if (::write(sock, report, sizeof(report)) != static_cast<ssize_t>(sizeof(report))) {
        return 2;
    }
    if (parent_died) {
        return 3;
    }
    return report[1] == 0 ? 0 : 1;
}
