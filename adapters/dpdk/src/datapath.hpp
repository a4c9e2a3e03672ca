// datapath.hpp: the one place net_npa's data path is decided: an npa::shell with one
// path per sub-device, an ethdev plugin for a DPDK port, or a plugin image for a sim
// device model (image_path.hpp).
//
// The shell (include/npa/shell.hpp) runs the switch of DESIGN.md section 4: prepare
// (attach the new sub-port, replay the control state onto it), drain (TX waits in the
// shell's backlog while the old path delivers what it received), flip (per queue, on the
// queue's own thread), release (the old sub-port is stopped; service() completes it).
// This file adapts it to a PMD: the environment (mempools, clock, log), a control channel
// onto a DPDK port, run-time path indices over the shell's compile-time ones, and a lock
// so that the control threads a DPDK application has (its main thread, the interrupt
// thread running alarms and event callbacks, the telemetry thread) take turns.
#pragma once

#include "devargs.hpp"

#include <npa/control.hpp>
#include <npa/control_state.hpp>
#include <npa/dpdk/ethdev_plugin.hpp>
#include <npa/dpdk/mbuf.hpp>
#include <npa/shell.hpp>
#include <npa/switch.hpp>

#include "image_path.hpp"

#include <ethdev_driver.h> // rte_eth_devices[].data: the VLAN filters a port has
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_log.h>

#include <array>
#include <bitset>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <utility>

namespace npa::dpdk {

/// The shell's environment in a DPDK process.
struct dpdk_env {
    using pool_type = mempool_pool;
    /// Nanoseconds from the timer: whole seconds and the remainder apart, since
    /// cycles * 10^9 leaves 64 bits after a few seconds of TSC (then drain deadlines and
    /// switch durations came out as garbage).
    [[nodiscard]] static std::uint64_t now_ns() noexcept {
        const std::uint64_t c = rte_get_timer_cycles();
        const std::uint64_t hz = rte_get_timer_hz();
        return c / hz * 1'000'000'000ull + c % hz * 1'000'000'000ull / hz;
    }
    int logtype = RTE_LOGTYPE_PMD;
    void log(log_level level, const char* msg) noexcept {
        const std::uint32_t l = level == log_level::error     ? RTE_LOG_ERR
                                : level == log_level::warning ? RTE_LOG_WARNING
                                : level == log_level::info    ? RTE_LOG_INFO
                                                              : RTE_LOG_DEBUG;
        rte_log(l, static_cast<std::uint32_t>(logtype), "net_npa: %s\n", msg);
    }
};

/// Secondary unicast MAC addresses a port may be given (ethdev mac_addr_add), index 0
/// being the default MAC. Fail-safe offers the same order of magnitude; the sub-devices'
/// own tables are often that small.
inline constexpr std::uint32_t max_mac_addrs = 16;

/// The secondary unicast MACs the application added (ethdev mac_addr_add), by ethdev
/// index. npa's control state holds one unicast MAC, so these are kept here, sent to the
/// active path like any control request, and replayed by ethdev_control after the
/// shell's batch, so that they follow the data path like the rest of the control state.
struct mac_list {
    std::array<rte_ether_addr, max_mac_addrs> addrs{};
    std::bitset<max_mac_addrs> used{};

    [[nodiscard]] bool contains(const rte_ether_addr& a) const noexcept {
        for (std::uint32_t i = 0; i < max_mac_addrs; ++i) {
            if (used[i] && rte_is_same_ether_addr(&addrs[i], &a))
                return true;
        }
        return false;
    }
};

/// An npa::control_channel onto one DPDK port: the "authority" for a sub-device is its
/// own PMD. A feature the port lacks (-ENOTSUP) is accepted when asking for it changes
/// nothing (promiscuous on a port that filters nothing, the MTU it already has, an
/// empty multicast list); otherwise it is errc::not_supported and the switch to that
/// port fails with the reason, leaving the old path running.
class ethdev_control {
public:
    std::uint16_t port = RTE_MAX_ETHPORTS;
    /// The secondary MACs every replay brings along (owned by shell_paths).
    const mac_list* extra = nullptr;

