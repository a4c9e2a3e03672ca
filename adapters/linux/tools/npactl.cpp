// npactl: talks to npa-linkd over its control socket.
//   npactl [--socket PATH] [--json] status | stats | switch <lower|next>
// Exit status: 0 done, 1 the daemon refused (its reason is printed), 2 bad usage or no
// daemon.
#include "control_protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr const char* usage =
    "usage: npactl [--socket PATH] [--json] status | stats | switch <lower|next>\n"
    "  status   active lower, MAC, MTU, every lower's state\n"
    "  stats    per-lower counters, TAP counters, switch telemetry\n"
    "  switch   move the data path to the named lower (or the next usable one)\n"
    "  --json   print the daemon's JSON reply instead of text\n";
/// How long to wait for a reply: a switch answers once it has completed.
constexpr int reply_timeout_ms = 10000;

} // namespace

int main(int argc, char** argv) {
    std::string sock = npa::lnx::tools::default_socket;
    bool json = false;
    std::string req;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--json") {
            json = true;
        } else if (a == "--socket") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "npactl: --socket needs a path\n%s", usage);
                return 2;
            }
            sock = argv[++i];
        } else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            return 0;
        } else if (a.starts_with("-")) {
            std::fprintf(stderr, "npactl: unknown flag '%s'\n%s", argv[i], usage);
            return 2;
        } else {
            req += (req.empty() ? "" : " ") + std::string(a);
        }
    }
    if (req.empty()) {
        std::fprintf(stderr, "npactl: no command\n%s", usage);
        return 2;
    }
    // Validate locally first, so a typo gets the same clear message without a daemon.
    npa::lnx::tools::request r;
    std::string err;
    if (!npa::lnx::tools::parse_request(req, r, err) || r.text) {
        std::fprintf(stderr, "npactl: %s\n%s", r.text ? "unknown argument 'text'" : err.c_str(),
                     usage);
        return 2;
    }
    if (sock.size() >= sizeof(sockaddr_un::sun_path)) {
        std::fprintf(stderr, "npactl: socket path too long\n");
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
    const std::string line = req + (json ? "" : " text") + "\n";
    // A daemon that refuses this client answers and closes at once: no SIGPIPE, read on.
    const bool sent =
        ::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
    std::string reply;
    while (reply.find('\n') == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, reply_timeout_ms) <= 0) {
            std::fprintf(stderr, "npactl: no reply from npa-linkd within %d ms\n",
                         reply_timeout_ms);
            return 2;
        }
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        reply.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (const auto nl = reply.find('\n'); nl != std::string::npos)
        reply.resize(nl);
    bool ok = false;
    if (!npa::lnx::tools::json_get_bool(reply, "ok", ok)) {
        if (!sent) {
            std::fprintf(stderr, "npactl: write to %s failed\n", sock.c_str());
            return 2;
        }
        std::fprintf(stderr, "npactl: malformed reply from npa-linkd\n");
        return 2;
    }
    if (json) {
        std::printf("%s\n", reply.c_str());
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
    return ok ? 0 : 1;
}
