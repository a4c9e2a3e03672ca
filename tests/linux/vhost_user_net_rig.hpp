// tests/linux/vhost_user_net_rig.hpp: what the virtio-net-over-vhost-user tests share
// (test_vhost_user_net.cpp, _testpmd.cpp, _queues.cpp): the plugin's port with frames to
// far_mac, queue pairs, and, with dpdk-testpmd, a session against its net_vhost port and the
// helpers that read it.
#pragma once

#include <doctest/doctest.h>

#include "vhost_net_kit.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace npa::test::vhost_net {

inline constexpr std::array<std::uint8_t, 6> far_mac{0x02, 0, 0, 0, 0x76, 0x02};

// The plugin, its pool in the memfd, the test API; frames to far_mac.
struct port : net_port {
    explicit port(const vu::net_config& c) : net_port(c, far_mac) {}
};

inline npa::queue_config pairs_of(std::uint16_t n, std::uint32_t ring = 256) {
    npa::queue_config qc = one_pair(ring);
    qc.queues = n;
    return qc;
}

} // namespace npa::test::vhost_net

#ifdef NPA_TESTPMD
#include "vhost_testpmd.hpp"

namespace npa::test::vhost_net {

using npa::test::testpmd;
using npa::test::wait_until;
using namespace std::chrono_literals;

struct session {
    std::string dir, sock, prefix;
    testpmd pmd;
    vu::net_config cfg;
    std::optional<port> p;

    /// `pairs`: net_vhost's queues= and the queue pairs the plugin sets up. `packed`:
    /// packed rings asked for (net_config::packed_ring), which net_vhost offers.
    session(const std::vector<std::string>& pmd_args, bool mrg, bool polled, bool in_order = true,
            bool event_idx = true, std::uint16_t pairs = 1, bool packed = false) {
        char tmpl[] = "/tmp/npa-vhost-net-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        sock = dir + "/vhost.sock";
        static int run = 0;
        prefix = "npa-vun-" + std::to_string(::getpid()) + "-" + std::to_string(run++);
        pmd.start_vdev(NPA_TESTPMD, "net_vhost0,iface=" + sock + ",queues=" + std::to_string(pairs),
                       sock + ".log", prefix, pmd_args);
        cfg.socket = sock;
        cfg.polled = polled;
        cfg.packed_ring = packed;
        cfg.control_queue = pairs > 1; // MQ needs the controlq (5.1.3.1)
        if (!mrg) {
            cfg.features_mask &= ~npa::virtio_net::feature::MRG_RXBUF;
        }
        if (!in_order) {
            cfg.features_mask &= ~npa::virtio::feature::IN_ORDER;
        }
        if (!event_idx) {
            cfg.features_mask &= ~npa::virtio::feature::EVENT_IDX;
        }
        p.emplace(cfg);
        p->attach(pairs_of(pairs));
        CHECK(((p->plugin.features() & npa::virtio_net::feature::MRG_RXBUF) != 0) == mrg);
        // DPDK 22.11 offers IN_ORDER; on split rings it writes one used entry per chain,
        // in order, which the plugin's checks accept (bad_completion stays 0 below). On
        // packed rings it writes one used descriptor for a batch of transmitted buffers
        // (the plugin skips the batch's positions itself). EVENT_IDX the plugin takes on both
        // layouts (on packed rings: off_wrap in the event suppression areas, 2.8.10).
        CHECK(((p->plugin.features() & npa::virtio::feature::RING_PACKED) != 0) == packed);
        CHECK(p->dev.packed() == packed);
        CHECK(((p->plugin.features() & npa::virtio::feature::IN_ORDER) != 0) == in_order);
        CHECK(((p->plugin.features() & npa::virtio::feature::EVENT_IDX) != 0) == event_idx);
        REQUIRE(wait_until(30s, [&] {
            return pmd.telemetry("/ethdev/link_status,0").find("\"UP\"") != std::string::npos;
        }));
    }
    ~session() {
        p.reset();
        pmd.kill9();
        ::unlink(sock.c_str());
        ::unlink((sock + ".log").c_str());
        ::rmdir(dir.c_str());
    }

    std::uint64_t send(std::uint64_t seq, std::uint64_t end, std::uint64_t& bytes) { return p->send(seq, end, bytes); }
    bool tx_drained() { return p->tx_drained(); }
    template <class Fn>
    std::uint16_t receive(Fn&& fn) {
        return p->receive(fn);
    }
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// testpmd's net_vhost drops what it forwards in the first moments after a queue came up (seen
// once in about ten runs on a loaded machine: 128 frames received, none sent back). Before a
// counted run, one probe frame at a time until one came back: `send_probe()` sends one (or none
// when its ring is full), `receive()` reads what came back and counts returned probes in
// `probes_back`.
bool warm_up(auto send_probe, auto receive, const std::uint64_t& probes_back) {
    return wait_until(15s, [&] {
        send_probe();
        (void)wait_until(1s, [&] {
            receive();
            return probes_back != 0;
        });
        return probes_back != 0;
    });
}


// One counter of testpmd's /ethdev/xstats,0 (net_vhost's per-queue ones: rx_q1_packets ...).
inline std::int64_t xstat(const testpmd& pmd, const std::string& name) {
    const std::string j = pmd.telemetry("/ethdev/xstats,0");
    const std::string key = "\"" + name + "\":";
    const auto at = j.find(key);
    return at == std::string::npos ? -1 : std::strtoll(j.c_str() + at + key.size(), nullptr, 10);
}

} // namespace npa::test::vhost_net
#endif // NPA_TESTPMD