    status submit(const control_request& r) {
        switch (r.op) {
        case control_op::set_mac: {
            rte_ether_addr a;
            for (std::size_t i = 0; i < 6; ++i) a.addr_bytes[i] = r.mac[i];
            const int rc = rte_eth_dev_default_mac_addr_set(port, &a);
            return rc == 0 || rc == -ENOTSUP ? status{} : map(rc, "MAC address refused");
        }
        case control_op::add_vlan:
        case control_op::del_vlan: {
            const int rc = rte_eth_dev_vlan_filter(port, r.vlan, r.op == control_op::add_vlan);
            return rc == 0 ? status{} : map(rc, "VLAN filter not supported by the sub-device");
        }
        case control_op::set_mtu: {
            const int rc = rte_eth_dev_set_mtu(port, static_cast<std::uint16_t>(r.mtu));
            std::uint16_t cur = 0;
            if (rc == 0 || (rc == -ENOTSUP && rte_eth_dev_get_mtu(port, &cur) == 0 && cur == r.mtu)) {
                return {};
            }
            return map(rc, "MTU refused by the sub-device");
        }
        case control_op::set_rx_mode: {
            const bool promisc = (r.mode & rx_mode::promisc) != 0;
            const bool allmulti = (r.mode & rx_mode::all_multi) != 0;
            int rc = promisc ? rte_eth_promiscuous_enable(port) : rte_eth_promiscuous_disable(port);
            if (rc != 0 && rc != -ENOTSUP) return map(rc, "promiscuous mode refused");
            rc = allmulti ? rte_eth_allmulticast_enable(port) : rte_eth_allmulticast_disable(port);
            if (rc != 0 && rc != -ENOTSUP) return map(rc, "allmulticast mode refused");
            return {};
        }
        case control_op::set_mcast_list: {
            std::array<rte_ether_addr, max_mcast_addrs> list{};
            for (std::uint32_t i = 0; i < r.mcast_count && i < max_mcast_addrs; ++i) {
                for (std::size_t b = 0; b < 6; ++b) list[i].addr_bytes[b] = r.mcast[i][b];
            }
            const int rc = rte_eth_dev_set_mc_addr_list(port, list.data(), r.mcast_count);
            return rc == 0 || (rc == -ENOTSUP && r.mcast_count == 0)
                       ? status{}
                       : map(rc, "multicast list refused");
        }
        case control_op::set_rss: {
            rte_eth_rss_conf c{};
            std::array<std::uint8_t, rss_key_size> key = r.rss.key;
            c.rss_key = key.data();
            c.rss_key_len = static_cast<std::uint8_t>(key.size());
            c.rss_hf = r.rss.hash_types;
            const int rc = rte_eth_dev_rss_hash_update(port, &c);
            return rc == 0 || (rc == -ENOTSUP && r.rss.hash_types == 0)
                       ? status{}
                       : map(rc, "RSS configuration refused");
        }
        }
        return {errc::invalid_argument, "unknown control request"};
    }

    /// Applies the batch in order, then the secondary MACs, and stops at the first
    /// refusal. DPDK has no transaction across ethdev calls; a refused replay fails the
    /// switch, and the sub-port, which carries no traffic yet, is stopped again by the
    /// shell.
    status submit_batch(std::span<const control_request> batch) {
        if (status st = drop_stale_vlans(batch); !st.ok())
            return st;
        for (const control_request& r : batch) {
            if (status st = submit(r); !st.ok()) return st;
        }
        return sync_macs();
    }

