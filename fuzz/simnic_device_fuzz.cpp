// fuzz/simnic_device_fuzz.cpp: the reference plugin (simnic_plugin) against a hostile simnic.
//
// Device-writable memory on the simnic (simnic_defs.hpp): the TX and RX completion rings,
// every byte of them (index, tag, RSS hash, length, error and generation bits).
#include "device_fuzz.hpp"

#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

namespace {

struct simnic_hostile {
    void operator()(npa::sim::simnic_rig& rig, bool attached, std::uint16_t queues,
                    npa::fuzz::input& in) const {
        const auto q = static_cast<std::uint16_t>(in.below(queues));
        if (!attached) return;
        const npa::sim::simnic_ring_layout& l = rig.window().layout(q);
        const bool rx = in.flag();
        const npa::iova_t at = rx ? l.rxc_ring : l.txc_ring;
        const std::size_t bytes = std::size_t{rx ? l.rx_size : l.tx_size} * npa::sim::simnic_desc_size;
        if (bytes == 0 || !rig.memory().contains(at, bytes)) return;
        npa::fuzz::write_slot(rig.memory().translate(at, bytes), bytes, 0, in);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return npa::fuzz::run_device_program<npa::sim::simnic_rig, npa::sim::simnic_plugin>(
        data, size, simnic_hostile{});
}
