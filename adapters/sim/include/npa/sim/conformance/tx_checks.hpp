// npa/sim/conformance/tx_checks.hpp: the conformance checks of the TX path (part of
// npa/sim/conformance.hpp): N packets per queue all completed and received in order, ring
// wrap over many generations (RX runs alongside), and a full TX ring's short count.
#pragma once

#include <npa/sim/conformance/bench.hpp>
#include <npa/sim/conformance/kit.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace npa::sim {

// ---- 2. TX of N packets per queue: all completed, returned, received in order -------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::tx_all_completed() {
    bench b{{}};
    if (attach(b)) {
        const std::uint64_t n = 4ull * b.rig.cfg().tx_ring + 7;
        for (std::uint16_t q = 0; q < b.rig.cfg().queues; ++q) {
            send(b, q, 100 + q, n);
        }
        for (std::uint16_t q = 0; q < b.rig.cfg().queues; ++q) {
            drain(b, q);
            expect_flow(b, b.rig.far_report(100 + q, n), "far end, guest TX", q);
            const auto done = b.rig.api().tx_completed(q);
            if (done != n) {
                b.v.fail("txq %u: %llu of %llu buffers came back through tx_complete", q,
                         ull(done), ull(n));
            }
            if (b.p.stats(q).tx_packets != n) {
                b.v.fail("txq %u: stats tx_packets = %llu, %llu were completed", q,
                         ull(b.p.stats(q).tx_packets), ull(n));
            }
        }
    }
    finish(b);
    return b.v;
}

// ---- 4. ring wrap: many generations both ways on small rings ------------------------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::ring_wrap() {
    typename Rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 32;
    bench b{c};
    if (attach(b)) {
        const std::uint64_t n = 32 * 41 + 3;  // 41 laps and a bit: the generation flips 41 times
        const std::uint32_t flow = b.rig.flow_for_queue(0);
        for (std::uint64_t done = 0; done < n && b.v.ok; done += 16) {
            send(b, 0, 7, 16);
            b.rig.far_send(flow, 16);  // no more than the RX ring holds at once
            receive(b, 0, done + 16, 16, false);
        }
        drain(b, 0);
        expect_flow(b, b.rig.far_report(7, b.accepted.size()), "far end, guest TX", 0);
        expect_flow(b, b.rig.guest_sink().report(flow, b.rig.far_sent(flow)), "guest, RX", 0);
    }
    finish(b);
    return b.v;
}

// ---- 5. a full TX ring returns a short count; the rest stays with the caller --------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::tx_ring_full_short_count() {
    bench b{{}};
    if (attach(b)) {
        const std::uint32_t ring = b.rig.cfg().tx_ring;
        std::vector<buffer_type> bufs(2 * ring);
        const std::uint32_t got = b.rig.api().alloc_tx(bufs);
        bufs.resize(got);
        for (buffer_type x : bufs) {
            b.rig.build_tx(x, 5);
        }
        b.rig.api().offer(bufs);
        const std::uint16_t k = b.p.tx_burst(0, bufs);  // the device is not stepped: no room frees up
        b.rig.api().not_accepted(std::span(bufs).subspan(std::min<std::size_t>(k, bufs.size())));
        if (k == 0 || k > ring) {
            b.v.fail("txq 0: tx_burst of %u buffers on an idle ring of %u accepted %u", got, ring, k);
        }
        if (b.p.stats(0).tx_ring_full == 0) {
            b.v.fail("txq 0: a short tx_burst did not count tx_ring_full");
        }
        for (std::size_t i = k; i < bufs.size(); ++i) {
            if (b.rig.api().owner_of(bufs[i]) != owner::caller) {
                b.v.fail("txq 0: buffer %zu was not accepted but is not with the caller", i);
                break;
            }
        }
        std::vector<buffer_type> rest(bufs.begin() + std::min<std::size_t>(k, bufs.size()), bufs.end());
        while (!rest.empty() && b.v.ok) {  // the device runs: the rest goes through
            b.rig.step();
            b.rig.api().offer(rest);
            at(b, "tx_burst", ring_kind::tx, 0);
            const std::uint16_t m = b.p.tx_burst(0, rest);
            b.rig.api().not_accepted(std::span(rest).subspan(m));
            rest.erase(rest.begin(), rest.begin() + m);
            if (m == 0 && ++b.idle > stuck_rounds) {
                stalled(b, "never drained the ring after it was full (%u device steps)",
                        stuck_rounds);
            }
        }
        b.rig.api().free(rest);
        drain(b, 0);
        expect_flow(b, b.rig.far_report(5, got), "far end, guest TX", 0);
        // Nor is a frame longer than the link carries (MTU + 18) a short count: the caller
        // would offer it forever. It is accepted, never sent, completed, counted in tx_errors.
        buffer_type big{};
        const std::uint32_t too_long = b.rig.queue_cfg().mtu + 19;
        const bool have = b.v.ok && b.rig.api().alloc_tx(std::span(&big, 1)) == 1;
        if (have && big.capacity() < too_long) {
            b.rig.api().free(std::span(&big, 1));  // no such frame fits the rig's buffers
        } else if (have) {
            b.rig.build_tx(big, 6);
            big.set_length(too_long);
            const std::uint64_t errors = b.p.stats(0).tx_errors;
            const std::uint64_t done = b.rig.api().tx_completed(0);
            b.rig.api().offer(std::span(&big, 1));
            if (b.p.tx_burst(0, std::span(&big, 1)) != 1) {
                b.rig.api().not_accepted(std::span(&big, 1));
                b.rig.api().free(std::span(&big, 1));
                b.v.fail("txq 0: tx_burst refused a %u-byte frame (longer than MTU %u + 18) with "
                         "a short count; accept it, count tx_errors and complete it", big.length(),
                         b.rig.queue_cfg().mtu);
            } else {
                drain(b, 0);
                if (b.p.stats(0).tx_errors != errors + 1 || b.rig.api().tx_completed(0) != done + 1 ||
                    b.rig.far_report(6, 1).received != 0) {
                    b.v.fail("txq 0: a %u-byte frame (longer than MTU %u + 18): tx_errors +%llu, "
                             "completed +%llu, the far end received %llu; expected 1, 1, 0",
                             big.length(), b.rig.queue_cfg().mtu, ull(b.p.stats(0).tx_errors - errors),
                             ull(b.rig.api().tx_completed(0) - done),
                             ull(b.rig.far_report(6, 1).received));
                }
            }
        }
    }
    finish(b);
    return b.v;
}

} // namespace npa::sim
