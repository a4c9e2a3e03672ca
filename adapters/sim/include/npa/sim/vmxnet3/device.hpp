// npa/sim/vmxnet3/device.hpp: the hypervisor's emulation of a vmxnet3 (the device side of
// npa/plugins/vmxnet3/defs.hpp), attached to a sim switch as a frame_port.
//
// Registers are trapped accesses (vmxnet3::mmio): BAR0 doorbell writes are latched and
// read when the device is stepped; IMR writes mask and unmask the vector's sim_irq at
// once; BAR1 commands run at once and leave their answer in CMD. The device reads only
// what the ABI says it may: the shared area at DSAL/DSAH, the queue table at queueDescPA,
// descriptors whose gen bit is the device's, buffers through guest_memory (bounds-checked;
// a bad address is a driver error that stops the queue: status.error, ECR TQERR/RQERR).
//
// TX: a doorbell (TXPROD) makes the device process the ring at the next step; without
// one, the emulation's TX timer does it every tx_timer_steps (deferred packets, below the
// txThreshold the device sets, are never stranded). One completion per packet with cq.
// RX: frames from the wire pass the RX filter (MAC, RX mode, VLAN table), are steered by
// a flow hash when the guest enabled RSS, land in a ring 1 head buffer (and ring 2 body
// buffers if longer) and are completed with gen bits. Interrupt per intrIdx, events on
// eventIntrIdx, auto-masked when the driver set autoMask, spaced by the vector's moderation
// level (moderation.hpp). GET_CONF_INTR answers vmxnet3_device_config::conf_intr; with INTx
// or MSI the device has one vector, and ICR reads 1 once per interrupt raised on it.
//
// Bring-up is the driver's (vmxnet3::probe, the plugin's attach): VRRS, then UVRS, each
// with the one revision bit the device reported; then DSAL/DSAH; commands only after the
// revisions, those that read the shared area only once it is registered; ACTIVATE_DEV only
// when not active, with the revision 1 magic and a configuration the device can take.
// Anything out of order or out of range is refused (ignored, or the command answers 1) and
// counted (protocol_violations(), the reason in violations()).
//
// Policy: MAC, VLAN and RX-mode changes are put to the port policy first (filter.hpp); a
// refusal keeps the old configuration and is answered in CMD (and, for the MAC, by
// MACL/MACH reading back the old address); the reason is kept for the hypervisor
// (last_refusal()). Time is explicit: step() runs everything once; run_until() steps
// until a predicate holds.
//
// Hostile behaviour (fault_plan, faults.hpp) on both completion rings alike, TX and RX:
// a dropped completion is never written (the buffer was used, RX: filled); a delayed one
// is written, in order, that many steps later; a reordered pair is written second first.
// Corruptions change the entry (index, length, ring id) or its gen bit as it is written.
//
// The model by job: this file (the class, its state, stepping), regs.hpp (the BARs and
// the bring-up protocol), commands.hpp (BAR1 commands, activation, reset), filter.hpp
// (RX filter and TX checks under the policy), moderation.hpp (interrupt spacing), rx.hpp
// and tx.hpp (the engines). Inbox, faults, link and the completion path: device_model.
#pragma once

#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/sim/device/base.hpp>
#include <npa/sim/device/completion.hpp>
#include <npa/sim/device/steering.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/sim_irq.hpp>
#include <npa/sim/vmxnet3/config.hpp>
#include <npa/sim/vmxnet3/filter.hpp>
#include <npa/sim/vmxnet3/moderation.hpp>
#include <npa/sim/wire.hpp>
#include <npa/status.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

namespace npa::sim {

class vmxnet3_device final : public frame_port, public device_model<vmxnet3_device> {
    friend class device_model<vmxnet3_device>;

public:
    static constexpr std::uint32_t max_queues = vmxnet3::MAX_TX_QUEUES;

