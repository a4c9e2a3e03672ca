// npa/sim/two_hosts.hpp: the NPA world in the sim, shared by npa-demo and the benchmarks.
//
// A guest with one npa shell, the emulated vmxnet3 path (always there) and a path over an
// 82576 VF (passthrough) on each of two hosts:
//
//   peer --- physical switch ---+--- host A vswitch --+-- vmxnet3 backend (the guest's, until migration)
//                               |                     +-- SR-IOV NIC A: embedded switch, VF0
//                               +--- host B vswitch --+-- vmxnet3 backend (after migration)
//                                                     +-- SR-IOV NIC B: embedded switch, VF0
//
// Host B's VFs are an older part (smaller rings, no checksum offload). The hypervisors'
// control channels steer the virtual and physical switches to the path whose control
// replay they accepted. Traffic is numbered both ways (one flow per guest queue, one from
// the peer), so loss, duplication and reordering are measured. Test equipment: allocates.
//
// What the guest is built with is the world's parameter (guest_build): npa-demo's guest
// has the vmxnet3 plugin only, and every VF plugin comes from the hypervisor of the host it
// runs on, as a signed image (delivered_vf); the tests and benchmarks that measure or soak
// the compiled-in VF plugin build it in (compiled_vf, the `world`).
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/fmt.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/shell.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/sriov_nic.hpp>
#include <npa/sim/traffic.hpp>
#include <npa/sim/vmxnet3_device.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace npa::sim::two_hosts {

// ---- scenario constants ------------------------------------------------------------------
inline constexpr std::uint16_t default_queues = 2;
inline constexpr std::uint32_t ring_size = 512;      ///< asked of every path; host B's VF offers 256
inline constexpr std::uint32_t burst = 32;           ///< frames per queue per round, each way
inline constexpr mac_addr guest_mac{0x02, 0x4e, 0x50, 0x41, 0, 0x01};
inline constexpr mac_addr guest_mac2{0x02, 0x4e, 0x50, 0x41, 0, 0x02};  ///< also assigned to the guest
inline constexpr mac_addr rogue_mac{0x02, 0x66, 0x66, 0x66, 0x66, 0x66};
inline constexpr mac_addr peer_mac{0x02, 0x4e, 0x50, 0x41, 0, 0xfe};
inline constexpr std::uint32_t peer_flow = 1;
inline constexpr std::uint32_t guest_flow = 100;     ///< + queue
/// The data path may change at most this often for discretionary reasons (a VF coming
/// back); mandatory ones (VF leaving, migration, removal) are never held back.
inline constexpr std::uint64_t dwell_ns = 50'000'000;

inline std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
}

struct guest_env {
    using pool_type = fixed_pool<borrowed_memory>;
    static std::uint64_t now_ns() noexcept { return steady_ns(); }
    /// While the shell waits on a device (a mailbox reply), the world's devices run.
    void (*step)(void* ctx) noexcept = nullptr;
    void* ctx = nullptr;
    void on_wait() noexcept { step(ctx); }
};

template <template <class> class A, template <class> class B>
inline constexpr bool same_plugin = false;
template <template <class> class A>
inline constexpr bool same_plugin<A, A> = true;

/// What the guest's driver is built with: the plugin types compiled into its shell.
/// image::loaded_plugin runs whatever plugin a hypervisor delivers as an image (vmxnet3's
/// LOAD_PLUGIN; the loader is the caller's, the world does not verify images).
template <template <class> class... Plugins>
struct guest_build {
    using shell_type = shell<guest_env, Plugins...>;
    /// The 82576 VF plugin is compiled in: build() adds the VF paths with it.
    static constexpr bool vf_compiled_in = (same_plugin<Plugins, igbvf_plugin> || ...);
};
/// The NPA guest: the emulated vmxnet3 path every guest has, and no VF plugin: each one
/// arrives from the hypervisor (npa-demo).
using delivered_vf = guest_build<vmxnet3_plugin, image::loaded_plugin>;
/// vmxnet3 and the 82576 VF compiled in, and delivered images too (tests, benchmarks).
using compiled_vf = guest_build<vmxnet3_plugin, igbvf_plugin, image::loaded_plugin>;
using shell_t = compiled_vf::shell_type;

/// No path (the same in every shell).
inline constexpr path_id no_path = 0xff;
static_assert(shell_t::no_path == no_path && delivered_vf::shell_type::no_path == no_path);

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
    /// The shell's reset notice reaches the authority's channel (a VF's mailbox RESET).
    void device_reset() noexcept
        requires requires(Inner& i) { { i.device_reset() } noexcept; }
    {
        inner->device_reset();
    }
};

