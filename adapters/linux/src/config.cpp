// npa-linkd configuration parsing: strict, with messages that name what is wrong.
#include "config.hpp"

#include <sys/stat.h>

#include <net/if.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace npa::lnx::tools {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

bool parse_uint(std::string_view s, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
    s = trim(s);
    if (s.empty())
        return false;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc{} && r.ptr == s.data() + s.size() && out >= lo && out <= hi;
}

bool parse_bool(std::string_view s, bool& out) {
    s = trim(s);
    if (s == "yes" || s == "true" || s == "on" || s == "1") {
        out = true;
        return true;
    }
    if (s == "no" || s == "false" || s == "off" || s == "0") {
        out = false;
        return true;
    }
    return false;
}

bool valid_ifname(std::string_view s) {
    if (s.empty() || s.size() >= IFNAMSIZ)
        return false;
    for (const char c : s) {
        if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) ||
            !std::isprint(static_cast<unsigned char>(c)))
            return false;
    }
    return true;
}

std::vector<std::string_view> split_ws(std::string_view s) {
    std::vector<std::string_view> out;
    s = trim(s);
    while (!s.empty()) {
        std::size_t i = 0;
        while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])))
            ++i;
        out.push_back(s.substr(0, i));
        s = trim(s.substr(i));
    }
    return out;
}

// "va0 af_xdp copy" or "0000:00:03.0 pci vmxnet3" (config file), "va0:af_xdp:copy" or
// "0000:00:03.0:pci:vmxnet3" (flag): fields already split.
bool parse_lower(const std::vector<std::string_view>& f, lower_config& out, std::string& err) {
    if (f.size() < 2 || f.size() > 3) {
        err = "a lower is '<interface> <af_xdp|af_packet> [copy|zero-copy|auto]' or "
              "'<pci address> pci <vmxnet3|igbvf|image>'";
        return false;
    }
    if (f[1] == "pci") {
        out.kind = plugin_kind::pci;
        if (!parse_pci_address(f[0], out.ifname)) {
            err = "'" + std::string(f[0]) +
                  "' is not a PCI address (domain:bus:device.function, e.g. 0000:00:03.0)";
            return false;
        }
        if (f.size() != 3) {
            err = "a pci lower needs its device kind: '" + out.ifname + " pci <vmxnet3|igbvf|image>'";
            return false;
        }
        if (f[2] == "vmxnet3") {
            out.device = pci_device::vmxnet3;
        } else if (f[2] == "igbvf") {
            out.device = pci_device::igbvf;
        } else if (f[2] == "image") {
            out.device = pci_device::image;
        } else {
            err = "unknown PCI device kind '" + std::string(f[2]) +
                  "' (expected vmxnet3, igbvf or image)";
            return false;
        }
        return true;
    }
    if (!valid_ifname(f[0])) {
        std::string ignored;
        err = parse_pci_address(f[0], ignored)
                  ? "'" + std::string(f[0]) + "' is a PCI address: its plugin is pci ('" +
                        std::string(f[0]) + " pci <vmxnet3|igbvf>')"
                  : "'" + std::string(f[0]) + "' is not a valid interface name (1..15 characters)";
        return false;
    }
    out.ifname = std::string(f[0]);
    if (f[1] == "af_xdp" || f[1] == "xdp") {
        out.kind = plugin_kind::af_xdp;
    } else if (f[1] == "af_packet" || f[1] == "packet") {
        out.kind = plugin_kind::af_packet;
    } else {
        err = "unknown plugin '" + std::string(f[1]) + "' (expected af_xdp, af_packet or pci)";
        return false;
    }
    if (f.size() == 3) {
        if (out.kind != plugin_kind::af_xdp) {
            err = "a mode (" + std::string(f[2]) + ") only applies to af_xdp lowers";
            return false;
        }
        if (f[2] == "copy")
            out.mode = xdp_mode::copy;
        else if (f[2] == "zero-copy" || f[2] == "zerocopy")
            out.mode = xdp_mode::zero_copy;
        else if (f[2] == "auto")
            out.mode = xdp_mode::automatic;
        else {
            err = "unknown AF_XDP mode '" + std::string(f[2]) +
                  "' (expected copy, zero-copy or auto)";
            return false;
        }
    }
    return true;
}

