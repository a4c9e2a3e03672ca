// npa/sim/faults.hpp: hostile-device behaviour a device model can be told to show.
//
// Device-model independent data: each sim device model interprets the plan for its own
// rings. Counts are consumed as the faults fire, so a test injects exactly N of them.
// Every device model honours the TX completion faults; the simnic, vmxnet3 and 82576 VF
// models also honour the RX ones (drop_rx_completions, delay_rx_steps,
// reorder_rx_completions), and a rig whose device does says so with
// `static constexpr bool rx_completion_faults = true`, which is how the conformance kit
// knows to run those cases.
#pragma once

#include <cstdint>

namespace npa::sim {

/// Ways to corrupt a completion the device writes.
enum class comp_fault : std::uint8_t {
    none,
    index_out_of_range, ///< names a slot past the end of the ring
    length_too_large,   ///< RX: a length larger than the posted buffer
    gen_out_of_order,   ///< the entry is written but its generation bit is left stale
    never_posted,       ///< an extra completion for a slot the driver never handed over
    double_completion,  ///< the same completion written twice
};

[[nodiscard]] constexpr const char* to_string(comp_fault f) noexcept {
    switch (f) {
    case comp_fault::none: return "none";
    case comp_fault::index_out_of_range: return "index out of range";
    case comp_fault::length_too_large: return "length larger than the buffer";
    case comp_fault::gen_out_of_order: return "generation bit out of order";
    case comp_fault::never_posted: return "completion for a descriptor never posted";
    case comp_fault::double_completion: return "double completion";
    }
    return "unknown";
}

enum class ring_kind : std::uint8_t { tx, rx };

struct fault_plan {
    std::uint32_t drop_tx_completions = 0;    ///< the next N TX completions are not written
    std::uint32_t delay_tx_steps = 0;         ///< every TX completion is held this many steps
    std::uint32_t reorder_tx_completions = 0; ///< the next N pairs of TX completions are swapped
    std::uint32_t drop_rx_completions = 0;    ///< the next N RX completions are not written
    std::uint32_t delay_rx_steps = 0;         ///< every RX completion is held this many steps
    std::uint32_t reorder_rx_completions = 0; ///< the next N pairs of RX completions are swapped
    /// The next N pairs of TX (RX) completions are swapped, but their ring indexes stay in
    /// ring order: each names the other's slot and carries its own tag, so the index looks
    /// valid and only the tag shows the buffer is not the one posted there. Only models
    /// whose completions carry a tag (the simnic) can show it; others swap the pair whole.
    std::uint32_t mislabel_tx_completions = 0;
    std::uint32_t mislabel_rx_completions = 0;
    comp_fault corrupt = comp_fault::none;    ///< corrupt the next corrupt_count completions
    ring_kind corrupt_ring = ring_kind::tx;   ///< ... on this ring
    std::uint32_t corrupt_count = 0;
    std::uint32_t dma_faults = 0;      ///< the next N buffer DMAs fail
    /// The next N RX head buffers are passed over: legal on a vmxnet3, whose device hands
    /// such a buffer back with a completion of length 0 (Linux's vmxnet3_rq_rx_complete
    /// recycles it). Only the vmxnet3 model shows it.
    std::uint32_t skip_rx_buffers = 0;
    /// The next N RX head buffers are passed over with no completion at all: the device's
    /// next completion names a later slot. Also legal on a vmxnet3 (Linux's
    /// vmxnet3_rq_rx_complete moves on to the completed slot and posts the skipped ones
    /// again). Only the vmxnet3 model shows it.
    std::uint32_t pass_over_rx_buffers = 0;
    std::uint32_t link_down_steps = 0; ///< the link drops for N steps (a flap)
    std::int64_t reset_after_tx = -1;  ///< device reset after N more TX descriptors
    std::int64_t remove_after_tx = -1; ///< surprise removal after N more TX descriptors
};

/// A device that lies in its registers. When set on a device model, every register read
/// the guest makes (data path and control path) passes through `read`, which is given the
/// BAR, the offset and the value the model would return, and returns the value the guest
/// sees: a head index past the ring, a cleared enable bit, an interrupt cause never
/// raised, a command result or mailbox word the device never produced. Fuzz targets use it
/// to let the fuzzer choose register values.
struct register_fault {
    using read_fn = std::uint32_t (*)(void* ctx, std::uint32_t bar, std::uint32_t off,
                                      std::uint32_t value) noexcept;
    read_fn read = nullptr;
    void* ctx = nullptr;

    [[nodiscard]] std::uint32_t apply(std::uint32_t bar, std::uint32_t off,
                                      std::uint32_t v) const noexcept {
        return read != nullptr ? read(ctx, bar, off, v) : v;
    }
};

} // namespace npa::sim
