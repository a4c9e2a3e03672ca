// tests/soak/soak_common.hpp: what the soak tests share.
#pragma once

#include <npa/sim/traffic.hpp>

#include <cstdint>
#include <cstdlib>

namespace npa::soak {

inline std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : dflt;
}

/// Adds one flow's report to a total over several flows.
inline void accumulate(sim::flow_report& total, const sim::flow_report& r) noexcept {
    total.sent += r.sent;
    total.received += r.received;
    total.lost += r.lost;
    total.reordered += r.reordered;
    total.duplicates += r.duplicates;
    total.corrupt += r.corrupt;
}

} // namespace npa::soak
