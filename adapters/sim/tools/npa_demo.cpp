// npa-demo: the NPA scenario (`make demo`).
//
// A guest with one npa shell and two plugins, the emulated vmxnet3 path (always there) and
// an 82576 VF (passthrough), runs numbered traffic both ways with a peer on the physical
// network while the sim hypervisors move it around:
//
//   boot on vmxnet3 (host A) -> VF allocated, switched in -> the guest changes its MAC
//   (allowed) and tries one it does not own (refused), and a forged frame (dropped by the
//   embedded switch) -> live migration: out to vmxnet3, the guest moves to host B, whose
//   VF has smaller rings and fewer offloads, switched in -> the VF is pulled mid-burst ->
//   the VF comes back flapping, and hysteresis keeps the data path still.
//
//   peer --- physical switch ---+--- host A vswitch --+-- vmxnet3 backend (the guest's, until migration)
//                               |                     +-- SR-IOV NIC A: embedded switch, VF0
//                               +--- host B vswitch --+-- vmxnet3 backend (after migration)
//                                                     +-- SR-IOV NIC B: embedded switch, VF0
//
// Loss, duplication and reordering are counted from sequence numbers at both ends. The
// last line is a summary; with --json it is one JSON object. Exit status 1 if any TX
// packet was lost or reordered or the buffer audit does not balance.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/fmt.hpp>
#include <npa/plugins/igbvf.hpp>
#include <npa/plugins/igbvf_control.hpp>
#include <npa/plugins/vmxnet3.hpp>
#include <npa/plugins/vmxnet3_control.hpp>
#include <npa/shell.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/sriov_nic.hpp>
#include <npa/sim/traffic.hpp>
#include <npa/sim/vmxnet3_device.hpp>

#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace npa;
using namespace npa::sim;

// ---- scenario constants ------------------------------------------------------------------
constexpr std::uint16_t queues = 2;
constexpr std::uint32_t ring_size = 512;      ///< asked of every path; host B's VF offers 256
constexpr std::uint32_t burst = 32;           ///< frames per queue per round, each way
constexpr mac_addr guest_mac{0x02, 0x4e, 0x50, 0x41, 0, 0x01};
constexpr mac_addr guest_mac2{0x02, 0x4e, 0x50, 0x41, 0, 0x02};  ///< also assigned to the guest
constexpr mac_addr rogue_mac{0x02, 0x66, 0x66, 0x66, 0x66, 0x66};
constexpr mac_addr peer_mac{0x02, 0x4e, 0x50, 0x41, 0, 0xfe};
constexpr std::uint32_t peer_flow = 1;
constexpr std::uint32_t guest_flow = 100;     ///< + queue
/// The data path may change at most this often for discretionary reasons (a VF coming
/// back); mandatory ones (VF leaving, migration, removal) are never held back.
constexpr std::uint64_t dwell_ns = 50'000'000;

std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

struct world;

struct demo_env {
    using pool_type = fixed_pool<borrowed_memory>;
    static std::uint64_t now_ns() noexcept { return ::now_ns(); }
    world* w = nullptr;
    void on_wait() noexcept;
};

using shell_t = shell<demo_env, vmxnet3_plugin, igbvf_plugin>;

/// The hypervisor's view of a path's control channel: the path's own authority decides
/// (the vmxnet3 device model's policy, or the PF driver through the VF mailbox), and on
/// an accepted MAC the hypervisor points its virtual switch, and the physical network,
/// at this path.
template <class Inner>
struct steered_channel {
    Inner* inner = nullptr;
    l2_switch* vsw = nullptr;
    std::size_t vsw_port = 0;
    l2_switch* phys = nullptr;
    std::size_t phys_port = 0;

    void steer(const mac_addr& m) const {
        vsw->add_static(m, 0, vsw_port);
        phys->add_static(m, 0, phys_port);
    }
    status submit(const control_request& r) {
        status st = inner->submit(r);
        if (st.ok() && r.op == control_op::set_mac) steer(r.mac);
        return st;
    }
    status submit_batch(std::span<const control_request> b) {
        status st = inner->submit_batch(b);
        if (st.ok()) {
            for (const auto& r : b) {
                if (r.op == control_op::set_mac) steer(r.mac);
            }
        }
        return st;
    }
};

