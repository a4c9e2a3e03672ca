// npa/sim/conformance.hpp: the plugin conformance kit, header-only, with no test framework.
//
// Parameterised by (plugin, device model): the plugin is a class template over the shell
// API, the device model comes as a rig (simnic_rig.hpp shows the members a rig has). Every
// check returns a verdict whose message says what went wrong: the device's violation (ring,
// slot, rule), the shell API's ownership error (buffer, who held it), or the audit after
// detach (how many buffers the plugin never handed back). The tests of the kit itself use
// that to show that deliberately broken plugins are caught.
//
// Three ways to run it:
//   - every check and hostile case, outcomes to a reporter of your own, or to the printing
//     one here (no test framework needed):
//         int main() { return npa::sim::conformance<my_plugin, my_rig>::run_all() == 0 ? 0 : 1; }
//   - one check: npa::sim::conformance<P, Rig>::tx_all_completed() and so on;
//   - as doctest test cases, with conformance_doctest.hpp:
//         NPA_SIM_CONFORMANCE_SUITE(my_plugin, my_rig)
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/test_api.hpp>
#include <npa/sim/traffic.hpp>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace npa::sim {

/// The outcome of one conformance check: ok, or the first failure and any that followed.
struct verdict {
    bool ok = true;
    std::string message;

    void fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        va_list ap, ap2;
        va_start(ap, fmt);
        va_copy(ap2, ap);
        const int len = std::vsnprintf(nullptr, 0, fmt, ap);
        va_end(ap);
        std::string buf(len > 0 ? static_cast<std::size_t>(len) + 1 : 1, '\0');
        std::vsnprintf(buf.data(), buf.size(), fmt, ap2);
        va_end(ap2);
        buf.pop_back();
        message += ok ? "" : "\n  then: ";
        message += buf;
        ok = false;
    }
};

/// What a hostile-device case must show besides "no buffer lost, nothing out of bounds".
enum class detect : std::uint8_t {
    bad_completion,  ///< the plugin counted bad_completion
    tx_dma_error,    ///< every TX buffer came back; the far end lost no more than the faults
    rx_dma_error,    ///< the plugin counted rx_dropped for the buffers the device could not fill
    all_completed,   ///< nothing to detect (a delay), but every TX buffer came back completed
    rx_in_order,     ///< nothing to detect (a delay): RX lost only what the device dropped, in order
    link_loss,       ///< the far end lost exactly what the device could not send
    device_error,    ///< health() says device_error (health() is required for this case)
    removed,         ///< health() says removed (health() is required for this case)
    rx_flood,        ///< the device dropped for lack of buffers, the plugin counted rx_no_buffer
};

/// Which way traffic runs while the fault is planned.
enum class hostile_traffic : std::uint8_t {
    both,     ///< TX and RX every round
    tx_only,  ///< TX only, so a fault of any buffer DMA lands on TX
    rx_only,  ///< RX only, so a fault of any buffer DMA lands on RX
};

struct hostile_case {
    const char* name;
    fault_plan plan;
    detect expect;
    hostile_traffic traffic = hostile_traffic::both;
    /// The case needs RX completion drop/delay/reorder from the device: run only on rigs
    /// that declare `static constexpr bool rx_completion_faults = true`.
    bool rx_completion_fault = false;
};

/// True when Rig's device honours the RX completion faults of fault_plan.
template <class Rig>
inline constexpr bool rig_has_rx_completion_faults = requires { requires Rig::rx_completion_faults; };

