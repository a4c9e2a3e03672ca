// npa-linkd: an npa shell whose OS-facing side is a TAP interface and whose paths are
// Linux plugins over lower interfaces.
//
// One thread runs everything (DESIGN.md section 4 with inline switching): a poll loop
// over the TAP queues, the active plugins' sockets, rtnetlink and the control socket.
// PCI lowers (a vmxnet3, an 82576 VF) are driven from user space through npa/linux/pci:
// they have no file descriptor, so while one is attached the loop polls them every
// millisecond at most.
// Per iteration: frames the stack sent on the TAP go to shell.tx_burst, frames the shell
// received are written to the TAP, completions are reaped and any switch moves along.
// Because the loop never blocks on a switch, traffic keeps flowing while one is under
// way: TX waits in the shell's backlog, RX is read from the old path and the new one.
#pragma once

#include "config.hpp"
#include "plugin_images.hpp"

#include <npa/linux/af_packet.hpp>
#include <npa/linux/af_xdp.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/linux/pci/dma_memory.hpp>
#include <npa/linux/pci/igbvf.hpp>
#include <npa/linux/pci/vmxnet3.hpp>
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/linux/rtnetlink.hpp>
#include <npa/linux/rx_whole_gate.hpp>
#include <npa/linux/tap.hpp>
#include <npa/linux/tap_tso.hpp>
#include <npa/linux/umem.hpp>
#include <npa/shell.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace npa::lnx::tools {

/// The memory of the shell's one buffer pool: a UMEM (device addresses are UMEM offsets,
/// so AF_XDP sends and receives without a copy) or, when PCI lowers are configured,
/// hugepage DMA memory (device addresses are physical). AF_PACKET copies and takes either.
class linkd_memory {
public:
    linkd_memory() noexcept = default;
    explicit linkd_memory(umem_memory m) noexcept : m_(std::move(m)) {}
    explicit linkd_memory(pci::dma_memory m) noexcept : m_(std::move(m)) {}
    [[nodiscard]] std::byte* base() const noexcept {
        return std::visit([](const auto& m) { return m.base(); }, m_);
    }
    [[nodiscard]] std::size_t size() const noexcept {
        return std::visit([](const auto& m) { return m.size(); }, m_);
    }
    [[nodiscard]] iova_t iova_base() const noexcept {
        return std::visit([](const auto& m) { return m.iova_base(); }, m_);
    }

private:
    std::variant<umem_memory, pci::dma_memory> m_;
};
using linkd_pool = fixed_pool<linkd_memory>;

/// The shell's environment: the buffer pool and the monotonic clock.
struct linkd_env {
    using pool_type = linkd_pool;
    static std::uint64_t now_ns() noexcept;
    void log(log_level level, const char* msg) noexcept;
};

/// The policy authority of the control path: the PF/hypervisor role, played by the
/// daemon with the policy file. Stateless checks, so a batch is all or nothing.
class policy_channel {
public:
    explicit policy_channel(const policy_config& p) noexcept : pol_(p) {}
    [[nodiscard]] status submit(const control_request& r) const;
    [[nodiscard]] status submit_batch(std::span<const control_request> b) const;
    std::uint32_t max_mtu = 1500; ///< of the paths in use (a frame must fit a buffer)

private:
    const policy_config& pol_;
};

/// The control path of a PCI lower: the daemon's policy first, then the device's own
/// authority (a vmxnet3's command register; for a VF, the PF's answer on the mailbox).
/// A refusal of either comes back to the shell, which reports it (a switch whose replay
/// is refused does not happen).
/// (A VF's replay of the MAC its PF assigned at the reset is answered by igbvf_control.)
template <class Device>
class policed_channel {
public:
    policed_channel(const policy_channel& p, Device& d) noexcept : pol_(p), dev_(d) {}
    [[nodiscard]] status submit(const control_request& r) {
        const status st = pol_.submit(r);
        return !st.ok() ? st : dev_.submit(r);
    }
    [[nodiscard]] status submit_batch(std::span<const control_request> b) {
        const status st = pol_.submit_batch(b);
        return !st.ok() ? st : dev_.submit_batch(b);
    }
    /// The shell's reset notice reaches the device's channel (a VF's mailbox RESET).
    void device_reset() noexcept
        requires requires(Device& d) { { d.device_reset() } noexcept; }
    {
        dev_.device_reset();
    }

private:
    const policy_channel& pol_;
    Device& dev_;
};

/// A PCI lower's function (bound to uio_pci_generic, BARs mapped, rings carved from the
/// daemon's DMA memory) and its control path. Never moves: the shell holds pointers.
struct pci_lower {
    pci::vmxnet3_function vmx;
    pci::igbvf_function vf;
    std::optional<vmxnet3_control> vmx_ctl;
    std::optional<igbvf_control> vf_ctl;
    std::optional<policed_channel<vmxnet3_control>> vmx_link;
    std::optional<policed_channel<igbvf_control>> vf_link;
    mac_addr assigned{}; ///< the MAC the PF assigned to a VF (zero: none)
    std::optional<lower_image> image; ///< a 'pci image' lower's plugin, bound to vf's window
};