    status add_mac(const rte_ether_addr& a) {
        rte_ether_addr m = a;
        const int rc = rte_eth_dev_mac_addr_add(port, &m, 0);
        return rc == 0 ? status{} : map(rc, "secondary MAC address refused by the sub-device");
    }
    status remove_mac(const rte_ether_addr& a) {
        rte_ether_addr m = a;
        const int rc = rte_eth_dev_mac_addr_remove(port, &m);
        return rc == 0 ? status{} : map(rc, "secondary MAC address removal refused");
    }

private:
    /// A path that carried traffic before may still filter for VLANs removed since: the
    /// batch holds every VLAN in effect, so any other the port has is turned off first.
    status drop_stale_vlans(std::span<const control_request> batch) {
        const rte_eth_dev_data* d = rte_eth_devices[port].data;
        if (d == nullptr || (d->dev_conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_VLAN_FILTER) == 0) {
            return {};
        }
        std::bitset<max_vlan_id + 1> keep;
        for (const control_request& r : batch) {
            if (r.op == control_op::add_vlan && r.vlan <= max_vlan_id)
                keep.set(r.vlan);
        }
        for (std::uint16_t vid = 1; vid <= max_vlan_id; ++vid) {
            const bool on = (d->vlan_filter_conf.ids[vid / 64] >> (vid % 64) & 1u) != 0;
            if (on && !keep[vid]) {
                if (rte_eth_dev_vlan_filter(port, vid, 0) != 0) {
                    return {errc::refused, "stale VLAN filter could not be removed"};
                }
            }
        }
        return {};
    }

    /// Makes the port's secondary MACs the list: a path that carried traffic before may
    /// still hold an address removed since, so those go first, then every listed one
    /// is added (adding one the port has is a no-op in ethdev).
    status sync_macs() {
        if (extra == nullptr)
            return {};
        std::array<rte_ether_addr, 128> have{};
        const int n = rte_eth_macaddrs_get(port, have.data(), static_cast<unsigned>(have.size()));
        for (int i = 1; i < n; ++i) {
            if (!rte_is_zero_ether_addr(&have[i]) && !extra->contains(have[i])) {
                if (status st = remove_mac(have[i]); !st.ok())
                    return st;
            }
        }
        for (std::uint32_t i = 0; i < max_mac_addrs; ++i) {
            if (!extra->used[i])
                continue;
            if (status st = add_mac(extra->addrs[i]); !st.ok())
                return st;
        }
        return {};
    }

public:
private:
    static status map(int rc, const char* why) noexcept {
        return {rc == -ENOTSUP ? errc::not_supported
                : rc == -ENODEV ? errc::removed
                                : errc::refused,
                why};
    }
};
static_assert(npa::control_channel<ethdev_control>);

/// One path per sub-device (path i drives sub-device i): the ethdev plugin for a DPDK
/// port, a loaded plugin image for a sim device model.
using path_shell = npa::shell<dpdk_env, ethdev_plugin, image::loaded_plugin>;
static_assert(path_shell::max_paths >= max_sub_devices);

class shell_paths {
public:
    static constexpr std::uint32_t no_path = path_shell::no_path;

    // ---- data path: the thread that owns queue q ----------------------------------
    // An ethdev path completes TX inside the sub-port's tx_burst; an image path's device
    // completes it later, and the shell's poll reaps it (freeing the mbufs and making
    // room in the ring). So a port with an image path polls on each burst, TX first (an
    // application that only transmits never calls rx_burst).
    std::uint16_t tx_burst(std::uint16_t q, std::span<mbuf_ref> bufs) noexcept {
        if (any_image_) serve_images(q);
        return sh_->tx_burst(q, bufs);
    }
    std::uint16_t rx_burst(std::uint16_t q, std::span<mbuf_ref> out) noexcept {
        if (any_image_) serve_images(q);
        return sh_->rx_burst(q, out);
    }

    /// The path queue q runs on steadily and its sub-port, while that port is live
    /// (path no_path / port RTE_MAX_ETHPORTS otherwise). Queue q's thread only.
    struct steady_port {
        std::uint32_t path = no_path;
        std::uint16_t port = RTE_MAX_ETHPORTS;
    };
    steady_port steady(std::uint16_t q) noexcept {
        const path_id p = sh_->steady_path(q);
        if (p >= npaths_) return {};
        return {p, live_port(p)};
    }

