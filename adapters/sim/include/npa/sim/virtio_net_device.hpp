// npa/sim/virtio_net_device.hpp: a virtio network device (virtio 1.2 section 5.1) as a
// hypervisor's back end would run it, on the device side of npa's virtqueue core
// (npa/virtio/device_queue.hpp: split rings, or packed ones when RING_PACKED is offered,
// as QEMU's packed=on, and taken), attached to a sim wire as a frame_port.
//
// Packed rings (2.8): a used descriptor names its buffer by id and skips as many positions
// as the buffer took; without IN_ORDER the driver may see buffers used in any order, so
// the fault plan's corruptions mean there: an id past the ring, a length past the buffer,
// a position skipped (gen_out_of_order: the driver waits at a descriptor never marked
// used), an id the driver has not handed over (never_posted: none available ahead, none
// held by the device, else the one just used), the same id twice. IN_ORDER's transmitq
// batches (tx_batch) on a packed ring: one used descriptor, the last buffer's id, at the
// first buffer's position, and the used position moved past every descriptor of the batch.
//
// The transport is a table of trapped calls (npa::virtio::transport): feature bits, the
// status byte (0 resets the device, which then writes nothing), queue setup and enable,
// notifications (counted; the device polls its queues every step, as a back end in polling
// mode does), interrupt masks (one sim_irq per queue pair: a masked vector latches, an
// unmask delivers) and the configuration space (MAC, link status, queue pairs, MTU).
//
// TX: every available chain of transmitq 2q+1 is walked by split_device::pop (index,
// loop, count, lengths, flags and every address through guest memory checked); the
// 12-byte header and the frame are gathered from its readable buffers, a NEEDS_CSUM
// checksum is computed, the frame goes on the wire (or is counted: link down, DMA error)
// and the chain is used with len 0. RX: each frame from the wire is steered to a pair
// by its flow hash and written, header first, into the writable buffers of the next chain
// of receiveq 2q; with MRG_RXBUF into as many chains as it needs (num_buffers says how
// many), without it into one chain that must hold it all.
//
// The controlq (5.1.6.5; at 2 * max_pairs with MQ, 2 without): RX (PROMISC, ALLMULTI and,
// with CTRL_RX_EXTRA, ALLUNI / NOMULTI / NOUNI / NOBCAST), MAC (MAC_TABLE_SET,
// MAC_ADDR_SET), VLAN (ADD, DEL) and MQ (VQ_PAIRS_SET) are applied to a receive filter
// that decides, as QEMU's receive_filter does, which frames from the wire are received:
// promiscuous first, then the VLAN table (tagged frames), broadcast, multicast (NOMULTI,
// ALLMULTI, the table), unicast (NOUNI, ALLUNI, the MAC, the table). The reset state is
// QEMU 10.0.2's: promiscuous, the configured MAC, empty tables, every VLAN allowed (its
// table starts full and a reset does not clear it; only VLAN DEL takes one out:
// docs/real-devices.md, virtio-net-pci 6), one queue pair (with CTRL_VQ and MQ; without CTRL_VQ the
// model spreads over every pair set up, as it did before it had a controlq). A malformed
// command (an unknown class, short data, a table over 64 entries, a VLAN id over 4095)
// is answered VIRTIO_NET_ERR; a chain without a readable header or a writable answer byte
// is refused as QEMU's virtio_error does. set_ctrl_fault() makes the device hostile on
// the controlq (no answer, a garbage answer, an id or a length out of bounds).
//
// A driver's chain that breaks a rule is refused and recorded as a violation naming the
// queue, the head and the rule; the queue stops and the device sets DEVICE_NEEDS_RESET,
// as the specification asks of a device that meets an error it cannot recover from (2.1.2).
// Nothing is read or written through a refused chain.
//
// Hostile behaviour (fault_plan, faults.hpp) on both used rings: completions dropped,
// delayed, reordered (device/completion.hpp); corruptions: an id past the table
// (index_out_of_range), a length past the buffer (length_too_large), used->idx moved past
// an entry never written (gen_out_of_order: the split ring's stale-entry case), an extra
// entry for a descriptor never made available (never_posted), an entry written twice
// (double_completion). set_num_buffers_fault() makes RX headers carry a wrong
// num_buffers. DMA faults, link flaps, resets (DEVICE_NEEDS_RESET) and surprise removal
// (status reads all ones) as every model has them.
#pragma once

#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/sim/device/base.hpp>
#include <npa/sim/device/checksum.hpp>
#include <npa/sim/device/completion.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/sim_irq.hpp>
#include <npa/sim/wire.hpp>
#include <npa/status.hpp>
#include <npa/virtio/device_queue.hpp>
#include <npa/virtio/transport.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace npa::sim {

struct virtio_net_device_config {
    std::uint16_t max_pairs = 4;     ///< config max_virtqueue_pairs (MQ offered when > 1)
    std::uint16_t queue_max = 1024;  ///< the largest queue the device takes
    std::uint16_t mtu = 1500;        ///< config mtu (VIRTIO_NET_F_MTU)
    mac_addr mac{0x02, 0, 0, 0, 0, 0x01};
    /// Feature bits offered (VERSION_1 and what the model implements).
    std::uint64_t features = virtio::feature::VERSION_1 | virtio::feature::IN_ORDER |
                             virtio::feature::EVENT_IDX | virtio_net::feature::MRG_RXBUF |
                             virtio_net::feature::CSUM | virtio_net::feature::GUEST_CSUM |
                             virtio_net::feature::MTU | virtio_net::feature::MAC |
                             virtio_net::feature::STATUS | virtio_net::feature::MQ |
                             virtio_net::feature::CTRL_VQ | virtio_net::feature::CTRL_RX |
                             virtio_net::feature::CTRL_RX_EXTRA | virtio_net::feature::CTRL_VLAN |
                             virtio_net::feature::CTRL_MAC_ADDR;
    std::size_t ring_bytes = 0;      ///< ring memory carved for the driver (0: enough for max_pairs x queue_max)
    std::size_t inbox_limit = 8192;
    std::uint32_t rx_frames_per_step = 1024;
    /// With IN_ORDER negotiated, transmitq chains are confirmed in batches of up to this
    /// many with one used entry each (virtio 1.2 2.7.9: the id of the batch's last chain,
    /// used->idx moved by the batch); the rest of a step's chains as a smaller batch. 1:
    /// an entry per chain, as DPDK 22.11 and QEMU 7.2 write them.
    std::uint16_t tx_batch = 1;
    const char* name = "virtio-net0";
};

