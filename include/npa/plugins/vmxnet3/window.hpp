// npa/plugins/vmxnet3/window.hpp: how the vmxnet3 plugin and the vmxnet3 control path
// reach the device, and what each of them may touch.
//
// A vmxnet3 is two register BARs plus memory the guest shares with the device
// (defs.hpp). NPA splits it in two (DESIGN.md section 1):
//   - window (the plugin's device_type): the data path's share. BAR0 doorbells and
//     interrupt masks; the bring-up registers (VRRS and UVRS revision select, DSAL/DSAH
//     shared-area address); the lifecycle commands (ACTIVATE_DEV, QUIESCE_DEV, RESET_DEV,
//     GET_QUEUE_STATUS, GET_STATS, GET_LINK, GET_CONF_INTR, UPDATE_IML) and ICR; the
//     events (the shared area's ecr, acknowledged through ECR); and the parts of the
//     shared area the data path owns:
//     its header, misc (queue table, MTU, features), interrupt configuration, queue
//     descriptors, ring memory. No MAC register, no RX
//     filter, no UPDATE_* filter command is reachable from it.
//   - control_port (given to vmxnet3_control, shell side): MACL/MACH, the RX filter
//     configuration (RX mode, VLAN table, multicast table) and the commands that apply them.
// Both are views over one mmio accessor, built by whoever binds the device (the sim device
// model, or a real driver after mapping the BARs).
#pragma once

#include <npa/config.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace npa::vmxnet3 {

/// Register access. On hardware these are volatile loads and stores to the mapped BARs; in
/// the sim they are the hypervisor trapping the access (an MMIO exit). Values are in host
/// order: the registers are little-endian, so a platform mapping a real BAR converts in these
/// functions (npa::load_le32 / store_le32 on the mapped address, as Linux's readl/writel).
/// Memory order: a doorbell (TXPROD, RXPROD) follows the descriptors' release stores; the
/// sim latches doorbells with release stores that its device acquires, and keeps the other
/// registers behind its lock. A platform mapping a real BAR orders as writel()/readl() do
/// (dma_wmb() before the store, dma_rmb() after the load, on arm64), so that the device
/// sees the descriptors before the doorbell.
struct mmio {
    void* ctx = nullptr;
    void (*write)(void* ctx, bar b, std::uint32_t off, std::uint32_t v) noexcept = nullptr;
    std::uint32_t (*read)(void* ctx, bar b, std::uint32_t off) noexcept = nullptr;

    void write32(bar b, std::uint32_t off, std::uint32_t v) const noexcept { write(ctx, b, off, v); }
    [[nodiscard]] std::uint32_t read32(bar b, std::uint32_t off) const noexcept {
        return read(ctx, b, off);
    }
    /// Writes a command and reads the device's answer (vmxnet3 commands complete before the
    /// CMD register can be read back). For the commands that answer: the GET_* commands and
    /// ACTIVATE_DEV, which Linux's driver reads back.
    [[nodiscard]] std::uint32_t command(std::uint32_t c) const noexcept {
        write32(bar::vd, reg::CMD, c);
        return read32(bar::vd, reg::CMD);
    }
    /// Writes a command whose answer nobody reads: the UPDATE_* commands, QUIESCE_DEV,
    /// RESET_DEV. Linux's driver never reads CMD after them, and what QEMU's device answers
    /// then comes from its default case (0 today, all ones in early versions), no answer
    /// about the command.
    void issue(std::uint32_t c) const noexcept { write32(bar::vd, reg::CMD, c); }
};

/// A block of guest memory the device can reach.
struct dma_block {
    std::byte* virt = nullptr;
    iova_t iova = 0;
    std::size_t size = 0;
};

/// What a device offers, as data: the revision's fixed set plus what the hypervisor enables
/// on this host (a second host may differ).
struct device_profile {
    std::uint64_t upt_features = upt1::F_RXCSUM | upt1::F_RSS | upt1::F_RXVLAN;
    bool tx_csum = true;      ///< om = CSUM
    bool tso = true;          ///< om = TSO
    bool vlan_insert = true;  ///< ti/tci
    std::uint16_t max_queues = 4;
    std::uint32_t max_ring_size = TX_RING_MAX_SIZE;
    std::uint32_t max_mtu = 1500;
};

