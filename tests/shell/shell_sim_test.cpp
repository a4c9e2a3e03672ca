// The shell over the sim: two simnic devices (the "emulated" path and the "VF") on an L2
// switch with a traffic peer, sustained bidirectional numbered traffic on every queue,
// switches for every trigger. Loss, duplication and reordering are measured by sequence
// numbers at both ends, not guessed.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <npa/buffer/fixed_pool.hpp>
#include <npa/fmt.hpp>
#include <npa/shell.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/traffic.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace sim = npa::sim;

namespace {

constexpr npa::mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x10};
constexpr npa::mac_addr peer_mac{0x02, 0, 0, 0, 0, 0x20};
constexpr npa::mac_addr rogue_mac{0x02, 0, 0, 0, 0, 0x66};

struct sim_env {
    using pool_type = npa::fixed_pool<npa::borrowed_memory>;
    static inline std::uint64_t clock = 1'000'000'000;
    static std::uint64_t now_ns() noexcept { return clock; }
    std::vector<sim::simnic*> devices;
    void on_wait() noexcept {
        clock += 1'000;
        for (auto* d : devices) (void)d->step();
    }
};

using shell_t = npa::shell<sim_env, sim::simnic_plugin, sim::simnic_plugin>;

/// The authority behind one path: policy (which MACs this guest may use) and steering
/// (an accepted MAC is pinned to this path's switch port, as a PF programs its embedded
/// switch or a hypervisor its virtual switch).
struct port_authority {
    sim::l2_switch* sw = nullptr;
    std::size_t port = 0;
    std::vector<npa::mac_addr> allowed{guest_mac};
    bool refuse = false;
    std::uint64_t refusals = 0;

    npa::status check(const npa::control_request& r) {
        if (refuse) return {npa::errc::refused, "PF: this VF is administratively down"};
        if (r.op == npa::control_op::set_mac &&
            std::find(allowed.begin(), allowed.end(), r.mac) == allowed.end()) {
            ++refusals;
            return {npa::errc::refused, "PF: MAC not assigned to this guest"};
        }
        return {};
    }
    void apply(const npa::control_request& r) {
        if (r.op == npa::control_op::set_mac) sw->add_static(r.mac, 0, port);
    }
    npa::status submit(const npa::control_request& r) {
        auto st = check(r);
        if (st.ok()) apply(r);
        return st;
    }
    npa::status submit_batch(std::span<const npa::control_request> b) {
        for (auto& r : b) {
            if (auto st = check(r); !st.ok()) return st;
        }
        for (auto& r : b) apply(r);
        return {};
    }
};

struct world {
    static constexpr std::uint16_t queues = 2;

    sim_env env;
    sim::guest_memory mem{std::size_t{48} << 20};
    std::optional<sim_env::pool_type> pool;
    std::vector<sim_env::pool_type*> pools;
    std::unique_ptr<sim::simnic> emu, vf;
    sim::l2_switch sw{3};
    sim::traffic_peer peer{1, peer_mac, guest_mac};
    port_authority emu_auth, vf_auth;
    std::optional<shell_t> sh;

    // Guest side: one TX flow per queue (flow 100 + q), frames built once and retried
    // until the shell takes them (a qdisc), and a sink for what the peer sends.
    std::vector<sim::traffic_gen> gens;
    std::vector<std::vector<npa::buffer_ref>> pending;
    sim::traffic_sink sink;
    std::uint64_t peer_sent = 0;

    explicit world(npa::shell_config cfg = default_cfg()) {
        npa::pool_config pc;
        pc.count = 4096;
        const auto blk = mem.allocate(sim_env::pool_type::required_bytes(pc));
        REQUIRE(blk);
        pool.emplace(std::move(*sim_env::pool_type::create(pc, blk.backing())));
        pools.assign(queues, &*pool);
        emu = make_device("emu0", 0, emu_auth);
        vf = make_device("vf0", 1, vf_auth);
        sim::connect(peer, sw.port_at(2));
        sh.emplace(env, pools, cfg);
        REQUIRE(sh->init_status().ok());
        for (std::uint16_t q = 0; q < queues; ++q) gens.emplace_back(100 + q, guest_mac, peer_mac);
        pending.resize(queues);
        REQUIRE(sh->start<0>(emu->window(), npa::control_link::to(emu_auth)).ok());
        REQUIRE(sh->set_mac(guest_mac).ok());
    }
    static npa::shell_config default_cfg() {
        npa::shell_config c;
        c.queues.queues = queues;
        c.queues.tx_ring_size = 256;
        c.queues.rx_ring_size = 256;
        c.policy.min_dwell_ns = 0;
        return c;
    }
    std::unique_ptr<sim::simnic> make_device(const char* name, std::size_t port, port_authority& auth) {
        sim::simnic_config dc;
        dc.queues = queues;
        dc.max_ring_size = 256;
        dc.name = name;
        auto d = sim::simnic::create(mem, dc);
        REQUIRE(d);
        sim::connect(**d, sw.port_at(port));
        auth.sw = &sw;
        auth.port = port;
        env.devices.push_back(d->get());
        return std::move(*d);
    }
    /// A VF that went away comes back as a new device on the same switch port.
    void replug_vf() {
        std::erase(env.devices, vf.get());
        vf.reset();
        vf = make_device("vf1", 1, vf_auth);
    }
    auto emu_link() { return npa::control_link::to(emu_auth); }
    auto vf_link() { return npa::control_link::to(vf_auth); }