/// Device-side counters of one queue pair.
struct virtio_net_queue_counters {
    std::uint64_t tx_frames = 0, tx_bytes = 0;
    std::uint64_t tx_link_down = 0;  ///< used while the link was down (not sent)
    std::uint64_t tx_dma_errors = 0; ///< a buffer could not be read (not sent)
    std::uint64_t tx_bad_frame = 0;  ///< a chain whose frame the wire cannot carry (not sent)
    std::uint64_t rx_frames = 0, rx_bytes = 0;
    std::uint64_t rx_no_desc = 0;    ///< dropped: no chain available
    std::uint64_t rx_oversize = 0;   ///< dropped: larger than the chain (no MRG_RXBUF)
    std::uint64_t rx_dma_errors = 0; ///< a buffer could not be written (used with len 0)
    std::uint64_t rx_merged = 0;     ///< frames spread over more than one chain
    std::uint64_t comp_dropped = 0, comp_delayed = 0, comp_reordered = 0, comp_corrupted = 0;
};

/// How the device misbehaves on the controlq (set_ctrl_fault).
enum class ctrl_fault : std::uint8_t {
    none,
    refuse,       ///< the command is answered VIRTIO_NET_ERR (a policy refusal)
    no_answer,    ///< the chain is taken and never used
    garbage,      ///< the answer byte is neither OK nor ERR
    bad_id,       ///< the used entry names a descriptor past the table
    long_len,     ///< the used length is past the one-byte answer
};

class virtio_net_device final : public frame_port, public device_model<virtio_net_device> {
    friend class device_model<virtio_net_device>;

public:
    static constexpr std::uint16_t max_pairs = 8;
    static constexpr std::uint32_t max_segments = 64; ///< per chain: more is refused (too_long)

    [[nodiscard]] static result<std::unique_ptr<virtio_net_device>> create(guest_memory& mem,
                                                                           const virtio_net_device_config& cfg) {
        if (cfg.max_pairs == 0 || cfg.max_pairs > max_pairs || !virtio::queue_size_ok(cfg.queue_max)) {
            return {errc::invalid_argument, "virtio-net device: pairs 1..8, queue_max a power of two"};
        }
        std::unique_ptr<virtio_net_device> d(new (std::nothrow) virtio_net_device(mem, cfg));
        if (!d) {
            return {errc::no_memory, "virtio-net device: out of memory"};
        }
        const std::size_t bytes = cfg.ring_bytes != 0
                                      ? cfg.ring_bytes
                                      : 2 * cfg.max_pairs * (virtio::layout_of(cfg.queue_max).total + 128);
        const guest_block rb = mem.allocate(bytes, 4096);
        if (!rb) {
            return {errc::no_memory, "virtio-net device: guest memory too small for the rings"};
        }
        d->window_ = virtio_net::window(virtio::transport{&ops_, d.get()}, {rb.virt, rb.iova, rb.size});
        return d;
    }

    virtio_net_device(const virtio_net_device&) = delete;
    virtio_net_device& operator=(const virtio_net_device&) = delete;
    ~virtio_net_device() override { stop(); }

    // ---- what the guest gets ----------------------------------------------------------------
    [[nodiscard]] virtio_net::window& window() noexcept { return window_; }
    [[nodiscard]] sim_irq& irq(std::uint16_t pair) noexcept { return irqs_[pair]; }

    // ---- hostile behaviour of this model ---------------------------------------------------
    /// The next n RX frames' headers carry num_buffers + delta (the frame itself is right).
    void set_num_buffers_fault(std::uint32_t n, std::int32_t delta) {
        std::lock_guard g(mu_);
        nb_fault_count_ = n;
        nb_fault_delta_ = delta;
    }

    /// After `skip` commands handled as usual, the next n controlq commands meet fault f
    /// (the command is not applied).
    void set_ctrl_fault(ctrl_fault f, std::uint32_t n = 1, std::uint32_t skip = 0) {
        std::lock_guard g(mu_);
        ctrl_fault_ = f;
        ctrl_fault_count_ = n;
        ctrl_fault_skip_ = skip;
    }

    // ---- observation ------------------------------------------------------------------------
    /// Frames from the wire the receive filter refused (promiscuous off, MAC, VLAN).
    [[nodiscard]] std::uint64_t rx_filtered() const {
        std::lock_guard g(mu_);
        return rx_filtered_;
    }
    /// Controlq commands answered (OK or ERR), and of those ERR.
    [[nodiscard]] std::uint64_t ctrl_commands() const {
        std::lock_guard g(mu_);
        return ctrl_commands_;
    }
    [[nodiscard]] std::uint64_t ctrl_errors() const {
        std::lock_guard g(mu_);
        return ctrl_errors_;
    }
    [[nodiscard]] bool promiscuous() const {
        std::lock_guard g(mu_);
        return filter_.promisc;
    }
    /// Queue pairs in use (VQ_PAIRS_SET; every pair set up without a controlq).
    [[nodiscard]] std::uint16_t queue_pairs_in_use() const {
        std::lock_guard g(mu_);
        return pairs_in_use();
    }
    [[nodiscard]] std::vector<std::string> violations() const {
        std::lock_guard g(mu_);
        std::vector<std::string> v;
        for (const device_violation& x : violations_) {
            v.push_back(x.message);
        }
        return v;
    }
    [[nodiscard]] virtio_net_queue_counters counters(std::uint16_t pair) const {
        std::lock_guard g(mu_);
        return pairs_[pair].st;
    }
    /// Chains available on receiveq 2q and not yet used (what the device could fill).
    [[nodiscard]] std::uint32_t rx_posted(std::uint16_t pair) {
        std::lock_guard g(mu_);
        vq& v = vqs_[virtio_net::rxq_index(pair)];
        if (!v.enabled || v.failed) {
            return 0;
        }
        const std::int32_t n = v.dev.available_buffers();
        return n < 0 ? 0 : static_cast<std::uint32_t>(n);
    }
    [[nodiscard]] std::uint8_t status_byte() const {
        std::lock_guard g(mu_);
        return status_;
    }
    [[nodiscard]] std::uint64_t driver_features() const {
        std::lock_guard g(mu_);
        return driver_features_;
    }
    /// Every feature bit a driver took that the device had not offered (dropped, as QEMU does).
    [[nodiscard]] std::uint64_t features_not_offered() const {
        std::lock_guard g(mu_);
        return not_offered_;
    }
    /// Used entries that stood for a batch of transmitq chains (config tx_batch).
    [[nodiscard]] std::uint64_t tx_batch_entries() const {
        std::lock_guard g(mu_);
        return tx_batch_entries_;
    }
    /// Interrupts the device raised on a vector (need_interrupt() said so), armed or not.
    [[nodiscard]] std::uint64_t interrupts_raised(std::uint16_t vector) const {
        std::lock_guard g(mu_);
        return raised_[vector];
    }
    [[nodiscard]] std::uint64_t kicks(std::uint16_t vq_index) const noexcept {
        return kicks_[vq_index].load(std::memory_order_relaxed); // relaxed: a counter
    }
    /// Chains refused, every kind (split_device's counts) over every queue.
    [[nodiscard]] std::uint64_t refused_chains() const {
        std::lock_guard g(mu_);
        std::uint64_t t = 0;
        for (const vq& v : vqs_) {
            t += v.dev.errors();
        }
        return t;
    }

