// The shell's drain over devices whose RX never runs dry and whose side manages its own
// buffers (a DPDK port driven through ethdev, net_null): the drain ends after the bound the
// plugin declares, a queue stalled past the timeout loses nothing, and one that reads RX
// keeps the drain open until it has read it. The queue is the test's thread.
#include <doctest/doctest.h>

#include "fake_shell_rig.hpp"

#include <npa/shell.hpp>

#include <array>
#include <vector>

using namespace npa_test;

namespace {

/// A device whose RX never runs dry and whose side allocates and frees buffers itself,
/// as a DPDK port driven through ethdev (net_null): the two optional plugin members
/// that describe it.
template <class Api>
class endless_plugin : public fake_plugin<Api> {
public:
    static constexpr bool device_managed_buffers = true;
    /// One RX ring: the most the device can hold when a drain starts.
    std::uint32_t rx_drain_bound(std::uint16_t) const noexcept { return 64; }
};

using endless_shell = npa::shell<test_env, endless_plugin, endless_plugin>;

} // namespace

/// One queue over two bounded paths; the test is the queue's thread (no inline switch).
struct endless_rig {
    static npa::shell_config config() {
        npa::shell_config c;
        c.queues.queues = 1;
        c.policy.min_dwell_ns = 0;
        c.inline_switch = false;
        return c;
    }
    npa::fixed_pool<> pool{
        std::move(*npa::fixed_pool<>::create({.count = 4096, .buf_size = 256, .headroom = 0}))};
    std::vector<npa::fixed_pool<>*> pools{&pool};
    npa::shell_config cfg = config();
    test_env env;
    endless_shell sh{env, pools, cfg};
    fake_dev a, b;
    fake_authority hv;
    endless_rig() { hv.allowed_macs = {mac_a}; }
};

namespace {
/// One rx_burst of the rig's queue; the frames' numbers go to `out`.
std::uint16_t receive_into(endless_shell& sh, std::vector<std::uint64_t>& out) {
    npa::buffer_ref rx[32];
    const std::uint16_t n = sh.rx_burst(0, rx);
    for (std::uint16_t i = 0; i < n; ++i) out.push_back(rx[i].user());
    sh.free(0, std::span<const npa::buffer_ref>(rx, n));
    return n;
}
/// The rig's shell started on path 0 (device a), through its queue: reading RX into
/// `received`, or, given none, only polling (a queue that never calls rx_burst).
void boot_on_a(endless_rig& rig, std::vector<std::uint64_t>* received) {
    REQUIRE(rig.sh.init_status().ok());
    REQUIRE(rig.sh.request_switch<0>(rig.a, npa::control_link::to(rig.hv), npa::switch_reason::boot).ok());
    for (int i = 0; i < 4; ++i) {
        if (received != nullptr) {
            (void)receive_into(rig.sh, *received);
        } else {
            (void)rig.sh.poll(0);
        }
        (void)rig.sh.service();
    }
    REQUIRE_FALSE(rig.sh.switching());
}

// A rig already running on a; what its queue received goes to `received`.
struct booted_rig : endless_rig {
    std::vector<std::uint64_t> received;
    booted_rig() { boot_on_a(*this, &received); }
};

// An operator's switch from a to b.
void request_a_to_b(endless_rig& rig) {
    REQUIRE(rig.sh.request_switch<1>(rig.b, npa::control_link::to(rig.hv),
                                     npa::switch_reason::operator_request)
                .ok());
}

// One tx_burst of four frames; what it does not take goes back to the pool.
void send_four(endless_shell& sh) {
    std::array<npa::buffer_ref, 4> tx{};
    REQUIRE(sh.alloc(0, tx) == tx.size());
    const std::uint16_t k = sh.tx_burst(0, tx);
    sh.free(0, std::span<const npa::buffer_ref>(tx).subspan(k));
}
} // namespace

