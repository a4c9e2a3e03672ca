// npa/sim/conformance/bench.hpp: the steps every conformance check is built from (part of
// npa/sim/conformance.hpp): the watchdog's view of where the case is, attach, send and
// receive with retries and a stuck limit counted in device steps (watchdog.hpp), drain,
// the expectations on rings and flows, and finish(): detach, then the device's
// violations, the shell API's ownership errors and the buffer audit.
#pragma once

#include <npa/sim/conformance/kit.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace npa::sim {

// The watchdog's view (watchdog.hpp): which plugin call is next, on which ring, and how
// far that ring has come.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::at(bench& b, const char* call, ring_kind r, std::uint16_t q) {
    const bool rx = r == ring_kind::rx;
    b.watch.at(call, rx, q, rx ? b.rig.cfg().rx_ring : b.rig.cfg().tx_ring,
               rx ? b.p.stats(q).rx_packets : b.rig.api().tx_completed(q));
}

// One round of a loop the kit drives: the device steps once. False (and the case fails)
// once the case has used its budget of rounds.
template <template <class> class Plugin, class Rig>
bool conformance<Plugin, Rig>::step(bench& b) {
    b.rig.step();
    const std::uint64_t n = b.watch.rounds.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n > case_round_budget) {
        if (n == case_round_budget + 1) {
            stalled(b, "was the last call when the case ran out of its budget of %llu "
                       "device steps",
                    static_cast<unsigned long long>(case_round_budget));
        }
        return false;
    }
    return true;
}

// Fails the case with the watchdog's words: the case, the call, its ring, the last slot.
template <template <class> class Plugin, class Rig>
template <class... Args>
void conformance<Plugin, Rig>::stalled(bench& b, const char* fmt, Args... args) {
    verdict what;
    what.fail(fmt, args...);
    b.watch.fail(b.v, what.message.c_str());
}

template <template <class> class Plugin, class Rig>
std::uint32_t conformance<Plugin, Rig>::reap(bench& b, std::uint16_t q) {
    at(b, "tx_reap", ring_kind::tx, q);
    return b.p.tx_reap(q);
}

template <template <class> class Plugin, class Rig>
bool conformance<Plugin, Rig>::attach(bench& b) {
    if (!b.rig.ok()) {
        b.v.fail("rig: %s", b.rig.error());
        return false;
    }
    at(b, "attach", ring_kind::rx, 0);
    const status st = b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg());
    if (!st) {
        b.v.fail("attach to %s failed: %s", Rig::device_name, st.reason());
        return false;
    }
    b.attached = true;
    return true;
}

template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::expect_ring_full(bench& b, std::uint16_t q, const char* when) {
    const std::uint32_t posted = b.rig.device_rx_posted(q);
    if (posted != b.rig.cfg().rx_ring) {
        b.v.fail("rxq %u: the device holds %u RX buffers %s, the ring has %u slots", q,
                 posted, when, b.rig.cfg().rx_ring);
    }
}

template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::expect_all_completed(bench& b, const hostile_case& hc) {
    if (b.p.tx_in_flight(0) != 0 || b.rig.api().tx_completed(0) != b.accepted.size()) {
        b.v.fail("%s: %llu of %zu TX buffers completed", hc.name,
                 ull(b.rig.api().tx_completed(0)), b.accepted.size());
    }
}

template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::expect_flow(bench& b, const flow_report& r, const char* where,
                                           std::uint16_t q) {
    if (r.lost + r.duplicates + r.reordered + r.corrupt != 0) {
        b.v.fail("queue %u, %s: of %llu sent, %llu lost, %llu duplicated, %llu reordered, "
                 "%llu corrupt", q, where, ull(r.sent), ull(r.lost), ull(r.duplicates),
                 ull(r.reordered), ull(r.corrupt));
    }
}

// Sends n new frames of `flow` on queue q, retrying what tx_burst did not accept and
// stepping the device when the ring is full.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::send(bench& b, std::uint16_t q, std::uint32_t flow, std::uint64_t n,
                                    bool may_stall) {
    std::vector<buffer_type> pend;
    std::uint64_t built = 0;
    std::uint32_t idle = 0;
    while ((built < n || !pend.empty()) && b.v.ok) {
        while (pend.size() < burst && built < n) {
            buffer_type x{};
            if (b.rig.api().alloc_tx(std::span(&x, 1)) == 0) {
                break;
            }
            b.rig.build_tx(x, flow);
            pend.push_back(x);
            ++built;
        }
        std::uint16_t k = 0;
        if (!pend.empty()) {
            b.rig.api().offer(pend);
            at(b, "tx_burst", ring_kind::tx, q);
            k = b.p.tx_burst(q, pend);
            if (k > pend.size()) {
                b.v.fail("txq %u: tx_burst returned %u for %zu buffers", q, k, pend.size());
                k = static_cast<std::uint16_t>(pend.size());
            }
            b.rig.api().not_accepted(std::span(pend).subspan(k));
            b.accepted.insert(b.accepted.end(), pend.begin(), pend.begin() + k);
            pend.erase(pend.begin(), pend.begin() + k);
        }
        if (k == 0) {
            const bool more = step(b);
            (void)reap(b, q);
            if (++idle > stuck_rounds || !more) {
                if (!may_stall && more) {
                    stalled(b, "made no progress for %u device steps (%llu of %llu sent)",
                            stuck_rounds, ull(built - pend.size()), ull(n));
                }
                break;
            }
        } else {
            idle = 0;
        }
    }
    b.rig.api().free(pend);
}

