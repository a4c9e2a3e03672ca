// benchmarks/image_mbuf_bench.cpp: a plugin image over DPDK mbufs against the same plugin
// compiled in, in one DPDK process.
//
// Two worlds, each a simnic model whose guest memory holds an external-buffer mempool's
// data and a traffic peer on its wire: one driven by simnic_plugin<mbuf_api> compiled in,
// one by the simnic image loaded for buffer_layout::rte_mbuf (loaded_plugin: one call
// through the image's table per operation). A round is a TX burst of 32 mbufs, a device
// step, a reap, an RX burst of what the peer sent. The worlds run interleaved, `slice`
// rounds each in turn, each timed on the thread's CPU clock, so load on the machine falls
// on both alike; `repeats` runs, the median of each. Prints packets (TX + RX) per
// CPU-second of each and the ratio image / compiled-in.
//
//   npa_image_mbuf_bench [slices per run] [repeats]
//
// Not a test: nothing here fails on a number.
#include "cpu_time.hpp"
#include "mbuf_sim_world.hpp"

#include <npa/dpdk/mbuf.hpp>
#include <npa/image/image_files.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/image/posix_loader.hpp>
#include <npa/sim/simnic_plugin.hpp>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

// ---- tuning constants --------------------------------------------------------------
constexpr std::uint16_t burst = 32; ///< packets per TX burst and per peer send
constexpr int warm_rounds = 64;     ///< before timing: rings and RX posting full
constexpr int slice = 64;           ///< rounds a world runs before the other
constexpr std::uint32_t pool_size = 2048;
constexpr std::uint32_t frame_len = 64;

using npa::dpdk::mbuf_ref;
using npa::dpdk::test::mbuf_api;

[[noreturn]] void die(const char* what, const char* why) {
    std::fprintf(stderr, "npa_image_mbuf_bench: %s: %s\n", what, why);
    std::exit(1);
}

/// A world (mbuf_sim_world.hpp) driven by a plugin of type Plugin.
template <class Plugin>
struct world : npa::dpdk::test::mbuf_sim_world {
    Plugin p;
    std::uint64_t packets = 0, rx = 0, cpu_ns = 0;

    template <class Device>
    world(const char* name, Device&& device_of) : mbuf_sim_world(name, pool_size, frame_len) {
        if (!error.empty())
            die(name, error.c_str());
        if (const npa::status st = p.attach(api, device_of(*dev), queue_cfg()); !st) {
            die(name, st.reason());
        }
    }
    ~world() { p.detach(); }

    void round() noexcept {
        std::array<mbuf_ref, burst> b{};
        if (pool.alloc_bulk(b) == burst) {
            for (const mbuf_ref& m : b)
                m.set_length(frame_len);
            const std::uint16_t sent = p.tx_burst(0, b);
            if (sent < burst)
                pool.free_burst(std::span<const mbuf_ref>(b).subspan(sent));
            packets += sent;
        }
        (void)peer.send(burst);
        (void)dev->step();
        (void)p.tx_reap(0);
        const std::uint16_t got = p.rx_burst(0, b);
        pool.free_burst(std::span<const mbuf_ref>(b.data(), got));
        packets += got;
        rx += got;
    }
    void run(int rounds, npa_bench::thread_cpu_clock& clk) noexcept {
        const std::uint64_t c0 = clk.now_ns();
        for (int i = 0; i < rounds; ++i)
            round();
        cpu_ns += clk.now_ns() - c0;
    }
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    const int slices = argc > 1 ? std::atoi(argv[1]) : 400;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
    const std::string prefix = "npa_imgbench_" + std::to_string(getpid());
    const char* eal[] = {
        "npa_image_mbuf_bench", "--no-huge",    "--no-pci",       "-m",          "256", "-l", "0",
        "--file-prefix",        prefix.c_str(), "--no-telemetry", "--log-level", "3"};
    if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) {
        die("rte_eal_init", "failed (run as root)");
    }
    {
        auto bytes = npa::image::read_file(NPA_SIMNIC_IMAGE);
        auto seed = npa::image::read_seed(NPA_IMAGE_TEST_KEY);
        if (!bytes || !seed)
            die(NPA_SIMNIC_IMAGE, "cannot read the image or the key");
        const std::vector<npa::image::public_key> keys{npa::image::public_key_of(*seed)};
        auto img = npa::image::load_image(*bytes, npa::sim::simnic_window::image_device_id, keys,
                                          npa::image::buffer_layout::rte_mbuf);
        if (!img)
            die("load_image", img.error().reason());

        std::vector<double> compiled_rate, image_rate, ratio;
        for (int r = 0; r < repeats; ++r) {
            npa::image::image_device bound{};
            world<npa::sim::simnic_plugin<mbuf_api>> compiled(
                ("npa_bench_c" + std::to_string(r)).c_str(),
                [](npa::sim::simnic& d) -> npa::sim::simnic_window& { return d.window(); });
            world<npa::image::loaded_plugin<mbuf_api>> image(
                ("npa_bench_i" + std::to_string(r)).c_str(),
                [&](npa::sim::simnic& d) -> npa::image::image_device& {
                    auto b = img->bind(d.window());
                    if (!b)
                        die("bind", b.error().reason());
                    bound = std::move(*b);
                    return bound;
                });
            npa_bench::thread_cpu_clock clk;
            compiled.run(warm_rounds, clk);
            image.run(warm_rounds, clk);
            compiled.packets = image.packets = compiled.rx = image.rx = compiled.cpu_ns =
                image.cpu_ns = 0;
            for (int s = 0; s < slices; ++s) {
                // Alternate which world goes first, so neither always follows the other.
                if (s % 2 == 0) {
                    compiled.run(slice, clk);
                    image.run(slice, clk);
                } else {
                    image.run(slice, clk);
                    compiled.run(slice, clk);
                }
            }
            const double c =
                1e3 * static_cast<double>(compiled.packets) / static_cast<double>(compiled.cpu_ns);
            const double i =
                1e3 * static_cast<double>(image.packets) / static_cast<double>(image.cpu_ns);
            std::printf(
                "run %d: compiled-in %.3f Mpps/CPU-s, image %.3f Mpps/CPU-s, image/compiled "
                "%.3f (packets: compiled-in %llu of them %llu RX, image %llu of them %llu RX)\n",
                r, c, i, i / c, static_cast<unsigned long long>(compiled.packets),
                static_cast<unsigned long long>(compiled.rx),
                static_cast<unsigned long long>(image.packets),
                static_cast<unsigned long long>(image.rx));
            compiled_rate.push_back(c);
            image_rate.push_back(i);
            ratio.push_back(i / c);
        }
        std::printf("median of %d: compiled-in %.3f Mpps/CPU-s, image %.3f Mpps/CPU-s, "
                    "image/compiled %.3f (burst %u, %u-byte frames, TX + RX per CPU-second)\n",
                    repeats, median(compiled_rate), median(image_rate), median(ratio), burst,
                    frame_len);
    }
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all("/var/run/dpdk/" + prefix, ec); // EAL leaves its runtime dir
    return 0;
}