struct host {
    explicit host(const char* n) : name(n) {}
    const char* name;
    l2_switch vsw{3};  // 0: vmxnet3 backend, 1: SR-IOV NIC uplink, 2: physical network
    std::unique_ptr<sriov_nic> nic;
    vmxnet3_list_policy vmx_policy;  // the hypervisor's policy for the guest's vmxnet3 port
    std::optional<igbvf_control> vf_ctl;
    steered_channel<igbvf_control> vf_link_ch;
    std::size_t phys_port = 0;
};

struct event_line {
    double t;
    std::string text;
};

struct world {
    guest_memory mem{std::size_t{96} << 20};
    std::optional<demo_env::pool_type> pool;
    l2_switch phys{3};  // 0: peer, 1: host A, 2: host B
    host a{"A"};
    host b{"B"};
    host* vmx_host = &a;  // where the guest (and its vmxnet3 backend) lives
    std::unique_ptr<vmxnet3_device> vmx;
    std::optional<vmxnet3_control> vmx_ctl;
    steered_channel<vmxnet3_control> vmx_link_ch;
    traffic_peer peer{peer_flow, peer_mac, guest_mac};
    demo_env env;
    std::optional<shell_t> sh;

    std::vector<traffic_gen> gens;
    std::vector<std::vector<buffer_ref>> pending;  // built, not yet taken (a qdisc)
    traffic_sink sink;
    std::uint64_t peer_sent = 0;
    std::uint64_t rounds = 0;
    std::uint64_t spoofed_sent = 0;
    std::uint64_t mac_refusals = 0;
    std::string mac_refusal_reason;
    std::uint64_t flap_events = 0, flap_requests = 0, flap_refused = 0;
    std::vector<event_line> events;
    std::uint64_t t0 = now_ns();
    bool quiet = false;

    // progress
    std::uint64_t last_print = 0, last_tx = 0, last_rx = 0;

    bool build(std::string& err) {
        pool_config pc;
        pc.count = 8192;
        const guest_block blk = mem.allocate(demo_env::pool_type::required_bytes(pc));
        auto p = blk ? demo_env::pool_type::create(pc, blk.backing())
                     : result<demo_env::pool_type>(errc::no_memory, "guest memory too small");
        if (!p) return fail(err, p.error());
        pool.emplace(std::move(*p));

        // The guest's emulated device, on host A for now.
        vmxnet3_device_config vc;
        vc.name = "vmxnet3";
        auto v = vmxnet3_device::create(mem, vc);
        if (!v) return fail(err, v.error());
        vmx = std::move(*v);
        vmx_ctl.emplace(vmx->control_port());

        // Two hosts; host B's VFs are an older part: smaller rings, no checksum offload.
        for (host* h : {&a, &b}) {
            sriov_nic_config nc;
            nc.vfs = 2;
            if (h == &b) {
                nc.vf.limits.max_ring = 256;
                nc.vf.limits.offloads = cap::vlan_insert | cap::vlan_strip;
            }
            auto n = sriov_nic::create(mem, nc);
            if (!n) return fail(err, n.error());
            h->nic = std::move(*n);
            vf_policy pol;
            pol.default_mac = guest_mac;
            pol.allowed_macs = {guest_mac2};
            h->nic->pf().set_policy(0, pol);
            h->vmx_policy.macs = {guest_mac, guest_mac2};
            connect(*h->nic, h->vsw.port_at(1));
            h->phys_port = h == &a ? 1 : 2;
            connect(h->vsw.port_at(2), phys.port_at(h->phys_port));
            h->vf_ctl.emplace(h->nic->vf(0).mailbox_port(),
                              [](void* ctx) noexcept { static_cast<world*>(ctx)->step_devices(); }, this);
            h->vf_link_ch = {&*h->vf_ctl, &h->vsw, 1, &phys, h->phys_port};
        }
        connect(peer, phys.port_at(0));
        plug_vmx(a);

        env.w = this;
        shell_config cfg;
        cfg.queues.queues = queues;
        cfg.queues.tx_ring_size = ring_size;
        cfg.queues.rx_ring_size = ring_size;
        cfg.policy.min_dwell_ns = dwell_ns;
        demo_env::pool_type* pools[queues] = {&*pool, &*pool};
        sh.emplace(env, std::span<demo_env::pool_type* const>(pools, queues), cfg);
        if (!sh->init_status().ok()) return fail(err, sh->init_status());
        for (std::uint16_t q = 0; q < queues; ++q) gens.emplace_back(guest_flow + q, guest_mac, peer_mac);
        pending.resize(queues);
        return true;
    }
    static bool fail(std::string& err, const status& st) {
        err = st.reason();
        return false;
    }

