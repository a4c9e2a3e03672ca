// npa/sim/igbvf/config.hpp: the 82576 VF model's configuration, counters and the rules a
// driver can break.
#pragma once

#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/sim/device/base.hpp>
#include <npa/sim/wire.hpp>

#include <cstddef>
#include <cstdint>

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
    /// What a removed VF's registers read: all ones (a surprise removal on real PCIe, the
    /// default) or 0 (QEMU's igb after the PF driver cleared VF Enable, sriov_numvfs = 0:
    /// the BAR range is unassigned and QEMU answers 0; docs/real-devices.md, igb 7).
    bool removed_reads_zero = false;
    /// Reads of TXDCTL or RXDCTL after the driver cleared ENABLE that still show it set:
    /// the queue finishing the DMA it had started, as a real 82576 may take a while to
    /// (igb polls ENABLE until it reads 0). 0: stopped at the write, as QEMU's igb.
    std::uint32_t stop_reads = 0;
    /// Descriptors TDH may run ahead of the oldest TX write-back still to land, as a real
    /// 82576 that fetches descriptors ahead moves the head with the fetch (datasheet 7.2:
    /// TDH names the descriptor in progress) long before the frame is sent and written
    /// back. 0: the head follows the write-backs (as QEMU's igb, which sends and writes
    /// back each packet before it moves the head).
    std::uint32_t tx_head_ahead = 0;
    /// Steps every TX write-back lands late (an honest device's latency, not a fault: the
    /// fault plan's delay_tx_steps is counted as one).
    std::uint32_t tx_writeback_steps = 0;
    /// While the queue's DCA_TXCTRL.TX_WB_RO_EN is set (its reset value), write-backs may
    /// pass each other on PCIe: the model then lands each pair of TX write-backs swapped.
    /// A driver that wants them in order clears the bit, as igbvf_configure_tx does.
    bool relaxed_order_swaps = true;
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

/// A driver error the VF caught (device/base.hpp).
using igbvf_violation = device_violation;

namespace igbvf_rule {
inline constexpr const char* tail_beyond_ring = "tail beyond the ring";
inline constexpr const char* iova_outside = "IOVA outside guest memory";
inline constexpr const char* bad_desc_type = "not an advanced descriptor";
inline constexpr const char* bad_length = "bad descriptor length";
inline constexpr const char* short_frame = "frame under 17 bytes";
inline constexpr const char* bad_ring = "bad ring registers";
inline constexpr const char* offload_off = "offload not enabled on this VF";
} // namespace igbvf_rule

} // namespace npa::sim