/// Reads that come back all ones: a PCI device that is gone (master abort).
inline constexpr std::uint32_t removed_read = 0xFFFFFFFFu;

/// The plugin's device window.
class window {
public:
    window() noexcept = default;
    /// `shared` holds the driver_shared area (at least sizeof(driver_shared) bytes).
    window(mmio io, dma_block shared, dma_block queue_table, dma_block rings,
           const device_profile& profile) noexcept
        : io_(io), shared_(shared.size >= sizeof(driver_shared)
                               ? reinterpret_cast<driver_shared*>(shared.virt)
                               : nullptr),
          shared_iova_(shared.iova), table_(queue_table), rings_(rings), profile_(profile) {}

    [[nodiscard]] bool bound() const noexcept { return io_.write != nullptr && shared_ != nullptr; }
    [[nodiscard]] const device_profile& profile() const noexcept { return profile_; }
    [[nodiscard]] dma_block ring_area() const noexcept { return rings_; }
    /// The MSI-X vectors the binder enabled for the function (pci_alloc_irq_vectors):
    /// fewer than one per queue pair plus the event vector makes the plugin lay out one
    /// vector for everything (interrupts.hpp). A binder that says nothing has all of them;
    /// one that polls never takes an interrupt, whatever the layout.
    [[nodiscard]] std::uint32_t irq_vectors() const noexcept { return irq_vectors_; }
    void set_irq_vectors(std::uint32_t n) noexcept { irq_vectors_ = n; }

    // ---- shared memory owned by the data path ----------------------------------------
    [[nodiscard]] misc_conf& misc() noexcept { return shared_->devRead.misc; }
    [[nodiscard]] intr_conf& intr() noexcept { return shared_->devRead.intrConf; }
    [[nodiscard]] iova_t queue_table_iova() const noexcept { return table_.iova; }
    /// Room for this many queue descriptors (TX and RX together).
    [[nodiscard]] std::uint32_t queue_table_slots() const noexcept {
        return static_cast<std::uint32_t>(table_.size / sizeof(tx_queue_desc));
    }
    /// The RSS configuration: its descriptor in the shared area, and its memory, the
    /// queue descriptor block's bytes after `queues` pairs of descriptors
    /// (queue_table_bytes); empty when the block has no room for it.
    [[nodiscard]] var_len_conf_desc& rss_conf_desc() noexcept { return shared_->devRead.rssConfDesc; }
    [[nodiscard]] dma_block rss_area(std::uint32_t queues) const noexcept {
        const std::size_t at = 2u * queues * sizeof(tx_queue_desc);
        if (table_.size < at + sizeof(rss_conf)) {
            return {};
        }
        return {table_.virt + at, table_.iova + at, sizeof(rss_conf)};
    }
    /// Queue descriptor table: TX queues first, then RX queues (misc.queueDescPA).
    [[nodiscard]] tx_queue_desc* txq(std::uint32_t q) noexcept {
        return reinterpret_cast<tx_queue_desc*>(table_.virt) + q;
    }
    [[nodiscard]] rx_queue_desc* rxq(std::uint32_t ntx, std::uint32_t q) noexcept {
        return reinterpret_cast<rx_queue_desc*>(table_.virt + ntx * sizeof(tx_queue_desc)) + q;
    }

    // ---- BAR0: doorbells and interrupt masks ----------------------------------------
    void txprod(std::uint32_t q, std::uint32_t next2fill) const noexcept {
        io_.write32(bar::pt, reg::txprod(q), next2fill);
    }
    void rxprod(std::uint32_t q, std::uint32_t ring, std::uint32_t next2fill) const noexcept {
        io_.write32(bar::pt, ring == 0 ? reg::rxprod(q) : reg::rxprod2(q), next2fill);
    }
    void imr(std::uint32_t vector, bool masked) const noexcept {
        io_.write32(bar::pt, reg::imr(vector), masked ? 1u : 0u);
    }

