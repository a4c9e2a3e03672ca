// npa/sim/igbvf_device.hpp: a sim model of one 82576 virtual function.
//
// The device side of npa/plugins/igbvf/defs.hpp, processing rings as the 82576 does (datasheet 7.1,
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
//   reset_after_tx        a VF reset: queues disabled, ring registers cleared, RSTI
//   remove_after_tx       surprise removal: every register reads all ones
#pragma once

#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
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

/// Where a VF's transmitted frames go (the embedded switch).
class vf_uplink {
public:
    virtual void from_vf(std::uint16_t vf, const frame& f) noexcept = 0;

protected:
    ~vf_uplink() = default;
};

struct igbvf_device_config {
    const char* name = "vf0";
    igbvf_limits limits{};                 ///< this host's VF: queues, ring range, offloads
    std::size_t inbox_limit = 8192;        ///< frames buffered from the switch
    std::uint32_t rx_frames_per_step = 1024;
};

struct igbvf_queue_stats {
    std::uint64_t tx_frames = 0, tx_bytes = 0, tx_link_down = 0, tx_dma_errors = 0;
    std::uint64_t rx_frames = 0, rx_bytes = 0, rx_no_desc = 0, rx_oversize = 0, rx_dma_errors = 0;
    std::uint64_t comp_dropped = 0, comp_delayed = 0, comp_reordered = 0, comp_corrupted = 0;
};

/// RX frames the VF dropped before choosing a queue; like the queue counters, these never
/// go back to zero (not at reset, removal or hot-add), so they add up over a VF's lives.
struct igbvf_device_stats {
    std::uint64_t rx_overrun = 0;   ///< the inbox from the switch was full
    std::uint64_t rx_link_down = 0; ///< arrived while the link was down
    std::uint64_t rx_no_queue = 0;  ///< arrived with no RX queue enabled (reset, not yet set up)
    std::uint64_t rx_removed = 0;   ///< arrived for (or waited in) a removed VF
};

struct igbvf_violation {
    std::uint16_t queue = 0;
    ring_kind ring = ring_kind::tx;
    std::uint32_t slot = 0;
    const char* rule = "";
    std::string message;
};

namespace igbvf_rule {
inline constexpr const char* tail_beyond_ring = "tail beyond the ring";
inline constexpr const char* iova_outside = "IOVA outside guest memory";
inline constexpr const char* bad_desc_type = "not an advanced descriptor";
inline constexpr const char* bad_length = "bad descriptor length";
inline constexpr const char* bad_ring = "bad ring registers";
inline constexpr const char* offload_off = "offload not enabled on this VF";
} // namespace igbvf_rule

class igbvf_device {
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
        std::lock_guard g(inbox_mu_);
        if (removed_.load(std::memory_order_acquire)) {
            ++rx_removed_;  // nobody there: dropped, and counted
            return;
        }
        if (inbox_.size() >= cfg_.inbox_limit) {
            ++rx_overrun_;
            return;
        }
        inbox_.push_back(f);
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

    // ---- time, faults, lifecycle -----------------------------------------------------------
    void step() {
        std::lock_guard g(mu_);
        if (removed_) {
            return;
        }
        ++steps_;
        if (link_down_left_ != 0 && --link_down_left_ == 0) {
            link_up_ = true;
        }
        for (auto& b : tdh_bad_) b.store(0, std::memory_order_relaxed);
        deliver_rx();
        for (std::uint16_t q = 0; q < cfg_.limits.queues && !removed_; ++q) {
            process_tx(q);
        }
    }
    /// Steps until pred() or max_steps; returns whether pred() held.
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
    void inject(const fault_plan& p) {
        std::lock_guard g(mu_);
        faults_ = p;
        if (p.dma_faults != 0) {
            mem_.fail_next_dma(p.dma_faults);
        }
        if (p.link_down_steps != 0) {
            link_up_ = false;
            link_down_left_ = p.link_down_steps;
        }
    }
    /// A VF reset (function-level reset by the PF): queues off, ring registers cleared.
    void reset() {
        std::lock_guard g(mu_);
        do_reset();
    }
    /// Surprise removal: nothing answers any more.
    void remove() {
        std::lock_guard g(mu_);
        do_remove();
    }
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
    [[nodiscard]] std::uint64_t rx_overrun() const {
        std::lock_guard g(inbox_mu_);
        return rx_overrun_;
    }
    /// Every RX drop before a queue was chosen (the per-queue ones are in stats()).
    [[nodiscard]] igbvf_device_stats device_stats() const {
        igbvf_device_stats s;
        {
            std::lock_guard g(mu_);
            s.rx_link_down = rx_link_down_;
            s.rx_no_queue = rx_no_queue_;
        }
        std::lock_guard g(inbox_mu_);
        s.rx_overrun = rx_overrun_;
        s.rx_removed = rx_removed_;
        return s;
    }
    [[nodiscard]] std::uint64_t resets() const noexcept { return resets_; }

private:
    // A descriptor write-back on its way: TX, a packet's EOP descriptor; RX, a frame's
    // slot. The head register moves past it once it is written (or dropped).
    struct write_back {
        std::uint32_t slot = 0, next = 0; // the descriptor written back, and the slot after it
        std::uint64_t due = 0;            // step at which the write-back lands
        bool written = false, dd = true;
        igbvf::adv_rx_wb rx{}; // RX: the write-back, STATUS/ERROR in rx.status_error
    };
    // One ring's completion faults, as references into faults_ (counts are consumed).
    struct wb_faults {
        std::uint32_t& drop;
        std::uint32_t delay;
        std::uint32_t& reorder;
        bool& hold; // the first of a reordered pair is waiting for the second
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
        igbvf::adv_tx_context_desc ctx{};
        igbvf_queue_stats st{};
    };

