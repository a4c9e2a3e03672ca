// benchmarks/datapath_rig.hpp: what the data-path benchmarks share about their rig.
#pragma once

#include <npa/sim/shell_rig.hpp>

#include <cstdint>

namespace npa_bench {

/// Packets the rig's guest has moved so far: frames it sent plus frames it received, over
/// every queue. The data-path benchmarks count per packet of this.
template <class Rig>
std::uint64_t datapath_packets(Rig& r) {
    std::uint64_t n = 0;
    for (std::uint16_t q = 0; q < r.queues(); ++q) {
        const npa::queue_stats s = r.sh().queue_totals(q);
        n += s.tx_packets + s.rx_packets;
    }
    return n;
}

} // namespace npa_bench
