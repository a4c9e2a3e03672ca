// The virtio-net plugin over vhost-user against DPDK's net_vhost in dpdk-testpmd with two
// queue pairs: each pair's frames come back on it, a shell's queue q is pair q, and the
// controlq served in the front end enables pairs past the first.
#include <doctest/doctest.h>

#include "vhost_user_net_rig.hpp"

#ifdef NPA_TESTPMD

#include <npa/control/virtio_net.hpp>
#include <npa/shell.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

using namespace npa::test::vhost_net;

TEST_CASE("virtio-net over vhost-user, two queue pairs against net_vhost queues=2 (macswap): "
          "each pair's frames come back on it, counted per queue on both sides") {
    constexpr std::uint16_t pairs = 2;
    session s({"--forward-mode=macswap", "--port-topology=loop", "--rxq=2", "--txq=2"}, true, false,
              true, true, pairs);
    CHECK((s.p->plugin.features() & npa::virtio_net::feature::MQ) != 0);
    CHECK((s.p->dev.session().protocol_features() & vu::protocol::mq) != 0);
    // DPDK 22.11's lib/vhost answers its own limit (128 pairs), not queues=: clamped to 8.
    CHECK(s.p->dev.back_end_queue_pairs() >= pairs);
    CHECK(s.p->plugin.capabilities().max_queues >= pairs);
    constexpr std::uint64_t n = 4000;           // frames per pair
    constexpr std::uint64_t window = 128;       // per pair, fewer than its RX ring holds
    constexpr std::uint64_t probe = 1ull << 40; // sequence numbers of warm-up frames
    // Pair q sends sequence numbers q*n .. q*n+n-1: a frame that came back on the other
    // pair, out of order or changed fails swapped_back().
    std::array<std::uint64_t, pairs> next{}, back{}, bad{}, probes_back{}, bytes{};
    const auto on_frame = [&](std::uint16_t q) {
        return [&, q](const buffer_t& b) {
            std::uint64_t seq = 0;
            std::memcpy(&seq, b.data() + 14, 8);
            if (seq >= probe) {
                ++probes_back[q];
                return;
            }
            bad[q] += swapped_back(b, s.cfg.mac, far_mac, q * n + back[q]++) ? 0 : 1;
        };
    };
    // Warm-up on each pair.
    for (std::uint16_t q = 0; q < pairs; ++q) {
        std::uint64_t probes = 0;
        CHECK(warm_up(
            [&] {
                std::uint64_t pb = 0;
                const std::uint64_t seq = probe + probes;
                probes += s.p->send(seq, seq + 1, pb, q) - seq;
            },
            [&] { s.p->receive(on_frame(q), q); }, probes_back[q]));
        REQUIRE(s.p->tx_drained(q));
    }
    // Stragglers of the warm-up (a probe sent twice) are in by now or never come.
    std::this_thread::sleep_for(200ms);
    for (std::uint16_t q = 0; q < pairs; ++q) {
        while (s.p->receive(on_frame(q), q) != 0) {
        }
    }
    const auto counters = [&] {
        std::array<std::int64_t, 4 * pairs + 2> c{};
        for (std::uint16_t q = 0; q < pairs; ++q) {
            const std::string i = std::to_string(q);
            c[4 * q] = xstat(s.pmd, "rx_q" + i + "_packets");
            c[4 * q + 1] = xstat(s.pmd, "tx_q" + i + "_packets");
            c[4 * q + 2] = static_cast<std::int64_t>(s.p->plugin.stats(q).tx_packets);
            c[4 * q + 3] = static_cast<std::int64_t>(s.p->plugin.stats(q).rx_packets);
        }
        c[4 * pairs] = s.pmd.port_stat("ipackets");
        c[4 * pairs + 1] = s.pmd.port_stat("opackets");
        return c;
    };
    const auto c0 = counters();
    const bool done = wait_until(60s, [&] {
        for (int k = 0; k < 64; ++k) {
            for (std::uint16_t q = 0; q < pairs; ++q) {
                if (next[q] < n && next[q] - back[q] < window) {
                    next[q] = s.p->send(q * n + next[q], q * n + std::min(n, back[q] + window), bytes[q], q) - q * n;
                }
                s.p->receive(on_frame(q), q);
            }
        }
        return back[0] >= n && back[1] >= n;
    });
    CHECK(done);
    CHECK(wait_until(5s, [&] { return s.pmd.port_stat("opackets") - c0[4 * pairs + 1] == 2 * n; }));
    const auto c1 = counters();
    INFO("sent ", next[0], " + ", next[1], ", back ", back[0], " + ", back[1], "\n",
         s.pmd.telemetry("/ethdev/xstats,0"));
    for (std::uint16_t q = 0; q < pairs; ++q) {
        CAPTURE(q);
        CHECK(back[q] == n);
        CHECK(bad[q] == 0);
        CHECK(s.p->tx_drained(q));
        CHECK(c1[4 * q] - c0[4 * q] == static_cast<std::int64_t>(n));         // testpmd rx_qN
        CHECK(c1[4 * q + 1] - c0[4 * q + 1] == static_cast<std::int64_t>(n)); // testpmd tx_qN
        CHECK(c1[4 * q + 2] - c0[4 * q + 2] == static_cast<std::int64_t>(n)); // npa tx, pair q
        CHECK(c1[4 * q + 3] - c0[4 * q + 3] == static_cast<std::int64_t>(n)); // npa rx, pair q
        CHECK(s.p->plugin.stats(q).rx_dropped == 0);
        CHECK(s.p->plugin.stats(q).bad_completion == 0);
    }
    CHECK(c1[4 * pairs] - c0[4 * pairs] == static_cast<std::int64_t>(2 * n));
    CHECK(c1[4 * pairs + 1] - c0[4 * pairs + 1] == static_cast<std::int64_t>(2 * n));
    CHECK(s.p->plugin.health() == npa::errc::ok);
    MESSAGE("two pairs: ", n, " frames each way per pair; testpmd rx_q0/rx_q1 ", c1[0] - c0[0], "/",
            c1[4] - c0[4], ", tx_q0/tx_q1 ", c1[1] - c0[1], "/", c1[5] - c0[5]);
    s.p->plugin.detach(); // GET_VRING_BASE on the four rings
    CHECK(s.p->api->audit().balanced());
}

