// tests/shell/fake_shell_rig.hpp: the single-threaded shell over two fake paths that the shell
// tests share (shell_test.cpp: switching, control, capabilities, stats, NAPI;
// shell_drain_test.cpp: drains over devices whose RX never runs dry; shell_paths_test.cpp:
// run-time paths). The switch runs inline; threaded variants live in shell_threads_test.cpp.
#pragma once

#include <doctest/doctest.h>

#include "fake_path.hpp"

#include <npa/shell.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace npa_test {

struct test_env {
    using pool_type = npa::fixed_pool<>;
    static inline std::uint64_t clock = 1'000'000'000;
    static inline std::uint64_t tick = 0;  ///< added at every read: time passing inside a call
    static std::uint64_t now_ns() noexcept {
        const std::uint64_t t = clock;
        clock += tick;
        return t;
    }
    void on_wait() noexcept { clock += 1'000; }
};

using shell_t = npa::shell<test_env, fake_plugin, fake_plugin>;

inline constexpr npa::mac_addr mac_a{0x02, 0, 0, 0, 0, 1};
inline constexpr npa::mac_addr mac_b{0x02, 0, 0, 0, 0, 2};

struct rig {
    test_env env;
    npa::fixed_pool<> pool;
    std::vector<npa::fixed_pool<>*> pools;
    fake_dev emu;
    fake_dev vf;
    fake_authority hv;
    shell_t sh;
    std::uint64_t next_seq = 0;
    std::vector<std::uint64_t> received;
    std::vector<std::uint64_t> far; ///< what the peer saw, from either device, in order

    explicit rig(npa::shell_config cfg = default_cfg(), std::uint32_t nbufs = 1024,
                 bool must_construct = true)
        : pool(std::move(
              *npa::fixed_pool<>::create({.count = nbufs, .buf_size = 256, .headroom = 0}))),
          pools{&pool}, sh(env, pools, cfg) {
        hv.allowed_macs = {mac_a};
        emu.far_end = &far;
        vf.far_end = &far;
        if (must_construct) {
            REQUIRE(sh.init_status().ok());
        }
        // Path 0 is the emulated device, path 1 the VF, whichever a test starts on.
        REQUIRE(sh.add_path_of<0>(emu, npa::control_link::to(hv)) == 0);
        REQUIRE(sh.add_path_of<1>(vf, npa::control_link::to(hv)) == 1);
    }
    static npa::shell_config default_cfg() {
        npa::shell_config c;
        c.queues.queues = 1;
        c.policy.min_dwell_ns = 0;
        return c;
    }
    auto link() { return npa::control_link::to(hv); }

    /// Sends n sequenced packets (asking for the offloads in `ol`); returns how many
    /// the shell took.
    std::uint32_t send(std::uint32_t n, std::uint32_t ol = 0) {
        std::vector<npa::buffer_ref> b(n);
        const std::uint32_t got = sh.alloc(0, b);
        for (std::uint32_t i = 0; i < got; ++i) {
            b[i].set_user(next_seq++);
            npa::offload_info o{};
            o.flags = ol;
            b[i].set_offload(o);
        }
        const std::uint16_t k = sh.tx_burst(0, std::span(b.data(), got));
        // What the shell did not take stays ours: take back the sequence numbers.
        next_seq -= got - k;
        sh.free(0, std::span<const npa::buffer_ref>(b.data() + k, got - k));
        return k;
    }
    std::uint32_t receive() {
        npa::buffer_ref b[32];
        const std::uint16_t n = sh.rx_burst(0, b);
        for (std::uint16_t i = 0; i < n; ++i) received.push_back(b[i].user());
        sh.free(0, std::span<const npa::buffer_ref>(b, n));
        return n;
    }
    /// Everything that went out on either wire, in order of sequence number.
    std::vector<std::uint64_t> on_wire() const {
        std::vector<std::uint64_t> all = emu.wire[0];
        all.insert(all.end(), vf.wire[0].begin(), vf.wire[0].end());
        return all;
    }
};

inline void check_sequence(const std::vector<std::uint64_t>& seen, std::uint64_t expected_count) {
    REQUIRE(seen.size() == expected_count);
    for (std::uint64_t i = 0; i < seen.size(); ++i) {
        if (seen[i] != i) {
            FAIL("packet " << i << " out of order: saw " << seen[i]);
        }
    }
}

/// Per-wire order plus no loss: each wire's part must be increasing and, since a switch
/// drains the old path before the new one sends, the old wire's last packet precedes
/// the new wire's first.
inline void check_tx(const rig& r) {
    auto all = r.on_wire();
    std::vector<std::uint64_t> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    check_sequence(sorted, r.next_seq);
    CHECK(std::is_sorted(r.emu.wire[0].begin(), r.emu.wire[0].end()));
    CHECK(std::is_sorted(r.vf.wire[0].begin(), r.vf.wire[0].end()));
}

inline void pump(rig& r, int rounds) {
    for (int i = 0; i < rounds; ++i) {
        (void)r.sh.poll(0);
        test_env::clock += 1'000;
    }
}

} // namespace npa_test