// The shell: one path per lower, an instance of the lower's plugin kind (any two
// lowers can be switched between: the outgoing and the incoming path are attached at
// the same time). loaded_plugin runs a 'pci image' lower's plugin image.
using linkd_shell = npa::shell<linkd_env, af_packet_plugin, af_xdp_plugin, vmxnet3_plugin,
                               igbvf_plugin, npa::image::loaded_plugin>;

struct lower_state {
    lower_config cfg;
    std::unique_ptr<pci_lower> pci; ///< pci lowers only
    std::string note;               ///< shown by status: what the PF or the policy decided
    std::string image_note;         ///< shown by status: an image in plugin_dir not used
    npa::path_id path = linkd_shell::no_path; ///< this lower's shell path
    int ifindex = 0;                          ///< 0: not present
    bool running = false;
    af_packet_device packet_dev{};
    af_xdp_device xdp_dev{};
    std::uint64_t switches_to = 0;
};

struct tap_counters {
    std::uint64_t read = 0, read_dropped = 0, written = 0, write_dropped = 0;
    std::uint64_t announces = 0;
    std::uint64_t control_applied = 0, control_refused = 0;
    std::uint64_t bad_requests = 0;
    std::uint64_t refused_clients = 0; ///< connections from other users (SO_PEERCRED)
};

/// Nanoseconds as microseconds with one decimal, as the log and the replies show them.
[[nodiscard]] std::string fmt_us(std::uint64_t ns);

class linkd {
public:
    explicit linkd(daemon_config cfg);
    ~linkd();
    linkd(const linkd&) = delete;
    linkd& operator=(const linkd&) = delete;

    /// Opens everything and brings the first usable lower up. False with a message.
    [[nodiscard]] bool init(std::string& err);
    /// Runs until stop() (or a signal handler sets the flag).
    void run();
    void stop() noexcept { stop_.store(true); }

private:
    // The loop (linkd.cpp).
    /// Opens the PCI lowers' functions; may replace `mac` by the one a PF assigned.
    bool open_pci_lowers(std::string& err, mac_addr& mac);
    bool data_iteration();
    /// Moves what the stack sent on TAP queue q to the shell (or, a TSO frame, whole to
    /// the lower when the queue is steady on a path that takes it). True if it did work.
    bool tap_to_shell(std::uint16_t q);
    /// Offers the TSO frame in s whole to queue q's steady path (tx_gso).
    gso_send send_whole(std::uint16_t q, const tap_gso_scratch& s);
    /// Writes to TAP queue q the large frame an AF_PACKET lower holds back for it (whole
    /// mode, af_packet_plugin::rx_whole). True if one waited.
    bool rx_whole(std::uint16_t q);
    void handle_link_event(const link_event& ev);

    // Path management (linkd_switch.cpp).
    status request_switch(std::size_t lower, switch_reason why);
    void failover(switch_reason why);
    void after_switch();
    /// Once per loop iteration, after the shell's service step: finishes a completed
    /// switch, fails over from an unhealthy active path, retries a pending failover and
    /// repeats the post-switch announcement.
    void supervise_paths();
    void handle_lower_event(const link_event& ev);
    void announce();
    void send_raw_announce(const lower_state& l);
    int lower_of_path(std::uint8_t path) const noexcept;

    // The control path (linkd_control_path.cpp).
    void apply_tap_change(const link_event& ev);
    /// True when the event was about a VLAN interface on the TAP (and is now handled).
    bool apply_vlan_change(const link_event& ev);

    // The control socket (linkd_control_socket.cpp).
    void accept_client();
    void handle_client(std::size_t i);
    std::string handle_request(const std::string& line);
    std::string render_status(bool text);
    static std::string render_image(const lower_state& l, bool text);
    std::string render_stats(bool text);
    std::string do_switch(const std::string& target, bool text);

    daemon_config cfg_;
    linkd_env env_;
    pci::dma_memory rings_; ///< PCI lowers' rings: outlives every device that DMAs into it
    std::unique_ptr<linkd_pool> pool_;
    std::vector<linkd_pool*> pools_;
    bool polled_ = false; ///< a PCI lower is configured: the loop polls it
    std::unique_ptr<policy_channel> policy_;
    std::unique_ptr<linkd_shell> shell_;
    tap_device tap_;
    link_monitor mon_;
    std::vector<lower_state> lowers_;
    int listen_fd_ = -1;
    std::vector<int> clients_;
    std::vector<std::string> client_buf_;
    std::vector<std::vector<buffer_ref>>
        pending_tx_; ///< per queue: read from the TAP, not yet taken
    std::vector<tap_gso_scratch> tap_rx_; ///< per queue: a TSO frame being cut into segments
    std::vector<int> vlan_ifindex_;
    std::vector<std::uint16_t> vlan_id_;
    tap_counters tc_;
    bool was_switching_ = false;
    rx_whole_gate rx_whole_gate_; ///< whole mode only while the shell is steady
    bool failover_pending_ = false;
    switch_reason failover_reason_ = switch_reason::surprise_removal;
    unsigned announces_left_ = 0;
    std::uint64_t next_announce_ns_ = 0;
    std::atomic<bool> stop_{false};
};

} // namespace npa::lnx::tools
