// path_bench: packets per second through shell + plugin + sim device model, for the
// emulated path (vmxnet3) and the VF path (igbvf), with one and two queue pairs, and the
// duration of switches between the two under load.
//
// The world is npa/sim/two_hosts.hpp (the npa-demo world): numbered traffic both ways,
// `burst` frames per queue per round each way, on one core. Packet rates count frames the
// guest sent plus frames it received. Not a test: it asserts nothing about time; it prints a
// table and, with --json FILE, writes the numbers.
#include <npa/sim/two_hosts.hpp>

#include "cpu_time.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace th = npa::sim::two_hosts;

namespace {

struct rate {
    std::string path;
    std::uint16_t queues;
    double mpps;     ///< per wall second
    double mpps_cpu; ///< per CPU-second of the thread running the world
};
struct mpps_pair {
    double wall;
    double cpu;
};
struct switch_stats {
    std::uint16_t queues;
    std::size_t n;
    double p50, p90, p99, max, held_p50, held_max;
    std::uint64_t tx_lost, tx_reordered;
};

double pct(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

mpps_pair measure(th::world& w, double seconds) {
    const std::uint64_t tx0 = w.tx_sent(), rx0 = w.sink.received(th::peer_flow);
    const npa_bench::thread_cpu_clock cpu;
    const std::uint64_t c0 = cpu.now_ns();
    const std::uint64_t t0 = th::steady_ns();
    const std::uint64_t until = t0 + static_cast<std::uint64_t>(seconds * 1e9);
    while (th::steady_ns() < until) w.round(th::burst, th::burst);
    const double dt = static_cast<double>(th::steady_ns() - t0) / 1e9;
    const double dc = static_cast<double>(cpu.now_ns() - c0) / 1e9;
    const auto pkts = static_cast<double>(w.tx_sent() - tx0 + w.sink.received(th::peer_flow) - rx0);
    return {pkts / dt / 1e6, pkts / dc / 1e6};
}

} // namespace

int main(int argc, char** argv) {
    double seconds = 1.0;
    std::size_t switches = 1000;
    const char* json = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json = argv[++i];
        else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (std::strcmp(argv[i], "--switches") == 0 && i + 1 < argc) switches = std::strtoul(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: %s [--seconds S] [--switches N] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    if (seconds <= 0 || switches == 0) {
        std::fprintf(stderr, "path_bench: --seconds and --switches must be positive\n");
        return 2;
    }
    std::vector<rate> rates;
    std::vector<switch_stats> sw;
    for (std::uint16_t nq : {std::uint16_t{1}, std::uint16_t{2}}) {
        auto w = std::make_unique<th::world>(nq);
        w->quiet = true;
        w->min_dwell_ns = 0;
        std::string err;
        if (!w->build(err)) {
            std::fprintf(stderr, "path_bench: %s\n", err.c_str());
            return 1;
        }
        auto& sh = *w->sh;
        if (!sh.start(w->vmx_path).ok() || !sh.set_mac(th::guest_mac).ok()) {
            std::fprintf(stderr, "path_bench: boot failed\n");
            return 1;
        }
        w->run(500);
        const mpps_pair vm = measure(*w, seconds);
        rates.push_back({"vmxnet3", nq, vm.wall, vm.cpu});
        if (!w->switch_under_traffic(w->a.vf_path, npa::switch_reason::vf_arrived).ok()) {
            std::fprintf(stderr, "path_bench: VF switch failed\n");
            return 1;
        }
        w->run(500);
        const mpps_pair vf = measure(*w, seconds);
        rates.push_back({"igbvf", nq, vf.wall, vf.cpu});

        std::vector<double> dur, held;
        const std::uint64_t base = sh.history().switches();
        std::uint64_t rounds = 0;
        while (dur.size() < switches) {
            if (!sh.switching() && ++rounds % 10 == 0) {
                const npa::status st = sh.active_path() == w->vmx_path
                    ? sh.request_switch(w->a.vf_path, npa::switch_reason::vf_arrived)
                    : sh.request_switch(w->vmx_path, npa::switch_reason::vf_leaving);
                if (!st.ok()) {
                    std::fprintf(stderr, "path_bench: switch refused: %s\n", st.reason());
                    return 1;
                }
            }
            w->round(th::burst, th::burst);
            if (sh.history().switches() - base > dur.size()) {
                dur.push_back(static_cast<double>(sh.history().recent(0).duration_ns) / 1000.0);
                held.push_back(static_cast<double>(sh.history().recent(0).held));
            }
        }
        w->settle();
        std::uint64_t lost = 0, reord = 0;
        for (std::uint16_t q = 0; q < nq; ++q) {
            const auto r = w->peer.report(th::guest_flow + q, w->gens[q].sent() - w->pending[q].size());
            lost += r.lost;
            reord += r.reordered;
        }
        sw.push_back({nq, dur.size(), pct(dur, .5), pct(dur, .9), pct(dur, .99),
                      *std::max_element(dur.begin(), dur.end()), pct(held, .5),
                      *std::max_element(held.begin(), held.end()), lost, reord});
    }

    fmt::print("| path | queues | Mpps per CPU-second (TX+RX, one thread) | Mpps per wall second | load average |\n"
               "|---|---|---|---|---|\n");
    const double load = npa_bench::load_average_1min();
    for (const auto& r : rates)
        fmt::print("| shell + {} + sim device | {} | {:.3f} | {:.3f} | {:.2f} |\n", r.path, r.queues, r.mpps_cpu,
                   r.mpps, load);
    fmt::print("\n| vmxnet3 <-> igbvf switches | queues | p50 us | p90 us | p99 us | max us | held p50 | held max | TX lost | TX reordered |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& s : sw) {
        fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.0f} | {} | {} |\n", s.n, s.queues,
                   s.p50, s.p90, s.p99, s.max, s.held_p50, s.held_max, s.tx_lost, s.tx_reordered);
    }
    if (json != nullptr) {
        std::FILE* f = std::fopen(json, "w");
        if (f == nullptr) {
            std::perror(json);
            return 1;
        }
        std::string out = "{\"rates\": [";
        for (std::size_t i = 0; i < rates.size(); ++i) {
            out += fmt::format("{}{{\"path\": \"{}\", \"queues\": {}, \"mpps\": {:.4f}, \"mpps_per_cpu_s\": {:.4f}}}",
                               i ? ", " : "", rates[i].path, rates[i].queues, rates[i].mpps, rates[i].mpps_cpu);
        }
        out += "], \"switches\": [";
        for (std::size_t i = 0; i < sw.size(); ++i) {
            const auto& s = sw[i];
            out += fmt::format("{}{{\"queues\": {}, \"count\": {}, \"p50_us\": {:.2f}, \"p90_us\": {:.2f}, "
                               "\"p99_us\": {:.2f}, \"max_us\": {:.2f}, \"held_p50\": {:.0f}, \"held_max\": {:.0f}, "
                               "\"tx_lost\": {}, \"tx_reordered\": {}}}",
                               i ? ", " : "", s.queues, s.n, s.p50, s.p90, s.p99, s.max, s.held_p50,
                               s.held_max, s.tx_lost, s.tx_reordered);
        }
        out += "]}\n";
        std::fputs(out.c_str(), f);
        std::fclose(f);
    }
    return 0;
}