    /// One round of traffic: the guest offers `tx` frames per queue, the peer sends `rx`,
    /// the devices run, the guest receives.
    void round(std::uint32_t tx, std::uint32_t rx) {
        for (std::uint16_t q = 0; q < queues; ++q) {
            auto& p = pending[q];
            while (p.size() < tx) {
                npa::buffer_ref b;
                if (sh->alloc(q, std::span(&b, 1)) == 0) break;
                b.set_length(gens[q].build(std::span<std::byte>(b.data(), b.capacity())));
                p.push_back(b);
            }
            const std::uint16_t k = sh->tx_burst(q, p);
            p.erase(p.begin(), p.begin() + k);
        }
        peer_sent += peer.send(rx);
        for (auto* d : env.devices) (void)d->step();
        for (std::uint16_t q = 0; q < queues; ++q) {
            npa::buffer_ref b[64];
            const std::uint16_t n = sh->rx_burst(q, b);
            for (std::uint16_t i = 0; i < n; ++i) {
                (void)sink.record(std::span<const std::byte>(b[i].data(), b[i].length()));
            }
            sh->free(q, std::span<const npa::buffer_ref>(b, n));
            (void)sh->poll(q);
        }
        (void)sh->service();
        sim_env::clock += 10'000;
    }
    /// Stops offering traffic and runs until everything offered has gone out.
    void settle() {
        for (int i = 0; i < 200; ++i) {
            bool idle = !sh->switching();
            for (auto& p : pending) idle = idle && p.empty();
            round(0, 0);
            if (idle && i > 20) break;
        }
    }
    std::uint64_t guest_sent(std::uint16_t q) const { return gens[q].sent(); }
    /// RX frames the devices reported dropping (the only RX loss the shell may have).
    std::uint64_t device_rx_drops() const {
        std::uint64_t n = 0;
        for (const auto* d : {emu.get(), vf.get()}) {
            const auto ds = d->device_stats();
            n += ds.rx_overrun + ds.rx_link_down + ds.rx_no_queue;
            for (std::uint16_t q = 0; q < queues; ++q) {
                const auto s = d->stats(q);
                n += s.rx_no_desc + s.rx_oversize + s.rx_dma_errors;
            }
        }
        return n;
    }
    void check_tx_clean(std::uint64_t allowed_duplicates = 0) {
        for (std::uint16_t q = 0; q < queues; ++q) {
            const auto r = peer.report(100 + q, guest_sent(q));
            INFO("queue " << q << ": sent " << r.sent << " received " << r.received);
            CHECK(r.lost == 0);
            CHECK(r.reordered == 0);
            CHECK(r.corrupt == 0);
            CHECK(r.duplicates <= allowed_duplicates);
        }
    }
};

} // namespace

TEST_CASE("sim: switches for every trigger under sustained bidirectional traffic") {
    world w;
    const npa::switch_reason to_vf[] = {npa::switch_reason::vf_arrived, npa::switch_reason::policy,
                                        npa::switch_reason::operator_request};
    const npa::switch_reason to_emu[] = {npa::switch_reason::vf_leaving, npa::switch_reason::migration,
                                         npa::switch_reason::device_error, npa::switch_reason::reset,
                                         npa::switch_reason::policy};
    int k = 0;
    for (int i = 0; i < 600; ++i) {
        w.round(16, 16);
        if (i % 20 == 5 && !w.sh->switching()) {
            npa::status st = w.sh->active_path() == 0
                ? w.sh->request_switch<1>(w.vf->window(), w.vf_link(), to_vf[k % 3])
                : w.sh->request_switch<0>(w.emu->window(), w.emu_link(), to_emu[k % 5]);
            REQUIRE(st.ok());
            ++k;
        }
        REQUIRE(w.sh->audit().ok());
    }
    w.settle();
    CHECK(w.sh->history().switches() == 1 + static_cast<std::uint64_t>(k));
    CHECK(w.sh->history().total_tx_lost() == 0);
    w.check_tx_clean();
    const auto rr = w.sink.report(1, w.peer_sent);
    CHECK(rr.duplicates == 0);
    CHECK(rr.corrupt == 0);
    CHECK(rr.lost == w.device_rx_drops());  // RX loss: only what a device dropped, counted
    CHECK(w.sh->audit().ok());
    MESSAGE("last switch: " << fmt::format("{}", w.sh->history().recent(0)));
}