    [[nodiscard]] static result<std::unique_ptr<vmxnet3_device>> create(guest_memory& mem,
                                                                        const vmxnet3_device_config& cfg) {
        if (cfg.profile.max_queues == 0 || cfg.profile.max_queues > max_queues ||
            !vmxnet3::ring_size_ok(cfg.profile.max_ring_size, vmxnet3::TX_RING_MAX_SIZE)) {
            return {errc::invalid_argument, "vmxnet3 device: bad profile (queues 1..8, ring a multiple of 32)"};
        }
        std::unique_ptr<vmxnet3_device> d(new (std::nothrow) vmxnet3_device(mem, cfg));
        if (!d) {
            return {errc::no_memory, "vmxnet3 device: out of memory"};
        }
        if (const status st = d->carve(); !st) {
            return st;
        }
        return d;
    }

    vmxnet3_device(const vmxnet3_device&) = delete;
    vmxnet3_device& operator=(const vmxnet3_device&) = delete;

    // ---- what the guest gets ------------------------------------------------------------
    [[nodiscard]] vmxnet3::window& window() noexcept { return window_; }
    [[nodiscard]] vmxnet3::control_port control_port() noexcept { return port_; }
    [[nodiscard]] sim_irq& irq(std::uint32_t vector) noexcept { return irqs_[vector]; }
    [[nodiscard]] vmxnet3::mmio mmio() noexcept { return io_; }
    /// The driver shared area carved for the guest (the memory a hostile device may write).
    [[nodiscard]] vmxnet3::driver_shared* driver_area() noexcept { return area_; }
    /// Hostile register reads (faults.hpp); set before the guest attaches.
    void set_register_fault(register_fault f) noexcept { reg_fault_ = f; }

    /// Hostile LOAD_PLUGIN answers: report `extra` bytes more than the image it copied.
    void set_plugin_size_fault(std::uint32_t extra) noexcept { plugin_size_fault_ = extra; }

    // ---- the hypervisor's side ------------------------------------------------------------
    /// The plugin images the hypervisor holds, by device id (image::pci_device_id), that
    /// LOAD_PLUGIN hands out (nullptr: none). The store belongs to the host: a backend
    /// re-plugged on another host answers with that host's images. It must outlive the
    /// device or be replaced.
    void set_plugin_store(const vmxnet3_plugin_store* s) {
        std::lock_guard g(mu_);
        plugins_ = s;
    }
    /// The hypervisor's policy for this port (nullptr: everything allowed); it must
    /// outlive the device or be replaced.
    void set_policy(const port_policy* p) {
        std::lock_guard g(mu_);
        filter_.set_policy(p);
    }
    [[nodiscard]] const char* last_refusal() const {
        std::lock_guard g(mu_);
        return last_refusal_;
    }
    [[nodiscard]] std::uint64_t refusals() const {
        std::lock_guard g(mu_);
        return refusals_;
    }
    [[nodiscard]] mac_addr mac() const {
        std::lock_guard g(mu_);
        return filter_.mac;
    }
    [[nodiscard]] std::uint32_t rx_mode() const {
        std::lock_guard g(mu_);
        return filter_.rx_mode;
    }
    [[nodiscard]] bool vlan_allowed(std::uint16_t vid) const {
        std::lock_guard g(mu_);
        return filter_.vlan_ok(vid);
    }
    [[nodiscard]] bool active() const {
        std::lock_guard g(mu_);
        return active_;
    }
    [[nodiscard]] bool removed() const noexcept { return removed_.load(); }

