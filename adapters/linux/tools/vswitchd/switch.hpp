// npa-vswitchd's switch: its ports (one vhost-user back end each, with a PF-style policy)
// and the data path that moves frames between them, top to bottom:
//
//   poll()              for each port whose transmit ring runs, a burst of frames:
//     take_frame_in_place()  the front end's next frame (vring.hpp: chain walked and
//                         checked), left where it is when it lies in one segment
//     forward()           the Ethernet header copied out (the front end can rewrite its
//                         memory at any time: every decision is on this snapshot); length,
//                         anti-spoofing (source MAC), VLAN: the ingress policy
//     learn, look up      (VLAN, source MAC) learnt; destination by configured MAC, then
//                         learnt; broadcast and multicast flooded to the VLAN's ports
//     deliver()           egress VLAN check, give_frame() into the destination's receive
//                         ring: the snapshot's header, then the rest of the frame from the
//                         sender's memory (one copy, as a frame in one segment is not
//                         gathered first)
//   then the used entries of every ring touched are published, and the call eventfd
//   written where the front end asked for an interrupt (split_device::need_interrupt()).
//
// Counters are the switch's view, as in Open vSwitch: `rx` is what the switch received
// from a port's front end (its transmitq), `tx` what it sent to it (its receiveq). Every
// frame taken from a front end is either forwarded or counted in exactly one rx_* drop;
// every frame forwarded to a port is either delivered (tx_packets) or one tx_* drop there.
#pragma once

#include <npa/linux/vhost_user/back_end.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/wire.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace npa::vswitch {

using npa::mac_addr;

/// Tuning: frames one port may send per poll (a burst, as DPDK's 32), and the largest MTU a
/// port may configure (a jumbo frame, as most NICs).
inline constexpr int burst = 32;
inline constexpr std::uint32_t max_mtu = 9216;
/// Learnt entries kept at most (a front end sending from random MACs cannot grow it past).
inline constexpr std::size_t max_learnt = 65536;

struct port_config {
    std::string name;
    mac_addr mac{};                    ///< zero: none configured (any source MAC, learnt)
    std::vector<std::uint16_t> vlans;  ///< tagged VLANs allowed; empty: untagged only
    std::uint32_t mtu = 1500;
    std::string client;                ///< client mode: the front end's socket; empty: serve <name>.sock
};

/// One counter per cause; the names are what the run directory's JSON shows.
#define NPA_VSWITCH_COUNTERS(X)                                                               \
    X(rx_packets) X(rx_bytes) X(tx_packets) X(tx_bytes)                                      \
    X(rx_spoofed) X(rx_vlan) X(rx_runt) X(rx_oversize) X(rx_unknown_dst) X(rx_hairpin)      \
    X(rx_bad_chain) X(rx_short_chain) X(rx_ring_broken)                                      \
    X(tx_vlan) X(tx_down) X(tx_bad_chain) X(tx_no_buffer) X(tx_too_big) X(tx_ring_broken)                    \
    X(protocol_errors) X(connections) X(rx_indirect) X(tx_indirect)

struct counters {
#define NPA_X(n) std::uint64_t n = 0;
    NPA_VSWITCH_COUNTERS(NPA_X)
#undef NPA_X
};

/// A MAC address as a 48-bit number (0: none), so the per-frame compares are integer ones
/// (its six bytes in host order: only equality and hashing use it).
[[nodiscard]] inline std::uint64_t mac_key(const mac_addr& m) noexcept {
    std::uint64_t k = 0;
    std::memcpy(&k, m.data(), 6);
    return k;
}

struct port {
    port_config cfg;
    std::uint64_t mac = 0; ///< cfg.mac as mac_key()
    sim::port_policy policy;
    vhost_user::back_end be;
    counters c;
    vhost_user::io_stats rx_io, tx_io;  // the transmitq's walks, the receiveq's walks
    bool rx_dirty = false;              // used entries written on the receiveq, not published