// Steps and reaps until queue q has nothing in flight.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::drain(bench& b, std::uint16_t q) {
    for (std::uint32_t i = 0; i < stuck_rounds && b.p.tx_in_flight(q) != 0 && step(b); ++i) {
        (void)reap(b, q);
    }
    if (b.p.tx_in_flight(q) != 0 && b.v.ok) {
        stalled(b, "left %u buffers in flight after %u device steps", b.p.tx_in_flight(q),
                stuck_rounds);
    }
}

// One rx_burst: delivered buffers are checked by the guest sink and freed.
template <template <class> class Plugin, class Rig>
std::uint16_t conformance<Plugin, Rig>::poll_once(bench& b, std::uint16_t q,
                                                  std::uint16_t budget) {
    std::array<buffer_type, 256> out{};
    at(b, "rx_burst", ring_kind::rx, q);
    const std::uint16_t k = b.p.rx_burst(q, std::span(out).first(budget));
    const std::uint16_t n = k > budget ? budget : k;
    b.rig.api().received(std::span(out).first(n));
    for (std::uint16_t i = 0; i < n; ++i) {
        (void)b.rig.guest_sink().record(std::span<const std::byte>(out[i].data(), out[i].length()));
    }
    b.rig.api().free(std::span(out).first(n));
    return k;
}

// Polls queue q until `total` packets were received on it in all (or `more` more).
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::receive(bench& b, std::uint16_t q, std::uint64_t total,
                                       std::uint16_t budget, bool check_full, std::uint64_t more) {
    std::uint64_t got = b.p.stats(q).rx_packets;
    const std::uint64_t want = more != 0 ? got + more : total;
    std::uint32_t idle = 0;
    while (got < want && b.v.ok && step(b)) {
        const std::uint16_t k = poll_once(b, q, budget);
        if (k > budget) {
            b.v.fail("rxq %u: rx_burst returned %u, more than its budget %u", q, k, budget);
        }
        // Progress is a packet counted, not a burst that returned something: a poll that
        // hands out buffers without counting them (a stale completion seen again) is none.
        const std::uint64_t before = got;
        got = b.p.stats(q).rx_packets;
        if (check_full && k < budget) {  // the poll drained the ring: all refilled
            b.rig.step();
            expect_ring_full(b, q, "after an rx_burst");
        }
        idle = got == before ? idle + 1 : 0;
        if (idle > stuck_rounds) {
            stalled(b, "made no progress for %u device steps (%llu of %llu packets received)",
                    stuck_rounds, ull(got), ull(want));
        }
    }
}

// Detach, then prove: the device saw no driver error, every hand-over was legal, and
// every buffer is back in the pool.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::finish(bench& b) {
    if (!b.rig.ok()) {
        return;
    }
    if (b.attached) {
        at(b, "detach", ring_kind::tx, 0);
        b.p.detach();
        b.attached = false;
    }
    run_after_detach(b);  // the device lives on (dma_check.hpp)
    // The causes (a driver error the device caught, an illegal hand-over) come first,
    // the symptoms the checks saw (stalls, losses) after them.
    verdict first;
    for (const std::string& m : b.rig.violations()) {
        first.fail("device: %s", m.c_str());
    }
    for (const std::string& m : b.rig.api().error_messages()) {
        first.fail("shell API: %s", m.c_str());
    }
    for (const std::string& m : b.released_dma) {
        first.fail("device: %s", m.c_str());
    }
    if (b.released_dma_more != 0) {
        first.fail("device: %llu more DMAs into or from released buffers",
                   ull(b.released_dma_more));
    }
    if (!b.v.ok) {
        first.fail("%s", b.v.message.c_str());
    }
    b.v = first;
    const buffer_audit before = b.rig.api().audit();
    if (before.with_plugin != 0) {
        b.v.fail("detach: the plugin still holds %u buffers (never handed back through "
                 "tx_complete, tx_unsent or release_rx_buffers)", before.with_plugin);
    }
    auto unsent = b.rig.api().take_unsent();
    b.rig.api().free(unsent);
    const buffer_audit a = b.rig.api().audit();
    if (a.in_pool != a.total || a.pool_available != a.total) {
        b.v.fail("audit: %u of %u buffers are back in the pool (%u with the caller, %u with "
                 "the plugin)", a.in_pool, a.total, a.with_caller, a.with_plugin);
    }
}

} // namespace npa::sim
