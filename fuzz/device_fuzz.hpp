// fuzz/device_fuzz.hpp: a plugin against a hostile device, decided byte by byte.
//
// DESIGN.md section 3: a plugin trusts nothing the device writes. Each input is a program
// over one (plugin, sim device model) rig: guest TX and RX bursts, frames from the far
// end, device steps, fault plans (dropped, delayed, reordered and corrupted completions,
// DMA errors, link flaps, resets, surprise removal), detach and re-attach, interrupt
// arming, and raw writes of fuzzer bytes into the memory the device is allowed to write
// (completion and write-back descriptors: generation and DD bits, lengths, indices, tags,
// status), and register values the fuzzer chooses (head indices, enable and status bits,
// interrupt causes, command results, mailbox words) through the model's register_fault
// hook (faults.hpp). Each target's `hostile` functor says where that memory is
// (`memory`), which registers its plugin and control path read (`registers`), and how
// its control path is driven over those registers (`control`).
//
// Invariants on every input (a violation aborts, and libFuzzer keeps the input):
//   - no out-of-bounds access or undefined behaviour (the target is built with ASan+UBSan);
//   - no packet handed up with a length beyond its buffer, or shorter than an Ethernet
//     header;
//   - every hand-over is legal (test_api records a buffer delivered without being posted,
//     returned twice, ...), and the audit balances after every operation;
//   - detach hands back every buffer the plugin holds.
#pragma once

#include "fuzz_input.hpp"

#include <npa/control.hpp>
#include <npa/sim/faults.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace npa::fuzz {

// ---- tuning constants -----------------------------------------------------------------
/// Operations per input: enough for several ring wraps at the ring sizes below, short
/// enough that one input runs in well under a millisecond.
inline constexpr std::uint32_t device_max_ops = 400;
/// Smallest rings each model takes, so that the fuzzer wraps them (and flips generation)
/// within a few dozen operations.
inline constexpr std::uint32_t device_ring = 32;
/// Buffers: more than the rings of two queues hold, so the pool can run dry too.
inline constexpr std::uint32_t device_buffers = 320;
/// Guest memory per rig: pool (320 x ~2.2 KiB) plus ring areas, with room to spare (each
/// input maps and zeroes it, so it is kept small).
inline constexpr std::size_t device_guest_bytes = std::size_t{2} << 20;
/// Largest burst the program asks for.
inline constexpr std::uint32_t device_max_burst = 48;

template <class P, class Q>
concept has_tx_reap = requires(P& p, Q q) { p.tx_reap(q); };

/// Register values chosen by the fuzzer: a few lies, each about one register, for a
/// number of reads or until replaced. Installed as the device model's register_fault.
class register_lies {
public:
    struct reg_ref {
        std::uint32_t bar = 0;
        std::uint32_t off = 0;
    };

    [[nodiscard]] sim::register_fault hook() noexcept { return {&read, this}; }

    /// The next lie, about one of `regs`: a fuzzer-chosen value, all ones (a removed
    /// function), zero, the model's value with bits flipped, or the model's value plus a
    /// small step (an index one or two past where it is).
    void choose(input& in, std::span<const reg_ref> regs) noexcept {
        if (regs.empty()) return;
        lie& l = lies_[in.below(static_cast<std::uint32_t>(lies_.size()))];
        const reg_ref r = regs[in.u8() % regs.size()];
        l.bar = r.bar;
        l.off = r.off;
        l.how = static_cast<std::uint8_t>(in.below(5));
        l.value = in.u32();
        l.reads = in.below(9);  // 0: every read until replaced
        l.live = true;
    }
    void clear() noexcept { lies_ = {}; }

private:
    struct lie {
        std::uint32_t bar = 0, off = 0, value = 0, reads = 0;
        std::uint8_t how = 0;
        bool live = false;
    };

    static std::uint32_t read(void* ctx, std::uint32_t bar, std::uint32_t off,
                              std::uint32_t v) noexcept {
        for (lie& l : static_cast<register_lies*>(ctx)->lies_) {
            if (!l.live || l.bar != bar || l.off != off) continue;
            if (l.reads != 0 && --l.reads == 0) l.live = false;
            switch (l.how) {
            case 0: return l.value;
            case 1: return 0xFFFFFFFFu;
            case 2: return 0;
            case 3: return v ^ l.value;
            default: return v + (l.value & 3u);
            }
        }
        return v;
    }

