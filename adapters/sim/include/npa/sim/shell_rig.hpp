// npa/sim/shell_rig.hpp: a guest shell with two sim data paths, wired to a network.
//
//   guest: npa::shell<shell_rig_env, simnic_plugin>, two paths (emu0, vf0)
//            path 0 -> simnic "emu0" -> l2_switch port 0
//            path 1 -> simnic "vf0"  -> l2_switch port 1     traffic_peer on port 2
//
// Each path has a port_authority (the hypervisor or PF behind it): a port_policy on MAC
// addresses and steering (an accepted MAC is pinned to that path's switch port, as a PF
// programs its embedded switch). Traffic is numbered both ways, one flow per guest queue
// (100 + q) and one from the peer (flow 1), so tests and benchmarks measure loss,
// duplication and reordering instead of guessing. Test equipment: allocates freely.
//
// shell_rig drives both simnics with the compiled-in simnic_plugin. basic_shell_rig takes
// another plugin template and a binding that makes its device_type from a simnic's window
// (a plugin image's loaded_plugin: adapters/image), so the same world measures both.
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/shell.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/l2_switch.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/traffic.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace npa::sim {

/// The shell's environment in the sim: a pool in guest memory, a clock that is either
/// manual (deterministic tests) or the steady clock (benchmarks), and devices stepped
/// while a switch waits.
struct shell_rig_env {
    using pool_type = fixed_pool<borrowed_memory>;
    static inline bool real_time = false;
    static inline std::uint64_t manual_ns = 1'000'000'000;
    static std::uint64_t now_ns() noexcept {
        if (real_time) {
            return static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count());
        }
        return manual_ns;
    }
    static void advance(std::uint64_t ns) noexcept { manual_ns += ns; }

    std::vector<simnic*> devices;
    void on_wait() noexcept {
        advance(1'000);
        for (auto* d : devices) (void)d->step();
    }
};

/// The authority behind one path: its port policy (which MACs the guest may use), and
/// steering.
struct port_authority {
    l2_switch* sw = nullptr;
    std::size_t port = 0;
    port_policy policy;
    bool refuse_all = false;
    std::uint64_t refusals = 0;

    status check(const control_request& r) {
        if (refuse_all) {
            return {errc::refused, "PF: this VF is administratively down"};
        }
        if (r.op == control_op::set_mac && policy.check_mac(r.mac) != nullptr) {
            ++refusals;
            return {errc::refused, "PF: MAC not assigned to this guest"};
        }
        return {};
    }
    void apply(const control_request& r) {
        if (r.op == control_op::set_mac && sw != nullptr) {
            sw->add_static(r.mac, 0, port);
        }
    }
    status submit(const control_request& r) {
        status st = check(r);
        if (st.ok()) apply(r);
        return st;
    }
    status submit_batch(std::span<const control_request> b) {
        for (const auto& r : b) {
            if (status st = check(r); !st.ok()) return st;
        }
        for (const auto& r : b) apply(r);
        return {};
    }
};

struct shell_rig_config {
    std::uint16_t queues = 2;
    std::uint32_t ring_size = 256;
    std::uint32_t buffers = 4096;
    std::uint32_t frame_len = 128;
    std::size_t guest_bytes = std::size_t{48} << 20;
    switch_policy policy = [] {
        switch_policy p;
        p.min_dwell_ns = 0;
        return p;
    }();
};

/// The compiled-in plugin's binding: a path attaches to the simnic's window itself.
struct window_binding {
    static simnic_window& device(simnic_window& w) noexcept { return w; }
};

template <template <class> class Plugin, class Binding>
class basic_shell_rig {
public:
    using env_type = shell_rig_env;
    using shell_type = shell<shell_rig_env, Plugin>;
    static constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x10};
    static constexpr mac_addr peer_mac{0x02, 0, 0, 0, 0, 0x20};
    static constexpr std::uint32_t peer_flow = 1;
    static constexpr std::uint32_t guest_flow_base = 100;

    explicit basic_shell_rig(const shell_rig_config& c = {})
        : cfg_(c), mem_(c.guest_bytes), peer_(peer_flow, peer_mac, guest_mac, 0, c.frame_len) {
        pool_config pc;
        pc.count = c.buffers;
        const guest_block blk = mem_.allocate(env_type::pool_type::required_bytes(pc));
        auto p = blk ? env_type::pool_type::create(pc, blk.backing())
                     : result<env_type::pool_type>(errc::no_memory, "rig: guest memory too small");
        if (!p) {
            error_ = p.error();
            return;
        }
        pool_.emplace(std::move(*p));
        pools_.assign(c.queues, &*pool_);
        emu_ = make_device("emu0", 0, emu_auth_);
        vf_ = make_device("vf0", 1, vf_auth_);
        if (!emu_ || !vf_) {
            return;
        }
        connect(peer_, sw_.port_at(2));
        shell_config sc;
        sc.queues.queues = c.queues;
        sc.queues.tx_ring_size = c.ring_size;
        sc.queues.rx_ring_size = c.ring_size;
        sc.policy = c.policy;
        sh_.emplace(env_, pools_, sc);
        if (!sh_->init_status().ok()) {
            error_ = sh_->init_status();
            return;
        }
        for (std::uint16_t q = 0; q < c.queues; ++q) {
            gens_.emplace_back(guest_flow_base + q, guest_mac, peer_mac, 0, c.frame_len);
        }
        pending_.resize(c.queues);
        emu_auth_.policy.allowed_macs = vf_auth_.policy.allowed_macs = {guest_mac};
        emu_path_ = sh_->template add_path<Plugin>(path_device(*emu_, emu_bound_), emu_link());
        vf_path_ = sh_->template add_path<Plugin>(path_device(*vf_, vf_bound_), vf_link());
        error_ = sh_->start(emu_path_);
        if (error_.ok()) {
            error_ = sh_->set_mac(guest_mac);
        }
    }

    [[nodiscard]] status error() const noexcept { return error_; }
    [[nodiscard]] shell_type& sh() noexcept { return *sh_; }
    [[nodiscard]] simnic& emu() noexcept { return *emu_; }
    [[nodiscard]] simnic& vf() noexcept { return *vf_; }
    [[nodiscard]] port_authority& emu_auth() noexcept { return emu_auth_; }
    [[nodiscard]] port_authority& vf_auth() noexcept { return vf_auth_; }
    [[nodiscard]] control_link emu_link() noexcept { return control_link::to(emu_auth_); }
    [[nodiscard]] control_link vf_link() noexcept { return control_link::to(vf_auth_); }
    /// The shell's paths over emu() and vf().
    [[nodiscard]] path_id emu_path() const noexcept { return emu_path_; }
    [[nodiscard]] path_id vf_path() const noexcept { return vf_path_; }
    [[nodiscard]] std::uint16_t queues() const noexcept { return cfg_.queues; }
    /// The far end on switch port 2 (sends the numbered flow `peer_flow` to the guest).
    [[nodiscard]] traffic_peer& peer() noexcept { return peer_; }

    /// Switches to the other path (vf when on emu, emu otherwise) and returns at once.
    status request_flip(switch_reason to_vf = switch_reason::vf_arrived,
                        switch_reason to_emu = switch_reason::vf_leaving) {
        return sh_->active_path() == emu_path_ ? sh_->request_switch(vf_path_, to_vf)
                                               : sh_->request_switch(emu_path_, to_emu);
    }
    /// The same, waiting until the switch is complete.
    status flip(switch_reason to_vf = switch_reason::vf_arrived,
                switch_reason to_emu = switch_reason::vf_leaving) {
        return sh_->active_path() == emu_path_ ? sh_->switch_to(vf_path_, to_vf)
                                               : sh_->switch_to(emu_path_, to_emu);
    }

    /// A VF that went away comes back as a new device on the same switch port. Each new
    /// device carves fresh ring memory from guest memory; when that runs out the old VF
    /// stays (removed) and the error says why.
    status replug_vf() {
        if (sh_->active_path() == vf_path_ || sh_->target_path() == vf_path_) {
            return {errc::bad_state, "rig: the VF to re-plug is in use"};
        }
        const status before = error_;
        auto fresh = make_device("vf1", 1, vf_auth_);
        error_ = before;  // a failed re-plug is this call's error, not the rig's
        if (!fresh) {
            connect(*vf_, sw_.port_at(1));
            return {errc::no_memory, "rig: guest memory exhausted by VF re-plugs"};
        }
        // The old VF's path goes with it, the new device's path takes its id.
        (void)sh_->remove_path(vf_path_);
        vf_path_ = sh_->template add_path<Plugin>(path_device(*fresh, vf_bound_), vf_link());
        retired_rx_drops_ += drops_of(*vf_);
        std::erase(env_.devices, vf_.get());
        vf_ = std::move(fresh);
        return {};
    }

    /// One round: the guest offers up to `tx` frames per queue (frames not taken are
    /// kept and offered again, as a qdisc does), the peer sends `rx`, the devices run,
    /// every queue receives and polls, the control side services the shell.
    void round(std::uint32_t tx, std::uint32_t rx) {
        offer(tx);
        peer_sent_ += peer_.send(rx);
        for (auto* d : env_.devices) (void)d->step();
        receive();
    }

    /// The guest's TX half of a round: up to `tx` frames per queue handed to the shell.
    void offer(std::uint32_t tx) {
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            auto& p = pending_[q];
            while (p.size() < tx) {
                buffer_ref b;
                if (sh_->alloc(q, std::span(&b, 1)) == 0) break;
                b.set_length(gens_[q].build(std::span<std::byte>(b.data(), b.capacity())));
                p.push_back(b);
            }
            const std::uint16_t k = sh_->tx_burst(q, p);
            p.erase(p.begin(), p.begin() + k);
        }
    }

    /// The guest's RX half: every queue receives and polls, then the shell is serviced.
    void receive() {
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            buffer_ref b[64];
            const std::uint16_t n = sh_->rx_burst(q, b);
            for (std::uint16_t i = 0; i < n; ++i) {
                (void)sink_.record(std::span<const std::byte>(b[i].data(), b[i].length()));
            }
            sh_->free(q, std::span<const buffer_ref>(b, n));
            (void)sh_->poll(q);
        }
        (void)sh_->service();
        env_type::advance(10'000);
    }

    /// Stops offering and runs until what was offered went out and no switch is open.
    void settle() {
        for (int i = 0; i < 400; ++i) {
            bool idle = !sh_->switching();
            for (auto& p : pending_) idle = idle && p.empty();
            round(0, 0);
            if (idle && i > 20) break;
        }
    }

    [[nodiscard]] std::uint64_t guest_sent(std::uint16_t q) const { return gens_[q].sent(); }
    /// What the peer received of queue q's flow.
    [[nodiscard]] flow_report tx_report(std::uint16_t q) const {
        return peer_.report(guest_flow_base + q, guest_sent(q));
    }
    /// What the guest received of the peer's flow.
    [[nodiscard]] flow_report rx_report() const { return sink_.report(peer_flow, peer_sent_); }
    /// RX frames the devices reported dropping: the only RX loss the shell may show.
    [[nodiscard]] std::uint64_t device_rx_drops() const {
        return drops_of(*emu_) + drops_of(*vf_) + retired_rx_drops_;
    }