    /// Cables the guest's vmxnet3 backend into a host's virtual switch, under its policy.
    void plug_vmx(host& h) {
        vmx_host = &h;
        connect(*vmx, h.vsw.port_at(0));
        vmx->set_policy(&h.vmx_policy);
        vmx_link_ch = {&*vmx_ctl, &h.vsw, 0, &phys, h.phys_port};
    }
    control_link vmx_link() { return control_link::to(vmx_link_ch); }
    control_link vf_link(host& h) { return control_link::to(h.vf_link_ch); }

    void step_devices() {
        (void)vmx->step();
        a.nic->step();
        b.nic->step();
    }

    double secs() const { return static_cast<double>(now_ns() - t0) / 1e9; }
    void event(std::string text) {
        if (!quiet) fmt::print("[{:7.3f} s] {}\n", secs(), text);
        events.push_back({secs(), std::move(text)});
    }

    /// One round: every queue offers `tx` frames, the peer sends `rx`, devices run, every
    /// queue receives and polls, the control side services the shell.
    void round(std::uint32_t tx, std::uint32_t rx) {
        for (std::uint16_t q = 0; q < queues; ++q) {
            auto& p = pending[q];
            while (p.size() < tx) {
                buffer_ref bf;
                if (sh->alloc(q, std::span(&bf, 1)) == 0) break;
                bf.set_length(gens[q].build(std::span<std::byte>(bf.data(), bf.capacity())));
                p.push_back(bf);
            }
            const std::uint16_t k = sh->tx_burst(q, p);
            p.erase(p.begin(), p.begin() + k);
        }
        peer_sent += peer.send(rx);
        step_devices();
        for (std::uint16_t q = 0; q < queues; ++q) {
            buffer_ref out[64];
            const std::uint16_t n = sh->rx_burst(q, out);
            for (std::uint16_t i = 0; i < n; ++i) {
                (void)sink.record(std::span<const std::byte>(out[i].data(), out[i].length()));
            }
            sh->free(q, std::span<const buffer_ref>(out, n));
            (void)sh->poll(q);
        }
        (void)sh->service();
        ++rounds;
        progress();
    }
    void run(std::uint32_t n, std::uint32_t tx = burst, std::uint32_t rx = burst) {
        for (std::uint32_t i = 0; i < n; ++i) round(tx, rx);
    }
    /// Rounds for at least `ms` of wall time (phases outlast the minimum dwell).
    void run_for(std::uint64_t ms) {
        const std::uint64_t until = now_ns() + ms * 1'000'000;
        while (now_ns() < until) round(burst, burst);
    }
    template <std::size_t I>
    status switch_under_traffic(typename shell_t::template plugin_t<I>::device_type& dev,
                                control_link link, switch_reason why) {
        status st = sh->template request_switch<I>(dev, link, why);
        while (st.ok() && sh->switching()) round(burst, burst);
        return st;
    }

    std::uint64_t tx_sent() const {
        std::uint64_t n = 0;
        for (std::uint16_t q = 0; q < queues; ++q) n += gens[q].sent() - pending[q].size();
        return n;
    }
    void progress() {
        const std::uint64_t t = now_ns();
        if (quiet || t - last_print < 250'000'000) return;
        const double dt = static_cast<double>(t - last_print) / 1e9;
        const std::uint64_t tx = tx_sent(), rx = sink.received(peer_flow);
        if (last_print != 0) {
            fmt::print("[{:7.3f} s] path {:8} | tx {:6.3f} Mpps | rx {:6.3f} Mpps | switches {:3} | "
                       "offloads [{}]\n",
                       secs(), sh->active_name(), static_cast<double>(tx - last_tx) / dt / 1e6,
                       static_cast<double>(rx - last_rx) / dt / 1e6, sh->history().switches(),
                       offload_names{sh->offloads()});
        }
        last_print = t;
        last_tx = tx;
        last_rx = rx;
    }