bool parse_vlans(std::string_view s, policy_config& pol, std::string& err) {
    s = trim(s);
    if (s.empty()) {
        err = "allow_vlan needs a list such as '10, 20-29'";
        return false;
    }
    while (!s.empty()) {
        const std::size_t comma = s.find(',');
        const std::string_view item = trim(s.substr(0, comma));
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
        const std::size_t dash = item.find('-');
        std::uint64_t lo = 0, hi = 0;
        const bool ok = dash == std::string_view::npos
                            ? parse_uint(item, 1, max_vlan_id, lo) && ((hi = lo), true)
                            : parse_uint(item.substr(0, dash), 1, max_vlan_id, lo) &&
                                  parse_uint(item.substr(dash + 1), 1, max_vlan_id, hi) && lo <= hi;
        if (!ok) {
            err = "bad VLAN id or range '" + std::string(item) + "' (ids are 1..4095)";
            return false;
        }
        for (std::uint64_t v = lo; v <= hi; ++v)
            pol.vlans.set(v);
    }
    return true;
}

bool apply_policy_key(std::string_view key, std::string_view val, policy_config& pol,
                      std::string& err) {
    std::uint64_t n = 0;
    if (key == "allow_mac") {
        mac_addr m{};
        if (!parse_mac(trim(val), m) || (m[0] & 1u) != 0 || m == mac_addr{}) {
            err = "allow_mac '" + std::string(trim(val)) +
                  "' is not a unicast MAC (aa:bb:cc:dd:ee:ff)";
            return false;
        }
        pol.allowed_macs.push_back(m);
    } else if (key == "allow_vlan") {
        return parse_vlans(val, pol, err);
    } else if (key == "mtu_min") {
        if (!parse_uint(val, 68, 65535, n)) {
            err = "mtu_min must be 68..65535";
            return false;
        }
        pol.mtu_min = static_cast<std::uint32_t>(n);
    } else if (key == "mtu_max") {
        if (!parse_uint(val, 68, 65535, n)) {
            err = "mtu_max must be 68..65535";
            return false;
        }
        pol.mtu_max = static_cast<std::uint32_t>(n);
    } else {
        err = "unknown policy setting '" + std::string(key) + "'";
        return false;
    }
    return true;
}

bool apply_config_key(std::string_view key, std::string_view val, daemon_config& cfg,
                      std::string& err) {
    std::uint64_t n = 0;
    val = trim(val);
    if (key == "tap") {
        if (!valid_ifname(val)) {
            err = "tap '" + std::string(val) + "' is not a valid interface name";
            return false;
        }
        if (val.find('%') != std::string_view::npos) {
            // The kernel would pick a name from the template; the daemon must know it.
            err = "tap '" + std::string(val) + "' is a name template; give the interface's name";
            return false;
        }
        cfg.tap = std::string(val);
    } else if (key == "lower") {
        lower_config l;
        if (!parse_lower(split_ws(val), l, err))
            return false;
        cfg.lowers.push_back(l);
    } else if (key == "socket") {
        if (val.empty() || val.size() >= 108) {
            err = "socket path must be 1..107 characters";
            return false;
        }
        cfg.socket = std::string(val);
    } else if (key == "mac") {
        if (!parse_mac(val, cfg.mac) || (cfg.mac[0] & 1u) != 0 || cfg.mac == mac_addr{}) {
            err = "mac '" + std::string(val) + "' is not a unicast MAC (aa:bb:cc:dd:ee:ff)";
            return false;
        }
        cfg.has_mac = true;
    } else if (key == "queues") {
        if (!parse_uint(val, 1, 8, n)) {
            err = "queues must be 1..8";
            return false;
        }
        cfg.queues = static_cast<std::uint16_t>(n);
    } else if (key == "persist") {
        if (!parse_bool(val, cfg.persist)) {
            err = "persist must be yes or no";
            return false;
        }
    } else if (key == "failback") {
        if (!parse_bool(val, cfg.failback)) {
            err = "failback must be yes or no";
            return false;
        }
    } else if (key == "min_dwell_ms") {
        if (!parse_uint(val, 0, 60000, n)) {
            err = "min_dwell_ms must be 0..60000";
            return false;
        }
        cfg.min_dwell_ms = static_cast<std::uint32_t>(n);
    } else if (key == "policy") {
        return load_policy_file(std::string(val), cfg.policy, err);
    } else if (key == "plugin_dir") {
        if (val.empty()) {
            err = "plugin_dir needs a directory";
            return false;
        }
        cfg.plugin_dir = std::string(val);
    } else if (key == "trusted_key") {
        if (val.empty()) {
            err = "trusted_key needs a public key file";
            return false;
        }
        cfg.trusted_keys.emplace_back(val);
    } else {
        return apply_policy_key(key, val, cfg.policy, err);
    }
    return true;
}

