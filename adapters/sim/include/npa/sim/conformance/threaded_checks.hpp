// npa/sim/conformance/threaded_checks.hpp: the device on a thread of its own (part of
// npa/sim/conformance.hpp).
//
// Every other check steps the device on the kit's thread, between two plugin calls, so when
// the plugin looks at a completion it is either all written or not written at all. A real
// device writes while the driver reads: the payload by DMA, then the completion's fields
// (length, index, tag), then its done (generation) bit with release ordering. These checks
// run the rig's device on its own thread (device_model::start()) with traffic both ways on
// one queue, once at full speed and once with write jitter (device_model::set_write_jitter()):
// the device lands each completion at a random point of one of the plugin's polls (the kit
// counts the rx_burst and tx_reap calls it begins, in bench::polls), its fields one by one
// with short random pauses, the done bit right after the last. The kit polls back to back,
// as a NAPI loop does, and looks at what was delivered only after. The plugin stays on the
// kit's thread. A plugin that reads a completion's fields before it has
// checked the done bit with acquire ordering then delivers a torn completion: fields from
// the slot's previous lap (or from no lap, on the first) under this lap's done bit. The kit
// names it from what it can see:
//   - RX: every frame of these checks has a length of its own (traffic_gen::varied_len of
//     its sequence number), which is the length the device writes in its completion; a
//     frame delivered with another length was read from a torn completion;
//   - either ring: the device writes every completion whole and in order (no fault is
//     planned), so a completion the plugin rejects as bad (stats bad_completion) is one it
//     read before the device had finished writing it.
// Everything the stepped checks prove holds here too: payload, order, nothing lost, every
// buffer back after detach (finish(), with the device stepped on the kit's thread again).
#pragma once

#include <npa/sim/conformance/bench.hpp>
#include <npa/sim/conformance/kit.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <thread>
#include <vector>

namespace npa::sim {

template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::threaded_full_speed() {
    return threaded_traffic(0);
}

template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::threaded_write_jitter() {
    return threaded_traffic(threaded_jitter_spins);
}

template <template <class> class Plugin, class Rig>
verdict conformance<Plugin, Rig>::threaded_traffic(std::uint32_t jitter) {
    if constexpr (!rig_has_device_thread<Rig>) {
        verdict v;
        v.fail("the rig's device() has no start()/stop()/steps()/set_write_jitter() "
               "(device_model, device/base.hpp)");
        return v;
    } else {
        typename Rig::config c;
        c.queues = 1;
        c.tx_ring = c.rx_ring = threaded_ring;
        bench b{c};
        if (attach(b)) {
            // The DMA watch (dma_check.hpp) reads the shell API's books from the device's
            // thread: off while the device runs there, on again for finish().
            watch_dma(b, false);
            b.rig.device().set_write_jitter(jitter, &b.polls);
            b.rig.device().start();
            threaded_run(b);
            b.rig.device().stop();
            b.rig.device().set_write_jitter(0);
            watch_dma(b, true);
            threaded_expect(b);
        }
        finish(b);
        return b.v;
    }
}

// Traffic both ways on queue 0 while the device runs on its own thread: threaded_frames
// sent, threaded_frames received (the far end never more than a quarter ring ahead of the
// guest, so the device always has a buffer). Ends when both are done, at the first torn
// completion, or when nothing moved while the device kept stepping (threaded_stuck_checks
// checks, each after 1024 idle passes: a device thread the scheduler left waiting does not
// count).
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::threaded_run(bench& b) {
    constexpr std::uint16_t q = 0;
    const std::uint64_t n = threaded_frames;
    const std::uint32_t rx_flow = b.rig.flow_for_queue(q);
    const std::uint64_t ahead = threaded_ring / 4;
    std::vector<buffer_type> pend;
    std::vector<buffer_type> held(threaded_ring);
    std::uint64_t sent = 0, far_sent = 0, got = 0;
    std::uint32_t idle = 0, dead = 0;
    std::uint64_t steps_seen = 0;
    while (b.v.ok && (sent < n || got < n || b.p.tx_in_flight(q) != 0)) {
        while (pend.size() < burst && sent + pend.size() < n) {
            buffer_type x{};
            if (b.rig.api().alloc_tx(std::span(&x, 1)) == 0) {
                break;
            }
            b.rig.build_tx(x, threaded_tx_flow);
            pend.push_back(x);
        }
        std::uint16_t k = 0;
        if (!pend.empty()) {
            b.rig.api().offer(pend);
            at(b, "tx_burst", ring_kind::tx, q);
            k = b.p.tx_burst(q, pend);
            k = static_cast<std::uint16_t>(std::min<std::size_t>(k, pend.size()));
            b.rig.api().not_accepted(std::span(pend).subspan(k));
            b.accepted.insert(b.accepted.end(), pend.begin(), pend.begin() + k);
            pend.erase(pend.begin(), pend.begin() + k);
            sent += k;
        }
        // relaxed: the count only times the device's writes (set_write_jitter); it
        // publishes nothing
        b.polls.fetch_add(1, std::memory_order_relaxed);
        const std::uint32_t reaped = reap(b, q);
        if (far_sent < n && far_sent < got + ahead) {
            far_sent +=
                b.rig.far_send_varied(rx_flow, std::min<std::uint64_t>(ahead / 2, n - far_sent));
        }
        // Poll back to back while the device writes, as a NAPI loop does, and look at what
        // came only afterwards: the plugin's loads then meet the device's stores.
        std::uint64_t taken = 0;
        for (std::uint32_t polls = 0; polls < threaded_polls && got + taken < far_sent; ++polls) {
            const std::size_t room = std::min<std::size_t>(burst, held.size() - taken);
            at(b, "rx_burst", ring_kind::rx, q);
            b.polls.fetch_add(1, std::memory_order_relaxed); // relaxed: as above
            const std::uint16_t m = b.p.rx_burst(q, std::span(held).subspan(taken, room));
            taken += std::min<std::size_t>(m, room);
            if (taken == held.size()) {
                break;
            }
        }
        const auto got_now = std::span(held).first(taken);
        b.rig.api().received(got_now);
        for (const buffer_type& x : got_now) {
            expect_whole(b, q, x);
            (void)b.rig.guest_sink().record(std::span<const std::byte>(x.data(), x.length()));
        }
        b.rig.api().free(got_now);
        got += taken;
        expect_no_bad_completion(b, q);
        if (k + taken + reaped != 0) {
            idle = dead = 0;
        } else if (++idle % 1024 == 0) {
            const std::uint64_t s = b.rig.device().steps();
            if (s != steps_seen && ++dead > threaded_stuck_checks) {
                stalled(b,
                        "made no progress while the device, on its own thread, kept "
                        "stepping (%llu of %llu sent, %llu of %llu received, %u in flight)",
                        ull(sent), ull(n), ull(got), ull(n), b.p.tx_in_flight(q));
            }
            steps_seen = s;
        } else if (idle % threaded_yield_every == 0) {
            std::this_thread::yield(); // a loaded machine: let the device run now and then
        }
    }
    b.rig.api().free(pend);
}

// A frame delivered with a length other than the one the device wrote for it.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::expect_whole(bench& b, std::uint16_t q, const buffer_type& x) {
    // The frame's own bytes say which it is (the DMA landed before the completion did):
    // read its header within the buffer, whatever length the plugin gave it.
    const std::span<const std::byte> all(x.data(), x.capacity());
    eth::header h;
    if (!eth::parse(all, h) || h.type != eth::type_sim ||
        all.size() < h.payload_off + traffic_header ||
        traffic_gen::get32(x.data() + h.payload_off) != traffic_magic) {
        return; // not this traffic: the sink counts it
    }
    const std::uint64_t seq = traffic_gen::seq_of(x.data() + h.payload_off);
    const std::uint32_t wrote = traffic_gen::varied_len(seq);
    if (x.length() == wrote) {
        return;
    }
    if (++b.torn == 1) {
        b.v.fail("torn completion: rxq %u delivered a frame (sequence %llu) whose length (%u) "
                 "is not the length the device wrote (%u); a completion field was read "
                 "before the done bit (read the done bit with acquire ordering first)",
                 q, ull(seq), x.length(), wrote);
    }
}