    port(port_config pc, vhost_user::back_end::log_fn log)
        : cfg(std::move(pc)), mac(mac_key(cfg.mac)), be(1, std::move(log)) {
        policy.default_mac = cfg.mac;
        policy.port_vlan = 0;
        policy.allowed_vlans = cfg.vlans;
        policy.max_mtu = cfg.mtu;
    }
    [[nodiscard]] vhost_user::vring& receiveq() noexcept { return be.rings()[0]; }
    [[nodiscard]] vhost_user::vring& transmitq() noexcept { return be.rings()[1]; }
    /// policy.check_mac() for a port without allowed_macs (the switch sets none): any source
    /// when no MAC is configured, else only the configured one.
    [[nodiscard]] bool source_ok(std::uint64_t src) const noexcept { return mac == 0 || src == mac; }
    [[nodiscard]] bool vlan_ok(std::uint16_t v) const {
        // An empty list means untagged only here (port_policy reads it as "any").
        return v == 0 || (!cfg.vlans.empty() && policy.check_vlan(v) == nullptr);
    }
    /// What the front end's rings refused, folded into the counters (split_device counts
    /// from 0 again after each reset: only the growth since the last look is added).
    void fold_ring_errors() noexcept {
        const auto grow = [](std::uint64_t now, std::uint64_t& seen) {
            const std::uint64_t d = now >= seen ? now - seen : now;
            seen = now;
            return d;
        };
        c.rx_bad_chain += grow(transmitq().dev.errors(), seen_tx_errors_);
        c.tx_bad_chain += grow(receiveq().dev.errors(), seen_rx_errors_);
        c.rx_short_chain = rx_io.short_chain;
        c.rx_ring_broken = rx_io.broken;
        c.tx_no_buffer = tx_io.rx_no_buffer;
        c.tx_too_big = tx_io.rx_too_big;
        c.tx_ring_broken = tx_io.broken;
        c.protocol_errors = be.protocol_errors();
        c.rx_indirect = rx_io.indirect;
        c.tx_indirect = tx_io.indirect;
    }

private:
    std::uint64_t seen_tx_errors_ = 0, seen_rx_errors_ = 0;
};

class engine {
public:
    std::vector<std::unique_ptr<port>> ports;

    /// One pass over every port: returns the frames taken.
    int poll() noexcept {
        int work = 0;
        const std::size_t np = ports.size();
        for (std::size_t i = 0; i < np; ++i) {
            work += poll_port(i);
        }
        if (work == 0) { // nothing taken, nothing delivered
            return 0;
        }
        publish_dirty();
        return work;
    }

    /// Walks port i's transmitq until nothing is available on it (its front end is about
    /// to stop the ring: every frame it made available is forwarded or counted), at most a
    /// ring's worth: a front end that goes on filling it cannot hold the loop.
    void drain_port(std::size_t i) noexcept {
        const std::uint32_t most = ports[i]->transmitq().num;
        for (std::uint32_t taken = 0; taken < most;) {
            const int n = poll_port(i);
            if (n == 0) {
                break;
            }
            taken += static_cast<std::uint32_t>(n);
        }
        publish_dirty();
    }

    /// Forgets what was learnt on port i (its front end went away).
    void forget(std::size_t i) {
        for (auto it = learnt_.begin(); it != learnt_.end();) {
            it = it->second == i ? learnt_.erase(it) : std::next(it);
        }
    }

private:
    /// Publishes the used entries of every receiveq that got frames since the last call.
    void publish_dirty() noexcept {
        for (auto& p : ports) {
            if (p->rx_dirty) {
                p->rx_dirty = false;
                publish(p->receiveq());
            }
        }
    }
    static void publish(vhost_user::vring& r) noexcept {
        r.dev.publish_used();
        if (r.dev.need_interrupt()) {
            vhost_user::back_end::signal(r);
        }
    }
    static std::uint64_t key(std::uint16_t vlan, std::uint64_t mac) noexcept {
        return std::uint64_t{vlan} << 48 | mac;
    }

    int poll_port(std::size_t i) noexcept {
        port& p = *ports[i];
        vhost_user::vring& q = p.transmitq();
        // an empty ring costs one load (virtq_device::pending(); pop() would load it again,
        // and count an impossible index, when something is there)
        if (!q.ready() || !q.dev.pending()) {
            return 0;
        }
        int n = 0;
        bool more = true;
        const std::size_t hdr_len = p.be.hdr_len();
        // 1. take the burst, every chain walked and checked; a frame left in place is held and
        //    its first bytes prefetched, so the misses on the front end's lines overlap rather
        //    than follow one another. A gathered frame goes at once, after the held ones (the
        //    next gather reuses buf_; the order of a port's frames is kept).
        std::array<vhost_user::tx_frame, burst> held;
        int nheld = 0;
        for (int k = 0; k < burst && more; ++k) {
            const vhost_user::tx_frame f = vhost_user::take_frame_in_place(q, p.be.memory(), hdr_len, buf_, p.rx_io, more);
            n += more ? 1 : 0;
            if (f.len == 0) {
                continue;
            }
            if (f.data == buf_.data()) {
                forward_held(i, held, nheld);
                forward(i, f);
                continue;
            }
            __builtin_prefetch(f.data);
            held[static_cast<std::size_t>(nheld++)] = f;
        }
        // 2. forward them; the used entries written in step 1 are published after this, so
        //    the front end has not had the buffers back yet
        forward_held(i, held, nheld);
        if (n != 0) {
            publish(q);
            p.fold_ring_errors();
        }
        return n;
    }

