// npa-linkd's plugin images: a 'pci image' lower runs the plugin of a signed image file
// from the plugin directory the host provides, instead of one compiled into the daemon.
//
// The choice is by device: the lower's function has a vendor:device (sysfs), and the image
// whose header names that device is the one (npa/image/format.hpp, pci_device_id). There
// must be exactly one: no image, two images for the device, an unreadable directory, a bad
// or unknown signature, an image the function's window cannot take are each refused with a
// sentence, and the lower gets no path. The function itself (binding, BARs, rings) and its
// control path (the VF mailbox) stay the daemon's: an image is the data path plugin only,
// as in the NPA split. So only devices the daemon can open take an image: the 82576 VF.
//
// A lower that names a compiled-in plugin ('pci igbvf') keeps it even when the directory
// holds an image for its device: the configuration names one plugin per lower, and the
// status notes the image that is not used.
#pragma once

#include <npa/image/loaded_plugin.hpp>
#include <npa/plugins/igbvf/window.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace npa::lnx::tools {

/// An Ed25519 public key an image's signature may be made with.
using trusted_key = std::array<std::uint8_t, 32>;

/// Reads a public key file: 64 hex digits, then optionally a newline. Refuses anything
/// else with a sentence naming the file.
[[nodiscard]] bool read_trusted_key(const std::string& path, trusted_key& out, std::string& err);

/// An image file of the plugin directory, as its header describes it.
struct image_file {
    std::string path;
    std::uint32_t device_id = 0;
    std::string name; ///< the plugin's name in the header
};

/// The images of `dir`: its regular files named *.npai, in name order, whose structure
/// parses (npa/image/parse.hpp). The others named *.npai are in `skipped` with why.
/// False (with err) when the directory cannot be read.
[[nodiscard]] bool scan_plugin_dir(const std::string& dir, std::vector<image_file>& images,
                                   std::vector<std::string>& skipped, std::string& err);

/// The one image of `dir` for `device_id`. Refused: the directory cannot be read, no image
/// names the device, more than one does.
[[nodiscard]] bool select_image(const std::string& dir, std::uint32_t device_id, image_file& out,
                                std::string& err);

/// "8086:10ca".
[[nodiscard]] std::string format_device_id(std::uint32_t device_id);

/// True if npa-linkd can give an image of `device_id` a window (it opens the function and
/// runs its control path): the 82576 VF.
[[nodiscard]] bool image_device_supported(std::uint32_t device_id) noexcept;

/// A loaded image bound to a function's window: the path's device (it holds the image, so
/// the image stays mapped while the path's plugin or this lives), and what status shows.
struct lower_image {
    npa::image::image_device dev;
    std::string file;
    std::string name;
    std::string digest; ///< the image's SHA-512 digest, hex
    std::string signer; ///< the trusted key that signed it, hex
};

/// Selects and loads the image for an 82576 VF from `dir` (select_image, then every check
/// of npa::image::load_image against `keys`, then binding to `w`).
[[nodiscard]] bool load_lower_image(const std::string& dir, std::span<const trusted_key> keys,
                                    std::uint32_t device_id, igbvf_window& w, lower_image& out,
                                    std::string& err);

/// For a lower that names a compiled-in plugin: a note when `dir` also holds an image for
/// its device (the compiled-in plugin runs), else empty.
[[nodiscard]] std::string unused_image_note(const std::string& dir, std::uint32_t device_id,
                                            const std::string& plugin);

/// The vendor:device of the PCI function at `address` from sysfs under `sysfs_devices`
/// (/sys/bus/pci/devices), as an image device id.
[[nodiscard]] bool read_pci_device_id(const std::string& sysfs_devices, const std::string& address,
                                      std::uint32_t& out, std::string& err);

} // namespace npa::lnx::tools
