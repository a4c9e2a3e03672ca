// Free-running device: the simnic steps on its own thread while the plugin runs on this
// one. Checks the ring protocol under real concurrency (run under TSan in CI), and runs the
// conformance kit's threaded checks (device on its own thread, completions written field
// by field) on every shipped plugin, so that the tsan and cross stages run them too.
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/health_watch.hpp>
#include <npa/sim/igbvf_rig.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>
#include <npa/sim/vmxnet3_rig.hpp>

#include "../support/stall_guard.hpp"

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

using namespace npa::sim;
using api = simnic_rig::api_type;
using npa::igbvf_plugin;
using npa::vmxnet3_plugin;

NPA_SIM_CONFORMANCE_THREADED(simnic_plugin, simnic_rig)
NPA_SIM_CONFORMANCE_THREADED(vmxnet3_plugin, vmxnet3_rig)
NPA_SIM_CONFORMANCE_THREADED(igbvf_plugin, igbvf_rig)

TEST_CASE("traffic both ways with the device on its own thread: nothing lost, all in order") {
    simnic_rig::config c;
    c.queues = 1;
    simnic_rig rig(c);
    simnic_plugin<api> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    const std::uint32_t rx_flow = rig.flow_for_queue(0);
    constexpr std::uint64_t n = 20000;
    rig.device().start();
    // The control thread's view while the data path runs: health() is read concurrently
    // (what shell::service() does), and a clean device stays healthy throughout.
    health_watch watch(p);
    watch.wait_first_look();
    std::uint64_t sent = 0, rx = 0, far_sent = 0;
    std::vector<npa::buffer_ref> pend;
    std::array<npa::buffer_ref, 32> out{};
    // Bounded by progress, not time: give up (and report) only when the device kept
    // stepping and nothing moved (tests/support/stall_guard.hpp).
    npa_test::stall_guard guard;
    bool stalled = false;
    while (sent < n || rx < n || p.tx_in_flight(0) != 0) {
        while (pend.size() < 32 && sent + pend.size() < n) {
            npa::buffer_ref b;
            if (rig.api().alloc_tx(std::span(&b, 1)) == 0) {
                break;
            }
            rig.build_tx(b, 1);
            pend.push_back(b);
        }
        rig.api().offer(pend);
        const auto k = p.tx_burst(0, pend);
        rig.api().not_accepted(std::span(pend).subspan(k));
        pend.erase(pend.begin(), pend.begin() + k);
        sent += k;
        const std::uint32_t reaped = p.tx_reap(0);
        // Keep the far end no more than a ring ahead of the guest, so nothing is dropped.
        if (far_sent < n && far_sent - rx < 128) {
            far_sent += rig.far_send(rx_flow, 32);
        }
        const auto m = p.rx_burst(0, out);
        rig.api().received(std::span(out).first(m));
        for (std::uint16_t i = 0; i < m; ++i) {
            rig.guest_sink().record(std::span<const std::byte>(out[i].data(), out[i].length()));
        }
        rig.api().free(std::span(out).first(m));
        rx += m;
        if (k + m + reaped == 0) {
            if (guard.idle(rig.device().steps())) {
                stalled = true;
                break;
            }
            std::this_thread::yield();  // two cores shared by everyone: let the device run
        } else {
            guard.progress();
        }
    }
    const auto ds = rig.device().stats(0);
    const auto ps = p.stats(0);
    INFO("sent=", sent, " rx=", rx, " far_sent=", far_sent, " tx_in_flight=", p.tx_in_flight(0),
         "; device: rx_frames=", ds.rx_frames, " rx_no_desc=", ds.rx_no_desc,
         " rx_oversize=", ds.rx_oversize, " rx_posted=", rig.device().rx_posted(0),
         " inbox=", rig.device().inbox(), " tx_frames=", ds.tx_frames,
         "; plugin: rx_packets=", ps.rx_packets, " rx_no_buffer=", ps.rx_no_buffer,
         " rx_dropped=", ps.rx_dropped, " tx_packets=", ps.tx_packets);
    CHECK_FALSE(stalled);
    watch.stop();
    CHECK(watch.looks() > 0);
    CHECK(watch.unhealthy() == 0);
    rig.device().stop();
    rig.api().free(pend);
    CHECK(sent == n);
    CHECK(rx == n);
    const auto tx_r = rig.far_report(1, n);
    CHECK(tx_r.lost == 0);
    CHECK(tx_r.reordered == 0);
    CHECK(tx_r.corrupt == 0);
    const auto rx_r = rig.guest_sink().report(rx_flow, n);
    CHECK(rx_r.lost == 0);
    CHECK(rx_r.reordered == 0);
    CHECK(rx_r.corrupt == 0);
    CHECK(p.stats(0).bad_completion == 0);
    p.detach();
    CHECK(rig.violations().empty());
    rig.api().free(rig.api().take_unsent());
    CHECK(rig.api().audit().balanced());
}
