// benchmarks/datapath_icount.cpp: instructions per packet through a whole npa data path,
// counted by callgrind (repeatable where time on a shared machine is not).
//
// The rig is the one npa_datapath_bench times (npa::sim::shell_rig: a guest shell over
// simnic paths, the device models and a traffic peer, all on one thread). For each
// <frame bytes>/<burst> case the program warms the rig up, zeroes callgrind's counters
// (CALLGRIND_ZERO_STATS), runs a fixed number of rounds, dumps the counters under the
// case's name (CALLGRIND_DUMP_STATS_AT) and prints "<name> <packets>" (frames the guest
// sent plus frames it received in those rounds). benchmarks/run.sh turns the dumps into
// instructions per packet, as it does for npa_ring_icount. The count covers the whole loop
// (shell, plugin, device model, frame building and checking): a regression figure for the
// shell and the plugin, not a claim about a real NIC. Outside valgrind the client requests
// are no-ops and the program runs the rounds once.
#include "datapath_rig.hpp"

#include <valgrind/callgrind.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace {

// ---- tuning constants --------------------------------------------------------------
// Rounds before counting: the rings fill and the RX posting reaches steady state.
constexpr int warm_rounds = 64;
// Counted rounds per case: tens of thousands of packets, a few seconds under callgrind.
constexpr int counted_rounds = 1024;

bool run_case(std::uint32_t frame, std::uint32_t burst) {
    npa::sim::shell_rig_config cfg;
    cfg.frame_len = frame;
    npa::sim::shell_rig r(cfg);
    if (!r.error().ok()) {
        std::fprintf(stderr, "datapath_icount: rig: %s\n", r.error().reason());
        return false;
    }
    for (int i = 0; i < warm_rounds; ++i) {
        r.round(burst, burst);
    }
    const std::uint64_t before = npa_bench::datapath_packets(r);
    const std::string name =
        "datapath/shell_sim/" + std::to_string(frame) + "/" + std::to_string(burst);
    CALLGRIND_ZERO_STATS;
    for (int i = 0; i < counted_rounds; ++i) {
        r.round(burst, burst);
    }
    CALLGRIND_DUMP_STATS_AT(name.c_str());
    const std::uint64_t moved = npa_bench::datapath_packets(r) - before;
    r.settle();
    if (moved == 0 || !r.sh().audit().ok()) {
        std::fprintf(stderr, "datapath_icount: %s moved %llu packets, audit %s\n", name.c_str(),
                     static_cast<unsigned long long>(moved), r.sh().audit().ok() ? "ok" : "FAILED");
        return false;
    }
    std::printf("%s %llu\n", name.c_str(), static_cast<unsigned long long>(moved));
    return true;
}

} // namespace

int main() {
    bool ok = true;
    for (const std::uint32_t frame : {64u, 1500u}) {
        for (const std::uint32_t burst : {1u, 8u, 32u}) {
            ok = run_case(frame, burst) && ok;
        }
    }
    return ok ? 0 : 1;
}
