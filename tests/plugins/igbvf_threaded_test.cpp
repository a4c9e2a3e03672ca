// The VF device model running free on its own thread while the plugin drives it from
// another: no data race on rings, doorbells or interrupt masks (run under TSan).
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/sim/health_watch.hpp>
#include <npa/sim/igbvf_rig.hpp>

#include "../support/stall_guard.hpp"

#include <array>
#include <atomic>
#include <thread>
#include <vector>

using namespace npa;
using namespace npa::sim;

TEST_CASE("plugin and device on two threads: everything sent arrives, everything received is whole") {
    igbvf_rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 128;
    igbvf_rig rig(c);
    REQUIRE(rig.ok());
    igbvf_plugin<igbvf_rig::api_type> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> dev_steps{0};
    std::thread dev([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            rig.device().step();
            dev_steps.fetch_add(1, std::memory_order_relaxed);
        }
    });
    // health() read from a control thread while the data path runs (shell::service()).
    health_watch watch(p);
    watch.wait_first_look();
    constexpr std::uint64_t n = 5000;
    const std::uint32_t flow = rig.flow_for_queue(0);
    std::uint64_t sent = 0, far_sent = 0, got = 0;
    std::vector<buffer_ref> pend;
    // Frames the device had no buffer for are dropped and counted by it (rx_no_desc): RX is
    // done when every frame the far end sent is either received or counted as dropped.
    auto rx_accounted = [&] { return got + rig.device_rx_no_desc(0); };
    // Bounded by progress, not by a count of passes that a descheduled device thread could
    // use up: give up only when the device kept stepping and nothing moved.
    npa_test::stall_guard guard;
    bool stalled = false;
    while (sent < n || far_sent < n || rx_accounted() < n || p.tx_in_flight(0) != 0) {
        const std::uint64_t before = sent + far_sent + got + p.tx_in_flight(0);
        while (pend.size() < 32 && sent + pend.size() < n) {
            buffer_ref x{};
            if (rig.api().alloc_tx(std::span(&x, 1)) == 0) break;
            rig.build_tx(x, 3);
            pend.push_back(x);
        }
        if (!pend.empty()) {
            rig.api().offer(pend);
            const std::uint16_t k = p.tx_burst(0, pend);
            rig.api().not_accepted(std::span(pend).subspan(k));
            pend.erase(pend.begin(), pend.begin() + k);
            sent += k;
        }
        if (far_sent < n && far_sent < rx_accounted() + 64) {
            far_sent += rig.far_send(flow, n - far_sent < 16 ? n - far_sent : 16);
        }
        std::array<buffer_ref, 32> out{};
        const std::uint16_t k = p.rx_burst(0, out);
        rig.api().received(std::span(out).first(k));
        for (std::uint16_t i = 0; i < k; ++i) {
            (void)rig.guest_sink().record(std::span<const std::byte>(out[i].data(), out[i].length()));
        }
        rig.api().free(std::span(out).first(k));
        got += k;
        (void)p.tx_reap(0);
        if (sent + far_sent + got + p.tx_in_flight(0) != before) {
            guard.progress();
        } else if (guard.idle(dev_steps.load(std::memory_order_relaxed))) {
            stalled = true;
            break;
        }
        if (k == 0) std::this_thread::yield();
    }
    CHECK_FALSE(stalled);
    watch.stop();
    CHECK(watch.looks() > 0);
    CHECK(watch.unhealthy() == 0);
    stop = true;
    dev.join();
    CHECK(sent == n);
    CHECK(far_sent == n);
    CHECK(rx_accounted() == n);
    const flow_report tx = rig.far_report(3, sent);
    CHECK(tx.lost == 0);
    CHECK(tx.corrupt == 0);
    const flow_report rx = rig.guest_sink().report(flow, far_sent);
    CHECK(rx.lost == rig.device_rx_no_desc(0));
    CHECK(rx.corrupt == 0);
    CHECK(p.stats(0).bad_completion == 0);
    p.detach();
    auto un = rig.api().take_unsent();
    rig.api().free(un);
    CHECK(rig.api().audit().balanced());
}