    // ---- control path (serialised by the lock) --------------------------------------

    /// Builds the shell for `queues` queue pairs over sub_ports (in preference order);
    /// each queue refills from pools[q]. A sub-device with images[i] set is an image path
    /// (its sub_ports[i] is RTE_MAX_ETHPORTS).
    status create(std::span<const std::uint16_t> sub_ports,
                  std::span<image_path_device* const> images, std::span<rte_mempool* const> pools,
                  const rte_eth_conf& conf, const queue_config& qc, const npa_devargs& args,
                  int logtype) {
        std::lock_guard<std::mutex> g(lock_);
        sh_.reset();
        env_.logtype = logtype;
        for (std::size_t q = 0; q < qc.queues; ++q) {
            pools_[q] = mempool_pool{pools[q]};
            pool_ptrs_[q] = &pools_[q];
        }
        npaths_ = sub_ports.size();
        any_image_ = false;
        for (std::size_t i = 0; i < npaths_; ++i) {
            ctl_[i].port = sub_ports[i];
            ctl_[i].extra = &macs_;
            devs_[i].port_id = sub_ports[i];
            devs_[i].rx_pools = pools.first(qc.queues);
            devs_[i].conf = conf;
        }
        shell_config cfg;
        cfg.queues = qc;
        cfg.mode = irq_mode::poll;
        cfg.inline_switch = false;  // the application's lcores serve the queues
        // Dwell time is net_npa's (do_switch): it applies to the switches net_npa
        // decides, not to an operator's.
        cfg.policy.min_dwell_ns = 0;
        cfg.policy.backoff_initial_ns = std::uint64_t{args.backoff_ms} * 1'000'000;
        cfg.policy.backoff_max_ns = 8 * cfg.policy.backoff_initial_ns;
        // A sim device steps on a thread of its own: frames it sent round its loop may sit
        // in its inbox, not yet in the RX ring, when the old path first answers short.
        // Read the old path until it has been quiet this long (below the drain timeout).
        for (image_path_device* d : images) {
            if (d != nullptr) {
                cfg.policy.rx_quiet_ns = image_path_device::rx_quiet_ns;
                cfg.policy.drain_timeout_ns = image_path_device::drain_timeout_ns;
            }
        }
        sh_.reset(new (std::nothrow) path_shell(
            env_, std::span<mempool_pool* const>(pool_ptrs_.data(), qc.queues), cfg));
        if (!sh_) return {errc::no_memory, "cannot allocate the shell"};
        if (!sh_->init_status().ok()) return sh_->init_status();
        for (std::size_t i = 0; i < npaths_; ++i) {
            image_[i] = images[i] != nullptr;
            images_[i] = images[i];
            any_image_ = any_image_ || image_[i];
            path_id id = no_path;
            if (images[i] != nullptr) {
                id = sh_->add_path<image::loaded_plugin>(images[i]->device(),
                                                         control_link::to(images[i]->control()));
            } else {
                id = sh_->add_path<ethdev_plugin>(devs_[i], control_link::to(ctl_[i]));
            }
            if (id != i) return {errc::no_memory, "cannot add a path per sub-device"};
        }
        return {};
    }

    /// Boot: brings `path` up while no lcore polls yet, serving the queues itself.
    status start(std::uint32_t path) {
        std::lock_guard<std::mutex> g(lock_);
        status st = request_locked(path, switch_reason::boot);
        for (int i = 0; st.ok() && sh_->switching() && i < boot_spins; ++i) {
            for (std::uint16_t q = 0; q < sh_->queue_count(); ++q) (void)sh_->poll(q);
            (void)sh_->service();
        }
        if (st.ok() && sh_->switching()) return {errc::timeout, "boot switch did not complete"};
        return st;
    }

