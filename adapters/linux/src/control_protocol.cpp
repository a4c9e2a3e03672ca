// The npa-linkd control protocol: strict request parsing and small JSON helpers.
#include "control_protocol.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

namespace npa::lnx::tools {

bool parse_request(std::string_view line, request& out, std::string& err) {
    if (line.size() > max_request_line) {
        err = "request longer than " + std::to_string(max_request_line) + " bytes";
        return false;
    }
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    for (const char c : line) {
        if (!std::isprint(static_cast<unsigned char>(c))) {
            err = "request holds a non-printable byte";
            return false;
        }
    }
    std::vector<std::string_view> w;
    std::string_view s = line;
    while (!s.empty()) {
        while (!s.empty() && s.front() == ' ')
            s.remove_prefix(1);
        std::size_t i = 0;
        while (i < s.size() && s[i] != ' ')
            ++i;
        if (i != 0)
            w.push_back(s.substr(0, i));
        s.remove_prefix(i);
    }
    if (w.empty()) {
        err = "empty request (expected status, stats, switch <lower> or ping)";
        return false;
    }
    out = request{};
    if (w.size() > 1 && w.back() == "text") {
        out.text = true;
        w.pop_back();
    }
    if (w[0] == "status" || w[0] == "stats" || w[0] == "ping") {
        if (w.size() != 1) {
            err = "'" + std::string(w[0]) + "' takes no argument";
            return false;
        }
        out.cmd = w[0] == "status"  ? command::status
                  : w[0] == "stats" ? command::stats
                                    : command::ping;
        return true;
    }
    if (w[0] == "switch") {
        if (w.size() != 2) {
            err = "usage: switch <lower-interface | next>";
            return false;
        }
        out.cmd = command::switch_to;
        out.arg = std::string(w[1]);
        return true;
    }
    err = "unknown command '" + std::string(w[0].substr(0, 32)) +
          "' (expected status, stats, switch <lower> or ping)";
    return false;
}

std::string json_str(std::string_view s) {
    std::string o = "\"";
    for (const char c : s) {
        switch (c) {
        case '"': o += "\\\""; break;
        case '\\': o += "\\\\"; break;
        case '\n': o += "\\n"; break;
        case '\t': o += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
                o += b;
            } else {
                o += c;
            }
        }
    }
    return o + "\"";
}

std::string json_error(std::string_view why) {
    return "{\"ok\":false,\"error\":" + json_str(why) + "}";
}

namespace {
// Position just after `"key":` at the top level of the object, or npos.
std::size_t find_key(std::string_view j, std::string_view key) {
    int depth = 0;
    bool in_str = false;
    for (std::size_t i = 0; i < j.size(); ++i) {
        const char c = j[i];
        if (in_str) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '{' || c == '[')
            ++depth;
        else if (c == '}' || c == ']')
            --depth;
        else if (c == '"') {
            if (depth == 1 && j.substr(i + 1, key.size()) == key &&
                j.substr(i + 1 + key.size(), 2) == "\":") {
                return i + key.size() + 3;
            }
            in_str = true;
        }
    }
    return std::string_view::npos;
}
} // namespace

bool json_get_bool(std::string_view j, std::string_view key, bool& out) {
    const std::size_t p = find_key(j, key);
    if (p == std::string_view::npos)
        return false;
    if (j.substr(p, 4) == "true") {
        out = true;
        return true;
    }
    if (j.substr(p, 5) == "false") {
        out = false;
        return true;
    }
    return false;
}

bool json_get_string(std::string_view j, std::string_view key, std::string& out) {
    std::size_t p = find_key(j, key);
    if (p == std::string_view::npos || p >= j.size() || j[p] != '"')
        return false;
    out.clear();
    for (++p; p < j.size(); ++p) {
        const char c = j[p];
        if (c == '"')
            return true;
        if (c == '\\' && p + 1 < j.size()) {
            const char e = j[++p];
            if (e == 'n')
                out += '\n';
            else if (e == 't')
                out += '\t';
            else if (e == 'u' && p + 4 < j.size()) {
                // Exactly four hex digits, else the reply is malformed (std::stoi would
                // throw on "\uZZZZ" and take npactl down with an uncaught exception).
                unsigned v = 0;
                const char* d = j.data() + p + 1;
                const auto [end, ec] = std::from_chars(d, d + 4, v, 16);
                if (ec != std::errc{} || end != d + 4)
                    return false;
                out += static_cast<char>(v);
                p += 4;
            } else
                out += e;
        } else {
            out += c;
        }
    }
    return false;
}

// ---- the socket's path and peers -----------------------------------------------------

std::string prepare_socket_path(const std::string& path, std::string& note) {
    note.clear();
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
        return "socket path must be 1.." + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
               " characters";
    }
    const std::string dir = default_run_dir;
    if (path.compare(0, dir.size() + 1, dir + "/") == 0 && ::mkdir(dir.c_str(), 0755) != 0 &&
        errno != EEXIST) {
        return "cannot create " + dir + ": " + std::strerror(errno);
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        return errno == ENOENT ? std::string() : path + ": " + std::strerror(errno);
    }
    if (!S_ISSOCK(st.st_mode)) {
        return path + " exists and is not a socket: not removing it (choose another --socket)";
    }
    if (st.st_uid != ::geteuid()) {
        return path + " is a socket owned by uid " + std::to_string(st.st_uid) +
               ", not this user: not removing it";
    }
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    const int why = errno;
    ::close(probe);
    if (live) {
        return "control socket " + path + " is in use (another npa-linkd?)";
    }
    if (why != ECONNREFUSED) {
        return path + ": " + std::strerror(why);
    }
    if (::unlink(path.c_str()) != 0) {
        return "cannot remove the stale socket " + path + ": " + std::strerror(errno);
    }
    note = "removed the stale socket " + path + " (nothing answered on it)";
    return {};
}

bool peer_uid(int fd, unsigned& uid) {
    ucred c{};
    socklen_t len = sizeof c;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0 || len != sizeof c) {
        return false;
    }
    uid = c.uid;
    return true;
}

bool peer_trusted(unsigned uid) { return uid == 0 || uid == ::geteuid(); }

} // namespace npa::lnx::tools
