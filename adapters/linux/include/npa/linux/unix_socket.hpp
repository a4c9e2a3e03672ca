// npa/linux/unix_socket.hpp: a unix socket connected to a path, or listening on one: what
// the vhost-user front and back ends and the zero-copy ports of npa-vswitchd each need.
// Each returns the descriptor, or -1 (the path empty or too long for sun_path, or the
// socket call failed: the caller says which in its own words).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace npa::lnx {

/// Whether `path` fits a unix socket address (1..107 bytes).
[[nodiscard]] inline bool unix_path_ok(const std::string& path) noexcept {
    return !path.empty() && path.size() < sizeof(sockaddr_un::sun_path);
}

namespace detail {
[[nodiscard]] inline sockaddr_un unix_address(const std::string& path) noexcept {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}
} // namespace detail

/// A socket of `type` (SOCK_STREAM, SOCK_SEQPACKET; SOCK_CLOEXEC is added) connected to
/// `path`: one attempt, as a unix socket connects at once or not at all.
[[nodiscard]] inline int unix_connect(const std::string& path, int type) noexcept {
    if (!unix_path_ok(path)) {
        return -1;
    }
    const sockaddr_un a = detail::unix_address(path);
    const int s = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (s >= 0 && ::connect(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        ::close(s);
        return -1;
    }
    return s;
}

/// A non-blocking socket of `type` listening on `path` (a stale socket file there is
/// replaced), with `backlog` connections waiting at most.
[[nodiscard]] inline int unix_listen(const std::string& path, int type, int backlog) noexcept {
    if (!unix_path_ok(path)) {
        return -1;
    }
    const sockaddr_un a = detail::unix_address(path);
    ::unlink(path.c_str());
    const int s = ::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s >= 0 && (::bind(s, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(s, backlog) != 0)) {
        ::close(s);
        return -1;
    }
    return s;
}

} // namespace npa::lnx
