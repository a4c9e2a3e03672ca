// npa/sim/conformance/rx_checks.hpp: the conformance checks of the RX path (part of
// npa/sim/conformance.hpp): refill keeps the ring full, an empty pool stops refill and is
// counted, and interrupts follow the NAPI contract.
#pragma once

#include <npa/sim/conformance/bench.hpp>
#include <npa/sim/conformance/kit.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>

namespace npa::sim {

// ---- 3. RX: every burst refills, so the device always has a full ring ---------------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::rx_refill_keeps_ring_full() {
    bench b{{}};
    if (attach(b)) {
        for (std::uint16_t q = 0; q < b.rig.cfg().queues; ++q) {
            const std::uint32_t flow = b.rig.flow_for_queue(q);
            const std::uint64_t n = 3ull * b.rig.cfg().rx_ring + 5;
            for (std::uint64_t sent = 0; sent < n && b.v.ok; sent += burst) {
                const std::uint64_t m = std::min<std::uint64_t>(burst, n - sent);
                b.rig.far_send(flow, m);
                receive(b, q, sent + m, burst, /*check_full=*/true);
            }
            expect_flow(b, b.rig.guest_sink().report(flow, n), "guest, RX", q);
            if (b.p.stats(q).rx_packets != n) {
                b.v.fail("rxq %u: stats rx_packets = %llu, %llu were received", q,
                         ull(b.p.stats(q).rx_packets), ull(n));
            }
        }
    }
    finish(b);
    return b.v;
}

// ---- 6. an empty pool stops RX refill, counted; refill resumes when buffers return --
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::empty_pool_stops_refill() {
    bench b{{}};
    b.rig.api().set_empty_pool(true);
    if (attach(b)) {
        b.rig.step();
        if (b.rig.device_rx_posted(0) != 0) {
            b.v.fail("rxq 0: %u buffers posted from an empty pool", b.rig.device_rx_posted(0));
        }
        if (b.p.stats(0).rx_no_buffer == 0) {
            b.v.fail("rxq 0: refill from an empty pool did not count rx_no_buffer");
        }
        const std::uint32_t flow = b.rig.flow_for_queue(0);
        b.rig.far_send(flow, 10);
        b.rig.step();
        std::array<buffer_type, burst> out{};
        if (b.p.rx_burst(0, out) != 0) {
            b.v.fail("rxq 0: rx_burst delivered packets with no buffers posted");
        }
        b.rig.api().set_empty_pool(false);
        (void)b.p.rx_burst(0, std::span(out).first(0));  // a zero-budget poll still refills
        b.rig.step();
        expect_ring_full(b, 0, "after the pool was refilled");
        b.rig.far_send(flow, 10);
        receive(b, 0, 10, burst, false);
    }
    finish(b);
    return b.v;
}

// ---- 8. interrupts follow the NAPI contract -----------------------------------------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::napi_budget() {
    typename Rig::config c;
    c.queues = 1;
    bench b{c};
    if (attach(b)) {
        constexpr std::uint16_t budget = 16;
        auto& irq = b.rig.irq(0);
        const std::uint32_t flow = b.rig.flow_for_queue(0);
        b.p.irq_arm(0);
        if (!irq.armed()) {
            b.v.fail("irq_arm(0) did not arm queue 0's interrupt line");
        }
        const std::uint64_t f0 = irq.fired();
        b.rig.far_send(flow, 3 * budget + 5);
        b.rig.step();
        if (irq.fired() != f0 + 1) {
            b.v.fail("irq 0: %llu interrupts for one burst of traffic with the line armed, "
                     "expected 1", ull(irq.fired() - f0));
        }
        // The poll loop: re-arm only when a poll did less than its budget.
        std::uint32_t polls = 0, got = 0;
        for (; polls < 10; ++polls) {
            irq.clear();
            const std::uint16_t k = poll_once(b, 0, budget);
            got += k;
            if (k > budget) {
                b.v.fail("rxq 0: rx_burst returned %u, more than its budget %u", k, budget);
            }
            if (k < budget) {
                b.p.irq_arm(0);
                ++polls;
                break;
            }
        }
        if (got != 3 * budget + 5 || polls != 4) {
            b.v.fail("rxq 0: NAPI loop took %u polls for %u packets (budget %u); expected 4 "
                     "polls for %u", polls, got, budget, 3 * budget + 5);
        }
        b.rig.step();
        if (irq.fired() != f0 + 1) {
            b.v.fail("irq 0: fired with no new work after the poll loop re-armed it");
        }
        b.rig.far_send(flow, 1);
        b.rig.step();
        if (irq.fired() != f0 + 2) {
            b.v.fail("irq 0: did not fire for new work while armed");
        }
        irq.clear();
        (void)poll_once(b, 0, budget);
        b.p.irq_disarm(0);
        b.rig.far_send(flow, 5);
        b.rig.step();
        if (irq.fired() != f0 + 2) {
            b.v.fail("irq 0: fired while disarmed");
        }
        b.p.irq_arm(0);  // work latched while masked is delivered on arm, not lost
        if (irq.fired() != f0 + 3) {
            b.v.fail("irq 0: work that arrived while disarmed was not signalled on arm");
        }
        irq.clear();
        (void)poll_once(b, 0, budget);
    }
    finish(b);
    return b.v;
}

} // namespace npa::sim
