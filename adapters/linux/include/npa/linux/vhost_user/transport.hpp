// npa/linux/vhost_user/transport.hpp: the virtio-net plugin's transport over vhost-user:
// the device is a back end in another process (DPDK's net_vhost, QEMU's back ends), reached
// through front_end.hpp's session and one memfd both processes map.
//
//   memory       one shared_memory: the ring area first, then the buffer pool. Every
//                address the plugin writes (ring addresses, descriptor addresses) is the
//                front end's virtual address inside the memfd, which the memory table
//                announces as both the region's user address and its guest address; so
//                pool_memory()'s iova_base is the mapping's address and the back end
//                translates a descriptor with one region lookup.
//   features     device_features(): GET_FEATURES, narrowed to what this transport carries
//                (no MTU or MAC config, no IOTLB for ACCESS_PLATFORM; RING_PACKED only
//                when the caller set packed_ring, as DPDK's virtio_user takes packed rings
//                only with packed_vq=1), plus the controlq's features when it is served
//                here (controlq below), and to the caller's mask;
//                set_driver_features(): negotiate() (SET_FEATURES ... SET_MEM_TABLE, with
//                the MQ protocol feature when VIRTIO_NET_F_MQ was taken); a refusal leaves
//                FEATURES_OK unset, as a device refusing features does.
//   queue pairs  VIRTIO_NET_F_MQ is carried only with the controlq served here (MQ needs
//                CTRL_VQ, 5.1.3.1: the pairs past the first run once VQ_PAIRS_SET names
//                them, which no vhost-user back end receives) and with the MQ protocol
//                feature, which is what lets the back end say how many pairs it has:
//                device_features() then asks
//                GET_QUEUE_NUM, unless the caller's features_mask takes MQ away
//                (vhost-user.rst allows it before SET_FEATURES, as QEMU does; its answer is
//                read as queue pairs, as QEMU's net front end and DPDK's lib/vhost do),
//                and the configuration space's max_virtqueue_pairs says that number, clamped
//                to max_pairs (the plugin's limit; the clamp is stated in note()). Without
//                net_config::control_queue, or with a back end that offers MQ without the
//                protocol feature or answers 0 pairs, the device is shown without MQ (one
//                pair), and note() says why; a driver that takes MQ without CTRL_VQ is
//                refused FEATURES_OK, as a device may (2.2.1). The plugin then refuses
//                more pairs than the configuration space says before any ring is set up.
//                DPDK 22.11's lib/vhost answers GET_QUEUE_NUM with its own limit (128
//                pairs), not net_vhost's queues= argument: a front end setting up more
//                pairs than that port polls cannot be told so by the protocol.
//   status       kept here (vhost-user carries no status byte without the STATUS protocol
//                feature); it reads all ones once the back end is gone (socket closed).
//                Writing 0 resets: GET_VRING_BASE on every ring handed over, which the
//                back end answers only once it stopped the ring (vhost-user.rst: "stop
//                ring"), so after a reset nothing more is written to ring or buffer. The
//                answer is kept (ring_base(q)), read the same way as BASE.
//   queues       queue_enable(): set_ring() (NUM, BASE, ADDR, KICK, CALL, ENABLE) for
//                receiveq 2p and transmitq 2p+1 of each pair p the plugin sets up. BASE
//                is 0 for a split ring; for a packed ring it carries the wrap counter in
//                bit 15 (ring_base.hpp), so a fresh ring is 1 << 15 (position 0, lap 1),
//                as DPDK's virtio_user sends; ADDR's desc / avail / used are then the
//                descriptor ring and the driver's and the device's event areas. DPDK's
//                net_vhost starts polling a pair once both of its rings are enabled
//                (SET_VRING_ENABLE); with the controlq served here and MQ taken, pairs
//                past the first are handed over disabled until VQ_PAIRS_SET (below).
//   controlq     with net_config::control_queue (DPDK's virtio_user cq=1; QEMU's net front
//                end always): VIRTIO_NET_F_CTRL_VQ with CTRL_RX, CTRL_VLAN and CTRL_MAC_ADDR
//                offered to the plugin and served here (controlq.hpp), never sent to the
//                back end (its SET_FEATURES leaves them out), as those two front ends do.
//                VQ_PAIRS_SET becomes SET_VRING_ENABLE: with MQ and the controlq, the rings
//                of pair 0 are enabled when handed over, the others only once a VQ_PAIRS_SET
//                names them (5.1.6.5.5: the device starts with one pair), and disabled again
//                when a later one names fewer.
//   notify       an 8-byte write of 1 to the ring's kick eventfd (nothing when polled); on
//                the controlq, the commands waiting are served at once.
//   interrupts   the ring's call eventfd, which latches by itself (a counter): irq_mask
//                keeps the mask per pair, wait() polls the pair's two call descriptors and clears
//                them. With `polled` the back end gets "no descriptor" for both and the
//                caller polls the rings.
#pragma once