namespace {

struct shell_env {
    using pool_type = pool_t;
    static std::uint64_t now_ns() noexcept {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count());
    }
};
using shell_t = npa::shell<shell_env, npa::virtio_net_plugin>;


// A shell of `pairs` (1 or 2) queues on one pool, its one path the virtio-net plugin on
// dev's window with `ctl` as its control channel, started.
template <class Channel>
npa::path_id start_shell(std::optional<shell_t>& sh, pool_t& pool, vu::net_device& dev, Channel& ctl,
                         std::uint16_t pairs) {
    REQUIRE(pairs <= 2);
    static shell_env en;
    std::array<pool_t*, 2> pools{&pool, &pool};
    npa::shell_config sc;
    sc.queues = pairs_of(pairs);
    sc.queues.mtu = 1500;
    sh.emplace(en, std::span<pool_t* const>(pools.data(), pairs), sc);
    REQUIRE(sh->init_status());
    const npa::path_id pv = sh->add_path<npa::virtio_net_plugin>(dev.window(), npa::control_link::to(ctl));
    REQUIRE(pv != shell_t::no_path);
    const npa::status st = sh->start(pv);
    INFO(std::string(st.reason()), " / ", std::string(dev.last_error()));
    REQUIRE(st);
    return pv;
}

} // namespace

namespace {
// dpdk-testpmd with a net_vhost port of two queue pairs, macswap on both, its socket in a
// private directory that goes with it.
struct two_pair_macswap {
    std::string dir, sock;
    testpmd pmd;
    explicit two_pair_macswap(const std::string& prefix) {
        char tmpl[] = "/tmp/npa-vhost-2q-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        sock = dir + "/vhost.sock";
        pmd.start_vdev(NPA_TESTPMD, "net_vhost0,iface=" + sock + ",queues=2", sock + ".log",
                       prefix + std::to_string(::getpid()),
                       {"--forward-mode=macswap", "--port-topology=loop", "--rxq=2", "--txq=2"});
    }
    two_pair_macswap(const two_pair_macswap&) = delete;
    two_pair_macswap& operator=(const two_pair_macswap&) = delete;
    ~two_pair_macswap() {
        pmd.kill9();
        ::unlink(sock.c_str());
        ::unlink((sock + ".log").c_str());
        ::rmdir(dir.c_str());
    }
    void wait_link_up() {
        REQUIRE(wait_until(30s, [&] {
            return pmd.telemetry("/ethdev/link_status,0").find("\"UP\"") != std::string::npos;
        }));
    }
};
} // namespace