    void settle() {
        for (int i = 0; i < 400; ++i) {
            bool idle = !sh->switching();
            for (auto& p : pending) idle = idle && p.empty();
            round(0, 0);
            if (idle && i > 40) break;
        }
    }
    std::uint64_t device_rx_drops() const {
        std::uint64_t n = 0;
        for (std::uint16_t q = 0; q < queues; ++q) {
            n += vmx->counters(q).rx_no_desc;
            for (const host* h : {&a, &b}) {
                const auto s = h->nic->vf(0).stats(q);
                n += s.rx_no_desc + s.rx_oversize + s.rx_dma_errors;
            }
        }
        for (const host* h : {&a, &b}) n += h->nic->vf(0).rx_overrun() + h->nic->vf(0).rx_removed();
        return n;
    }
};

void demo_env::on_wait() noexcept { w->step_devices(); }

// ---- the timeline ------------------------------------------------------------------------

void scenario(world& w, bool quick) {
    // Each phase runs this long: longer than the minimum dwell, so that every
    // discretionary switch in the timeline is allowed and only the flapping VF is held.
    const std::uint64_t steady = quick ? 60 : 400;
    shell_t& sh = *w.sh;

    // 1. Boot on the emulated path.
    if (const status st = sh.start<0>(w.vmx->window(), w.vmx_link()); !st) {
        w.event(fmt::format("boot failed: {}", st.reason()));
        return;
    }
    (void)sh.set_mac(guest_mac);
    sh.set_fallback<0>(w.vmx->window(), w.vmx_link());
    w.event(fmt::format("boot: guest up on {} (host A), offloads [{}]", sh.active_name(),
                        offload_names{sh.offloads()}));
    w.run_for(steady);

    // 2. The hypervisor allocates VF0 on host A's NIC: passthrough on.
    status st = w.switch_under_traffic<1>(w.a.nic->vf(0).window(), w.vf_link(w.a),
                                          switch_reason::vf_arrived);
    w.event(fmt::format("VF0 on host A allocated: {} ({})", st.ok() ? "switched in" : st.reason(),
                        fmt::format("{}", sh.history().recent(0))));
    w.run_for(steady);

    // 3. The guest changes its MAC (allowed by the PF) and back; then one it does not own
    //    (refused through the mailbox), and a frame forged with a foreign source address
    //    (dropped by the embedded switch's anti-spoofing).
    st = sh.set_mac(guest_mac2);
    w.event(fmt::format("guest sets MAC 02:4e:50:41:00:02: {}", st.ok() ? "applied by the PF" : st.reason()));
    // (No traffic in between: its frames carry the first address, which the embedded
    // switch would rightly drop as spoofed while the VF owns the second.)
    st = sh.set_mac(guest_mac);
    w.event(fmt::format("guest sets MAC 02:4e:50:41:00:01 again: {}", st.ok() ? "applied by the PF" : st.reason()));
    st = sh.set_mac(rogue_mac);
    if (!st) {
        ++w.mac_refusals;
        w.mac_refusal_reason = st.reason();
    }
    w.event(fmt::format("guest sets MAC 02:66:66:66:66:66: {} ({})", st.ok() ? "applied" : "refused",
                        st.reason()));
    {
        buffer_ref bf;
        if (sh.alloc(0, std::span(&bf, 1)) == 1) {
            traffic_gen forged(999, rogue_mac, peer_mac);
            bf.set_length(forged.build(std::span<std::byte>(bf.data(), bf.capacity())));
            w.spoofed_sent += sh.tx_burst(0, std::span(&bf, 1));
        }
    }
    w.run_for(steady);
    w.event(fmt::format("forged frame: embedded switch dropped {} spoofed frame(s)",
                        w.a.nic->switch_stats(0).spoofed));

    // 4. Live migration to host B: out to the emulated path, move, in on host B's VF.
    st = w.switch_under_traffic<0>(w.vmx->window(), w.vmx_link(), switch_reason::migration);
    w.event(fmt::format("migration: passthrough off ({})", fmt::format("{}", sh.history().recent(0))));
    w.run_for(steady / 2);
    w.plug_vmx(w.b);  // the guest and its vmxnet3 backend now live on host B
    (void)w.vmx_link_ch.submit(control_request::make_set_mac(sh.desired_control().mac()));
    w.event("migration: guest resumed on host B (vmxnet3 backend re-plugged, network re-steered)");
    w.run_for(steady / 2);
    st = w.switch_under_traffic<1>(w.b.nic->vf(0).window(), w.vf_link(w.b), switch_reason::vf_arrived);
    w.event(fmt::format("VF0 on host B allocated: {} ({})", st.ok() ? "switched in" : st.reason(),
                        fmt::format("{}", sh.history().recent(0))));
    for (std::uint32_t i = 0; i < sh.capability_event_count() && i < 8; ++i) {
        const capability_event& ev = sh.capability_event_at(i);
        if (ev.switch_seq != sh.history().recent(0).seq) break;
        w.event(fmt::format("  capability {} {}: {}", cap::name(static_cast<unsigned>(__builtin_ctz(ev.bit))),
                            ev.lost ? "lost" : "regained", ev.why));
    }
    w.run_for(steady);

    // 5. Surprise removal in the middle of a burst: the VF vanishes after 40 more TX
    //    descriptors; the shell falls back on its own, resending what the VF had taken.
    fault_plan gone;
    gone.remove_after_tx = 40;
    w.b.nic->vf(0).inject(gone);
    w.event("host B pulls VF0 (surprise removal after 40 more TX descriptors)");
    for (int i = 0; i < 2000 && (sh.active_path() != 0 || sh.switching()); ++i) w.round(burst, burst);
    w.event(fmt::format("fallback: {}", fmt::format("{}", sh.history().recent(0))));
    w.run_for(steady);

    // 6. The VF comes back, flapping: every 2 ms it arrives or leaves. Leaving is
    //    mandatory; arriving is discretionary and held back by the minimum dwell.
    w.b.nic->vf(0).revive();
    w.b.nic->vf(0).inject(fault_plan{});
    const std::uint64_t flap_until = now_ns() + (quick ? 150'000'000 : 600'000'000);
    const std::uint64_t switches_before = sh.history().switches();
    bool up = false;
    std::uint64_t next = now_ns();
    while (now_ns() < flap_until) {
        if (now_ns() >= next && !sh.switching()) {
            next = now_ns() + 2'000'000;
            up = !up;
            ++w.flap_events;
            if (up) {
                w.b.nic->vf(0).revive();
                w.b.nic->vf(0).inject(fault_plan{});
                ++w.flap_requests;
                const status fs = sh.request_switch<1>(w.b.nic->vf(0).window(), w.vf_link(w.b),
                                                       switch_reason::vf_arrived);
                w.flap_refused += fs.code() == errc::busy;
            } else if (sh.active_path() == 1) {
                (void)sh.request_switch<0>(w.vmx->window(), w.vmx_link(), switch_reason::vf_leaving);
            }
        }
        w.round(burst, burst);
    }
    while (sh.switching()) w.round(burst, burst);
    w.event(fmt::format("flapping VF: {} flap events, {} arrivals, {} held back by hysteresis, {} switches",
                        w.flap_events, w.flap_requests, w.flap_refused,
                        sh.history().switches() - switches_before));
    if (sh.active_path() == 1) {
        (void)w.switch_under_traffic<0>(w.vmx->window(), w.vmx_link(), switch_reason::vf_leaving);
    }
    w.run_for(steady / 2);
    w.settle();
}

} // namespace