    /// Detaches every path (the lcores have stopped polling). shell::stop() detaches
    /// the active path; a path a switch was preparing is detached here too (the ethdev
    /// plugin's detach is idempotent).
    void stop() {
        std::lock_guard<std::mutex> g(lock_);
        if (!sh_) return;
        sh_->stop();
        for (std::size_t p = 0; p < npaths_; ++p) {
            sh_->with_plugin(static_cast<path_id>(p), [](auto& pl) { pl.detach(); });
        }
    }

    status request(std::uint32_t path, switch_reason why) {
        std::lock_guard<std::mutex> g(lock_);
        return request_locked(path, why);
    }

    /// Moves a switch in progress along (release of the old path); returns true while
    /// one is in progress.
    bool service() {
        std::lock_guard<std::mutex> g(lock_);
        return sh_ && sh_->service();
    }

    /// Sends r to the active path and records it (the shell replays it on every
    /// switch); before the first path is up it is only checked and recorded. While a
    /// switch is in progress the request is refused (busy): the new path already had
    /// its replay and the old one is on its way out.
    status control(const control_request& r) {
        std::lock_guard<std::mutex> g(lock_);
        if (!sh_) return {errc::bad_state, "port not started"};
        if (sh_->switching())
            return {errc::busy, "a switch is in progress; retry"};
        return sh_->control(r);
    }

    /// Secondary MACs (ethdev index 1..): sent to the active path like control(),
    /// recorded here, replayed by every path's ethdev_control. Without an active path
    /// (port stopped) they are only recorded.
    status mac_add(std::uint32_t index, const rte_ether_addr& a) {
        std::lock_guard<std::mutex> g(lock_);
        if (index >= max_mac_addrs)
            return {errc::invalid_argument, "MAC index out of range"};
        if (sh_ && sh_->switching())
            return {errc::busy, "a switch is in progress; retry"};
        if (const std::uint32_t act = running_path(); act != no_path && !image_[act]) {
            if (status st = ctl_[act].add_mac(a); !st.ok())
                return st;
        }
        macs_.addrs[index] = a;
        macs_.used.set(index);
        return {};
    }
    status mac_remove(std::uint32_t index) {
        std::lock_guard<std::mutex> g(lock_);
        if (index >= max_mac_addrs || !macs_.used[index])
            return {};
        if (sh_ && sh_->switching())
            return {errc::busy, "a switch is in progress; retry"};
        // ethdev forgets the address whatever the answer; so does the list, and a path
        // that kept it loses it at its next replay.
        macs_.used.reset(index);
        if (const std::uint32_t act = running_path(); act != no_path && !image_[act]) {
            return ctl_[act].remove_mac(macs_.addrs[index]);
        }
        return {};
    }

    /// The path's device is gone: from now on the data path never touches it (the
    /// ethdev plugin's mark_removed).
    void mark_removed(std::uint32_t path) {
        std::lock_guard<std::mutex> g(lock_);
        if (!sh_ || path >= npaths_)
            return;
        if (auto* pl = sh_->plugin<ethdev_plugin>(static_cast<path_id>(path))) pl->mark_removed();
    }

    /// A sub-device came back under a new port id (hot plug): the path's device window
    /// and control channel follow it.
    void set_sub_port(std::uint32_t path, std::uint16_t port) {
        std::lock_guard<std::mutex> g(lock_);
        if (path >= max_sub_devices) return;
        devs_[path].port_id = port;
        ctl_[path].port = port;
    }

    // Read by every control thread (the application's, the interrupt thread running
    // alarms and events, telemetry): under the lock, as the shell's control state is.
    [[nodiscard]] std::uint32_t active() {
        std::lock_guard<std::mutex> g(lock_);
        return running_path();
    }
    [[nodiscard]] bool switching() {
        std::lock_guard<std::mutex> g(lock_);
        return sh_ && sh_->switching();
    }
    /// The path the data path is on, or moving to while a switch is in progress.
    [[nodiscard]] std::uint32_t target() {
        std::lock_guard<std::mutex> g(lock_);
        return sh_ && sh_->switching() ? target_ : running_path();
    }
    [[nodiscard]] std::size_t paths() const noexcept { return npaths_; }

