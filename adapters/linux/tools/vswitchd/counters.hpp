// npa-vswitchd's per-port counters, one per cause (switch.hpp says what each counts; the
// run directory's JSON shows them by these names).
#pragma once

#include <cstdint>

namespace npa::vswitch {

/// One counter per cause; the names are what the run directory's JSON shows.
#define NPA_VSWITCH_COUNTERS(X)                                                               \
    X(rx_packets) X(rx_bytes) X(tx_packets) X(tx_bytes)                                      \
    X(rx_spoofed) X(rx_vlan) X(rx_runt) X(rx_oversize) X(rx_unknown_dst) X(rx_hairpin)      \
    X(rx_bad_chain) X(rx_short_chain) X(rx_ring_broken)                                      \
    X(tx_vlan) X(tx_down) X(tx_bad_chain) X(tx_no_buffer) X(tx_too_big) X(tx_ring_broken)                    \
    X(protocol_errors) X(connections) X(rx_indirect) X(tx_indirect)                          \
    X(tx_zero_copy) X(zc_bad_buffer) X(zc_reclaimed) X(zc_kicks) X(zc_bad_kick) X(zc_rx_kicks)

struct counters {
#define NPA_X(n) std::uint64_t n = 0;
    NPA_VSWITCH_COUNTERS(NPA_X)
#undef NPA_X
};

} // namespace npa::vswitch