#include <npa/buffer/memory.hpp>
#include <npa/linux/vhost_user/controlq.hpp>
#include <npa/linux/vhost_user/front_end.hpp>
#include <npa/linux/vhost_user/ring_base.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/virtio/split_ring.hpp>
#include <npa/virtio/transport.hpp>

#include <poll.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace npa::vhost_user {

struct net_config {
    std::string socket;                  ///< the back end's listening socket
    std::size_t ring_bytes = 64 * 1024;  ///< ring area (the plugin's rings)
    std::size_t pool_bytes = 8u << 20;   ///< behind it: the buffer pool's block
    bool polled = false;                 ///< no kick/call eventfds: both sides poll
    /// Offer VIRTIO_F_RING_PACKED to the plugin when the back end has it (DPDK's
    /// packed_vq=1); off: split rings, whatever the back end offers.
    bool packed_ring = false;
    std::uint64_t features_mask = ~0ull; ///< device features the plugin may see
    std::array<std::uint8_t, 6> mac{0x02, 0, 0, 0, 0x76, 0x01};
    /// Offer a control virtqueue served in this front end (see the file comment).
    bool control_queue = false;
};

class net_device {
public:
    /// Feature bits this transport carries from the back end to the plugin: everything else
    /// the back end offers is either vhost-user's own (PROTOCOL_FEATURES, LOG_ALL,
    /// ANY_LAYOUT), served here instead (the CTRL_* bits, `emulated`), or needs something
    /// not built here (MTU/MAC/STATUS: a config space the back end does not serve;
    /// ACCESS_PLATFORM: IOTLB messages). MQ only with the MQ protocol feature, RING_PACKED
    /// only with net_config::packed_ring (see the file comment).
    static constexpr std::uint64_t carried =
        virtio::feature::VERSION_1 | virtio::feature::IN_ORDER | virtio::feature::EVENT_IDX |
        virtio::feature::RING_PACKED | virtio_net::feature::MRG_RXBUF | virtio_net::feature::MQ |
        virtio_net::feature::CSUM | virtio_net::feature::GUEST_CSUM |
        virtio_net::feature::HOST_TSO4 | virtio_net::feature::HOST_TSO6;
    /// The most queue pairs presented to the plugin (virtio_net_plugin::max_queue_pairs).
    static constexpr std::uint16_t max_pairs = 8;
    /// The features served here when net_config::control_queue is set, never the back end's.
    static constexpr std::uint64_t emulated = virtio_net::feature::CTRL_VQ | virtio_net::feature::CTRL_RX |
                                              virtio_net::feature::CTRL_VLAN |
                                              virtio_net::feature::CTRL_MAC_ADDR;

    /// `timeout_ms`: how long a control-path request waits for its reply.
    explicit net_device(int timeout_ms = 5000) noexcept : fe_(timeout_ms) {}
    net_device(const net_device&) = delete;
    net_device& operator=(const net_device&) = delete;