    // ---- the wire -----------------------------------------------------------------------------
    void frame_in(const frame& f) noexcept override { inbox_.push(f); }

    // ---- time ---------------------------------------------------------------------------------
    /// One step: link timer, every transmitq, frames from the wire into receiveqs, delayed
    /// used entries. Returns true if anything happened.
    bool step() {
        std::lock_guard g(mu_);
        ++steps_;
        tick_link();
        if (removed_.load() || (status_ & virtio::status_bit::DRIVER_OK) == 0 ||
            (status_ & virtio::status_bit::DEVICE_NEEDS_RESET) != 0) {
            rx_inactive_ += inbox_.drop_all();
            return false;
        }
        bool any = process_ctrl();
        for (std::uint16_t p = 0; p < npairs_ && live(); ++p) {
            any |= process_tx(p);
        }
        if (live()) {
            any |= deliver_rx();
        }
        for (std::uint16_t p = 0; p < npairs_ && live(); ++p) {
            for (const ring_kind r : {ring_kind::tx, ring_kind::rx}) {
                any |= pairs_[p].cp[static_cast<std::size_t>(r)].flush(
                    steps_, comp_faults::of(faults_, r), writer(p, r));
            }
            flush_tx_batch(p);
        }
        return any;
    }

private:
    struct vq {
        bool enabled = false, failed = false;
        virtio::queue_setup s{};
        virtio::device_queue dev;
        // Buffer ids taken and not yet used (a packed ring's never_posted fault needs an id
        // the driver has not handed over; ids past the queue size are not tracked).
        std::vector<bool> held;
        void hold(std::uint32_t id) {
            if (id < held.size()) {
                held[id] = true;
            }
        }
        void release(std::uint32_t id) {
            if (id < held.size()) {
                held[id] = false;
            }
        }
        // An id neither held here nor available ahead in the ring, else `fallback`.
        [[nodiscard]] std::uint16_t id_not_out(std::uint16_t fallback) const {
            std::vector<bool> out = held;
            (void)dev.packed_side().walk_available([&](std::uint16_t id) {
                if (id < out.size()) {
                    out[id] = true;
                }
            });
            for (std::size_t i = 0; i < out.size(); ++i) {
                if (!out[i] && i != fallback) {
                    return static_cast<std::uint16_t>(i);
                }
            }
            return fallback;
        }
    };
    struct used_rec {
        std::uint32_t id = 0, len = 0;
        std::uint16_t descs = 1; // ring positions the chain took (packed rings)
    };
    // Where a used entry that leaves the fault path is written: pair p's ring r.
    struct used_writer {
        virtio_net_device* dev;
        std::uint16_t p;
        ring_kind r;
        void operator()(const used_rec& u, std::uint32_t buf_len) const { dev->write_used(p, r, u, buf_len); }
    };
    struct pair_state {
        std::array<comp_path<used_rec>, 2> cp{}; // [ring_kind::tx], [ring_kind::rx]
        virtio_net_queue_counters st{};
    };

    virtio_net_device(guest_memory& mem, const virtio_net_device_config& cfg)
        : device_model(mem, cfg.inbox_limit), cfg_(cfg) {
        segs_.resize(max_segments);
        filter_.mac = cfg.mac;
    }

    [[nodiscard]] bool live() const noexcept {
        return !removed_.load() && (status_ & virtio::status_bit::DRIVER_OK) != 0 &&
               (status_ & virtio::status_bit::DEVICE_NEEDS_RESET) == 0;
    }
    [[nodiscard]] bool has(std::uint64_t f) const noexcept { return (driver_features_ & f) != 0; }

