// npa/linux/tap.hpp: the shell's OS-facing side as a TAP netdev.
//
// The kernel's network stack sees one interface (the TAP); applications, ping and
// iperf3 use it as any other. What the stack transmits is read from the TAP's file
// descriptors and handed to the shell (tx_burst); what the shell receives is written to
// them and enters the stack as received traffic. The interface never goes away while the
// shell switches the data path under it.
//
// Opened with IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR (Documentation/
// networking/tuntap.rst): one file descriptor per queue, and every frame preceded by a
// virtio-net header (virtio spec 1.2, section 5.1.6 "struct virtio_net_hdr") carrying the
// checksum and segmentation offload state, mapped here to npa::offload_info. Offloads are
// turned on (TUNSETOFFLOAD) as asked in tap_options: with TUN_F_CSUM the stack hands over
// TCP/UDP frames with the checksum left to finish (the plugins finish it before the frame
// leaves, npa/linux/checksum.hpp), and received frames whose checksum was checked reach
// the stack marked DATA_VALID. npa-linkd also turns on TCP segmentation (TUN_F_TSO4/6):
// one read then returns up to 64 KB of a TCP flow with its segment size, which the daemon
// sends whole to an AF_PACKET lower (the kernel segments it) or cuts into MTU-sized
// segments before the shell sees it (npa/linux/tap_tso.hpp). read_frame below takes only what fits a buffer; UDP fragmentation
// and segmentation offload stay off. Received TCP segments go up merged where they can
// (write_burst, npa/linux/tap_gro.hpp): a frame written with a GSO header needs no
// TUNSETOFFLOAD bit.
//
// MAC and MTU are read and set with the classic ioctls on the interface; changes made
// with `ip link` are seen through rtnetlink (npa/linux/rtnetlink.hpp).
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/control.hpp>
#include <npa/linux/detail.hpp>
#include <npa/linux/tap_gro.hpp>
#include <npa/status.hpp>

#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <npa/linux/virtio_net_defs.hpp>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>

namespace npa::lnx {

/// Queues (file descriptors) a TAP front opens at most; the kernel allows 256
/// (MAX_TAP_QUEUES), a daemon serving one thread per queue needs far fewer.
inline constexpr std::uint16_t tap_max_queues = 16;

struct tap_options {
    std::uint16_t queues = 1;
    bool vnet_hdr = true;       ///< IFF_VNET_HDR: a virtio-net header with every frame
    std::uint32_t offloads = 0; ///< TUN_F_* bits for TUNSETOFFLOAD (0: the kernel finishes frames)
};

// ---- virtio-net header <-> offload_info -------------------------------------------------

/// Offload state of a frame the stack transmitted (read from the TAP), from its header.
/// A header the mapping cannot represent (unknown GSO type, checksum start beyond the
/// frame) yields false: the caller drops the frame and counts it.
[[nodiscard]] inline bool offload_from_vnet(const virtio_net_hdr& h, const std::byte* frame,
                                            std::uint32_t frame_len, offload_info& o) noexcept {
    o = offload_info{};
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        // csum_start is where the L4 header begins; the checksum field is at
        // csum_start + csum_offset (6 for UDP, 16 for TCP).
        if (h.csum_start < ETH_HLEN || h.csum_start + h.csum_offset + 2u > frame_len ||
            h.csum_start - ETH_HLEN > 255) {
            return false;
        }
        o.flags |= ol::tx_l4_csum;
        // An 802.1Q/802.1ad tag moves the L3 header by 4 bytes.
        const auto type = static_cast<std::uint16_t>((std::to_integer<unsigned>(frame[12]) << 8) |
                                                     std::to_integer<unsigned>(frame[13]));
        const std::uint32_t l2 =
            (type == ETH_P_8021Q || type == ETH_P_8021AD) && h.csum_start >= 18 ? 18u : ETH_HLEN;
        o.l2_len = static_cast<std::uint8_t>(l2);
        o.l3_len = static_cast<std::uint8_t>(h.csum_start - l2);
        // Which L4 checksum: l4_len says it (8 for UDP, the TCP header's length for TCP),
        // as finish_tx_csum (npa/linux/checksum.hpp) reads it. Nothing else asks for it.
        if (h.csum_offset == 6) {
            o.l4_len = 8;
        } else if (h.csum_offset == 16) {
            const unsigned doff =
                h.csum_start + 12u < frame_len
                    ? (std::to_integer<unsigned>(frame[h.csum_start + 12]) >> 4) * 4
                    : 0u;
            o.l4_len = static_cast<std::uint8_t>(doff < 20 ? 20 : doff);
        } else {
            return false;
        }
    }
    if (h.flags & VIRTIO_NET_HDR_F_DATA_VALID) {
        o.csum = csum_state::good;
    }
    switch (static_cast<std::uint8_t>(h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN)) {
    case VIRTIO_NET_HDR_GSO_NONE: break;
    case VIRTIO_NET_HDR_GSO_TCPV4:
    case VIRTIO_NET_HDR_GSO_TCPV6:
        if (!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h.gso_size == 0 ||
            h.hdr_len <= h.csum_start) {
            return false;
        }
        o.flags |= ol::tx_tso;
        o.tso_mss = h.gso_size;
        o.l4_len = static_cast<std::uint8_t>(
            h.hdr_len - h.csum_start > 255 ? 255 : h.hdr_len - h.csum_start);
        break;
    default: return false; // UDP fragmentation offload and others: not carried
    }
    return true;
}