    std::array<lie, 4> lies_{};
};

/// A control request of the fuzzer's choosing (the device's answers are what is fuzzed;
/// the requests only steer the control path through its code). `own` is the guest's MAC.
inline control_request control_request_from(input& in, const mac_addr& own) {
    const std::uint8_t which = in.u8();
    switch (which % 6) {
    case 0:
        return control_request::make_set_mac(in.flag() ? own : mac_addr{0x02, 0, 0, 0, 0, in.u8()});
    case 1:
        return control_request::make_vlan(in.flag(),
                                          static_cast<std::uint16_t>(1 + in.u16() % max_vlan_id));
    case 2: return control_request::make_mtu(68 + in.u16() % 9000);
    case 3: return control_request::make_rx_mode(in.u8() & 0x1f);
    case 4: {
        control_request r;
        r.op = control_op::set_mcast_list;
        r.mcast_count = in.below(8);
        for (std::uint32_t i = 0; i < r.mcast_count; ++i) {
            r.mcast[i] = mac_addr{0x01, 0, 0x5e, 0, 0, in.u8()};
        }
        return r;
    }
    default: return control_request::make_set_mac(own);
    }
}

/// Control-path operations per input: each may poll a lying mailbox to its time-out.
inline constexpr std::uint32_t device_max_control_ops = 4;

/// Builds a fault plan from the input: each fault is present in small counts.
inline sim::fault_plan fault_plan_from(input& in) {
    sim::fault_plan p;
    const std::uint8_t which = in.u8();
    const std::uint8_t n = static_cast<std::uint8_t>(in.u8() % 8);
    switch (which % 10) {
    case 0: p.drop_tx_completions = n; break;
    case 1: p.delay_tx_steps = n; break;
    case 2: p.reorder_tx_completions = n; break;
    case 3:
    case 4:
        p.corrupt = static_cast<sim::comp_fault>(1 + in.below(5));
        p.corrupt_ring = in.flag() ? sim::ring_kind::rx : sim::ring_kind::tx;
        p.corrupt_count = n;
        break;
    case 5: p.dma_faults = n; break;
    case 6: p.link_down_steps = n; break;
    case 7: p.reset_after_tx = n; break;
    case 8: p.remove_after_tx = n; break;
    default: break;
    }
    return p;
}