/// The hostile-device cases of the kit (the fault injection list), in one table.
inline std::span<const hostile_case> hostile_cases() {
    auto corrupt = [](comp_fault f, ring_kind r, std::uint32_t n) {
        fault_plan p;
        p.corrupt = f;
        p.corrupt_ring = r;
        p.corrupt_count = n;
        return p;
    };
    auto with = [](auto set) {
        fault_plan p;
        set(p);
        return p;
    };
    constexpr auto rx_only = hostile_traffic::rx_only;
    constexpr auto tx_only = hostile_traffic::tx_only;
    static const std::array<hostile_case, 22> cases{{
        {"dropped TX completions", with([](fault_plan& p) { p.drop_tx_completions = 3; }), detect::bad_completion},
        {"delayed TX completions", with([](fault_plan& p) { p.delay_tx_steps = 5; }), detect::all_completed},
        {"reordered TX completions", with([](fault_plan& p) { p.reorder_tx_completions = 2; }), detect::bad_completion},
        {"dropped RX completions", with([](fault_plan& p) { p.drop_rx_completions = 3; }), detect::bad_completion, rx_only, true},
        {"delayed RX completions", with([](fault_plan& p) { p.delay_rx_steps = 5; }), detect::rx_in_order, rx_only, true},
        {"reordered RX completions", with([](fault_plan& p) { p.reorder_rx_completions = 2; }), detect::bad_completion, rx_only, true},
        {"TX completion index out of range", corrupt(comp_fault::index_out_of_range, ring_kind::tx, 2), detect::bad_completion},
        {"RX completion index out of range", corrupt(comp_fault::index_out_of_range, ring_kind::rx, 2), detect::bad_completion},
        {"RX completion length larger than the buffer", corrupt(comp_fault::length_too_large, ring_kind::rx, 2), detect::bad_completion},
        {"TX completion generation bit out of order", corrupt(comp_fault::gen_out_of_order, ring_kind::tx, 1), detect::bad_completion},
        {"RX completion generation bit out of order", corrupt(comp_fault::gen_out_of_order, ring_kind::rx, 1), detect::bad_completion},
        {"TX completion for a descriptor never posted", corrupt(comp_fault::never_posted, ring_kind::tx, 2), detect::bad_completion},
        {"RX completion for a descriptor never posted", corrupt(comp_fault::never_posted, ring_kind::rx, 2), detect::bad_completion},
        {"TX double completion", corrupt(comp_fault::double_completion, ring_kind::tx, 2), detect::bad_completion},
        {"RX double completion", corrupt(comp_fault::double_completion, ring_kind::rx, 2), detect::bad_completion},
        {"TX DMA faults", with([](fault_plan& p) { p.dma_faults = 4; }), detect::tx_dma_error, tx_only},
        {"RX DMA faults", with([](fault_plan& p) { p.dma_faults = 4; }), detect::rx_dma_error, rx_only},
        {"link flap", with([](fault_plan& p) { p.link_down_steps = 3; }), detect::link_loss},
        {"device reset", with([](fault_plan& p) { p.reset_after_tx = 10; }), detect::device_error},
        {"surprise removal in the middle of a burst", with([](fault_plan& p) { p.remove_after_tx = 10; }), detect::removed},
        {"RX flood with no buffers posted", fault_plan{}, detect::rx_flood},
        {"no fault (control case)", fault_plan{}, detect::all_completed},
    }};
    return cases;
}

/// The outcome of one check, or of one hostile-device case, as a reporter sees it.
struct conformance_result {
    const char* check;         ///< the check's name
    const char* hostile_case;  ///< the hostile-device case, or nullptr
    verdict v;
    bool skipped = false;      ///< the case does not apply to this rig (v.message says why)
};

/// A reporter with no test framework: one line per failure or skip on stderr, a count of
/// each kind for summary().
struct print_reporter {
    std::uint32_t passed = 0, failed = 0, skipped = 0;

    void operator()(const conformance_result& r) {
        const char* sep = r.hostile_case != nullptr ? ": " : "";
        const char* hc = r.hostile_case != nullptr ? r.hostile_case : "";
        if (r.skipped) {
            ++skipped;
            std::fprintf(stderr, "conformance: %s%s%s: %s\n", r.check, sep, hc, r.v.message.c_str());
        } else if (!r.v.ok) {
            ++failed;
            std::fprintf(stderr, "conformance FAILED: %s%s%s: %s\n", r.check, sep, hc,
                         r.v.message.c_str());
        } else {
            ++passed;
        }
    }
    void summary() const {
        std::printf("conformance: %u passed, %u failed, %u not run\n", passed, failed, skipped);
    }
};

template <template <class> class Plugin, class Rig>
class conformance {
public:
    using api_type = typename Rig::api_type;
    using plugin_type = Plugin<api_type>;
    using buffer_type = typename api_type::buffer_type;
    static_assert(check_plugin<plugin_type, api_type>());

