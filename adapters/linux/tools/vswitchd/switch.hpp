// npa-vswitchd's switch: its ports (one vhost-user back end each, with a PF-style policy)
// and the data path that moves frames between them, top to bottom:
//
//   poll()              for each port, each of its transmit rings that runs (ready and
//                       enabled: a front end may enable fewer pairs than the port has), a
//                       burst of frames:
//     take_frame_in_place()  the front end's next frame (vring.hpp: chain walked and
//                         checked), left where it is when it lies in one segment
//     forward()           the Ethernet header copied out (the front end can rewrite its
//                         memory at any time: every decision is on this snapshot); length,
//                         anti-spoofing (source MAC), VLAN: the ingress policy
//     learn, look up      (VLAN, source MAC) learnt; destination by configured MAC, then
//                         learnt; broadcast and multicast flooded to the VLAN's ports
//     deliver()           egress VLAN check, the destination's receive ring chosen
//                         (rx_queue_for()), give_frame() into it: the snapshot's header,
//                         then the rest of the frame from the sender's memory (one copy, as
//                         a frame in one segment is not gathered first)
//   then, after each burst, the used entries of every ring it touched are published (the
//   sender's and the receivers': a frame is not held while other ports are polled), and
//   the call eventfd written where the front end asked for an interrupt
//   (split_device::need_interrupt()).
//
// Counters are the switch's view, as in Open vSwitch: `rx` is what the switch received
// from a port's front end (its transmitqs), `tx` what it sent to it (its receiveqs). Every
// frame taken from a front end is either forwarded or counted in exactly one rx_* drop;
// every frame forwarded to a port is either delivered (tx_packets) or one tx_* drop there.
// A port's counters add up all its queues; rx_queue/tx_queue split the packets by queue.
//
// A zero-copy port (zc.hpp, npa/linux/zc_port.hpp) has no vhost-user back end: poll_zc()
// takes the buffers its front end gives back, then its frames, each forwarded as above with
// its buffer's index; deliver() to a zero-copy port hands that buffer over when the frame
// came from another zero-copy port (no copy), else copies the frame into a pool buffer.
// Before the daemon sleeps, zc_before_sleep() sets its wake word in every attached port
// region and looks at their rings once more; zc_awake() clears the words (zc.hpp).
#pragma once

#include "counters.hpp"
#include "zc.hpp"

#include <npa/linux/vhost_user/back_end.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/wire.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace npa::vswitch {

using npa::mac_addr;

/// Tuning: frames one port may send per poll (a burst, as DPDK's 32), and the largest MTU a
/// port may configure (a jumbo frame, as most NICs).
inline constexpr int burst = 32;
inline constexpr std::uint32_t max_mtu = 9216;
/// Learnt entries kept at most (a front end sending from random MACs cannot grow it past).
inline constexpr std::size_t max_learnt = 65536;
/// Queue pairs a port may have: virtio-net allows 0x8000 (5.1.4) and the vhost-user
/// protocol 128 (an 8-bit ring index); one thread polls them all here, so more pairs than
/// a front end has cores to fill them buy nothing. 16 keeps a port's 32 rings in one 32-bit
/// word (the daemon's per-ring bits) and the sleep's poll set small.
inline constexpr std::uint32_t max_queues = 16;

struct port_config {
    std::string name;
    mac_addr mac{};                    ///< zero: none configured (any source MAC, learnt)
    std::vector<std::uint16_t> vlans;  ///< tagged VLANs allowed; empty: untagged only
    std::uint32_t mtu = 1500;
    std::uint32_t queues = 1;          ///< queue pairs (1..max_queues); MQ offered when > 1
    std::string client;                ///< client mode: the front end's socket; empty: serve <name>.sock
    bool zero_copy = false;            ///< a zero-copy port (zc.hpp) instead of vhost-user
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
    /// Per queue pair q: the walks of transmitq q (rx_io) and receiveq q (tx_io), and the
    /// frames taken from transmitq q (rx_queue) and delivered to receiveq q (tx_queue).
    std::vector<vhost_user::io_stats> rx_io, tx_io;
    std::vector<std::uint64_t> rx_queue, tx_queue;
    std::uint32_t rx_dirty = 0; ///< receiveqs with used entries written, not published (bit q)
    /// The receiveqs that run (ready and enabled): the ones deliver() chooses from, looked
    /// at again (refresh_running()) when the back end's ring_generation() moved. Between two
    /// looks a ring can only have stopped or broken, which deliver() sees on the ring.
    std::array<std::uint8_t, max_queues> running_rx{};
    std::uint32_t nrunning_rx = 0;
    std::uint64_t running_seen = ~0ull; ///< the ring_generation() running_rx was taken at
    /// A zero-copy port's connection (null for a vhost-user port, whose `be` is the port).
    std::unique_ptr<zc_link> zc;