// Bad completions from a device that wrote none.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::expect_no_bad_completion(bench& b, std::uint16_t q) {
    const std::uint64_t bad = b.p.stats(q).bad_completion;
    if (bad != 0 && b.v.ok) {
        b.v.fail("torn completion: queue %u: the plugin rejected %llu completions as bad "
                 "(a slot, tag or length from the slot's previous lap) while the device, on "
                 "its own thread, wrote every completion whole and in order; a completion "
                 "field was read before the done bit (read the done bit with acquire "
                 "ordering first)",
                 q, ull(bad));
    }
}

// After the run: every TX buffer completed and received in order at the far end, every
// RX frame received whole and in order, the counters as the traffic was.
template <template <class> class Plugin, class Rig>
void conformance<Plugin, Rig>::threaded_expect(bench& b) {
    constexpr std::uint16_t q = 0;
    const std::uint64_t n = threaded_frames;
    if (b.torn > 1) {
        b.v.fail("torn completion: %llu frames in all were delivered with a length other than "
                 "the device wrote",
                 ull(b.torn));
    }
    if (!b.v.ok) {
        return; // the cause is named; what follows from it would only repeat it
    }
    expect_flow(b, b.rig.far_report(threaded_tx_flow, n), "far end, guest TX (device thread)", q);
    const std::uint32_t rx_flow = b.rig.flow_for_queue(q);
    expect_flow(b, b.rig.guest_sink().report(rx_flow, b.rig.far_sent(rx_flow)),
                "guest RX (device thread)", q);
    if (b.rig.api().tx_completed(q) != n || b.p.stats(q).tx_packets != n) {
        b.v.fail("txq %u (device thread): %llu of %llu buffers came back through tx_complete, "
                 "stats tx_packets = %llu",
                 q, ull(b.rig.api().tx_completed(q)), ull(n), ull(b.p.stats(q).tx_packets));
    }
    if (b.p.stats(q).rx_packets != n) {
        b.v.fail("rxq %u (device thread): stats rx_packets = %llu, %llu were received", q,
                 ull(b.p.stats(q).rx_packets), ull(n));
    }
}

} // namespace npa::sim
