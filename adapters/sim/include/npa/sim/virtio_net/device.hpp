// npa/sim/virtio_net/device.hpp: a virtio network device (virtio 1.2 section 5.1) as a
// hypervisor's back end would run it, on the device side of npa's virtqueue core
// (npa/virtio/device_queue.hpp: split rings, or packed ones when RING_PACKED is offered,
// as QEMU's packed=on, and taken), attached to a sim wire as a frame_port.
//
// Packed rings (2.8): a used descriptor names its buffer by id and skips as many positions
// as the buffer took; without IN_ORDER the driver may see buffers used in any order, so
// the fault plan's corruptions mean there: an id past the ring, a length past the buffer,
// a position skipped (gen_out_of_order: the driver waits at a descriptor never marked
// used), an id the driver has not handed over (never_posted: none available ahead, none
// held by the device, else the one just used), the same id twice. IN_ORDER's batches
// (tx_batch, rx_batch) on a packed ring: one used descriptor, the last buffer's id, at the
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
//
// The model by job: this file (the class, its state, stepping, what tests observe),
// transport.hpp (the trapped transport calls, feature and status handling, queue setup, the
// configuration space, resets), ctrl.hpp (the controlq's commands and the receive filter
// they program), tx.hpp and rx.hpp (the engines), used.hpp (used entries through the fault
// plan, IN_ORDER batches on either queue, interrupts). Inbox, faults, link and the completion
// path: device_model.
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
#include <span>
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
    /// With IN_ORDER negotiated, receiveq chains are used in batches of up to this many
    /// with one used entry each, as a device may (2.7.9, 2.8): the chains before the
    /// batch's last were written completely (a frame that filled its buffer, or a merged
    /// frame's pieces before its last), since the driver takes them so; a chain not filled
    /// ends its batch, as does the end of a step. 1: an entry per chain, as QEMU 10 and
    /// DPDK 22.11's vhost library write a receiveq's.
    std::uint16_t rx_batch = 1;
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
        return batch_entries_[static_cast<std::size_t>(ring_kind::tx)];
    }
    /// Used entries that stood for a batch of receiveq chains, more than one (config rx_batch).
    [[nodiscard]] std::uint64_t rx_batch_entries() const {
        std::lock_guard g(mu_);
        return batch_entries_[static_cast<std::size_t>(ring_kind::rx)];
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
            flush_batch(p, ring_kind::tx);
            flush_batch(p, ring_kind::rx);
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

    // ---- the transport (trapped calls) and resets: transport.hpp ------------------------------
    static virtio_net_device& self_of(void* ctx) noexcept { return *static_cast<virtio_net_device*>(ctx); }
    static std::uint64_t op_features(void* ctx) noexcept;
    static void op_set_features(void* ctx, std::uint64_t f) noexcept;
    static std::uint8_t op_status(void* ctx) noexcept;
    static void op_set_status(void* ctx, std::uint8_t s) noexcept;
    static std::uint16_t op_queue_max(void* ctx, std::uint16_t q) noexcept;
    static bool op_queue_enable(void* ctx, std::uint16_t q, const virtio::queue_setup& s) noexcept;
    static void op_notify(void* ctx, std::uint16_t q) noexcept;
    static void op_irq_mask(void* ctx, std::uint16_t vector, bool masked) noexcept;
    static void op_read_config(void* ctx, std::uint32_t off, void* out, std::uint32_t len) noexcept;
    static constexpr virtio::transport_ops ops_{&op_features,  &op_set_features, &op_status,
                                                &op_set_status, &op_queue_max,    &op_queue_enable,
                                                &op_notify,     &op_irq_mask,     &op_read_config};

    void device_reset() noexcept;
    void do_reset() noexcept;
    void do_remove() noexcept;

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

    // ---- the controlq (5.1.6.5) and the receive filter: ctrl.hpp --------------------------------
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

    bool process_ctrl();
    std::uint8_t command(std::span<const std::uint8_t> b);
    std::uint8_t mac_table(std::span<const std::uint8_t> d);
    [[nodiscard]] bool accept(const frame& f) const noexcept;

    // ---- TX: tx.hpp -------------------------------------------------------------------------------
    bool process_tx(std::uint16_t p);
    void send_chain(std::uint16_t p, const virtio::chain& c);

    // ---- RX: rx.hpp -------------------------------------------------------------------------------
    bool deliver_rx();
    void receive(std::uint16_t p, const frame& f);

    // ---- used entries, through the fault plan: used.hpp ---------------------------------------
    used_writer writer(std::uint16_t p, ring_kind r) noexcept { return {this, p, r}; }
    void complete(std::uint16_t p, ring_kind r, const used_rec& u, std::uint32_t buf_len);
    void write_used(std::uint16_t p, ring_kind r, used_rec u, std::uint32_t buf_len);
    void publish(vq& v);
    void flush_batch(std::uint16_t p, ring_kind r);

    virtio_net_device_config cfg_;
    virtio_net::window window_{};
    std::array<sim_irq, max_pairs> irqs_{};
    std::array<std::atomic<std::uint64_t>, 2 * max_pairs + 1> kicks_{}; // the controlq's last
    std::array<vq, 2 * max_pairs> vqs_{};
    std::array<pair_state, max_pairs> pairs_{};
    struct batch_state {
        std::uint16_t held = 0;  // chains used and not yet confirmed
        std::uint16_t last = 0;  // the newest one's head
        std::uint32_t len = 0;   // and its used length
        std::uint32_t descs = 0; // ring positions the held chains took (packed rings)
    };
    std::array<std::array<batch_state, 2>, max_pairs> batches_{}; // [pair][ring_kind]
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
    std::array<std::uint64_t, 2> batch_entries_{}; // [ring_kind]
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

#include <npa/sim/virtio_net/ctrl.hpp>
#include <npa/sim/virtio_net/rx.hpp>
#include <npa/sim/virtio_net/transport.hpp>
#include <npa/sim/virtio_net/tx.hpp>
#include <npa/sim/virtio_net/used.hpp>