    port(port_config pc, vhost_user::back_end::log_fn log)
        : cfg(std::move(pc)), mac(mac_key(cfg.mac)), be(cfg.queues, std::move(log)), rx_io(cfg.queues),
          tx_io(cfg.queues), rx_queue(cfg.queues), tx_queue(cfg.queues), seen_tx_errors_(cfg.queues),
          seen_rx_errors_(cfg.queues) {
        policy.default_mac = cfg.mac;
        policy.port_vlan = 0;
        policy.allowed_vlans = cfg.vlans;
        policy.max_mtu = cfg.mtu;
        if (cfg.zero_copy) {
            zc = std::make_unique<zc_link>();
        }
    }
    [[nodiscard]] std::uint32_t queues() const noexcept { return cfg.queues; }
    [[nodiscard]] vhost_user::vring& receiveq(std::uint32_t q) noexcept { return be.rings()[2 * q]; }
    [[nodiscard]] vhost_user::vring& transmitq(std::uint32_t q) noexcept { return be.rings()[2 * q + 1]; }
    /// Queue pairs whose two rings both run.
    [[nodiscard]] std::uint32_t pairs_running() noexcept {
        std::uint32_t k = 0;
        for (std::uint32_t q = 0; q < queues(); ++q) {
            k += transmitq(q).ready() && receiveq(q).ready() ? 1 : 0;
        }
        return k;
    }
    void refresh_running() noexcept {
        running_seen = be.ring_generation();
        nrunning_rx = 0;
        for (std::uint32_t q = 0; q < queues(); ++q) {
            if (receiveq(q).ready()) {
                running_rx[nrunning_rx++] = static_cast<std::uint8_t>(q);
            }
        }
    }
    /// The receiveq a frame that came in on the sender's queue `in_q` goes to: the
    /// in_q-th running one, modulo how many run, as testpmd's io forwarding pairs queues.
    /// Why not a hash of the MACs: the sender already chose a queue per flow (Linux's
    /// virtio_net by XPS or the flow's hash, a DPDK application by the lcore that owns the
    /// flow), so keeping that choice keeps a flow on one receiveq, in order, without a
    /// per-frame hash; and two MACs talking over several queues still use them all.
    [[nodiscard]] std::uint32_t rx_queue_for(std::uint32_t in_q) const noexcept {
        // a division a frame only when the sender has more queues running than this port
        return running_rx[in_q < nrunning_rx ? in_q : in_q % nrunning_rx];
    }
    /// policy.check_mac() for a port without allowed_macs (the switch sets none): any source
    /// when no MAC is configured, else only the configured one.
    [[nodiscard]] bool source_ok(std::uint64_t src) const noexcept { return mac == 0 || src == mac; }
    [[nodiscard]] bool vlan_ok(std::uint16_t v) const {
        // An empty list means untagged only here (port_policy reads it as "any").
        return v == 0 || (!cfg.vlans.empty() && policy.check_vlan(v) == nullptr);
    }
    /// What the front end's rings refused, folded into the counters (split_device counts
    /// from 0 again after each reset: only the growth since the last look is added), every
    /// queue's into the port's.
    void fold_ring_errors() noexcept {
        if (zc) { // a zero-copy port counts its errors as they happen
            return;
        }
        const auto grow = [](std::uint64_t now, std::uint64_t& seen) {
            const std::uint64_t d = now >= seen ? now - seen : now;
            seen = now;
            return d;
        };
        vhost_user::io_stats in, out;
        for (std::uint32_t q = 0; q < queues(); ++q) {
            c.rx_bad_chain += grow(transmitq(q).dev.errors(), seen_tx_errors_[q]);
            c.tx_bad_chain += grow(receiveq(q).dev.errors(), seen_rx_errors_[q]);
            in.short_chain += rx_io[q].short_chain;
            in.broken += rx_io[q].broken;
            out.rx_no_buffer += tx_io[q].rx_no_buffer;
            out.rx_too_big += tx_io[q].rx_too_big;
            out.broken += tx_io[q].broken;
            in.indirect += rx_io[q].indirect;
            out.indirect += tx_io[q].indirect;
        }
        c.rx_short_chain = in.short_chain;
        c.rx_ring_broken = in.broken;
        c.tx_no_buffer = out.rx_no_buffer;
        c.tx_too_big = out.rx_too_big;
        c.tx_ring_broken = out.broken;
        c.protocol_errors = be.protocol_errors();
        c.rx_indirect = in.indirect;
        c.tx_indirect = out.indirect;
    }

private:
    std::vector<std::uint64_t> seen_tx_errors_, seen_rx_errors_;
};

