// npa/linux/detail.hpp: small helpers shared by the Linux plugins (not a user header).
#pragma once

#include <npa/concepts/shell_api.hpp>
#include <npa/status.hpp>

#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace npa::lnx::detail {

/// Formats a log line into a stack buffer and hands it to the shell API's log().
/// Control path only (attach, detach, errors); the data path counts instead of logging.
template <class Api>
void logf(Api& api, log_level level, const char* fmt, ...) noexcept
    __attribute__((format(printf, 3, 4)));

template <class Api>
void logf(Api& api, log_level level, const char* fmt, ...) noexcept {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    api.log(level, line);
}

/// Copies an interface name into a fixed IFNAMSIZ array; false when it does not fit or
/// is empty (the kernel's own limit: 15 characters plus the terminator).
inline bool copy_ifname(char (&dst)[IFNAMSIZ], const char* src) noexcept {
    const std::size_t n = src != nullptr ? std::strlen(src) : 0;
    if (n == 0 || n >= IFNAMSIZ) {
        return false;
    }
    std::memcpy(dst, src, n + 1);
    return true;
}

/// What a socket's errno says about the interface under it: errc::removed when it went
/// away (ENXIO, ENODEV), errc::device_error when it is down (ENETDOWN), errc::ok for
/// anything else (a full queue, a signal: transient).
[[nodiscard]] inline errc link_health(int err) noexcept {
    if (err == ENXIO || err == ENODEV) {
        return errc::removed;
    }
    return err == ENETDOWN ? errc::device_error : errc::ok;
}

/// Makes packet socket `fd` hold a promiscuous membership of interface `ifindex`: a NIC
/// filters by destination MAC before either plugin sees a frame, and the shell's MAC is not
/// the lower's. The kernel drops the membership with the socket. False if refused.
[[nodiscard]] inline bool add_promisc_membership(int fd, int ifindex) noexcept {
    packet_mreq mr{};
    mr.mr_ifindex = ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    return ::setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) == 0;
}

/// The MTU of interface `name`, or 0 if it cannot be read.
[[nodiscard]] inline unsigned if_mtu(const char* name) noexcept {
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        return 0;
    }
    ifreq ifr{};
    (void)copy_ifname(ifr.ifr_name, name);
    const bool ok = ::ioctl(s, SIOCGIFMTU, &ifr) == 0;
    ::close(s);
    return ok && ifr.ifr_mtu > 0 ? static_cast<unsigned>(ifr.ifr_mtu) : 0u;
}

} // namespace npa::lnx::detail
