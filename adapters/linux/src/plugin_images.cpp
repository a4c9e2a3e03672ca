// npa-linkd's plugin images: finding, checking and loading the image of a 'pci image'
// lower. Every refusal is one sentence that names the file or directory.
#include "plugin_images.hpp"

#include "config.hpp"

#include <npa/image/parse.hpp>
#if NPA_LINKD_IMAGES
#include <npa/image/posix_loader.hpp>
#endif

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace npa::lnx::tools {

namespace {

/// Images are small (tens of KiB); a larger file is not read whole.
constexpr std::size_t max_image_bytes = 16u << 20;

std::span<const std::byte> bytes_of(const std::string& s) noexcept {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

} // namespace

bool read_trusted_key(const std::string& path, trusted_key& out, std::string& err) {
    std::string b;
    if (!read_small_file(path, 4096, b, err)) {
        err = "trusted key " + err;
        return false;
    }
    std::string_view t = b;
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back())))
        t.remove_suffix(1);
    bool ok = t.size() == 2 * out.size();
    for (std::size_t i = 0; ok && i < out.size(); ++i) {
        const int hi = hex_digit(t[2 * i]), lo = hex_digit(t[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    if (!ok) {
        err = "trusted key " + path +
              ": not an Ed25519 public key (a file of 64 hex digits, e.g. keys/*.pub)";
        return false;
    }
    return true;
}

bool scan_plugin_dir(const std::string& dir, std::vector<image_file>& images,
                     std::vector<std::string>& skipped, std::string& err) {
    images.clear();
    skipped.clear();
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
    if (!d) {
        err = "plugin directory " + dir + ": cannot read it (" + std::strerror(errno) + ")";
        return false;
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(d.get())) {
        const std::string_view n = e->d_name;
        if (n.size() > 5 && n.ends_with(".npai"))
            names.emplace_back(n);
    }
    if (errno != 0) {
        err = "plugin directory " + dir + ": cannot read it (" + std::strerror(errno) + ")";
        return false;
    }
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
        image_file f;
        f.path = dir + (dir.ends_with('/') ? "" : "/") + n;
        std::string bytes;
        std::string why;
        npa::image::image_view v;
        if (!read_small_file(f.path, max_image_bytes, bytes, why)) {
            skipped.push_back(why);
            continue;
        }
        if (const status st = npa::image::parse_image(bytes_of(bytes), v); !st) {
            skipped.push_back(f.path + ": " + st.reason());
            continue;
        }
        f.device_id = v.header.device_id;
        f.name = v.header.name; // NUL-terminated: parse_image checked
        images.push_back(std::move(f));
    }
    return true;
}

std::string format_device_id(std::uint32_t device_id) {
    char b[16];
    std::snprintf(b, sizeof b, "%04x:%04x", device_id >> 16, device_id & 0xffffu);
    return b;
}

bool select_image(const std::string& dir, std::uint32_t device_id, image_file& out,
                  std::string& err) {
    std::vector<image_file> images;
    std::vector<std::string> skipped;
    if (!scan_plugin_dir(dir, images, skipped, err))
        return false;
    std::vector<const image_file*> match;
    for (const image_file& f : images) {
        if (f.device_id == device_id)
            match.push_back(&f);
    }
    if (match.size() > 1) {
        // Which one would run is not the daemon's to guess: the host must remove one.
        err = "plugin directory " + dir + " holds " + std::to_string(match.size()) +
              " images for " + format_device_id(device_id) + " (";
        for (std::size_t i = 0; i < match.size(); ++i)
            err += (i ? ", " : "") + match[i]->path;
        err += "): keep one";
        return false;
    }
    if (match.empty()) {
        err = "plugin directory " + dir + " holds no image for " + format_device_id(device_id);
        if (!images.empty()) {
            err += " (it has";
            for (const image_file& f : images)
                err += " " + f.path + " for " + format_device_id(f.device_id) + ";";
            err.back() = ')';
        }
        for (const std::string& s : skipped)
            err += "; not an image: " + s;
        return false;
    }
    out = *match.front();
    return true;
}

bool image_device_supported(std::uint32_t device_id) noexcept {
    return device_id == igbvf_window::image_device_id;
}

std::string unused_image_note(const std::string& dir, std::uint32_t device_id,
                              const std::string& plugin) {
    if (dir.empty())
        return {};
    image_file f;
    std::string ignored;
    if (!select_image(dir, device_id, f, ignored))
        return {};
    return "the compiled-in " + plugin + " plugin runs, as configured; " + f.path +
           " (an image for this device) is not used: name 'pci image' to run it";
}

bool read_pci_device_id(const std::string& sysfs_devices, const std::string& address,
                        std::uint32_t& out, std::string& err) {
    std::uint32_t ids[2] = {0, 0};
    const char* attrs[2] = {"vendor", "device"};
    for (int i = 0; i < 2; ++i) {
        const std::string path = sysfs_devices + "/" + address + "/" + attrs[i];
        std::string t;
        std::string why;
        if (!read_small_file(path, 64, t, why)) {
            err = "PCI function " + address + ": " + why;
            return false;
        }
        unsigned v = 0;
        char extra = 0;
        if (std::sscanf(t.c_str(), "0x%4x%c", &v, &extra) < 1 || (extra != 0 && extra != '\n')) {
            err = "PCI function " + address + ": " + path + " is not a 16-bit id ('" + t + "')";
            return false;
        }
        ids[i] = v;
    }
    out = npa::image::pci_device_id(static_cast<std::uint16_t>(ids[0]),
                                    static_cast<std::uint16_t>(ids[1]));
    return true;
}

bool load_lower_image(const std::string& dir, std::span<const trusted_key> keys,
                      std::uint32_t device_id, igbvf_window& w, lower_image& out,
                      std::string& err) {
#if NPA_LINKD_IMAGES
    image_file f;
    if (!select_image(dir, device_id, f, err))
        return false;
    std::string bytes;
    if (!read_small_file(f.path, max_image_bytes, bytes, err))
        return false;
    std::vector<npa::image::public_key> pk(keys.begin(), keys.end());
    auto img = npa::image::load_image(bytes_of(bytes), device_id, pk);
    if (!img) {
        err = f.path + ": refused: " + img.error().reason();
        return false;
    }
    auto dev = img->bind(w);
    if (!dev) {
        err = f.path + ": refused: " + dev.error().reason() + " (the function is an " +
              format_device_id(igbvf_window::image_device_id) + ")";
        return false;
    }
    out.dev = std::move(*dev);
    out.file = f.path;
    out.name = img->name();
    const auto hex = [](std::span<const std::uint8_t> b) {
        std::string s(2 * b.size() + 1, '\0'); // sodium_bin2hex writes a NUL
        sodium_bin2hex(s.data(), s.size(), b.data(), b.size());
        s.pop_back();
        return s;
    };
    out.digest = hex(img->digest());
    out.signer = hex(img->signer());
    return true;
#else
    (void)dir, (void)keys, (void)device_id, (void)w, (void)out;
    err = "this npa-linkd was built without plugin image support (libsodium was not found)";
    return false;
#endif
}

} // namespace npa::lnx::tools
