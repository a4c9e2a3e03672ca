// tests/support/rig_receive.hpp: RX on queue 0 of a plugin attached to a sim rig, frames
// recorded by the rig's guest sink and handed back to its pool, the device stepped between
// polls: the loop the plugin tests share.
#pragma once

#include <array>
#include <cstdint>

namespace npa_test {

/// Receives on queue 0 until `want` frames came or 50 device steps passed.
template <class Rig, class Plugin>
std::uint32_t receive_on_rig(Rig& rig, Plugin& p, std::uint32_t want) {
    std::uint32_t got = 0;
    std::array<typename Rig::buffer_type, 32> out{};
    for (int round = 0; round < 50 && got < want; ++round) {
        rig.step();
        const std::uint16_t n = p.rx_burst(0, out);
        for (std::uint16_t i = 0; i < n; ++i) {
            (void)rig.guest_sink().record({out[i].data(), out[i].length()});
        }
        rig.api().received({out.data(), n});
        rig.api().free({out.data(), n});
        got += n;
    }
    return got;
}

} // namespace npa_test
