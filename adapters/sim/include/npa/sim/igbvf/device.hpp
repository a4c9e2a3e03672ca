// npa/sim/igbvf/device.hpp: a sim model of one 82576 virtual function.
//
// The device side of igbvf_defs.hpp, processing rings as the 82576 does (datasheet 7.1,
// 7.2): it fetches descriptors between head and tail, reaches buffers and rings only by
// guest-memory translation (bounds-checked; a bad address is a recorded violation and the
// queue stops, nothing is touched), writes each descriptor back with DD, moves the head
// register, and raises the queue's MSI-X vector when its EIMS bit is set (one-shot: EIAM).
//
// Its register BAR is the VF's: queue registers, EIMS/EIMC, STATUS, CTRL and the PF
// mailbox (V2PMAILBOX, VMBMEM). The mailbox is answered by whoever set_mailbox_handler()
// registered (sriov_nic's PF driver). Frames go to and come from an embedded switch
// (vf_uplink); the device itself filters nothing, as a VF leaves that to the switch.
//
// Time is explicit: step() runs the RX side then every TX queue once (deterministic).
// One mutex covers queue state; doorbells and interrupt masks are atomics, so the plugin
// may run on another thread.
//
// Hostile behaviour (fault_plan, faults.hpp), as an 82576 would show it:
//   drop_tx_completions   the head passes N packets without writing DD
//   delay_tx_steps        write-backs (and the head) lag N steps
//   (not faults: a real 82576 may run TDH ahead of its write-backs, tx_head_ahead, land
//   them late, tx_writeback_steps, and, while DCA_TXCTRL.TX_WB_RO_EN is set, land them
//   out of order, relaxed_order_swaps; igbvf_device_config)
//   reorder_tx_completions a packet's write-back lands after the next one's (head waits)
//   drop_rx_completions, delay_rx_steps, reorder_rx_completions: the same on RX, where
//       the frame is in the buffer but its descriptor is not written back (left as the
//       driver posted it), written back later, or written back a step after the next one
//   corrupt on TX: index_out_of_range -> TDH reads past the ring until the next step;
//       gen_out_of_order -> written back without DD; never_posted / double_completion ->
//       a DD written into the free slot at the tail
//   corrupt on RX: index_out_of_range -> a header-split length in one-buffer mode;
//       length_too_large -> a length past the buffer; gen_out_of_order -> written back
//       without DD; never_posted / double_completion -> DD on the slot at RDT
//   dma_faults            buffer DMAs fail (RX: written back with RXE; TX: not sent)
//   link_down_steps       STATUS.LU clear; TX completed but not sent, RX dropped
//   reset_after_tx        a VF reset: queues disabled, ring registers cleared (no RSTI:
//                         only the PF's own reset shows there, pf_reset_started())
//   remove_after_tx       surprise removal: every register reads all ones
//
// The model by job: this file (the class, its state, stepping, lifecycle), regs.hpp (the
// BAR: registers, mailbox, interrupt masks, ring enables, reset), writeback.hpp (when a
// descriptor write-back lands, by the completion faults), tx.hpp and rx.hpp (the
// engines), offload.hpp (TSO, checksums, VLAN insertion; RX checksum verdicts). Inbox,
// faults, link and stepping: device_model (device/base.hpp).
#pragma once

#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/sim/device/base.hpp>
#include <npa/sim/device/completion.hpp>
#include <npa/sim/device/steering.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/igbvf/config.hpp>
#include <npa/sim/sim_irq.hpp>
#include <npa/sim/wire.hpp>
#include <npa/status.hpp>

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
#include <vector>

namespace npa::sim {

class igbvf_device : public device_model<igbvf_device> {
    friend class device_model<igbvf_device>;

public:
    /// Largest packet handed over for segmentation (PAYLEN is 18 bits; IPv4 caps it at 64 KiB).
    static constexpr std::uint32_t tso_max = 65535;

    [[nodiscard]] static result<std::unique_ptr<igbvf_device>> create(guest_memory& mem,
                                                                      const igbvf_device_config& c) {
        const igbvf_limits& l = c.limits;
        if (l.queues == 0 || l.queues > igbvf::max_queues || !igbvf::ring_size_ok(l.min_ring) ||
            !igbvf::ring_size_ok(l.max_ring) || l.min_ring > l.max_ring) {
            return {errc::invalid_argument, "igbvf device: queues 1..2, rings multiples of 8 in 8..4096"};
        }
        std::unique_ptr<igbvf_device> d(new (std::nothrow) igbvf_device(mem, c));
        if (!d) {
            return {errc::no_memory, "igbvf device: allocation failed"};
        }
        for (std::uint16_t q = 0; q < l.queues; ++q) {
            const guest_block b = mem.allocate(2 * std::size_t{l.max_ring} * igbvf::desc_size, 4096);
            if (!b) {
                return {errc::no_memory, "igbvf device: guest memory too small for the rings"};
            }
            d->window_.set_area(q, {b.virt, b.iova, b.size});
        }
        return d;
    }

