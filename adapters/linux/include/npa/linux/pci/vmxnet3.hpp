// npa/linux/pci/vmxnet3.hpp: a vmxnet3 PCI function bound from user space, as the vmxnet3
// plugin's window and the vmxnet3 control path's port.
//
// BAR0 (PT: doorbells, interrupt masks) and BAR1 (VD: bring-up, commands, MAC) are mapped
// through sysfs (pci_function); npa::vmxnet3::mmio's read and write are single volatile
// 32-bit accesses on them, converted from and to little-endian by npa::load_le32 /
// store_le32, with a fence on the side Linux's writel/readl put one: a register write
// comes after every earlier store to DMA memory (descriptors, then the doorbell), a
// register read before every later load (a command's answer, then the shared area).
// The shared area, the queue descriptor table, ring memory and the multicast table are
// carved from one hugepage dma_memory block, their IOVAs physical addresses.
#pragma once

#include <npa/control.hpp>
#include <npa/endian.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/function.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/plugins/vmxnet3/window.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace npa::lnx::pci {

/// The two register BARs of a vmxnet3, as npa::vmxnet3::mmio.
class vmxnet3_bars {
public:
    vmxnet3_bars() noexcept = default;
    vmxnet3_bars(bar_map pt, bar_map vd) noexcept : pt_(pt), vd_(vd) {}

    [[nodiscard]] vmxnet3::mmio io() noexcept { return {this, &write, &read}; }

    static void write(void* ctx, vmxnet3::bar b, std::uint32_t off, std::uint32_t v) noexcept {
        volatile std::uint32_t* r = static_cast<vmxnet3_bars*>(ctx)->reg(b, off);
        if (r == nullptr) {
            return;
        }
        std::uint32_t raw;
        npa::store_le32(&raw, v);
        std::atomic_thread_fence(std::memory_order_release);  // DMA memory stores first
        *r = raw;
    }
    static std::uint32_t read(void* ctx, vmxnet3::bar b, std::uint32_t off) noexcept {
        const volatile std::uint32_t* r = static_cast<vmxnet3_bars*>(ctx)->reg(b, off);
        if (r == nullptr) {
            return vmxnet3::removed_read;
        }
        const std::uint32_t raw = *r;
        std::atomic_thread_fence(std::memory_order_acquire);  // then what the answer covers
        return npa::load_le32(&raw);
    }

private:
    volatile std::uint32_t* reg(vmxnet3::bar b, std::uint32_t off) noexcept {
        const bar_map& m = b == vmxnet3::bar::pt ? pt_ : vd_;
        if (!m || off % 4 != 0 || off + 4 > m.size) {
            return nullptr;  // outside the BAR: reads as a removed device, writes dropped
        }
        return reinterpret_cast<volatile std::uint32_t*>(m.base + off);
    }

    bar_map pt_{}, vd_{};
};

/// What a vmxnet3 needs from DMA memory for `queues` queue pairs of rings up to `ring`.
[[nodiscard]] constexpr std::size_t vmxnet3_dma_bytes(std::uint16_t queues, std::uint32_t tx_ring,
                                                      std::uint32_t rx_ring) noexcept {
    return 4096 + vmxnet3::queue_table_bytes(queues) +
           vmxnet3_queue_bytes(tx_ring, rx_ring) * queues + 2 * vmxnet3::RING_BA_ALIGN +
           max_mcast_addrs * 6 + 64;
}

/// A vmxnet3 function opened, bound to uio_pci_generic, its BARs mapped, bus mastering
/// on, and its DMA areas carved: window() for the plugin, control_port() for the control
/// path. Keeps the function and the BAR mapping alive; the DMA memory is the caller's and
/// must outlive this object.
class vmxnet3_function {
public:
    vmxnet3_function() noexcept = default;
    vmxnet3_function(const vmxnet3_function&) = delete;
    vmxnet3_function& operator=(const vmxnet3_function&) = delete;

    /// Opens `address`, checks it is a vmxnet3 (15ad:07b0), binds, maps, enables DMA and
    /// carves its areas from `arena` for `queues` queue pairs of rings up to the sizes given.
    [[nodiscard]] bool open(pci_error& e, const char* address, dma_arena& arena, std::uint16_t queues,
                            std::uint32_t tx_ring, std::uint32_t rx_ring,
                            const vmxnet3::device_profile& profile = {}) noexcept {
        if (!fn_.open(e, address)) {
            return false;
        }
        if (fn_.vendor() != vmxnet3::pci_vendor_vmware || fn_.device() != vmxnet3::pci_device_vmxnet3) {
            fail(e, errc::not_supported, 0, "%s: %04x:%04x is not a vmxnet3 (15ad:07b0)",
                 fn_.sysfs_dir(), fn_.vendor(), fn_.device());
            return false;
        }
        if (!fn_.bind_uio(e)) {
            return false;
        }
        const bar_map pt = fn_.map_bar(e, 0);
        if (!pt) {
            return false;
        }
        const bar_map vd = fn_.map_bar(e, 1);
        if (!vd) {
            return false;
        }
        if (pt.size < vmxnet3::reg::pt_size || vd.size < vmxnet3::reg::vd_size) {
            fail(e, errc::not_supported, 0, "%s: BAR0 %zu / BAR1 %zu bytes, less than the 4096 each "
                 "a vmxnet3 has", fn_.sysfs_dir(), pt.size, vd.size);
            return false;
        }
        if (!fn_.enable_bus_master(e)) {
            return false;
        }
        bars_ = vmxnet3_bars(pt, vd);
        const auto sh = arena.take(sizeof(vmxnet3::driver_shared), 4096);
        const auto tb = arena.take(vmxnet3::queue_table_bytes(queues), vmxnet3::QUEUE_DESC_ALIGN);
        const auto rb = arena.take(vmxnet3_queue_bytes(tx_ring, rx_ring) * queues, vmxnet3::RING_BA_ALIGN);
        const auto mc = arena.take(max_mcast_addrs * 6, 64);
        if (!sh || !tb || !rb || !mc) {
            fail(e, errc::no_memory, 0, "%s: DMA memory too small for %u queue pairs of %u/%u slots",
                 fn_.sysfs_dir(), queues, tx_ring, rx_ring);
            return false;
        }
        window_ = vmxnet3::window(bars_.io(), {sh.virt, sh.iova, sh.size}, {tb.virt, tb.iova, tb.size},
                                  {rb.virt, rb.iova, rb.size}, profile);
        port_ = vmxnet3::control_port(bars_.io(), reinterpret_cast<vmxnet3::driver_shared*>(sh.virt),
                                      {mc.virt, mc.iova, mc.size});
        return true;
    }

    [[nodiscard]] pci_function& function() noexcept { return fn_; }
    [[nodiscard]] vmxnet3::window& window() noexcept { return window_; }
    [[nodiscard]] vmxnet3::control_port control_port() const noexcept { return port_; }
    [[nodiscard]] vmxnet3::mmio io() noexcept { return bars_.io(); }

private:
    pci_function fn_;
    vmxnet3_bars bars_;
    vmxnet3::window window_;
    vmxnet3::control_port port_;
};

} // namespace npa::lnx::pci