    // ---- the transport (trapped calls) ----------------------------------------------------------
    static virtio_net_device& self_of(void* ctx) noexcept { return *static_cast<virtio_net_device*>(ctx); }
    static std::uint64_t op_features(void* ctx) noexcept {
        virtio_net_device& d = self_of(ctx);
        std::uint64_t f = d.cfg_.features;
        f &= d.cfg_.max_pairs > 1 ? ~0ull : ~virtio_net::feature::MQ;
        return f;
    }
    // A bit the driver takes that was not offered is dropped, and FEATURES_OK still sticks:
    // QEMU's virtio_set_features keeps only what it offered (docs/real-devices.md,
    // virtio-net-pci 1). The dropped bits are kept for tests (features_not_offered()).
    static void op_set_features(void* ctx, std::uint64_t f) noexcept {
        virtio_net_device& d = self_of(ctx);
        std::lock_guard g(d.mu_);
        if ((d.status_ & virtio::status_bit::FEATURES_OK) == 0) {
            const std::uint64_t offered = op_features(ctx);
            d.not_offered_ |= f & ~offered;
            d.driver_features_ = f & offered;
        }
    }
    static std::uint8_t op_status(void* ctx) noexcept {
        virtio_net_device& d = self_of(ctx);
        if (d.removed_.load()) {
            return 0xFF;
        }
        std::lock_guard g(d.mu_);
        return d.status_;
    }
    static void op_set_status(void* ctx, std::uint8_t s) noexcept {
        virtio_net_device& d = self_of(ctx);
        std::lock_guard g(d.mu_);
        if (d.removed_.load()) {
            return;
        }
        if (s == 0) {
            d.device_reset();
            return;
        }
        // FEATURES_OK only with VERSION_1: the model implements the 1.0 layout alone (QEMU
        // would go on with a legacy one; docs/real-devices.md, virtio-net-pci 2).
        if ((s & virtio::status_bit::FEATURES_OK) != 0 && (d.status_ & virtio::status_bit::FEATURES_OK) == 0 &&
            (d.driver_features_ & virtio::feature::VERSION_1) == 0) {
            s = static_cast<std::uint8_t>(s & ~virtio::status_bit::FEATURES_OK);
        }
        const bool starting = (s & virtio::status_bit::DRIVER_OK) != 0 &&
                              (d.status_ & virtio::status_bit::DRIVER_OK) == 0;
        d.status_ = static_cast<std::uint8_t>(s | (d.status_ & virtio::status_bit::DEVICE_NEEDS_RESET));
        if (starting) {
            d.curr_pairs_ = 1;
            d.npairs_ = 0;
            for (std::uint16_t p = 0; p < d.cfg_.max_pairs; ++p) {
                if (d.vqs_[virtio_net::rxq_index(p)].enabled && d.vqs_[virtio_net::txq_index(p)].enabled) {
                    d.npairs_ = static_cast<std::uint16_t>(p + 1);
                }
            }
        }
    }
    static std::uint16_t op_queue_max(void* ctx, std::uint16_t q) noexcept {
        virtio_net_device& d = self_of(ctx);
        std::lock_guard g(d.mu_);
        if (d.is_ctrlq(q)) {
            return d.cfg_.queue_max < ctrlq_max ? d.cfg_.queue_max : ctrlq_max;
        }
        return q < 2u * d.data_pairs() ? d.cfg_.queue_max : 0;
    }
    static bool op_queue_enable(void* ctx, std::uint16_t q, const virtio::queue_setup& s) noexcept {
        virtio_net_device& d = self_of(ctx);
        std::lock_guard g(d.mu_);
        const bool ctrl = d.is_ctrlq(q);
        // A split ring's size is a power of two (2.7); a packed ring's any size up to the
        // maximum (2.8: its positions wrap by comparison, not by mask).
        const bool size_ok = d.has(virtio::feature::RING_PACKED) ? virtio::packed_size_ok(s.size)
                                                                  : virtio::queue_size_ok(s.size);
        if ((!ctrl && q >= 2u * d.data_pairs()) || s.size > (ctrl ? ctrlq_max : d.cfg_.queue_max) || !size_ok ||
            (d.status_ & virtio::status_bit::FEATURES_OK) == 0) {
            return false;
        }
        // The three areas through guest memory, whole, and aligned as 2.7 (split) or 2.8.10
        // (packed: the descriptor ring, the driver's and the device's event areas) ask:
        // every later ring access is inside a checked range. Areas that fail leave the queue
        // as it was (the ring is checked before the device side takes it).
        vq& v = ctrl ? d.ctrl_ : d.vqs_[q];
        const bool event_idx = d.has(virtio::feature::EVENT_IDX);
        if (d.has(virtio::feature::RING_PACKED)) {
            const virtio::packed_ring r(d.mem_.translate(s.desc, virtio::packed_desc_bytes(s.size)),
                                        d.mem_.translate(s.driver, sizeof(virtio::pvirtq_event_suppress)),
                                        d.mem_.translate(s.device, sizeof(virtio::pvirtq_event_suppress)), s.size);
            if (!r.bound() || !v.dev.reset(r, virtio::packed_cursor{}, false, event_idx)) {
                return false;
            }
        } else {
            const virtio::split_ring r(d.mem_.translate(s.desc, virtio::desc_bytes(s.size)),
                                       d.mem_.translate(s.driver, virtio::avail_bytes(s.size)),
                                       d.mem_.translate(s.device, virtio::used_bytes(s.size)), s.size);
            if (!r.bound() || !v.dev.reset(r, event_idx)) {
                return false;
            }
        }
        v.s = s;
        v.enabled = true;
        v.failed = false;
        v.held.assign(s.size, false);
        return true;
    }
    static void op_notify(void* ctx, std::uint16_t q) noexcept {
        virtio_net_device& d = self_of(ctx);
        if (q < d.kicks_.size()) {
            d.kicks_[q].fetch_add(1, std::memory_order_relaxed); // relaxed: a counter
        }
    }
    static void op_irq_mask(void* ctx, std::uint16_t vector, bool masked) noexcept {
        virtio_net_device& d = self_of(ctx);
        if (vector < max_pairs) {
            masked ? d.irqs_[vector].disarm() : d.irqs_[vector].arm();
        }
    }
    static void op_read_config(void* ctx, std::uint32_t off, void* out, std::uint32_t len) noexcept {
        virtio_net_device& d = self_of(ctx);
        virtio_net::net_config c{};
        std::memcpy(c.mac, d.cfg_.mac.data(), 6);
        // relaxed: a snapshot of the link for a config read
        c.status = d.link_up_.load(std::memory_order_relaxed) ? virtio_net::S_LINK_UP : 0;
        c.max_virtqueue_pairs = d.cfg_.max_pairs;
        c.mtu = d.cfg_.mtu;
        c.speed = 10000;
        c.duplex = 1;
        // The configuration space is as long as the offered features make it (QEMU's
        // feature-sized config: at least the MAC, then up to the last field an offered
        // feature makes valid); past that every byte reads all ones (docs/real-devices.md,
        // virtio-net-pci 3).
        const std::uint64_t f = op_features(ctx);
        std::uint32_t size = 6;
        const struct {
            std::uint64_t bits;
            std::uint32_t end;
        } ends[] = {{virtio_net::feature::STATUS, 8},
                    {virtio_net::feature::MQ, 10},
                    {virtio_net::feature::MTU, 12},
                    {virtio_net::feature::SPEED_DUPLEX, 17},
                    {virtio_net::feature::RSS | virtio_net::feature::HASH_REPORT, 24}};
        for (const auto& e : ends) {
            size = (f & e.bits) != 0 && e.end > size ? e.end : size;
        }
        auto* o = static_cast<std::uint8_t*>(out);
        for (std::uint32_t i = 0; i < len; ++i) {
            o[i] = off + i < size ? reinterpret_cast<const std::uint8_t*>(&c)[off + i] : 0xFF;
        }
    }
    static constexpr virtio::transport_ops ops_{&op_features,  &op_set_features, &op_status,
                                                &op_set_status, &op_queue_max,    &op_queue_enable,
                                                &op_notify,     &op_irq_mask,     &op_read_config};

