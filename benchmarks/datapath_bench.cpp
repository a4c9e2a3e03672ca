// benchmarks/datapath_bench.cpp: packets through a whole npa data path.
//
// The rig is npa::sim::shell_rig: a guest npa::shell with two simnic_plugin paths, each
// driving a simnic device model in guest memory, on an L2 switch with a traffic peer.
// One thread runs everything (guest, both devices, peer), so these numbers are the cost
// of the whole loop per packet: shell + plugin + the device model + frame building and
// checking. They track regressions of the shell and the plugin; they are not a claim
// about a real NIC.
//
//   datapath/shell_sim/<frame bytes>/<burst>   bidirectional: each round the guest offers
//                                              `burst` frames per queue and the peer sends
//                                              `burst`; ns per packet (TX done + RX got)
//
// Switch durations are measured by npa_switch_bench and npa_path_bench (a distribution
// per switch: p50/p99/max), which run.sh runs beside this.
#include "bench_common.hpp"
#include "gbench_main.hpp"
#include "cpu_time.hpp"

#include "datapath_rig.hpp"

#include <benchmark/benchmark.h>

#include <chrono>

#include <cstdint>
#include <cstdio>

namespace {

// ---- tuning constants --------------------------------------------------------------
// Rounds of traffic before timing starts: fills the rings and the RX posting so the
// measured rounds are steady state.
constexpr int warm_rounds = 64;

void bm_datapath(benchmark::State& st) {
    const auto frame = static_cast<std::uint32_t>(st.range(0));
    const auto burst = static_cast<std::uint32_t>(st.range(1));
    npa_bench::pin_to_core(npa_bench::producer_core);
    npa::sim::shell_rig_env::real_time = true;
    npa::sim::shell_rig_config cfg;
    cfg.frame_len = frame;
    npa::sim::shell_rig r(cfg);
    if (!r.error().ok()) {
        st.SkipWithError(r.error().reason());
        return;
    }
    for (int i = 0; i < warm_rounds; ++i) {
        r.round(burst, burst);
    }
    const std::uint64_t before = npa_bench::datapath_packets(r);
    const npa_bench::thread_cpu_clock cpu;
    const std::uint64_t c0 = cpu.now_ns();
    const auto w0 = std::chrono::steady_clock::now();
    for (auto _ : st) {
        r.round(burst, burst);
    }
    const double wall =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - w0).count();
    const auto cpu_ns = static_cast<double>(cpu.now_ns() - c0);
    const std::uint64_t moved = npa_bench::datapath_packets(r) - before;
    if (moved != 0) {
        // Per CPU-second of this thread (it does all the work) and per wall second.
        st.counters["cpu_ns_per_pkt"] = cpu_ns / static_cast<double>(moved);
        st.counters["wall_ns_per_pkt"] = wall / static_cast<double>(moved);
    }
    st.SetItemsProcessed(static_cast<std::int64_t>(moved));
    st.counters["pkts_per_round"] =
        static_cast<double>(moved) / static_cast<double>(st.iterations());
    r.settle();
    if (!r.sh().audit().ok()) {
        st.SkipWithError("audit failed after the run");
    }
}

} // namespace

// One thread does all the work, so CPU time (what the thread actually ran) is the
// measure: it does not count the time another process held the core.
BENCHMARK(bm_datapath)->Name("datapath/shell_sim")->ArgsProduct({{64, 1500}, {1, 8, 32}});

int main(int argc, char** argv) { return npa_bench::run_benchmarks(argc, argv); }
