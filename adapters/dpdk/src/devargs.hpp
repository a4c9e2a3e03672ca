// devargs.hpp: the net_npa device arguments, parsed and validated before anything is
// probed, so that a bad command line fails with a sentence and changes nothing.
//
//   --vdev 'net_npa0,dev(<device>),dev(<device>)...[,active=<i>][,dwell_ms=<n>]
//           [,backoff_ms=<n>][,auto=<0|1>][,plugin=<file|dir>,trusted_key=<file>]'
//
// dev(...) takes any DPDK device string, vdevs with their own arguments included
// (dev(net_null0,size=64), dev(0000:03:00.1)), as DPDK's fail-safe PMD does; the order of
// the dev() entries is the preference order (the first is preferred). The remaining
// key=value pairs go through rte_kvargs, except the two file names, taken as they are.
//
// A sub-device may also be a device model of npa's simulator in this process,
// dev(sim:simnic): its data path is a plugin image (plugin=, an image file or a directory
// of *.npai files, the one for the device chosen by its header), signed by the key in
// trusted_key= (a *.pub file: 64 hex digits). The parser checks the combination; the
// files are read and checked by the probe (image_path.hpp).
#pragma once

#include <npa/status.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace npa::dpdk {

// Tuning constants, with reasons.
/// Sub-devices per port: fail-safe allows 2; 8 covers "one per NIC plus a software path"
/// on any real host while keeping per-port state inline.
inline constexpr std::size_t max_sub_devices = 8;
/// Longest device string accepted inside dev(...): DPDK's own devargs limit is 128 bytes
/// for a name; 256 leaves room for a vdev's arguments.
inline constexpr std::size_t max_devstr = 256;
/// Minimum time on a path before an automatic switch away or back (hysteresis: a
/// flapping link cannot make the port flap). Fail-safe polls every 2 s; 100 ms is
/// long enough to ride out a link bounce and short next to a human-visible outage.
inline constexpr std::uint32_t default_dwell_ms = 100;
/// After a failed switch to a path, automatic switches to it wait this long.
inline constexpr std::uint32_t default_backoff_ms = 1000;
/// Upper bound for both times: an hour; anything longer is a typo.
inline constexpr std::uint32_t max_policy_ms = 3'600'000;
/// Longest file name in plugin= and trusted_key=: the whole argument string is at most
/// 1,023 characters, and a path this long still leaves room for the rest.
inline constexpr std::size_t max_file_arg = 512;
/// The prefix of a sub-device that is a sim device model in the process (dev(sim:simnic)).
inline constexpr const char* sim_device_prefix = "sim:";
/// The sim device models a plugin image can drive in net_npa.
inline constexpr const char* sim_device_models[] = {"simnic"};

struct npa_devargs {
    std::array<std::array<char, max_devstr>, max_sub_devices> devs{};
    std::size_t dev_count = 0;
    std::uint32_t active = 0;  ///< index of the path to start on
    std::uint32_t dwell_ms = default_dwell_ms;
    std::uint32_t backoff_ms = default_backoff_ms;
    bool auto_switch = true;   ///< switch on removal / link down / preferred path back
    /// plugin=: an image file or a directory of them (empty: no image path).
    std::array<char, max_file_arg> plugin{};
    /// trusted_key=: the public key file the image's signature must verify with.
    std::array<char, max_file_arg> trusted_key{};
    std::array<char, 320> error{};  ///< why parsing failed (empty on success)
};

/// True if the device string names a sim device model (dev(sim:<model>)).
[[nodiscard]] bool is_sim_device(const char* dev) noexcept;

/// Parses and validates `args` (may be null or empty: then "no sub-device" is the error).
/// On failure returns errc::invalid_argument and leaves the sentence in out.error.
[[nodiscard]] status parse_devargs(const char* args, npa_devargs& out) noexcept;

// ---- telemetry command parameters (/npa/switch,<port_id>,<path>) -----------------------

/// One parameter of a telemetry command: its name (for the sentences) and its largest
/// value.
struct tel_param {
    const char* name;
    std::uint64_t max;
};

/// The values of a telemetry command's parameters, or why they are wrong.
struct tel_params {
    static constexpr std::size_t max_count = 4;
    std::array<std::uint64_t, max_count> v{};
    std::array<char, 160> error{};  ///< a sentence (empty on success)
};

/// Parses `params` (may be null) as exactly specs.size() comma-separated unsigned decimal
/// numbers, each within its spec's range, with 64-bit arithmetic (nothing wraps:
/// 4294967297 is out of range, not 1). On failure returns errc::invalid_argument and
/// leaves the sentence in out.error.
[[nodiscard]] status parse_tel_params(const char* params, const tel_param* specs,
                                      std::size_t count, tel_params& out) noexcept;

} // namespace npa::dpdk