/// Runs one input against `Rig` with `Plugin<Rig::api_type>`. `hostile` has:
///   install(rig, register_fault)            once: the device model's register hook;
///   memory(rig, plugin_attached, queues, in) writes fuzzer bytes into device-writable memory;
///   registers(rig, lies, queues, in)         the next register lie (lies.choose);
///   control(rig, in)                         one control-path request over the registers;
/// and may have configure(config&), which sees the rig's configuration before it is built.
template <class Rig, template <class> class Plugin, class Hostile>
int run_device_program(const std::uint8_t* data, std::size_t size, Hostile hostile) {
    using api_t = typename Rig::api_type;
    using buf_t = typename Rig::buffer_type;
    input in(data, size);
    register_lies lies; // outlives the rig, whose device model reads through it

    typename Rig::config cfg;
    cfg.queues = static_cast<std::uint16_t>(1 + in.below(2));
    cfg.tx_ring = device_ring * (1u + in.below(2));
    cfg.rx_ring = device_ring * (1u + in.below(2));
    cfg.buffers = device_buffers;
    cfg.guest_bytes = device_guest_bytes;
    if constexpr (requires { hostile.configure(cfg); }) {
        hostile.configure(cfg);
    }
    auto rig = std::make_unique<Rig>(cfg);
    NPA_FUZZ_CHECK(rig->ok());
    hostile.install(*rig, lies.hook());
    api_t& api = rig->api();
    auto plugin = std::make_unique<Plugin<api_t>>();

    const auto qc = rig->queue_cfg();
    bool attached = plugin->attach(api, rig->window(), qc).ok();
    NPA_FUZZ_CHECK(attached);  // a fresh device always attaches
    std::array<buf_t, device_max_burst> burst{};
    std::uint32_t control_ops = 0;

    auto check_audit = [&] {
        const auto a = api.audit();
        NPA_FUZZ_CHECK(a.errors == 0);
        NPA_FUZZ_CHECK(a.balanced());
    };
    auto drop_unsent = [&] {
        std::vector<buf_t> u = api.take_unsent();
        api.free(u);
    };

    for (std::uint32_t op = 0; op < device_max_ops && !in.empty(); ++op) {
        const auto q = static_cast<std::uint16_t>(in.below(cfg.queues));
        switch (in.u8() % 14) {
        case 0: { // guest TX: numbered frames, now and then a length the wire cannot carry
            if (!attached) break;
            const std::uint32_t k = 1 + in.below(device_max_burst);
            const std::uint32_t got = api.alloc_tx(std::span(burst.data(), k));
            const bool odd = in.u8() < 16;
            for (std::uint32_t i = 0; i < got; ++i) {
                rig->build_tx(burst[i], q);
                if (odd && i == 0) {
                    burst[i].set_length(in.u16() % (burst[i].capacity() + 1));
                }
            }
            const std::span<buf_t> offered(burst.data(), got);
            api.offer(offered);
            const std::uint16_t n = plugin->tx_burst(q, offered);
            NPA_FUZZ_CHECK(n <= got);
            api.not_accepted(offered.subspan(n));
            api.free(offered.subspan(n));
            break;
        }
        case 1: { // guest RX: every packet handed up must fit its buffer
            if (!attached) break;
            const std::uint32_t k = 1 + in.below(device_max_burst);
            const std::uint16_t n = plugin->rx_burst(q, std::span(burst.data(), k));
            NPA_FUZZ_CHECK(n <= k);
            for (std::uint16_t i = 0; i < n; ++i) {
                NPA_FUZZ_CHECK(burst[i].length() <= burst[i].capacity());
                NPA_FUZZ_CHECK(burst[i].length() >= 14);
            }
            const std::span<buf_t> got(burst.data(), n);
            api.received(got);
            api.free(got);
            break;
        }
        case 2: (void)rig->far_send(in.below(4), in.below(64)); break;
        case 3: rig->step(1 + in.below(4)); break;
        case 4: rig->inject(fault_plan_from(in)); break;
        case 5:
        case 6: hostile.memory(*rig, attached, cfg.queues, in); break;
        case 7:
            if (in.flag()) {
                rig->reset_device();
            } else if (in.u8() < 32) {
                rig->remove_device();
            }
            break;
        case 8: // the shell switches away and back: detach returns everything
            if (attached) {
                plugin->detach();
                NPA_FUZZ_CHECK(api.audit().with_plugin == 0);
                drop_unsent();
            }
            attached = plugin->attach(api, rig->window(), qc).ok();
            if (!attached) {
                NPA_FUZZ_CHECK(api.audit().with_plugin == 0);  // a failed attach keeps nothing
            }
            break;
        case 9:
            if (!attached) break;
            if (in.flag()) plugin->irq_arm(q); else plugin->irq_disarm(q);
            break;
        case 10:
            if constexpr (has_tx_reap<Plugin<api_t>, std::uint16_t>) {
                if (attached) (void)plugin->tx_reap(q);
            }
            break;
        case 11: // a register lies from now on (or the lies stop)
            if (in.u8() < 16) {
                lies.clear();
            } else {
                hostile.registers(*rig, lies, cfg.queues, in);
            }
            break;
        case 12: // the control path talks to the device over the same registers
            if (control_ops++ < device_max_control_ops) hostile.control(*rig, in);
            break;
        default:
            if (attached) (void)plugin->health();
            break;
        }
        check_audit();
    }
    if (attached) {
        plugin->detach();
    }
    drop_unsent();
    const auto a = api.audit();
    NPA_FUZZ_CHECK(a.with_plugin == 0);
    NPA_FUZZ_CHECK(a.with_caller == 0);
    NPA_FUZZ_CHECK(a.errors == 0);
    NPA_FUZZ_CHECK(a.balanced());
    plugin.reset();
    return 0;
}

/// Writes up to 16 fuzzer bytes at a fuzzer-chosen 16-byte slot of [base, base + bytes),
/// starting at byte `from` of the slot (the part of a descriptor the device may write).
inline void write_slot(std::byte* base, std::size_t bytes, std::size_t from, input& in) {
    if (base == nullptr || bytes < 16) return;
    const std::size_t slots = bytes / 16;
    const std::size_t slot = in.u16() % slots;
    const std::size_t at = from + in.below(static_cast<std::uint32_t>(16 - from));
    const auto b = in.bytes(16 - at);
    for (std::size_t i = 0; i < b.size(); ++i) {
        base[slot * 16 + at + i] = static_cast<std::byte>(b[i]);
    }
}

} // namespace npa::fuzz