    // ---- BAR1: bring-up, lifecycle commands and status only ---------------------------
    /// VRRS / UVRS read: the revisions the device speaks (REV1_BIT ...).
    [[nodiscard]] std::uint32_t revisions() const noexcept {
        return io_.read32(bar::vd, reg::VRRS);
    }
    [[nodiscard]] std::uint32_t upt_revisions() const noexcept {
        return io_.read32(bar::vd, reg::UVRS);
    }
    void select_revision(std::uint32_t bit) const noexcept { io_.write32(bar::vd, reg::VRRS, bit); }
    void select_upt_revision(std::uint32_t bit) const noexcept {
        io_.write32(bar::vd, reg::UVRS, bit);
    }
    /// Stamps the shared area's header and tells the device where it is (DSAL, then DSAH).
    void register_shared_area() const noexcept {
        shared_->magic = REV1_MAGIC;
        shared_->size = sizeof(driver_shared);
        io_.write32(bar::vd, reg::DSAL, static_cast<std::uint32_t>(shared_iova_));
        io_.write32(bar::vd, reg::DSAH, static_cast<std::uint32_t>(shared_iova_ >> 32));
    }
    [[nodiscard]] std::uint32_t activate() const noexcept { return io_.command(cmd::ACTIVATE_DEV); }
    void quiesce() const noexcept { io_.issue(cmd::QUIESCE_DEV); }
    /// RESET_DEV: the device forgets its queues (what was activated); QEMU's also forgets
    /// the shared-area address, so every attach registers it again (probe).
    void reset() const noexcept { io_.issue(cmd::RESET_DEV); }
    /// UPDATE_IML: the device re-reads intrConf.modLevels (no answer: mmio::issue).
    void update_iml() const noexcept { io_.issue(cmd::UPDATE_IML); }
    void update_queue_status() const noexcept { (void)io_.command(cmd::GET_QUEUE_STATUS); }
    /// GET_STATS: the device writes its UPT1 counters into every queue descriptor.
    void update_stats() const noexcept { (void)io_.command(cmd::GET_STATS); }
    /// GET_LINK: bit 0 link up, bits 16..31 the speed in Mbit/s.
    [[nodiscard]] std::uint32_t link() const noexcept { return io_.command(cmd::GET_LINK); }
    /// GET_CONF_INTR: the interrupt type (bits 0-1) and mask mode (bits 2-3) the device wants.
    [[nodiscard]] std::uint32_t conf_intr() const noexcept { return io_.command(cmd::GET_CONF_INTR); }
    /// ICR, for INTx: non-zero when the device raised the line (the read lowers it), 0 when
    /// the interrupt was another function's (Linux's vmxnet3_intr returns IRQ_NONE then).
    [[nodiscard]] std::uint32_t icr() const noexcept { return io_.read32(bar::vd, reg::ICR); }
    [[nodiscard]] bool present() const noexcept {
        return io_.read32(bar::vd, reg::VRRS) != removed_read;
    }
    /// Pending events: the device keeps them in the shared area (Vmxnet3_DriverShared::ecr),
    /// where Linux's and DPDK's drivers read them; the ECR register is only written, to
    /// acknowledge (QEMU's device answers 0 to a read of it).
    [[nodiscard]] std::uint32_t ecr() const noexcept {
        return shared_->ecr.load(std::memory_order_acquire);  // then what the event reports
    }
    /// Acknowledges events (ECR is write one to clear; the device clears them in the area).
    void ack_events(std::uint32_t bits) const noexcept { io_.write32(bar::vd, reg::ECR, bits); }

private:
    mmio io_{};
    driver_shared* shared_ = nullptr;
    iova_t shared_iova_ = 0;
    dma_block table_{};
    dma_block rings_{};
    device_profile profile_{};
    std::uint32_t irq_vectors_ = MAX_INTRS;
};

