// npa/plugins/igbvf/window.hpp: what an 82576 VF gives its two users.
//
// A VF's register BAR holds both the data path (queue registers, interrupt masks) and the
// control path (the PF mailbox). NPA splits them (DESIGN.md section 1):
//   igbvf_window        the plugin's device window: ring memory, the queue and interrupt
//                       registers, read-only STATUS. No mailbox, no CTRL: a plugin cannot
//                       name them, because the window only takes dp_reg values;
//   igbvf_mailbox_port  the shell's control port: V2PMAILBOX and VMBMEM, nothing else.
// Both reach the BAR through igbvf_bar: two function pointers for 32-bit reads and writes
// at an offset of defs.hpp, supplied by whoever owns the function (the sim device
// model, or a platform mapping a real BAR, where they are volatile loads and stores).
// Register values cross igbvf_bar in host order; the 82576's registers are little-endian,
// so a platform's functions convert (npa::load_le32 / store_le32, as Linux's readl/writel).
// Memory order (docs/design.md "Memory order"): the plugin puts a release fence before each
// tail write; the sim's write is a release store and its read an acquire load. A platform
// mapping a real BAR orders as writel()/readl() do: the write reaches the device after every
// earlier store to DMA memory (dma_wmb() before the store on arm64), the read before later
// loads of it (dma_rmb() after it on arm64).
#pragma once

#include <npa/capabilities.hpp>
#include <npa/config.hpp>
#include <npa/image/abi.hpp>
#include <npa/plugins/igbvf/defs.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace npa {

/// 32-bit register access to one VF's BAR.
class igbvf_bar {
public:
    using read_fn = std::uint32_t (*)(void* ctx, std::uint32_t off) noexcept;
    using write_fn = void (*)(void* ctx, std::uint32_t off, std::uint32_t v) noexcept;

    igbvf_bar() noexcept = default;
    igbvf_bar(void* ctx, read_fn r, write_fn w) noexcept : ctx_(ctx), read_(r), write_(w) {}

    /// A BAR with nothing behind it reads all ones, as a removed PCIe function does.
    [[nodiscard]] std::uint32_t read(std::uint32_t off) const noexcept {
        return read_ != nullptr ? read_(ctx_, off) : igbvf::reg_removed;
    }
    void write(std::uint32_t off, std::uint32_t v) const noexcept {
        if (write_ != nullptr) {
            write_(ctx_, off, v);
        }
    }

private:
    void* ctx_ = nullptr;
    read_fn read_ = nullptr;
    write_fn write_ = nullptr;
};

/// DMA-able memory set aside for one queue pair's rings.
struct igbvf_dma_area {
    std::byte* virt = nullptr;
    iova_t iova = bad_iova;
    std::size_t size = 0;
};

/// What this VF's device supports: it differs between hosts (PF driver version, NIC
/// model, firmware), so it is data the plugin reads at attach, never a constant.
struct igbvf_limits {
    std::uint16_t queues = igbvf::max_queues;
    std::uint32_t min_ring = igbvf::min_ring_size;
    std::uint32_t max_ring = igbvf::max_ring_size;
    std::uint32_t offloads = cap::tx_ip_csum | cap::tx_l4_csum | cap::vlan_insert |
                             cap::rx_csum | cap::vlan_strip;
    std::uint32_t min_mtu = 68;
    std::uint32_t max_mtu = 1500;
};

/// The data-path registers a plugin may touch.
enum class igbvf_reg : std::uint8_t {
    status, rdbal, rdbah, rdlen, srrctl, rdh, rdt, rxdctl,
    tdbal, tdbah, tdlen, tdh, tdt, txdctl, dca_txctrl, eims, eimc, eiac, eiam, eitr, ivar0,
};

class igbvf_window {
public:
    /// The device an igbvf plugin image drives (npa/image/abi.hpp): the 82576 virtual
    /// function, PCI 8086:10ca. An image reaches the window through a pointer.
    static constexpr std::uint32_t image_device_id = image::pci_device_id(0x8086, 0x10ca);