TEST_CASE("a drain over a device whose RX never runs dry ends after its bound, TX not held") {
    endless_rig rig;
    endless_shell& sh = rig.sh;
    fake_dev &a = rig.a, &b = rig.b;
    fake_authority& hv = rig.hv;
    REQUIRE(sh.init_status().ok());
    for (std::uint64_t i = 0; i < 100'000; ++i) a.inject(0, i);  // far more than a drain reads
    auto serve = [&](int bursts) {
        for (int i = 0; i < bursts; ++i) {
            npa::buffer_ref rx[32];
            const std::uint16_t n = sh.rx_burst(0, rx);
            sh.free(0, std::span<const npa::buffer_ref>(rx, n));
            (void)sh.service();
        }
    };
    REQUIRE(sh.request_switch<0>(a, npa::control_link::to(hv), npa::switch_reason::boot).ok());
    serve(4);
    REQUIRE_FALSE(sh.switching());
    CHECK(sh.steady_path(0) == 0);  // nothing in progress: callers may go direct
    REQUIRE(sh.request_switch<1>(b, npa::control_link::to(hv), npa::switch_reason::operator_request)
                .ok());
    // The clock does not move: only the bound can end this drain (the timeout cannot).
    const std::uint64_t clock = test_env::clock;
    serve(1);
    CHECK(sh.steady_path(0) == endless_shell::no_path);  // a switch is under way
    // The old path holds no TX: what is sent during the drain goes to the new path at
    // once rather than into the backlog.
    {
        std::array<npa::buffer_ref, 8> tx{};
        REQUIRE(sh.alloc(0, tx) == tx.size());
        CHECK(sh.tx_burst(0, tx) == tx.size());
        CHECK(sh.counters(0).tx_backlogged == 0);
        CHECK(b.wire[0].size() + sh.plugin<1>().tx_in_flight(0) == tx.size());
    }
    serve(8);
    CHECK(test_env::clock == clock);
    CHECK_FALSE(sh.switching());
    CHECK(sh.active_path() == 1);
    CHECK(sh.steady_path(0) == 1);
    // The old path read at most one bound's worth during the drain: 64 more, not 100,000.
    CHECK(a.inbox[0].size() >= 100'000 - 4 * 32 - 64 - 32);
    // The device's buffers are its own business: no leak is reported for it.
    CHECK(sh.audit().leaked == 0);
    CHECK(sh.history().recent(0).tx_lost == 0);
}

TEST_CASE("a queue stalled past the drain timeout while reading the old path's RX loses none of "
          "it; one that never reads RX still completes on the timeout") {
    endless_rig rig;
    endless_shell& sh = rig.sh;
    fake_dev &a = rig.a, &b = rig.b;
    fake_authority& hv = rig.hv;
    const npa::shell_config& cfg = rig.cfg;
    std::vector<std::uint64_t> received;
    auto receive = [&] {
        const std::uint16_t n = receive_into(sh, received);
        (void)sh.service();
        return n;
    };
    boot_on_a(rig, &received);
    // The old device received 40 frames (below its bound) before the switch: more than
    // one burst reads.
    for (std::uint64_t i = 0; i < 40; ++i) a.inject(0, i);
    REQUIRE(sh.request_switch<1>(b, npa::control_link::to(hv), npa::switch_reason::operator_request)
                .ok());
    CHECK(receive() == 32);
    // The queue's thread is descheduled for longer than the drain timeout (a loaded
    // machine); meanwhile the peer's frames arrive on the new device.
    test_env::clock += 2 * cfg.policy.drain_timeout_ns;
    for (std::uint64_t i = 40; i < 48; ++i) b.inject(0, i);
    for (int i = 0; i < 8 && (sh.switching() || i < 2); ++i) (void)receive();
    CHECK_FALSE(sh.switching());
    CHECK(sh.active_path() == 1);
    // Every frame, old path's first: none left behind on the released device.
    CHECK(a.inbox[0].empty());
    REQUIRE(received.size() == 48);
    for (std::uint64_t i = 0; i < received.size(); ++i) CHECK(received[i] == i);

    // A queue that only transmits (it never called rx_burst) has no RX reader to wait
    // for: the timeout ends its drain, and what its old device received stays there.
    endless_rig tx_only;
    endless_shell& sh2 = tx_only.sh;
    boot_on_a(tx_only, nullptr);
    tx_only.a.inject(0, 99);
    request_a_to_b(tx_only);
    for (int i = 0; i < 8 && sh2.switching(); ++i) {
        (void)sh2.poll(0);
        (void)sh2.service();
        test_env::clock += cfg.policy.drain_timeout_ns;
    }
    CHECK_FALSE(sh2.switching());
    CHECK(sh2.active_path() == 1);
    CHECK(sh2.history().recent(0).tx_lost == 0);
}

TEST_CASE("a queue that reads RX keeps the drain open past the timeout until its RX reader "
          "comes round, whatever tx_burst sees") {
    // The kernel module under load: ndo_start_xmit's tx_burst picks up the drain, the
    // NAPI poll that reads RX is held off by a busy CPU, and the next tx_burst finds the
    // drain timeout passed. It used to flip there, and the echo reply waiting on the old
    // device (it arrived before the new one was attached) went with the detach.
    booted_rig rig;
    std::vector<std::uint64_t>& received = rig.received;
    endless_shell& sh = rig.sh;
    rig.a.inject(0, 7);
    request_a_to_b(rig);
    for (int round = 0; round < 4; ++round) {
        send_four(sh);
        (void)sh.poll(0);
        (void)sh.service();
        test_env::clock += 2 * rig.cfg.policy.drain_timeout_ns;
    }
    CHECK(sh.switching());  // the old path's RX is still unread: no flip
    CHECK(received.empty());
    rig.b.inject(0, 8);  // the peer's next frame reaches the new device
    for (int i = 0; i < 8 && (sh.switching() || i < 2); ++i) {
        (void)receive_into(sh, received);
        (void)sh.service();
    }
    CHECK_FALSE(sh.switching());
    CHECK(sh.active_path() == 1);
    CHECK(rig.a.inbox[0].empty());
    REQUIRE(received.size() == 2);
    CHECK(received[0] == 7);
    CHECK(received[1] == 8);
    CHECK(sh.history().recent(0).tx_lost == 0);

    // An application that stopped reading RX does not hold a switch for ever: past
    // rx_reader_wait_ns its tx_burst and poll flip the queue, as for a queue without RX.
    rig.b.inject(0, 9);
    REQUIRE(sh.request_switch<0>(rig.a, npa::control_link::to(rig.hv),
                                 npa::switch_reason::operator_request)
                .ok());
    send_four(sh);
    (void)sh.service();
    test_env::clock += rig.cfg.policy.drain_timeout_ns + rig.cfg.policy.rx_reader_wait_ns / 2;
    send_four(sh);
    (void)sh.service();
    CHECK(sh.switching());
    test_env::clock += rig.cfg.policy.rx_reader_wait_ns;
    for (int i = 0; i < 4 && sh.switching(); ++i) {
        send_four(sh);
        (void)sh.poll(0);
        (void)sh.service();
    }
    CHECK_FALSE(sh.switching());
    CHECK(sh.active_path() == 0);
    CHECK(received.size() == 2);  // 9 stayed on b: nobody read it
}

TEST_CASE("a drain that a slow tx_burst started past its timeout still reads the old path's RX "
          "before the queue flips") {
    // The guest switch test's round on QEMU under TCG: tx_burst (which picks up the drain
    // and starts its clock) takes longer than the drain timeout, then rx_burst. The old
    // device's RX had never been read in this drain; the timeout flipped the queue at that
    // rx_burst and the frames went with the released device.
    booted_rig rig;
    std::vector<std::uint64_t>& received = rig.received;
    endless_shell& sh = rig.sh;
    for (std::uint64_t i = 0; i < 40; ++i) rig.a.inject(0, i);  // below the bound, more than a burst
    request_a_to_b(rig);
    for (int round = 0; round < 8 && sh.switching(); ++round) {
        send_four(sh);  // the first call of the drain
        test_env::clock += 2 * rig.cfg.policy.drain_timeout_ns;  // ... and a slow one
        (void)receive_into(sh, received);
        (void)sh.poll(0);
        (void)sh.service();
    }
    CHECK_FALSE(sh.switching());
    CHECK(sh.active_path() == 1);
    CHECK(rig.a.inbox[0].empty());
    REQUIRE(received.size() == 40);
    for (std::uint64_t i = 0; i < received.size(); ++i) CHECK(received[i] == i);
    CHECK(sh.history().recent(0).tx_lost == 0);
}

TEST_CASE("a drain is not timed out by the call that starts it") {
    // A queue thread descheduled inside its first call of the drain, between the deadline
    // being set and checked (a loaded host under QEMU's TCG), flipped at once and left
    // the old device's RX unread. Here every clock read moves the clock past the timeout.
    booted_rig rig;
    std::vector<std::uint64_t>& received = rig.received;
    endless_shell& sh = rig.sh;
    for (std::uint64_t i = 0; i < 40; ++i) rig.a.inject(0, i);
    REQUIRE(sh.request_switch<1>(rig.b, npa::control_link::to(rig.hv),
                                 npa::switch_reason::operator_request)
                .ok());
    test_env::tick = 2 * rig.cfg.policy.drain_timeout_ns;
    std::array<npa::buffer_ref, 4> tx{};
    REQUIRE(sh.alloc(0, tx) == tx.size());
    const std::uint16_t k = sh.tx_burst(0, tx);  // starts the drain
    sh.free(0, std::span<const npa::buffer_ref>(tx).subspan(k));
    for (int round = 0; round < 8 && sh.switching(); ++round) {
        (void)receive_into(sh, received);
        (void)sh.poll(0);
        (void)sh.service();
    }
    test_env::tick = 0;
    CHECK_FALSE(sh.switching());
    CHECK(sh.active_path() == 1);
    CHECK(rig.a.inbox[0].empty());
    REQUIRE(received.size() == 40);
    for (std::uint64_t i = 0; i < received.size(); ++i) CHECK(received[i] == i);
}

TEST_CASE("a plugin that declares no drain bound is read up to its RX ring: a stalled queue "
          "strands none of it, and a device that never runs dry still flips") {
    npa::shell_config cfg = rig::default_cfg();
    cfg.inline_switch = false;
    cfg.queues.rx_ring_size = 64;
    rig r(cfg);
    r.emu.declares_rx_bound = false;
    r.vf.declares_rx_bound = false;
    REQUIRE(r.sh.request_switch<0>(r.emu, r.link(), npa::switch_reason::boot).ok());
    for (int i = 0; i < 4; ++i) {
        (void)r.receive();
        (void)r.sh.service();
    }
    REQUIRE_FALSE(r.sh.switching());
    // 40 frames wait on the old device (below its ring, more than one burst); the queue
    // reads one burst, then its thread is descheduled past the drain timeout.
    for (std::uint64_t i = 0; i < 40; ++i) r.emu.inject(0, i);
    REQUIRE(r.sh.request_switch<1>(r.vf, r.link(), npa::switch_reason::operator_request).ok());
    CHECK(r.receive() == 32);
    test_env::clock += 2 * cfg.policy.drain_timeout_ns;
    for (std::uint64_t i = 40; i < 48; ++i) r.vf.inject(0, i);
    for (int i = 0; i < 8 && (r.sh.switching() || i < 2); ++i) {
        (void)r.receive();
        (void)r.sh.service();
    }
    CHECK_FALSE(r.sh.switching());
    CHECK(r.sh.active_path() == 1);
    CHECK(r.emu.inbox[0].empty());
    check_sequence(r.received, 48);

    // A device that never runs dry: the clock stands still, and the ring's worth still
    // ends the read of the old path.
    for (std::uint64_t i = 0; i < 100'000; ++i) r.vf.inject(0, i);
    const std::uint64_t clock = test_env::clock;
    REQUIRE(r.sh.request_switch<0>(r.emu, r.link(), npa::switch_reason::operator_request).ok());
    for (int i = 0; i < 16 && r.sh.switching(); ++i) {
        (void)r.receive();
        (void)r.sh.service();
    }
    CHECK(test_env::clock == clock);
    CHECK_FALSE(r.sh.switching());
    CHECK(r.sh.active_path() == 0);
    CHECK(r.vf.inbox[0].size() >= 100'000 - 64 - 32);
    CHECK(r.sh.audit().ok());
}