TEST_CASE("virtio-net over vhost-user, a shell with two queues on one virtio-net path: shell queue "
          "q is pair q (net_vhost queues=2, macswap)") {
    constexpr std::uint16_t pairs = 2;
    constexpr std::uint64_t n = 3000;     // frames per shell queue
    constexpr std::uint64_t window = 128; // per queue in flight
    two_pair_macswap peer("npa-vumqsh-");
    testpmd& pmd = peer.pmd;
    vu::net_config cfg;
    cfg.socket = peer.sock;
    cfg.control_queue = true; // MQ needs the controlq (5.1.3.1)
    vu::net_device dev{10000};
    std::optional<pool_t> pool;
    open_device(dev, cfg, pool);
    REQUIRE(wait_until(30s, [&] { return static_cast<bool>(dev.connect()); }));
    npa::virtio_net_control ctl(dev.control_memory());
    dev.window().set_control(ctl.hook());
    std::optional<shell_t> sh;
    const npa::path_id pv = start_shell(sh, *pool, dev, ctl, pairs);
    CHECK((dev.session().features() & npa::virtio_net::feature::MQ) != 0);
    peer.wait_link_up();

    // Queue q sends 128-byte frames numbered q*n ..; each must come back on q, MACs swapped,
    // in order. Probes (numbers from `probe`) warm the port up first, as in macswap_round.
    constexpr std::uint64_t probe = 1ull << 40;
    std::array<std::uint64_t, pairs> sent{}, back{}, bad{}, probes_back{};
    const auto send = [&](std::uint16_t q, std::uint64_t first, std::uint32_t count) {
        npa::buffer_ref b[32];
        const std::uint32_t got = sh->alloc(q, std::span(b, std::min<std::uint32_t>(count, 32)));
        for (std::uint32_t i = 0; i < got; ++i) {
            std::byte* d = b[i].data();
            std::memset(d, 0, 128);
            std::memcpy(d, far_mac.data(), 6);
            std::memcpy(d + 6, cfg.mac.data(), 6);
            d[12] = std::byte{0x88};
            d[13] = std::byte{0xB5};
            const std::uint64_t seq = first + i;
            std::memcpy(d + 14, &seq, 8);
            b[i].set_length(128);
        }
        const std::uint16_t k = sh->tx_burst(q, std::span(b, got));
        sh->free(q, std::span<const npa::buffer_ref>(b + k, got - k));
        return k;
    };
    const auto receive = [&](std::uint16_t q) {
        npa::buffer_ref b[32];
        const std::uint16_t k = sh->rx_burst(q, b);
        for (std::uint16_t i = 0; i < k; ++i) {
            const std::byte* d = b[i].data();
            std::uint64_t seq = 0;
            std::memcpy(&seq, d + 14, 8);
            if (seq >= probe) {
                ++probes_back[q];
                continue;
            }
            const bool ok = b[i].length() == 128 && std::memcmp(d, cfg.mac.data(), 6) == 0 &&
                            std::memcmp(d + 6, far_mac.data(), 6) == 0 && seq == q * n + back[q];
            bad[q] += ok ? 0 : 1;
            ++back[q];
        }
        sh->free(q, std::span<const npa::buffer_ref>(b, k));
        (void)sh->poll(q);
    };
    for (std::uint16_t q = 0; q < pairs; ++q) {
        std::uint64_t probes = 0;
        CHECK(warm_up([&] { probes += send(q, probe + probes, 1); }, [&] { receive(q); }, probes_back[q]));
    }
    std::this_thread::sleep_for(200ms);
    for (std::uint16_t q = 0; q < pairs; ++q) {
        receive(q);
    }
    std::array<std::int64_t, pairs> rx0{}, tx0{};
    for (std::uint16_t q = 0; q < pairs; ++q) {
        rx0[q] = xstat(pmd, "rx_q" + std::to_string(q) + "_packets");
        tx0[q] = xstat(pmd, "tx_q" + std::to_string(q) + "_packets");
    }
    const bool done = wait_until(60s, [&] {
        for (int k = 0; k < 64; ++k) {
            for (std::uint16_t q = 0; q < pairs; ++q) {
                if (sent[q] < n && sent[q] - back[q] < window) {
                    const auto room = static_cast<std::uint32_t>(std::min(n - sent[q], window - (sent[q] - back[q])));
                    sent[q] += send(q, q * n + sent[q], room);
                }
                receive(q);
            }
            (void)sh->service();
        }
        return back[0] >= n && back[1] >= n;
    });
    CHECK(done);
    INFO("sent ", sent[0], " + ", sent[1], ", back ", back[0], " + ", back[1], "\n",
         pmd.telemetry("/ethdev/xstats,0"));
    for (std::uint16_t q = 0; q < pairs; ++q) {
        CAPTURE(q);
        CHECK(back[q] == n);
        CHECK(bad[q] == 0);
        CHECK(xstat(pmd, "rx_q" + std::to_string(q) + "_packets") - rx0[q] == static_cast<std::int64_t>(n));
        CHECK(wait_until(5s, [&] {
            return xstat(pmd, "tx_q" + std::to_string(q) + "_packets") - tx0[q] == static_cast<std::int64_t>(n);
        }));
    }
    CHECK(sh->active_path() == pv);
    sh->stop();
    sh.reset();
    CHECK(pool->in_use() == 0); // every buffer back in the pool
}