    igbvf_window() noexcept = default;
    igbvf_window(igbvf_bar bar, const igbvf_limits& lim) noexcept : bar_(bar), lim_(lim) {}

    [[nodiscard]] const igbvf_limits& limits() const noexcept { return lim_; }
    [[nodiscard]] igbvf_dma_area ring_area(std::uint16_t q) const noexcept {
        return q < igbvf::max_queues ? areas_[q] : igbvf_dma_area{};
    }

    /// Register q's instance of `r` (q is ignored for per-function registers).
    [[nodiscard]] std::uint32_t read(igbvf_reg r, std::uint16_t q = 0) const noexcept {
        return bar_.read(offset(r, q));
    }
    void write(igbvf_reg r, std::uint16_t q, std::uint32_t v) const noexcept {
        bar_.write(offset(r, q), v);
    }

    [[nodiscard]] static constexpr std::uint32_t offset(igbvf_reg r, std::uint16_t q) noexcept {
        namespace g = igbvf::reg;
        switch (r) {
        case igbvf_reg::status: return g::status;
        case igbvf_reg::rdbal: return g::rdbal(q);
        case igbvf_reg::rdbah: return g::rdbah(q);
        case igbvf_reg::rdlen: return g::rdlen(q);
        case igbvf_reg::srrctl: return g::srrctl(q);
        case igbvf_reg::rdh: return g::rdh(q);
        case igbvf_reg::rdt: return g::rdt(q);
        case igbvf_reg::rxdctl: return g::rxdctl(q);
        case igbvf_reg::tdbal: return g::tdbal(q);
        case igbvf_reg::tdbah: return g::tdbah(q);
        case igbvf_reg::tdlen: return g::tdlen(q);
        case igbvf_reg::tdh: return g::tdh(q);
        case igbvf_reg::tdt: return g::tdt(q);
        case igbvf_reg::txdctl: return g::txdctl(q);
        case igbvf_reg::dca_txctrl: return g::dca_txctrl(q);
        case igbvf_reg::eims: return g::eims;
        case igbvf_reg::eimc: return g::eimc;
        case igbvf_reg::eiac: return g::eiac;
        case igbvf_reg::eiam: return g::eiam;
        case igbvf_reg::eitr: return g::eitr(q);
        case igbvf_reg::ivar0: return g::ivar0;
        }
        return g::status;
    }

    // ---- the function's owner (device model or platform) sets these up ----------------
    void set_area(std::uint16_t q, igbvf_dma_area a) noexcept {
        if (q < igbvf::max_queues) {
            areas_[q] = a;
        }
    }
    void set_limits(const igbvf_limits& l) noexcept { lim_ = l; }
    void set_bar(igbvf_bar b) noexcept { bar_ = b; }

private:
    igbvf_bar bar_{};
    igbvf_limits lim_{};
    igbvf_dma_area areas_[igbvf::max_queues]{};
};
// The layout a plugin image compiled from this header shares with its host: plain fields
// and function pointers.
static_assert(std::is_standard_layout_v<igbvf_window>);

/// The mailbox half of the BAR: the only registers igbvf_control (shell side) touches.
class igbvf_mailbox_port {
public:
    igbvf_mailbox_port() noexcept = default;
    explicit igbvf_mailbox_port(igbvf_bar bar) noexcept : bar_(bar) {}

    [[nodiscard]] std::uint32_t read_vmmb() const noexcept { return bar_.read(igbvf::reg::vmmb); }
    void write_vmmb(std::uint32_t v) const noexcept { bar_.write(igbvf::reg::vmmb, v); }
    [[nodiscard]] std::uint32_t read_mem(std::uint32_t i) const noexcept {
        return bar_.read(igbvf::reg::vmbmem + 4 * (i % igbvf::mbx::size));
    }
    void write_mem(std::uint32_t i, std::uint32_t v) const noexcept {
        bar_.write(igbvf::reg::vmbmem + 4 * (i % igbvf::mbx::size), v);
    }

private:
    igbvf_bar bar_{};
};

} // namespace npa
