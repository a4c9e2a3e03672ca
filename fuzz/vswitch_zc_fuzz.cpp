// fuzz/vswitch_zc_fuzz.cpp: npa-vswitchd's zero-copy ports (adapters/linux/tools/vswitchd,
// zc.hpp and the zero-copy half of switch.hpp) against front ends that write anything into
// the memory they map: their four rings, the ring positions themselves, and the shared
// pool's free ring.
//
// The engine has two zero-copy ports, each attached through a socket pair (the front end's
// end is the test's). Input: a program of ops (fuzz_input.hpp), each naming a port:
//   0 send: descriptors on its tx ring, each a buffer it was lent or received, a buffer it
//     no longer holds, or any index, with any length; a valid Ethernet header to the other
//     port (or to itself, or broadcast) written into the ones it holds
//   1 release: buffers on its back ring, the same choice of indices
//   2 alloc: take lent buffers from its lend ring into its hands
//   3 receive: take frames from its rx ring into its hands
//   4 the switch's poll()
//   5 a 32-bit word written anywhere in its port region past the header (ring positions
//     and both sides' wake and liveness words included)
//   6 a 32-bit word written into the pool's free ring (a front end maps the pool)
//   7 the front end leaves (its socket closed: the control path detaches it) and a new one
//     attaches
//   8 messages on its connection (kicks, empty ones, anything else, more than the daemon
//     reads at one look), then the daemon's last look before a sleep and its waking
// Invariants, after every poll and at the end: no out-of-bounds access or undefined
// behaviour (and no wait: every socket call of the daemon's returns at once, or the input
// times out); no buffer is left with the switch between passes; the daemon's count of what
// each port holds equals its owner table; it never counts more messages than were sent;
// with the rings and the free ring left alone
// (ops 5 and 6 unused), every buffer is back in the pool's free ring once both front ends
// left, and every frame a port sent is forwarded or counted.
#include "fuzz_input.hpp"

#include "switch.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

namespace {

namespace vs = npa::vswitch;
namespace zc = npa::lnx::zc;
namespace shm = npa::shm;

const npa::mac_addr macs[2] = {{2, 0, 0, 0, 0, 0xa}, {2, 0, 0, 0, 0, 0xb}};

struct front {
    int sock = -1;                   // the front end's end of the connection
    std::vector<std::uint32_t> held; // buffers it believes it holds
    std::uint32_t last_gone = 0;     // a buffer it held and sent or released
};

bool attach(vs::engine& sw, std::size_t i, front& f) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        return false;
    }
    if (!sw.attach_zc(i, sv[0])) { // sv[0] is closed on failure
        ::close(sv[1]);
        return false;
    }
    f.sock = sv[1];
    f.held.clear();
    return true;
}

void leave(vs::engine& sw, std::size_t i, front& f) {
    ::close(f.sock); // the regions' fds in flight go with it
    f.sock = -1;
    f.held.clear();
    sw.service_zc(i, [](const std::string&) {});
    NPA_FUZZ_CHECK(!sw.ports[i]->zc->attached());
}

std::uint32_t pick(npa::fuzz::input& in, front& f, bool take_from_hand) {
    switch (in.below(4)) {
    case 0:
    case 1:
        if (!f.held.empty()) {
            const std::size_t k = in.below(static_cast<std::uint32_t>(std::min<std::size_t>(f.held.size(), 256)));
            const std::uint32_t b = f.held[k];
            if (take_from_hand) {
                f.held.erase(f.held.begin() + static_cast<std::ptrdiff_t>(k));
                f.last_gone = b;
            }
            return b;
        }
        return in.u16() % zc::pool_buffers;
    case 2: return f.last_gone;
    default: return in.u32();
    }
}