    // A driver-written reset (status 0): every queue forgotten, nothing written after it.
    void device_reset() noexcept {
        status_ = 0;
        driver_features_ = 0;
        npairs_ = 0;
        ctrl_ = vq{};
        filter_ = rx_filter{};
        filter_.mac = cfg_.mac;
        curr_pairs_ = 1;
        tx_batches_ = {};
        for (vq& v : vqs_) {
            v = vq{};
        }
        for (pair_state& p : pairs_) {
            p.cp[0].clear();
            p.cp[1].clear();
        }
        for (sim_irq& i : irqs_) {
            i.reset();
        }
    }
    // device_model's reset: the device fails and asks for a reset (2.1.2).
    void do_reset() noexcept {
        status_ |= virtio::status_bit::DEVICE_NEEDS_RESET;
        tx_batches_ = {};
        for (pair_state& p : pairs_) {
            p.cp[0].clear();
            p.cp[1].clear();
        }
    }
    void do_remove() noexcept {
        removed_.store(true);
        tx_batches_ = {};
        for (pair_state& p : pairs_) {
            p.cp[0].clear();
            p.cp[1].clear();
        }
    }

    // A refused chain: recorded, the queue stops, the device asks for a reset.
    void refuse(std::uint16_t pair, ring_kind r, std::uint32_t head, virtio::chain_error e) {
        violations_.push_back(make_violation(cfg_.name, pair, r, head, virtio::to_string(e),
                                             "chain refused, queue stopped (DEVICE_NEEDS_RESET)"));
        vqs_[r == ring_kind::tx ? virtio_net::txq_index(pair) : virtio_net::rxq_index(pair)].failed = true;
        status_ |= virtio::status_bit::DEVICE_NEEDS_RESET;
    }
    auto addr_ok() noexcept {
        return [this](std::uint64_t a, std::uint32_t len, bool) { return mem_.translate(a, len) != nullptr; };
    }

    // ---- the controlq (5.1.6.5) ------------------------------------------------------------------
    [[nodiscard]] std::uint16_t data_pairs() const noexcept {
        // Without MQ a device has one pair, and queue 2 is the controlq (5.1.2).
        return has(virtio_net::feature::MQ) || !has(virtio_net::feature::CTRL_VQ) ? cfg_.max_pairs : 1;
    }
    [[nodiscard]] bool is_ctrlq(std::uint16_t q) const noexcept {
        return has(virtio_net::feature::CTRL_VQ) &&
               q == virtio_net::ctrlq_index(has(virtio_net::feature::MQ), cfg_.max_pairs);
    }
    [[nodiscard]] std::uint16_t pairs_in_use() const noexcept {
        if (!has(virtio_net::feature::CTRL_VQ)) {
            return npairs_;
        }
        return curr_pairs_ < npairs_ ? curr_pairs_ : npairs_;
    }

    bool process_ctrl() {
        if (!ctrl_.enabled || ctrl_.failed) {
            return false;
        }
        bool any = false;
        for (;;) {
            virtio::chain c;
            std::uint16_t descs = 1;
            const virtio::pop_status st = ctrl_.dev.pop(c, descs, segs_, addr_ok());
            if (st == virtio::pop_status::empty) {
                break;
            }
            any = true;
            // A command needs its header readable and its answer writable (QEMU:
            // "virtio-net ctrl missing headers", a device error).
            if (st != virtio::pop_status::ok || c.read_len < sizeof(virtio_net::ctrl_hdr) || c.write_len < 1 ||
                c.read_len > ctrl_buf_.size()) {
                violations_.push_back(make_violation(cfg_.name, 0, ring_kind::tx, c.head,
                                                     st == virtio::pop_status::ok ? "controlq command without header or answer"
                                                                                  : virtio::to_string(ctrl_.dev.last_error()),
                                                     "chain refused, queue stopped (DEVICE_NEEDS_RESET)"));
                ctrl_.failed = true;
                status_ |= virtio::status_bit::DEVICE_NEEDS_RESET;
                return true;
            }
            std::uint32_t at = 0;
            bool ok = true;
            for (std::uint16_t i = 0; i < c.readable && ok; ++i) {
                ok = mem_.dma_read(segs_[i].addr, ctrl_buf_.data() + at, segs_[i].len);
                at += segs_[i].len;
            }
            ctrl_fault fault = ctrl_fault::none;
            if (ctrl_fault_skip_ != 0) {
                --ctrl_fault_skip_;
            } else if (ctrl_fault_count_ != 0) {
                --ctrl_fault_count_;
                fault = ctrl_fault_;
            }
            if (fault == ctrl_fault::no_answer) {
                continue; // taken, never used
            }
            std::uint8_t ack = virtio_net::ctrl::ERR;
            if (ok && fault == ctrl_fault::none) {
                ack = command(std::span<const std::uint8_t>(ctrl_buf_.data(), at));
            } else if (fault == ctrl_fault::garbage || fault == ctrl_fault::bad_id || fault == ctrl_fault::long_len) {
                ack = 0x5A; // and nothing applied
            }
            ++ctrl_commands_;
            ctrl_errors_ += ack == virtio_net::ctrl::ERR ? 1 : 0;
            const virtio::segment& w = segs_[c.readable];
            if (!mem_.dma_write(w.addr, &ack, 1)) {
                ++ctrl_errors_;
            }
            const std::uint32_t n = ctrl_.dev.size();
            ctrl_.dev.push_used(static_cast<std::uint16_t>(fault == ctrl_fault::bad_id ? n + 3 : c.head),
                                fault == ctrl_fault::long_len ? 64 : 1, descs);
            write_pause();
            ctrl_.dev.publish_used();
        }
        return any;
    }

