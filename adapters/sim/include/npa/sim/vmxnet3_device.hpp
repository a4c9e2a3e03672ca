// npa/sim/vmxnet3_device.hpp: the hypervisor's emulation of a vmxnet3 (the device side of
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
// buffers if longer) and are completed with gen bits. Interrupt per intrIdx, auto-masked,
// spaced by the vector's moderation level (intrConf.modLevels, read at ACTIVATE_DEV and
// UPDATE_IML): at least 2^level device steps apart, a cause raised sooner kept latched.
//
// Bring-up is the driver's (vmxnet3::probe, the plugin's attach): VRRS, then UVRS, each
// with the one revision bit the device reported; then DSAL/DSAH; commands only after the
// revisions, those that read the shared area only once it is registered; ACTIVATE_DEV only
// when not active, with the revision 1 magic and a configuration the device can take.
// Anything out of order or out of range is refused (ignored, or the command answers 1) and
// counted (protocol_violations(), the reason in violations()).
//
// Policy: MAC, VLAN and RX-mode changes are put to a vmxnet3_policy first; a refusal keeps
// the old configuration and is answered in CMD (and, for the MAC, by MACL/MACH reading
// back the old address); the reason is kept for the hypervisor (last_refusal()).
// Time is explicit: step() runs everything once; run_until() steps until a predicate holds.
//
// Hostile behaviour (fault_plan, faults.hpp) on both completion rings alike, TX and RX:
// a dropped completion is never written (the buffer was used, RX: filled); a delayed one
// is written, in order, that many steps later; a reordered pair is written second first.
// Corruptions change the entry (index, length, ring id) or its gen bit as it is written.
#pragma once

#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/sim_irq.hpp>
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

/// The hypervisor's policy for one vmxnet3 port. Default: everything allowed.
class vmxnet3_policy {
public:
    virtual ~vmxnet3_policy() = default;
    /// nullptr: allowed; otherwise the reason for refusing.
    virtual const char* check_mac(const mac_addr&) { return nullptr; }
    virtual const char* check_vlan(std::uint16_t) { return nullptr; }
    virtual const char* check_rx_mode(std::uint32_t) { return nullptr; }
};

/// A list-based policy: allowed MACs (empty: any), allowed VLANs (empty: any), promiscuous.
class vmxnet3_list_policy final : public vmxnet3_policy {
public:
    std::vector<mac_addr> macs;
    std::vector<std::uint16_t> vlans;
    bool allow_promisc = false;
    const char* check_mac(const mac_addr& m) override {
        return macs.empty() || std::find(macs.begin(), macs.end(), m) != macs.end()
                   ? nullptr : "MAC address not assigned to this guest";
    }
    const char* check_vlan(std::uint16_t v) override {
        return v == 0 || vlans.empty() || std::find(vlans.begin(), vlans.end(), v) != vlans.end()
                   ? nullptr : "VLAN not allowed on this port";
    }
    const char* check_rx_mode(std::uint32_t m) override {
        return (m & vmxnet3::rxm::PROMISC) == 0 || allow_promisc ? nullptr
                                                                 : "promiscuous mode not allowed";
    }
};

struct vmxnet3_device_config {
    const char* name = "vmxnet3-0";
    vmxnet3::device_profile profile{};
    mac_addr perm_mac{0x00, 0x50, 0x56, 0, 0, 0x01};  ///< VMware OUI
    std::uint32_t tx_threshold = 32;      ///< written to every txq's txThreshold at activation
    std::uint32_t tx_timer_steps = 2;     ///< the emulation polls TX rings this often without a doorbell
    bool update_rx_prod = false;          ///< set updateRxProd: the guest must write RXPROD
    std::size_t inbox_limit = 8192;
    std::uint32_t rx_frames_per_step = 1024;
};

struct vmxnet3_queue_counters {
    std::uint64_t tx_frames = 0, tx_bytes = 0, tx_link_down = 0, tx_dma_errors = 0, tx_doorbells = 0;
    std::uint64_t rx_frames = 0, rx_bytes = 0, rx_no_desc = 0, rx_dma_errors = 0, rx_chained = 0;
    std::uint64_t rx_doorbells = 0, comp_dropped = 0, comp_delayed = 0, comp_reordered = 0,
                  comp_corrupted = 0;
    std::uint64_t tx_spoofed = 0;       ///< sent with a source MAC other than the device's: dropped
    std::uint64_t tx_vlan_refused = 0;  ///< tagged with a VLAN the guest was not given: dropped
    std::uint64_t tx_oversize = 0;      ///< longer than the MTU the guest activated with: dropped
};

/// RX frames the device dropped before choosing a queue (the per-queue drops are in
/// vmxnet3_queue_counters). Never reset: not by RESET_DEV, QUIESCE_DEV or a new backend.
struct vmxnet3_device_stats {
    std::uint64_t rx_overrun = 0;   ///< the inbox from the virtual switch was full
    std::uint64_t rx_inactive = 0;  ///< arrived while the device was not active (or removed)
    std::uint64_t rx_link_down = 0; ///< arrived while the link was down
    std::uint64_t rx_filtered = 0;  ///< not for this device (MAC, VLAN, RX mode) or a runt
};

class vmxnet3_device final : public frame_port {
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
    /// Hostile register reads (faults.hpp); set before the guest attaches.
    void set_register_fault(register_fault f) noexcept { reg_fault_ = f; }

    // ---- the hypervisor's side ------------------------------------------------------------
    void set_policy(vmxnet3_policy* p) {
        std::lock_guard g(mu_);
        policy_ = p != nullptr ? p : &allow_all_;
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
        return mac_;
    }
    [[nodiscard]] std::uint32_t rx_mode() const {
        std::lock_guard g(mu_);
        return rx_mode_;
    }
    [[nodiscard]] bool vlan_allowed(std::uint16_t vid) const {
        std::lock_guard g(mu_);
        return vlan_ok(vid);
    }
    [[nodiscard]] bool active() const {
        std::lock_guard g(mu_);
        return active_;
    }
    void inject(const fault_plan& p) {
        std::lock_guard g(mu_);
        faults_ = p;
        if (p.dma_faults != 0) {
            mem_.fail_next_dma(p.dma_faults);
        }
        if (p.link_down_steps != 0) {
            set_link(false);
            link_down_left_ = p.link_down_steps;
        }
    }
    void reset() {
        std::lock_guard g(mu_);
        do_reset();
    }
    void remove() {
        std::lock_guard g(mu_);
        removed_.store(true);
        active_ = false;
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
        return mod_level_[vector];
    }
    [[nodiscard]] std::uint64_t irq_held_steps(std::uint32_t vector) const {
        std::lock_guard g(mu_);
        return irq_held_[vector];
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
        std::lock_guard g(inbox_mu_);
        s.rx_overrun = rx_overrun_;
        return s;
    }