void check_accounts(vs::engine& sw) {
    std::uint32_t owned[2] = {0, 0}, in_switch = 0;
    for (std::uint32_t b = 0; b < zc::pool_buffers; ++b) {
        const std::uint8_t o = sw.zpool->owner(b);
        if (o < 2) {
            ++owned[o];
        } else if (o == vs::zc_pool::in_switch) {
            ++in_switch;
        } else {
            NPA_FUZZ_CHECK(o == vs::zc_pool::in_pool);
        }
    }
    NPA_FUZZ_CHECK(in_switch == 0);
    for (std::size_t i = 0; i < 2; ++i) {
        NPA_FUZZ_CHECK(sw.ports[i]->zc->owned == owned[i]);
        NPA_FUZZ_CHECK(owned[i] <= zc::hold_limit);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    npa::fuzz::input in(data, size);
    vs::engine sw;
    auto zp = vs::zc_pool::create();
    NPA_FUZZ_CHECK(zp.ok());
    sw.zpool = std::move(*zp);
    front fe[2];
    for (std::size_t i = 0; i < 2; ++i) {
        vs::port_config pc;
        pc.name = i == 0 ? "a" : "b";
        pc.mac = macs[i];
        pc.zero_copy = true;
        sw.ports.push_back(std::make_unique<vs::port>(pc, npa::vhost_user::back_end::log_fn{}));
        NPA_FUZZ_CHECK(attach(sw, i, fe[i]));
    }
    bool scribbled = false;
    std::uint64_t sent[2] = {0, 0}, refused[2] = {0, 0}, messages[2] = {0, 0};
    for (int ops = 0; ops < 256 && !in.empty(); ++ops) {
        const std::uint32_t op = in.below(9);
        const std::size_t i = in.below(2);
        front& f = fe[i];
        vs::zc_link& z = *sw.ports[i]->zc;
        switch (op) {
        case 0: {
            std::array<shm::buf_desc, 40> d;
            const std::uint32_t n = 1 + in.below(static_cast<std::uint32_t>(d.size()));
            for (std::uint32_t k = 0; k < n; ++k) {
                const bool held = !f.held.empty();
                d[k].buf = pick(in, f, true);
                const std::uint32_t len = in.flag() ? 60 + in.below(200) : in.u16() % 2200;
                d[k].len = len;
                if (held && d[k].buf < zc::pool_buffers && in.flag()) {
                    const std::uint32_t to = in.below(3);
                    const npa::mac_addr dst = to == 2 ? npa::mac_addr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} : macs[to];
                    (void)npa::sim::eth::write_header({sw.zpool->data(d[k].buf), 64}, dst, macs[i], 0, 0x88b5);
                }
            }
            const std::uint32_t put = z.tx->enqueue_burst(std::span<const shm::buf_desc>(d.data(), n));
            sent[i] += put;
            break;
        }
        case 1: {
            std::array<shm::buf_desc, 40> d;
            const std::uint32_t n = 1 + in.below(static_cast<std::uint32_t>(d.size()));
            for (std::uint32_t k = 0; k < n; ++k) {
                d[k] = {pick(in, f, true), 0};
            }
            (void)z.back->enqueue_burst(std::span<const shm::buf_desc>(d.data(), n));
            break;
        }
        case 2:
        case 3: {
            std::array<shm::buf_desc, 64> d;
            const std::uint32_t got = (op == 2 ? z.lend : z.rx)->dequeue_burst(
                std::span<shm::buf_desc>(d.data(), 1 + in.below(64)));
            for (std::uint32_t k = 0; k < got; ++k) {
                f.held.push_back(d[k].buf);
            }
            break;
        }
        case 4:
            (void)sw.poll();
            check_accounts(sw);
            break;
        case 5: {
            const auto bytes = z.region->bytes();
            const std::uint32_t at = (in.u32() % (bytes.size() - shm::sides_offset)) & ~3u;
            const std::uint32_t v = in.u32();
            std::memcpy(bytes.data() + shm::sides_offset + at, &v, 4);
            scribbled = true;
            break;
        }
        case 6: {
            zc::pool_type::free_ring& r = sw.zpool->free_ring();
            const std::uint32_t at = (in.u32() % sizeof(r)) & ~3u;
            const std::uint32_t v = in.u32();
            std::memcpy(reinterpret_cast<std::byte*>(&r) + at, &v, 4);
            scribbled = true;
            break;
        }
        case 7:
            refused[i] += sw.ports[i]->c.zc_bad_buffer;
            leave(sw, i, f);
            // what it had sent and the daemon had not read went with the socket
            messages[i] = sw.ports[i]->c.zc_kicks + sw.ports[i]->c.zc_bad_kick;
            NPA_FUZZ_CHECK(attach(sw, i, f));
            break;
        case 8: {
            const std::uint32_t n = in.below(2 * vs::kick_drain + 2);
            for (std::uint32_t k = 0; k < n; ++k) {
                std::array<std::uint8_t, 16> m{};
                const std::uint32_t len = in.below(static_cast<std::uint32_t>(m.size()) + 1);
                if (in.flag()) {
                    const zc::kick good{zc::kick_magic, 0};
                    std::memcpy(m.data(), &good, sizeof good);
                } else {
                    for (std::uint32_t b = 0; b < len; ++b) {
                        m[b] = static_cast<std::uint8_t>(in.below(256));
                    }
                }
                messages[i] += ::send(f.sock, m.data(), len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 ? 1 : 0;
            }
            (void)sw.zc_before_sleep((in.u32() & ~zc::daemon_sleeps) | zc::daemon_sleeps);
            sw.zc_awake();
            const vs::counters& c = sw.ports[i]->c;
            NPA_FUZZ_CHECK(c.zc_kicks + c.zc_bad_kick <= messages[i]);
            NPA_FUZZ_CHECK(z.muted == (c.zc_kicks + c.zc_bad_kick < messages[i]));
            break;
        }
        default: break;
        }
    }
    (void)sw.poll();
    check_accounts(sw);
    for (std::size_t i = 0; i < 2; ++i) {
        leave(sw, i, fe[i]);
    }
    check_accounts(sw);
    NPA_FUZZ_CHECK(sw.zpool->free_count() == zc::pool_buffers);
    if (!scribbled) {
        // every buffer in the free ring once more, and every frame sent taken or refused
        NPA_FUZZ_CHECK(sw.zpool->available() == zc::pool_buffers);
        for (std::size_t i = 0; i < 2; ++i) {
            const vs::counters& c = sw.ports[i]->c;
            NPA_FUZZ_CHECK(c.rx_packets + c.zc_bad_buffer >= sent[i]); // the bad ones include releases
        }
    }
    (void)refused;
    return 0;
}