    // One command's header and data: the answer. Everything malformed is ERR, as QEMU's
    // virtio_net_handle_* answer it.
    std::uint8_t command(std::span<const std::uint8_t> b) {
        namespace c = virtio_net::ctrl;
        const std::uint8_t cls = b[0], cmd = b[1];
        const std::span<const std::uint8_t> d = b.subspan(2);
        switch (cls) {
        case c::RX: {
            if (!has(virtio_net::feature::CTRL_RX) || d.size() != 1) {
                return c::ERR;
            }
            const bool on = d[0] != 0;
            const bool extra = has(virtio_net::feature::CTRL_RX_EXTRA);
            switch (cmd) {
            case c::RX_PROMISC: filter_.promisc = on; return c::OK;
            case c::RX_ALLMULTI: filter_.allmulti = on; return c::OK;
            case c::RX_ALLUNI: return extra ? (filter_.alluni = on, c::OK) : c::ERR;
            case c::RX_NOMULTI: return extra ? (filter_.nomulti = on, c::OK) : c::ERR;
            case c::RX_NOUNI: return extra ? (filter_.nouni = on, c::OK) : c::ERR;
            case c::RX_NOBCAST: return extra ? (filter_.nobcast = on, c::OK) : c::ERR;
            default: return c::ERR;
            }
        }
        case c::MAC:
            if (cmd == c::MAC_ADDR_SET) {
                if (!has(virtio_net::feature::CTRL_MAC_ADDR) || d.size() != 6) {
                    return c::ERR;
                }
                std::memcpy(filter_.mac.data(), d.data(), 6);
                return c::OK;
            }
            if (cmd == c::MAC_TABLE_SET && has(virtio_net::feature::CTRL_RX)) {
                return mac_table(d);
            }
            return c::ERR;
        case c::VLAN: {
            if (!has(virtio_net::feature::CTRL_VLAN) || d.size() != 2 || (cmd != c::VLAN_ADD && cmd != c::VLAN_DEL)) {
                return c::ERR;
            }
            const std::uint16_t vid = load_le16(d.data());
            if (vid > max_vlan_id) {
                return c::ERR;
            }
            cmd == c::VLAN_ADD ? filter_.vlans[vid / 64] |= 1ull << (vid % 64)
                               : filter_.vlans[vid / 64] &= ~(1ull << (vid % 64));
            return c::OK;
        }
        case c::MQ: {
            if (!has(virtio_net::feature::MQ) || cmd != c::MQ_VQ_PAIRS_SET || d.size() != 2) {
                return c::ERR;
            }
            const std::uint16_t n = load_le16(d.data());
            if (n < 1 || n > cfg_.max_pairs) {
                return c::ERR;
            }
            curr_pairs_ = n;
            return c::OK;
        }
        default: return c::ERR;
        }
    }
    // MAC_TABLE_SET: a unicast table then a multicast one, each le32 entries and the MACs;
    // more than the table holds sets its overflow (every address of that kind passes).
    std::uint8_t mac_table(std::span<const std::uint8_t> d) {
        rx_filter f = filter_;
        f.macs.clear();
        std::size_t at = 0;
        for (int t = 0; t < 2; ++t) {
            if (d.size() - at < 4) {
                return virtio_net::ctrl::ERR;
            }
            const std::uint32_t n = load_le32(d.data() + at);
            at += 4;
            if (n > (d.size() - at) / 6) {
                return virtio_net::ctrl::ERR;
            }
            bool& overflow = t == 0 ? f.uni_overflow : f.multi_overflow;
            overflow = f.macs.size() + n > mac_table_entries;
            for (std::uint32_t i = 0; i < n && !overflow; ++i) {
                mac_addr m;
                std::memcpy(m.data(), d.data() + at + 6 * i, 6);
                f.macs.push_back(m);
            }
            at += std::size_t{n} * 6;
            if (t == 0) {
                f.first_multi = f.macs.size();
            }
        }
        if (at != d.size()) {
            return virtio_net::ctrl::ERR;
        }
        filter_ = std::move(f);
        return virtio_net::ctrl::OK;
    }

    // Whether the filter takes frame f (QEMU's receive_filter, in its order).
    [[nodiscard]] bool accept(const frame& f) const noexcept {
        if (filter_.promisc) {
            return true;
        }
        const auto* p = reinterpret_cast<const std::uint8_t*>(f.data.data());
        if (f.len >= 16 && p[12] == 0x81 && p[13] == 0x00) {
            const std::uint16_t vid = static_cast<std::uint16_t>((p[14] << 8 | p[15]) & 0xFFF);
            if ((filter_.vlans[vid / 64] >> (vid % 64) & 1u) == 0) {
                return false;
            }
        }
        mac_addr dst;
        std::memcpy(dst.data(), p, 6);
        auto in = [&](std::size_t from, std::size_t to) {
            for (std::size_t i = from; i < to; ++i) {
                if (filter_.macs[i] == dst) {
                    return true;
                }
            }
            return false;
        };
        if ((p[0] & 1u) != 0) {
            if (dst == mac_addr{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}) {
                return !filter_.nobcast;
            }
            if (filter_.nomulti) {
                return false;
            }
            return filter_.allmulti || filter_.multi_overflow || in(filter_.first_multi, filter_.macs.size());
        }
        if (filter_.nouni) {
            return false;
        }
        return filter_.alluni || filter_.uni_overflow || dst == filter_.mac || in(0, filter_.first_multi);
    }

    // ---- TX ---------------------------------------------------------------------------------------
    bool process_tx(std::uint16_t p) {
        vq& v = vqs_[virtio_net::txq_index(p)];
        if (!v.enabled || v.failed) {
            return false;
        }
        pair_state& ps = pairs_[p];
        bool any = false;
        for (;;) {
            virtio::chain c;
            std::uint16_t descs = 1;
            const virtio::pop_status st = v.dev.pop(c, descs, segs_, addr_ok());
            if (st == virtio::pop_status::empty) {
                break;
            }
            any = true;
            if (st != virtio::pop_status::ok || c.readable != c.segments) {
                refuse(p, ring_kind::tx, c.head,
                       st == virtio::pop_status::ok ? virtio::chain_error::read_after_write : v.dev.last_error());
                return true;
            }
            if (const tx_event e = next_tx_event(); e != tx_event::none) {
                e == tx_event::remove ? do_remove() : do_reset();
                return true;
            }
            v.hold(c.head);
            send_chain(p, c);
            complete(p, ring_kind::tx, used_rec{c.head, 0, descs}, 0);
        }
        (void)ps.cp[0].flush_held(writer(p, ring_kind::tx));
        flush_tx_batch(p);
        return any;
    }