    // ---- the wire -------------------------------------------------------------------------
    void frame_in(const frame& f) noexcept override {
        std::lock_guard g(inbox_mu_);
        if (inbox_.size() >= cfg_.inbox_limit) {
            ++rx_overrun_;
            return;
        }
        inbox_.push_back(f);
    }

    // ---- time -------------------------------------------------------------------------------
    /// One device step: link timer, RX buffers fetched, wire -> RX, TX rings, delayed
    /// completions. Returns true if anything happened.
    bool step() {
        std::lock_guard g(mu_);
        ++steps_;
        if (link_down_left_ != 0 && --link_down_left_ == 0) {
            set_link(true);
        }
        if (removed_.load() || !active_) {
            std::lock_guard ig(inbox_mu_);
            rx_dropped_inactive_ += inbox_.size();
            inbox_.clear();
            return false;
        }
        bool any = false;
        for (std::uint32_t q = 0; q < nrx_; ++q) {
            any |= fetch_rx(q);
        }
        any |= deliver_rx();
        for (std::uint32_t q = 0; q < nrx_ && active_; ++q) {
            any |= flush(q_[q].rxp, rx_faults(), rx_writer{this, q});
        }
        for (std::uint32_t q = 0; q < ntx_ && active_; ++q) {
            any |= process_tx(q);
            any |= flush(q_[q].txp, tx_faults(), tx_writer{this, q});
        }
        for (std::uint32_t v = 0; v < vmxnet3::MAX_INTRS; ++v) {
            if (!raise_[v]) {
                continue;
            }
            if (last_irq_step_[v] != 0 &&
                steps_ - last_irq_step_[v] < moderation_steps(mod_level_[v])) {
                ++irq_held_[v]; // moderated: the cause stays latched until the gap has passed
                continue;
            }
            raise_[v] = false;
            last_irq_step_[v] = steps_;
            if ((intr_ctrl_ & vmxnet3::IC_DISABLE_ALL) == 0) {
                irqs_[v].raise();
            }
        }
        return any;
    }

    template <class Pred>
    bool run_until(Pred pred, std::uint32_t max_steps) {
        for (std::uint32_t i = 0; i < max_steps; ++i) {
            if (pred()) {
                return true;
            }
            step();
        }
        return pred();
    }

private:
    // The completions of one ring that the fault plan holds back: delayed (in order) or
    // the first of a pair to be reordered. buf_len is what the RX buffer could hold.
    template <class Comp>
    struct comp_path {
        struct pending {
            Comp c{};
            std::uint32_t buf_len = 0;
            std::uint64_t due = 0;
        };
        std::deque<pending> delayed;
        bool holding = false;
        pending held{};
        void clear() noexcept {
            delayed.clear();
            holding = false;
        }
    };
    // One direction's completion faults, as references into faults_ (counts are consumed).
    struct comp_faults {
        std::uint32_t& drop;
        std::uint32_t delay;
        std::uint32_t& reorder;
    };
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

    vmxnet3_device(guest_memory& mem, const vmxnet3_device_config& cfg) : mem_(mem), cfg_(cfg) {
        mac_ = cfg.perm_mac;
        io_ = vmxnet3::mmio{this, &mmio_write, &mmio_read};
    }