    void forward_held(std::size_t in, std::span<const vhost_user::tx_frame> held, int& nheld) noexcept {
        for (int k = 0; k < nheld; ++k) {
            forward(in, held[static_cast<std::size_t>(k)]);
        }
        nheld = 0;
    }

    void forward(std::size_t in, const vhost_user::tx_frame& f) noexcept {
        port& p = *ports[in];
        const std::size_t len = f.len;
        ++p.c.rx_packets;
        p.c.rx_bytes += len;
        // The header every decision reads, copied out once (f.data may be the front end's).
        std::array<std::byte, 18> head; // destination, source, 802.1Q tag, type
        const std::size_t hn = std::min(len, head.size());
        if (hn == head.size()) {
            std::memcpy(head.data(), f.data, head.size()); // a fixed size: a few moves
        } else {
            std::memcpy(head.data(), f.data, hn);
        }
        sim::eth::header h;
        if (!sim::eth::parse({head.data(), hn}, h)) {
            ++p.c.rx_runt;
            return;
        }
        // 1. the ingress policy: length, source MAC, VLAN
        if (len > p.cfg.mtu + h.payload_off) {
            ++p.c.rx_oversize;
            return;
        }
        const std::uint64_t src = mac_key(h.src), dst = mac_key(h.dst);
        if (sim::eth::is_multicast(h.src) || !p.source_ok(src)) {
            ++p.c.rx_spoofed;
            return;
        }
        if (!p.vlan_ok(h.vlan)) {
            ++p.c.rx_vlan;
            return;
        }
        // 2. learn the source (a configured MAC needs no learning)
        if (p.mac == 0 && learnt_.size() < max_learnt) {
            learnt_[key(h.vlan, src)] = in;
        }
        // len <= mtu + header here, so a gathered frame is whole in buf_
        const vhost_user::frame_parts frame{{head.data(), hn}, {f.data + hn, len - hn}};
        // 3. flood, or one destination
        if (sim::eth::is_multicast(h.dst)) {
            for (std::size_t o = 0; o < ports.size(); ++o) {
                if (o != in && ports[o]->receiveq().ready() && ports[o]->vlan_ok(h.vlan)) {
                    deliver(o, h.vlan, frame);
                }
            }
            return;
        }
        const std::size_t out = lookup(h.vlan, dst);
        if (out == ports.size()) {
            ++p.c.rx_unknown_dst;
            return;
        }
        if (out == in) {
            ++p.c.rx_hairpin;
            return;
        }
        deliver(out, h.vlan, frame);
    }

    [[nodiscard]] std::size_t lookup(std::uint16_t vlan, std::uint64_t dst) const noexcept {
        for (std::size_t o = 0; o < ports.size(); ++o) {
            if (ports[o]->mac == dst && dst != 0) { // 0: no MAC configured
                return o;
            }
        }
        const auto it = learnt_.find(key(vlan, dst));
        return it == learnt_.end() ? ports.size() : it->second;
    }

    void deliver(std::size_t out, std::uint16_t vlan, const vhost_user::frame_parts& frame) noexcept {
        port& d = *ports[out];
        if (!d.vlan_ok(vlan)) {
            ++d.c.tx_vlan;
            return;
        }
        vhost_user::vring& r = d.receiveq();
        if (!r.ready()) {
            ++d.c.tx_down;
            return;
        }
        if (vhost_user::give_frame(r, d.be.memory(), d.be.hdr_len(), d.be.has(vhost_user::feature::net_mrg_rxbuf),
                                   frame, d.tx_io)) {
            ++d.c.tx_packets;
            d.c.tx_bytes += frame.size();
            d.rx_dirty = true;
        } else {
            d.rx_dirty = true;  // refused chains may have been given back
            d.fold_ring_errors(); // the drop's cause, counted now
        }
    }

    std::array<std::byte, 65536 + 64> buf_{};
    std::unordered_map<std::uint64_t, std::size_t> learnt_;
};

} // namespace npa::vswitch
