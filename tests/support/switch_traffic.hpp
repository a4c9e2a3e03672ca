// tests/support/switch_traffic.hpp: a shell with two paths under sequenced traffic, switched
// at chosen rounds, and what the far end saw: the loop the plugin suites share to show that
// a switch between their path and another loses, duplicates and reorders no TX.
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/buffer/memory.hpp>
#include <npa/control.hpp>
#include <npa/sim/rig_base.hpp>
#include <npa/sim/traffic.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace npa_test {

/// The shell's environment over two sim devices: a clock the test moves, and a wait that
/// steps both devices (the shell waits during a drain).
template <class DevA, class DevB>
struct two_device_env {
    using pool_type = npa::fixed_pool<npa::borrowed_memory>;
    static inline std::uint64_t clock = 1'000'000'000;
    static std::uint64_t now_ns() noexcept { return clock; }
    DevA* a = nullptr;
    DevB* b = nullptr;
    void on_wait() noexcept {
        clock += 1'000;
        a->step();
        b->step();
    }
};

/// A control channel that takes every request (a path whose control is not under test).
struct allow_all_channel {
    npa::status submit(const npa::control_request&) { return {}; }
    npa::status submit_batch(std::span<const npa::control_request>) { return {}; }
};

struct switch_traffic_result {
    std::uint64_t sent = 0;
    npa::sim::flow_report far{};
};

/// `rounds` rounds on queue 0: up to 16 numbered frames of flow 7 offered (what the shell
/// does not take is offered again, in order), 4 frames of flow 3 from the far end, the
/// devices stepped (`step()`), one RX burst freed, the shell's clock moved on; at the end of
/// each round `at_round(round)` may switch. Then 200 rounds of drain.
template <class Env, class Shell, class Step, class AtRound>
switch_traffic_result run_switch_traffic(Shell& sh, npa::sim::far_end& peer, npa::mac_addr guest,
                                         npa::mac_addr peer_mac, int rounds, Step&& step,
                                         AtRound&& at_round) {
    npa::sim::traffic_gen gen(7, guest, peer_mac);
    switch_traffic_result res;
    std::vector<npa::buffer_ref> pend; // built in sequence order, not yet taken by the shell
    for (int round = 0; round < rounds; ++round) {
        while (pend.size() < 16) {
            npa::buffer_ref x;
            if (sh.alloc(0, std::span(&x, 1)) == 0) {
                break;
            }
            x.set_length(gen.build(std::span<std::byte>(x.data(), x.capacity())));
            pend.push_back(x);
        }
        const std::uint16_t k = sh.tx_burst(0, pend);
        res.sent += k;
        pend.erase(pend.begin(), pend.begin() + k);
        peer.send(3, 4);
        step();
        npa::buffer_ref in[32];
        const std::uint16_t n = sh.rx_burst(0, in);
        sh.free(0, std::span<const npa::buffer_ref>(in, n));
        Env::clock += 10'000;
        at_round(round);
    }
    for (int i = 0; i < 200; ++i) { // drain
        step();
        npa::buffer_ref in[32];
        (void)sh.tx_burst(0, std::span<npa::buffer_ref>());
        const std::uint16_t n = sh.rx_burst(0, in);
        sh.free(0, std::span<const npa::buffer_ref>(in, n));
    }
    sh.free(0, pend);
    res.far = peer.report(7, res.sent);
    return res;
}

} // namespace npa_test
