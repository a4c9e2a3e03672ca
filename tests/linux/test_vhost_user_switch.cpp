// The NPA switch with a virtio-net path whose back end goes away and comes back.
//
// One shell over two paths, in a private network namespace:
//   V  the virtio-net plugin over vhost-user (npa/linux/vhost_user/transport.hpp) to DPDK's
//      net_vhost in dpdk-testpmd (rxonly), the shell's buffer pool in V's memfd;
//   P  the AF_PACKET plugin on one end of a veth pair; a raw socket on the other end counts
//      what arrives.
// Numbered frames flow from the shell while testpmd is killed (kill -9): V's health reads
// removed, the shell falls back to P, and what V had taken but the back end never confirmed
// is sent on P, in order. testpmd is started again on the same socket, the front end
// reconnects, and an operator switch takes the traffic back to V.
//
// Asserted: the frames the shell sent form three runs with no gap and no repeat: the first
// `a` went to the old back end (the shell's own count of what it confirmed, at least what
// testpmd had counted just before it died), a..b-1 arrived on the veth in order, each once,
// and b..N-1 were counted by the new testpmd; the shell lost nothing (switch records), and
// its pool balances after stop(). The way back takes about a second, nearly all of it the
// new testpmd's: its vhost thread looks at a new connection only when its poll() of one
// second ends. Run on split rings and on packed ones (net_config::packed_ring): a packed
// ring handed over again after the reconnect starts afresh (SET_VRING_BASE 1 << 15).
#include <doctest/doctest.h>

#include "test_kit.hpp"
#include "vhost_testpmd.hpp"

#include <npa/buffer/fixed_pool.hpp>
#include <npa/linux/af_packet.hpp>
#include <npa/linux/vhost_user/transport.hpp>
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/shell.hpp>

#include <sys/stat.h>
#include <time.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#ifdef NPA_TESTPMD

namespace {

using namespace std::chrono_literals;
using npa::test::testpmd;
using npa::test::wait_until;
namespace vu = npa::vhost_user;
using pool_t = npa::fixed_pool<npa::borrowed_memory>;

struct env {
    using pool_type = pool_t;
    static std::uint64_t now_ns() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
               static_cast<std::uint64_t>(ts.tv_nsec);
    }
};
using shell_t = npa::shell<env, npa::virtio_net_plugin, npa::lnx::af_packet_plugin>;

constexpr std::uint32_t ring_size = 256;
constexpr std::uint64_t window = 64; // frames in flight to the raw socket on P

// Neither path has an authority behind it here: a testpmd port and a veth both take any
// MAC and RX mode, and the shell asks for no RSS (one queue).
struct local_channel {
    npa::status submit(const npa::control_request&) { return {}; }
    npa::status submit_batch(std::span<const npa::control_request>) { return {}; }
};

struct rig {
    std::string dir, sock;
    int run = 0;
    testpmd pmd;
    vu::net_config cfg;
    vu::net_device dev{10000};
    std::optional<pool_t> pool;
    npa_test::veth_pair veth{"vus0", "vus1"};
    npa_test::raw_socket far{"vus1"};
    npa::lnx::af_packet_device pdev = npa::lnx::af_packet_device::named("vus0");
    local_channel ctl_v, ctl_p;
    std::optional<shell_t> sh;
    npa::path_id pv = shell_t::no_path, pp = shell_t::no_path;

    // What the far end of the veth saw: the first number, the next one expected, repeats
    // and frames out of order.
    std::uint64_t sent = 0, raw_first = ~0ull, raw_next = 0, raw_bad = 0;