class engine {
public:
    std::vector<std::unique_ptr<port>> ports;
    /// The pool zero-copy ports share (made when the first one is configured).
    std::unique_ptr<zc_pool> zpool;

    /// One pass over every port's running transmitqs: returns the frames taken.
    int poll() noexcept {
        refresh_running();
        int work = 0;
        const std::size_t np = ports.size();
        for (std::size_t i = 0; i < np; ++i) {
            port& p = *ports[i];
            if (NPA_UNLIKELY(p.zc != nullptr)) {
                work += p.zc->attached() ? poll_zc(i) : 0;
                continue;
            }
            const std::uint32_t nq = p.queues();
            for (std::uint32_t q = 0; q < nq; ++q) {
                // an empty ring costs one load here (virtq_device::pending(); pop() would
                // load it again, and count an impossible index, when something is there)
                vhost_user::vring& t = p.transmitq(q);
                if (t.ready() && t.dev.pending()) {
                    work += poll_queue(i, q);
                }
            }
        }
        return work; // each burst published what it delivered
    }

    /// Walks transmitq q of port i until nothing is available on it (its front end is about
    /// to stop the ring: every frame it made available is forwarded or counted), at most a
    /// ring's worth: a front end that goes on filling it cannot hold the loop.
    void drain_queue(std::size_t i, std::uint32_t q) noexcept {
        refresh_running(); // called from the control path: rings may have changed since
        const std::uint32_t most = ports[i]->transmitq(q).num;
        for (std::uint32_t taken = 0; taken < most;) {
            const int n = poll_queue(i, q);
            if (n == 0) {
                break;
            }
            taken += static_cast<std::uint32_t>(n);
        }
    }
    /// The control path of zero-copy port i: a new front end attached (one at a time: a
    /// second is refused), or the attached one gone, its frames forwarded and its buffers
    /// back in the pool.
    void service_zc(std::size_t i, const std::function<void(const std::string&)>& log) {
        port& p = *ports[i];
        zc_link& z = *p.zc;
        if (z.attached() && z.peer_gone()) {
            detach_zc(i);
            log("front end detached; " + std::to_string(p.c.zc_reclaimed) + " buffers reclaimed so far");
        }
        const auto refused = [&](const char* why) {
            ++p.c.protocol_errors;
            log(std::string("front end refused: ") + why);
        };
        for (int fd; (fd = z.next_front_end(refused)) >= 0;) {
            if (status st = attach_zc(i, fd); !st) {
                ++p.c.protocol_errors;
                log(std::string("front end not attached: ") + st.reason());
                continue;
            }
            log("front end attached");
        }
    }
    /// Attaches the front end that said hello on `fd` to zero-copy port i: the regions
    /// handed over, its first buffers lent.
    status attach_zc(std::size_t i, int fd) noexcept {
        port& p = *ports[i];
        if (status st = p.zc->attach(fd, *zpool); !st) {
            return st;
        }
        ++p.c.connections;
        p.nrunning_rx = 1; // its one receive ring
        p.running_rx[0] = 0;
        p.zc->top_up(*zpool, static_cast<std::uint8_t>(i));
        return status::success();
    }
    /// A zero-copy port's front end went away: what it published on its transmit ring is
    /// forwarded (it sent it), then every buffer it held goes back to the pool.
    void detach_zc(std::size_t i) noexcept {
        port& p = *ports[i];
        zc_link& z = *p.zc;
        for (std::uint32_t taken = 0; taken < zc::ring_capacity;) {
            const int n = poll_zc(i, /*lend=*/false);
            if (n == 0) {
                break;
            }
            taken += static_cast<std::uint32_t>(n);
        }
        p.nrunning_rx = 0;
        z.close_conn();
        p.c.zc_reclaimed += zpool->reclaim(static_cast<std::uint8_t>(i));
        z.owned = 0;
        forget(i);
    }