    igbvf_device(const igbvf_device&) = delete;
    igbvf_device& operator=(const igbvf_device&) = delete;

    // ---- the two views of the BAR --------------------------------------------------------
    [[nodiscard]] igbvf_window& window() noexcept { return window_; }
    [[nodiscard]] igbvf_mailbox_port mailbox_port() noexcept { return igbvf_mailbox_port(bar()); }
    /// The whole BAR, as the function's owner (a platform, not a plugin) reaches it: CTRL.RST.
    [[nodiscard]] igbvf_bar function_bar() noexcept { return bar(); }
    /// Hostile register reads (faults.hpp); set before the guest attaches.
    void set_register_fault(register_fault f) noexcept { reg_fault_ = f; }
    [[nodiscard]] sim_irq& irq(std::uint16_t q) noexcept { return irqs_[q]; }
    [[nodiscard]] const char* name() const noexcept { return cfg_.name; }
    [[nodiscard]] const igbvf_limits& limits() const noexcept { return cfg_.limits; }

    // ---- embedded-switch side -------------------------------------------------------------
    void set_uplink(vf_uplink* u, std::uint16_t index) noexcept {
        uplink_ = u;
        index_ = index;
    }
    /// A frame for this VF from the switch (any thread).
    void deliver(const frame& f) noexcept {
        inbox_.push(f, [this] { return removed_.load(std::memory_order_acquire); });
    }

    // ---- PF side of the mailbox --------------------------------------------------------
    using mailbox_fn = void (*)(void* ctx, std::uint16_t vf) noexcept;
    void set_mailbox_handler(void* ctx, mailbox_fn fn) noexcept {
        mbx_ctx_ = ctx;
        mbx_fn_ = fn;
    }
    [[nodiscard]] std::uint32_t pf_read_mem(std::uint32_t i) const noexcept {
        return mbmem_[i % igbvf::mbx::size].load();
    }
    void pf_write_mem(std::uint32_t i, std::uint32_t v) noexcept { mbmem_[i % igbvf::mbx::size].store(v); }
    /// The PF took the VF's message and wrote its reply: PFACK and PFSTS.
    void pf_replied() noexcept { vmmb_.fetch_or(igbvf::mbx::pfack | igbvf::mbx::pfsts); }
    /// The PF wrote a message of its own (no request of the VF's to acknowledge).
    void pf_sent() noexcept { vmmb_.fetch_or(igbvf::mbx::pfsts); }
    /// The PF's own reset, as this VF's mailbox shows it (QEMU's igb_reset and
    /// igb_set_ctrlext): RSTI while it runs, then RSTI cleared and RSTD set (read to
    /// clear) when the PF writes CTRL_EXT.PFRSTD.
    void pf_reset_started() noexcept { vmmb_.fetch_or(igbvf::mbx::rsti); }
    void pf_reset_done() noexcept {
        vmmb_.fetch_and(~igbvf::mbx::rsti);
        vmmb_.fetch_or(igbvf::mbx::rstd);
    }

    // ---- time, faults, lifecycle -----------------------------------------------------------
    void step() {
        std::lock_guard g(mu_);
        if (removed_) {
            return;
        }
        ++steps_;
        tick_link();
        for (auto& b : tdh_bad_) b.store(0, std::memory_order_relaxed);
        deliver_rx();
        for (std::uint16_t q = 0; q < cfg_.limits.queues && !removed_; ++q) {
            process_tx(q);
        }
    }
    // run_until(), inject(), faults(), reset() (a VF reset by the PF: queues off, ring
    // registers cleared) and remove() (nothing answers any more): device_model.
    /// Hot-add after a removal: a fresh function, all registers at reset values. The
    /// counters are the sim's bookkeeping, not registers: they carry on where they were.
    void revive() {
        std::lock_guard g(mu_);
        for (auto& r : regs_) r.store(0);
        for (auto& q : q_) {
            const igbvf_queue_stats st = q.st;
            q = dq{};
            q.st = st;
        }
        removed_ = false;
        link_up_ = true;
        regs_[igbvf::reg::status / 4].store(igbvf::status_lu | igbvf::status_fd | igbvf::status_speed_1000);
        vmmb_.store(igbvf::mbx::rstd);
        for (std::uint16_t q = 0; q < igbvf::max_queues; ++q) reset_queue_regs(q);
    }
    void set_link(bool up) {
        std::lock_guard g(mu_);
        link_up_ = up;
    }

