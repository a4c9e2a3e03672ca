// fuzz/igbvf_device_fuzz.cpp: the 82576 VF plugin against a hostile VF.
//
// Device-writable memory on an 82576 VF (82576 datasheet 7.1.5 and 7.2.3; npa/plugins/igbvf/defs.hpp):
// the write-back half of every TX and RX descriptor, written in place over the read
// format: RX status_error (DD, EOP, errors), length and VLAN (bytes 8-15); TX status with
// DD (bytes 12-15). The first eight bytes of a posted RX descriptor hold the buffer
// address the device itself reads; a device that rewrites them only misdirects its own
// DMA (the IOMMU's business, modelled by guest_memory), so hostile bytes go to the
// write-back fields the driver reads. Registers (read through the model's
// register_fault): STATUS (link, and all ones for a removed function), TDH, RDH,
// TXDCTL/RXDCTL (the enable bits), EICR/EIMS (interrupt causes and mask), and the
// mailbox (V2PMAILBOX ack/status bits, VMBMEM reply words) that igbvf_control reads.
#include "device_fuzz.hpp"

#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/sim/igbvf_rig.hpp>

namespace {

struct igbvf_hostile {
    void install(npa::sim::igbvf_rig& rig, npa::sim::register_fault f) const noexcept {
        rig.device().set_register_fault(f);
    }

    void memory(npa::sim::igbvf_rig& rig, bool attached, std::uint16_t queues,
                npa::fuzz::input& in) const {
        const auto q = static_cast<std::uint16_t>(in.below(queues));
        if (!attached)
            return;
        const auto area = rig.window().ring_area(q);
        const auto qc = rig.queue_cfg();
        const std::size_t tx_bytes = std::size_t{qc.tx_ring_size} * 16;
        const std::size_t rx_bytes = std::size_t{qc.rx_ring_size} * 16;
        if (area.virt == nullptr || area.size < tx_bytes + rx_bytes)
            return;
        if (in.flag()) {
            npa::fuzz::write_slot(area.virt + tx_bytes, rx_bytes, 8, in);
        } else {
            npa::fuzz::write_slot(area.virt, tx_bytes, 12, in);
        }
    }

    void registers(npa::sim::igbvf_rig&, npa::fuzz::register_lies& lies, std::uint16_t queues,
                   npa::fuzz::input& in) const {
        namespace g = npa::igbvf::reg;
        const auto q = in.below(queues);
        const npa::fuzz::register_lies::reg_ref regs[] = {
            {0, g::status}, {0, g::tdh(q)},    {0, g::tdh(q)},
            {0, g::rdh(q)}, {0, g::txdctl(q)}, {0, g::rxdctl(q)},
            {0, g::eicr},   {0, g::eims},      {0, g::vmmb},
            {0, g::vmmb},   {0, g::vmbmem},    {0, g::vmbmem + 4 * (1 + in.below(15))},
        };
        lies.choose(in, regs);
    }

    void control(npa::sim::igbvf_rig& rig, npa::fuzz::input& in) const {
        npa::igbvf_control ctl(
            rig.device().mailbox_port(),
            [](void* c) noexcept { static_cast<npa::sim::igbvf_rig*>(c)->step(); }, &rig);
        if (in.u8() < 32) {
            npa::mac_addr assigned{};
            (void)ctl.reset(assigned);
        } else {
            (void)ctl.submit(npa::fuzz::control_request_from(in, rig.guest_mac));
        }
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return npa::fuzz::run_device_program<npa::sim::igbvf_rig, npa::igbvf_plugin>(data, size,
                                                                                 igbvf_hostile{});
}
