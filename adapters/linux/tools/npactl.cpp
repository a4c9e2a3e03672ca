// npactl: talks to npa-linkd over its control socket, in the manner of iproute2's tools.
//   npactl [-j] [-p] [-s] [--socket PATH] status | stats | switch <lower|next> | ping | help
// Commands may be abbreviated to any prefix; an ambiguous one means the first in the list
// above (`s` and `st` are status, `sw` is switch), as `ip a` is `ip address`.
// Exit status: 0 done, 1 the daemon refused (its reason is printed), 2 bad usage or no
// daemon.
#include "control_protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

#ifndef NPA_VERSION_STRING
#define NPA_VERSION_STRING "unknown"
#endif

constexpr const char* usage =
    "usage: npactl [OPTIONS] COMMAND\n"
    "\n"
    "Commands (any unique prefix; an ambiguous one is the first listed: s, st = status):\n"
    "  status            the TAP's MAC and MTU, the active lower, every lower's state\n"
    "  stats             per-lower counters, TAP counters, switch telemetry\n"
    "  switch LOWER|next move the data path to the named lower (or the next usable one)\n"
    "  ping              check that npa-linkd answers\n"
    "  help              this text\n"
    "\n"
    "Options:\n"
    "  -j, --json        print the daemon's JSON reply (one object per line)\n"
    "  -p, --pretty      with --json: indented JSON\n"
    "  -s, --stats       with status: the counters too (as `stats`)\n"
    "      --socket PATH the daemon's socket (also --socket=PATH; default "
    "/run/npa/npa-linkd.sock)\n"
    "  -h, --help        this text\n"
    "  -V, --version     npactl's version\n"
    "\n"
    "JSON replies: {\"ok\":true,...} or {\"ok\":false,\"error\":\"...\"}. Keys are stable;\n"
    "the adapter README (\"npactl and the control protocol\") lists them.\n"
    "Exit status: 0 done, 1 refused by the daemon, 2 bad usage or no daemon.\n";

/// How long to wait for a reply: a switch answers once it has completed.
constexpr int reply_timeout_ms = 10000;

constexpr const char* commands[] = {"status", "stats", "switch", "ping", "help"};

/// The command a word names: itself, or the first command it is a prefix of.
std::string_view resolve(std::string_view w) {
    for (const std::string_view c : commands) {
        if (c == w)
            return c;
    }
    for (const std::string_view c : commands) {
        if (!w.empty() && c.starts_with(w))
            return c;
    }
    return {};
}

/// Indents a one-line JSON object (strings, with their escapes, kept as they are).
std::string pretty(std::string_view j) {
    std::string o;
    int depth = 0;
    bool in_str = false;
    auto newline = [&] { o += '\n' + std::string(static_cast<std::size_t>(depth) * 2, ' '); };
    for (std::size_t i = 0; i < j.size(); ++i) {
        const char c = j[i];
        if (in_str) {
            o += c;
            if (c == '\\' && i + 1 < j.size())
                o += j[++i];
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            o += c;
            break;
        case '{':
        case '[':
            o += c;
            if (i + 1 < j.size() && (j[i + 1] == '}' || j[i + 1] == ']')) {
                o += j[++i];
                break;
            }
            ++depth;
            newline();
            break;
        case '}':
        case ']':
            --depth;
            newline();
            o += c;
            break;
        case ',':
            o += c;
            newline();
            break;
        case ':': o += ": "; break;
        default: o += c;
        }
    }
    return o;
}

/// One request, one reply line. Empty reply (and a message on stderr) on failure.
std::string ask(int fd, const std::string& sock, const std::string& req) {
    const std::string line = req + "\n";
    // A daemon that refuses this client answers and closes at once: no SIGPIPE, read on.
    const bool sent =
        ::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
    std::string reply;
    while (reply.find('\n') == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, reply_timeout_ms) <= 0) {
            std::fprintf(stderr, "npactl: no reply from npa-linkd within %d ms\n",
                         reply_timeout_ms);
            return {};
        }
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        reply.append(buf, static_cast<std::size_t>(n));
        if (reply.size() > (1u << 20)) {
            std::fprintf(stderr, "npactl: reply from %s longer than 1 MiB\n", sock.c_str());
            return {};
        }
    }
    if (const auto nl = reply.find('\n'); nl != std::string::npos)
        reply.resize(nl);
    bool ok = false;
    if (!npa::lnx::tools::json_get_bool(reply, "ok", ok)) {
        std::fprintf(stderr, sent ? "npactl: malformed reply from npa-linkd\n"
                                  : "npactl: write to the daemon's socket failed\n");
        return {};
    }
    return reply;
}

} // namespace