    // ---- observations ---------------------------------------------------------------------
    [[nodiscard]] bool removed() const noexcept { return removed_; }
    [[nodiscard]] igbvf_queue_stats stats(std::uint16_t q) const {
        std::lock_guard g(mu_);
        return q_[q].st;
    }
    [[nodiscard]] std::vector<igbvf_violation> violations() const {
        std::lock_guard g(mu_);
        return violations_;
    }
    /// RX buffers the device holds: descriptors between head and tail.
    [[nodiscard]] std::uint32_t rx_posted(std::uint16_t q) const {
        std::lock_guard g(mu_);
        const dq& d = q_[q];
        if (!d.rx_on || d.rx_size == 0) {
            return 0;
        }
        const std::uint32_t t = reg(igbvf::reg::rdt(q)) % d.rx_size;
        return (t + d.rx_size - d.rx_head) % d.rx_size;
    }
    [[nodiscard]] std::uint64_t rx_overrun() const { return inbox_.overrun(); }
    /// Every RX drop before a queue was chosen (the per-queue ones are in stats()).
    [[nodiscard]] igbvf_device_stats device_stats() const {
        igbvf_device_stats s;
        {
            std::lock_guard g(mu_);
            s.rx_link_down = rx_link_down_;
            s.rx_no_queue = rx_no_queue_;
        }
        s.rx_overrun = inbox_.overrun();
        s.rx_removed = inbox_.removed();
        return s;
    }
    [[nodiscard]] std::uint64_t resets() const noexcept { return resets_.load(std::memory_order_acquire); }
    /// Queue q's TXDCTL or RXDCTL still reads ENABLE after the driver cleared it
    /// (stop_reads): the driver has not yet seen the queue stop.
    [[nodiscard]] bool stopping(std::uint16_t q) const noexcept {
        return stop_left_[2 * q].load() != 0 || stop_left_[2 * q + 1].load() != 0;
    }

private:
    // A descriptor write-back on its way: TX, a packet's EOP descriptor; RX, a frame's
    // slot. The head register moves past it once it is written (or dropped).
    struct write_back {
        std::uint32_t slot = 0, next = 0; // the descriptor written back, and the slot after it
        std::uint64_t due = 0;            // step at which the write-back lands
        bool written = false, dd = true;
        igbvf::adv_rx_wb rx{}; // RX: the write-back, STATUS/ERROR in rx.status_error
        std::uint32_t first = 0; // TX: the packet's first descriptor
    };
    struct dq {
        bool tx_on = false, rx_on = false, failed = false;
        igbvf::adv_tx_desc* tx = nullptr;
        igbvf::adv_rx_desc* rx = nullptr;
        std::uint32_t tx_size = 0, rx_size = 0, rx_buf = 0;
        std::uint32_t tx_fetch = 0;   // next descriptor to fetch (internal)
        std::uint32_t rx_head = 0;    // next descriptor to fill (internal; RDH follows write-backs)
        std::deque<write_back> inflight;    // TX: fetched, write-back pending or head not yet past
        std::deque<write_back> rx_inflight; // RX: filled, write-back pending
        bool stray_tx = false, stray_rx = false;
        bool ro_hold = false;         // TX: the first of a pair relaxed ordering swaps
        igbvf::adv_tx_context_desc ctx{};
        igbvf_queue_stats st{};
    };

    igbvf_device(guest_memory& m, const igbvf_device_config& c)
        : device_model(m, c.inbox_limit), cfg_(c) {
        window_.set_bar(bar());
        window_.set_limits(c.limits);
        regs_[igbvf::reg::status / 4].store(igbvf::status_lu | igbvf::status_fd | igbvf::status_speed_1000);
        vmmb_.store(igbvf::mbx::rstd);
        for (std::uint16_t q = 0; q < igbvf::max_queues; ++q) reset_queue_regs(q);
    }

    igbvf_bar bar() noexcept {
        return igbvf_bar(
            this,
            [](void* c, std::uint32_t off) noexcept {
                auto* d = static_cast<igbvf_device*>(c);
                return d->reg_fault_.apply(0, off, d->bar_read(off));
            },
            [](void* c, std::uint32_t off, std::uint32_t v) noexcept {
                static_cast<igbvf_device*>(c)->bar_write(off, v);
            });
    }

