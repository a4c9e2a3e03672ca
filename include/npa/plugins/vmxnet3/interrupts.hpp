// npa/plugins/vmxnet3/interrupts.hpp: the vmxnet3 interrupt layout, decided at attach.
//
// The device says which interrupt type and mask mode it wants (GET_CONF_INTR, defs.hpp it
// and imm); the binder says how many MSI-X vectors it enabled (window::irq_vectors). Linux's
// vmxnet3_alloc_intr_resources and vmxnet3_request_irqs decide from the same two facts:
//   - AUTO is taken as MSI-X. MSI-X with a vector for every queue pair and one more for the
//     events: queue pair q raises vector q (its TX and RX completions together, Linux's
//     "buddy share"), the events the last vector.
//   - INTx, MSI, or MSI-X with fewer vectors: one vector for everything (every intrIdx,
//     eventIntrIdx and numIntrs 1), and one queue pair, as Linux keeps one RX queue there.
//     With INTx the line may be shared with other functions: the binder's handler reads ICR
//     (window::icr) to tell whether the interrupt was this device's.
//   - mask mode AUTO: intrConf.autoMask, the device masks a vector as it raises it, so a line
//     fires once until irq_arm (concepts/irq_source.hpp). ACTIVE or LAZY: autoMask 0, as
//     Linux writes it; the device then raises a vector again while its queue is polled
//     (more wakeups, no work lost: the shell masks a queue's line until it re-arms it).
//     Mask mode 3 is no mode the ABI defines: a device answering it is not trusted.
// The binder enables the type the device asks for and falls back as Linux does when it
// cannot (MSI-X, MSI, INTx: first_irq_type, next_irq_type); the vectors it got decide the
// layout, so a device that asks for MSI-X and gets MSI runs on the shared vector.
// QEMU's device answers 0 (AUTO, AUTO: vmxnet3_get_interrupt_config); it checks every
// intrIdx and eventIntrIdx against the vectors it has (25 with MSI-X, 1 without) at
// ACTIVATE_DEV and stops the emulation on one past them.
#pragma once

#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/status.hpp>

#include <cstdint>

namespace npa::vmxnet3 {

/// What the driver programs: intrConf (autoMask, numIntrs, eventIntrIdx) and the queues'
/// intrIdx.
struct intr_layout {
    std::uint32_t type = it::MSIX;       ///< it::MSIX, it::MSI or it::INTX (AUTO taken as MSI-X)
    std::uint32_t mask_mode = imm::AUTO; ///< as the device answered
    std::uint8_t num_intrs = 0;
    std::uint8_t event_idx = 0;
    bool shared = false;                 ///< one vector for the queues and the events

    [[nodiscard]] std::uint8_t queue_vector(std::uint16_t q) const noexcept {
        return shared ? 0 : static_cast<std::uint8_t>(q);
    }
    [[nodiscard]] bool auto_mask() const noexcept { return mask_mode == imm::AUTO; }
};

/// The interrupt type a binder enables first for GET_CONF_INTR's answer: AUTO is MSI-X, as
/// Linux and DPDK take it; an undefined answer is refused at attach, not here.
[[nodiscard]] constexpr std::uint32_t first_irq_type(std::uint32_t conf_intr) noexcept {
    return it::of(conf_intr) == it::AUTO ? it::MSIX : it::of(conf_intr);
}
/// The type a binder tries when it could not enable `type` (pci_alloc_irq_vectors failed):
/// MSI-X, then MSI, then INTx, as vmxnet3_alloc_intr_resources falls back; after INTx
/// nothing (it::AUTO). Whatever it got, it tells the window its vector count
/// (window::set_irq_vectors): one vector is the shared layout, one queue pair.
[[nodiscard]] constexpr std::uint32_t next_irq_type(std::uint32_t type) noexcept {
    return type == it::MSIX ? it::MSI : type == it::MSI ? it::INTX : it::AUTO;
}

/// Decides the layout for `queues` queue pairs from GET_CONF_INTR's answer and the MSI-X
/// vectors the binder enabled. Refuses an answer of all ones or with a mask mode the ABI
/// does not define (device_error: the caller tells a removed device by VRRS), and more than
/// one queue pair on one vector (invalid_argument). The bits above 3 are ignored, as every
/// driver does: no ABI gives them a meaning.
[[nodiscard]] inline result<intr_layout> decide_intr_layout(std::uint32_t conf_intr,
                                                           std::uint32_t queues,
                                                           std::uint32_t msix_vectors) noexcept {
    if (conf_intr == removed_read) {
        return status{errc::device_error, "vmxnet3: GET_CONF_INTR read all ones"};
    }
    intr_layout l;
    l.mask_mode = imm::of(conf_intr);
    if (l.mask_mode > imm::LAZY) {
        return status{errc::device_error,
                      "vmxnet3: GET_CONF_INTR answered mask mode 3, which the ABI does not define"};
    }
    l.type = first_irq_type(conf_intr);
    if (l.type == it::MSIX && queues + 1 <= msix_vectors && queues + 1 <= MAX_INTRS) {
        l.num_intrs = static_cast<std::uint8_t>(queues + 1);
        l.event_idx = static_cast<std::uint8_t>(queues);
        return l;
    }
    if (queues != 1) {
        return status{errc::invalid_argument,
                      l.type == it::MSIX
                          ? "vmxnet3: fewer MSI-X vectors than queue pairs plus one: one vector "
                            "for all, which serves one queue pair"
                          : "vmxnet3: the device asks for INTx or MSI: one vector for all, which "
                            "serves one queue pair"};
    }
    l.shared = true;
    l.num_intrs = 1;
    l.event_idx = 0;
    return l;
}

} // namespace npa::vmxnet3
