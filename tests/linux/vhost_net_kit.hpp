// The virtio-net plugin over the vhost-user transport as the vhost-user tests drive it: the
// plugin, its pool in the transport's memfd and the sim's test_api (which knows where every
// buffer is); numbered frames of 60..1514 bytes with a pattern of their number, and the check
// of one that came back through a MAC swap.
#pragma once

#include <doctest/doctest.h>

#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/virtio_net.hpp>
#include <npa/linux/vhost_user/transport.hpp>
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/sim/test_api.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "vhost_testpmd.hpp"

namespace npa::test::vhost_net {

namespace vu = npa::vhost_user;
using pool_t = npa::fixed_pool<npa::borrowed_memory>;
using api_t = npa::sim::test_api<pool_t>;
using plugin_t = npa::virtio_net_plugin<api_t>;
using buffer_t = pool_t::buffer_type;
using mac = std::array<std::uint8_t, 6>;

inline npa::queue_config one_pair(std::uint32_t ring = 256) {
    npa::queue_config qc;
    qc.queues = 1;
    qc.tx_ring_size = qc.rx_ring_size = ring;
    qc.offloads = 0;
    return qc;
}

inline std::uint32_t frame_len(std::uint64_t seq) { return 60 + static_cast<std::uint32_t>(seq * 7919 % 1455); }
inline std::byte pattern(std::uint64_t seq, std::uint32_t i) { return static_cast<std::byte>((seq * 31 + i) & 0xFF); }

/// Frame `seq`: dst <- src, EtherType 0x88B5 (local experimental), the sequence number, then
/// a pattern of it up to frame_len(seq).
inline void build(buffer_t b, const mac& dst, const mac& src, std::uint64_t seq) {
    std::byte* d = b.data();
    const std::uint32_t len = frame_len(seq);
    std::memcpy(d, dst.data(), 6);
    std::memcpy(d + 6, src.data(), 6);
    d[12] = std::byte{0x88};
    d[13] = std::byte{0xB5};
    std::memcpy(d + 14, &seq, 8);
    for (std::uint32_t i = 22; i < len; ++i) {
        d[i] = pattern(seq, i);
    }
    b.set_length(len);
}

/// A frame `self` sent to `peer` that came back through a MAC swap: the MACs swapped, the
/// rest as sent.
inline bool swapped_back(const buffer_t& b, const mac& self, const mac& peer, std::uint64_t seq) {
    const std::byte* d = b.data();
    std::uint64_t got = 0;
    std::memcpy(&got, d + 14, 8);
    if (b.length() != frame_len(seq) || std::memcmp(d, self.data(), 6) != 0 ||
        std::memcmp(d + 6, peer.data(), 6) != 0 || got != seq) {
        return false;
    }
    for (std::uint32_t i = 22; i < b.length(); ++i) {
        if (d[i] != pattern(seq, i)) {
            return false;
        }
    }
    return true;
}

/// Creates `dev` (its memfd, rings and pool memory) and a pool of 2,048 buffers over the
/// memory the back end maps.
inline void open_device(vu::net_device& dev, const vu::net_config& c, std::optional<pool_t>& pool) {
    REQUIRE(dev.create(c));
    npa::pool_config pc;
    pc.count = 2048;
    auto p = pool_t::create(pc, dev.pool_memory());
    REQUIRE(p);
    pool.emplace(std::move(*p));
}

/// The plugin, its pool in the memfd, the test API; frames from cfg.mac to `peer`.
struct net_port {
    vu::net_device dev{10000};
    vu::net_config cfg;
    mac peer;
    std::optional<pool_t> pool;
    std::optional<api_t> api;
    /// With net_config::control_queue: the shell's control channel on the controlq served
    /// in the front end, set on the window (MQ needs it, 5.1.3.1).
    std::optional<npa::virtio_net_control> ctl;
    plugin_t plugin;

    net_port(const vu::net_config& c, const mac& to) : cfg(c), peer(to) {
        open_device(dev, c, pool);
        api.emplace(*pool);
        if (c.control_queue) {
            ctl.emplace(dev.control_memory());
            dev.window().set_control(ctl->hook());
        }
    }
    ~net_port() { plugin.detach(); }

    /// Connects (the back end may still be starting) and attaches the plugin.
    void attach(const npa::queue_config& qc = one_pair()) {
        using namespace std::chrono_literals;
        REQUIRE(wait_until(30s, [&] { return static_cast<bool>(dev.connect()); }));
        const npa::status st = plugin.attach(*api, dev.window(), qc);
        INFO(std::string(st.reason()), " / ", dev.last_error());
        REQUIRE(st);
    }

    /// Sends frames seq .. end-1 on queue pair `q` as far as its ring takes them (their
    /// bytes added to `bytes`); the next seq to send.
    std::uint64_t send(std::uint64_t seq, std::uint64_t end, std::uint64_t& bytes, std::uint16_t q = 0) {
        std::array<buffer_t, 32> b{};
        const auto want = static_cast<std::uint32_t>(std::min<std::uint64_t>(b.size(), end - seq));
        const std::uint32_t got = api->alloc_tx(std::span(b.data(), want));
        for (std::uint32_t i = 0; i < got; ++i) {
            build(b[i], peer, cfg.mac, seq + i);
        }
        api->offer(std::span<const buffer_t>(b.data(), got));
        const std::uint16_t acc = plugin.tx_burst(q, std::span(b.data(), got));
        api->not_accepted(std::span<const buffer_t>(b.data() + acc, got - acc));
        api->free(std::span<const buffer_t>(b.data() + acc, got - acc));
        for (std::uint16_t i = 0; i < acc; ++i) {
            bytes += frame_len(seq + i);
        }
        if (acc < got || got < want) {
            (void)plugin.tx_reap(q);
        }
        return seq + acc;
    }
    std::uint64_t send(std::uint64_t seq, std::uint64_t end) {
        std::uint64_t bytes = 0;
        return send(seq, end, bytes);
    }
    /// Every TX buffer of queue pair `q` back from the back end.
    bool tx_drained(std::uint16_t q = 0) {
        using namespace std::chrono_literals;
        return wait_until(10s, [&] {
            (void)plugin.tx_reap(q);
            return plugin.tx_in_flight(q) == 0;
        });
    }
    /// One RX burst on queue pair `q`; fn(buffer) for each frame, then the buffers go back
    /// to the pool.
    template <class Fn>
    std::uint16_t receive(Fn&& fn, std::uint16_t q = 0) {
        std::array<buffer_t, 32> out{};
        const std::uint16_t n = plugin.rx_burst(q, out);
        api->received(std::span<const buffer_t>(out.data(), n));
        for (std::uint16_t i = 0; i < n; ++i) {
            fn(out[i]);
        }
        api->free(std::span<const buffer_t>(out.data(), n));
        return n;
    }
};

} // namespace npa::test::vhost_net