    /// The shared memory; connect() afterwards (the back end may not listen yet).
    [[nodiscard]] status create(const net_config& c) noexcept {
        cfg_ = c;
        if (c.ring_bytes % 4096 != 0 || c.ring_bytes == 0 || c.pool_bytes == 0) {
            return {errc::invalid_argument,
                    "vhost-user net: ring_bytes a non-zero multiple of 4096, pool_bytes non-zero"};
        }
        if (status st = mem_.create(c.ring_bytes + c.pool_bytes, "npa-vhost-net"); !st) {
            return st;
        }
        window_ = virtio_net::window(virtio::transport{&ops_, this},
                                     {mem_.base(), mem_.address(0), c.ring_bytes});
        return status::success();
    }
    /// Connects to the back end's socket (again after it went away).
    [[nodiscard]] status connect() noexcept {
        offered_ = 0;
        back_end_pairs_ = 0;
        pairs_ = 1;
        note_[0] = '\0';
        status_ = 0;
        enabled_ = {};
        ctrl_features_ = 0;
        ctrl_.clear();
        return fe_.connect(cfg_.socket);
    }

    /// Memory for the shell's control channel (npa/control/virtio_net.hpp) when the
    /// controlq is served here: this object's own, its device address its address.
    [[nodiscard]] virtio_net::ring_memory control_memory() noexcept { return ctrl_.memory(); }
    /// What the controlq was told since the plugin attached.
    [[nodiscard]] const control_state& controlq() const noexcept { return ctrl_.state(); }
    /// The emulated features the plugin took (a subset of `emulated`).
    [[nodiscard]] std::uint64_t control_features() const noexcept { return ctrl_features_; }

    [[nodiscard]] virtio_net::window& window() noexcept { return window_; }
    /// The pool's block: device addresses are the front end's addresses in the memfd.
    [[nodiscard]] borrowed_memory pool_memory() const noexcept {
        return {mem_.base() + cfg_.ring_bytes, cfg_.pool_bytes, mem_.address(cfg_.ring_bytes)};
    }
    [[nodiscard]] front_end& session() noexcept { return fe_; }
    [[nodiscard]] const shared_memory& memory() const noexcept { return mem_; }
    /// Why the last control-path request failed ("" when none did).
    [[nodiscard]] const char* last_error() const noexcept { return last_error_; }
    [[nodiscard]] std::uint64_t kicks() const noexcept { return kicks_; }
    /// Everything the back end offered (GET_FEATURES, before narrowing); 0 before attach.
    [[nodiscard]] std::uint64_t offered() const noexcept { return offered_; }
    /// Where the back end said ring q stood when the last reset stopped it (GET_VRING_BASE;
    /// 0 before any): split, the available index; packed, decode_base() of it.
    [[nodiscard]] std::uint16_t ring_base(std::uint16_t q) const noexcept {
        return q < bases_.size() ? bases_[q] : std::uint16_t{0};
    }
    /// Whether the negotiated features have packed rings.
    [[nodiscard]] bool packed() const noexcept {
        return (fe_.features() & virtio::feature::RING_PACKED) != 0;
    }
    /// What GET_QUEUE_NUM answered (0: not asked, the back end has no MQ protocol feature).
    [[nodiscard]] std::uint64_t back_end_queue_pairs() const noexcept { return back_end_pairs_; }
    /// The queue pairs presented to the plugin (max_virtqueue_pairs).
    [[nodiscard]] std::uint16_t queue_pairs() const noexcept { return pairs_; }
    /// How the back end's queue count became queue_pairs() when it is not that count, or
    /// why MQ was not carried ("" when neither happened).
    [[nodiscard]] const char* note() const noexcept { return note_; }

    /// Waits up to timeout_ms for an interrupt of queue pair `vector` (either ring's call
    /// eventfd); true when one came (the counters are cleared). A masked vector is not
    /// waited on: what arrives stays latched in the eventfd until it is unmasked.
    [[nodiscard]] bool wait(std::uint16_t vector, int timeout_ms) noexcept {
        if (cfg_.polled || vector >= usable_pairs() || masked_[vector]) {
            return false;
        }
        pollfd pf[2];
        for (std::uint16_t k = 0; k < 2; ++k) {
            pf[k] = {fe_.fds(2u * vector + k).call, POLLIN, 0};
        }
        if (::poll(pf, 2, timeout_ms) <= 0) {
            return false;
        }
        bool any = false;
        for (const pollfd& p : pf) {
            std::uint64_t v = 0;
            if ((p.revents & POLLIN) != 0 && ::read(p.fd, &v, sizeof v) == sizeof v) {
                any = true;
            }
        }
        return any;
    }

private:
    static net_device& self(void* c) noexcept { return *static_cast<net_device*>(c); }