int main(int argc, char** argv) {
    bool json = false, quick = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            std::fprintf(stderr, "usage: %s [--json] [--quick]\n", argv[0]);
            return 2;
        }
    }
    auto w = std::make_unique<world>();
    std::string err;
    if (!w->build(err)) {
        std::fprintf(stderr, "npa-demo: %s\n", err.c_str());
        return 1;
    }
    fmt::print("npa-demo: one guest shell, two plugins (vmxnet3, igbvf), two hosts; {} queues, "
               "{}-frame bursts both ways\n", queues, burst);
    scenario(*w, quick);

    shell_t& sh = *w->sh;
    // Frames still waiting in the guest's qdisc go back to the pool (none after settle).
    for (std::uint16_t q = 0; q < queues; ++q) sh.free(q, w->pending[q]);
    std::uint64_t tx_sent = 0, tx_lost = 0, tx_dup = 0, tx_reord = 0, tx_recv = 0;
    for (std::uint16_t q = 0; q < queues; ++q) {
        const std::uint64_t sent = w->gens[q].sent() - w->pending[q].size();
        const flow_report r = w->peer.report(guest_flow + q, sent);
        tx_sent += r.sent;
        tx_recv += r.received;
        tx_lost += r.lost;
        tx_dup += r.duplicates;
        tx_reord += r.reordered;
        w->pending[q].clear();
    }
    const flow_report rx = w->sink.report(peer_flow, w->peer_sent);
    const audit_report audit = sh.audit();
    const switch_history& h = sh.history();

    fmt::print("\n{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}\n", "", "sent", "received", "lost", "dup", "reordered");
    fmt::print("{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}\n", "TX guest -> peer", tx_sent, tx_recv, tx_lost, tx_dup, tx_reord);
    fmt::print("{:<22}{:>12}{:>12}{:>8}{:>8}{:>11}   (devices dropped {})\n", "RX peer -> guest",
               rx.sent, rx.received, rx.lost, rx.duplicates, rx.reordered, w->device_rx_drops());
    fmt::print("\nswitches: {} ({} refused or failed, {} held back by hysteresis)\n", h.switches(),
               h.failures(), sh.suppressed_switches());
    std::uint64_t max_us = 0;
    for (std::uint32_t i = h.size(); i-- > 0;) {
        const switch_record& r = h.recent(i);
        fmt::print("  {} {} -> {}: {}\n", r.seq, shell_t::path_name(r.from), shell_t::path_name(r.to), r);
        if (r.result == errc::ok) max_us = std::max<std::uint64_t>(max_us, r.duration_ns / 1000);
    }
    std::uint32_t caps_lost = 0, caps_regained = 0;
    for (std::uint32_t i = 0; i < sh.capability_event_count() && i < 64; ++i) {
        (sh.capability_event_at(i).lost ? caps_lost : caps_regained) += 1;
    }
    fmt::print("capability events: {} offloads lost, {} regained (per switch above); in effect now: [{}]\n",
               caps_lost, caps_regained, offload_names{sh.offloads()});
    fmt::print("policy: MAC refused {} time(s) ({}); spoofed frames dropped by embedded switches: {}\n",
               w->mac_refusals, w->mac_refusal_reason,
               w->a.nic->switch_stats(0).spoofed + w->b.nic->switch_stats(0).spoofed);
    fmt::print("buffer audit: {}\n", audit);
    fmt::print("ran {} rounds in {:.2f} s\n", w->rounds, w->secs());
    const bool ok = tx_lost == 0 && tx_reord == 0 && audit.ok();
    if (json) {
        fmt::print("{{\"tx_sent\": {}, \"tx_lost\": {}, \"tx_duplicates\": {}, \"tx_reordered\": {}, "
                   "\"rx_sent\": {}, \"rx_lost\": {}, \"rx_device_drops\": {}, \"switches\": {}, "
                   "\"switch_failures\": {}, \"suppressed\": {}, \"max_switch_us\": {}, "
                   "\"spoofed_dropped\": {}, \"mac_refusals\": {}, \"audit_ok\": {}}}\n",
                   tx_sent, tx_lost, tx_dup, tx_reord, rx.sent, rx.lost, w->device_rx_drops(),
                   h.switches(), h.failures(), sh.suppressed_switches(), max_us,
                   w->a.nic->switch_stats(0).spoofed + w->b.nic->switch_stats(0).spoofed,
                   w->mac_refusals, audit.ok() ? "true" : "false");
    } else {
        fmt::print("{}\n", ok ? "result: zero TX loss, no reordering, every buffer accounted for"
                              : "result: FAILED (TX loss, reordering or an unbalanced audit)");
    }
    return ok ? 0 : 1;
}
