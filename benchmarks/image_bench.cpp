// benchmarks/image_bench.cpp: a plugin image against the same plugin compiled in.
//
//   image/datapath/<frame bytes>/<burst>   two shell_rig worlds in one thread: one with the
//       simnic plugin compiled into the shell, one with the same plugin loaded from its
//       image (loaded_plugin: one call through the image's table per operation). They run
//       interleaved, `slice` rounds each in turn, and each is timed on the thread's CPU
//       clock, so load on the machine falls on both alike. Reports packets per CPU-second
//       of each (TX done + RX got) and image_vs_compiled, their ratio (goal: >= 0.97).
//   image/load   load_image() of the simnic image: parse, digest, signature, map,
//       relocate, protect, enter; the time per load.
//
// Not a test: nothing here fails on a number.
#include "bench_common.hpp"
#include "gbench_main.hpp"
#include "cpu_time.hpp"
#include "datapath_rig.hpp"

#include <npa/image/image_files.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/image/posix_loader.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

// ---- tuning constants --------------------------------------------------------------
/// Rounds before timing: fills the rings and the RX posting (steady state).
constexpr int warm_rounds = 64;
/// Rounds each world runs before the other takes over: long enough that switching worlds
/// (their memory in cache) is a small part, short enough to interleave finely.
constexpr int slice = 64;

using namespace npa::image;

std::vector<std::byte> image_bytes() {
    auto b = read_file(NPA_SIMNIC_IMAGE);
    if (!b) {
        std::fprintf(stderr, "image_bench: cannot read %s\n", NPA_SIMNIC_IMAGE);
        std::abort();
    }
    return std::move(*b);
}
std::vector<public_key> trusted() {
    const auto s = read_seed(NPA_IMAGE_TEST_KEY);
    if (!s) {
        std::fprintf(stderr, "image_bench: cannot read %s\n", NPA_IMAGE_TEST_KEY);
        std::abort();
    }
    return {public_key_of(*s)};
}

const loaded_image& simnic_image() {
    static npa::result<loaded_image> img =
        load_image(image_bytes(), npa::sim::simnic_window::image_device_id, trusted());
    if (!img) {
        std::fprintf(stderr, "image_bench: %s\n", img.error().reason());
        std::abort();
    }
    return *img;
}

/// The image rig's paths attach to the loaded simnic image bound to each window.
struct image_binding {
    static image_device device(npa::sim::simnic_window& w) {
        auto d = simnic_image().bind(w);
        return d ? *d : image_device{};
    }
};
using image_rig = npa::sim::basic_shell_rig<loaded_plugin, image_binding>;

/// CPU time and packets of one world over the interleaved slices.
template <class Rig>
struct timed {
    Rig& r;
    std::uint64_t cpu_ns = 0, pkts = 0;
    void run(std::uint32_t burst, const npa_bench::thread_cpu_clock& cpu) {
        const std::uint64_t p0 = npa_bench::datapath_packets(r);
        const std::uint64_t c0 = cpu.now_ns();
        for (int i = 0; i < slice; ++i) {
            r.round(burst, burst);
        }
        cpu_ns += cpu.now_ns() - c0;
        pkts += npa_bench::datapath_packets(r) - p0;
    }
    [[nodiscard]] double mpps() const {
        return cpu_ns != 0 ? static_cast<double>(pkts) * 1e3 / static_cast<double>(cpu_ns) : 0;
    }
};

void bm_image_datapath(benchmark::State& st) {
    npa::sim::shell_rig_env::real_time = true;
    npa::sim::shell_rig_config cfg;
    cfg.frame_len = static_cast<std::uint32_t>(st.range(0));
    const auto burst = static_cast<std::uint32_t>(st.range(1));
    npa::sim::shell_rig compiled(cfg);
    image_rig loaded(cfg);
    if (!compiled.error().ok() || !loaded.error().ok()) {
        st.SkipWithError(!compiled.error().ok() ? compiled.error().reason() : loaded.error().reason());
        return;
    }
    for (int i = 0; i < warm_rounds; ++i) {
        compiled.round(burst, burst);
        loaded.round(burst, burst);
    }
    const npa_bench::thread_cpu_clock cpu;
    timed<npa::sim::shell_rig> a{compiled};
    timed<image_rig> b{loaded};
    bool image_first = false; // alternate who goes first: neither always finds the other's cache
    for (auto _ : st) {
        if (image_first) {
            b.run(burst, cpu);
        }
        a.run(burst, cpu);
        if (!image_first) {
            b.run(burst, cpu);
        }
        image_first = !image_first;
    }
    st.counters["compiled_mpps_cpu"] = a.mpps();
    st.counters["image_mpps_cpu"] = b.mpps();
    st.counters["image_vs_compiled"] = a.mpps() != 0 ? b.mpps() / a.mpps() : 0;
    st.SetItemsProcessed(static_cast<std::int64_t>(a.pkts + b.pkts));
    compiled.settle();
    loaded.settle();
    if (!compiled.sh().audit().ok() || !loaded.sh().audit().ok()) {
        st.SkipWithError("audit failed after the run");
    }
}

void bm_image_load(benchmark::State& st) {
    const std::vector<std::byte> bytes = image_bytes();
    const std::vector<public_key> keys = trusted();
    for (auto _ : st) {
        auto img = load_image(bytes, npa::sim::simnic_window::image_device_id, keys);
        if (!img) {
            st.SkipWithError(img.error().reason());
            return;
        }
        benchmark::DoNotOptimize(&img->ops());
    }
    st.counters["image_bytes"] = static_cast<double>(bytes.size());
}

} // namespace

BENCHMARK(bm_image_datapath)->Name("image/datapath")->ArgsProduct({{64, 1500}, {8, 32}})->UseRealTime();
BENCHMARK(bm_image_load)->Name("image/load")->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) { return npa_bench::run_benchmarks(argc, argv); }