    // The pairs the negotiated features let the plugin use: without MQ there is one (5.1.5).
    [[nodiscard]] std::uint16_t usable_pairs() const noexcept {
        return (fe_.features() & virtio_net::feature::MQ) != 0 ? pairs_ : std::uint16_t{1};
    }

    // Asked once per connection, with the features: how many pairs the back end has.
    // False when the back end went away while asked.
    [[nodiscard]] bool probe_queue_pairs() noexcept {
        pairs_ = 1;
        // Not asked when the caller's mask takes MQ away: a single-pair front end needs
        // no answer the back end might fail to give.
        if ((offered_ & cfg_.features_mask & virtio_net::feature::MQ) == 0) {
            return true;
        }
        // Nor without the controlq served here: a device must not offer MQ without
        // CTRL_VQ (2.2.1, 5.1.3.1), as QEMU's net front end always has one to offer.
        if (!cfg_.control_queue) {
            offered_ &= ~virtio_net::feature::MQ;
            std::snprintf(note_, sizeof note_,
                          "vhost-user net: VIRTIO_NET_F_MQ needs the control queue (5.1.3.1), "
                          "served with net_config::control_queue: one queue pair");
            return true;
        }
        std::uint64_t pf = 0, n = 0;
        if ((offered_ & f_protocol_features) != 0) {
            if (const status st = fe_.offered_protocol_features(pf); !st) {
                last_error_ = st.reason();
                return false;
            }
        }
        if ((pf & protocol::mq) == 0) {
            offered_ &= ~virtio_net::feature::MQ;
            std::snprintf(note_, sizeof note_,
                          "vhost-user net: the back end offers VIRTIO_NET_F_MQ without the MQ "
                          "protocol feature (no GET_QUEUE_NUM): one queue pair");
            return true;
        }
        if (const status st = fe_.queue_num(n); !st) {
            last_error_ = st.reason();
            return false;
        }
        back_end_pairs_ = n;
        if (n == 0) {
            offered_ &= ~virtio_net::feature::MQ;
            std::snprintf(note_, sizeof note_,
                          "vhost-user net: GET_QUEUE_NUM answered 0 queue pairs: one queue pair");
            return true;
        }
        pairs_ = n < max_pairs ? static_cast<std::uint16_t>(n) : max_pairs;
        if (n > max_pairs) {
            std::snprintf(note_, sizeof note_,
                          "vhost-user net: the back end has %llu queue pairs (GET_QUEUE_NUM); %u "
                          "presented, the most the plugin takes",
                          static_cast<unsigned long long>(n), static_cast<unsigned>(max_pairs));
        }
        return true;
    }