    /// Bring-up protocol breaches (wrong order, bad values), a subset of violations().
    [[nodiscard]] std::uint64_t protocol_violations() const {
        std::lock_guard g(mu_);
        return protocol_violations_;
    }
    /// The moderation level in effect for an interrupt vector (read at ACTIVATE_DEV and
    /// UPDATE_IML), and how many steps a raised cause waited for its gap.
    [[nodiscard]] std::uint8_t mod_level(std::uint32_t vector) const {
        std::lock_guard g(mu_);
        return moderation_.level(vector);
    }
    [[nodiscard]] std::uint64_t irq_held_steps(std::uint32_t vector) const {
        std::lock_guard g(mu_);
        return moderation_.held(vector);
    }
    /// Reads of CMD: a driver reads it back after the commands that answer (the GET_*
    /// commands, ACTIVATE_DEV), never after the UPDATE_* ones (Linux's vmxnet3).
    [[nodiscard]] std::uint64_t cmd_reads() const {
        std::lock_guard g(mu_);
        return cmd_reads_;
    }
    /// RESET_DEV commands and hypervisor resets.
    [[nodiscard]] std::uint64_t resets() const {
        std::lock_guard g(mu_);
        return resets_;
    }
    [[nodiscard]] std::vector<std::string> violations() const {
        std::lock_guard g(mu_);
        return violations_;
    }
    [[nodiscard]] vmxnet3_queue_counters counters(std::uint32_t q) const {
        std::lock_guard g(mu_);
        return q_[q].st;
    }
    [[nodiscard]] std::uint32_t rx_posted(std::uint32_t q, std::uint32_t ring = 0) const {
        std::lock_guard g(mu_);
        return static_cast<std::uint32_t>(q_[q].posted[ring].size());
    }
    [[nodiscard]] std::uint32_t tx_threshold_written(std::uint32_t q) const {
        std::lock_guard g(mu_);
        return active_ && q < ntx_ ? txqd(q)->ctrl.txThreshold.get() : 0;
    }
    [[nodiscard]] std::uint64_t rx_filtered() const {
        std::lock_guard g(mu_);
        return rx_filtered_;
    }
    /// Every RX drop before a queue was chosen.
    [[nodiscard]] vmxnet3_device_stats device_stats() const {
        vmxnet3_device_stats s;
        {
            std::lock_guard g(mu_);
            s.rx_inactive = rx_dropped_inactive_;
            s.rx_link_down = rx_link_down_;
            s.rx_filtered = rx_filtered_;
        }
        s.rx_overrun = inbox_.overrun();
        return s;
    }

    // ---- the wire -------------------------------------------------------------------------
    void frame_in(const frame& f) noexcept override { inbox_.push(f); }


    // ---- time (run_until(), inject(), faults(): device_model) ------------------------------
    /// One device step: link timer, RX buffers fetched, wire -> RX, TX rings, delayed
    /// completions, interrupts. Returns true if anything happened.
    bool step() {
        std::lock_guard g(mu_);
        ++steps_;
        tick_link();
        if (removed_.load() || !active_) {
            rx_dropped_inactive_ += inbox_.drop_all();
            return false;
        }
        bool any = false;
        for (std::uint32_t q = 0; q < nrx_; ++q) {
            any |= fetch_rx(q);
        }
        any |= deliver_rx();
        for (std::uint32_t q = 0; q < nrx_ && active_; ++q) {
            any |= q_[q].rxp.flush(steps_, comp_faults::of(faults_, ring_kind::rx), rx_writer{this, q});
        }
        for (std::uint32_t q = 0; q < ntx_ && active_; ++q) {
            any |= process_tx(q);
            any |= q_[q].txp.flush(steps_, comp_faults::of(faults_, ring_kind::tx), tx_writer{this, q});
        }
        moderation_.deliver(steps_, irqs_, (intr_ctrl_ & vmxnet3::IC_DISABLE_ALL) == 0, auto_mask_);
        return any;
    }

    /// The sim's RSS (steering.hpp): one flow always lands on one queue.
    static std::uint32_t flow_hash(const frame& f) noexcept { return rss_hash(f); }

private:
    struct rx_buf {
        std::uint32_t slot;
        iova_t addr;
        std::uint32_t len;
    };
    struct dq {
        gen_consumer<vmxnet3::tx_traits> tx;
        gen_producer<vmxnet3::tx_comp_traits> txc;
        std::array<gen_consumer<vmxnet3::rx_traits>, 2> rx;
        gen_producer<vmxnet3::rx_comp_traits> rxc;
        std::array<std::deque<rx_buf>, 2> posted;
        std::unordered_set<iova_t> rx_addrs;
        std::uint32_t tx_vec = 0, rx_vec = 0, tx_size = 0;
        std::uint64_t last_tx_step = 0;
        bool tx_failed = false, rx_failed = false;
        comp_path<vmxnet3::tx_comp_desc> txp;
        comp_path<vmxnet3::rx_comp_desc> rxp;
        vmxnet3_queue_counters st{};
        std::vector<std::pair<std::uint32_t, vmxnet3::tx_desc>> chain;  // a packet being gathered
    };

