// npa-vswitchd's run directory: each port announced as <port>.sock (the vhost-user socket a
// front end connects to) and <port>.json (its configuration, state and counters), the JSON
// written whole to <port>.json.tmp and renamed over the old one, so a reader never sees half
// a file. Also the port option parser (--port NAME[,mac=..][,vlans=..][,mtu=..][,queues=..]).
#pragma once

#include "switch.hpp"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace npa::vswitch {

[[nodiscard]] inline std::string format_mac(const mac_addr& m) {
    char s[18];
    std::snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return s;
}

[[nodiscard]] inline bool parse_mac(const std::string& s, mac_addr& m) {
    unsigned b[6];
    char tail;
    if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
        return false;
    }
    for (int i = 0; i < 6; ++i) {
        m[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(b[i]);
    }
    return true;
}

/// A name usable as a file name: letters, digits, '-', '_' and '.', not starting with '.'.
[[nodiscard]] inline bool name_ok(const std::string& n) {
    if (n.empty() || n.size() > 64 || n[0] == '.') {
        return false;
    }
    for (const char ch : n) {
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                        ch == '-' || ch == '_' || ch == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/// NAME[,mac=02:00:00:00:00:01][,vlans=10+20][,mtu=1500][,queues=2][,client=PATH]; nullopt
/// with `why` set when bad.
[[nodiscard]] inline std::optional<port_config> parse_port(const std::string& arg, std::string& why) {
    port_config pc;
    std::stringstream ss(arg);
    std::string item;
    std::getline(ss, pc.name, ',');
    if (!name_ok(pc.name)) {
        why = "port name must be 1-64 of [A-Za-z0-9._-], not starting with '.'";
        return std::nullopt;
    }
    while (std::getline(ss, item, ',')) {
        const auto eq = item.find('=');
        const std::string k = item.substr(0, eq), v = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (k == "mac") {
            if (!parse_mac(v, pc.mac) || (pc.mac[0] & 1u) != 0 || pc.mac == mac_addr{}) {
                why = "mac= takes a unicast address, aa:bb:cc:dd:ee:ff";
                return std::nullopt;
            }
        } else if (k == "vlans") {
            std::stringstream vs(v);
            std::string one;
            while (std::getline(vs, one, '+')) {
                char* end = nullptr;
                const long id = std::strtol(one.c_str(), &end, 10);
                if (one.empty() || *end != '\0' || id < 1 || id > 4094) {
                    why = "vlans= takes VLAN ids 1-4094 joined by '+'";
                    return std::nullopt;
                }
                pc.vlans.push_back(static_cast<std::uint16_t>(id));
            }
        } else if (k == "mtu") {
            char* end = nullptr;
            const long m = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || m < 68 || m > static_cast<long>(max_mtu)) {
                why = "mtu= takes 68-9216";
                return std::nullopt;
            }
            pc.mtu = static_cast<std::uint32_t>(m);
        } else if (k == "queues") {
            char* end = nullptr;
            const long q = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || q < 1 || q > static_cast<long>(max_queues)) {
                why = "queues= takes 1-" + std::to_string(max_queues) + " (queue pairs)";
                return std::nullopt;
            }
            pc.queues = static_cast<std::uint32_t>(q);
        } else if (k == "client") {
            if (v.empty() || v.size() >= 108) {
                why = "client= takes the front end's socket path (up to 107 bytes)";
                return std::nullopt;
            }
            pc.client = v;
        } else if (k == "zero-copy" && eq == std::string::npos) {
            pc.zero_copy = true;
        } else {
            why = "unknown port option '" + k + "' (mac=, vlans=, mtu=, queues=, client=, zero-copy)";
            return std::nullopt;
        }
    }
    if (pc.zero_copy && (pc.queues != 1 || !pc.client.empty() || pc.mtu + 18 > zc::buf_size)) {
        why = "a zero-copy port has one queue pair, serves its socket (no client=) and an MTU of at most " +
              std::to_string(zc::buf_size - 18);
        return std::nullopt;
    }
    return pc;
}

/// listening (no front end), connected (setting up), running (at least one queue pair's two
/// rings move), broken (a ring was stopped for an impossible index: waits for the front end
/// to set it up again).
[[nodiscard]] inline const char* state_of(port& p) {
    if (p.zc) {
        return p.zc->attached() ? "running" : "listening";
    }
    if (!p.be.connected()) {
        return "listening";
    }
    for (std::uint32_t q = 0; q < p.queues(); ++q) {
        if (p.transmitq(q).broken || p.receiveq(q).broken) {
            return "broken";
        }
    }
    return p.pairs_running() != 0 ? "running" : "connected";
}

[[nodiscard]] inline std::string json_list(const std::vector<std::uint64_t>& v) {
    std::string j = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        j += (i != 0 ? ", " : "") + std::to_string(v[i]);
    }
    return j + "]";
}

/// `queues` is the port's queue pairs, `queues_running` how many of them the front end runs
/// (both rings ready and enabled); `rx_queue` / `tx_queue` split rx_packets / tx_packets by
/// queue pair.
/// `transport` is "vhost-user" or "zero-copy"; a zero-copy port's JSON also has
/// `zc_owned` (buffers its front end holds) and `pool_free` (buffers in the shared pool, of
/// `pool_buffers`), given by the caller.
[[nodiscard]] inline std::string to_json(port& p, std::int64_t pool_free = -1) {
    std::string j = "{\n  \"name\": \"" + p.cfg.name + "\",\n  \"mac\": \"" +
                    (p.cfg.mac == mac_addr{} ? std::string() : format_mac(p.cfg.mac)) + "\",\n  \"vlans\": [";
    for (std::size_t i = 0; i < p.cfg.vlans.size(); ++i) {
        j += (i != 0 ? ", " : "") + std::to_string(p.cfg.vlans[i]);
    }
    j += "],\n  \"mode\": \"" + std::string(p.cfg.client.empty() ? "server" : "client") +
         "\",\n  \"mtu\": " + std::to_string(p.cfg.mtu) + ",\n  \"queues\": " + std::to_string(p.queues()) +
         ",\n  \"queues_running\": " + std::to_string(p.pairs_running()) + ",\n  \"state\": \"" + state_of(p) +
         "\",\n  \"transport\": \"" + (p.zc ? "zero-copy" : "vhost-user") +
         "\",\n  \"features\": " + std::to_string(p.be.features()) + ",\n";
    if (p.zc) {
        j += "  \"zc_owned\": " + std::to_string(p.zc->owned) + ",\n  \"pool_free\": " + std::to_string(pool_free) +
             ",\n  \"pool_buffers\": " + std::to_string(zc::pool_buffers) + ",\n";
    }
    j += "  \"counters\": {";
    const char* sep = "\n";
#define NPA_X(n)                                                                      \
    j += std::string(sep) + "    \"" #n "\": " + std::to_string(p.c.n);               \
    sep = ",\n";
    NPA_VSWITCH_COUNTERS(NPA_X)
#undef NPA_X
    j += "\n  },\n  \"rx_queue\": " + json_list(p.rx_queue) + ",\n  \"tx_queue\": " + json_list(p.tx_queue) + "\n}\n";
    return j;
}

/// Writes <dir>/<port>.json atomically; false when the directory refuses.
inline bool announce(const std::string& dir, port& p, std::int64_t pool_free = -1) {
    const std::string path = dir + "/" + p.cfg.name + ".json", tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
        return false;
    }
    const std::string j = to_json(p, pool_free);
    const bool ok = std::fwrite(j.data(), 1, j.size(), f) == j.size();
    return (std::fclose(f) == 0) && ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

} // namespace npa::vswitch