    // Gathers header and frame from the chain's buffers; sends the frame.
    void send_chain(std::uint16_t p, const virtio::chain& c) {
        pair_state& ps = pairs_[p];
        const std::uint32_t total = c.read_len;
        if (total < virtio_net::HDR_LEN + 14 || total > virtio_net::HDR_LEN + max_frame_size) {
            ++ps.st.tx_bad_frame;
            return;
        }
        std::uint32_t at = 0;
        bool ok = true;
        for (std::uint16_t i = 0; i < c.segments && ok; ++i) {
            ok = mem_.dma_read(segs_[i].addr, tx_buf_.data() + at, segs_[i].len);
            at += segs_[i].len;
        }
        if (!ok) {
            ++ps.st.tx_dma_errors;
            return;
        }
        virtio_net::net_hdr_v1 h;
        std::memcpy(&h, tx_buf_.data(), sizeof h);
        scratch_.len = total - virtio_net::HDR_LEN;
        std::memcpy(scratch_.data.data(), tx_buf_.data() + virtio_net::HDR_LEN, scratch_.len);
        if ((h.flags & virtio_net::HDR_F_NEEDS_CSUM) != 0 && has(virtio_net::feature::CSUM)) {
            const std::uint32_t start = h.csum_start, off = start + h.csum_offset;
            if (off + 2 > scratch_.len) {
                ++ps.st.tx_bad_frame;
                return;
            }
            // The field holds the pseudo-header sum; the checksum covers start..end (5.1.6.2).
            const std::uint16_t sum = inet::checksum(scratch_.data.data() + start, scratch_.len - start);
            scratch_.data[off] = static_cast<std::byte>(sum >> 8);
            scratch_.data[off + 1] = static_cast<std::byte>(sum & 0xFF);
        }
        if (!link_up_.load(std::memory_order_relaxed)) { // relaxed: under mu_
            ++ps.st.tx_link_down;
            return;
        }
        ++ps.st.tx_frames;
        ps.st.tx_bytes += scratch_.len;
        frame_out(scratch_);
    }

    // ---- RX ---------------------------------------------------------------------------------------
    bool deliver_rx() {
        take_rx_batch(cfg_.rx_frames_per_step);
        active_queues<max_pairs> active;
        for (std::uint16_t p = 0; p < pairs_in_use(); ++p) {
            if (vqs_[virtio_net::rxq_index(p)].enabled) {
                active.add(p);
            }
        }
        for (const frame& f : rx_batch_) {
            if (!accept(f)) {
                ++rx_filtered_;
                continue;
            }
            const auto [ok, p, hash] = steer(f, active);
            if (ok && live()) {
                receive(p, f);
            }
        }
        for (std::uint16_t p = 0; p < npairs_ && live(); ++p) {
            (void)pairs_[p].cp[1].flush_held(writer(p, ring_kind::rx));
        }
        const bool any = !rx_batch_.empty();
        rx_batch_.clear();
        return any;
    }

    // One frame into one chain (or, with MRG_RXBUF, as many as it takes).
    void receive(std::uint16_t p, const frame& f) {
        vq& v = vqs_[virtio_net::rxq_index(p)];
        pair_state& ps = pairs_[p];
        if (v.failed) {
            ++ps.st.rx_no_desc;
            return;
        }
        const bool mrg = has(virtio_net::feature::MRG_RXBUF);
        const std::uint32_t need = virtio_net::HDR_LEN + f.len;
        // Take chains until the frame fits (one, without MRG_RXBUF).
        std::uint32_t room = 0;
        std::uint16_t taken = 0;
        std::uint32_t taken_descs = 0;
        chains_.clear();
        while (room < need && (mrg || taken == 0)) {
            virtio::chain c;
            std::uint16_t descs = 1;
            const virtio::pop_status st = v.dev.pop(c, descs, segs_, addr_ok());
            if (st == virtio::pop_status::empty) {
                break;
            }
            if (st != virtio::pop_status::ok || c.readable != 0) {
                refuse(p, ring_kind::rx, c.head,
                       st == virtio::pop_status::ok ? virtio::chain_error::read_after_write : v.dev.last_error());
                return;
            }
            ++taken;
            taken_descs += descs;
            room += c.write_len;
            chains_.push_back({c, descs, std::vector<virtio::segment>(segs_.begin(), segs_.begin() + c.segments)});
        }
        if (room < need) {
            v.dev.unpop(taken, taken_descs); // not enough: the chains stay available
            taken == 0 || mrg ? ++ps.st.rx_no_desc : ++ps.st.rx_oversize;
            return;
        }
        // The header, then the frame, across the chains' writable buffers.
        virtio_net::net_hdr_v1 h{};
        h.num_buffers = static_cast<std::uint16_t>(chains_.size());
        if (nb_fault_count_ != 0) {
            --nb_fault_count_;
            h.num_buffers = static_cast<std::uint16_t>(static_cast<std::int32_t>(chains_.size()) + nb_fault_delta_);
        }
        if (has(virtio_net::feature::GUEST_CSUM)) {
            h.flags = virtio_net::HDR_F_DATA_VALID; // the sim's wire never corrupts a frame
        }
        std::memcpy(rx_buf_.data(), &h, sizeof h);
        std::memcpy(rx_buf_.data() + sizeof h, f.data.data(), f.len);
        std::uint32_t at = 0;
        bool ok = true;
        for (const auto& [c, descs, segs] : chains_) {
            v.hold(c.head);
            std::uint32_t wrote = 0;
            for (const virtio::segment& s : segs) {
                const std::uint32_t k = need - at < s.len ? need - at : s.len;
                if (k != 0 && ok) {
                    ok = mem_.dma_write(s.addr, rx_buf_.data() + at, k);
                }
                at += k;
                wrote += k;
            }
            complete(p, ring_kind::rx, used_rec{c.head, ok ? wrote : 0, descs}, c.write_len);
        }
        ps.st.rx_merged += chains_.size() > 1 ? 1 : 0;
        if (ok) {
            ++ps.st.rx_frames;
            ps.st.rx_bytes += f.len;
        } else {
            ++ps.st.rx_dma_errors;
        }
    }