    vmxnet3_device(guest_memory& mem, const vmxnet3_device_config& cfg)
        : device_model(mem, cfg.inbox_limit), cfg_(cfg), filter_(cfg.perm_mac) {
        io_ = vmxnet3::mmio{this, &mmio_write, &mmio_read};
    }

    // The guest's allocation for this device (done by the sim on the guest's behalf): the
    // shared area, the queue table, ring memory for the largest rings, the multicast
    // table. Selecting the revisions and registering the shared area (VRRS, UVRS, magic,
    // DSAL/DSAH) is the driver's probe (vmxnet3::probe, run by the plugin's attach).
    status carve() {
        const guest_block sh = mem_.allocate(sizeof(vmxnet3::driver_shared), 4096);
        const std::size_t table_bytes = vmxnet3::queue_table_bytes(max_queues);
        const guest_block tb = mem_.allocate(table_bytes, vmxnet3::QUEUE_DESC_ALIGN);
        const std::size_t per_q = ring_bytes(cfg_.profile.max_ring_size);
        const guest_block rb = mem_.allocate(per_q * cfg_.profile.max_queues, 4096);
        const guest_block mc = mem_.allocate(max_mcast_addrs * 6, 64);
        if (!sh || !tb || !rb || !mc) {
            return {errc::no_memory, "vmxnet3 device: guest memory too small for the device's rings"};
        }
        auto* shared = reinterpret_cast<vmxnet3::driver_shared*>(sh.virt);
        window_ = vmxnet3::window(io_, {sh.virt, sh.iova, sh.size}, {tb.virt, tb.iova, tb.size},
                                  {rb.virt, rb.iova, rb.size}, cfg_.profile);
        port_ = vmxnet3::control_port(io_, shared, {mc.virt, mc.iova, mc.size});
        area_ = shared;
        return status::success();
    }

    static std::size_t ring_bytes(std::uint32_t max_ring) noexcept {
        // What npa::vmxnet3_queue_bytes asks for, with room for a ring 2 of up to 256.
        const std::size_t a = vmxnet3::RING_BA_ALIGN;
        auto up = [&](std::size_t n) { return (n + a - 1) / a * a; };
        return up(max_ring * 16ull) * 3 + up(max_ring * std::size_t{vmxnet3::HDR_COPY_SIZE}) +
               up(256 * 16) * 2 + up((max_ring + 256) * 16ull);
    }

    // ---- MMIO traps ---------------------------------------------------------------------
    static void mmio_write(void* ctx, vmxnet3::bar b, std::uint32_t off, std::uint32_t v) noexcept {
        static_cast<vmxnet3_device*>(ctx)->on_write(b, off, v);
    }
    static std::uint32_t mmio_read(void* ctx, vmxnet3::bar b, std::uint32_t off) noexcept {
        auto* d = static_cast<vmxnet3_device*>(ctx);
        return d->reg_fault_.apply(static_cast<std::uint32_t>(b), off, d->on_read(b, off));
    }

    void refuse(const char* why) noexcept {
        last_refusal_ = why;
        ++refusals_;
    }