    explicit rig(bool packed) {
        char tmpl[] = "/tmp/npa-vhost-switch-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        sock = dir + "/vhost.sock";
        start_backend();
        cfg.socket = sock;
        cfg.ring_bytes = 64 * 1024;
        cfg.pool_bytes = 8u << 20;
        cfg.packed_ring = packed;
        REQUIRE(dev.create(cfg));
        npa::pool_config pc;
        pc.count = 2048;
        auto p = pool_t::create(pc, dev.pool_memory());
        REQUIRE(p);
        pool.emplace(std::move(*p));
        REQUIRE(wait_until(30s, [&] { return static_cast<bool>(dev.connect()); }));
        pool_t* pools[] = {&*pool};
        npa::shell_config sc;
        sc.queues.queues = 1;
        sc.queues.tx_ring_size = ring_size;
        sc.queues.rx_ring_size = ring_size;
        sc.queues.mtu = 1500;
        sc.queues.offloads = 0;
        sc.policy.min_dwell_ns = 0;
        sc.inline_switch = true;
        static env en;
        sh.emplace(en, pools, sc);
        REQUIRE(sh->init_status());
        pv = sh->add_path<npa::virtio_net_plugin>(dev.window(), npa::control_link::to(ctl_v));
        pp = sh->add_path<npa::lnx::af_packet_plugin>(pdev, npa::control_link::to(ctl_p));
        REQUIRE(pv != shell_t::no_path);
        REQUIRE(pp != shell_t::no_path);
        const npa::status st = sh->start(pv);
        INFO(std::string(st.reason()), " / ", dev.last_error());
        REQUIRE(st);
        CHECK(dev.packed() == packed);
        sh->set_fallback(pp);
    }
    ~rig() {
        sh.reset();
        pmd.kill9();
        ::unlink(sock.c_str());
        ::unlink((sock + ".log").c_str());
        ::rmdir(dir.c_str());
    }

    void start_backend() {
        ::unlink(sock.c_str());
        pmd.start(NPA_TESTPMD, sock,
                  "npa-vus-" + std::to_string(::getpid()) + "-" + std::to_string(run++),
                  {"--forward-mode=rxonly"});
    }

    // Sends up to 32 numbered frames (paced on P, where the raw socket reads them), serves
    // the shell (health, a switch under way), reads what reached the far end of the veth.
    void step(std::uint64_t end) {
        npa::buffer_ref b[32];
        const bool on_p = sh->active_path() == pp && !sh->switching();
        std::uint64_t room = end - sent;
        if (on_p && raw_first != ~0ull) {
            room = std::min(room, window - std::min(window, sent - raw_next));
        }
        const auto want = static_cast<std::uint32_t>(std::min<std::uint64_t>(32, room));
        const std::uint32_t got = sh->alloc(0, std::span(b, want));
        for (std::uint32_t i = 0; i < got; ++i) {
            const std::vector<std::uint8_t> f = npa_test::make_frame(static_cast<std::uint32_t>(sent + i), 128);
            std::memcpy(b[i].data(), f.data(), f.size());
            b[i].set_length(static_cast<std::uint32_t>(f.size()));
        }
        const std::uint16_t k = sh->tx_burst(0, std::span(b, got));
        sh->free(0, std::span<const npa::buffer_ref>(b + k, got - k));
        sent += k;
        const std::uint16_t n = sh->rx_burst(0, b); // nothing is sent to the shell
        sh->free(0, std::span<const npa::buffer_ref>(b, n));
        (void)sh->poll(0);
        (void)sh->service();
        for (std::vector<std::uint8_t> f = far.recv_now(); !f.empty(); f = far.recv_now()) {
            const std::uint32_t s = npa_test::frame_seq(f.data());
            if (raw_first == ~0ull) {
                raw_first = raw_next = s;
            }
            raw_bad += s == raw_next ? 0 : 1;
            raw_next = s + 1;
        }
    }
};

} // namespace