struct host {
    explicit host(const char* n) : name(n) {}
    const char* name;
    l2_switch vsw{3};  // 0: vmxnet3 backend, 1: SR-IOV NIC uplink, 2: physical network
    std::unique_ptr<sriov_nic> nic;
    port_policy vmx_policy;        // the hypervisor's policy for the guest's vmxnet3 port
    std::optional<igbvf_control> vf_ctl;
    steered_channel<igbvf_control> vf_link_ch;
    std::size_t phys_port = 0;
    path_id vf_path = no_path;  ///< the guest's path over this host's VF 0
    /// The plugin images this host's hypervisor carries, by device id: what the guest's
    /// vmxnet3 backend hands out (LOAD_PLUGIN) while the guest lives here.
    vmxnet3_plugin_store plugins;
    image::image_device vf_image;  ///< VF 0's delivered plugin, bound (the path's device)
};

struct event_line {
    double t;
    std::string text;
};

template <class Build>
struct basic_world {
    using shell_type = typename Build::shell_type;
    static constexpr bool vf_compiled_in = Build::vf_compiled_in;

    explicit basic_world(std::uint16_t nq = default_queues) : queues(nq) {}

    std::uint16_t queues;
    std::uint64_t min_dwell_ns = dwell_ns;  ///< set before build(); benchmarks use 0
    /// Set before build(): a removed VF reads 0 rather than all ones (QEMU's igb after
    /// sriov_numvfs = 0; igbvf_device_config::removed_reads_zero).
    bool vf_removed_reads_zero = false;
    /// Set before build(): host B's VF path is not added by build() but when the guest
    /// gets its plugin from host B's hypervisor (add_delivered_vf_path()). Without a
    /// compiled-in VF plugin, no VF path is added by build(): each comes that way.
    bool b_vf_delivered = false;
    guest_memory mem{std::size_t{96} << 20};
    std::optional<guest_env::pool_type> pool;
    std::vector<guest_env::pool_type*> pools;
    l2_switch phys{3};  // 0: peer, 1: host A, 2: host B
    host a{"A"};
    host b{"B"};
    host* vmx_host = &a;  // where the guest (and its vmxnet3 backend) lives
    std::unique_ptr<vmxnet3_device> vmx;
    std::optional<vmxnet3_control> vmx_ctl;
    steered_channel<vmxnet3_control> vmx_link_ch;
    traffic_peer peer{peer_flow, peer_mac, guest_mac};
    guest_env env;
    std::optional<shell_type> sh;
    path_id vmx_path = no_path;  ///< the guest's path over its vmxnet3 device

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
    /// Every switch record and capability event, in order, copied out of the shell's
    /// bounded telemetry rings after each round (the rings keep only the last 64).
    std::vector<switch_record> switch_log;
    std::vector<capability_event> cap_log;
    std::uint64_t t0 = steady_ns();
    bool quiet = false;

    // progress
    std::uint64_t last_print = 0, last_tx = 0, last_rx = 0;

    bool build(std::string& err) {
        pool_config pc;
        pc.count = 8192;
        const guest_block blk = mem.allocate(guest_env::pool_type::required_bytes(pc));
        auto p = blk ? guest_env::pool_type::create(pc, blk.backing())
                     : result<guest_env::pool_type>(errc::no_memory, "guest memory too small");
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
            nc.vf.removed_reads_zero = vf_removed_reads_zero;
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
            h->vmx_policy.allowed_macs = {guest_mac, guest_mac2};
            connect(*h->nic, h->vsw.port_at(1));
            h->phys_port = h == &a ? 1 : 2;
            connect(h->vsw.port_at(2), phys.port_at(h->phys_port));
            h->vf_ctl.emplace(h->nic->vf(0).mailbox_port(),
                              [](void* ctx) noexcept { static_cast<basic_world*>(ctx)->step_devices(); }, this);
            h->vf_link_ch = {&*h->vf_ctl, &h->vsw, 1, &phys, h->phys_port};
        }
        connect(peer, phys.port_at(0));
        plug_vmx(a);