    static const char* command_name(std::uint32_t c) noexcept {
        using namespace vmxnet3::cmd;
        switch (c) {
        case ACTIVATE_DEV: return "ACTIVATE_DEV";
        case UPDATE_RX_MODE: return "UPDATE_RX_MODE";
        case UPDATE_VLAN_FILTERS: return "UPDATE_VLAN_FILTERS";
        case UPDATE_MAC_FILTERS: return "UPDATE_MAC_FILTERS";
        case UPDATE_FEATURE: return "UPDATE_FEATURE";
        case UPDATE_IML: return "UPDATE_IML";
        case UPDATE_RSSIDT: return "UPDATE_RSSIDT";
        case LOAD_PLUGIN: return "LOAD_PLUGIN";
        default: return "a command";
        }
    }
    // Commands that make the device read the driver's shared area.
    static bool reads_shared_area(std::uint32_t c) noexcept {
        using namespace vmxnet3::cmd;
        return c == ACTIVATE_DEV || c == UPDATE_RX_MODE || c == UPDATE_VLAN_FILTERS ||
               c == UPDATE_MAC_FILTERS || c == UPDATE_FEATURE || c == UPDATE_IML || c == LOAD_PLUGIN;
    }

    // Guest memory the device will read as structures: in bounds and aligned as the ABI
    // asks, or nullptr (a misaligned address from the driver is refused, never cast).
    std::byte* map(std::uint64_t iova, std::size_t bytes, std::uint64_t align) noexcept {
        return iova % align == 0 ? mem_.translate(iova, bytes) : nullptr;
    }
    vmxnet3::driver_shared* shared() noexcept {
        return reinterpret_cast<vmxnet3::driver_shared*>(
            map(dsa_, sizeof(vmxnet3::driver_shared), alignof(vmxnet3::driver_shared)));
    }
    vmxnet3::tx_queue_desc* txqd(std::uint32_t q) const noexcept {
        return reinterpret_cast<vmxnet3::tx_queue_desc*>(table_) + q;
    }
    vmxnet3::rx_queue_desc* rxqd(std::uint32_t q) const noexcept {
        return reinterpret_cast<vmxnet3::rx_queue_desc*>(table_ + ntx_ * sizeof(vmxnet3::tx_queue_desc)) + q;
    }

    // ---- regs.hpp: the BARs and the bring-up protocol -------------------------------------
    void on_write(vmxnet3::bar b, std::uint32_t off, std::uint32_t v) noexcept;
    std::uint32_t on_read(vmxnet3::bar b, std::uint32_t off) noexcept;
    template <class... Args>
    void protocol_violation(const char* fmt, Args... args);
    template <class... Args>
    std::uint32_t refuse_activation(const char* fmt, Args... args);

    // ---- commands.hpp ---------------------------------------------------------------------
    std::uint32_t run_command(std::uint32_t c) noexcept;
    std::uint32_t activate(vmxnet3::driver_shared* sh) noexcept;
    std::uint32_t load_plugin(vmxnet3::driver_shared* sh) noexcept;
    bool read_mod_levels(const vmxnet3::intr_conf& ic);
    const char* read_rss(const vmxnet3::driver_shared* sh, std::uint32_t nrx) noexcept;
    bool rss_refused(const vmxnet3::driver_shared* sh, std::uint32_t c) noexcept;
    void do_reset() noexcept;
    void do_remove() noexcept {
        removed_.store(true);
        active_ = false;
    }
    template <class... Args>
    void violation(std::uint32_t q, bool tx, std::uint32_t slot, std::uint32_t code,
                   const char* fmt, Args... args);
    /// A link change shows in ECR (device_model calls it).
    void link_changed(bool /*up*/) noexcept { raise_events(vmxnet3::ecr::LINK); }
    /// Events go to the shared area's ecr (Vmxnet3_DriverShared::ecr), where drivers read
    /// them (Linux vmxnet3_process_events, QEMU vmxnet3_set_events); ecr_ is the device's copy.
    void raise_events(std::uint32_t bits) noexcept {
        ecr_ |= bits;
        publish_ecr();
        if (active_) {
            moderation_.cause(event_vec_);  // the event vector (QEMU: vmxnet3_set_link_status)
        }
    }
    void publish_ecr() noexcept {
        if (dsa_halves_ == 3u) {
            if (vmxnet3::driver_shared* sh = shared(); sh != nullptr) {
                sh->ecr.store(ecr_, std::memory_order_release);
            }
        }
    }

