// npa/sim/igbvf/regs.hpp: the 82576 VF model's BAR (part of igbvf_device).
//
// Reads and writes of the VF's register BAR: queue registers, EIMS/EIMC/EICR, CTRL.RST,
// STATUS and the PF mailbox. TXDCTL/RXDCTL.ENABLE check the ring registers the driver
// wrote (datasheet 4.5.10) and refuse a bad ring as a violation. A removed VF reads all
// ones (or 0, removed_reads_zero, as QEMU's VF once its PF disabled SR-IOV) and ignores
// writes.
#pragma once

#include <npa/sim/igbvf/device.hpp>

namespace npa::sim {

inline std::uint32_t igbvf_device::bar_read(std::uint32_t off) noexcept {
    if (removed_.load(std::memory_order_acquire) && cfg_.removed_reads_zero) {
        return 0;
    }
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
    if (q >= 0 && (off == igbvf::reg::txdctl(static_cast<std::uint32_t>(q)) ||
                   off == igbvf::reg::rxdctl(static_cast<std::uint32_t>(q)))) {
        // A queue still stopping shows ENABLE (stop_reads); the engine is already still.
        const bool rx = off == igbvf::reg::rxdctl(static_cast<std::uint32_t>(q));
        std::atomic<std::uint32_t>& left = stop_left_[2 * static_cast<std::size_t>(q) + (rx ? 1 : 0)];
        if (left.load() != 0) {
            left.fetch_sub(1);
            return reg(off) | (rx ? igbvf::rxdctl_enable : igbvf::txdctl_enable);
        }
        return reg(off);
    }
    if (q >= 0 && off == igbvf::reg::tdh(static_cast<std::uint32_t>(q))) {
        const std::uint32_t bad = tdh_bad_[static_cast<std::size_t>(q)].load(std::memory_order_relaxed);
        return bad != 0 ? bad : reg(off);
    }
    return reg(off);
}

inline void igbvf_device::bar_write(std::uint32_t off, std::uint32_t v) noexcept {
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
        // ENABLE set starts the queue (enable_tx checks the ring); cleared, it stops it: no
        // descriptor fetch, buffer DMA or write-back after this write (datasheet 4.5.10).
        std::lock_guard g(mu_);
        const bool on = (v & igbvf::txdctl_enable) != 0 && enable_tx(q);
        stop_left_[2 * q].store(q_[q].tx_on && !on ? cfg_.stop_reads : 0);
        q_[q].tx_on = on;
        set_reg(off, on ? v : v & ~igbvf::txdctl_enable);
    } else if (qi >= 0 && off == igbvf::reg::rxdctl(q)) {
        // The same for RX: frames for a stopped queue are dropped (rx_no_queue); the model
        // finishes what it was doing under its lock, so ENABLE reads back 0 at once.
        std::lock_guard g(mu_);
        const bool on = (v & igbvf::rxdctl_enable) != 0 && enable_rx(q);
        stop_left_[2 * q + 1].store(q_[q].rx_on && !on ? cfg_.stop_reads : 0);
        q_[q].rx_on = on;
        set_reg(off, on ? v : v & ~igbvf::rxdctl_enable);
    } else if (off != igbvf::reg::status && off != igbvf::reg::eicr) {
        set_reg(off, v);
    }
}

// TXDCTL.ENABLE: check the ring registers the driver wrote (datasheet 4.5.10).
inline bool igbvf_device::enable_tx(std::uint16_t q) {
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

inline bool igbvf_device::enable_rx(std::uint16_t q) {
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

// The queue registers a VF reset returns to their defaults: ENABLE, heads and tails 0,
// DCA_TXCTRL with its relaxed-ordering bits set.
inline void igbvf_device::reset_queue_regs(std::uint16_t q) noexcept {
    for (std::uint32_t off : {igbvf::reg::txdctl(q), igbvf::reg::rxdctl(q), igbvf::reg::tdh(q),
                              igbvf::reg::tdt(q), igbvf::reg::rdh(q), igbvf::reg::rdt(q)}) {
        set_reg(off, 0);
    }
    set_reg(igbvf::reg::dca_txctrl(q), igbvf::dca_txctrl_reset);
}

inline void igbvf_device::do_reset() {
    for (std::uint16_t q = 0; q < cfg_.limits.queues; ++q) {
        q_[q].tx_on = q_[q].rx_on = false;
        q_[q].inflight.clear();
        q_[q].rx_inflight.clear();
        reset_queue_regs(q);
        irqs_[q].reset();
    }
    // No RSTI / RSTD here: as QEMU's igb, a VF's own reset only tells the PF (VFLRE and
    // its mailbox interrupt); RSTD is the PF's "reset done" (set at creation).
    resets_.fetch_add(1, std::memory_order_release);
}

inline void igbvf_device::do_remove() {
    for (auto& d : q_) {
        d.tx_on = d.rx_on = false;
        d.inflight.clear();
        d.rx_inflight.clear();
    }
    // Frames waiting in a VF that is gone count as removed.
    inbox_.remove_all([this] { removed_.store(true, std::memory_order_release); });
}

} // namespace npa::sim
