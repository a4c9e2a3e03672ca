// npa/linux/rtnetlink.hpp: link events from the kernel (rtnetlink, RTMGRP_LINK).
//
// The daemon learns from here that a lower interface went down, came back or was
// deleted (surprise removal), and that someone changed the TAP's MAC or MTU with
// `ip link`, or stacked a VLAN interface on it. Messages are parsed per rtnetlink(7):
// an ifinfomsg followed by IFLA_* attributes; every length is checked against the
// datagram before it is read.
#pragma once

#include <npa/control.hpp>

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace npa::lnx {

struct link_event {
    enum class kind : std::uint8_t { changed, removed };
    kind what = kind::changed;
    int ifindex = 0;
    char ifname[IFNAMSIZ] = {};
    unsigned flags = 0;    ///< IFF_UP, IFF_RUNNING, IFF_LOWER_UP ...
    std::uint32_t mtu = 0; ///< 0 if the message had none
    bool has_mac = false;
    mac_addr mac{};
    int link = 0;              ///< IFLA_LINK: the device this one is stacked on (VLANs)
    bool is_vlan = false;      ///< IFLA_INFO_KIND "vlan"
    std::uint16_t vlan_id = 0; ///< IFLA_VLAN_ID

    /// Up administratively and carrier present: usable as a data path.
    [[nodiscard]] bool running() const noexcept {
        return what == kind::changed && (flags & IFF_UP) && (flags & IFF_RUNNING);
    }
};

class link_monitor {
public:
    link_monitor() noexcept = default;
    link_monitor(const link_monitor&) = delete;
    link_monitor& operator=(const link_monitor&) = delete;
    ~link_monitor() {
        if (fd_ >= 0)
            ::close(fd_);
    }

    /// Subscribes to link events (non-blocking socket for the caller's poll loop).
    [[nodiscard]] bool open() noexcept {
        fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        if (fd_ < 0)
            return false;
        sockaddr_nl sa{};
        sa.nl_family = AF_NETLINK;
        sa.nl_groups = RTMGRP_LINK;
        // A bigger receive buffer: a burst of events (100 switches, many interfaces)
        // must not overflow it (ENOBUFS would lose events).
        int sz = 1 << 20;
        (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
        return ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    }

    [[nodiscard]] int fd() const noexcept { return fd_; }

    /// Reads every pending event and calls f(const link_event&) for each. Returns false
    /// if events were lost (ENOBUFS): the caller should re-read interface state.
    template <class F>
    bool drain(F&& f) noexcept {
        alignas(nlmsghdr) char buf[16384];
        bool ok = true;
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0) {
                if (errno == ENOBUFS) {
                    ok = false;
                    continue;
                }
                return ok;
            }
            parse(buf, static_cast<std::size_t>(n), f);
        }
    }

    /// Parses one datagram of rtnetlink link messages (also used by tests).
    template <class F>
    static void parse(const char* buf, std::size_t n, F&& f) noexcept {
        for (auto* h = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(h, n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK)
                continue;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg)))
                continue;
            const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
            link_event ev;
            ev.what = h->nlmsg_type == RTM_DELLINK ? link_event::kind::removed
                                                   : link_event::kind::changed;
            ev.ifindex = ifi->ifi_index;
            ev.flags = ifi->ifi_flags;
            int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ifinfomsg)));
            for (auto* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                const std::size_t plen = RTA_PAYLOAD(a);
                const void* p = RTA_DATA(a);
                switch (a->rta_type) {
                case IFLA_IFNAME:
                    if (plen > 0 && plen <= IFNAMSIZ) {
                        std::memcpy(ev.ifname, p, plen);
                        ev.ifname[IFNAMSIZ - 1] = '\0';
                    }
                    break;
                case IFLA_MTU:
                    if (plen >= 4)
                        std::memcpy(&ev.mtu, p, 4);
                    break;
                case IFLA_ADDRESS:
                    if (plen == 6) {
                        std::memcpy(ev.mac.data(), p, 6);
                        ev.has_mac = true;
                    }
                    break;
                case IFLA_LINK:
                    if (plen >= 4)
                        std::memcpy(&ev.link, p, 4);
                    break;
                case IFLA_LINKINFO:
                    parse_linkinfo(static_cast<const rtattr*>(p), static_cast<int>(plen), ev);
                    break;
                default: break;
                }
            }
            f(static_cast<const link_event&>(ev));
        }
    }

    /// Deletes an interface (RTM_DELLINK), as `ip link del` does; used to undo a VLAN
    /// interface the policy refused. True when the kernel acknowledged it.
    [[nodiscard]] static bool delete_link(int ifindex) noexcept {
        const int s = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (s < 0)
            return false;
        struct {
            nlmsghdr h;
            ifinfomsg i;
        } req{};
        req.h.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
        req.h.nlmsg_type = RTM_DELLINK;
        req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        req.h.nlmsg_seq = 1;
        req.i.ifi_family = AF_UNSPEC;
        req.i.ifi_index = ifindex;
        bool ok = false;
        if (::send(s, &req, req.h.nlmsg_len, 0) == static_cast<ssize_t>(req.h.nlmsg_len)) {
            alignas(nlmsghdr) char buf[1024];
            const ssize_t n = ::recv(s, buf, sizeof buf, 0);
            const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
            if (n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) &&
                h->nlmsg_type == NLMSG_ERROR) {
                ok = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error == 0;
            }
        }
        ::close(s);
        return ok;
    }

private:
    static void parse_linkinfo(const rtattr* a, int len, link_event& ev) noexcept {
        for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
            if (a->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(a) >= 4 &&
                std::memcmp(RTA_DATA(a), "vlan", 4) == 0) {
                ev.is_vlan = true;
            } else if (a->rta_type == IFLA_INFO_DATA) {
                int dl = static_cast<int>(RTA_PAYLOAD(a));
                for (auto* d = static_cast<const rtattr*>(RTA_DATA(a)); RTA_OK(d, dl);
                     d = RTA_NEXT(d, dl)) {
                    if (d->rta_type == IFLA_VLAN_ID && RTA_PAYLOAD(d) >= 2) {
                        std::memcpy(&ev.vlan_id, RTA_DATA(d), 2);
                    }
                }
            }
        }
    }

    int fd_ = -1;
};

} // namespace npa::lnx