/// A config or policy file is read whole, up to this size: anything larger (or endless,
/// such as /dev/zero) is refused rather than read without bound.
constexpr std::size_t max_file_bytes = 64 * 1024;

template <class Apply>
bool load_file(const std::string& path, std::string& err, Apply&& apply) {
    std::string text;
    if (!read_small_file(path, max_file_bytes, text, err))
        return false;
    std::istringstream lines(text);
    std::string line;
    unsigned lineno = 0;
    while (std::getline(lines, line)) {
        ++lineno;
        std::string_view s = line;
        if (const auto hash = s.find('#'); hash != std::string_view::npos)
            s = s.substr(0, hash);
        s = trim(s);
        if (s.empty())
            continue;
        const auto eq = s.find('=');
        if (eq == std::string_view::npos) {
            err = path + ":" + std::to_string(lineno) + ": expected 'key = value'";
            return false;
        }
        std::string e;
        if (!apply(trim(s.substr(0, eq)), trim(s.substr(eq + 1)), e)) {
            err = path + ":" + std::to_string(lineno) + ": " + e;
            return false;
        }
    }
    return true;
}

} // namespace

bool read_small_file(const std::string& path, std::size_t cap, std::string& text,
                     std::string& err) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        err = path + ": cannot open (" + std::strerror(errno) + ")";
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        err = path + ": not a regular file";
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        err = path + ": cannot open";
        return false;
    }
    // One byte more than the bound: a file that grew since stat() is still caught.
    text.assign(cap + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > cap) {
        err = path + ": larger than " + std::to_string(cap / 1024) + " KiB";
        return false;
    }
    return true;
}

const char* to_string(plugin_kind k) noexcept {
    switch (k) {
    case plugin_kind::af_xdp: return "af_xdp";
    case plugin_kind::pci: return "pci";
    default: return "af_packet";
    }
}

const char* to_string(pci_device d) noexcept {
    return d == pci_device::igbvf ? "igbvf" : d == pci_device::image ? "image" : "vmxnet3";
}

std::string lower_config::plugin_name() const {
    return kind == plugin_kind::pci ? std::string("pci ") + to_string(device) : to_string(kind);
}

bool parse_pci_address(std::string_view s, std::string& out) {
    // domain (4 hex digits, optional) : bus (2) : device (2, 00..1f) . function (0..7)
    std::string full = s.size() == 7 ? "0000:" + std::string(s) : std::string(s);
    if (full.size() != 12 || full[4] != ':' || full[7] != ':' || full[10] != '.')
        return false;
    for (const std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u, 8u, 9u}) {
        if (!std::isxdigit(static_cast<unsigned char>(full[i])))
            return false;
    }
    const unsigned dev = static_cast<unsigned>(std::stoul(full.substr(8, 2), nullptr, 16));
    if (dev > 0x1f || full[11] < '0' || full[11] > '7')
        return false;
    for (char& c : full)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out = std::move(full);
    return true;
}

bool parse_mac(std::string_view s, mac_addr& out) {
    if (s.size() != 17)
        return false;
    for (std::size_t i = 0; i < 6; ++i) {
        if (i < 5 && s[i * 3 + 2] != ':')
            return false;
        unsigned v = 0;
        const auto r = std::from_chars(s.data() + i * 3, s.data() + i * 3 + 2, v, 16);
        if (r.ec != std::errc{} || r.ptr != s.data() + i * 3 + 2)
            return false;
        out[i] = static_cast<std::uint8_t>(v);
    }
    return true;
}

std::string format_mac(const mac_addr& m) {
    char b[18];
    std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return b;
}

bool load_config_file(const std::string& path, daemon_config& cfg, std::string& err) {
    return load_file(path, err, [&](std::string_view k, std::string_view v, std::string& e) {
        return apply_config_key(k, v, cfg, e);
    });
}

bool load_policy_file(const std::string& path, policy_config& pol, std::string& err) {
    return load_file(path, err, [&](std::string_view k, std::string_view v, std::string& e) {
        return apply_policy_key(k, v, pol, e);
    });
}