    [[nodiscard]] std::uint32_t reg(std::uint32_t off) const noexcept {
        return regs_[off / 4].load(std::memory_order_acquire);
    }
    void set_reg(std::uint32_t off, std::uint32_t v) noexcept {
        regs_[off / 4].store(v, std::memory_order_release);
    }
    // Queue index of a queue register offset, or -1.
    [[nodiscard]] static int queue_of(std::uint32_t off) noexcept {
        if ((off >= 0x2800 && off < 0x2A00) || (off >= 0x3800 && off < 0x3A00)) {
            return static_cast<int>(((off >> 8) & 0xF) - 8);  // 0x28nn / 0x38nn: queue n
        }
        return -1;
    }
    template <class... Args>
    void violation(std::uint16_t q, ring_kind r, std::uint32_t slot, const char* rule,
                   const char* fmt, Args... args) {
        violations_.push_back(make_violation(cfg_.name, q, r, slot, rule, fmt, args...));
        q_[q].failed = true;
    }
    void raise(std::uint16_t q) noexcept {
        eicr_.fetch_or(1u << q);
        irqs_[q].raise();
    }

    // ---- regs.hpp ---------------------------------------------------------------------------
    std::uint32_t bar_read(std::uint32_t off) noexcept;
    void bar_write(std::uint32_t off, std::uint32_t v) noexcept;
    bool enable_tx(std::uint16_t q);
    bool enable_rx(std::uint16_t q);
    void do_reset();
    void do_remove();

    // ---- writeback.hpp ----------------------------------------------------------------------
    bool plan_fault(dq& d, ring_kind r, write_back& p);
    template <class Write>
    bool flush_due(std::deque<write_back>& inflight, std::uint32_t head_reg, Write write);
    static constexpr std::uint32_t head_by_caller = ~std::uint32_t{0};
    void reset_queue_regs(std::uint16_t q) noexcept;

    // ---- tx.hpp -----------------------------------------------------------------------------
    void write_tx_wb(igbvf::adv_tx_desc& slot, bool dd) noexcept;
    void process_tx(std::uint16_t q);
    void plan_tx_corruption(std::uint16_t q, dq& d, write_back& p);
    void relaxed_order(std::uint16_t q, dq& d, write_back& p);
    bool flush_tx(std::uint16_t q);
    void send_frame(dq& d);

    // ---- offload.hpp ------------------------------------------------------------------------
    bool segment(std::uint16_t q, dq& d, std::uint32_t len, std::uint32_t cmd, std::uint32_t olinfo,
                 std::uint32_t eop);
    void apply_tx_offloads(const dq& d, std::uint32_t cmd, std::uint32_t olinfo);
    std::uint32_t rx_csum(const frame& f, le16& pkt_info) const noexcept;

    // ---- rx.hpp -----------------------------------------------------------------------------
    void deliver_rx();
    bool flush_rx(std::uint16_t q);

public:
    /// The sim's RSS (steering.hpp): the same as every sim device's.
    static std::uint32_t flow_hash(const frame& f) noexcept { return rss_hash(f); }

private:
    igbvf_device_config cfg_;
    igbvf_window window_;
    std::array<std::atomic<std::uint32_t>, igbvf::bar_size / 4> regs_{};
    std::array<std::atomic<std::uint32_t>, igbvf::mbx::size> mbmem_{};
    std::atomic<std::uint32_t> vmmb_{0};
    std::atomic<std::uint32_t> eicr_{0};
    std::array<sim_irq, igbvf::max_queues> irqs_{};
    std::atomic<bool> removed_{false};
    std::array<std::atomic<std::uint32_t>, igbvf::max_queues> tdh_bad_{};  // TDH read override (fault)
    // Per queue, TX then RX: reads left that show ENABLE after it was cleared (stop_reads).
    std::array<std::atomic<std::uint32_t>, 2 * igbvf::max_queues> stop_left_{};
    bool tx_reorder_hold_ = false, rx_reorder_hold_ = false;

    std::array<dq, igbvf::max_queues> q_{};
    register_fault reg_fault_{};
    std::atomic<std::uint64_t> resets_{0};
    std::vector<igbvf_violation> violations_;
    std::vector<std::byte> gather_ = std::vector<std::byte>(tso_max);  // one packet's buffers

    vf_uplink* uplink_ = nullptr;
    std::uint16_t index_ = 0;
    void* mbx_ctx_ = nullptr;
    mailbox_fn mbx_fn_ = nullptr;
};

} // namespace npa::sim

#include <npa/sim/igbvf/offload.hpp>
#include <npa/sim/igbvf/regs.hpp>
#include <npa/sim/igbvf/rx.hpp>
#include <npa/sim/igbvf/tx.hpp>
#include <npa/sim/igbvf/writeback.hpp>