TEST_CASE("sim: 1,000 switches in a row, audit after each, nothing lost or reordered") {
    world w;
    for (int i = 0; i < 1000; ++i) {
        w.round(8, 8);
        npa::status st = w.sh->active_path() == 0
            ? w.sh->switch_to<1>(w.vf->window(), w.vf_link(), npa::switch_reason::vf_arrived)
            : w.sh->switch_to<0>(w.emu->window(), w.emu_link(), npa::switch_reason::vf_leaving);
        REQUIRE(st.ok());
        REQUIRE(w.sh->audit().ok());
    }
    w.settle();
    CHECK(w.sh->history().switches() == 1001);
    w.check_tx_clean();
    CHECK(w.sink.report(1, w.peer_sent).lost == w.device_rx_drops());
}

TEST_CASE("sim: surprise removal of the VF mid-burst; TX comes back and goes out on the emulated path") {
    world w;
    w.sh->set_fallback<0>(w.emu->window(), w.emu_link());
    REQUIRE(w.sh->switch_to<1>(w.vf->window(), w.vf_link(), npa::switch_reason::vf_arrived).ok());
    for (int i = 0; i < 50; ++i) w.round(16, 16);
    // Offer a burst, let the shell hand it to the VF, and pull the VF before it runs.
    for (std::uint16_t q = 0; q < world::queues; ++q) {
        std::vector<npa::buffer_ref> b(32);
        const auto n = w.sh->alloc(q, b);
        for (std::uint32_t i = 0; i < n; ++i)
            b[i].set_length(w.gens[q].build(std::span<std::byte>(b[i].data(), b[i].capacity())));
        REQUIRE(w.sh->tx_burst(q, std::span(b.data(), n)) == n);
    }
    w.vf->remove();
    CHECK(w.sh->service());
    for (int i = 0; i < 100; ++i) w.round(16, 16);
    w.settle();
    CHECK(w.sh->active_path() == 0);
    const auto& rec = w.sh->history().recent(0);
    CHECK(rec.reason == npa::switch_reason::surprise_removal);
    CHECK(rec.requeued >= 64);
    CHECK(rec.tx_lost == 0);
    w.check_tx_clean();
    CHECK(w.sh->audit().ok());
    // The VF comes back (a new function on the same port): passthrough again.
    w.replug_vf();
    sim_env::clock += 1'000'000'000;
    REQUIRE(w.sh->switch_to<1>(w.vf->window(), w.vf_link(), npa::switch_reason::vf_arrived).ok());
    for (int i = 0; i < 50; ++i) w.round(16, 16);
    w.settle();
    w.check_tx_clean();
}

TEST_CASE("sim: a failed prepare keeps the emulated path running and reports why") {
    world w;
    w.vf->remove();  // the VF was announced but is gone before the guest could use it
    npa::status st = w.sh->switch_to<1>(w.vf->window(), w.vf_link(), npa::switch_reason::vf_arrived);
    CHECK(st.code() == npa::errc::removed);
    CHECK(w.sh->active_path() == 0);
    w.replug_vf();
    w.vf_auth.refuse = true;  // the PF refuses the control replay: rolled back
    sim_env::clock += 10'000'000'000;
    st = w.sh->switch_to<1>(w.vf->window(), w.vf_link(), npa::switch_reason::vf_arrived);
    CHECK(st.code() == npa::errc::refused);
    CHECK(std::string_view(st.reason()) == "PF: this VF is administratively down");
    CHECK(w.sh->active_path() == 0);
    for (int i = 0; i < 50; ++i) w.round(16, 16);
    w.settle();
    w.check_tx_clean();
    CHECK(w.sh->history().failures() == 2);
    CHECK(w.sh->audit().ok());
}

TEST_CASE("sim: policy refuses a MAC the guest does not own; the refusal is counted and changes nothing") {
    world w;
    npa::status st = w.sh->set_mac(rogue_mac);
    CHECK(st.code() == npa::errc::refused);
    CHECK(w.emu_auth.refusals == 1);
    CHECK(w.sh->desired_control().mac() == guest_mac);
    // Traffic still reaches the guest at its real address.
    for (int i = 0; i < 20; ++i) w.round(4, 4);
    w.settle();
    CHECK(w.sink.report(1, w.peer_sent).lost == w.device_rx_drops());
}