bool parse_args(int argc, const char* const* argv, daemon_config& cfg, std::string& err) {
    bool lowers_from_flags = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        std::string_view val;
        bool has_val = false;
        if (const auto eq = a.find('='); a.starts_with("--") && eq != std::string_view::npos) {
            val = a.substr(eq + 1);
            a = a.substr(0, eq);
            has_val = true;
        }
        auto need = [&](std::string_view& v) {
            if (has_val) {
                v = val;
                return true;
            }
            if (i + 1 >= argc) {
                err = std::string(a) + " needs a value";
                return false;
            }
            v = argv[++i];
            return true;
        };
        std::string_view v;
        std::string e;
        if (a == "-h" || a == "--help") {
            cfg.help = true;
            return true;
        } else if (a == "--config" || a == "-c") {
            if (!need(v) || !load_config_file(std::string(v), cfg, err))
                return false;
            continue;
        } else if (a == "--lower") {
            if (!need(v))
                return false;
            std::vector<std::string_view> f;
            std::string_view rest = v;
            // A PCI address has colons of its own: "0000:00:03.0:pci:vmxnet3" splits at
            // ":pci"; an address before another plugin stays one field for the message.
            if (const auto at = rest.find(":pci"); at != std::string_view::npos &&
                                                   (at + 4 == rest.size() || rest[at + 4] == ':')) {
                f.push_back(rest.substr(0, at));
                rest = rest.substr(at + 1);
            } else {
                for (const std::size_t n : {std::size_t{12}, std::size_t{7}}) {
                    std::string full;
                    if (rest.size() > n && rest[n] == ':' &&
                        parse_pci_address(rest.substr(0, n), full)) {
                        f.push_back(rest.substr(0, n));
                        rest = rest.substr(n + 1);
                        break;
                    }
                }
            }
            while (true) {
                const auto c = rest.find(':');
                f.push_back(rest.substr(0, c));
                if (c == std::string_view::npos)
                    break;
                rest = rest.substr(c + 1);
            }
            lower_config l;
            if (!parse_lower(f, l, e)) {
                err = "--lower '" + std::string(v) + "': " + e;
                return false;
            }
            if (!lowers_from_flags)
                cfg.lowers.clear(); // flags replace the file's list
            lowers_from_flags = true;
            cfg.lowers.push_back(l);
            continue;
        } else if (a == "--no-failback") {
            cfg.failback = false;
            continue;
        } else if (a == "--persist") {
            cfg.persist = true;
            continue;
        }
        struct flag {
            std::string_view name;
            std::string_view key;
        };
        static constexpr flag flags[] = {
            {"--tap", "tap"},
            {"--socket", "socket"},
            {"--mac", "mac"},
            {"--queues", "queues"},
            {"--policy", "policy"},
            {"--allow-mac", "allow_mac"},
            {"--allow-vlan", "allow_vlan"},
            {"--mtu-min", "mtu_min"},
            {"--mtu-max", "mtu_max"},
            {"--min-dwell-ms", "min_dwell_ms"},
            {"--failback", "failback"},
            {"--plugin-dir", "plugin_dir"},
            {"--trusted-key", "trusted_key"},
        };
        bool known = false;
        for (const auto& f : flags) {
            if (a == f.name) {
                known = true;
                if (!need(v))
                    return false;
                if (!apply_config_key(f.key, v, cfg, e)) {
                    err = std::string(a) + ": " + e;
                    return false;
                }
                break;
            }
        }
        if (!known) {
            err = a.starts_with("-") ? "unknown flag '" + std::string(a) + "' (see --help)"
                                     : "unexpected argument '" + std::string(a) + "' (see --help)";
            return false;
        }
    }
    return validate(cfg, err);
}