int main(int argc, char** argv) {
    std::string sock = npa::lnx::tools::default_socket;
    bool json = false, indent = false, with_stats = false;
    std::string req;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-j" || a == "--json") {
            json = true;
        } else if (a == "-p" || a == "--pretty") {
            indent = true;
        } else if (a == "-s" || a == "--stats") {
            with_stats = true;
        } else if (a == "--socket") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "npactl: --socket needs a path\n%s", usage);
                return 2;
            }
            sock = argv[++i];
        } else if (a.starts_with("--socket=")) {
            sock = std::string(a.substr(9));
        } else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            return 0;
        } else if (a == "-V" || a == "--version") {
            std::printf("npactl (npa) %s\n", NPA_VERSION_STRING);
            return 0;
        } else if (a.size() > 1 && a.starts_with("-")) {
            std::fprintf(stderr, "npactl: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        } else if (req.empty()) {
            const std::string_view c = resolve(a);
            if (c.empty()) {
                std::fprintf(stderr, "npactl: unknown command '%s'\n%s", argv[i], usage);
                return 2;
            }
            req = std::string(c);
        } else {
            req += " " + std::string(a);
        }
    }
    if (req.empty()) {
        std::fprintf(stderr, "npactl: no command\n%s", usage);
        return 2;
    }
    if (req == "help") {
        std::fputs(usage, stdout);
        return 0;
    }
    // Validate locally first, so a typo gets the same clear message without a daemon.
    npa::lnx::tools::request r;
    std::string err;
    if (!npa::lnx::tools::parse_request(req, r, err) || r.text) {
        std::fprintf(stderr, "npactl: %s\n%s", r.text ? "unknown argument 'text'" : err.c_str(),
                     usage);
        return 2;
    }
    if (sock.empty() || sock.size() >= sizeof(sockaddr_un::sun_path)) {
        std::fprintf(stderr, "npactl: socket path must be 1..%zu characters\n",
                     sizeof(sockaddr_un::sun_path) - 1);
        return 2;
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::fprintf(stderr, "npactl: cannot reach npa-linkd at %s: %s\n", sock.c_str(),
                     std::strerror(errno));
        return 2;
    }
    // The daemon runs as root (or as this user): a socket served by anyone else is not
    // npa-linkd, whatever it answers (SO_PEERCRED).
    if (unsigned uid = 0;
        !npa::lnx::tools::peer_uid(fd, uid) || !npa::lnx::tools::peer_trusted(uid)) {
        std::fprintf(stderr,
                     "npactl: refusing %s: it is served by uid %u, not root or this user "
                     "(not npa-linkd)\n",
                     sock.c_str(), uid);
        return 2;
    }
    std::string replies[2];
    replies[0] = ask(fd, sock, req + (json ? "" : " text"));
    if (replies[0].empty())
        return 2;
    if (with_stats && r.cmd == npa::lnx::tools::command::status) {
        replies[1] = ask(fd, sock, std::string("stats") + (json ? "" : " text"));
        if (replies[1].empty())
            return 2;
    }
    ::close(fd);
    bool all_ok = true;
    for (const std::string& reply : replies) {
        if (reply.empty())
            continue;
        bool ok = false;
        (void)npa::lnx::tools::json_get_bool(reply, "ok", ok);
        all_ok = all_ok && ok;
        if (json) {
            std::printf("%s\n", indent ? pretty(reply).c_str() : reply.c_str());
        } else if (ok) {
            std::string text;
            if (npa::lnx::tools::json_get_string(reply, "text", text))
                std::fputs(text.c_str(), stdout);
            else
                std::printf("ok\n");
        } else {
            std::string e;
            (void)npa::lnx::tools::json_get_string(reply, "error", e);
            std::fprintf(stderr, "npactl: %s\n", e.c_str());
        }
    }
    return all_ok ? 0 : 1;
}