TEST_CASE("virtio-net over vhost-user, the controlq served in the front end: pairs past the first "
          "run once VQ_PAIRS_SET, sent at attach, becomes SET_VRING_ENABLE (net_vhost queues=2, macswap)") {
    constexpr std::uint16_t pairs = 2;
    two_pair_macswap peer("npa-vucvqp-");
    testpmd& pmd = peer.pmd;
    vu::net_config cfg;
    cfg.socket = peer.sock;
    cfg.control_queue = true;
    std::optional<port> p;
    p.emplace(cfg);
    REQUIRE(p->ctl);
    p->attach(pairs_of(pairs));
    REQUIRE(p->ctl->live());
    peer.wait_link_up();
    // The plugin's attach sent VQ_PAIRS_SET after DRIVER_OK, before its first buffer
    // (5.1.6.5.5): both pairs run at the back end before any request of the shell's.
    CHECK(p->dev.controlq().pairs == 2);
    CHECK(p->dev.controlq().ok == 1);
    std::array<std::uint64_t, pairs> back{};
    std::uint64_t seq = 0, bytes = 0;
    const auto count = [&](std::uint16_t q) { return [&, q](const buffer_t&) { ++back[q]; }; };
    for (std::uint16_t q = 0; q < pairs; ++q) {
        REQUIRE(wait_until(15s, [&] {
            seq = p->send(seq, seq + 1, bytes, q);
            (void)wait_until(1s, [&] {
                p->receive(count(q), q);
                return back[q] != 0;
            });
            return back[q] != 0;
        }));
    }
    CHECK(xstat(pmd, "rx_q1_packets") >= 1);
    // A later command sends nothing owed.
    REQUIRE(p->ctl->submit(npa::control_request::make_vlan(true, 7)));
    CHECK(p->dev.controlq().vlan(7));
    CHECK(p->dev.controlq().pairs == 2);
    CHECK(p->dev.controlq().ok == 2); // VQ_PAIRS_SET, VLAN_ADD
    CHECK(p->dev.controlq().err == 0);
    p.reset(); // detach: the device reset stops the rings
}