bool validate(const daemon_config& cfg, std::string& err) {
    if (cfg.lowers.empty()) {
        err =
            "no lower interface: give at least one --lower IF:PLUGIN (or 'lower =' in the config)";
        return false;
    }
    // Per plugin type: af_packet, af_xdp, pci vmxnet3, pci igbvf, pci image.
    std::size_t per_plugin[5] = {0, 0, 0, 0, 0};
    bool has_xdp = false, has_pci = false, has_image = false;
    for (std::size_t i = 0; i < cfg.lowers.size(); ++i) {
        if (cfg.lowers[i].ifname == cfg.tap) {
            err = "lower '" + cfg.lowers[i].ifname + "' is the TAP interface itself";
            return false;
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (cfg.lowers[j].ifname == cfg.lowers[i].ifname) {
                err = "lower '" + cfg.lowers[i].ifname + "' is listed twice";
                return false;
            }
        }
        const lower_config& l = cfg.lowers[i];
        const int plugin = l.kind == plugin_kind::pci ? 2 + static_cast<int>(l.device)
                                                      : static_cast<int>(l.kind);
        if (++per_plugin[plugin] > max_lowers_per_kind) {
            err = "at most 2 lowers may use " + l.plugin_name();
            return false;
        }
        has_xdp = has_xdp || l.kind == plugin_kind::af_xdp;
        has_pci = has_pci || l.kind == plugin_kind::pci;
        has_image = has_image || (l.kind == plugin_kind::pci && l.device == pci_device::image);
    }
    if (has_image && cfg.plugin_dir.empty()) {
        err = "a 'pci image' lower needs the directory of its images: --plugin-dir DIR "
              "(or 'plugin_dir =' in the config)";
        return false;
    }
    if (has_image && cfg.trusted_keys.empty()) {
        err = "a 'pci image' lower needs the keys its image may be signed by: --trusted-key FILE "
              "(or 'trusted_key =' in the config)";
        return false;
    }
    if (has_xdp && has_pci) {
        // One buffer pool serves every path: its device addresses are either UMEM offsets
        // (AF_XDP) or physical addresses in hugepage memory (PCI), not both.
        err = "af_xdp and pci lowers cannot be combined (their buffers need different "
              "memory); use af_packet beside pci lowers";
        return false;
    }
    if (cfg.policy.mtu_min > cfg.policy.mtu_max) {
        err = "policy: mtu_min (" + std::to_string(cfg.policy.mtu_min) + ") is above mtu_max (" +
              std::to_string(cfg.policy.mtu_max) + ")";
        return false;
    }
    if (cfg.has_mac && !cfg.policy.allowed_macs.empty()) {
        bool found = false;
        for (const auto& m : cfg.policy.allowed_macs)
            found = found || m == cfg.mac;
        if (!found) {
            err = "mac " + format_mac(cfg.mac) + " is not among the policy's allowed MACs";
            return false;
        }
    }
    return true;
}

const char* usage() noexcept {
    return "usage: npa-linkd [--config FILE] [--tap NAME] --lower IF:PLUGIN[:MODE] ...\n"
           "                 [--lower PCI-ADDRESS:pci:DEVICE ...]\n"
           "                 [--socket PATH] [--mac MAC] [--queues N] [--policy FILE]\n"
           "                 [--allow-mac MAC] [--allow-vlan LIST] [--mtu-min N] [--mtu-max N]\n"
           "                 [--min-dwell-ms N] [--no-failback] [--persist]\n"
           "                 [--plugin-dir DIR --trusted-key FILE ...]\n"
           "\n"
           "Binds the TAP interface NAME (created if needed, default npa0) to an ordered list\n"
           "of lower interfaces, each driven by a plugin: af_xdp (MODE copy, zero-copy or\n"
           "auto) or af_packet. Traffic runs over the first usable lower; when it goes down\n"
           "or disappears the daemon switches to the next one without the TAP noticing.\n"
           "A PCI function is a lower too (as root): ADDRESS:pci:vmxnet3 or ADDRESS:pci:igbvf\n"
           "(an 82576 VF), e.g. 0000:00:03.0:pci:vmxnet3; the daemon binds it to\n"
           "uio_pci_generic and drives it from user space over hugepage memory.\n"
           "ADDRESS:pci:image runs the function's plugin from a signed plugin image: the one\n"
           "file in --plugin-dir DIR (*.npai) whose header names the function's vendor:device\n"
           "(read from sysfs), signed by a key of a --trusted-key FILE (an Ed25519 public key,\n"
           "64 hex digits; repeatable). ADDRESS:pci:igbvf keeps the compiled-in plugin even\n"
           "when DIR holds an image for the device.\n"
           "Control it with npactl through the unix socket (default /run/npa/npa-linkd.sock).\n"
           "With --persist the TAP, its addresses, routes and MAC outlive the daemon, and a\n"
           "restart re-attaches to it; its carrier is off while no lower is usable.\n";
}

} // namespace npa::lnx::tools
