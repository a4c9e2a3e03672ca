// npa/sim/conformance/hostile_check.hpp: the hostile-device check (part of
// npa/sim/conformance.hpp): one case of hostile_cases() on one queue with 64-entry rings,
// warm-up traffic, then the fault planned while traffic runs, then what the case must show
// and the audit every case ends with.
#pragma once

#include <npa/sim/conformance/bench.hpp>
#include <npa/sim/conformance/hostile_cases.hpp>
#include <npa/sim/conformance/kit.hpp>

#include <cstdint>
#include <string_view>

namespace npa::sim {

// ---- 9. hostile device: detected, counted, nothing lost, nothing out of bounds ---------
template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::hostile(const hostile_case& hc) {
    typename Rig::config c;
    c.queues = 1;
    c.tx_ring = c.rx_ring = 64;
    bench b{c};
    if (!runs(hc)) {
        b.v.fail("%s: %s does not declare %s, so it cannot show this fault", hc.name,
                 Rig::device_name, hc.completion_tag ? "completion_tags" : "rx_completion_faults");
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
            (void)reap(b, 0);
        }
    }
    for (std::uint32_t r = 0; r < 20; ++r) {  // let delays run out
        // Then let time pass, a second a round, for a plugin that bounds its waits by the
        // shell's clock (the rig's test_api has one that moves only when told to): what a
        // device never completes is given up at the plugin's bound.
        if constexpr (requires { b.rig.api().advance_clock(std::uint64_t{1}); }) {
            if (r >= 10) {
                b.rig.api().advance_clock(1'000'000'000);
            }
        }
        b.rig.step();
        (void)poll_once(b, 0, burst);
        (void)reap(b, 0);
    }
    const queue_stats& st = b.p.stats(0);
    const auto tx_sent = b.rig.far_report(tx_flow, b.accepted.size());
    const auto rx_got = b.rig.guest_sink().report(rx_flow, b.rig.far_sent(rx_flow));
    detect expect = hc.expect;
    if constexpr (rig_has_tx_completion_batches<Rig>) {
        if (hc.plan.reorder_tx_completions != 0) {
            expect = detect::all_completed; // a batch, read as the spec allows
        }
    }
    if constexpr (rig_has_tx_done_bits<Rig>) {
        if (hc.plan.corrupt == comp_fault::index_out_of_range && hc.plan.corrupt_ring == ring_kind::tx) {
            expect = detect::all_completed; // a head register no completion depends on
        }
    }
    const bool skipped = hc.plan.corrupt == comp_fault::gen_out_of_order && hc.plan.corrupt_count != 0;
    if constexpr (rig_has_any_order_completions<Rig>) {
        if (hc.plan.reorder_tx_completions != 0) {
            expect = detect::all_completed; // used in another order, legal
        } else if (hc.plan.reorder_rx_completions != 0) {
            expect = detect::rx_any_order;
        } else if (hc.plan.drop_tx_completions != 0 || hc.plan.drop_rx_completions != 0 || skipped) {
            expect = detect::held_back;
        }
    }
    if constexpr (rig_has_unannounced_batches<Rig>) {
        // The next completion reads as a batch that takes the dropped buffer with it; the
        // driver then skips more positions than the device moved, and what it finds there
        // depends on what follows: completions go on or stop, nothing is refused.
        if (hc.plan.drop_tx_completions != 0 || skipped) {
            expect = detect::held_back;
        }
    }
    if constexpr (rig_has_rx_pass_over<Rig>) {
        if (hc.plan.drop_rx_completions != 0) {
            expect = detect::rx_passed_over;
        }
    }
    switch (expect) {
    case detect::bad_completion:
        if (st.bad_completion == st0.bad_completion) {
            b.v.fail("%s: not detected (bad_completion stayed %llu)", hc.name, ull(st.bad_completion));
        }
        break;
    case detect::wrong_buffer:
        if (st.bad_completion == st0.bad_completion) {
            b.v.fail("%s: not detected (bad_completion stayed %llu): a TX completion named a "
                     "slot the plugin had posted, but its tag named another buffer; the TX reap "
                     "checks the ring index but not the buffer tag the completion carries",
                     hc.name, ull(st.bad_completion));
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
    case detect::rx_in_order:
    case detect::rx_passed_over:
    case detect::rx_any_order: { // a delay, or a reorder the ring allows: nothing refused
        const std::uint64_t dropped = b.rig.device_rx_no_desc(0) - no_desc0 +
                                      (expect == detect::rx_passed_over ? hc.plan.drop_rx_completions : 0);
        const std::uint64_t reordered = expect != detect::rx_any_order ? rx_got.reordered : 0;
        if (rx_got.duplicates + reordered != 0 || rx_got.lost != dropped) {
            b.v.fail("%s: of %llu sent, %llu lost (the device dropped %llu for want of a "
                     "buffer or with its completion), %llu duplicated, %llu reordered%s", hc.name,
                     ull(b.rig.far_sent(rx_flow) - rx_sent0), ull(rx_got.lost), ull(dropped),
                     ull(rx_got.duplicates), ull(rx_got.reordered),
                     expect == detect::rx_any_order ? " (reordering allowed)" : "");
        }
        if (st.bad_completion != st0.bad_completion) {
            b.v.fail("%s: a late or reordered but valid completion was counted as bad_completion",
                     hc.name);
        }
        break;
    }
    case detect::held_back: {
        if (st.bad_completion != st0.bad_completion) {
            b.v.fail("%s: bad_completion counted %llu, but nothing on the ring was wrong",
                     hc.name, ull(st.bad_completion - st0.bad_completion));
        }
        // A dropped completion: the device sent every TX frame (only completions are
        // missing). A skipped used position: the device's later used descriptors land one
        // position ahead, over buffers the driver made available and the device has not
        // read yet, so both sides stop and up to a ring of TX frames never goes out. RX
        // loses at most what the device dropped plus the buffers it filled and never
        // showed used.
        const std::uint64_t tx_may_lose = skipped ? std::uint64_t{c.tx_ring} : 0;
        if (tx_sent.lost > tx_may_lose || tx_sent.duplicates != 0) {
            b.v.fail("%s: the far end lost %llu (at most %llu may be) and duplicated %llu TX "
                     "frames", hc.name, ull(tx_sent.lost), ull(tx_may_lose), ull(tx_sent.duplicates));
        }
        const std::uint64_t dropped = b.rig.device_rx_no_desc(0) - no_desc0;
        if (rx_got.duplicates != 0 || rx_got.lost > dropped + c.rx_ring) {
            b.v.fail("%s: RX lost %llu (the device dropped %llu, the ring holds %u), "
                     "duplicated %llu", hc.name, ull(rx_got.lost), ull(dropped), static_cast<unsigned>(c.rx_ring),
                     ull(rx_got.duplicates));
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
    // TX a completion passed over was taken by the device and may have gone out: it is
    // completed (tx_complete, counted in tx_errors), never handed back for sending again.
    if (!b.rig.api().unsent().empty()) {
        b.v.fail("%s: %zu TX buffers handed back through tx_unsent while attached (the "
                 "device took them: a completion that passes over them completes them)",
                 hc.name, b.rig.api().unsent().size());
    }
    finish(b);
    return b.v;
}

} // namespace npa::sim
