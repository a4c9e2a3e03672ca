// switch_bench: how long a switch takes and how many packets wait, under sustained load.
//
// A guest shell on the sim (npa/sim/shell_rig.hpp) with two simnic paths runs numbered
// traffic both ways: every round each queue offers `burst` frames and the peer sends
// `burst` frames. Every `period` rounds the shell is asked to switch to the other path.
// For each switch the shell records the time from the request until the last queue was
// sending on the new path, and how many TX packets waited in its backlog meanwhile.
// Loss is measured by sequence numbers at both ends.
//
// Not a test: it asserts nothing about time. It prints a table and, with --json FILE,
// writes the same numbers as JSON.
#include <npa/sim/shell_rig.hpp>

#include "cpu_time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct scenario {
    const char* name;
    std::uint16_t queues;
    std::uint32_t burst;
};

struct outcome {
    std::string name;
    std::uint64_t switches = 0;
    double p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
    double held_p50 = 0, held_max = 0;
    double mpps = 0;             ///< guest TX+RX packets per wall second, switches included
    double mpps_cpu = 0;         ///< the same per CPU-second of the thread running the rig
    double round_us = 0;         ///< mean round time without a switch in it
    std::uint64_t tx_lost = 0, tx_reordered = 0, tx_dup = 0, rx_lost = 0, rx_device_drops = 0;
    std::uint64_t packets = 0;
};

double pct(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

double now_us() {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count()) /
           1000.0;
}

outcome run(const scenario& s, std::uint32_t switches, std::uint32_t period) {
    npa::sim::shell_rig_env::real_time = true;
    npa::sim::shell_rig_config cfg;
    cfg.queues = s.queues;
    npa::sim::shell_rig r(cfg);
    if (!r.error().ok()) {
        std::fprintf(stderr, "switch_bench: rig: %s\n", r.error().reason());
        std::exit(1);
    }
    for (int i = 0; i < 200; ++i) r.round(s.burst, s.burst);  // warm up

    // Baseline: rounds with no switch.
    const double b0 = now_us();
    for (int i = 0; i < 2000; ++i) r.round(s.burst, s.burst);
    const double round_us = (now_us() - b0) / 2000.0;

    std::vector<double> dur, held;
    const std::uint64_t start_hist = r.sh().history().switches();
    const npa_bench::thread_cpu_clock cpu;
    const std::uint64_t c0 = cpu.now_ns();
    const double t0 = now_us();
    std::uint64_t rounds = 0;
    while (dur.size() < switches) {
        if (!r.sh().switching() && rounds % period == 0) {
            if (!r.request_flip().ok()) {
                std::fprintf(stderr, "switch_bench: switch refused\n");
                std::exit(1);
            }
        }
        r.round(s.burst, s.burst);
        ++rounds;
        if (r.sh().history().switches() - start_hist > dur.size()) {
            const auto& rec = r.sh().history().recent(0);
            dur.push_back(static_cast<double>(rec.duration_ns) / 1000.0);
            held.push_back(static_cast<double>(rec.held));
        }
    }
    const double secs = (now_us() - t0) / 1e6;
    const double cpu_secs = static_cast<double>(cpu.now_ns() - c0) / 1e9;
    r.settle();

    outcome o;
    o.name = s.name;
    o.switches = dur.size();
    o.p50_us = pct(dur, 0.50);
    o.p90_us = pct(dur, 0.90);
    o.p99_us = pct(dur, 0.99);
    o.max_us = *std::max_element(dur.begin(), dur.end());
    o.held_p50 = pct(held, 0.50);
    o.held_max = *std::max_element(held.begin(), held.end());
    o.round_us = round_us;
    for (std::uint16_t q = 0; q < s.queues; ++q) {
        const auto t = r.tx_report(q);
        o.tx_lost += t.lost;
        o.tx_reordered += t.reordered;
        o.tx_dup += t.duplicates;
        o.packets += t.sent;
    }
    const auto rx = r.rx_report();
    o.rx_lost = rx.lost;
    o.rx_device_drops = r.device_rx_drops();
    o.packets += rx.sent;
    o.mpps = static_cast<double>(rounds) * s.burst * (s.queues + 1) / secs / 1e6;
    o.mpps_cpu = static_cast<double>(rounds) * s.burst * (s.queues + 1) / cpu_secs / 1e6;
    return o;
}

} // namespace

int main(int argc, char** argv) {
    std::uint32_t switches = 2000;
    std::uint32_t period = 10;
    const char* json = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = argv[++i];
        } else if (std::strcmp(argv[i], "--switches") == 0 && i + 1 < argc) {
            switches = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (std::strcmp(argv[i], "--period") == 0 && i + 1 < argc) {
            period = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else {
            std::fprintf(stderr, "usage: %s [--switches N] [--period ROUNDS] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    if (switches == 0 || period == 0) {
        std::fprintf(stderr, "switch_bench: --switches and --period must be positive\n");
        return 2;
    }
    const scenario scenarios[] = {{"1 queue, burst 32", 1, 32}, {"2 queues, burst 32", 2, 32}};
    std::vector<outcome> out;
    for (const auto& s : scenarios) out.push_back(run(s, switches, period));

    fmt::print("| scenario | switches | p50 us | p90 us | p99 us | max us | held p50 | held max | "
               "round us | Mpps per CPU-s (per wall s) | TX lost | TX reordered | RX lost (device drops) |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& o : out) {
        fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.0f} | {:.0f} | {:.1f} | {:.3f} ({:.3f}) | {} | {} | {} ({}) |\n",
                   o.name, o.switches, o.p50_us, o.p90_us, o.p99_us, o.max_us, o.held_p50,
                   o.held_max, o.round_us, o.mpps_cpu, o.mpps, o.tx_lost, o.tx_reordered, o.rx_lost,
                   o.rx_device_drops);
    }
    fmt::print("\nload average (1 min) at the end: {:.2f}\n", npa_bench::load_average_1min());
    if (json != nullptr) {
        std::FILE* f = std::fopen(json, "w");
        if (f == nullptr) {
            std::perror(json);
            return 1;
        }
        std::fputs("[\n", f);
        for (std::size_t i = 0; i < out.size(); ++i) {
            const auto& o = out[i];
            std::fputs(fmt::format("  {{\"scenario\": \"{}\", \"switches\": {}, \"p50_us\": {:.2f}, "
                                   "\"p90_us\": {:.2f}, \"p99_us\": {:.2f}, \"max_us\": {:.2f}, "
                                   "\"held_p50\": {:.0f}, \"held_max\": {:.0f}, \"round_us\": {:.2f}, "
                                   "\"mpps\": {:.3f}, \"mpps_per_cpu_s\": {:.3f}, \"tx_lost\": {}, \"tx_reordered\": {}, "
                                   "\"tx_duplicates\": {}, \"rx_lost\": {}, \"rx_device_drops\": {}}}{}\n",
                                   o.name, o.switches, o.p50_us, o.p90_us, o.p99_us, o.max_us,
                                   o.held_p50, o.held_max, o.round_us, o.mpps, o.mpps_cpu, o.tx_lost,
                                   o.tx_reordered, o.tx_dup, o.rx_lost, o.rx_device_drops,
                                   i + 1 < out.size() ? "," : "")
                           .c_str(),
                       f);
        }
        std::fputs("]\n", f);
        std::fclose(f);
    }
    return 0;
}