    /// TX bursts are this long (a typical rte_eth_tx_burst size).
    static constexpr std::uint32_t burst = 32;
    /// Rounds without progress after which a queue is declared stuck (a round steps the
    /// device once, so this is device time, never wall-clock time).
    static constexpr std::uint32_t stuck_rounds = 200;

    /// One check of the kit by name (the hostile-device cases are run by hostile()).
    struct named_check {
        const char* name;
        verdict (*run)();
    };
    static constexpr std::array<named_check, 8> checks() noexcept {
        return {{
            {"attach posts RX, detach returns all", &attach_detach},
            {"TX of N packets all completed", &tx_all_completed},
            {"RX refill keeps the ring full", &rx_refill_keeps_ring_full},
            {"ring wrap over many generations", &ring_wrap},
            {"full TX ring gives a short count", &tx_ring_full_short_count},
            {"empty pool stops RX refill", &empty_pool_stops_refill},
            {"detach returns every buffer", &detach_returns_every_buffer},
            {"interrupts follow NAPI", &napi_budget},
        }};
    }

    /// Runs every check, then every hostile case that applies to the rig, and hands each
    /// outcome to `report` (any callable taking a conformance_result). Returns the number
    /// of failures.
    template <class Report>
    static std::uint32_t run_all(Report&& report) {
        std::uint32_t failed = 0;
        for (const named_check& c : checks()) {
            const conformance_result r{c.name, nullptr, c.run(), false};
            failed += r.v.ok ? 0 : 1;
            report(r);
        }
        for (const hostile_case& hc : hostile_cases()) {
            conformance_result r{"hostile device", hc.name, {}, !runs(hc)};
            if (r.skipped) {
                r.v.message = "not run: the device model has no such fault";
            } else {
                r.v = hostile(hc);
            }
            failed += r.v.ok ? 0 : 1;
            report(r);
        }
        return failed;
    }
    /// The same, printed (print_reporter).
    static std::uint32_t run_all() {
        print_reporter p;
        const std::uint32_t failed = run_all(p);
        p.summary();
        return failed;
    }

    // ---- 1. attach posts RX buffers; detach returns every buffer ------------------------
    static verdict attach_detach() {
        bench b{{}};
        if (attach(b)) {
            b.rig.step();
            for (std::uint16_t q = 0; q < b.rig.cfg().queues; ++q) {
                expect_ring_full(b, q, "after attach");
            }
        }
        finish(b);
        return b.v;
    }