// ---- the TAP device ------------------------------------------------------------------

class tap_device {
public:
    tap_device() noexcept = default;
    tap_device(tap_device&& o) noexcept
        : fds_(std::exchange(o.fds_, {})), nq_(std::exchange(o.nq_, 0)), vnet_(o.vnet_),
          ifindex_(o.ifindex_), gro_(o.gro_) {
        std::memcpy(name_, o.name_, IFNAMSIZ);
        for (auto& f : o.fds_)
            f = -1;
    }
    tap_device& operator=(tap_device&& o) noexcept {
        if (this != &o) {
            close_all();
            fds_ = o.fds_;
            nq_ = std::exchange(o.nq_, 0);
            vnet_ = o.vnet_;
            ifindex_ = o.ifindex_;
            gro_ = o.gro_;
            std::memcpy(name_, o.name_, IFNAMSIZ);
            for (auto& f : o.fds_)
                f = -1;
        }
        return *this;
    }
    tap_device(const tap_device&) = delete;
    tap_device& operator=(const tap_device&) = delete;
    ~tap_device() { close_all(); }

    /// Creates (or attaches to) the TAP `name` with opt.queues queues. Steps from
    /// tuntap.rst: open /dev/net/tun once per queue, TUNSETIFF with the same name and
    /// IFF_MULTI_QUEUE, then header size and offloads on the first descriptor.
    [[nodiscard]] static result<tap_device> open(const char* name,
                                                 const tap_options& opt) noexcept {
        tap_device t;
        if (!detail::copy_ifname(t.name_, name)) {
            return {errc::invalid_argument, "tap: interface name must be 1..15 characters"};
        }
        if (opt.queues == 0 || opt.queues > tap_max_queues) {
            return {errc::invalid_argument, "tap: queue count must be 1..16"};
        }
        for (auto& f : t.fds_)
            f = -1;
        for (std::uint16_t q = 0; q < opt.queues; ++q) {
            const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) {
                return {errc::not_supported, "tap: cannot open /dev/net/tun"};
            }
            t.fds_[q] = fd;
            t.nq_ = static_cast<std::uint16_t>(q + 1);
            ifreq ifr{};
            std::memcpy(ifr.ifr_name, t.name_, IFNAMSIZ);
            ifr.ifr_flags =
                static_cast<short>(IFF_TAP | IFF_NO_PI | (opt.queues > 1 ? IFF_MULTI_QUEUE : 0) |
                                   (opt.vnet_hdr ? IFF_VNET_HDR : 0));
            if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
                // tun_set_iff: EBUSY, the TAP is attached to another process's file
                // (single-queue) or has all its queues; EPERM, no CAP_NET_ADMIN (or
                // the TAP belongs to another user); EINVAL, the name is another kind of
                // device or a TAP made with other flags.
                switch (errno) {
                case EBUSY:
                    return {errc::busy, "tap: in use by another process (another npa-linkd?)"};
                case EPERM:
                    return {errc::not_supported,
                            "tap: not permitted (needs CAP_NET_ADMIN, or the TAP is another "
                            "user's)"};
                default:
                    return {errc::not_supported,
                            "tap: TUNSETIFF refused (the name is another kind of device, or "
                            "a TAP made with other flags)"};
                }
            }
        }
        t.vnet_ = opt.vnet_hdr;
        if (t.vnet_) {
            int sz = sizeof(virtio_net_hdr);
            if (::ioctl(t.fds_[0], TUNSETVNETHDRSZ, &sz) != 0) {
                return {errc::not_supported, "tap: TUNSETVNETHDRSZ failed"};
            }
        }
        if (::ioctl(t.fds_[0], TUNSETOFFLOAD, static_cast<unsigned long>(opt.offloads)) != 0 &&
            opt.offloads != 0) {
            return {errc::not_supported, "tap: TUNSETOFFLOAD refused the requested offloads"};
        }
        t.ifindex_ = static_cast<int>(::if_nametoindex(t.name_));
        return t;
    }

    [[nodiscard]] const char* name() const noexcept { return name_; }
    [[nodiscard]] int ifindex() const noexcept { return ifindex_; }
    [[nodiscard]] std::uint16_t queue_count() const noexcept { return nq_; }
    [[nodiscard]] int fd(std::uint16_t q) const noexcept { return q < nq_ ? fds_[q] : -1; }

    /// Reads one frame the stack transmitted into b. 1: a frame; 0: none waiting;
    /// -1: a frame that was dropped (bad header or larger than the buffer; counted by
    /// the caller).
    int read_frame(std::uint16_t q, buffer_ref b) noexcept {
        virtio_net_hdr h{};
        iovec iov[2] = {{&h, sizeof h}, {b.data(), b.capacity()}};
        const ssize_t n = vnet_ ? ::readv(fds_[q], iov, 2) : ::readv(fds_[q], iov + 1, 1);
        if (n < 0) {
            return 0;
        }
        const std::size_t hdr = vnet_ ? sizeof h : 0;
        if (static_cast<std::size_t>(n) < hdr + ETH_HLEN) {
            return -1;
        }
        const auto len = static_cast<std::uint32_t>(static_cast<std::size_t>(n) - hdr);
        offload_info o{};
        if (vnet_ && !offload_from_vnet(h, b.data(), len, o)) {
            return -1;
        }
        b.set_length(len);
        b.set_offload(o);
        return 1;
    }

    /// Writes one received frame into the stack. False if the kernel refused it (its
    /// queue is full): the caller counts the drop.
    bool write_frame(std::uint16_t q, buffer_ref b) noexcept {
        virtio_net_hdr h = vnet_from_offload(b.offload());
        iovec iov[2] = {{&h, sizeof h}, {b.data(), b.length()}};
        const ssize_t n = vnet_ ? ::writev(fds_[q], iov, 2) : ::writev(fds_[q], iov + 1, 1);
        return n > 0;
    }

    /// Writes a burst of received frames into the stack, runs of one TCP flow's segments
    /// merged into one frame each (npa/linux/tap_gro.hpp; needs IFF_VNET_HDR, else every
    /// frame goes alone). Returns the frames the kernel took.
    std::uint32_t write_burst(std::uint16_t q, std::span<const buffer_ref> frames) noexcept {
        if (!vnet_) {
            std::uint32_t n = 0;
            for (const buffer_ref b : frames) {
                n += write_frame(q, b) ? 1u : 0u;
            }
            return n;
        }
        return tap_write_burst(fds_[q], frames, gro_);
    }
    /// Writes one large frame a plugin received whole (the AF_PACKET plugin's rx_whole:
    /// the virtio-net header with its GSO type and size, then the frame) standing for
    /// `segments` segments. False if the kernel refused it (or the TAP has no
    /// IFF_VNET_HDR): the caller has it cut and sent again.
    bool write_whole(std::uint16_t q, std::span<const iovec> iov, std::uint32_t segments) noexcept {
        if (!vnet_) {
            ++gro_.whole_refused;
            return false;
        }
        ++gro_.writes; // a write(2) made
        if (::writev(fds_[q], iov.data(), static_cast<int>(iov.size())) <= 0) {
            ++gro_.whole_refused;
            return false;
        }
        ++gro_.whole_writes;
        gro_.whole_segments += segments;
        return true;
    }
    [[nodiscard]] bool vnet_hdr() const noexcept { return vnet_; }

    /// What write_burst merged.
    [[nodiscard]] const tap_gro_stats& gro_stats() const noexcept { return gro_; }

    // ---- interface attributes (control path) -----------------------------------------

    /// Keeps the interface when the last file descriptor closes (TUNSETPERSIST), so a
    /// daemon that exits or crashes leaves it, its addresses and routes in place; the next
    /// open() of the same name attaches to it.
    [[nodiscard]] status set_persist(bool on) const noexcept {
        if (nq_ == 0 || ::ioctl(fds_[0], TUNSETPERSIST, on ? 1UL : 0UL) != 0) {
            return {errc::not_supported, "tap: TUNSETPERSIST failed"};
        }
        return {};
    }
    /// The interface's carrier (TUNSETCARRIER, Linux 5.0): off while no path can carry
    /// traffic, so the stack and routing daemons see the link down instead of a black hole.
    [[nodiscard]] status set_carrier(bool on) const noexcept {
        int v = on ? 1 : 0;
        if (nq_ == 0 || ::ioctl(fds_[0], TUNSETCARRIER, &v) != 0) {
            return {errc::not_supported, "tap: TUNSETCARRIER failed"};
        }
        return {};
    }

    [[nodiscard]] status set_up(bool up) const noexcept {
        return with_ifreq([&](int s, ifreq& ifr) -> status {
            if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
                return {errc::device_error, "tap: SIOCGIFFLAGS failed"};
            ifr.ifr_flags =
                static_cast<short>(up ? (ifr.ifr_flags | IFF_UP) : (ifr.ifr_flags & ~IFF_UP));
            if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
                return {errc::device_error, "tap: SIOCSIFFLAGS failed"};
            return {};
        });
    }
    [[nodiscard]] result<mac_addr> mac() const noexcept {
        mac_addr m{};
        const status st = with_ifreq([&](int s, ifreq& ifr) -> status {
            if (::ioctl(s, SIOCGIFHWADDR, &ifr) != 0)
                return {errc::device_error, "tap: SIOCGIFHWADDR failed"};
            std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
            return {};
        });
        if (!st.ok())
            return st;
        return m;
    }
    [[nodiscard]] status set_mac(const mac_addr& m) const noexcept {
        return with_ifreq([&](int s, ifreq& ifr) -> status {
            ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
            std::memcpy(ifr.ifr_hwaddr.sa_data, m.data(), 6);
            if (::ioctl(s, SIOCSIFHWADDR, &ifr) != 0)
                return {errc::invalid_argument, "tap: SIOCSIFHWADDR failed"};
            return {};
        });
    }
    [[nodiscard]] result<std::uint32_t> mtu() const noexcept {
        std::uint32_t v = 0;
        const status st = with_ifreq([&](int s, ifreq& ifr) -> status {
            if (::ioctl(s, SIOCGIFMTU, &ifr) != 0)
                return {errc::device_error, "tap: SIOCGIFMTU failed"};
            v = static_cast<std::uint32_t>(ifr.ifr_mtu);
            return {};
        });
        if (!st.ok())
            return st;
        return v;
    }
    [[nodiscard]] status set_mtu(std::uint32_t mtu) const noexcept {
        return with_ifreq([&](int s, ifreq& ifr) -> status {
            ifr.ifr_mtu = static_cast<int>(mtu);
            if (::ioctl(s, SIOCSIFMTU, &ifr) != 0)
                return {errc::invalid_argument, "tap: SIOCSIFMTU failed"};
            return {};
        });
    }

    /// Packets the stack may queue on the TAP before it drops (SIOCSIFTXQLEN).
    [[nodiscard]] status set_txqueuelen(int len) const noexcept {
        return with_ifreq([&](int s, ifreq& ifr) -> status {
            ifr.ifr_qlen = len;
            if (::ioctl(s, SIOCSIFTXQLEN, &ifr) != 0)
                return {errc::invalid_argument, "tap: SIOCSIFTXQLEN failed"};
            return {};
        });
    }

private:
    template <class F>
    status with_ifreq(F&& f) const noexcept {
        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            return {errc::device_error, "tap: no socket for interface ioctls"};
        }
        ifreq ifr{};
        std::memcpy(ifr.ifr_name, name_, IFNAMSIZ);
        const status st = f(s, ifr);
        ::close(s);
        return st;
    }

    void close_all() noexcept {
        for (std::uint16_t q = 0; q < nq_; ++q) {
            if (fds_[q] >= 0) {
                ::close(fds_[q]);
                fds_[q] = -1;
            }
        }
        nq_ = 0;
    }

    std::array<int, tap_max_queues> fds_{};
    std::uint16_t nq_ = 0;
    bool vnet_ = true;
    int ifindex_ = 0;
    tap_gro_stats gro_{};
    char name_[IFNAMSIZ] = {};
};

} // namespace npa::lnx