    static std::uint64_t device_features(void* c) noexcept {
        net_device& d = self(c);
        if (d.offered_ == 0 && d.fe_.connected()) {
            std::uint64_t f = 0;
            if (const status st = d.fe_.offered_features(f); !st) {
                d.last_error_ = st.reason();
                return 0;
            }
            d.offered_ = f;
            if (!d.probe_queue_pairs()) {
                d.offered_ = 0;
                return 0;
            }
        }
        const std::uint64_t packed = d.cfg_.packed_ring ? ~0ull : ~virtio::feature::RING_PACKED;
        const std::uint64_t own = d.cfg_.control_queue && d.offered_ != 0 ? emulated : 0;
        return ((d.offered_ & carried & packed) | own) & d.cfg_.features_mask;
    }
    static void set_driver_features(void* c, std::uint64_t f) noexcept {
        net_device& d = self(c);
        // what is served here stays here: the back end sees the rest (as DPDK's virtio_user
        // leaves its front-end features out of SET_FEATURES)
        d.ctrl_features_ = d.cfg_.control_queue ? f & emulated : 0;
        if ((f & virtio_net::feature::MQ) != 0 && (f & virtio_net::feature::CTRL_VQ) == 0) {
            // MQ without CTRL_VQ (5.1.3.1): the pairs could never be set; FEATURES_OK refused.
            d.features_ok_ = false;
            d.last_error_ = "vhost-user net: the driver took VIRTIO_NET_F_MQ without CTRL_VQ";
            return;
        }
        const std::uint64_t theirs = f & ~d.ctrl_features_;
        const status st = d.fe_.negotiate(
            theirs, d.mem_, (f & virtio_net::feature::MQ) != 0 ? protocol::mq : std::uint64_t{0});
        d.features_ok_ = st && (d.fe_.features() & carried) == theirs;
        if (!st) {
            d.last_error_ = st.reason();
        }
    }
    static std::uint8_t get_status(void* c) noexcept {
        net_device& d = self(c);
        return d.fe_.alive() ? d.status_ : std::uint8_t{0xFF};
    }
    static void set_status(void* c, std::uint8_t s) noexcept {
        net_device& d = self(c);
        if (s == 0) { // reset: every ring handed over is stopped before the answer comes
            for (std::uint32_t i = 0; i < d.enabled_.size(); ++i) {
                std::uint32_t base = 0;
                if (d.enabled_[i] && d.fe_.connected()) {
                    if (const status st = d.fe_.get_ring_base(i, base); !st) {
                        d.last_error_ = st.reason(); // gone: it writes nothing either
                    } else {
                        d.bases_[i] = static_cast<std::uint16_t>(base);
                    }
                }
                d.enabled_[i] = false;
            }
            d.features_ok_ = false;
            d.ctrl_.stop();
            d.status_ = 0;
            return;
        }
        if (!d.features_ok_) {
            s &= static_cast<std::uint8_t>(~virtio::status_bit::FEATURES_OK);
        }
        d.status_ = s;
    }
    static std::uint16_t queue_max(void* c, std::uint16_t q) noexcept {
        const net_device& d = self(c);
        if (d.has_controlq() && q == d.ctrl_index()) {
            return control_server::queue_max;
        }
        return q < 2 * d.usable_pairs() ? static_cast<std::uint16_t>(virtio::max_queue_size) : std::uint16_t{0};
    }
    static bool queue_enable(void* c, std::uint16_t q, const virtio::queue_setup& s) noexcept {
        net_device& d = self(c);
        if (d.has_controlq() && q == d.ctrl_index()) {
            if (!d.ctrl_.start(s, d.packed())) {
                d.last_error_ = "vhost-user net: a control queue outside control_memory() or of a size refused";
                return false;
            }
            return true;
        }
        const std::uint64_t lo = d.mem_.address(0), hi = lo + d.cfg_.ring_bytes;
        for (const iova_t a : {s.desc, s.driver, s.device}) {
            if (a < lo || a >= hi) {
                d.last_error_ = "vhost-user net: a ring outside the ring area";
                return false;
            }
        }
        if (q >= 2 * d.usable_pairs()) {
            d.last_error_ = "vhost-user net: a queue beyond the negotiated queue pairs";
            return false;
        }
        ring_layout l;
        l.size = s.size;
        l.desc = s.desc - lo;
        l.avail = s.driver - lo;
        l.used = s.device - lo;
        l.polled = d.cfg_.polled;
        // A packed ring starts at position 0 on lap 1: the wrap counter rides in bit 15.
        l.base = (d.fe_.features() & virtio::feature::RING_PACKED) != 0 ? encode_base({0, true})
                                                                        : std::uint16_t{0};
        // With the controlq and MQ, pairs past the first wait for VQ_PAIRS_SET (5.1.6.5.5).
        const status st = d.fe_.set_ring(q, l, d.mem_, d.ring_runs(q, 1));
        if (!st) {
            d.last_error_ = st.reason();
            return false;
        }
        d.enabled_[q] = true;
        return true;
    }
    static void notify(void* c, std::uint16_t q) noexcept {
        net_device& d = self(c);
        if (d.ctrl_.live() && q == d.ctrl_index()) {
            d.ctrl_.serve(d.fe_.features() | d.ctrl_features_, d.pairs_,
                          [&d](std::uint16_t n) { return d.run_pairs(n); });
            return;
        }
        const int fd = q < 2 * max_pairs ? d.fe_.fds(q).kick : -1;
        if (fd >= 0) {
            const std::uint64_t one = 1;
            ++d.kicks_;
            (void)!::write(fd, &one,
                           sizeof one); // a full counter or a gone peer: the ring is polled anyway
        }
    }
    static void irq_mask(void* c, std::uint16_t vector, bool masked) noexcept {
        net_device& d = self(c);
        if (vector < max_pairs) {
            d.masked_[vector] = masked;
        }
    }
    static void read_config(void* c, std::uint32_t off, void* out, std::uint32_t len) noexcept {
        // The config space is not served by the back end: the one this transport presents
        // (MAC from the configuration, link up, the pairs GET_QUEUE_NUM said, the Ethernet
        // MTU).
        const net_device& d = self(c);
        virtio_net::net_config nc{};
        std::memcpy(nc.mac, d.cfg_.mac.data(), 6);
        nc.status = virtio_net::S_LINK_UP;
        nc.max_virtqueue_pairs = d.pairs_;
        nc.mtu = static_cast<std::uint16_t>(virtio_net::DEFAULT_MTU);
        std::byte* o = static_cast<std::byte*>(out);
        const auto* src = reinterpret_cast<const std::byte*>(&nc);
        for (std::uint32_t i = 0; i < len; ++i) {
            o[i] = off + i < sizeof nc ? src[off + i] : std::byte{0};
        }
    }

