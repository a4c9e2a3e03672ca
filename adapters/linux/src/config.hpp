// npa-linkd configuration: command-line flags, the config file and the policy file.
//
// Config file (one setting per line, '#' starts a comment, later lines add to or
// override earlier ones, flags override the file):
//   tap = npa0                      the TAP interface the stack sees
//   lower = va0 af_xdp [copy|zero-copy|auto]
//   lower = va1 af_packet           lower interfaces, in order of preference
//   lower = 0000:00:03.0 pci vmxnet3    a PCI function driven from user space
//   lower = 0000:01:10.0 pci igbvf      (uio_pci_generic, hugepage DMA memory)
//   lower = 0000:01:10.0 pci image      its plugin from a signed image in plugin_dir, the
//                                       one whose header names the function's vendor:device
//   plugin_dir = /usr/lib/npa/plugins   where 'pci image' lowers find their images (*.npai)
//   trusted_key = /etc/npa/vendor.pub   repeatable: an Ed25519 public key (64 hex digits)
//                                       whose signature an image must carry
//   socket = /run/npa/npa-linkd.sock    the control socket
//   mac = 02:00:00:00:00:01         the shell's MAC (default: the TAP's own)
//   queues = 1
//   failback = yes                  return to a preferred lower when it comes back
//   persist = no                    keep the TAP (addresses, routes, MAC) when the daemon exits
//   min_dwell_ms = 50               hysteresis between discretionary switches
//   policy = /etc/npa/policy.conf
// Policy file (same syntax):
//   allow_mac = 02:00:00:00:00:01   repeatable; none listed: any unicast MAC
//   allow_vlan = 10, 20-29          VLAN ids the TAP may use; none listed: no VLANs
//   mtu_min = 576
//   mtu_max = 1500
#pragma once

#include "control_protocol.hpp"

#include <npa/control.hpp>
#include <npa/linux/af_xdp.hpp>

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace npa::lnx::tools {

enum class plugin_kind : std::uint8_t { af_packet, af_xdp, pci };

/// The device behind a pci lower: which plugin drives its rings and which control path
/// carries its MAC, MTU and filters. `image`: the plugin comes from a signed image in the
/// plugin directory, chosen by the function's vendor:device (plugin_images.hpp); the
/// function and its control path are the daemon's, as for the compiled-in plugins.
enum class pci_device : std::uint8_t { vmxnet3, igbvf, image };

[[nodiscard]] const char* to_string(plugin_kind k) noexcept;
[[nodiscard]] const char* to_string(pci_device d) noexcept;

struct lower_config {
    std::string ifname; ///< the interface, or for a pci lower its address (0000:00:03.0)
    plugin_kind kind = plugin_kind::af_packet;
    xdp_mode mode = xdp_mode::automatic;
    pci_device device = pci_device::vmxnet3; ///< pci lowers only
    /// The plugin as status and logs name it: "af_xdp", "af_packet", "pci vmxnet3" ...
    [[nodiscard]] std::string plugin_name() const;
};

struct policy_config {
    std::vector<mac_addr> allowed_macs; ///< empty: any unicast MAC
    std::bitset<max_vlan_id + 1> vlans; ///< allowed VLAN ids
    std::uint32_t mtu_min = 68;
    std::uint32_t mtu_max = 1500;
};

struct daemon_config {
    std::string tap = "npa0";
    std::vector<lower_config> lowers;
    std::string socket = default_socket;
    bool has_mac = false;
    mac_addr mac{};
    std::uint16_t queues = 1;
    bool failback = true;
    bool persist = false; ///< the TAP outlives the daemon (TUNSETPERSIST): a restart re-attaches
    std::uint32_t min_dwell_ms = 50;
    policy_config policy;
    std::string plugin_dir;                ///< images for 'pci image' lowers
    std::vector<std::string> trusted_keys; ///< public key files (plugin_images.hpp)
    bool help = false;
};

/// At most this many lowers of one plugin (the shell has two paths per plugin type; the
/// PCI device kinds and the image plugin are one plugin type each).
inline constexpr std::size_t max_lowers_per_kind = 2;

/// "0000:00:03.0" or the short "00:03.0" (domain 0); `out` is the full form.
[[nodiscard]] bool parse_pci_address(std::string_view s, std::string& out);
[[nodiscard]] bool parse_mac(std::string_view s, mac_addr& out);
[[nodiscard]] std::string format_mac(const mac_addr& m);

/// Parses the flags (and any --config / --policy files they name, in order). On error
/// returns false with a one-line message naming the offending flag or file:line.
[[nodiscard]] bool parse_args(int argc, const char* const* argv, daemon_config& cfg,
                              std::string& err);
[[nodiscard]] bool load_config_file(const std::string& path, daemon_config& cfg, std::string& err);
[[nodiscard]] bool load_policy_file(const std::string& path, policy_config& pol, std::string& err);
/// Checks the whole configuration (lowers named, no duplicates, limits).
[[nodiscard]] bool validate(const daemon_config& cfg, std::string& err);

/// Reads the regular file `path` whole into `text`, refusing one larger than `cap` bytes
/// (or endless, such as /dev/zero) with a sentence naming it.
[[nodiscard]] bool read_small_file(const std::string& path, std::size_t cap, std::string& text,
                                   std::string& err);

[[nodiscard]] const char* usage() noexcept;

} // namespace npa::lnx::tools