    /// Per queue totals over all paths (monotonic across switches) and per path.
    [[nodiscard]] queue_stats queue_totals(std::uint16_t q) {
        std::lock_guard<std::mutex> g(lock_);
        return sh_ ? sh_->queue_totals(q) : queue_stats{};
    }
    [[nodiscard]] queue_stats path_totals(std::uint32_t p) {
        std::lock_guard<std::mutex> g(lock_);
        queue_stats t;
        for (std::uint16_t q = 0; sh_ && q < sh_->queue_count(); ++q) {
            t += sh_->path_stats(static_cast<std::uint8_t>(p), q);
        }
        return t;
    }
    /// A copy of the switch telemetry, taken under the lock.
    [[nodiscard]] switch_history history() {
        std::lock_guard<std::mutex> g(lock_);
        return sh_ ? sh_->history() : switch_history{};
    }

private:
    /// Spins of the boot loop: each poll() moves every queue at least one step; a
    /// handful is enough, the bound only turns a bug into an error instead of a hang.
    static constexpr int boot_spins = 100'000;

    /// The port path p drives while its plugin is attached and its device not gone.
    std::uint16_t live_port(path_id p) noexcept {
        const auto* pl = sh_->plugin<ethdev_plugin>(p);
        return pl != nullptr && pl->attached() && pl->health() == errc::ok ? pl->port_id()
                                                                           : RTE_MAX_ETHPORTS;
    }

    std::uint32_t running_path() const noexcept { return sh_ ? sh_->active_path() : no_path; }

    status request_locked(std::uint32_t path, switch_reason why) {
        if (!sh_) return {errc::bad_state, "port not started"};
        if (path >= npaths_) return {errc::invalid_argument, "no such path"};
        const status st = sh_->request_switch(static_cast<path_id>(path), why);
        if (st.ok()) target_ = path;
        return st;
    }

    /// A sim device's model steps on a thread of its own, which the scheduler may hold
    /// off for tens of milliseconds on a loaded machine. Frames that thread has completed
    /// on TX but not yet looped into the RX ring are on no ring the shell can see: a drain
    /// that read the old path short then would end while they are still coming, and the
    /// frames sent on the new path meanwhile would overtake them. So while queue q is not
    /// steady (a switch drains, holds or flushes), its thread steps every model itself
    /// before it reads or sends: one step moves all the model holds (TX, the loop, RX)
    /// under the model's lock, so what a read finds short has really ended, whatever the
    /// scheduler does to the model's thread.
    void serve_images(std::uint16_t q) noexcept {
        if (sh_->steady_path(q) == no_path) {
            for (std::size_t i = 0; i < npaths_; ++i) {
                if (images_[i] != nullptr) images_[i]->step_now();
            }
        }
        (void)sh_->poll(q);
    }

    std::mutex lock_;
    dpdk_env env_{};
    std::unique_ptr<path_shell> sh_;
    std::size_t npaths_ = 0;
    std::uint32_t target_ = no_path;
    std::array<bool, max_sub_devices> image_{}; ///< path i runs a plugin image
    std::array<image_path_device*, max_sub_devices> images_{}; ///< its device (the port's)
    bool any_image_ = false;
    std::array<ethdev_port, max_sub_devices> devs_{};
    std::array<ethdev_control, max_sub_devices> ctl_{};
    mac_list macs_{}; ///< kept across stop/start, as ethdev keeps its MAC table
    std::array<mempool_pool, ethdev_max_queues> pools_{};
    std::array<mempool_pool*, ethdev_max_queues> pool_ptrs_{};
};

} // namespace npa::dpdk