void killed_and_back(bool packed) {
    rig r(packed);
    // 1. On V until testpmd counted a few thousand frames.
    REQUIRE(wait_until(20s, [&] {
        for (int i = 0; i < 64; ++i) r.step(~0ull);
        return r.pmd.port_stat("ipackets") >= 3000;
    }));
    const std::int64_t counted_by_old = r.pmd.port_stat("ipackets");
    r.pmd.kill9();
    // 2. The shell sees V gone and falls back to P; frames keep coming.
    REQUIRE(wait_until(10s, [&] {
        for (int i = 0; i < 16; ++i) r.step(~0ull);
        return r.sh->active_path() == r.pp && !r.sh->switching();
    }));
    const npa::switch_record fall = r.sh->history().recent(0);
    CHECK(fall.reason == npa::switch_reason::surprise_removal);
    CHECK(fall.result == npa::errc::ok);
    CHECK(fall.tx_lost == 0);
    REQUIRE(wait_until(20s, [&] {
        r.step(~0ull);
        return r.raw_first != ~0ull && r.raw_next >= r.raw_first + 2000;
    }));
    // 3. The back end comes back on the same socket; the front end connects again and the
    //    operator moves the traffic back to V.
    r.start_backend();
    REQUIRE(wait_until(30s, [&] {
        r.step(~0ull);
        return static_cast<bool>(r.dev.connect());
    }));
    const npa::status st = r.sh->request_switch(r.pv, npa::switch_reason::operator_request);
    INFO(std::string(st.reason()), " / ", r.dev.last_error());
    REQUIRE(st);
    REQUIRE(wait_until(10s, [&] {
        for (int i = 0; i < 16 && r.sh->switching(); ++i) r.step(~0ull);
        return !r.sh->switching();
    }));
    const npa::switch_record back = r.sh->history().recent(0);
    INFO(std::string(back.detail != nullptr ? back.detail : ""));
    REQUIRE(back.result == npa::errc::ok);
    CHECK(r.sh->active_path() == r.pv);
    CHECK(r.dev.packed() == packed);
    CHECK(back.tx_lost == 0);
    // What P sent has reached the veth's far end (AF_PACKET sends synchronously): the next
    // number there, b, is the first frame of the new back end, which must count exactly
    // n - b frames (one lost or repeated on either side breaks that count).
    for (int i = 0; i < 10; ++i) r.step(r.sent);
    const std::uint64_t a = r.raw_first, b = r.raw_next;
    const std::uint64_t n = b + 5000;
    CHECK(wait_until(20s, [&] {
        r.step(n);
        return r.sent == n && r.pmd.port_stat("ipackets") == static_cast<std::int64_t>(n - b);
    }));
    MESSAGE("frames 0.." << a - 1 << " to the first back end (it counted " << counted_by_old
                         << " before it was killed), " << a << ".." << b - 1
                         << " on AF_PACKET, " << b << ".." << n - 1
                         << " to the second back end (it counted " << r.pmd.port_stat("ipackets")
                         << "); fallback in " << fall.duration_ns / 1000 << " us with "
                         << fall.requeued << " frames sent again, way back in "
                         << back.duration_ns / 1000 << " us");
    // The old back end got 0..a-1: the frames it counted were never sent again.
    CHECK(a >= static_cast<std::uint64_t>(counted_by_old));
    CHECK(r.raw_bad == 0);
    CHECK(r.pmd.port_stat("ipackets") == static_cast<std::int64_t>(n - b));
    r.sh->stop();
    const auto au = r.sh->audit();
    CHECK(au.ok());
    CHECK(au.in_pool == au.pool_size);
}

TEST_CASE("virtio-net path: its back end killed and started again; the shell falls back to "
          "AF_PACKET and comes back, nothing lost or repeated") {
    killed_and_back(false);
}

TEST_CASE("virtio-net path on packed rings: its back end killed and started again; the shell "
          "falls back to AF_PACKET and comes back, nothing lost or repeated") {
    killed_and_back(true);
}

#else
TEST_CASE("virtio-net path switch against DPDK's net_vhost" * doctest::skip(true)) {
    MESSAGE("dpdk-testpmd not found at configure time: the testpmd case is not built");
}
#endif

NPA_LINUX_TEST_MAIN