        env.step = [](void* ctx) noexcept { static_cast<basic_world*>(ctx)->step_devices(); };
        env.ctx = this;
        shell_config cfg;
        cfg.queues.queues = queues;  // the world's queue count
        cfg.queues.tx_ring_size = ring_size;
        cfg.queues.rx_ring_size = ring_size;
        cfg.policy.min_dwell_ns = min_dwell_ns;
        pools.assign(queues, &*pool);
        sh.emplace(env, pools, cfg);
        if (!sh->init_status().ok()) return fail(err, sh->init_status());
        // Paths 0, 1, 2: the vmxnet3 device, host A's VF, host B's VF, when the VF plugin
        // is compiled in (a VF whose plugin is delivered gets its path later, from
        // add_delivered_vf_path()).
        vmx_path = sh->template add_path<vmxnet3_plugin>(vmx->window(), vmx_link());
        if constexpr (vf_compiled_in) {
            for (host* h : {&a, &b}) {
                if (h != &b || !b_vf_delivered) {
                    h->vf_path = sh->template add_path<igbvf_plugin>(h->nic->vf(0).window(),
                                                                     vf_link(*h));
                }
            }
        }
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
        vmx->set_plugin_store(&h.plugins);
        vmx_link_ch = {&*vmx_ctl, &h.vsw, 0, &phys, h.phys_port};
    }
    /// The guest's path over host h's VF 0 with the plugin the hypervisor delivered,
    /// already verified, loaded and bound to that VF's window (`dev`).
    path_id add_delivered_vf_path(host& h, image::image_device dev) {
        h.vf_image = std::move(dev);
        h.vf_path = sh->template add_path<image::loaded_plugin>(h.vf_image, vf_link(h));
        return h.vf_path;
    }
    /// Guest memory for a plugin image the hypervisor copies in (LOAD_PLUGIN).
    vmxnet3::dma_block plugin_area(std::size_t bytes) {
        const guest_block g = mem.allocate(bytes);
        return {g.virt, g.iova, g ? g.size : 0};
    }
    /// Path p's name for people: its plugin type's, or for a delivered image the name of
    /// the plugin inside ("igbvf image").
    std::string path_label(path_id p) {
        if (auto* img = sh->template plugin<image::loaded_plugin>(p); img != nullptr) {
            return fmt::format("{} image", img->plugin_name());
        }
        return sh->path_name(p);
    }
    control_link vmx_link() { return control_link::to(vmx_link_ch); }
    control_link vf_link(host& h) { return control_link::to(h.vf_link_ch); }

    void step_devices() {
        (void)vmx->step();
        a.nic->step();
        b.nic->step();
    }

    double secs() const { return static_cast<double>(steady_ns() - t0) / 1e9; }
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
        collect();
        progress();
    }
    /// Copies the switch records and capability events the shell added since the last
    /// call (at most a ring's worth can be pending; rounds add a handful at most).
    void collect() {
        const switch_history& h = sh->history();
        const std::uint64_t new_records = h.count() - records_seen_;
        for (std::uint64_t i = std::min<std::uint64_t>(new_records, h.size()); i-- > 0;) {
            switch_log.push_back(h.recent(static_cast<std::uint32_t>(i)));
        }
        records_seen_ = h.count();
        const std::uint32_t new_events = sh->capability_event_count() - events_seen_;
        constexpr std::uint32_t cap_ring = 64;  // the shell keeps its last 64 capability events
        for (std::uint32_t i = std::min(new_events, cap_ring); i-- > 0;) {
            cap_log.push_back(sh->capability_event_at(i));
        }
        events_seen_ = sh->capability_event_count();
    }
    void run(std::uint32_t n, std::uint32_t tx = burst, std::uint32_t rx = burst) {
        for (std::uint32_t i = 0; i < n; ++i) round(tx, rx);
    }
    /// Rounds for at least `ms` of wall time (phases outlast the minimum dwell).
    void run_for(std::uint64_t ms) {
        const std::uint64_t until = steady_ns() + ms * 1'000'000;
        while (steady_ns() < until) round(burst, burst);
    }
    status switch_under_traffic(path_id p, switch_reason why) {
        status st = sh->request_switch(p, why);
        while (st.ok() && sh->switching()) round(burst, burst);
        return st;
    }

    std::uint64_t tx_sent() const {
        std::uint64_t n = 0;
        for (std::uint16_t q = 0; q < queues; ++q) n += gens[q].sent() - pending[q].size();
        return n;
    }
    void progress() {
        const std::uint64_t t = steady_ns();
        if (quiet || t - last_print < 250'000'000) return;
        const double dt = static_cast<double>(t - last_print) / 1e9;
        const std::uint64_t tx = tx_sent(), rx = sink.received(peer_flow);
        if (last_print != 0) {
            fmt::print("[{:7.3f} s] path {:11} | tx {:6.3f} Mpps | rx {:6.3f} Mpps | switches {:3} | "
                       "offloads [{}]\n",
                       secs(), path_label(sh->active_path()), static_cast<double>(tx - last_tx) / dt / 1e6,
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
    /// RX frames the devices and switches on the way counted as dropped: everything the
    /// guest may lose of the peer's traffic. Every counter here is monotonic (none is
    /// cleared by a reset, a removal or a hot-add).
    std::uint64_t device_rx_drops() const {
        std::uint64_t n = 0;
        const vmxnet3_device_stats vs = vmx->device_stats();
        n += vs.rx_overrun + vs.rx_inactive + vs.rx_link_down + vs.rx_filtered;
        for (std::uint16_t q = 0; q < queues; ++q) {
            const auto c = vmx->counters(q);
            n += c.rx_no_desc + c.rx_dma_errors;
        }
        for (const host* h : {&a, &b}) {
            const igbvf_device& vf = h->nic->vf(0);
            const igbvf_device_stats ds = vf.device_stats();
            n += ds.rx_overrun + ds.rx_link_down + ds.rx_no_queue + ds.rx_removed;
            for (std::uint16_t q = 0; q < queues; ++q) {
                const auto s = vf.stats(q);
                n += s.rx_no_desc + s.rx_oversize + s.rx_dma_errors;
            }
            n += h->nic->uplink_unknown();
        }
        return n;
    }

private:
    std::uint64_t records_seen_ = 0;
    std::uint32_t events_seen_ = 0;
};

/// The world of the tests and benchmarks: the VF plugin compiled in.
using world = basic_world<compiled_vf>;

} // namespace npa::sim::two_hosts