    /// Before the daemon sleeps: its wake word `w` (zc::daemon_sleeps and its count of
    /// sleeps) in every attached zero-copy port's region, one seq_cst fence, then the last
    /// look at each (zc_link::quiet()). False when a front end published something
    /// meanwhile: the daemon must not sleep. zc_awake() afterwards in either case.
    [[nodiscard]] bool zc_before_sleep(std::uint32_t w) noexcept {
        for (auto& p : ports) {
            if (p->zc && p->zc->attached()) {
                p->zc->sleep_word(w);
            }
        }
        // rule 7 (docs/design.md): every word before any ring is looked at; a front end
        // publishes, fences, then reads the word
        std::atomic_thread_fence(std::memory_order_seq_cst);
        bool quiet = true;
        for (auto& p : ports) {
            if (p->zc && p->zc->attached()) {
                quiet = p->zc->quiet(p->c) && quiet;
            }
        }
        return quiet;
    }
    /// The daemon is awake: front ends need not kick.
    void zc_awake() noexcept {
        for (auto& p : ports) {
            if (p->zc && p->zc->attached()) {
                p->zc->sleep_word(0);
            }
        }
    }

    /// Forgets what was learnt on port i (its front end went away).
    void forget(std::size_t i) {
        for (auto it = learnt_.begin(); it != learnt_.end();) {
            it = it->second == i ? learnt_.erase(it) : std::next(it);
        }
    }

private:
    // Which receiveqs run changes only on the control path (SET_VRING_ENABLE, GET_VRING_BASE,
    // a disconnect), never during a pass: one compare a port a pass, not a look a frame.
    void refresh_running() noexcept {
        for (auto& p : ports) {
            if (!p->zc && p->running_seen != p->be.ring_generation()) {
                p->refresh_running();
            }
        }
    }
    /// Publishes the used entries of every receiveq that got frames since the last call.
    void publish_dirty() noexcept {
        for (auto& p : ports) {
            if (p->zc) {
                p->zc->flush(*zpool, p->c, p->tx_queue[0]);
                continue;
            }
            for (std::uint32_t d = p->rx_dirty; d != 0; d &= d - 1) {
                publish(p->receiveq(static_cast<std::uint32_t>(__builtin_ctz(d))));
            }
            p->rx_dirty = 0;
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

    int poll_queue(std::size_t i, std::uint32_t qi) noexcept {
        port& p = *ports[i];
        vhost_user::vring& q = p.transmitq(qi);
        if (!q.ready() || !q.dev.pending()) { // poll() looked already; drain_queue() did not
            return 0;
        }
        int n = 0;
        bool more = true;
        const std::size_t hdr_len = p.be.hdr_len();
        vhost_user::io_stats& io = p.rx_io[qi];
        // 1. take the burst, every chain walked and checked; a frame left in place is held and
        //    its first bytes prefetched, so the misses on the front end's lines overlap rather
        //    than follow one another. A gathered frame goes at once, after the held ones (the
        //    next gather reuses buf_; the order of a port's frames is kept).
        std::array<vhost_user::tx_frame, burst> held;
        int nheld = 0;
        for (int k = 0; k < burst && more; ++k) {
            const vhost_user::tx_frame f = vhost_user::take_frame_in_place(q, p.be.memory(), hdr_len, buf_, io, more);
            n += more ? 1 : 0;
            if (f.len == 0) {
                continue;
            }
            if (f.data == buf_.data()) {
                forward_held(i, qi, held, nheld);
                forward(i, qi, f);
                continue;
            }
            __builtin_prefetch(f.data);
            held[static_cast<std::size_t>(nheld++)] = f;
        }
        // 2. forward them; the used entries written in step 1 are published after this, so
        //    the front end has not had the buffers back yet
        forward_held(i, qi, held, nheld);
        if (n != 0) {
            publish(q);
            p.fold_ring_errors();
            // 3. what the burst delivered goes to its receivers now, not after the other
            //    ports' bursts: a frame waits for its own burst, not for a whole pass
            publish_dirty();
        }
        return n;
    }

    void forward_held(std::size_t in, std::uint32_t in_q, std::span<const vhost_user::tx_frame> held,
                      int& nheld) noexcept {
        for (int k = 0; k < nheld; ++k) {
            forward(in, in_q, held[static_cast<std::size_t>(k)]);
        }
        nheld = 0;
    }

    /// Forwards frame `f` that came in on port `in`'s queue `in_q`; `zbuf` is the pool
    /// buffer it lies in when it came from a zero-copy port (the switch holds it: deliver()
    /// may hand it over; the caller frees it if not).
    NPA_ALWAYS_INLINE void forward(std::size_t in, std::uint32_t in_q, const vhost_user::tx_frame& f,
                                   std::uint32_t zbuf = zc_pool::none) noexcept {
        port& p = *ports[in];
        const std::size_t len = f.len;
        ++p.c.rx_packets;
        ++p.rx_queue[in_q];
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
                if (o != in && ports[o]->nrunning_rx != 0 && ports[o]->vlan_ok(h.vlan)) {
                    deliver(o, in_q, h.vlan, frame); // a copy each: no buffer is handed over
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
        deliver(out, in_q, h.vlan, frame, zbuf);
    }

    [[nodiscard]] NPA_ALWAYS_INLINE std::size_t lookup(std::uint16_t vlan, std::uint64_t dst) const noexcept {
        for (std::size_t o = 0; o < ports.size(); ++o) {
            if (ports[o]->mac == dst && dst != 0) { // 0: no MAC configured
                return o;
            }
        }
        const auto it = learnt_.find(key(vlan, dst));
        return it == learnt_.end() ? ports.size() : it->second;
    }

    NPA_ALWAYS_INLINE void deliver(std::size_t out, std::uint32_t in_q, std::uint16_t vlan,
                                   const vhost_user::frame_parts& frame, std::uint32_t zbuf = zc_pool::none) noexcept {
        port& d = *ports[out];
        if (!d.vlan_ok(vlan)) {
            ++d.c.tx_vlan;
            return;
        }
        if (NPA_UNLIKELY(d.zc != nullptr)) {
            d.zc->stage_frame(*zpool, static_cast<std::uint8_t>(out), d.c, d.tx_queue[0], frame, zbuf);
            return;
        }
        if (d.nrunning_rx == 0) {
            ++d.c.tx_down;
            return;
        }
        const std::uint32_t q = d.rx_queue_for(in_q);
        vhost_user::vring& r = d.receiveq(q);
        if (!r.ready()) { // broken earlier in this pass (an impossible index)
            ++d.c.tx_down;
            return;
        }
        d.rx_dirty |= 1u << q; // refused chains may have been given back, too
        if (vhost_user::give_frame(r, d.be.memory(), d.be.hdr_len(), d.be.has(vhost_user::feature::net_mrg_rxbuf),
                                   frame, d.tx_io[q])) {
            ++d.c.tx_packets;
            ++d.tx_queue[q];
            d.c.tx_bytes += frame.size();
        } else {
            d.fold_ring_errors(); // the drop's cause, counted now
        }
    }

    // ---- zero-copy ports ------------------------------------------------------------------

    /// One pass over zero-copy port i: the buffers its front end gave back, a burst of its
    /// frames (each index checked against the owner table before the switch reads a byte),
    /// then its lend ring topped up. Returns the descriptors taken. Out of line, as the
    /// zc_link calls it makes (zc.hpp says why).
    [[gnu::noinline]] int poll_zc(std::size_t i, bool lend = true) noexcept {
        port& p = *ports[i];
        zc_link& z = *p.zc;
        zc_pool& zp = *zpool;
        const auto me = static_cast<std::uint8_t>(i);
        int n = static_cast<int>(z.take_back(zp, me, p.c));
        // frames: the buffer is the switch's while the frame is forwarded
        std::array<shm::buf_desc, burst> d;
        const std::uint32_t got = z.tx->dequeue_burst(std::span<shm::buf_desc>(d));
        for (std::uint32_t j = 0; j < got; ++j) {
            const std::uint32_t b = d[j].buf;
            const std::uint32_t len = d[j].len;
            if (b >= zc::pool_buffers || zp.owner(b) != me) {
                ++p.c.zc_bad_buffer;
                continue;
            }
            zp.set_owner(b, zc_pool::in_switch);
            --z.owned;
            if (len > zc::buf_size) {
                ++p.c.rx_packets;
                ++p.rx_queue[0];
                ++p.c.rx_oversize;
            } else {
                forward(i, 0, vhost_user::tx_frame{zp.data(b), len}, b);
            }
            if (zp.owner(b) == zc_pool::in_switch) { // not handed over
                zp.put(b);
            }
        }
        n += static_cast<int>(got);
        if (lend) { // empty buffers for its next frames
            z.top_up(zp, me);
        }
        if (got != 0) { // what the burst delivered, to its receivers now (as poll_queue())
            publish_dirty();
        }
        return n;
    }

    std::array<std::byte, 65536 + 64> buf_{};
    std::unordered_map<std::uint64_t, std::size_t> learnt_;
};

} // namespace npa::vswitch
