// npa/linux/pci/igbvf.hpp: an 82576 virtual function (8086:10ca) bound from user space, as
// the igbvf plugin's window and the igbvf control channel's mailbox port.
//
// BAR0 (16 KiB: queue, interrupt and mailbox registers) is mapped through sysfs
// (pci_function); npa::igbvf_bar's read and write are single volatile 32-bit accesses on
// it, converted from and to little-endian by npa::load_le32 / store_le32, with a fence
// where Linux's writel/readl put one: a register write comes after every earlier store to
// DMA memory (descriptors, then the tail), a register read before every later load.
// Each queue pair's rings are carved from a hugepage dma_memory block, their IOVAs
// physical addresses.
//
// The VF's function-level reset (CTRL.RST, then the PF's RSTD in V2PMAILBOX) is done here,
// by whoever owns the function: it is neither the plugin's (no CTRL in its window) nor a
// mailbox message. After it, igbvf_control::reset() asks the PF for the VF's MAC.
#pragma once

#include <npa/endian.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/window.hpp>

#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace npa::lnx::pci {

inline constexpr std::uint16_t pci_vendor_intel = 0x8086;
inline constexpr std::uint16_t pci_device_82576_vf = 0x10ca;

/// A mapped VF BAR0, as npa::igbvf_bar.
class igbvf_regs {
public:
    igbvf_regs() noexcept = default;
    explicit igbvf_regs(bar_map m) noexcept : m_(m) {}

    [[nodiscard]] igbvf_bar bar() noexcept { return {this, &read, &write}; }

    static std::uint32_t read(void* ctx, std::uint32_t off) noexcept {
        const volatile std::uint32_t* r = static_cast<igbvf_regs*>(ctx)->reg(off);
        if (r == nullptr) {
            return igbvf::reg_removed;
        }
        const std::uint32_t raw = *r;
        std::atomic_thread_fence(std::memory_order_acquire);  // then what the value covers
        return npa::load_le32(&raw);
    }
    static void write(void* ctx, std::uint32_t off, std::uint32_t v) noexcept {
        volatile std::uint32_t* r = static_cast<igbvf_regs*>(ctx)->reg(off);
        if (r == nullptr) {
            return;
        }
        std::uint32_t raw;
        npa::store_le32(&raw, v);
        std::atomic_thread_fence(std::memory_order_release);  // DMA memory stores first
        *r = raw;
    }

private:
    volatile std::uint32_t* reg(std::uint32_t off) noexcept {
        if (!m_ || off % 4 != 0 || off + 4 > m_.size) {
            return nullptr;  // outside the BAR: reads as a removed device, writes dropped
        }
        return reinterpret_cast<volatile std::uint32_t*>(m_.base + off);
    }

    bar_map m_{};
};

/// Ring memory for one queue pair of `tx_ring` / `rx_ring` slots, [ TX | RX ], plus the
/// 128-byte alignment the plugin asks for.
[[nodiscard]] constexpr std::size_t igbvf_queue_bytes(std::uint32_t tx_ring, std::uint32_t rx_ring) noexcept {
    return std::size_t{tx_ring + rx_ring} * igbvf::desc_size;
}

/// The mailbox wait of a real PF: it answers from its interrupt handler, so a poll sleeps
/// (Linux igbvf waits 500 us between polls; 100 us keeps a TCG guest's round trips short).
inline void igbvf_mailbox_sleep(void*) noexcept {
    timespec t{0, 100 * 1000};
    ::nanosleep(&t, nullptr);
}

/// An 82576 VF opened, bound to uio_pci_generic, BAR0 mapped, bus mastering on, and its
/// ring areas carved: window() for the plugin, mailbox_port() for igbvf_control. Keeps the
/// function and the mapping alive; the DMA memory is the caller's and must outlive it.
class igbvf_function {
public:
    igbvf_function() noexcept = default;
    igbvf_function(const igbvf_function&) = delete;
    igbvf_function& operator=(const igbvf_function&) = delete;

    [[nodiscard]] bool open(pci_error& e, const char* address, dma_arena& arena, std::uint16_t queues,
                            std::uint32_t tx_ring, std::uint32_t rx_ring,
                            const igbvf_limits& limits = {}) noexcept {
        if (!fn_.open(e, address)) {
            return false;
        }
        if (fn_.vendor() != pci_vendor_intel || fn_.device() != pci_device_82576_vf) {
            fail(e, errc::not_supported, 0, "%s: %04x:%04x is not an 82576 VF (8086:10ca)", fn_.sysfs_dir(),
                 fn_.vendor(), fn_.device());
            return false;
        }
        if (queues == 0 || queues > igbvf::max_queues) {
            fail(e, errc::invalid_argument, 0, "%s: %u queue pairs, an 82576 VF has 1..2", fn_.sysfs_dir(), queues);
            return false;
        }
        if (!fn_.bind_uio(e)) {
            return false;
        }
        const bar_map b0 = fn_.map_bar(e, 0);
        if (!b0) {
            return false;
        }
        if (b0.size < igbvf::bar_size) {
            fail(e, errc::not_supported, 0, "%s: BAR0 %zu bytes, less than the 16 KiB of a VF", fn_.sysfs_dir(),
                 b0.size);
            return false;
        }
        if (!fn_.enable_bus_master(e)) {
            return false;
        }
        regs_ = igbvf_regs(b0);
        window_ = igbvf_window(regs_.bar(), limits);
        for (std::uint16_t q = 0; q < queues; ++q) {
            const auto a = arena.take(igbvf_queue_bytes(tx_ring, rx_ring), 128);
            if (!a) {
                fail(e, errc::no_memory, 0, "%s: DMA memory too small for %u queue pairs of %u/%u slots",
                     fn_.sysfs_dir(), queues, tx_ring, rx_ring);
                return false;
            }
            window_.set_area(q, {a.virt, a.iova, a.size});
        }
        return true;
    }

    /// Function-level reset of the VF (CTRL.RST). The PF learns of it (VFLRE, a mailbox
    /// interrupt) and undoes the VF's filters; the VF then sends the mailbox RESET
    /// (igbvf_control::reset), which the PF handles after the reset event. Returns whether
    /// V2PMAILBOX showed RSTD or RSTI within `wait_ms`: Linux igbvf waits for one, but
    /// QEMU's igb sets RSTD only when the PF driver signals its own reset done (CTRL_EXT.
    /// PFRSTD), not at a VF reset, so it is information here, not a condition.
    [[nodiscard]] bool reset(unsigned wait_ms = 10) noexcept {
        igbvf_bar b = regs_.bar();
        b.write(igbvf::reg::ctrl, igbvf::ctrl_rst);
        for (unsigned i = 0; i < wait_ms * 10; ++i) {
            const std::uint32_t v = b.read(igbvf::reg::vmmb);
            if (v != igbvf::reg_removed && (v & (igbvf::mbx::rstd | igbvf::mbx::rsti)) != 0) {
                return true;
            }
            igbvf_mailbox_sleep(nullptr);
        }
        return false;
    }

    [[nodiscard]] pci_function& function() noexcept { return fn_; }
    [[nodiscard]] igbvf_window& window() noexcept { return window_; }
    [[nodiscard]] igbvf_mailbox_port mailbox_port() noexcept { return igbvf_mailbox_port(regs_.bar()); }
    [[nodiscard]] igbvf_bar bar() noexcept { return regs_.bar(); }

private:
    pci_function fn_;
    igbvf_regs regs_;
    igbvf_window window_;
};

} // namespace npa::lnx::pci