    // ---- rx.hpp ---------------------------------------------------------------------------
    bool fetch_rx(std::uint32_t q);
    bool deliver_rx();
    void receive(std::uint32_t q, frame& f, const eth::header& h, std::uint32_t hash);
    void write_rx_comp(std::uint32_t q, vmxnet3::rx_comp_desc c, std::uint32_t buf_len);
    // Where a completion that leaves the fault path is written: queue q's ring.
    struct rx_writer {
        vmxnet3_device* dev;
        std::uint32_t q;
        void operator()(const vmxnet3::rx_comp_desc& c, std::uint32_t buf_len) const {
            dev->write_rx_comp(q, c, buf_len);
        }
    };

    // ---- tx.hpp ---------------------------------------------------------------------------
    bool process_tx(std::uint32_t q);
    bool send_packet(std::uint32_t q);
    bool tx_allowed(dq& d, std::uint32_t len, std::uint32_t insert_vid, std::uint32_t seg_len) noexcept;
    void write_tx_comp(std::uint32_t q, vmxnet3::tx_comp_desc c);
    struct tx_writer {
        vmxnet3_device* dev;
        std::uint32_t q;
        void operator()(const vmxnet3::tx_comp_desc& c, std::uint32_t) const {
            dev->write_tx_comp(q, c);
        }
    };

    vmxnet3_device_config cfg_;
    vmxnet3::mmio io_{};
    vmxnet3::window window_{};
    vmxnet3::driver_shared* area_ = nullptr;
    vmxnet3::control_port port_{};
    std::array<sim_irq, vmxnet3::MAX_INTRS> irqs_{};
    std::array<std::atomic<std::uint32_t>, max_queues> txprod_{};
    std::array<std::atomic<bool>, max_queues> kick_{};
    std::array<std::array<std::atomic<std::uint32_t>, 2>, max_queues> rxprod_{};

    vmxnet3_filter filter_;
    vmxnet3_moderation moderation_;
    const char* last_refusal_ = nullptr;
    std::uint64_t refusals_ = 0;
    std::uint32_t rev_ = 0, upt_rev_ = 0; // VRRS / UVRS selections (0: none yet)
    std::uint32_t dsa_halves_ = 0;        // bit 0: DSAL written, bit 1: DSAH written
    std::uint64_t protocol_violations_ = 0;
    std::uint64_t dsa_ = 0;
    std::uint32_t cmd_result_ = 0, macl_ = 0, ecr_ = 0, intr_ctrl_ = 0;
    std::uint32_t event_vec_ = 0;  // intrConf.eventIntrIdx at the last ACTIVATE_DEV
    bool auto_mask_ = true;        // intrConf.autoMask: a vector masks itself as it fires
    std::uint32_t mtu_ = 1500;  // Vmxnet3_MiscConf::mtu at the last ACTIVATE_DEV
    std::uint64_t features_ = 0;
    // The RSS indirection table the guest handed over (UPT1_RSSConf), steering with F_RSS.
    std::array<std::uint8_t, vmxnet3::rss::MAX_IND_TABLE_SIZE> rss_ind_{};
    std::uint32_t rss_ind_n_ = 0;
    bool active_ = false;
    std::atomic<bool> removed_{false};
    std::byte* table_ = nullptr;
    std::uint32_t ntx_ = 0, nrx_ = 0;
    std::array<dq, max_queues> q_{};
    register_fault reg_fault_{};
    const vmxnet3_plugin_store* plugins_ = nullptr;
    std::uint32_t plugin_size_fault_ = 0;
    std::uint64_t resets_ = 0, rx_filtered_ = 0, rx_dropped_inactive_ = 0, cmd_reads_ = 0;
    std::vector<std::string> violations_;
    std::byte big_[vmxnet3::MAX_TX_BUF_SIZE * 4]{};
};

} // namespace npa::sim

#include <npa/sim/vmxnet3/commands.hpp>
#include <npa/sim/vmxnet3/regs.hpp>
#include <npa/sim/vmxnet3/rx.hpp>
#include <npa/sim/vmxnet3/tx.hpp>
