// npa_private.hpp: what the files of the net_npa driver share, laid out as DPDK's fail-safe
// PMD lays out its own:
//   net_npa.cpp    probe and remove, the public API (rte_pmd_npa.h), telemetry, registration
//   npa_ops.cpp    the ethdev operations and the control state the application sets
//   npa_ether.cpp  the sub-devices: usability, link, switching, detach and return
//   npa_intr.cpp   removal events and the policy timer (the EAL interrupt thread)
//   npa_rxtx.cpp   the burst functions
//   devargs.cpp    the arguments (dev(...), active=, dwell_ms= ...) and telemetry parameters
// Nothing here is exported from the shared object (hidden visibility).
#pragma once

#include "datapath.hpp"
#include "devargs.hpp"
#include "lanes.hpp"

#include <npa/control_state.hpp>
#include <npa/dpdk/ethdev_plugin.hpp>

#include <ethdev_driver.h>
#include <rte_ethdev.h>
#include <rte_log.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace npa::dpdk::pmd {

// Tuning constants, with reasons.
/// Link state of the sub-devices is checked this often (not every PMD raises LSC
/// interrupts; net_ring and net_null never do). Short enough to react to a link loss
/// within the default dwell time, long enough to cost nothing.
constexpr std::uint64_t policy_tick_us = 20'000;
/// While a switch is in progress the release step (service()) runs this often, so the
/// old sub-port is stopped soon after the last queue flipped.
constexpr std::uint64_t switching_tick_us = 1'000;
/// xstats per path (see xstat_names) and global switch telemetry entries.
constexpr unsigned path_xstats = 4;
/// Requests a full control state can make (npa::control_state's replay batch).
constexpr std::size_t control_batch_max = control_state::max_batch;
constexpr unsigned switch_xstats = 7;


extern int logtype;  ///< pmd.net.npa (net_npa.cpp)

#define NPA_LOG(level, ...) rte_log(RTE_LOG_##level, static_cast<std::uint32_t>(logtype), \
                                    "net_npa: " __VA_ARGS__)


struct sub_device {
    std::uint16_t port_id = RTE_MAX_ETHPORTS;
    bool probed_here = false;   ///< we called rte_dev_probe (and so remove it at close)
    // Written by the EAL interrupt thread (removal events, policy_tick) and read by the
    // application's control calls: atomics, so neither side reads a torn or stale flag.
    std::atomic<bool> removed{false};  ///< RTE_ETH_EVENT_INTR_RMV or DESTROY seen
    /// RTE_ETH_EVENT_DESTROY seen: the application released the port itself (device
    /// detach); nothing may be called on it any more, not even to stop or close it.
    std::atomic<bool> destroyed{false};
    std::atomic<bool> arrived{false};  ///< came back (hot plug); policy_tick may switch to it
    std::atomic<bool> marked{false};   ///< its plugin was told (mark_removed): no more bursts
    std::uint64_t backoff_until_ns = 0;
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    /// A sim device whose path is a plugin image (dev(sim:simnic)); it has no DPDK port
    /// (port_id stays RTE_MAX_ETHPORTS). Owned by npa_port::images.
    image_path_device* image = nullptr;
};

struct npa_port {
    rte_eth_dev* dev = nullptr;
    npa_devargs args{};
    /// The image paths' devices, by sub-device index: declared before paths so that the
    /// shell (whose plugins hold the images and drive the devices) goes first.
    std::array<std::unique_ptr<image_path_device>, max_sub_devices> images{};
    shell_paths paths{};
    std::array<sub_device, max_sub_devices> subs{};
    std::size_t nsubs = 0;
    rte_eth_dev_owner owner{};
    /// The control state the application asked for, kept across stop/start: each start
    /// builds a new shell and hands it this state before the first path comes up (the
    /// secondary MACs are kept by shell_paths). Only what the application accepted.
    control_state ctl{};
    bool mtu_set = false;  ///< the application set an MTU; else the sub-devices' default stays
    std::array<rte_mempool*, ethdev_max_queues> rx_pools{};
    std::uint16_t rx_desc = 512;
    std::uint16_t tx_desc = 512;
    port_lanes lanes{};
    std::array<queue_stats, ethdev_max_queues> base{};  ///< stats_reset baseline per queue
    /// When the last switch was requested (dwell): do_switch runs on the application's
    /// and on the interrupt thread.
    std::atomic<std::uint64_t> last_switch_ns{0};
    std::atomic<bool> started{false};   ///< read by policy_tick on the interrupt thread
    std::atomic<bool> alarm_set{false}; ///< written by policy_tick, read by stop/close
    bool bus_removing = false;          ///< closed by the bus's remove (see release_subs)
};

/// The operations every net_npa port has (npa_ops.cpp); a port is ours if its dev_ops is this.
extern const eth_dev_ops npa_ops;

inline npa_port* priv(rte_eth_dev* dev) noexcept { return static_cast<npa_port*>(dev->data->dev_private); }

// ---- npa_ops.cpp --------------------------------------------------------------------------
int to_errno(const status& st) noexcept;
mac_addr to_mac(const rte_ether_addr& a) noexcept;
int npa_dev_stop(rte_eth_dev* dev);

// ---- npa_ether.cpp ------------------------------------------------------------------------
/// Link of a sub-port: up, down, or unknown (not started: a port in standby is only
/// configured when a switch prepares it, and many PMDs report no link before that).
enum class link_state { up, down, unknown };
bool usable(const npa_port& p, std::size_t i) noexcept;
link_state link_of(const sub_device& s) noexcept;
std::uint32_t best_path(const npa_port& p, std::uint32_t except, bool need_up) noexcept;
int switch_errno(const status& st) noexcept;
status do_switch(npa_port& p, std::uint32_t path, switch_reason why) noexcept;
void watch(std::uint16_t port, npa_port& p, bool on) noexcept;
void retire_removed(npa_port& p) noexcept;
void claim_returned(npa_port& p) noexcept;
void mark_gone(npa_port& p) noexcept;
void release_subs(npa_port& p) noexcept;

// ---- npa_intr.cpp -------------------------------------------------------------------------
void arm_policy(npa_port& p) noexcept;
void policy_tick(void* arg);
int on_sub_event(std::uint16_t sub_port, rte_eth_event_type type, void* arg, void*);

// ---- npa_rxtx.cpp -------------------------------------------------------------------------
std::uint16_t npa_rx_burst(void* rxq, rte_mbuf** pkts, std::uint16_t n);
std::uint16_t npa_tx_burst(void* txq, rte_mbuf** pkts, std::uint16_t n);

} // namespace npa::dpdk::pmd
