// npa/sim/vmxnet3/config.hpp: the vmxnet3 backend's configuration and counters.
#pragma once

#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace npa::sim {

/// The plugin images a hypervisor holds, by device id (npa::image::pci_device_id): what
/// LOAD_PLUGIN copies into the guest.
using vmxnet3_plugin_store = std::map<std::uint32_t, std::vector<std::byte>>;

/// The hypervisor's policy for one vmxnet3 port: the sim's one port policy.
using vmxnet3_list_policy = port_policy;

struct vmxnet3_device_config {
    const char* name = "vmxnet3-0";
    vmxnet3::device_profile profile{};
    mac_addr perm_mac{0x00, 0x50, 0x56, 0, 0, 0x01};  ///< VMware OUI
    std::uint32_t tx_threshold = 32;      ///< written to every txq's txThreshold at activation
    std::uint32_t tx_timer_steps = 2;     ///< the emulation polls TX rings this often without a doorbell
    bool update_rx_prod = false;          ///< set updateRxProd: the guest must write RXPROD
    /// GET_CONF_INTR's answer: interrupt type in bits 0-1 (vmxnet3::it), mask mode in bits
    /// 2-3 (vmxnet3::imm). 0 (AUTO, AUTO) is what QEMU's vmxnet3_get_interrupt_config
    /// answers. With INTx or MSI the device has one vector; with AUTO or MSI-X, MAX_INTRS.
    std::uint32_t conf_intr = 0;
    std::size_t inbox_limit = 8192;
    std::uint32_t rx_frames_per_step = 1024;
    // Where QEMU's vmxnet3 (hw/net/vmxnet3.c) differs from VMware's device; off by default,
    // all on in qemu() (docs/real-devices.md).
    bool rx_comp_type_zero = false;    ///< RX completions carry type 0, not RXCOMP
    bool perm_mac_at_activate = false; ///< ACTIVATE_DEV puts the permanent MAC back
    bool reset_forgets_shared_area = false; ///< RESET_DEV forgets DSAL/DSAH (drv_shmem = 0)

    /// The device as QEMU emulates it: RX completions of type 0, the permanent MAC back at
    /// every ACTIVATE_DEV, the shared area's address forgotten at RESET_DEV, txThreshold 1
    /// (VMXNET3_DEF_TX_THRESHOLD), updateRxProd never set.
    [[nodiscard]] static vmxnet3_device_config qemu() noexcept {
        vmxnet3_device_config c;
        c.rx_comp_type_zero = true;
        c.perm_mac_at_activate = true;
        c.reset_forgets_shared_area = true;
        c.tx_threshold = 1;
        c.update_rx_prod = false;
        return c;
    }
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

} // namespace npa::sim
