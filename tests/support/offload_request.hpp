// tests/support/offload_request.hpp: an offload request as a driver's stack hands it over
// (npa::offload_info), for the plugins' offload tests.
#pragma once

#include <npa/offload.hpp>

#include <cstdint>

namespace npa_test {

/// Request bits `flags` (npa::ol) for a packet with these header lengths, TSO segment size
/// and VLAN tag.
inline npa::offload_info offload_request(std::uint32_t flags, std::uint8_t l2, std::uint8_t l3,
                                         std::uint8_t l4, std::uint16_t mss = 0,
                                         std::uint16_t tci = 0) {
    npa::offload_info o{};
    o.flags = flags;
    o.l2_len = l2;
    o.l3_len = l3;
    o.l4_len = l4;
    o.tso_mss = mss;
    o.vlan_tci = tci;
    return o;
}

} // namespace npa_test
