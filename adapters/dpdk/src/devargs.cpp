// devargs.cpp: parsing of the net_npa device arguments (see devargs.hpp).
#include "devargs.hpp"

#include <rte_kvargs.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace npa::dpdk {
namespace {

constexpr const char* key_active = "active";
constexpr const char* key_dwell = "dwell_ms";
constexpr const char* key_backoff = "backoff_ms";
constexpr const char* key_auto = "auto";
constexpr const char* key_plugin = "plugin";
constexpr const char* key_trusted_key = "trusted_key";
/// The numbers (through rte_kvargs), then the file names (taken as they are).
constexpr const char* valid_keys[] = {key_active, key_dwell,   key_backoff, key_auto,
                                      nullptr,    key_plugin,  key_trusted_key};
constexpr std::size_t number_keys = 4;
constexpr const char* usage =
    "expected net_npa<N>,dev(<device>)[,dev(<device>)...][,active=<i>][,dwell_ms=<n>]"
    "[,backoff_ms=<n>][,auto=0|1][,plugin=<file|dir>,trusted_key=<file>]";

/// A PCI address as DPDK writes one: [dddd:]bb:dd.f, maybe followed by its arguments.
bool looks_like_pci(std::string_view d) noexcept {
    const std::string_view a = d.substr(0, d.find(','));
    const std::size_t dot = a.rfind('.');
    const std::size_t colon = a.find(':');
    return dot != std::string_view::npos && colon != std::string_view::npos && colon < dot &&
           a.find_first_not_of("0123456789abcdefABCDEF:.") == std::string_view::npos;
}

status fail(npa_devargs& out, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
status fail(npa_devargs& out, const char* fmt, ...) noexcept {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(out.error.data(), out.error.size(), fmt, ap);
    va_end(ap);
    return {errc::invalid_argument, "net_npa: invalid device arguments"};
}

/// Strict unsigned decimal: digits only, no sign, no overflow past `max`.
bool parse_uint(const char* s, std::uint32_t max, std::uint32_t& v) noexcept {
    if (s == nullptr || *s == '\0') return false;
    std::uint64_t acc = 0;
    for (const char* p = s; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9') return false;
        acc = acc * 10 + static_cast<std::uint64_t>(*p - '0');
        if (acc > max) return false;
    }
    v = static_cast<std::uint32_t>(acc);
    return true;
}

struct kv_ctx {
    npa_devargs* out;
    bool failed = false;
};

int on_uint(const char* key, const char* value, void* opaque) {
    auto* ctx = static_cast<kv_ctx*>(opaque);
    npa_devargs& out = *ctx->out;
    std::uint32_t v = 0;
    const std::uint32_t max = std::strcmp(key, key_active) == 0 ? max_sub_devices - 1
                              : std::strcmp(key, key_auto) == 0 ? 1
                                                                : max_policy_ms;
    if (!parse_uint(value, max, v)) {
        (void)fail(out, "%s=%s: expected a whole number from 0 to %u", key,
                   value != nullptr ? value : "", max);
        ctx->failed = true;
        return -1;
    }
    if (std::strcmp(key, key_active) == 0) out.active = v;
    else if (std::strcmp(key, key_dwell) == 0) out.dwell_ms = v;
    else if (std::strcmp(key, key_backoff) == 0) out.backoff_ms = v;
    else out.auto_switch = v != 0;
    return 0;
}

/// The rules for plugin images: a sim device needs an image and a key, an image needs a
/// device it can run on, and a PCI function cannot be one (yet).
status check_images(npa_devargs& out) noexcept {
    const bool plugin = out.plugin[0] != '\0';
    std::size_t sims = 0;
    for (std::size_t i = 0; i < out.dev_count; ++i) {
        const char* d = out.devs[i].data();
        if (!is_sim_device(d)) continue;
        const std::string_view model = std::string_view{d}.substr(std::strlen(sim_device_prefix));
        bool known = false;
        for (const char* m : sim_device_models) known = known || model == m;
        if (!known) {
            return fail(out, "dev(%s): unknown sim device model '%.*s'; the models are: simnic",
                        d, static_cast<int>(model.size()), model.data());
        }
        ++sims;
    }
    if (sims != 0 && !plugin) {
        return fail(out, "a sim device runs a plugin image: give plugin=<image file or "
                         "directory> and trusted_key=<public key file>");
    }
    if (plugin && sims == 0) {
        for (std::size_t i = 0; i < out.dev_count; ++i) {
            if (looks_like_pci(out.devs[i].data())) {
                return fail(out, "plugin= with dev(%s): net_npa runs plugin images over sim "
                                 "device models only (dev(sim:simnic)); mapping a PCI "
                                 "function's BAR for an image (VFIO) is not supported",
                            out.devs[i].data());
            }
        }
        return fail(out, "plugin= but no device for the image: add dev(sim:simnic)");
    }
    if (plugin != (out.trusted_key[0] != '\0')) {
        return fail(out, plugin ? "plugin= needs trusted_key=<public key file>: the image's "
                                  "signature is checked against it"
                                : "trusted_key= without plugin=: the key is for checking a "
                                  "plugin image");
    }
    return status::success();
}

} // namespace

bool is_sim_device(const char* dev) noexcept {
    return std::strncmp(dev, sim_device_prefix, std::strlen(sim_device_prefix)) == 0;
}

status parse_devargs(const char* args, npa_devargs& out) noexcept {
    out = npa_devargs{};
    const std::string_view s = args != nullptr ? std::string_view{args} : std::string_view{};
    // Whatever is not dev(...) is collected here and handed to rte_kvargs.
    std::array<char, 1024> kv{};
    std::size_t kv_len = 0;
    if (s.size() >= kv.size()) {
        return fail(out, "device arguments longer than %zu characters", kv.size() - 1);
    }

    // Step 1: split at top-level commas; parentheses nest (a dev(...) holds commas).
    std::array<bool, std::size(valid_keys)> seen{};
    std::size_t pos = 0;
    while (pos <= s.size()) {
        std::size_t end = pos;
        int depth = 0;
        for (; end < s.size(); ++end) {
            if (s[end] == '(') ++depth;
            else if (s[end] == ')') {
                if (--depth < 0) {
                    return fail(out, "unbalanced ')' at offset %zu of '%.*s'", end,
                                static_cast<int>(s.size()), s.data());
                }
            } else if (s[end] == ',' && depth == 0) break;
        }
        if (depth != 0) {
            return fail(out, "unbalanced '(' in '%.*s': a dev(...) is not closed",
                        static_cast<int>(s.size()), s.data());
        }
        const std::string_view tok = s.substr(pos, end - pos);
        pos = end + 1;
        if (tok.empty()) {
            if (end >= s.size()) break;
            return fail(out, "empty argument (two commas in a row) in '%.*s'",
                        static_cast<int>(s.size()), s.data());
        }
        if (tok.substr(0, 4) == "dev(") {
            // Step 2: a sub-device: dev(<device string>) with nothing after the ')'.
            if (tok.back() != ')') {
                return fail(out, "'%.*s': text after dev(...)", static_cast<int>(tok.size()),
                            tok.data());
            }
            const std::string_view dev = tok.substr(4, tok.size() - 5);
            if (dev.empty() || dev.find_first_not_of(" \t") == std::string_view::npos) {
                return fail(out, "dev() is empty: give a DPDK device, e.g. dev(net_ring0)");
            }
            if (out.dev_count == max_sub_devices) {
                return fail(out, "more than %zu sub-devices", max_sub_devices);
            }
            if (dev.size() >= max_devstr) {
                return fail(out, "device string longer than %zu characters: '%.40s...'",
                            max_devstr - 1, dev.data());
            }
            for (std::size_t i = 0; i < out.dev_count; ++i) {
                if (dev == std::string_view{out.devs[i].data()}) {
                    return fail(out, "sub-device '%.*s' given twice",
                                static_cast<int>(dev.size()), dev.data());
                }
            }
            std::memcpy(out.devs[out.dev_count].data(), dev.data(), dev.size());
            out.devs[out.dev_count][dev.size()] = '\0';
            ++out.dev_count;
            continue;
        }
        // Step 3: key=value, with a key we know (named in the error when we don't).
        const std::size_t eq = tok.find('=');
        const std::string_view key = tok.substr(0, eq);
        std::size_t which = seen.size();
        for (std::size_t k = 0; k < seen.size(); ++k) {
            if (valid_keys[k] != nullptr && key == valid_keys[k])
                which = k;
        }
        if (which == seen.size()) {
            return fail(out, "unknown argument '%.*s'; %s", static_cast<int>(tok.size()),
                        tok.data(), usage);
        }
        if (seen[which]) {
            return fail(out, "'%.*s' given twice: give each argument once",
                        static_cast<int>(key.size()), key.data());
        }
        seen[which] = true;
        if (which > number_keys) {
            // A file name: kept as it is (rte_kvargs would read its '=' and ',').
            const std::string_view file = eq == std::string_view::npos ? std::string_view{}
                                                                       : tok.substr(eq + 1);
            auto& dst = which == number_keys + 1 ? out.plugin : out.trusted_key;
            if (file.empty()) {
                return fail(out, "'%.*s' needs a file name (%.*s=<file>)",
                            static_cast<int>(key.size()), key.data(),
                            static_cast<int>(key.size()), key.data());
            }
            if (file.size() >= dst.size()) {
                return fail(out, "%.*s=: file name longer than %zu characters",
                            static_cast<int>(key.size()), key.data(), dst.size() - 1);
            }
            std::memcpy(dst.data(), file.data(), file.size());
            dst[file.size()] = '\0';
            continue;
        }
        if (eq == std::string_view::npos || eq + 1 == tok.size()) {
            return fail(out, "'%.*s' needs a value (%.*s=<n>)", static_cast<int>(key.size()),
                        key.data(), static_cast<int>(key.size()), key.data());
        }
        if (kv_len != 0) kv[kv_len++] = ',';
        std::memcpy(kv.data() + kv_len, tok.data(), tok.size());
        kv_len += tok.size();
    }

    if (out.dev_count == 0) {
        return fail(out, "no sub-device: at least one dev(<device>) is required; %s", usage);
    }

    // Step 4: the values, through rte_kvargs (each key is there once: step 3 refused
    // repeats, which rte_kvargs would keep both of).
    if (kv_len != 0) {
        rte_kvargs* kvl = rte_kvargs_parse(kv.data(), valid_keys);
        if (kvl == nullptr) {
            return fail(out, "cannot parse '%s'; %s", kv.data(), usage);
        }
        kv_ctx ctx{&out};
        for (const char* const* k = valid_keys; *k != nullptr && !ctx.failed; ++k) { // numbers
            if (rte_kvargs_count(kvl, *k) != 0) {
                (void)rte_kvargs_process(kvl, *k, on_uint, &ctx);
            }
        }
        rte_kvargs_free(kvl);
        if (ctx.failed) return {errc::invalid_argument, "net_npa: invalid device arguments"};
    }

    // Step 5: what can be checked before probing.
    if (out.active >= out.dev_count) {
        return fail(out, "active=%u but only %zu sub-device%s given (paths count from 0)",
                    out.active, out.dev_count, out.dev_count == 1 ? "" : "s");
    }
    return check_images(out);
}

status parse_tel_params(const char* params, const tel_param* specs, std::size_t count,
                        tel_params& out) noexcept {
    out = tel_params{};
    auto fail_tel = [&out](const char* fmt, auto... a) noexcept {
        std::snprintf(out.error.data(), out.error.size(), fmt, a...);
        return status{errc::invalid_argument, "invalid telemetry parameters"};
    };
    if (count == 0 || count > tel_params::max_count) {
        return fail_tel("%s", "internal error: bad parameter list");
    }
    const char* s = params == nullptr ? "" : params;
    for (std::size_t i = 0; i < count; ++i) {
        const tel_param& spec = specs[i];
        if (*s == '\0') {
            return fail_tel("missing parameter %zu (%s): expected %zu comma-separated numbers",
                            i + 1, spec.name, count);
        }
        std::uint64_t acc = 0;
        const char* start = s;
        bool over = false;
        for (; *s >= '0' && *s <= '9'; ++s) {
            const auto d = static_cast<std::uint64_t>(*s - '0');
            over = over || acc > spec.max / 10 || (acc == spec.max / 10 && d > spec.max % 10);
            if (!over) acc = acc * 10 + d;
        }
        const std::size_t len = static_cast<std::size_t>(s - start);
        if (len == 0 || (*s != ',' && *s != '\0')) {
            const std::size_t bad = std::strcspn(start, ",");
            return fail_tel("%s: '%.*s' is not a whole number", spec.name,
                            static_cast<int>(bad > 32 ? 32 : bad), start);
        }
        if (over) {
            return fail_tel("%s: %.*s is out of range (0 to %llu)", spec.name,
                            static_cast<int>(len > 32 ? 32 : len), start,
                            static_cast<unsigned long long>(spec.max));
        }
        out.v[i] = acc;
        if (*s == ',') {
            ++s;
            if (i + 1 == count) {
                return fail_tel("too many parameters: expected %zu", count);
            }
        }
    }
    if (*s != '\0') return fail_tel("too many parameters: expected %zu", count);
    return {};
}

} // namespace npa::dpdk
