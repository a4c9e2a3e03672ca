// npa/plugins/vmxnet3_window.hpp: how the vmxnet3 plugin and the vmxnet3 control path
// reach the device, and what each of them may touch.
//
// A vmxnet3 is two register BARs plus memory the guest shares with the device
// (vmxnet3_defs.hpp). NPA splits it in two (DESIGN.md section 1):
//   - window (the plugin's device_type): the data path's share. BAR0 doorbells and
//     interrupt masks, the lifecycle commands (ACTIVATE_DEV, QUIESCE_DEV, GET_QUEUE_STATUS),
//     the status registers (VRRS, ECR), and the parts of the shared area the data path
//     owns: misc (queue table, MTU, features), interrupt configuration, queue descriptors,
//     ring memory. No MAC register, no RX filter, no UPDATE_* command is reachable from it.
//   - control_port (given to vmxnet3_control, shell side): MACL/MACH, the RX filter
//     configuration (RX mode, VLAN table, multicast table) and the commands that apply them.
// Both are views over one mmio accessor, built by whoever binds the device (the sim device
// model, or a real driver after mapping the BARs).
#pragma once

#include <npa/config.hpp>
#include <npa/plugins/vmxnet3_defs.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::vmxnet3 {

/// Register access. On hardware these are volatile loads and stores to the mapped BARs; in
/// the sim they are the hypervisor trapping the access (an MMIO exit).
struct mmio {
    void* ctx = nullptr;
    void (*write)(void* ctx, bar b, std::uint32_t off, std::uint32_t v) noexcept = nullptr;
    std::uint32_t (*read)(void* ctx, bar b, std::uint32_t off) noexcept = nullptr;

    void write32(bar b, std::uint32_t off, std::uint32_t v) const noexcept { write(ctx, b, off, v); }
    [[nodiscard]] std::uint32_t read32(bar b, std::uint32_t off) const noexcept {
        return read(ctx, b, off);
    }
    /// Writes a command and reads the device's answer (vmxnet3 commands complete before the
    /// CMD register can be read back).
    [[nodiscard]] std::uint32_t command(std::uint32_t c) const noexcept {
        write32(bar::vd, reg::CMD, c);
        return read32(bar::vd, reg::CMD);
    }
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
    window(mmio io, driver_shared* shared, dma_block queue_table, dma_block rings,
           const device_profile& profile) noexcept
        : io_(io), shared_(shared), table_(queue_table), rings_(rings), profile_(profile) {}

    [[nodiscard]] bool bound() const noexcept { return io_.write != nullptr && shared_ != nullptr; }
    [[nodiscard]] const device_profile& profile() const noexcept { return profile_; }
    [[nodiscard]] dma_block ring_area() const noexcept { return rings_; }

    // ---- shared memory owned by the data path ----------------------------------------
    [[nodiscard]] misc_conf& misc() noexcept { return shared_->devRead.misc; }
    [[nodiscard]] intr_conf& intr() noexcept { return shared_->devRead.intrConf; }
    [[nodiscard]] iova_t queue_table_iova() const noexcept { return table_.iova; }
    /// Room for this many queue descriptors (TX and RX together).
    [[nodiscard]] std::uint32_t queue_table_slots() const noexcept {
        return static_cast<std::uint32_t>(table_.size / sizeof(tx_queue_desc));
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

    // ---- BAR1: lifecycle commands and status only -------------------------------------
    [[nodiscard]] std::uint32_t activate() const noexcept { return io_.command(cmd::ACTIVATE_DEV); }
    void quiesce() const noexcept { (void)io_.command(cmd::QUIESCE_DEV); }
    void update_queue_status() const noexcept { (void)io_.command(cmd::GET_QUEUE_STATUS); }
    [[nodiscard]] std::uint32_t link() const noexcept { return io_.command(cmd::GET_LINK); }
    [[nodiscard]] bool present() const noexcept {
        return io_.read32(bar::vd, reg::VRRS) != removed_read;
    }
    [[nodiscard]] std::uint32_t ecr() const noexcept { return io_.read32(bar::vd, reg::ECR); }

private:
    mmio io_{};
    driver_shared* shared_ = nullptr;
    dma_block table_{};
    dma_block rings_{};
    device_profile profile_{};
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
    [[nodiscard]] std::uint32_t command(std::uint32_t c) const noexcept { return io_.command(c); }
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

} // namespace npa::vmxnet3