    // ---- 2. TX of N packets per queue: all completed, returned, received in order -------
    static verdict tx_all_completed() {
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

    // ---- 3. RX: every burst refills, so the device always has a full ring ---------------
    static verdict rx_refill_keeps_ring_full() {
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

    // ---- 4. ring wrap: many generations both ways on small rings ------------------------
    static verdict ring_wrap() {
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
    static verdict tx_ring_full_short_count() {
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
                const std::uint16_t m = b.p.tx_burst(0, rest);
                b.rig.api().not_accepted(std::span(rest).subspan(m));
                rest.erase(rest.begin(), rest.begin() + m);
                if (m == 0 && ++b.idle > stuck_rounds) {
                    b.v.fail("txq 0: the ring never drained after it was full");
                }
            }
            b.rig.api().free(rest);
            drain(b, 0);
            expect_flow(b, b.rig.far_report(5, got), "far end, guest TX", 0);
        }
        finish(b);
        return b.v;
    }

    // ---- 6. an empty pool stops RX refill, counted; refill resumes when buffers return --
    static verdict empty_pool_stops_refill() {
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

    // ---- 7. detach returns every buffer: completed, unsent (in order), RX --------------
    static verdict detach_returns_every_buffer() {
        bench b{{}};
        if (attach(b)) {
            send(b, 0, 9, 40);  // accepted, device not stepped
            b.rig.step();       // the device sends them and writes completions, unreaped
            send(b, 0, 9, 50);  // accepted, never fetched by the device
            b.rig.far_send(b.rig.flow_for_queue(0), 20);
            b.rig.step();       // RX completions written, not yet delivered
            b.p.detach();
            b.attached = false;
            const auto& unsent = b.rig.api().unsent();
            const auto& acc = b.accepted;
            if (unsent.size() > acc.size() ||
                !std::equal(unsent.begin(), unsent.end(), acc.end() - static_cast<std::ptrdiff_t>(unsent.size()))) {
                b.v.fail("detach: tx_unsent did not hand back the unconfirmed buffers in the order "
                         "they were accepted (%zu unsent of %zu accepted)", unsent.size(), acc.size());
            }
        }
        finish(b);
        return b.v;
    }

    // ---- 8. interrupts follow the NAPI contract -----------------------------------------
    static verdict napi_budget() {
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

    // ---- 9. hostile device: detected, counted, nothing lost, nothing out of bounds -----
    /// Whether the case applies to this rig (RX completion faults need a device that has them).
    static constexpr bool runs(const hostile_case& hc) noexcept {
        return !hc.rx_completion_fault || rig_has_rx_completion_faults<Rig>;
    }

    static verdict hostile(const hostile_case& hc) {
        typename Rig::config c;
        c.queues = 1;
        c.tx_ring = c.rx_ring = 64;
        bench b{c};
        if (!runs(hc)) {
            b.v.fail("%s: %s does not declare rx_completion_faults, so it cannot show this fault",
                     hc.name, Rig::device_name);
            return b.v;
        }
        if (!attach(b)) {
            finish(b);
            return b.v;
        }
        const std::uint32_t rx_flow = b.rig.flow_for_queue(0);
        constexpr std::uint32_t tx_flow = 11;
        const std::uint64_t n = 3 * 64;
        // Warm up, then turn the device hostile and run traffic through it.
        send(b, 0, tx_flow, 16);
        b.rig.far_send(rx_flow, 16);
        receive(b, 0, 16, burst, false);
        drain(b, 0);
        if (hc.expect == detect::rx_flood) {  // no buffers: let the posted ones be used up, then flood
            b.rig.api().set_empty_pool(true);
            b.rig.far_send(rx_flow, 64);
            receive(b, 0, 16 + 64, burst, false);
            b.rig.far_send(rx_flow, 10 * 64);
            b.rig.step(3);
        }
        const queue_stats st0 = b.p.stats(0);
        const std::uint64_t no_desc0 = b.rig.device_rx_no_desc(0);
        const std::uint64_t rx_sent0 = b.rig.far_sent(rx_flow);
        b.rig.inject(hc.plan);
        for (std::uint64_t i = 0; i < n; i += burst) {
            if (hc.traffic != hostile_traffic::rx_only) {
                send(b, 0, tx_flow, burst, /*may_stall=*/true);
            }
            if (hc.traffic != hostile_traffic::tx_only) {
                b.rig.far_send(rx_flow, burst);
            }
            for (int r = 0; r < 3; ++r) {
                b.rig.step();
                (void)poll_once(b, 0, burst);
                (void)b.p.tx_reap(0);
            }
        }
        for (std::uint32_t r = 0; r < 20; ++r) {  // let delays run out
            b.rig.step();
            (void)poll_once(b, 0, burst);
            (void)b.p.tx_reap(0);
        }
        const queue_stats& st = b.p.stats(0);
        const auto tx_sent = b.rig.far_report(tx_flow, b.accepted.size());
        const auto rx_got = b.rig.guest_sink().report(rx_flow, b.rig.far_sent(rx_flow));
        switch (hc.expect) {
        case detect::bad_completion:
            if (st.bad_completion == st0.bad_completion) {
                b.v.fail("%s: not detected (bad_completion stayed %llu)", hc.name, ull(st.bad_completion));
            }
            break;
        case detect::tx_dma_error:
            expect_all_completed(b, hc);
            if (tx_sent.lost == 0 || tx_sent.lost > hc.plan.dma_faults) {
                b.v.fail("%s: the far end lost %llu frames; %u buffer reads were made to fail",
                         hc.name, ull(tx_sent.lost), hc.plan.dma_faults);
            }
            if (st.tx_errors != st0.tx_errors && st.tx_errors - st0.tx_errors != tx_sent.lost) {
                b.v.fail("%s: tx_errors counted %llu, the far end lost %llu", hc.name,
                         ull(st.tx_errors - st0.tx_errors), ull(tx_sent.lost));
            }
            break;
        case detect::rx_dma_error:
            if (st.rx_dropped == st0.rx_dropped || st.rx_dropped - st0.rx_dropped > hc.plan.dma_faults) {
                b.v.fail("%s: rx_dropped counted %llu; %u buffer writes were made to fail",
                         hc.name, ull(st.rx_dropped - st0.rx_dropped), hc.plan.dma_faults);
            }
            break;
        case detect::all_completed:
            expect_all_completed(b, hc);
            if (tx_sent.lost + tx_sent.duplicates + tx_sent.corrupt != 0) {
                b.v.fail("%s: far end lost %llu, duplicated %llu, corrupt %llu", hc.name,
                         ull(tx_sent.lost), ull(tx_sent.duplicates), ull(tx_sent.corrupt));
            }
            break;
        case detect::rx_in_order: {
            const std::uint64_t dropped = b.rig.device_rx_no_desc(0) - no_desc0;
            if (rx_got.duplicates + rx_got.reordered != 0 || rx_got.lost != dropped) {
                b.v.fail("%s: of %llu sent, %llu lost (the device dropped %llu for want of a "
                         "buffer), %llu duplicated, %llu reordered", hc.name,
                         ull(b.rig.far_sent(rx_flow) - rx_sent0), ull(rx_got.lost), ull(dropped),
                         ull(rx_got.duplicates), ull(rx_got.reordered));
            }
            if (st.bad_completion != st0.bad_completion) {
                b.v.fail("%s: a late but valid completion was counted as bad_completion", hc.name);
            }
            break;
        }
        case detect::link_loss:
            if (tx_sent.lost != b.rig.device_tx_not_sent(0) || tx_sent.lost == 0) {
                b.v.fail("%s: far end lost %llu frames, the device dropped %llu on the down link",
                         hc.name, ull(tx_sent.lost), ull(b.rig.device_tx_not_sent(0)));
            }
            break;
        case detect::device_error:
        case detect::removed:
            if constexpr (reports_health<plugin_type>) {
                const errc want = hc.expect == detect::removed ? errc::removed : errc::device_error;
                // A plugin that can tell a reset from other failures may say so.
                const bool reset_seen =
                    b.p.health() == errc::reset && std::string_view(hc.name) == "device reset";
                if (b.p.health() != want && !reset_seen) {
                    b.v.fail("%s: health() says '%s', expected '%s'", hc.name,
                             to_string(b.p.health()), to_string(want));
                }
            } else {
                b.v.fail("%s: the plugin has no health(), so it cannot report that the device "
                         "went away; the kit requires health() (npa::reports_health) for this "
                         "case", hc.name);
            }
            break;
        case detect::rx_flood:
            if (b.rig.device_rx_no_desc(0) == 0 || st.rx_no_buffer == 0) {
                b.v.fail("%s: device drops %llu, plugin rx_no_buffer %llu (both must count)",
                         hc.name, ull(b.rig.device_rx_no_desc(0)), ull(st.rx_no_buffer));
            }
            b.rig.api().set_empty_pool(false);  // buffers come back: RX recovers
            (void)poll_once(b, 0, 0);
            b.rig.step();
            const std::uint64_t before = b.rig.guest_sink().received(rx_flow);
            b.rig.far_send(rx_flow, 8);
            receive(b, 0, 0, burst, false, 8);
            if (b.rig.guest_sink().received(rx_flow) != before + 8) {
                b.v.fail("%s: RX did not recover once buffers were available", hc.name);
            }
            break;
        }
        if (rx_got.corrupt != 0 || tx_sent.corrupt != 0) {
            b.v.fail("%s: corrupt payload delivered", hc.name);
        }
        finish(b);
        return b.v;
    }

private:
    struct bench {
        explicit bench(const typename Rig::config& c) : rig(c) {}
        Rig rig;
        plugin_type p{};
        bool attached = false;
        std::uint32_t idle = 0;
        verdict v{};
        std::vector<buffer_type> accepted;  // TX buffers in the order tx_burst accepted them
    };

    static unsigned long long ull(std::uint64_t x) noexcept { return x; }

    static bool attach(bench& b) {
        if (!b.rig.ok()) {
            b.v.fail("rig: %s", b.rig.error());
            return false;
        }
        const status st = b.p.attach(b.rig.api(), b.rig.window(), b.rig.queue_cfg());
        if (!st) {
            b.v.fail("attach to %s failed: %s", Rig::device_name, st.reason());
            return false;
        }
        b.attached = true;
        return true;
    }

    static void expect_ring_full(bench& b, std::uint16_t q, const char* when) {
        const std::uint32_t posted = b.rig.device_rx_posted(q);
        if (posted != b.rig.cfg().rx_ring) {
            b.v.fail("rxq %u: the device holds %u RX buffers %s, the ring has %u slots", q,
                     posted, when, b.rig.cfg().rx_ring);
        }
    }

    static void expect_all_completed(bench& b, const hostile_case& hc) {
        if (b.p.tx_in_flight(0) != 0 || b.rig.api().tx_completed(0) != b.accepted.size()) {
            b.v.fail("%s: %llu of %zu TX buffers completed", hc.name,
                     ull(b.rig.api().tx_completed(0)), b.accepted.size());
        }
    }

    static void expect_flow(bench& b, const flow_report& r, const char* where, std::uint16_t q) {
        if (r.lost + r.duplicates + r.reordered + r.corrupt != 0) {
            b.v.fail("queue %u, %s: of %llu sent, %llu lost, %llu duplicated, %llu reordered, "
                     "%llu corrupt", q, where, ull(r.sent), ull(r.lost), ull(r.duplicates),
                     ull(r.reordered), ull(r.corrupt));
        }
    }

    // Sends n new frames of `flow` on queue q, retrying what tx_burst did not accept and
    // stepping the device when the ring is full.
    static void send(bench& b, std::uint16_t q, std::uint32_t flow, std::uint64_t n,
                     bool may_stall = false) {
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
                b.rig.step();
                (void)b.p.tx_reap(q);
                if (++idle > stuck_rounds) {
                    if (!may_stall) {
                        b.v.fail("txq %u: no progress for %u device steps (%llu of %llu sent)", q,
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
    static void drain(bench& b, std::uint16_t q) {
        for (std::uint32_t i = 0; i < stuck_rounds && b.p.tx_in_flight(q) != 0; ++i) {
            b.rig.step();
            (void)b.p.tx_reap(q);
        }
        if (b.p.tx_in_flight(q) != 0 && b.v.ok) {
            b.v.fail("txq %u: %u buffers still in flight after %u device steps", q,
                     b.p.tx_in_flight(q), stuck_rounds);
        }
    }

    // One rx_burst: delivered buffers are checked by the guest sink and freed.
    static std::uint16_t poll_once(bench& b, std::uint16_t q, std::uint16_t budget) {
        std::array<buffer_type, 256> out{};
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
    static void receive(bench& b, std::uint16_t q, std::uint64_t total, std::uint16_t budget,
                        bool check_full, std::uint64_t more = 0) {
        std::uint64_t got = b.p.stats(q).rx_packets;
        const std::uint64_t want = more != 0 ? got + more : total;
        std::uint32_t idle = 0;
        while (got < want && b.v.ok) {
            b.rig.step();
            const std::uint16_t k = poll_once(b, q, budget);
            if (k > budget) {
                b.v.fail("rxq %u: rx_burst returned %u, more than its budget %u", q, k, budget);
            }
            got = b.p.stats(q).rx_packets;
            if (check_full && k < budget) {  // the poll drained the ring: all refilled
                b.rig.step();
                expect_ring_full(b, q, "after an rx_burst");
            }
            idle = k == 0 ? idle + 1 : 0;
            if (idle > stuck_rounds) {
                b.v.fail("rxq %u: %llu of %llu packets received, then nothing for %u steps", q,
                         ull(got), ull(want), stuck_rounds);
            }
        }
    }

    // Detach, then prove: the device saw no driver error, every hand-over was legal, and
    // every buffer is back in the pool.
    static void finish(bench& b) {
        if (!b.rig.ok()) {
            return;
        }
        if (b.attached) {
            b.p.detach();
            b.attached = false;
        }
        // The causes (a driver error the device caught, an illegal hand-over) come first,
        // the symptoms the checks saw (stalls, losses) after them.
        verdict first;
        for (const std::string& m : b.rig.violations()) {
            first.fail("device: %s", m.c_str());
        }
        for (const std::string& m : b.rig.api().error_messages()) {
            first.fail("shell API: %s", m.c_str());
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
};

} // namespace npa::sim