TEST_CASE("virtio-net over vhost-user, the controlq served in the front end (control_queue, as DPDK's "
          "cq=1): the shell's control channel on it, VQ_PAIRS_SET as SET_VRING_ENABLE (net_vhost "
          "queues=2, macswap; split and packed rings)") {
    for (const bool packed : {false, true}) {
        CAPTURE(packed);
        constexpr std::uint16_t pairs = 2;
        two_pair_macswap peer(packed ? "npa-vucvqk-" : "npa-vucvq-");
        vu::net_config cfg;
        cfg.socket = peer.sock;
        cfg.control_queue = true;
        cfg.packed_ring = packed;
        vu::net_device dev{10000};
        std::optional<pool_t> pool;
        open_device(dev, cfg, pool);
        REQUIRE(wait_until(30s, [&] { return static_cast<bool>(dev.connect()); }));
        npa::virtio_net_control ctl(dev.control_memory());
        static_assert(npa::virtio_net_control::memory_bytes <= vu::control_server::bytes);
        dev.window().set_control(ctl.hook());
        std::optional<shell_t> sh;
        const npa::path_id pv = start_shell(sh, *pool, dev, ctl, pairs);
        CHECK(sh->active_path() == pv);
        namespace vf = npa::virtio_net::feature;
        // The plugin took the controlq; the back end was never told of it.
        CHECK((dev.control_features() & vf::CTRL_VQ) != 0);
        CHECK((dev.control_features() & vf::CTRL_MAC_ADDR) != 0);
        CHECK((dev.session().features() & (vf::CTRL_VQ | vf::CTRL_RX | vf::CTRL_VLAN | vf::CTRL_MAC_ADDR)) == 0);
        CHECK((dev.session().features() & vf::MQ) != 0);
        CHECK(dev.packed() == packed); // the controlq follows the data queues' layout
        REQUIRE(ctl.live());
        peer.wait_link_up();

        constexpr std::uint64_t probe = 1ull << 40; // sequence numbers of warm-up frames
        std::array<std::uint64_t, pairs> back{}, probes_back{};
        const auto send = [&](std::uint16_t q, std::uint64_t seq) {
            npa::buffer_ref b[1];
            if (sh->alloc(q, std::span(b, 1)) != 1) {
                return false;
            }
            std::byte* d = b[0].data();
            std::memset(d, 0, 64);
            std::memcpy(d, far_mac.data(), 6);
            std::memcpy(d + 6, cfg.mac.data(), 6);
            d[12] = std::byte{0x88};
            d[13] = std::byte{0xB5};
            std::memcpy(d + 14, &seq, 8);
            b[0].set_length(64);
            if (sh->tx_burst(q, std::span(b, 1)) == 1) {
                return true;
            }
            sh->free(q, std::span<const npa::buffer_ref>(b, 1));
            return false;
        };
        const auto receive = [&](std::uint16_t q) {
            npa::buffer_ref b[32];
            const std::uint16_t k = sh->rx_burst(q, b);
            for (std::uint16_t i = 0; i < k; ++i) {
                std::uint64_t seq = 0;
                std::memcpy(&seq, b[i].data() + 14, 8);
                ++(seq >= probe ? probes_back[q] : back[q]);
            }
            sh->free(q, std::span<const npa::buffer_ref>(b, k));
            (void)sh->poll(q);
        };
        // 1. The shell replays its control state once the path is attached, and the owed
        //    VQ_PAIRS_SET goes first: both pairs run at the back end.
        CHECK(dev.controlq().pairs == 2);
        CHECK(ctl.commands_ok() >= 2);
        // 2. RX mode: promiscuous off, all multicast on.
        REQUIRE(ctl.submit(npa::control_request::make_rx_mode(npa::rx_mode::unicast | npa::rx_mode::broadcast |
                                                                 npa::rx_mode::all_multi)));
        CHECK_FALSE(dev.controlq().promisc);
        CHECK(dev.controlq().allmulti);
        // 3. MAC and VLAN commands are answered and kept; nothing the back end is told.
        const npa::mac_addr m{0x02, 0, 0, 0, 0x76, 0x33};
        REQUIRE(ctl.submit(npa::control_request::make_set_mac(m)));
        CHECK(std::memcmp(dev.controlq().mac.data(), m.data(), 6) == 0);
        REQUIRE(ctl.submit(npa::control_request::make_vlan(true, 100)));
        CHECK(dev.controlq().vlan(100));
        REQUIRE(ctl.submit(npa::control_request::make_vlan(false, 100)));
        CHECK_FALSE(dev.controlq().vlan(100));
        CHECK(dev.controlq().err == 0);
        CHECK(dev.controlq().refused == 0);
        CHECK(dev.controlq().ok == ctl.commands_ok());
        // 4. A request the front end cannot serve is refused by the channel, not sent: RX
        //    without unicast needs CTRL_RX_EXTRA, which is not offered.
        CHECK_FALSE(ctl.submit(npa::control_request::make_rx_mode(npa::rx_mode::multicast)));
        // 5. Traffic on both pairs after all that, once a probe came back on each.
        for (std::uint16_t q = 0; q < pairs; ++q) {
            std::uint64_t probes = 0;
            CHECK(warm_up([&] { probes += send(q, probe + probes) ? 1 : 0; }, [&] { receive(q); }, probes_back[q]));
        }
        std::this_thread::sleep_for(200ms); // the other probes sent are back by now or never come
        receive(0);
        receive(1);
        const std::array<std::uint64_t, pairs> b0 = back;
        for (std::uint16_t q = 0; q < pairs; ++q) {
            for (std::uint64_t i = 0; i < 100; ++i) {
                CHECK(wait_until(5s, [&] {
                    receive(q);
                    return send(q, 100 + i);
                }));
            }
        }
        const bool all_back = wait_until(15s, [&] {
            receive(0);
            receive(1);
            return back[0] - b0[0] == 100 && back[1] - b0[1] == 100;
        });
        INFO("sent 100 + 100, back ", back[0] - b0[0], " + ", back[1] - b0[1], "\n",
             peer.pmd.telemetry("/ethdev/xstats,0"));
        CHECK(all_back);
        sh->stop();
        sh.reset();
        CHECK(pool->in_use() == 0);
    }
}

#endif // NPA_TESTPMD
