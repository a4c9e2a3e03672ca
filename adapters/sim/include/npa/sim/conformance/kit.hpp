// npa/sim/conformance/kit.hpp: the conformance class (part of npa/sim/conformance.hpp):
// what a plugin author calls (checks(), run_all(), each check by name) and the bench the
// checks share. The definitions live beside it by job, included at the end of this file:
// bench.hpp (the bench's steps and the audit after detach), dma_check.hpp (the device
// after detach, and DMA into released buffers), lifecycle_checks.hpp, tx_checks.hpp,
// rx_checks.hpp, hostile_check.hpp and threaded_checks.hpp (the device on its own thread);
// watchdog.hpp bounds each case.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/sim/conformance/hostile_cases.hpp>
#include <npa/sim/conformance/report.hpp>
#include <npa/sim/conformance/watchdog.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/test_api.hpp>
#include <npa/sim/traffic.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace npa::sim {

/// True when Rig's device can run on a thread of its own, with completions written field
/// by field (device_model, device/base.hpp): the threaded checks run on it.
template <class Rig>
inline constexpr bool rig_has_device_thread = requires(Rig& r, std::uint32_t spins) {
    r.device().start();
    r.device().stop();
    { r.device().steps() } -> std::convertible_to<std::uint64_t>;
    r.device().set_write_jitter(spins);
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
    /// After detach the device model lives on for this many steps, with this many frames
    /// arriving for every queue, and finishes whatever it still owns: a plugin that took its
    /// buffers back without stopping the device first is caught by the DMA that follows
    /// (dma_check.hpp). A real device may still be finishing a burst when detach returns.
    static constexpr std::uint32_t after_detach_steps = 16;
    static constexpr std::uint64_t after_detach_frames = 8;
    /// DMAs into or from released buffers kept verbatim per check, the first of each ring
    /// (the rest are counted).
    static constexpr std::size_t max_kept_dma = 8;

    /// The threaded checks (threaded_checks.hpp): one queue, rings of this many slots (many
    /// laps, so a field left over from the previous lap is there to be read), this many
    /// frames each way, and in the second check a pause of up to this many spins before
    /// every field the device writes and before the done bit.
    static constexpr std::uint32_t threaded_ring = 64;
    static constexpr std::uint64_t threaded_frames = 2048;
    static constexpr std::uint32_t threaded_jitter_spins = 1024;
    static constexpr std::uint32_t threaded_tx_flow = 11;
    /// rx_burst calls back to back, at most, before the kit looks at what they delivered.
    static constexpr std::uint32_t threaded_polls = 256;
    /// Idle passes of the kit's loop between two yields to the device's thread. Rare, on
    /// purpose: on a machine with fewer free cores than threads the device then runs when
    /// the kit's thread is preempted, at a random point, often inside a poll (where a torn
    /// completion is made), rather than always between two polls (where it never is).
    static constexpr std::uint32_t threaded_yield_every = 64;
    /// Checks (each after 1024 idle passes of the kit's loop, each pass up to threaded_polls
    /// polls) in a row with the device stepping and nothing moving, after which a threaded
    /// check fails as stalled.
    static constexpr std::uint32_t threaded_stuck_checks = 50;

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

    /// The checks with the device on a thread of its own (threaded_checks.hpp); they run
    /// when the rig's device can (rig_has_device_thread).
    static constexpr std::array<named_check, 2> threaded_checks() noexcept {
        return {{
            {"device on its own thread: traffic both ways at full speed", &threaded_full_speed},
            {"device on its own thread: traffic both ways, fields written with jitter",
             &threaded_write_jitter},
        }};
    }
    static constexpr bool runs_threaded = rig_has_device_thread<Rig>;

    /// Runs every check, then every threaded check and every hostile case that applies to
    /// the rig, and hands each outcome to `report` (any callable taking a
    /// conformance_result). Returns the number of failures.
    template <class Report>
    static std::uint32_t run_all(Report&& report) {
        std::uint32_t failed = 0;
        // One outcome: run, or not run (skipped) for the reason `why`.
        auto one = [&](const char* check, const char* hc, bool skipped, const char* why,
                       auto&& run_it) {
            conformance_result r{check, hc, {}, skipped};
            if (skipped) {
                r.v.message = why;
            } else {
                r.v = run_it();
            }
            failed += r.v.ok ? 0 : 1;
            report(r);
        };
        for (const named_check& c : checks()) {
            one(c.name, nullptr, false, "", [&] { return run(c); });
        }
        for (const named_check& c : threaded_checks()) {
            one(c.name, nullptr, !runs_threaded,
                "not run: the rig's device cannot run on a thread of its own",
                [&] { return run(c); });
        }
        for (const hostile_case& hc : hostile_cases()) {
            one("hostile device", hc.name, !runs(hc), "not run: the device model has no such fault",
                [&] { return run(hc); });
        }
        return failed;
    }
    /// One check, or one hostile case, under its watchdog (watchdog.hpp): a case that does
    /// not finish within the deadline ends the process with a message naming it.
    static verdict run(const named_check& c,
                       std::chrono::milliseconds deadline = case_deadline()) {
        return run_watched(c.name, c.run, deadline);
    }
    static verdict run(const hostile_case& hc,
                       std::chrono::milliseconds deadline = case_deadline()) {
        return run_watched(hc.name, [&hc] { return hostile(hc); }, deadline);
    }
    /// The same, printed (print_reporter).
    static std::uint32_t run_all() {
        print_reporter p;
        const std::uint32_t failed = run_all(p);
        p.summary();
        return failed;
    }

    // The checks, one job per header: lifecycle_checks.hpp (1, 7), tx_checks.hpp (2, 4, 5),
    // rx_checks.hpp (3, 6, 8), hostile_check.hpp (9), threaded_checks.hpp (10).
    /// 1. attach posts RX buffers; detach returns every buffer.
    static verdict attach_detach();

    /// 2. TX of N packets per queue: all completed, returned, received in order.
    static verdict tx_all_completed();

    /// 3. RX: every burst refills, so the device always has a full ring.
    static verdict rx_refill_keeps_ring_full();

    /// 4. ring wrap: many generations both ways on small rings.
    static verdict ring_wrap();

    /// 5. a full TX ring returns a short count; the rest stays with the caller.
    static verdict tx_ring_full_short_count();

    /// 6. an empty pool stops RX refill, counted; refill resumes when buffers return.
    static verdict empty_pool_stops_refill();

    /// 7. detach returns every buffer: completed, unsent (in order), RX.
    static verdict detach_returns_every_buffer();

    /// 8. interrupts follow the NAPI contract.
    static verdict napi_budget();

    /// 9. hostile device: one case of hostile_cases() detected, counted, nothing lost,
    /// nothing out of bounds.
    static verdict hostile(const hostile_case& hc);
    /// Whether the case applies to this rig (RX completion faults need a device that has
    /// them, a mismatched tag a device whose completions carry one).
    static constexpr bool runs(const hostile_case& hc) noexcept {
        return (!hc.rx_completion_fault || rig_has_rx_completion_faults<Rig>) &&
               (!hc.completion_tag || rig_has_completion_tags<Rig>);
    }

    /// 10. the device on its own thread: traffic both ways, whole, in order, no torn
    /// completion; at full speed, and with the device's completion writes jittered.
    static verdict threaded_full_speed();
    static verdict threaded_write_jitter();

private:
    struct bench {
        explicit bench(const typename Rig::config& c) : rig(c) { watch_dma(*this, true); }
        ~bench() { watch_dma(*this, false); }
        bench(const bench&) = delete;
        bench& operator=(const bench&) = delete;
        Rig rig;
        plugin_type p{};
        bool attached = false;
        std::uint32_t idle = 0;
        verdict v{};
        std::vector<buffer_type> accepted;  // TX buffers in the order tx_burst accepted them
        // Where the case is, for its watchdog (watchdog.hpp): run_watched's, or its own.
        case_watch own_watch;
        case_watch& watch = current_case_watch != nullptr ? *current_case_watch : own_watch;
        // Device DMA into or from buffers the plugin had handed back (dma_check.hpp).
        std::vector<std::string> released_dma;
        std::uint64_t released_dma_more = 0;
        std::uint64_t torn = 0;  // RX frames delivered with a length the device did not write
        std::atomic<std::uint64_t> polls{0};  // rx_burst and tx_reap calls begun (threaded checks)
    };

    static unsigned long long ull(std::uint64_t x) noexcept { return x; }

    // The bench's steps (bench.hpp).
    static void at(bench& b, const char* call, ring_kind r, std::uint16_t q);
    static bool step(bench& b);
    template <class... Args>
    static void stalled(bench& b, const char* fmt, Args... args);
    static std::uint32_t reap(bench& b, std::uint16_t q);
    static bool attach(bench& b);
    static void expect_ring_full(bench& b, std::uint16_t q, const char* when);
    static void expect_all_completed(bench& b, const hostile_case& hc);
    static void expect_flow(bench& b, const flow_report& r, const char* where, std::uint16_t q);
    static void send(bench& b, std::uint16_t q, std::uint32_t flow, std::uint64_t n,
                     bool may_stall = false);
    static void drain(bench& b, std::uint16_t q);
    static std::uint16_t poll_once(bench& b, std::uint16_t q, std::uint16_t budget);
    static void receive(bench& b, std::uint16_t q, std::uint64_t total, std::uint16_t budget,
                        bool check_full, std::uint64_t more = 0);
    static void finish(bench& b);
    // The device on its own thread (threaded_checks.hpp).
    static verdict threaded_traffic(std::uint32_t jitter);
    static void threaded_run(bench& b);
    static void threaded_expect(bench& b);
    static void expect_whole(bench& b, std::uint16_t q, const buffer_type& x);
    static void expect_no_bad_completion(bench& b, std::uint16_t q);
    // DMA after detach (dma_check.hpp).
    static void watch_dma(bench& b, bool on) noexcept;
    static void on_dma(void* ctx, iova_t iova, std::size_t len, bool write) noexcept;
    static void run_after_detach(bench& b);
};

} // namespace npa::sim

#include <npa/sim/conformance/bench.hpp>
#include <npa/sim/conformance/dma_check.hpp>
#include <npa/sim/conformance/hostile_check.hpp>
#include <npa/sim/conformance/lifecycle_checks.hpp>
#include <npa/sim/conformance/rx_checks.hpp>
#include <npa/sim/conformance/threaded_checks.hpp>
#include <npa/sim/conformance/tx_checks.hpp>
// A plugin type that fails check_plugin gets this specialization instead of the checks.
#include <npa/sim/conformance/rejected.hpp>