    // ---- the controlq served here ----------------------------------------------------------
    [[nodiscard]] bool has_controlq() const noexcept { return (ctrl_features_ & virtio_net::feature::CTRL_VQ) != 0; }
    [[nodiscard]] std::uint16_t ctrl_index() const noexcept {
        return virtio_net::ctrlq_index((fe_.features() & virtio_net::feature::MQ) != 0, pairs_);
    }
    // Whether ring q runs at the back end with `pairs` pairs running: every ring but with
    // the controlq and MQ, where only the first `pairs` pairs do.
    [[nodiscard]] bool ring_runs(std::uint16_t q, std::uint16_t pairs) const noexcept {
        return !(has_controlq() && (fe_.features() & virtio_net::feature::MQ) != 0) || q / 2 < pairs;
    }
    // VQ_PAIRS_SET n: SET_VRING_ENABLE on every ring handed over whose state changes.
    bool run_pairs(std::uint16_t n) noexcept {
        for (std::uint16_t r = 0; r < 2 * pairs_; ++r) {
            const bool want = ring_runs(r, n);
            if (!enabled_[r] || ring_runs(r, ctrl_.state().pairs) == want) {
                continue; // not handed over (it is enabled when it is), or already so
            }
            if (const status st = fe_.enable_ring(r, want); !st) {
                last_error_ = st.reason();
                return false;
            }
        }
        return true;
    }

    static constexpr virtio::transport_ops ops_{
        &device_features, &set_driver_features, &get_status, &set_status,
        &queue_max,       &queue_enable,        &notify,     &irq_mask,
        &read_config};

    net_config cfg_{};
    shared_memory mem_;
    front_end fe_;
    virtio_net::window window_{};
    std::uint64_t offered_ = 0, kicks_ = 0;
    std::uint8_t status_ = 0;
    bool features_ok_ = false;
    std::array<bool, 2 * max_pairs> enabled_{}; ///< handed over (set_ring)
    std::uint64_t ctrl_features_ = 0;           ///< the emulated features taken
    control_server ctrl_;
    std::array<std::uint16_t, 2 * max_pairs> bases_{};
    std::array<bool, max_pairs> masked_ = all_masked();
    std::uint64_t back_end_pairs_ = 0;
    std::uint16_t pairs_ = 1;
    const char* last_error_ = "";
    char note_[160] = "";

    static constexpr std::array<bool, max_pairs> all_masked() noexcept {
        std::array<bool, max_pairs> a{};
        a.fill(true);
        return a;
    }
};

} // namespace npa::vhost_user