    // The guest's allocation for this device (done by the sim on the guest's behalf): the
    // shared area, the queue table, ring memory for the largest rings, the multicast
    // table. Selecting the revisions and registering the shared area (VRRS, UVRS, magic,
    // DSAL/DSAH) is the driver's probe (vmxnet3::probe, run by the plugin's attach).
    status carve() {
        const guest_block sh = mem_.allocate(sizeof(vmxnet3::driver_shared), 4096);
        const std::size_t table_bytes = 2 * max_queues * sizeof(vmxnet3::tx_queue_desc);
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

    void on_write(vmxnet3::bar b, std::uint32_t off, std::uint32_t v) noexcept {
        if (removed_.load()) {
            return;  // nothing answers any more
        }
        using namespace vmxnet3;
        if (b == bar::pt) {
            if (off < reg::TXPROD) {  // IMR: takes effect at once (the vector's mask bit)
                const std::uint32_t vec = off / reg::stride;
                if (vec < MAX_INTRS) {
                    (v & 1u) != 0 ? irqs_[vec].disarm() : irqs_[vec].arm();
                }
            } else if (off < reg::RXPROD) {
                const std::uint32_t q = (off - reg::TXPROD) / reg::stride;
                if (q < max_queues) {
                    txprod_[q].store(v, std::memory_order_release);
                    kick_[q].store(true, std::memory_order_release);
                }
            } else if (off < reg::RXPROD2 + max_queues * reg::stride) {
                const std::uint32_t ring = off >= reg::RXPROD2 ? 1 : 0;
                const std::uint32_t q = (off - (ring == 0 ? reg::RXPROD : reg::RXPROD2)) / reg::stride;
                if (q < max_queues) {
                    rxprod_[q][ring].store(v, std::memory_order_release);
                }
            }
            return;
        }
        std::lock_guard g(mu_);
        switch (off) {
        case reg::VRRS:
            if (v != REV1_BIT) {
                protocol_violation(
                    "VRRS: 0x%x does not select one revision the device reported (0x1)", v);
            } else {
                rev_ = v;
            }
            break;
        case reg::UVRS:
            if (rev_ == 0) {
                protocol_violation("UVRS written before a vmxnet3 revision was selected in VRRS");
            } else if (v != REV1_BIT) {
                protocol_violation(
                    "UVRS: 0x%x does not select one UPT revision the device reported (0x1)", v);
            } else {
                upt_rev_ = v;
            }
            break;
        case reg::DSAL:
        case reg::DSAH:
            if (rev_ == 0 || upt_rev_ == 0) {
                protocol_violation("%s written before the revisions were selected (VRRS, UVRS)",
                                   off == reg::DSAL ? "DSAL" : "DSAH");
            } else if (off == reg::DSAL) {
                dsa_ = (dsa_ & ~0xffffffffull) | v;
                dsa_halves_ |= 1u;
            } else {
                dsa_ = (dsa_ & 0xffffffffull) | (std::uint64_t{v} << 32);
                dsa_halves_ |= 2u;
            }
            break;
        case reg::CMD: cmd_result_ = run_command(v); break;
        case reg::MACL: macl_ = v; break;
        case reg::MACH: {
            const mac_addr m{static_cast<std::uint8_t>(macl_), static_cast<std::uint8_t>(macl_ >> 8),
                             static_cast<std::uint8_t>(macl_ >> 16), static_cast<std::uint8_t>(macl_ >> 24),
                             static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
            if (const char* why = policy_->check_mac(m); why != nullptr) {
                refuse(why);
            } else {
                mac_ = m;
            }
            break;
        }
        case reg::ECR: ecr_ &= ~v; break;  // write one to clear
        default: break;
        }
    }

    std::uint32_t on_read(vmxnet3::bar b, std::uint32_t off) noexcept {
        if (removed_.load()) {
            return vmxnet3::removed_read;
        }
        using namespace vmxnet3;
        if (b == bar::pt) {
            return 0;
        }
        std::lock_guard g(mu_);
        switch (off) {
        case reg::VRRS: return REV1_BIT; // the revisions it speaks: 1
        case reg::UVRS: return REV1_BIT;
        case reg::CMD: return cmd_result_;
        case reg::MACL:
            return std::uint32_t{mac_[0]} | std::uint32_t{mac_[1]} << 8 | std::uint32_t{mac_[2]} << 16 |
                   std::uint32_t{mac_[3]} << 24;
        case reg::MACH: return std::uint32_t{mac_[4]} | std::uint32_t{mac_[5]} << 8;
        case reg::ECR: return ecr_;
        default: return 0;
        }
    }

    void refuse(const char* why) noexcept {
        last_refusal_ = why;
        ++refusals_;
    }

    // A driver that breaks the bring-up protocol (order or values): the access is refused
    // (ignored, or the command answers 1), and counted.
    template <class... Args>
    void protocol_violation(const char* fmt, Args... args) {
        char detail[256];
        if constexpr (sizeof...(Args) == 0) {
            std::snprintf(detail, sizeof detail, "%s", fmt);
        } else {
            std::snprintf(detail, sizeof detail, fmt, args...);
        }
        violations_.emplace_back(std::string(cfg_.name) + " protocol: " + detail);
        ++protocol_violations_;
    }
    template <class... Args>
    std::uint32_t refuse_activation(const char* fmt, Args... args) {
        char detail[200];
        std::snprintf(detail, sizeof detail, fmt, args...);
        protocol_violation("ACTIVATE_DEV refused: %s", detail);
        return 1;
    }
    // Interrupt moderation. The UPT1 levels are abstract; this emulation spaces a vector's
    // interrupts at least 2^level steps apart (level 1: 2 steps ... IML_HIGHEST: 128) and
    // treats IML_ADAPTIVE as level 2. A cause raised sooner stays latched, not lost.
    static std::uint64_t moderation_steps(std::uint8_t level) noexcept {
        if (level == vmxnet3::upt1::IML_NONE) {
            return 0;
        }
        return std::uint64_t{1} << (level == vmxnet3::upt1::IML_ADAPTIVE ? 2 : level);
    }
    // intrConf.modLevels of every vector the driver configured: each a level the ABI knows,
    // or none is taken (a protocol violation).
    bool read_mod_levels(const vmxnet3::intr_conf& ic) {
        const std::uint32_t n = ic.numIntrs < vmxnet3::MAX_INTRS ? ic.numIntrs : vmxnet3::MAX_INTRS;
        for (std::uint32_t v = 0; v < n; ++v) {
            if (ic.modLevels[v] > vmxnet3::upt1::IML_ADAPTIVE) {
                protocol_violation("intrConf.modLevels[%u] = %u is no moderation level (0..8)", v,
                                   unsigned{ic.modLevels[v]});
                return false;
            }
        }
        mod_level_.fill(vmxnet3::upt1::IML_NONE);
        std::copy(ic.modLevels, ic.modLevels + n, mod_level_.begin());
        return true;
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
        default: return "a command";
        }
    }
    // Commands that make the device read the driver's shared area.
    static bool reads_shared_area(std::uint32_t c) noexcept {
        using namespace vmxnet3::cmd;
        return c == ACTIVATE_DEV || c == UPDATE_RX_MODE || c == UPDATE_VLAN_FILTERS ||
               c == UPDATE_MAC_FILTERS || c == UPDATE_FEATURE || c == UPDATE_IML;
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

    // ---- commands -------------------------------------------------------------------------
    std::uint32_t run_command(std::uint32_t c) noexcept {
        using namespace vmxnet3;
        if (rev_ == 0 || upt_rev_ == 0) {
            protocol_violation("command 0x%x before the revisions were selected (VRRS, UVRS)", c);
            return 1;
        }
        if (reads_shared_area(c) && dsa_halves_ != 3u) {
            protocol_violation("%s before the driver registered its shared area (DSAL, DSAH)",
                               command_name(c));
            return 1;
        }
        vmxnet3::driver_shared* sh = shared();
        if (reads_shared_area(c) && sh == nullptr) {
            protocol_violation("%s: DSAL/DSAH 0x%" PRIx64
                               " is not a driver shared area in guest memory",
                               command_name(c), dsa_);
            return 1;
        }
        switch (c) {
        case cmd::ACTIVATE_DEV: return activate(sh);
        case cmd::QUIESCE_DEV:
            active_ = false;
            for (dq& d : q_) {
                d.txp.clear();
                d.rxp.clear();
                d.chain.clear();
            }
            return 0;
        case cmd::RESET_DEV: do_reset(); return 0;
        case cmd::UPDATE_RX_MODE: {
            if (sh == nullptr) return 1;
            const std::uint32_t m = sh->devRead.rxFilterConf.rxMode;
            if (const char* why = policy_->check_rx_mode(m); why != nullptr) {
                refuse(why);
                return 1;
            }
            rx_mode_ = m;
            return 0;
        }
        case cmd::UPDATE_VLAN_FILTERS: {
            if (sh == nullptr) return 1;
            const rx_filter_conf& f = sh->devRead.rxFilterConf;
            for (std::uint32_t vid = 0; vid <= max_vlan_id; ++vid) {
                if (f.vlan(static_cast<std::uint16_t>(vid))) {
                    if (const char* why = policy_->check_vlan(static_cast<std::uint16_t>(vid)); why != nullptr) {
                        refuse(why);
                        return 1;
                    }
                }
            }
            std::copy(std::begin(f.vfTable), std::end(f.vfTable), vft_);  // le32 -> host order
            return 0;
        }
        case cmd::UPDATE_MAC_FILTERS: {
            if (sh == nullptr) return 1;
            const rx_filter_conf& f = sh->devRead.rxFilterConf;
            if (f.mfTableLen % 6 != 0 || f.mfTableLen > max_mcast_addrs * 6) {
                return 1;
            }
            mcast_.clear();
            if (f.mfTableLen != 0) {
                const std::byte* t = mem_.translate(f.mfTablePA, f.mfTableLen);
                if (t == nullptr) {
                    return 1;
                }
                for (std::uint32_t i = 0; i < f.mfTableLen / 6u; ++i) {
                    mac_addr m;
                    std::memcpy(m.data(), t + i * 6, 6);
                    mcast_.push_back(m);
                }
            }
            return 0;
        }
        case cmd::UPDATE_FEATURE:
            if (sh == nullptr) return 1;
            features_ = sh->devRead.misc.uptFeatures & cfg_.profile.upt_features;
            return 0;
        case cmd::UPDATE_IML: return read_mod_levels(sh->devRead.intrConf) ? 0 : 1;
        case cmd::UPDATE_RSSIDT:
        case cmd::UPDATE_PMCFG: return 0;
        case cmd::GET_QUEUE_STATUS:
            if (active_ || table_ != nullptr) {
                for (std::uint32_t q = 0; q < ntx_; ++q) {
                    txqd(q)->status.stopped = q_[q].tx_failed || !active_;
                }
                for (std::uint32_t q = 0; q < nrx_; ++q) {
                    rxqd(q)->status.stopped = q_[q].rx_failed || !active_;
                }
            }
            return 0;
        case cmd::GET_STATS:
            if (table_ != nullptr) {
                for (std::uint32_t q = 0; q < ntx_; ++q) {
                    txqd(q)->stats.ucastPktsTxOK = q_[q].st.tx_frames;
                    txqd(q)->stats.ucastBytesTxOK = q_[q].st.tx_bytes;
                    txqd(q)->stats.pktsTxError = q_[q].st.tx_dma_errors;
                    txqd(q)->stats.pktsTxDiscard = q_[q].st.tx_link_down;
                }
                for (std::uint32_t q = 0; q < nrx_; ++q) {
                    rxqd(q)->stats.ucastPktsRxOK = q_[q].st.rx_frames;
                    rxqd(q)->stats.ucastBytesRxOK = q_[q].st.rx_bytes;
                    rxqd(q)->stats.pktsRxOutOfBuf = q_[q].st.rx_no_desc;
                    rxqd(q)->stats.pktsRxError = q_[q].st.rx_dma_errors;
                }
            }
            return 0;
        case cmd::GET_LINK: return link_up_.load() ? link_up_10g : link_down;
        case cmd::GET_PERM_MAC_LO:
            return std::uint32_t{cfg_.perm_mac[0]} | std::uint32_t{cfg_.perm_mac[1]} << 8 |
                   std::uint32_t{cfg_.perm_mac[2]} << 16 | std::uint32_t{cfg_.perm_mac[3]} << 24;
        case cmd::GET_PERM_MAC_HI: return std::uint32_t{cfg_.perm_mac[4]} | std::uint32_t{cfg_.perm_mac[5]} << 8;
        default: return 1;
        }
    }

    std::uint32_t activate(vmxnet3::driver_shared* sh) noexcept {
        using namespace vmxnet3;
        if (active_) {
            protocol_violation("ACTIVATE_DEV while active (QUIESCE_DEV or RESET_DEV first)");
            return 1;
        }
        if (sh->magic != REV1_MAGIC) {
            protocol_violation(
                "ACTIVATE_DEV: shared area magic 0x%x, not 0x%x (a revision 1 driver)", sh->magic,
                REV1_MAGIC);
            return 1;
        }
        const misc_conf& m = sh->devRead.misc;
        const std::uint32_t ntx = m.numTxQueues, nrx = m.numRxQueues;
        if (ntx == 0 || nrx == 0 || ntx > cfg_.profile.max_queues || nrx > cfg_.profile.max_queues ||
            m.mtu < MIN_MTU || m.mtu > cfg_.profile.max_mtu) {
            return refuse_activation("%u TX / %u RX queues or MTU %u outside the device's range",
                                     ntx, nrx, m.mtu);
        }
        std::byte* table = map(m.queueDescPA, (ntx + nrx) * sizeof(tx_queue_desc), QUEUE_DESC_ALIGN);
        if (table == nullptr) {
            return refuse_activation("queue table 0x%" PRIx64 " not aligned guest memory",
                                     m.queueDescPA);
        }
        const std::uint32_t max = cfg_.profile.max_ring_size;
        const std::uint8_t nintr = sh->devRead.intrConf.numIntrs;
        active_ = false;
        mtu_ = m.mtu;
        table_ = table;
        ntx_ = ntx;
        nrx_ = nrx;
        for (std::uint32_t q = 0; q < ntx; ++q) {
            const tx_queue_conf& c = txqd(q)->conf;
            const std::uint32_t t = c.txRingSize;
            const std::uint32_t dsz = c.txDataRingDescSize == 0 ? HDR_COPY_SIZE : c.txDataRingDescSize.get();
            if (!ring_size_ok(t, max) || c.compRingSize != t || c.dataRingSize != t || dsz != HDR_COPY_SIZE ||
                c.intrIdx >= nintr || c.txRingBasePA % RING_BA_ALIGN != 0) {
                return refuse_activation("txq %u: ring sizes %u/%u/%u, data entry %u, vector %u", q,
                                         t, c.compRingSize, c.dataRingSize, dsz, c.intrIdx);
            }
            std::byte* tx = map(c.txRingBasePA, t * 16ull, RING_BA_ALIGN);
            std::byte* txc = map(c.compRingBasePA, t * 16ull, RING_BA_ALIGN);
            if (tx == nullptr || txc == nullptr || mem_.translate(c.dataRingBasePA, std::size_t{t} * dsz) == nullptr) {
                return refuse_activation("txq %u: a ring is not aligned guest memory", q);
            }
            dq& d = q_[q];
            d.tx.reset(reinterpret_cast<tx_desc*>(tx), t);
            d.txc.reset(reinterpret_cast<tx_comp_desc*>(txc), t);
            d.tx_size = t;
            d.tx_vec = c.intrIdx;
            d.tx_failed = false;
            d.txp.clear();
            d.chain.clear();
            d.last_tx_step = steps_;
            txqd(q)->ctrl.txNumDeferred = 0;
            txqd(q)->ctrl.txThreshold = cfg_.tx_threshold;
            txqd(q)->status = {};
            kick_[q].store(false);
        }
        for (std::uint32_t q = 0; q < nrx; ++q) {
            const rx_queue_conf& c = rxqd(q)->conf;
            const std::uint32_t r0 = c.rxRingSize[0], r1 = c.rxRingSize[1];
            if (!ring_size_ok(r0, max) || !ring_size_ok(r1, RX_RING2_MAX_SIZE) ||
                c.compRingSize != r0 + r1 || c.intrIdx >= nintr) {
                return refuse_activation("rxq %u: ring sizes %u/%u/%u, vector %u", q, r0, r1,
                                         c.compRingSize, c.intrIdx);
            }
            std::byte* a = map(c.rxRingBasePA[0], r0 * 16ull, RING_BA_ALIGN);
            std::byte* b = map(c.rxRingBasePA[1], r1 * 16ull, RING_BA_ALIGN);
            std::byte* cc = map(c.compRingBasePA, (r0 + r1) * 16ull, RING_BA_ALIGN);
            if (a == nullptr || b == nullptr || cc == nullptr) {
                return refuse_activation("rxq %u: a ring is not aligned guest memory", q);
            }
            dq& d = q_[q];
            d.rx[0].reset(reinterpret_cast<rx_desc*>(a), r0);
            d.rx[1].reset(reinterpret_cast<rx_desc*>(b), r1);
            d.rxc.reset(reinterpret_cast<rx_comp_desc*>(cc), r0 + r1);
            d.posted[0].clear();
            d.posted[1].clear();
            d.rx_addrs.clear();
            d.rx_vec = c.intrIdx;
            d.rx_failed = false;
            d.rxp.clear();
            rxqd(q)->ctrl.updateRxProd = cfg_.update_rx_prod ? 1 : 0;
            rxqd(q)->status = {};
            rxprod_[q][0].store(0);
            rxprod_[q][1].store(0);
        }
        features_ = m.uptFeatures & cfg_.profile.upt_features;
        intr_ctrl_ = sh->devRead.intrConf.intrCtrl;
        if (!read_mod_levels(sh->devRead.intrConf)) {
            return 1;
        }
        last_irq_step_.fill(0);
        raise_.fill(false); // causes latched by moderation belong to the old queues
        // The RX filter the guest left in the shared area applies from activation on.
        rx_mode_ = sh->devRead.rxFilterConf.rxMode;
        if (policy_->check_rx_mode(rx_mode_) != nullptr) {
            rx_mode_ &= ~rxm::PROMISC;
        }
        std::copy(std::begin(sh->devRead.rxFilterConf.vfTable), std::end(sh->devRead.rxFilterConf.vfTable), vft_);
        // ... and so does the VLAN table, less the VLANs the policy does not give this
        // guest (as UPDATE_VLAN_FILTERS would refuse them).
        for (std::uint32_t vid = 1; vid <= max_vlan_id; ++vid) {
            if (((vft_[vid >> 5] >> (vid & 31)) & 1u) != 0 &&
                policy_->check_vlan(static_cast<std::uint16_t>(vid)) != nullptr) {
                vft_[vid >> 5] &= ~(1u << (vid & 31));
            }
        }
        ecr_ = 0;
        active_ = true;
        return 0;
    }

    void do_reset() noexcept {
        active_ = false;
        for (std::uint32_t q = 0; q < max_queues; ++q) {
            dq& d = q_[q];
            d.posted[0].clear();
            d.posted[1].clear();
            d.rx_addrs.clear();
            d.txp.clear();
            d.rxp.clear();
            d.chain.clear();
        }
        for (sim_irq& i : irqs_) {
            i.reset();
        }
        // The queues the guest had are gone: it sees queue errors until it re-activates.
        ecr_ |= vmxnet3::ecr::TQERR | vmxnet3::ecr::RQERR;
        ++resets_;
    }

    void set_link(bool up) noexcept {
        if (link_up_.exchange(up) != up) {
            ecr_ |= vmxnet3::ecr::LINK;
        }
    }

    // A driver error: the queue stops, the guest learns it from ECR and GET_QUEUE_STATUS.
    template <class... Args>
    void violation(std::uint32_t q, bool tx, std::uint32_t slot, std::uint32_t code, const char* fmt,
                   Args... args) {
        char detail[200];
        std::snprintf(detail, sizeof detail, fmt, args...);
        char msg[300];
        std::snprintf(msg, sizeof msg, "%s %s %u slot %u: %s", cfg_.name, tx ? "txq" : "rxq", q, slot, detail);
        violations_.emplace_back(msg);
        (tx ? q_[q].tx_failed : q_[q].rx_failed) = true;
        if (table_ != nullptr) {
            (tx ? txqd(q)->status.error : rxqd(q)->status.error) = code;
        }
        ecr_ |= tx ? vmxnet3::ecr::TQERR : vmxnet3::ecr::RQERR;
    }

    bool vlan_ok(std::uint16_t vid) const noexcept {
        bool any = false;
        for (std::uint32_t w : vft_) {
            any = any || w != 0;
        }
        // An empty table filters nothing, but never past the policy: a guest that clears its
        // table must not receive VLANs the hypervisor did not give it.
        return any ? ((vft_[vid >> 5] >> (vid & 31)) & 1u) != 0 : policy_->check_vlan(vid) == nullptr;
    }

    // The virtual switch's view of a guest frame (forged transmits, VLAN membership): the
    // source MAC must be the device's (set through the policy-checked control path) and a
    // tag, in the frame or asked for by the descriptor, must be a VLAN the guest was given.
    // A frame (or, with TSO, each segment of `seg_len` bytes) longer than the MTU the guest
    // activated with (Vmxnet3_MiscConf::mtu) is dropped, as the virtual switch would.
    bool tx_allowed(dq& d, std::uint32_t len, std::uint32_t insert_vid,
                    std::uint32_t seg_len) noexcept {
        eth::header h;
        if (!eth::parse(std::span<const std::byte>(big_, len), h) || h.src != mac_) {
            ++d.st.tx_spoofed;
            return false;
        }
        if (seg_len > h.payload_off + mtu_) {
            ++d.st.tx_oversize;
            return false;
        }
        const std::uint32_t vid = insert_vid != 0 ? insert_vid : h.vlan;
        if (vid != 0 && !vlan_ok(static_cast<std::uint16_t>(vid))) {
            ++d.st.tx_vlan_refused;
            return false;
        }
        return true;
    }

    bool accept(const eth::header& h) const noexcept {
        using namespace vmxnet3;
        if ((rx_mode_ & rxm::PROMISC) != 0) {
            return true;
        }
        if (!vlan_ok(h.vlan)) {
            return false;
        }
        if (h.dst == eth::broadcast) {
            return (rx_mode_ & rxm::BCAST) != 0;
        }
        if (eth::is_multicast(h.dst)) {
            return (rx_mode_ & rxm::ALL_MULTI) != 0 ||
                   ((rx_mode_ & rxm::MCAST) != 0 && std::find(mcast_.begin(), mcast_.end(), h.dst) != mcast_.end());
        }
        return (rx_mode_ & rxm::UCAST) != 0 && h.dst == mac_;
    }

public:
    /// The sim's RSS (eth::flow_hash): one flow always lands on one queue.
    static std::uint32_t flow_hash(const frame& f) noexcept {
        return eth::flow_hash(f);
    }

private:
    // ---- RX ---------------------------------------------------------------------------------
    // Takes the RX descriptors the guest handed over (gen bit; with updateRxProd, only up
    // to the RXPROD index it wrote), checking each.
    bool fetch_rx(std::uint32_t q) {
        dq& d = q_[q];
        if (d.rx_failed) {
            return false;
        }
        bool any = false;
        for (std::uint32_t r = 0; r < 2; ++r) {
            auto& c = d.rx[r];
            for (std::uint32_t k = 0; k < c.size(); ++k) {
                if (cfg_.update_rx_prod && c.next_to_clean() == rxprod_[q][r].load(std::memory_order_acquire)) {
                    break;
                }
                const std::uint32_t slot = c.next_to_clean();
                vmxnet3::rx_desc desc;
                if (!c.poll(desc)) {
                    break;
                }
                any = true;
                const std::uint32_t len = vmxnet3::rx_desc::len::get(desc.dword2);
                if (len == 0 || mem_.translate(desc.addr, len) == nullptr) {
                    violation(q, false, slot, vmxnet3::err::SMALL_BUF,
                              "ring %u: IOVA 0x%" PRIx64 " + %u bytes is not guest memory", r, desc.addr, len);
                    return true;
                }
                if (!d.rx_addrs.insert(desc.addr).second) {
                    violation(q, false, slot, vmxnet3::err::TXD_REUSE,
                              "ring %u: buffer 0x%" PRIx64 " posted twice", r, desc.addr);
                    return true;
                }
                d.posted[r].push_back({slot, desc.addr, len});
            }
        }
        return any;
    }

    bool deliver_rx() {
        {
            std::lock_guard g(inbox_mu_);
            const std::size_t n = std::min<std::size_t>(inbox_.size(), cfg_.rx_frames_per_step);
            rx_batch_.assign(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
            inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
        }
        for (frame& f : rx_batch_) {
            eth::header h;
            if (!link_up_.load()) {
                ++rx_link_down_;
                continue;
            }
            if (!eth::parse(f.bytes(), h) || !accept(h)) {
                ++rx_filtered_;
                continue;
            }
            const std::uint32_t hash = flow_hash(f);
            const std::uint32_t q = (features_ & vmxnet3::upt1::F_RSS) != 0 && nrx_ > 1 ? hash % nrx_ : 0;
            receive(q, f, h, hash);
        }
        const bool any = !rx_batch_.empty();
        rx_batch_.clear();
        return any;
    }

    void receive(std::uint32_t q, frame& f, const eth::header& h, std::uint32_t hash) {
        using rcd = vmxnet3::rx_comp_desc;
        dq& d = q_[q];
        std::uint32_t tci = 0;
        bool stripped = false;
        if (h.vlan != 0 && (features_ & vmxnet3::upt1::F_RXVLAN) != 0) {  // strip the 802.1Q tag
            tci = eth::get16(f.data.data() + 14);
            std::memmove(f.data.data() + 12, f.data.data() + 16, f.len - 16);
            f.len -= 4;
            stripped = true;
        }
        if (!d.rx_failed && d.posted[0].empty()) {
            (void)fetch_rx(q);  // out of buffers: look again before dropping, as a NIC does
        }
        // A head buffer from ring 1, body buffers from ring 2 for whatever does not fit.
        std::uint32_t need = 0;
        if (!d.rx_failed && !d.posted[0].empty()) {
            std::uint32_t left = f.len > d.posted[0].front().len ? f.len - d.posted[0].front().len : 0;
            for (std::size_t i = 0; left != 0 && i < d.posted[1].size(); ++i) {
                left -= std::min(left, d.posted[1][i].len);
                ++need;
            }
            if (left != 0) {
                need = ~0u;
            }
        }
        if (d.rx_failed || d.posted[0].empty() || need == ~0u) {
            ++d.st.rx_no_desc;
            return;
        }
        d.st.rx_chained += need != 0 ? 1 : 0;
        std::uint32_t off = 0;
        for (std::uint32_t part = 0; part <= need; ++part) {
            const std::uint32_t ring = part == 0 ? 0 : 1;
            const rx_buf b = d.posted[ring].front();
            d.posted[ring].pop_front();
            d.rx_addrs.erase(b.addr);
            const std::uint32_t len = std::min(b.len, f.len - off);
            vmxnet3::rx_comp_desc c{};
            rcd::rxdIdx::set(c.dword0, b.slot);
            rcd::sop::set(c.dword0, part == 0);
            rcd::eop::set(c.dword0, part == need);
            rcd::rqID::set(c.dword0, ring == 0 ? q : q + nrx_);
            rcd::rssType::set(c.dword0, vmxnet3::rss_type::NONE);  // not an IP frame
            rcd::cnc::set(c.dword0, 1);
            c.rssHash = hash;
            rcd::ts::set(c.dword2, stripped && part == 0);
            rcd::tci::set(c.dword2, part == 0 ? tci : 0);
            rcd::type::set(c.dword3, vmxnet3::cdtype::RXCOMP);
            if (mem_.dma_write(b.addr, f.data.data() + off, len)) {
                rcd::len::set(c.dword2, len);
            } else {
                rcd::err::set(c.dword2, 1);
                ++d.st.rx_dma_errors;
            }
            off += len;
            complete(d.rxp, rx_faults(), d.st, c, b.len, rx_writer{this, q});
        }
        ++d.st.rx_frames;
        d.st.rx_bytes += f.len;
    }

    // Where a completion that leaves the fault path is written: queue q's ring.
    struct rx_writer {
        vmxnet3_device* dev;
        std::uint32_t q;
        void operator()(const vmxnet3::rx_comp_desc& c, std::uint32_t buf_len) const {
            dev->write_rx_comp(q, c, buf_len);
        }
    };
    struct tx_writer {
        vmxnet3_device* dev;
        std::uint32_t q;
        void operator()(const vmxnet3::tx_comp_desc& c, std::uint32_t) const {
            dev->write_tx_comp(q, c);
        }
    };
    comp_faults rx_faults() noexcept {
        return {faults_.drop_rx_completions, faults_.delay_rx_steps,
                faults_.reorder_rx_completions};
    }
    comp_faults tx_faults() noexcept {
        return {faults_.drop_tx_completions, faults_.delay_tx_steps,
                faults_.reorder_tx_completions};
    }

    // A finished buffer's completion goes through its ring's planned faults: dropped,
    // delayed (and everything behind it, to keep the order), or held back and written
    // after the next one; otherwise written now.
    template <class Comp, class Write>
    void complete(comp_path<Comp>& cp, comp_faults f, vmxnet3_queue_counters& st, const Comp& c,
                  std::uint32_t buf_len, Write write) {
        if (f.drop != 0) {
            --f.drop;
            ++st.comp_dropped;
        } else if (f.delay != 0 || !cp.delayed.empty()) {
            cp.delayed.push_back({c, buf_len, steps_ + f.delay});
            ++st.comp_delayed;
        } else if (f.reorder != 0) {
            if (!cp.holding) {
                cp.held = {c, buf_len, 0};
                cp.holding = true;
                return;
            }
            write(c, buf_len);
            write(cp.held.c, cp.held.buf_len);
            cp.holding = false;
            --f.reorder;
            ++st.comp_reordered;
        } else {
            if (cp.holding) { // an odd one left from a reorder goes first
                cp.holding = false;
                write(cp.held.c, cp.held.buf_len);
            }
            write(c, buf_len);
        }
    }

    // Writes the delayed completions that are due, and an odd held one once no reorder
    // is planned any more.
    template <class Comp, class Write>
    bool flush(comp_path<Comp>& cp, comp_faults f, Write write) {
        bool any = false;
        while (!cp.delayed.empty() && cp.delayed.front().due <= steps_) {
            write(cp.delayed.front().c, cp.delayed.front().buf_len);
            cp.delayed.pop_front();
            any = true;
        }
        if (cp.holding && f.reorder == 0) {
            cp.holding = false;
            write(cp.held.c, cp.held.buf_len);
            any = true;
        }
        return any;
    }

    void write_rx_comp(std::uint32_t q, vmxnet3::rx_comp_desc c, std::uint32_t buf_len) {
        using rcd = vmxnet3::rx_comp_desc;
        dq& d = q_[q];
        auto& p = d.rxc;
        raise_[d.rx_vec] = true;
        if (faults_.corrupt == comp_fault::none || faults_.corrupt_ring != ring_kind::rx || faults_.corrupt_count == 0) {
            p.produce(c);
            return;
        }
        --faults_.corrupt_count;
        ++d.st.comp_corrupted;
        corrupt(p, c, [&](vmxnet3::rx_comp_desc& x, comp_fault f) {
            if (f == comp_fault::index_out_of_range) {
                rcd::rxdIdx::set(x.dword0, d.rx[0].size() + 7);
            } else if (f == comp_fault::length_too_large) {
                rcd::len::set(x.dword2, buf_len + 512);
            } else {  // never posted: a completion for a ring the guest never configured
                rcd::rqID::set(x.dword0, q + 2 * nrx_);
            }
        });
    }

    // Applies the planned corruption `faults_.corrupt` to completion c on producer p.
    template <class P, class C, class Edit>
    void corrupt(P& p, C c, Edit edit) {
        using traits = std::conditional_t<std::is_same_v<C, vmxnet3::tx_comp_desc>, vmxnet3::tx_comp_traits,
                                          vmxnet3::rx_comp_traits>;
        switch (faults_.corrupt) {
        case comp_fault::index_out_of_range:
        case comp_fault::length_too_large:
            edit(c, faults_.corrupt);
            p.produce(c);
            break;
        case comp_fault::gen_out_of_order: {
            auto& slot = p.ring()[p.next_to_fill()];
            p.produce(c);
            std::atomic_ref<std::uint32_t>(traits::own_word(slot)).fetch_xor(traits::own_mask, std::memory_order_release);
            break;
        }
        case comp_fault::never_posted: {
            p.produce(c);
            C x = c;
            edit(x, comp_fault::never_posted);
            p.produce(x);
            break;
        }
        case comp_fault::double_completion:
            p.produce(c);
            p.produce(c);
            break;
        case comp_fault::none: p.produce(c); break;
        }
    }

    // ---- TX ---------------------------------------------------------------------------------
    bool process_tx(std::uint32_t q) {
        using td = vmxnet3::tx_desc;
        dq& d = q_[q];
        if (d.tx_failed) {
            return false;
        }
        const bool kick = kick_[q].exchange(false, std::memory_order_acq_rel);
        d.st.tx_doorbells += kick ? 1 : 0;
        if (!kick && steps_ - d.last_tx_step < cfg_.tx_timer_steps) {
            return false;
        }
        d.last_tx_step = steps_;
        bool any = false;
        for (std::uint32_t k = 0; k < d.tx_size && active_; ++k) {
            const std::uint32_t slot = d.tx.next_to_clean();
            vmxnet3::tx_desc desc;
            if (!d.tx.poll(desc)) {
                break;
            }
            any = true;
            d.chain.emplace_back(slot, desc);
            if (td::eop::get(desc.dword3) == 0) {
                if (d.chain.size() >= vmxnet3::MAX_TXD_PER_PKT) {
                    violation(q, true, slot, vmxnet3::err::NOEOP, "%zu descriptors without EOP", d.chain.size());
                    return true;
                }
                continue;
            }
            if (!send_packet(q)) {
                return true;
            }
        }
        return any;
    }

    // Gathers the chain into one frame (checking every descriptor), sends it, completes it.
    bool send_packet(std::uint32_t q) {
        using td = vmxnet3::tx_desc;
        dq& d = q_[q];
        std::uint32_t total = 0;
        bool dma_ok = true;
        const td& sop = d.chain.front().second;
        const td& eop = d.chain.back().second;
        const std::uint32_t eop_slot = d.chain.back().first;
        const bool tso = td::om_::get(sop.dword3) == vmxnet3::om::TSO;
        for (const auto& [slot, x] : d.chain) {
            std::uint32_t len = td::len::get(x.dword2);
            len = len == 0 ? vmxnet3::MAX_TX_BUF_SIZE : len;
            if (td::dtype::get(x.dword2) != 0) {
                violation(q, true, slot, vmxnet3::err::DESC_NOT_SPT, "descriptor type %u", td::dtype::get(x.dword2));
                return false;
            }
            if (!mem_.contains(x.addr, len)) {
                violation(q, true, slot, vmxnet3::err::TXD_INVALID, "IOVA 0x%" PRIx64 " + %u bytes is not guest memory",
                          x.addr, len);
                return false;
            }
            if (total + len > sizeof(big_)) {
                violation(q, true, slot, vmxnet3::err::BIG_PKT, "packet longer than %zu bytes", sizeof(big_));
                return false;
            }
            dma_ok = dma_ok && mem_.dma_read(x.addr, big_ + total, len);
            total += len;
        }
        d.chain.clear();
        const bool vtag = td::ti::get(sop.dword3) != 0;
        const std::uint32_t limit = max_frame_size - (vtag ? 4u : 0u);
        if (!tso && (total > limit || total < min_frame_size)) {
            violation(q, true, eop_slot, vmxnet3::err::BIG_PKT, "frame of %u bytes without TSO", total);
            return false;
        }
        if (faults_.remove_after_tx == 0) {
            removed_.store(true);  // surprise removal in the middle of the burst
            active_ = false;
            return false;
        }
        if (faults_.reset_after_tx == 0) {
            faults_.reset_after_tx = -1;
            do_reset();
            return false;
        }
        faults_.remove_after_tx -= faults_.remove_after_tx > 0 ? 1 : 0;
        faults_.reset_after_tx -= faults_.reset_after_tx > 0 ? 1 : 0;
        if (!dma_ok) {
            ++d.st.tx_dma_errors;  // vmxnet3 TX completions carry no error: counted here only
        } else if (!link_up_.load()) {
            ++d.st.tx_link_down;
        } else if (!tx_allowed(d, total, vtag ? td::tci::get(sop.dword3) & 0x0fffu : 0u,
                               tso ? td::hlen::get(sop.dword3) + td::msscof::get(sop.dword2)
                                   : total)) {
            // Dropped and counted by tx_allowed(); the descriptors still complete below.
        } else {
            // TSO: headers (hlen) repeated in front of each MSS of payload; the sim does not
            // rewrite IP lengths or TCP sequence numbers.
            const std::uint32_t hlen = tso ? td::hlen::get(sop.dword3) : total;
            const std::uint32_t mss = tso ? td::msscof::get(sop.dword2) : total;
            if (tso && (hlen >= total || hlen < min_frame_size || mss == 0 || hlen + mss > limit)) {
                violation(q, true, eop_slot, vmxnet3::err::TXD_INVALID, "TSO hlen %u mss %u for %u bytes", hlen, mss, total);
                return false;
            }
            for (std::uint32_t off = hlen; off < total || off == hlen; off += mss) {
                const std::uint32_t seg = tso ? std::min(mss, total - off) : 0;
                frame& out = scratch_;
                std::memcpy(out.data.data(), big_, hlen);
                std::memcpy(out.data.data() + hlen, big_ + off, seg);
                out.len = hlen + seg;
                if (vtag) {  // insert the 802.1Q tag
                    const std::uint32_t tci = td::tci::get(sop.dword3);
                    std::memmove(out.data.data() + 16, out.data.data() + 12, out.len - 12);
                    eth::put16(out.data.data() + 12, eth::type_vlan);
                    eth::put16(out.data.data() + 14, static_cast<std::uint16_t>(tci));
                    out.len += 4;
                }
                ++d.st.tx_frames;
                d.st.tx_bytes += out.len;
                frame_out(out);
                if (!tso) {
                    break;
                }
            }
        }
        if (td::cq::get(eop.dword3) != 0) {
            vmxnet3::tx_comp_desc c{};
            vmxnet3::tx_comp_desc::txdIdx::set(c.dword0, eop_slot);
            vmxnet3::tx_comp_desc::type::set(c.dword3, vmxnet3::cdtype::TXCOMP);
            complete(d.txp, tx_faults(), d.st, c, 0, tx_writer{this, q});
        }
        return true;
    }

    void write_tx_comp(std::uint32_t q, vmxnet3::tx_comp_desc c) {
        dq& d = q_[q];
        raise_[d.tx_vec] = true;
        if (faults_.corrupt == comp_fault::none || faults_.corrupt_ring != ring_kind::tx || faults_.corrupt_count == 0) {
            d.txc.produce(c);
            return;
        }
        --faults_.corrupt_count;
        ++d.st.comp_corrupted;
        corrupt(d.txc, c, [&](vmxnet3::tx_comp_desc& x, comp_fault f) {
            if (f == comp_fault::index_out_of_range) {
                vmxnet3::tx_comp_desc::txdIdx::set(x.dword0, d.tx_size + 7);
            } else {  // never posted: the slot the device would fetch next, not handed over
                vmxnet3::tx_comp_desc::txdIdx::set(x.dword0, d.tx.next_to_clean());
            }
        });
    }

    guest_memory& mem_;
    vmxnet3_device_config cfg_;
    vmxnet3::mmio io_{};
    vmxnet3::window window_{};
    vmxnet3::control_port port_{};
    std::array<sim_irq, vmxnet3::MAX_INTRS> irqs_{};
    std::array<bool, vmxnet3::MAX_INTRS> raise_{};
    std::array<std::atomic<std::uint32_t>, max_queues> txprod_{};
    std::array<std::atomic<bool>, max_queues> kick_{};
    std::array<std::array<std::atomic<std::uint32_t>, 2>, max_queues> rxprod_{};

    mutable std::mutex mu_;
    vmxnet3_policy allow_all_;
    vmxnet3_policy* policy_ = &allow_all_;
    const char* last_refusal_ = nullptr;
    std::uint64_t refusals_ = 0;
    std::uint32_t rev_ = 0, upt_rev_ = 0; // VRRS / UVRS selections (0: none yet)
    std::array<std::uint8_t, vmxnet3::MAX_INTRS> mod_level_{};      // per vector, as last read
    std::array<std::uint64_t, vmxnet3::MAX_INTRS> last_irq_step_{}; // last delivery (0: none yet)
    std::array<std::uint64_t, vmxnet3::MAX_INTRS> irq_held_{};      // steps a cause waited
    std::uint32_t dsa_halves_ = 0;        // bit 0: DSAL written, bit 1: DSAH written
    std::uint64_t protocol_violations_ = 0;
    std::uint64_t dsa_ = 0;
    std::uint32_t cmd_result_ = 0, macl_ = 0, ecr_ = 0, intr_ctrl_ = 0;
    std::uint32_t mtu_ = 1500;  // Vmxnet3_MiscConf::mtu at the last ACTIVATE_DEV
    mac_addr mac_{};
    std::uint32_t rx_mode_ = 0;
    std::uint32_t vft_[vmxnet3::VFT_SIZE] = {};
    std::vector<mac_addr> mcast_;
    std::uint64_t features_ = 0;
    bool active_ = false;
    std::atomic<bool> removed_{false};
    std::atomic<bool> link_up_{true};
    std::uint32_t link_down_left_ = 0;
    std::byte* table_ = nullptr;
    std::uint32_t ntx_ = 0, nrx_ = 0;
    std::array<dq, max_queues> q_{};
    fault_plan faults_{};
    register_fault reg_fault_{};
    std::uint64_t steps_ = 0, resets_ = 0, rx_filtered_ = 0, rx_dropped_inactive_ = 0,
                  rx_link_down_ = 0;
    std::vector<std::string> violations_;
    std::vector<frame> rx_batch_;
    frame scratch_{};
    std::byte big_[vmxnet3::MAX_TX_BUF_SIZE * 4]{};

    mutable std::mutex inbox_mu_;
    std::deque<frame> inbox_;
    std::uint64_t rx_overrun_ = 0;
};

} // namespace npa::sim