private:
    using bound_type = decltype(Binding::device(std::declval<simnic_window&>()));
    using bound_value = std::remove_cvref_t<bound_type>;
    /// What a path over `d` attaches to: the window, or a binding's value kept in `slot`
    /// while the path exists (a re-plugged VF's path replaces it, dropping the old one).
    auto& path_device(simnic& d, std::unique_ptr<bound_value>& slot) {
        if constexpr (std::is_lvalue_reference_v<bound_type>) {
            return Binding::device(d.window());
        } else {
            slot = std::make_unique<bound_value>(Binding::device(d.window()));
            return *slot;
        }
    }

    [[nodiscard]] std::uint64_t drops_of(const simnic& d) const {
        const auto ds = d.device_stats();
        std::uint64_t n = ds.rx_overrun + ds.rx_link_down + ds.rx_no_queue + ds.rx_removed;
        for (std::uint16_t q = 0; q < cfg_.queues; ++q) {
            const auto s = d.stats(q);
            n += s.rx_no_desc + s.rx_oversize + s.rx_dma_errors;
        }
        return n;
    }

    std::unique_ptr<simnic> make_device(const char* name, std::size_t port, port_authority& auth) {
        if (!error_.ok()) {
            return nullptr;
        }
        simnic_config dc;
        dc.queues = cfg_.queues;
        dc.max_ring_size = cfg_.ring_size;
        dc.name = name;
        auto d = simnic::create(mem_, dc);
        if (!d) {
            error_ = d.error();
            return nullptr;
        }
        connect(**d, sw_.port_at(port));
        auth.sw = &sw_;
        auth.port = port;
        env_.devices.push_back(d->get());
        return std::move(*d);
    }

    shell_rig_config cfg_;
    shell_rig_env env_;
    guest_memory mem_;
    l2_switch sw_{3};
    traffic_peer peer_;
    std::optional<env_type::pool_type> pool_;
    std::vector<env_type::pool_type*> pools_;
    port_authority emu_auth_, vf_auth_;
    std::unique_ptr<simnic> emu_, vf_;
    std::unique_ptr<bound_value> emu_bound_, vf_bound_;
    path_id emu_path_ = shell_type::no_path;
    path_id vf_path_ = shell_type::no_path;
    std::optional<shell_type> sh_;
    std::vector<traffic_gen> gens_;
    std::vector<std::vector<buffer_ref>> pending_;
    traffic_sink sink_;
    std::uint64_t peer_sent_ = 0;
    std::uint64_t retired_rx_drops_ = 0;
    status error_{};
};

using shell_rig = basic_shell_rig<simnic_plugin, window_binding>;

} // namespace npa::sim
