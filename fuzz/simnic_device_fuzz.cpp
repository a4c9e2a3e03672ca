// fuzz/simnic_device_fuzz.cpp: the reference plugin (simnic_plugin) against a hostile simnic.
//
// Device-writable memory on the simnic (simnic_defs.hpp): the TX and RX completion rings,
// every byte of them (index, tag, RSS hash, length, error and generation bits). Registers
// the plugin reads: the status register (simnic_window::state: running, failed, reset,
// removed, or any other value a broken device may show); the fuzzer writes it as the
// device would, and the model overwrites it at its next change of state. The simnic has
// no control path of its own (the shell_rig's authority stands in for it).
#include "device_fuzz.hpp"

#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

namespace {

struct simnic_hostile {
    void install(npa::sim::simnic_rig&, npa::sim::register_fault) const noexcept {}

    void memory(npa::sim::simnic_rig& rig, bool attached, std::uint16_t queues,
                npa::fuzz::input& in) const {
        const auto q = static_cast<std::uint16_t>(in.below(queues));
        if (!attached)
            return;
        const npa::sim::simnic_ring_layout& l = rig.window().layout(q);
        const bool rx = in.flag();
        const npa::iova_t at = rx ? l.rxc_ring : l.txc_ring;
        const std::size_t bytes =
            std::size_t{rx ? l.rx_size : l.tx_size} * npa::sim::simnic_desc_size;
        if (bytes == 0 || !rig.memory().contains(at, bytes))
            return;
        npa::fuzz::write_slot(rig.memory().translate(at, bytes), bytes, 0, in);
    }

    void registers(npa::sim::simnic_rig& rig, npa::fuzz::register_lies&, std::uint16_t,
                   npa::fuzz::input& in) const {
        const std::uint32_t v = in.flag() ? in.below(4) : in.u32();
        rig.window().set_state(static_cast<npa::sim::simnic_state>(v));
    }

    void control(npa::sim::simnic_rig&, npa::fuzz::input&) const noexcept {}
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return npa::fuzz::run_device_program<npa::sim::simnic_rig, npa::sim::simnic_plugin>(
        data, size, simnic_hostile{});
}
