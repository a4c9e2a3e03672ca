// npa/sim/conformance/hostile_cases.hpp: the hostile-device cases of the conformance kit in
// one table: the fault each plans (faults.hpp), the traffic it runs with and what the plugin
// must show. The check that runs them is conformance<P, Rig>::hostile() (hostile_check.hpp).
#pragma once

#include <npa/sim/faults.hpp>

#include <array>
#include <cstdint>
#include <span>

namespace npa::sim {

/// What a hostile-device case must show besides "no buffer lost, nothing out of bounds".
enum class detect : std::uint8_t {
    bad_completion,  ///< the plugin counted bad_completion
    tx_dma_error,    ///< every TX buffer came back; the far end lost no more than the faults
    rx_dma_error,    ///< the plugin counted rx_dropped for the buffers the device could not fill
    all_completed,   ///< nothing to detect (a delay), but every TX buffer came back completed
    rx_in_order,     ///< nothing to detect (a delay): RX lost only what the device dropped, in order
    link_loss,       ///< the far end lost exactly what the device could not send
    device_error,    ///< health() says device_error (health() is required for this case)
    removed,         ///< health() says removed (health() is required for this case)
    rx_flood,        ///< the device dropped for lack of buffers, the plugin counted rx_no_buffer
    wrong_buffer,    ///< the plugin counted bad_completion for a valid index with another's tag
    rx_any_order,    ///< nothing to detect (a legal reorder): RX lost only what the device dropped
    held_back,       ///< nothing the ring can show: no bad_completion, the buffers the device
                     ///< keeps come back at detach, every other frame whole
    rx_passed_over,  ///< nothing the ring can show (a slot the device may pass over): RX lost
                     ///< only the frames whose completions were dropped and what the device
                     ///< dropped, in order, no bad_completion
};

/// Which way traffic runs while the fault is planned.
enum class hostile_traffic : std::uint8_t {
    both,     ///< TX and RX every round
    tx_only,  ///< TX only, so a fault of any buffer DMA lands on TX
    rx_only,  ///< RX only, so a fault of any buffer DMA lands on RX
};

struct hostile_case {
    const char* name;
    fault_plan plan;
    detect expect;
    hostile_traffic traffic = hostile_traffic::both;
    /// The case needs RX completion drop/delay/reorder from the device: run only on rigs
    /// that declare `static constexpr bool rx_completion_faults = true`.
    bool rx_completion_fault = false;
    /// The case needs completions that carry the posted descriptor's tag: run only on rigs
    /// that declare `static constexpr bool completion_tags = true`.
    bool completion_tag = false;
};

/// True when Rig's device honours the RX completion faults of fault_plan.
template <class Rig>
inline constexpr bool rig_has_rx_completion_faults = requires { requires Rig::rx_completion_faults; };
/// True when Rig's plugin takes one TX completion for a batch of earlier ones (virtio's
/// IN_ORDER, virtio 1.2 2.7.9): two TX completions swapped then read as a batch, legal,
/// so "reordered TX completions" must show every TX buffer completed instead.
template <class Rig>
inline constexpr bool rig_has_tx_completion_batches = requires { requires Rig::tx_completion_batches; };
/// True when Rig's device may use buffers in any order and say which by id (a packed
/// virtqueue without VIRTIO_F_IN_ORDER, virtio 1.2 2.8): reordered completions are legal
/// (everything must complete), and a dropped completion, or a used position the device
/// skipped, holds buffers back in a way no driver can tell from a slow device; the buffers
/// must come back at detach.
template <class Rig>
inline constexpr bool rig_has_any_order_completions = requires { requires Rig::any_order_completions; };
/// True when Rig's device confirms transmitted buffers in batches whose size it does not
/// announce (a virtio packed ring under IN_ORDER: one used descriptor, the last buffer's
/// id, and the positions of the whole batch skipped): a dropped TX completion followed by
/// a later one reads as such a batch, after which driver and device may stand a different
/// number of positions apart, so, as a used position the device skipped, it holds buffers
/// back in a way no driver can tell from a slow device (held_back). A split ring announces
/// a batch's size (used->idx moves by it), so there a dropped completion stays detectable.
template <class Rig>
inline constexpr bool rig_has_unannounced_batches = requires { requires Rig::unannounced_batches; };
/// True when Rig's device may pass over posted RX buffers and complete a later one (a
/// vmxnet3: Linux's and DPDK's drivers move on to the completed slot): a dropped RX
/// completion then reads as such a pass, legal, and only the frame it carried is lost.
template <class Rig>
inline constexpr bool rig_has_rx_pass_over = requires { requires Rig::rx_pass_over; };
/// True when Rig's TX completions carry no index for a driver to read: the device writes
/// a done bit into the descriptor (an 82576's DD) and its head register, which the sim
/// corrupts for "TX completion index out of range", is not what completes a packet (it
/// runs ahead of the write-backs on a real device). The case must then show every TX
/// buffer completed, nothing lost.
template <class Rig>
inline constexpr bool rig_has_tx_done_bits = requires { requires Rig::tx_done_bits; };
/// True when Rig's device echoes each descriptor's tag in its completion (faults.hpp,
/// mislabel_tx_completions).
template <class Rig>
inline constexpr bool rig_has_completion_tags = requires { requires Rig::completion_tags; };

/// The hostile-device cases of the kit (the fault injection list), in one table.
inline std::span<const hostile_case> hostile_cases() {
    auto corrupt = [](comp_fault f, ring_kind r, std::uint32_t n) {
        fault_plan p;
        p.corrupt = f;
        p.corrupt_ring = r;
        p.corrupt_count = n;
        return p;
    };
    auto with = [](auto set) {
        fault_plan p;
        set(p);
        return p;
    };
    constexpr auto rx_only = hostile_traffic::rx_only;
    constexpr auto tx_only = hostile_traffic::tx_only;
    static const std::array<hostile_case, 23> cases{{
        {"dropped TX completions", with([](fault_plan& p) { p.drop_tx_completions = 3; }), detect::bad_completion},
        {"delayed TX completions", with([](fault_plan& p) { p.delay_tx_steps = 5; }), detect::all_completed},
        {"reordered TX completions", with([](fault_plan& p) { p.reorder_tx_completions = 2; }), detect::bad_completion},
        {"dropped RX completions", with([](fault_plan& p) { p.drop_rx_completions = 3; }), detect::bad_completion, rx_only, true},
        {"delayed RX completions", with([](fault_plan& p) { p.delay_rx_steps = 5; }), detect::rx_in_order, rx_only, true},
        {"reordered RX completions", with([](fault_plan& p) { p.reorder_rx_completions = 2; }), detect::bad_completion, rx_only, true},
        {"TX completions out of order, each naming the other's slot (tags mismatched)",
         with([](fault_plan& p) { p.mislabel_tx_completions = 2; }), detect::wrong_buffer,
         hostile_traffic::both, false, true},
        {"TX completion index out of range", corrupt(comp_fault::index_out_of_range, ring_kind::tx, 2), detect::bad_completion},
        {"RX completion index out of range", corrupt(comp_fault::index_out_of_range, ring_kind::rx, 2), detect::bad_completion},
        {"RX completion length larger than the buffer", corrupt(comp_fault::length_too_large, ring_kind::rx, 2), detect::bad_completion},
        {"TX completion generation bit out of order", corrupt(comp_fault::gen_out_of_order, ring_kind::tx, 1), detect::bad_completion},
        {"RX completion generation bit out of order", corrupt(comp_fault::gen_out_of_order, ring_kind::rx, 1), detect::bad_completion},
        {"TX completion for a descriptor never posted", corrupt(comp_fault::never_posted, ring_kind::tx, 2), detect::bad_completion},
        {"RX completion for a descriptor never posted", corrupt(comp_fault::never_posted, ring_kind::rx, 2), detect::bad_completion},
        {"TX double completion", corrupt(comp_fault::double_completion, ring_kind::tx, 2), detect::bad_completion},
        {"RX double completion", corrupt(comp_fault::double_completion, ring_kind::rx, 2), detect::bad_completion},
        {"TX DMA faults", with([](fault_plan& p) { p.dma_faults = 4; }), detect::tx_dma_error, tx_only},
        {"RX DMA faults", with([](fault_plan& p) { p.dma_faults = 4; }), detect::rx_dma_error, rx_only},
        {"link flap", with([](fault_plan& p) { p.link_down_steps = 3; }), detect::link_loss},
        {"device reset", with([](fault_plan& p) { p.reset_after_tx = 10; }), detect::device_error},
        {"surprise removal in the middle of a burst", with([](fault_plan& p) { p.remove_after_tx = 10; }), detect::removed},
        {"RX flood with no buffers posted", fault_plan{}, detect::rx_flood},
        {"no fault (control case)", fault_plan{}, detect::all_completed},
    }};
    return cases;
}

} // namespace npa::sim
