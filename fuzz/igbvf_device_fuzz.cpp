// fuzz/igbvf_device_fuzz.cpp: the 82576 VF plugin against a hostile VF.
//
// Device-writable memory on an 82576 VF (82576 datasheet 7.1.5 and 7.2.3; igbvf_defs.hpp):
// the write-back half of every TX and RX descriptor, written in place over the read
// format: RX status_error (DD, EOP, errors), length and VLAN (bytes 8-15); TX status with
// DD (bytes 12-15). The first eight bytes of a posted RX descriptor hold the buffer
// address the device itself reads; a device that rewrites them only misdirects its own
// DMA (the IOMMU's business, modelled by guest_memory), so hostile bytes go to the
// write-back fields the driver reads.
#include "device_fuzz.hpp"

#include <npa/plugins/igbvf.hpp>
#include <npa/sim/igbvf_rig.hpp>

namespace {

struct igbvf_hostile {
    void operator()(npa::sim::igbvf_rig& rig, bool attached, std::uint16_t queues,
                    npa::fuzz::input& in) const {
        const auto q = static_cast<std::uint16_t>(in.below(queues));
        if (!attached) return;
        const auto area = rig.window().ring_area(q);
        const auto qc = rig.queue_cfg();
        const std::size_t tx_bytes = std::size_t{qc.tx_ring_size} * 16;
        const std::size_t rx_bytes = std::size_t{qc.rx_ring_size} * 16;
        if (area.virt == nullptr || area.size < tx_bytes + rx_bytes) return;
        if (in.flag()) {
            npa::fuzz::write_slot(area.virt + tx_bytes, rx_bytes, 8, in);
        } else {
            npa::fuzz::write_slot(area.virt, tx_bytes, 12, in);
        }
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return npa::fuzz::run_device_program<npa::sim::igbvf_rig, npa::igbvf_plugin>(data, size,
                                                                                 igbvf_hostile{});
}