    igbvf_device(guest_memory& m, const igbvf_device_config& c) : mem_(m), cfg_(c) {
        window_.set_bar(bar());
        window_.set_limits(c.limits);
        regs_[igbvf::reg::status / 4].store(igbvf::status_lu | igbvf::status_fd | igbvf::status_speed_1000);
        vmmb_.store(igbvf::mbx::rstd);
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

    std::uint32_t bar_read(std::uint32_t off) noexcept {
        if (removed_.load(std::memory_order_acquire) || off >= igbvf::bar_size || off % 4 != 0) {
            return igbvf::reg_removed;
        }
        const int q = queue_of(off);
        if (q >= cfg_.limits.queues) {
            return 0;
        }
        if (off == igbvf::reg::vmmb) {
            return vmmb_.fetch_and(~igbvf::mbx::r2c_bits) | igbvf::mbx::vfu;
        }
        if (off >= igbvf::reg::vmbmem && off < igbvf::reg::vmbmem + 4 * igbvf::mbx::size) {
            return mbmem_[(off - igbvf::reg::vmbmem) / 4].load();
        }
        if (off == igbvf::reg::eicr) {
            return eicr_.exchange(0);
        }
        if (off == igbvf::reg::eims) {
            std::uint32_t m = 0;
            for (std::uint16_t i = 0; i < cfg_.limits.queues; ++i) m |= irqs_[i].armed() ? 1u << i : 0;
            return m;
        }
        if (q >= 0 && off == igbvf::reg::tdh(static_cast<std::uint32_t>(q))) {
            const std::uint32_t bad = tdh_bad_[static_cast<std::size_t>(q)].load(std::memory_order_relaxed);
            return bad != 0 ? bad : reg(off);
        }
        return reg(off);
    }

    void bar_write(std::uint32_t off, std::uint32_t v) noexcept {
        if (removed_.load(std::memory_order_acquire) || off >= igbvf::bar_size || off % 4 != 0) {
            return;
        }
        const int qi = queue_of(off);
        if (qi >= cfg_.limits.queues) {
            return;
        }
        const auto q = static_cast<std::uint16_t>(qi);
        if (off == igbvf::reg::eims) {
            for (std::uint16_t i = 0; i < cfg_.limits.queues; ++i) if ((v >> i) & 1u) irqs_[i].arm();
        } else if (off == igbvf::reg::eimc) {
            for (std::uint16_t i = 0; i < cfg_.limits.queues; ++i) if ((v >> i) & 1u) irqs_[i].disarm();
        } else if (off == igbvf::reg::vmmb) {
            if ((v & igbvf::mbx::req) != 0 && mbx_fn_ != nullptr) {
                mbx_fn_(mbx_ctx_, index_);  // the PF reads the message and replies at once
            }
        } else if (off >= igbvf::reg::vmbmem && off < igbvf::reg::vmbmem + 4 * igbvf::mbx::size) {
            mbmem_[(off - igbvf::reg::vmbmem) / 4].store(v);
        } else if (off == igbvf::reg::ctrl) {
            if ((v & igbvf::ctrl_rst) != 0) {
                std::lock_guard g(mu_);
                do_reset();
            }
        } else if (qi >= 0 && off == igbvf::reg::txdctl(q)) {
            std::lock_guard g(mu_);
            set_reg(off, (v & igbvf::txdctl_enable) != 0 && enable_tx(q) ? v : v & ~igbvf::txdctl_enable);
        } else if (qi >= 0 && off == igbvf::reg::rxdctl(q)) {
            std::lock_guard g(mu_);
            set_reg(off, (v & igbvf::rxdctl_enable) != 0 && enable_rx(q) ? v : v & ~igbvf::rxdctl_enable);
        } else if (off != igbvf::reg::status && off != igbvf::reg::eicr) {
            set_reg(off, v);
        }
    }

    template <class... Args>
    void violation(std::uint16_t q, ring_kind r, std::uint32_t slot, const char* rule,
                   const char* fmt, Args... args) {
        char detail[160];
        if constexpr (sizeof...(Args) == 0) {
            std::snprintf(detail, sizeof detail, "%s", fmt);  // a plain message, not a format
        } else {
            std::snprintf(detail, sizeof detail, fmt, args...);
        }
        char msg[256];
        std::snprintf(msg, sizeof msg, "%s %s %u slot %u: %s: %s", cfg_.name,
                      r == ring_kind::tx ? "txq" : "rxq", unsigned{q}, unsigned{slot}, rule, detail);
        violations_.push_back({q, r, slot, rule, msg});
        q_[q].failed = true;
    }

    // TXDCTL.ENABLE: check the ring registers the driver wrote (datasheet 4.5.10).
    bool enable_tx(std::uint16_t q) {
        dq& d = q_[q];
        const iova_t base = (iova_t{reg(igbvf::reg::tdbah(q))} << 32) | reg(igbvf::reg::tdbal(q));
        const std::uint32_t len = reg(igbvf::reg::tdlen(q));
        const std::uint32_t n = len / igbvf::desc_size;
        std::byte* p = mem_.translate(base, len);
        if (len % 128 != 0 || n < cfg_.limits.min_ring || n > cfg_.limits.max_ring || p == nullptr ||
            (base & 127) != 0) {
            violation(q, ring_kind::tx, 0, igbvf_rule::bad_ring,
                      "TDLEN %u / TDBA 0x%" PRIx64 ": ring of %u descriptors outside %u..%u or guest memory",
                      len, base, n, cfg_.limits.min_ring, cfg_.limits.max_ring);
            return false;
        }
        d.tx = reinterpret_cast<igbvf::adv_tx_desc*>(p);
        d.tx_size = n;
        d.tx_fetch = reg(igbvf::reg::tdh(q)) % n;
        set_reg(igbvf::reg::tdh(q), d.tx_fetch);
        d.inflight.clear();
        d.tx_on = true;
        d.failed = false;
        return true;
    }
    bool enable_rx(std::uint16_t q) {
        dq& d = q_[q];
        const iova_t base = (iova_t{reg(igbvf::reg::rdbah(q))} << 32) | reg(igbvf::reg::rdbal(q));
        const std::uint32_t len = reg(igbvf::reg::rdlen(q));
        const std::uint32_t n = len / igbvf::desc_size;
        const std::uint32_t srr = reg(igbvf::reg::srrctl(q));
        const std::uint32_t buf = (srr & igbvf::srrctl_bsizepkt_mask) * 1024;
        std::byte* p = mem_.translate(base, len);
        if (len % 128 != 0 || n < cfg_.limits.min_ring || n > cfg_.limits.max_ring || p == nullptr ||
            (base & 127) != 0 ||
            (srr & igbvf::srrctl_desctype_mask) != igbvf::srrctl_desctype_adv_onebuf || buf == 0) {
            violation(q, ring_kind::rx, 0, igbvf_rule::bad_ring,
                      "RDLEN %u / RDBA 0x%" PRIx64 " / SRRCTL 0x%x: not a one-buffer advanced ring "
                      "of %u..%u descriptors in guest memory",
                      len, base, srr, cfg_.limits.min_ring, cfg_.limits.max_ring);
            return false;
        }
        d.rx = reinterpret_cast<igbvf::adv_rx_desc*>(p);
        d.rx_size = n;
        d.rx_buf = buf;
        d.rx_head = reg(igbvf::reg::rdh(q)) % n;
        d.rx_inflight.clear();
        d.rx_on = true;
        d.failed = false;
        return true;
    }

    void do_reset() {
        for (std::uint16_t q = 0; q < cfg_.limits.queues; ++q) {
            q_[q].tx_on = q_[q].rx_on = false;
            q_[q].inflight.clear();
            q_[q].rx_inflight.clear();
            for (std::uint32_t off : {igbvf::reg::txdctl(q), igbvf::reg::rxdctl(q), igbvf::reg::tdh(q),
                                      igbvf::reg::tdt(q), igbvf::reg::rdh(q), igbvf::reg::rdt(q)}) {
                set_reg(off, 0);
            }
            irqs_[q].reset();
        }
        vmmb_.fetch_or(igbvf::mbx::rsti | igbvf::mbx::rstd);
        ++resets_;
    }
    void do_remove() {
        for (auto& d : q_) {
            d.tx_on = d.rx_on = false;
            d.inflight.clear();
            d.rx_inflight.clear();
        }
        std::lock_guard g(inbox_mu_);
        rx_removed_ += inbox_.size();
        inbox_.clear();
        removed_.store(true, std::memory_order_release);
    }

    // The write-back of a TX packet: the whole descriptor, DD last (release).
    static void write_tx_wb(igbvf::adv_tx_desc& slot, bool dd) noexcept {
        auto* w = reinterpret_cast<std::uint32_t*>(&slot);
        w[0] = w[1] = w[2] = 0;
        std::atomic_ref<std::uint32_t>(w[3]).store(to_le32(dd ? igbvf::txd::stat_dd : 0), std::memory_order_release);
    }

    // Fetch whole packets between the internal fetch pointer and TDT, send them, and
    // write them back; then move TDH past the written-back prefix.
    void process_tx(std::uint16_t q) {
        dq& d = q_[q];
        if (!d.tx_on || d.failed) {
            return;
        }
        bool wrote = flush_tx(q);
        const std::uint32_t tail = reg(igbvf::reg::tdt(q));
        if (tail >= d.tx_size) {
            violation(q, ring_kind::tx, d.tx_fetch, igbvf_rule::tail_beyond_ring,
                      "TDT %u, the ring has %u descriptors", tail, d.tx_size);
            return;
        }
        while (d.tx_fetch != tail && !removed_) {
            // one packet: descriptors up to EOP, all of them before the tail
            std::uint32_t s = d.tx_fetch, len = 0, ndata = 0;
            std::uint32_t cmd_all = 0, olinfo = 0;
            bool complete = false;
            scratch_.len = 0;
            std::uint32_t dma_ok = 1;
            std::uint32_t eop = s;
            for (std::uint32_t k = 0; k < d.tx_size && s != tail; ++k) {
                igbvf::adv_tx_desc desc{};
                std::memcpy(&desc, &d.tx[s], sizeof desc);
                const std::uint32_t cmd = desc.read.cmd_type_len;
                if ((cmd & igbvf::txd::dcmd_dext) == 0 ||
                    ((cmd & igbvf::txd::dtyp_mask) != igbvf::txd::dtyp_ctxt &&
                     (cmd & igbvf::txd::dtyp_mask) != igbvf::txd::dtyp_data)) {
                    violation(q, ring_kind::tx, s, igbvf_rule::bad_desc_type,
                              "cmd_type_len 0x%08x: DEXT with DTYP context or data expected", cmd);
                    return;
                }
                if ((cmd & igbvf::txd::dtyp_mask) == igbvf::txd::dtyp_ctxt) {
                    std::memcpy(&d.ctx, &desc, sizeof d.ctx);
                    s = (s + 1) % d.tx_size;
                    continue;
                }
                const std::uint32_t dl = cmd & igbvf::txd::dtalen_mask;
                const std::uint32_t limit = (cmd & igbvf::txd::dcmd_tse) != 0 ? tso_max : max_frame_size;
                if (dl == 0 || len + dl > limit) {
                    violation(q, ring_kind::tx, s, igbvf_rule::bad_length,
                              "data length %u (packet %u so far) outside 1..%u", dl, len, limit);
                    return;
                }
                if (!mem_.contains(desc.read.buffer_addr, dl)) {
                    (void)mem_.translate(desc.read.buffer_addr, dl);  // counts the fault
                    violation(q, ring_kind::tx, s, igbvf_rule::iova_outside,
                              "IOVA 0x%" PRIx64 " + %u bytes is not guest memory", desc.read.buffer_addr, dl);
                    return;
                }
                if ((cmd & igbvf::txd::dcmd_tse) != 0 && (cfg_.limits.offloads & cap::tso) == 0) {
                    violation(q, ring_kind::tx, s, igbvf_rule::offload_off, "TSE set, TSO not offered");
                    return;
                }
                dma_ok &= mem_.dma_read(desc.read.buffer_addr, gather_.data() + len, dl) ? 1u : 0u;
                len += dl;
                ++ndata;
                cmd_all |= cmd;
                olinfo |= desc.read.olinfo_status;
                if ((cmd & igbvf::txd::dcmd_eop) != 0) {
                    eop = s;
                    complete = true;
                    break;
                }
                s = (s + 1) % d.tx_size;
            }
            if (!complete) {
                break;  // the driver has not handed over the whole packet yet: wait
            }
            // fault: removal or reset in the middle of the burst. What was sent before it
            // is written back first (write-back follows each packet, WTHRESH = 0).
            if (faults_.remove_after_tx == 0) {
                (void)flush_tx(q);
                do_remove();
                return;
            }
            if (faults_.reset_after_tx == 0) {
                faults_.reset_after_tx = -1;
                (void)flush_tx(q);
                do_reset();
                return;
            }
            faults_.remove_after_tx -= faults_.remove_after_tx > 0 ? 1 : 0;
            faults_.reset_after_tx -= faults_.reset_after_tx > 0 ? 1 : 0;
            if (dma_ok == 0) {
                ++d.st.tx_dma_errors;
            } else if ((cmd_all & igbvf::txd::dcmd_tse) != 0) {
                if (!segment(q, d, len, cmd_all, olinfo, eop)) {
                    return;
                }
            } else {
                std::memcpy(scratch_.data.data(), gather_.data(), len);
                scratch_.len = len;
                apply_tx_offloads(d, cmd_all, olinfo);
                send_frame(d);
            }
            d.tx_fetch = (eop + 1) % d.tx_size;
            write_back p{eop, d.tx_fetch, steps_, false, (cmd_all & igbvf::txd::dcmd_rs) != 0};
            if (!plan_fault(d, tx_faults(), p)) {
                plan_tx_corruption(q, d, p);
            }
            d.inflight.push_back(p);
            (void)ndata;
        }
        wrote = flush_tx(q) || wrote;
        if (d.stray_tx) {  // a write-back where nothing was handed over: the slot at the tail
            d.stray_tx = false;
            std::atomic_ref<std::uint32_t>(reinterpret_cast<std::uint32_t*>(&d.tx[tail])[3])
                .store(to_le32(igbvf::txd::stat_dd), std::memory_order_release);
        }
        if (wrote) {
            raise(q);
        }
    }

    wb_faults tx_faults() noexcept {
        return {faults_.drop_tx_completions, faults_.delay_tx_steps, faults_.reorder_tx_completions,
                tx_reorder_hold_};
    }
    wb_faults rx_faults() noexcept {
        return {faults_.drop_rx_completions, faults_.delay_rx_steps, faults_.reorder_rx_completions,
                rx_reorder_hold_};
    }

    // Decide when a write-back lands, by one ring's completion faults: never (dropped:
    // the head passes it, nothing is written), N steps late, or one step after the next
    // one's (a reordered pair). Returns whether a fault applied.
    bool plan_fault(dq& d, wb_faults f, write_back& p) {
        if (f.drop != 0) {
            --f.drop;
            ++d.st.comp_dropped;
            p.written = true;
            p.dd = false;
            return true;
        }
        if (f.delay != 0) {
            p.due = steps_ + f.delay;
            ++d.st.comp_delayed;
            return true;
        }
        if (f.reorder != 0) {
            if (!f.hold) {
                f.hold = true;
                p.due = steps_ + 1; // this one lands next step, after the next one's
                return true;
            }
            f.hold = false;
            --f.reorder;
            ++d.st.comp_reordered;
            return true;
        }
        return false;
    }

    void plan_tx_corruption(std::uint16_t q, dq& d, write_back& p) {
        if (faults_.corrupt != comp_fault::none && faults_.corrupt_ring == ring_kind::tx &&
            faults_.corrupt_count != 0) {
            --faults_.corrupt_count;
            ++d.st.comp_corrupted;
            switch (faults_.corrupt) {
            case comp_fault::index_out_of_range: tdh_bad_[q].store(d.tx_size + 7); break;
            case comp_fault::gen_out_of_order: p.dd = false; break;
            case comp_fault::never_posted:
            case comp_fault::double_completion: d.stray_tx = true; break;
            default: break;
            }
        }
    }

    // Write back what is due (in ring order, or out of it for a reorder), then move the
    // head register past the prefix that is written back.
    template <class Write>
    bool flush_due(std::deque<write_back>& inflight, std::uint32_t head_reg, Write write) {
        bool any = false;
        for (write_back& p : inflight) {
            if (!p.written && p.due <= steps_) {
                write(p);
                p.written = true;
                any = true;
            }
        }
        while (!inflight.empty() && inflight.front().written) {
            set_reg(head_reg, inflight.front().next);
            inflight.pop_front();
        }
        return any;
    }
    bool flush_tx(std::uint16_t q) {
        dq& d = q_[q];
        return flush_due(d.inflight, igbvf::reg::tdh(q),
                         [&](const write_back& p) { write_tx_wb(d.tx[p.slot], p.dd); });
    }
    // RX write-back (datasheet 7.1.6.2): the frame's words first, STATUS with DD last.
    bool flush_rx(std::uint16_t q) {
        dq& d = q_[q];
        return flush_due(d.rx_inflight, igbvf::reg::rdh(q), [&](const write_back& p) {
            igbvf::adv_rx_wb wb = p.rx;
            const std::uint32_t status =
                p.dd ? wb.status_error.get() : wb.status_error & ~igbvf::rxd::stat_dd;
            wb.status_error = 0;
            auto* w = reinterpret_cast<std::uint32_t*>(&d.rx[p.slot]);
            std::memcpy(w, &wb, 8);
            std::memcpy(w + 3, &wb.length, 4);
            std::atomic_ref<std::uint32_t>(w[2]).store(to_le32(status), std::memory_order_release);
        });
    }

    void send_frame(dq& d) {
        if (!link_up_) {
            ++d.st.tx_link_down;
            return;
        }
        ++d.st.tx_frames;
        d.st.tx_bytes += scratch_.len;
        if (uplink_ != nullptr) {
            uplink_->from_vf(index_, scratch_);
        }
    }

    // TCP segmentation (datasheet 7.2.4): the headers of the context (MACLEN, IPLEN,
    // L4LEN) are repeated on every segment of at most MSS payload bytes; IPv4 total length
    // and id, the TCP sequence number and flags (FIN, PSH only on the last) and both
    // checksums are redone per segment. IPv4/TCP only, as the context must say.
    bool segment(std::uint16_t q, dq& d, std::uint32_t len, std::uint32_t cmd, std::uint32_t olinfo,
                 std::uint32_t eop) {
        const std::uint32_t maclen = (d.ctx.vlan_macip_lens >> igbvf::txd::maclen_shift) & 0x7F;
        const std::uint32_t iplen = d.ctx.vlan_macip_lens & igbvf::txd::iplen_mask;
        const std::uint32_t l4len = (d.ctx.mss_l4len_idx >> igbvf::txd::l4len_shift) & 0xFF;
        const std::uint32_t mss = d.ctx.mss_l4len_idx >> igbvf::txd::mss_shift;
        const std::uint32_t hdr = maclen + iplen + l4len;
        const std::uint32_t paylen = olinfo >> igbvf::txd::paylen_shift;
        if ((d.ctx.type_tucmd_mlhl & (igbvf::txd::tucmd_ipv4 | igbvf::txd::tucmd_l4t_tcp)) !=
                (igbvf::txd::tucmd_ipv4 | igbvf::txd::tucmd_l4t_tcp) ||
            iplen < 20 || l4len < 20 || mss == 0 || hdr >= len || hdr + mss > max_frame_size - 4 ||
            paylen != len - hdr) {
            violation(q, ring_kind::tx, eop, igbvf_rule::bad_length,
                      "TSO context: MACLEN %u IPLEN %u L4LEN %u MSS %u PAYLEN %u for %u bytes",
                      maclen, iplen, l4len, mss, paylen, len);
            return false;
        }
        const std::byte* tcp0 = gather_.data() + maclen + iplen;
        const std::uint32_t seq0 = (std::uint32_t{eth::get16(tcp0 + 4)} << 16) | eth::get16(tcp0 + 6);
        const std::uint16_t id0 = eth::get16(gather_.data() + maclen + 4);
        const std::uint32_t payload = len - hdr;
        for (std::uint32_t off = 0, k = 0; off < payload; off += mss, ++k) {
            const std::uint32_t seg = payload - off < mss ? payload - off : mss;
            std::memcpy(scratch_.data.data(), gather_.data(), hdr);
            std::memcpy(scratch_.data.data() + hdr, gather_.data() + hdr + off, seg);
            scratch_.len = hdr + seg;
            std::byte* ip = scratch_.data.data() + maclen;
            std::byte* tcp = ip + iplen;
            eth::put16(ip + 2, static_cast<std::uint16_t>(iplen + l4len + seg));
            eth::put16(ip + 4, static_cast<std::uint16_t>(id0 + k));
            const std::uint32_t seq = seq0 + off;
            eth::put16(tcp + 4, static_cast<std::uint16_t>(seq >> 16));
            eth::put16(tcp + 6, static_cast<std::uint16_t>(seq));
            if (off + seg < payload) {
                tcp[13] &= std::byte{0xF6};  // FIN and PSH on the last segment only
            }
            apply_tx_offloads(d, cmd, igbvf::txd::popts_ixsm | igbvf::txd::popts_txsm);
            send_frame(d);
        }
        return true;
    }

    // VLE, IXSM, TXSM from the context descriptor (datasheet 7.2.2.2).
    void apply_tx_offloads(const dq& d, std::uint32_t cmd, std::uint32_t olinfo) {
        const std::uint32_t maclen = (d.ctx.vlan_macip_lens >> igbvf::txd::maclen_shift) & 0x7F;
        const std::uint32_t iplen = d.ctx.vlan_macip_lens & igbvf::txd::iplen_mask;
        if ((olinfo & igbvf::txd::popts_ixsm) != 0 && maclen + 20 <= scratch_.len && iplen >= 20) {
            std::byte* ip = scratch_.data.data() + maclen;
            ip[10] = ip[11] = std::byte{0};
            const std::uint16_t c = fold(sum16(ip, iplen < scratch_.len - maclen ? iplen : 20, 0));
            eth::put16(ip + 10, static_cast<std::uint16_t>(~c));
        }
        if ((olinfo & igbvf::txd::popts_txsm) != 0 && maclen + iplen + 8 <= scratch_.len && iplen >= 20) {
            std::byte* ip = scratch_.data.data() + maclen;
            std::byte* l4 = ip + iplen;
            const std::uint32_t l4len = scratch_.len - maclen - iplen;
            const bool tcp = (d.ctx.type_tucmd_mlhl & igbvf::txd::tucmd_l4t_tcp) != 0;
            const std::uint32_t off = tcp ? 16 : 6;
            if (off + 2 <= l4len) {
                l4[off] = l4[off + 1] = std::byte{0};
                std::uint32_t s = sum16(ip + 12, 8, 0);  // pseudo header: addresses
                s += tcp ? 6u : 17u;
                s += l4len;
                const std::uint16_t c = fold(sum16(l4, l4len, s));
                const auto v = static_cast<std::uint16_t>(~c);
                eth::put16(l4 + off, v == 0 && !tcp ? std::uint16_t{0xFFFF} : v);  // UDP: 0 means none
            }
        }
        if ((cmd & igbvf::txd::dcmd_vle) != 0 && scratch_.len + 4 <= max_frame_size && scratch_.len >= 14) {
            std::memmove(scratch_.data.data() + 16, scratch_.data.data() + 12, scratch_.len - 12);
            eth::put16(scratch_.data.data() + 12, eth::type_vlan);
            eth::put16(scratch_.data.data() + 14, static_cast<std::uint16_t>(d.ctx.vlan_macip_lens >> 16));
            scratch_.len += 4;
        }
    }
    static std::uint32_t sum16(const std::byte* p, std::uint32_t n, std::uint32_t s) noexcept {
        for (std::uint32_t i = 0; i + 1 < n; i += 2) s += eth::get16(p + i);
        if (n % 2 != 0) s += std::to_integer<std::uint32_t>(p[n - 1]) << 8;
        return s;
    }
    static std::uint16_t fold(std::uint32_t s) noexcept {
        while ((s >> 16) != 0) s = (s & 0xFFFF) + (s >> 16);
        return static_cast<std::uint16_t>(s);
    }

    void raise(std::uint16_t q) noexcept {
        eicr_.fetch_or(1u << q);
        irqs_[q].raise();
    }

public:
    /// The sim's RSS (eth::flow_hash): the same as every sim device's.
    static std::uint32_t flow_hash(const frame& f) noexcept {
        return eth::flow_hash(f);
    }

private:
    // Switch -> RX buffers, in arrival order.
    void deliver_rx() {
        {
            std::lock_guard g(inbox_mu_);
            const std::size_t n = std::min<std::size_t>(inbox_.size(), cfg_.rx_frames_per_step);
            rx_batch_.assign(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
            inbox_.erase(inbox_.begin(), inbox_.begin() + static_cast<std::ptrdiff_t>(n));
        }
        std::array<std::uint16_t, igbvf::max_queues> active{};
        std::uint16_t nactive = 0;
        for (std::uint16_t q = 0; q < cfg_.limits.queues; ++q) {
            if (q_[q].rx_on && !q_[q].failed) active[nactive++] = q;
        }
        std::uint32_t wrote = 0;
        for (const frame& f0 : rx_batch_) {
            if (!link_up_) {
                ++rx_link_down_;
                continue;
            }
            if (nactive == 0) {
                ++rx_no_queue_;
                continue;
            }
            const std::uint32_t hash = flow_hash(f0);
            const std::uint16_t q = active[hash % nactive];
            dq& d = q_[q];
            const std::uint32_t tail = reg(igbvf::reg::rdt(q));
            if (tail >= d.rx_size) {
                violation(q, ring_kind::rx, d.rx_head, igbvf_rule::tail_beyond_ring,
                          "RDT %u, the ring has %u descriptors", tail, d.rx_size);
                continue;
            }
            if (d.rx_head == tail) {
                ++d.st.rx_no_desc;
                continue;
            }
            frame f = f0;
            std::uint16_t vlan = 0;
            std::uint32_t status = igbvf::rxd::stat_dd | igbvf::rxd::stat_eop;
            eth::header h;
            if ((cfg_.limits.offloads & cap::vlan_strip) != 0 && eth::parse(f.bytes(), h) && h.vlan != 0) {
                vlan = eth::get16(f.data.data() + 14);
                std::memmove(f.data.data() + 12, f.data.data() + 16, f.len - 16);
                f.len -= 4;
                status |= igbvf::rxd::stat_vp;
            }
            if (f.len > d.rx_buf) {
                ++d.st.rx_oversize;
                continue;
            }
            igbvf::adv_rx_desc desc{};
            std::memcpy(&desc, &d.rx[d.rx_head], sizeof desc);
            const iova_t addr = desc.read.pkt_addr;
            if (!mem_.contains(addr, d.rx_buf)) {
                (void)mem_.translate(addr, d.rx_buf);
                violation(q, ring_kind::rx, d.rx_head, igbvf_rule::iova_outside,
                          "IOVA 0x%" PRIx64 " + %u bytes is not guest memory", addr, d.rx_buf);
                continue;
            }
            igbvf::adv_rx_wb wb{};
            if (mem_.dma_write(addr, f.data.data(), f.len)) {
                wb.length = static_cast<std::uint16_t>(f.len);
                ++d.st.rx_frames;
                d.st.rx_bytes += f.len;
            } else {
                status |= igbvf::rxd::err_rxe;
                ++d.st.rx_dma_errors;
            }
            wb.rss = hash;
            wb.vlan = vlan;
            status |= rx_csum(f, wb.pkt_info);
            wb.status_error = status;
            write_back p{d.rx_head, (d.rx_head + 1) % d.rx_size, steps_, false, true, wb};
            if (!plan_fault(d, rx_faults(), p) && faults_.corrupt != comp_fault::none &&
                faults_.corrupt_ring == ring_kind::rx && faults_.corrupt_count != 0) {
                --faults_.corrupt_count;
                ++d.st.comp_corrupted;
                switch (faults_.corrupt) {
                case comp_fault::index_out_of_range:
                    p.rx.hdr_info = static_cast<std::uint16_t>(igbvf::rxd::hdr_sph | (64u << 5));
                    break;
                case comp_fault::length_too_large:
                    p.rx.length = static_cast<std::uint16_t>(d.rx_buf + 512);
                    break;
                case comp_fault::gen_out_of_order: p.dd = false; break;
                case comp_fault::never_posted:
                case comp_fault::double_completion: d.stray_rx = true; break;
                default: break;
                }
            }
            d.rx_inflight.push_back(p);
            d.rx_head = p.next;
        }
        rx_batch_.clear();
        for (std::uint16_t q = 0; q < cfg_.limits.queues; ++q) {
            dq& d = q_[q];
            if (d.rx_on && flush_rx(q)) {
                wrote |= 1u << q;
            }
            if (d.stray_rx && d.rx_on) {
                d.stray_rx = false;
                const std::uint32_t tail = reg(igbvf::reg::rdt(q)) % d.rx_size;
                std::atomic_ref<std::uint32_t>(reinterpret_cast<std::uint32_t*>(&d.rx[tail])[2])
                    .store(to_le32(igbvf::rxd::stat_dd | igbvf::rxd::stat_eop), std::memory_order_release);
            }
            if ((wrote >> q) & 1u) {
                raise(q);
            }
        }
    }

    // IPv4 header and TCP/UDP checksum verdicts (datasheet 7.1.5: IPCS, L4CS, UDPCS).
    std::uint32_t rx_csum(const frame& f, le16& pkt_info) const noexcept {
        if ((cfg_.limits.offloads & cap::rx_csum) == 0) {
            return igbvf::rxd::stat_ixsm;
        }
        eth::header h;
        if (!eth::parse(f.bytes(), h) || h.type != 0x0800 || f.len < h.payload_off + 20) {
            return 0;
        }
        const std::byte* ip = f.data.data() + h.payload_off;
        const std::uint32_t ihl = (std::to_integer<std::uint32_t>(ip[0]) & 0xF) * 4;
        if (ihl < 20 || h.payload_off + ihl > f.len) {
            return 0;
        }
        pkt_info = igbvf::rxd::pkttype_ipv4;
        std::uint32_t st = igbvf::rxd::stat_ipcs;
        if (fold(sum16(ip, ihl, 0)) != 0xFFFF) {
            st |= igbvf::rxd::err_ipe;
        }
        const std::uint32_t proto = std::to_integer<std::uint32_t>(ip[9]);
        const std::uint32_t l4len = f.len - h.payload_off - ihl;
        if ((proto == 6 || proto == 17) && l4len >= 8) {
            std::uint32_t s = sum16(ip + 12, 8, 0) + proto + l4len;
            const bool ok = fold(sum16(ip + ihl, l4len, s)) == 0xFFFF;
            pkt_info |= proto == 6 ? igbvf::rxd::pkttype_tcp : igbvf::rxd::pkttype_udp;
            st |= (proto == 6 ? igbvf::rxd::stat_l4cs : igbvf::rxd::stat_udpcs) |
                  (ok ? 0 : igbvf::rxd::err_tcpe);
        }
        return st;
    }

    guest_memory& mem_;
    igbvf_device_config cfg_;
    igbvf_window window_;
    std::array<std::atomic<std::uint32_t>, igbvf::bar_size / 4> regs_{};
    std::array<std::atomic<std::uint32_t>, igbvf::mbx::size> mbmem_{};
    std::atomic<std::uint32_t> vmmb_{0};
    std::atomic<std::uint32_t> eicr_{0};
    std::array<sim_irq, igbvf::max_queues> irqs_{};
    std::atomic<bool> removed_{false};
    std::array<std::atomic<std::uint32_t>, igbvf::max_queues> tdh_bad_{};  // TDH read override (fault)
    bool tx_reorder_hold_ = false, rx_reorder_hold_ = false;

    mutable std::mutex mu_;
    std::array<dq, igbvf::max_queues> q_{};
    fault_plan faults_{};
    register_fault reg_fault_{};
    bool link_up_ = true;
    std::uint32_t link_down_left_ = 0;
    std::uint64_t steps_ = 0, resets_ = 0, rx_link_down_ = 0, rx_no_queue_ = 0;
    std::vector<igbvf_violation> violations_;
    std::vector<frame> rx_batch_;
    frame scratch_{};
    std::vector<std::byte> gather_ = std::vector<std::byte>(tso_max);  // one packet's buffers

    vf_uplink* uplink_ = nullptr;
    std::uint16_t index_ = 0;
    void* mbx_ctx_ = nullptr;
    mailbox_fn mbx_fn_ = nullptr;

    mutable std::mutex inbox_mu_;
    std::deque<frame> inbox_;
    std::uint64_t rx_overrun_ = 0;
    std::uint64_t rx_removed_ = 0;
};

} // namespace npa::sim