/// The control path's view (vmxnet3_control): the MAC registers, the RX filter
/// configuration in the shared area, and the commands that make the device read them.
class control_port {
public:
    control_port() noexcept = default;
    control_port(mmio io, driver_shared* shared, dma_block mcast_table) noexcept
        : io_(io), shared_(shared), mcast_(mcast_table) {}

    [[nodiscard]] bool bound() const noexcept { return io_.write != nullptr && shared_ != nullptr; }
    [[nodiscard]] rx_filter_conf& rx_filter() noexcept { return shared_->devRead.rxFilterConf; }
    [[nodiscard]] misc_conf& misc() noexcept { return shared_->devRead.misc; }
    [[nodiscard]] dma_block mcast_table() const noexcept { return mcast_; }
    /// driver_shared::cmdInfo as LOAD_PLUGIN's arguments and answer (copied: the device
    /// writes it, so it is read once and then checked).
    void write_load_plugin(const load_plugin_info& a) noexcept { put_load_plugin(shared_->cmdInfo, a); }
    [[nodiscard]] load_plugin_info read_load_plugin() const noexcept {
        return get_load_plugin(shared_->cmdInfo);
    }
    [[nodiscard]] std::uint32_t command(std::uint32_t c) const noexcept { return io_.command(c); }
    void issue(std::uint32_t c) const noexcept { io_.issue(c); }
    void write_mac(const std::uint8_t (&m)[6]) const noexcept {
        // MACL holds bytes 0..3, MACH bytes 4..5, least significant byte first; the device
        // takes the address when MACH is written.
        io_.write32(bar::vd, reg::MACL,
                    std::uint32_t{m[0]} | std::uint32_t{m[1]} << 8 | std::uint32_t{m[2]} << 16 |
                        std::uint32_t{m[3]} << 24);
        io_.write32(bar::vd, reg::MACH, std::uint32_t{m[4]} | std::uint32_t{m[5]} << 8);
    }
    void read_mac(std::uint8_t (&m)[6]) const noexcept {
        const std::uint32_t lo = io_.read32(bar::vd, reg::MACL);
        const std::uint32_t hi = io_.read32(bar::vd, reg::MACH);
        for (int i = 0; i < 4; ++i) {
            m[i] = static_cast<std::uint8_t>(lo >> (8 * i));
        }
        m[4] = static_cast<std::uint8_t>(hi);
        m[5] = static_cast<std::uint8_t>(hi >> 8);
    }
    [[nodiscard]] bool present() const noexcept {
        return io_.read32(bar::vd, reg::VRRS) != removed_read;
    }

private:
    mmio io_{};
    driver_shared* shared_ = nullptr;
    dma_block mcast_{};
};

/// The driver's bring-up up to the shared area, as Linux vmxnet3_probe_device and the start
/// of vmxnet3_activate_dev do it. The plugin's attach runs it first; whoever binds the
/// device may run it earlier (a driver's probe) so that the control path can program the
/// RX filter before the data path is attached. Returns nullptr, or why the device cannot
/// be driven by this driver.
///   1. VRRS: the device must speak revision 1; select it.
///   2. UVRS: the same for the UPT revision.
///   3. the shared area's header (magic, size), then its address to DSAL and DSAH.
[[nodiscard]] inline const char* probe(window& w) noexcept {
    if (!w.bound()) {
        return "vmxnet3: window not bound to a device";
    }
    const std::uint32_t revs = w.revisions();
    if (revs == removed_read) {
        return "vmxnet3: device removed";
    }
    if ((revs & REV1_BIT) == 0) {
        return "vmxnet3: the device does not speak revision 1 (VRRS)";
    }
    w.select_revision(REV1_BIT);
    if ((w.upt_revisions() & REV1_BIT) == 0) {
        return "vmxnet3: the device does not speak UPT revision 1 (UVRS)";
    }
    w.select_upt_revision(REV1_BIT);
    w.register_shared_area();
    return nullptr;
}

} // namespace npa::vmxnet3