    // ---- used entries, through the fault plan -------------------------------------------------
    used_writer writer(std::uint16_t p, ring_kind r) noexcept { return {this, p, r}; }
    void complete(std::uint16_t p, ring_kind r, const used_rec& u, std::uint32_t buf_len) {
        pairs_[p].cp[static_cast<std::size_t>(r)].complete(u, buf_len, comp_faults::of(faults_, r), steps_,
                                                          pairs_[p].st, writer(p, r));
    }
    void write_used(std::uint16_t p, ring_kind r, used_rec u, std::uint32_t buf_len) {
        vq& v = vqs_[r == ring_kind::tx ? virtio_net::txq_index(p) : virtio_net::rxq_index(p)];
        if (!v.enabled || !live()) {
            return;
        }
        const std::uint32_t n = v.dev.size();
        const comp_fault fault = take_corruption(faults_, r, pairs_[p].st);
        v.release(u.id);
        if (r == ring_kind::tx && cfg_.tx_batch > 1 && has(virtio::feature::IN_ORDER)) {
            tx_batch_state& b = tx_batches_[p];
            if (fault == comp_fault::none) {
                b.last = static_cast<std::uint16_t>(u.id);
                b.descs += u.descs;
                if (++b.held == cfg_.tx_batch) {
                    flush_tx_batch(p);
                }
                return;
            }
            flush_tx_batch(p); // what is held goes first: the order stays the ring's
        }
        write_pause(true); // under write jitter: land it while the driver polls
        const auto id = static_cast<std::uint16_t>(u.id);
        switch (fault) {
        case comp_fault::index_out_of_range: v.dev.push_used(static_cast<std::uint16_t>(n + 7), u.len, 1); break;
        case comp_fault::length_too_large: v.dev.push_used(id, buf_len + 512, u.descs); break;
        case comp_fault::gen_out_of_order: // the index (packed: the position) runs past an entry never written
            v.dev.skip_used(u.descs);
            v.dev.push_used(id, u.len, u.descs);
            break;
        case comp_fault::never_posted:
            v.dev.push_used(id, u.len, u.descs);
            // Split: half a ring away (the plugin reads used entries in order, IN_ORDER).
            // Packed: used buffers may come in any order (no IN_ORDER), so the id must be
            // one the driver has not handed over: none available ahead, none held here,
            // or, when every id is out, the one just used.
            v.dev.push_used(v.dev.packed() ? v.id_not_out(id) : static_cast<std::uint16_t>((u.id + n / 2) % n),
                            u.len, 1);
            break;
        case comp_fault::double_completion:
            v.dev.push_used(id, u.len, u.descs);
            v.dev.push_used(id, u.len, u.descs);
            break;
        case comp_fault::none: v.dev.push_used(id, u.len, u.descs); break;
        }
        publish(v);
    }
    void publish(vq& v) {
        write_pause();
        v.dev.publish_used();
        // A vector the device has no interrupt for (VIRTIO_MSI_NO_VECTOR, 0xFFFF, among them)
        // leaves the queue enabled and silent, as QEMU's virtio-pci does (docs/real-devices.md,
        // virtio-net-pci 4): the driver polls it.
        if (v.dev.need_interrupt() && v.s.vector < cfg_.max_pairs) {
            ++raised_[v.s.vector];
            irqs_[v.s.vector].raise();
        }
    }
    // The held transmitq chains as one used entry: the last one's id, then the index moved
    // past the rest (2.7.9).
    void flush_tx_batch(std::uint16_t p) {
        tx_batch_state& b = tx_batches_[p];
        if (b.held == 0) {
            return;
        }
        vq& v = vqs_[virtio_net::txq_index(p)];
        const std::uint16_t held = b.held;
        const std::uint32_t descs = b.descs;
        b.held = 0;
        b.descs = 0;
        if (!v.enabled || !live()) {
            return;
        }
        write_pause(true);
        if (v.dev.packed()) {
            v.dev.push_used(b.last, 0, static_cast<std::uint16_t>(descs));
        } else {
            v.dev.push_used(b.last, 0, 1);
            for (std::uint16_t i = 1; i < held; ++i) {
                v.dev.skip_used(1);
            }
        }
        ++tx_batch_entries_;
        publish(v);
    }

    virtio_net_device_config cfg_;
    virtio_net::window window_{};
    std::array<sim_irq, max_pairs> irqs_{};
    std::array<std::atomic<std::uint64_t>, 2 * max_pairs + 1> kicks_{}; // the controlq's last
    std::array<vq, 2 * max_pairs> vqs_{};
    std::array<pair_state, max_pairs> pairs_{};
    struct tx_batch_state {
        std::uint16_t held = 0; // chains sent and not yet confirmed
        std::uint16_t last = 0; // the newest one's head
        std::uint32_t descs = 0; // ring positions the held chains took (packed rings)
    };
    std::array<tx_batch_state, max_pairs> tx_batches_{};
    // The controlq and the receive filter it programs.
    static constexpr std::uint16_t ctrlq_max = 64;           // QEMU's controlq size
    static constexpr std::size_t mac_table_entries = 64;     // QEMU's MAC_TABLE_ENTRIES
    struct rx_filter {
        bool promisc = true, allmulti = false, alluni = false, nomulti = false, nouni = false, nobcast = false;
        mac_addr mac{};
        std::vector<mac_addr> macs;        // unicast entries, then multicast from first_multi
        std::size_t first_multi = 0;
        bool uni_overflow = false, multi_overflow = false;
        std::array<std::uint64_t, (max_vlan_id + 1) / 64> vlans = all_vlans();
    };
    static constexpr std::array<std::uint64_t, (max_vlan_id + 1) / 64> all_vlans() noexcept {
        std::array<std::uint64_t, (max_vlan_id + 1) / 64> a{};
        a.fill(~0ull);
        return a;
    }
    vq ctrl_;
    rx_filter filter_{};
    std::uint16_t curr_pairs_ = 1;
    ctrl_fault ctrl_fault_ = ctrl_fault::none;
    std::uint32_t ctrl_fault_count_ = 0, ctrl_fault_skip_ = 0;
    std::uint64_t ctrl_commands_ = 0, ctrl_errors_ = 0, rx_filtered_ = 0;
    std::array<std::uint8_t, 2048> ctrl_buf_{};
    std::uint64_t tx_batch_entries_ = 0;
    std::array<std::uint64_t, max_pairs> raised_{};
    std::uint8_t status_ = 0;
    std::uint64_t driver_features_ = 0;
    std::uint64_t not_offered_ = 0; // bits a driver took that were not offered (dropped)
    std::uint16_t npairs_ = 0;
    std::atomic<bool> removed_{false};
    std::uint32_t nb_fault_count_ = 0;
    std::int32_t nb_fault_delta_ = 0;
    std::uint64_t rx_inactive_ = 0;
    std::vector<device_violation> violations_;
    std::vector<virtio::segment> segs_;
    struct taken_chain {
        virtio::chain c;
        std::uint16_t descs;
        std::vector<virtio::segment> segs;
    };
    std::vector<taken_chain> chains_;
    std::array<std::byte, virtio_net::HDR_LEN + max_frame_size> tx_buf_{};
    std::array<std::byte, virtio_net::HDR_LEN + max_frame_size> rx_buf_{};
};

} // namespace npa::sim
