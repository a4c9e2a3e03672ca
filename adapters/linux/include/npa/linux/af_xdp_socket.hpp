// npa/linux/af_xdp_socket.hpp: the XDP sockets under an AF_XDP plugin.
//
// Registering the UMEM, creating one socket per queue through libxdp (which loads its
// built-in redirect program, xsk_def_xdp_prog, with the first socket on an interface and
// removes it with the last), the zero-copy-then-copy fallback and the retries a queue just
// released needs, closing them again, the kernel's counters, and the clean-up of a redirect
// program a killed process left behind. The plugin's data path over the four rings is in
// npa/linux/af_xdp.hpp.
#pragma once

#include <npa/linux/detail.hpp>
#include <npa/linux/umem.hpp>
#include <npa/status.hpp>

#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::lnx {

// ---- tuning ---------------------------------------------------------------------------
/// A queue that was just released is freed by the kernel after an RCU grace period;
/// binding it again before that fails with EBUSY. attach() retries that long
/// (50 x 2 ms), which covers a switch straight back to the path just left.
inline constexpr std::uint32_t attach_busy_retries = 50;

enum class xdp_mode : std::uint8_t {
    automatic, ///< zero-copy if the driver supports it, copy otherwise
    copy,      ///< XDP_COPY: the kernel copies between the NIC and the UMEM (any driver, veth)
    zero_copy, ///< XDP_ZEROCOPY: the NIC DMAs into the UMEM; attach fails if unsupported
};

[[nodiscard]] constexpr const char* to_string(xdp_mode m) noexcept {
    switch (m) {
    case xdp_mode::automatic: return "auto";
    case xdp_mode::copy: return "copy";
    case xdp_mode::zero_copy: return "zero-copy";
    }
    return "unknown";
}

/// The device window of an AF_XDP plugin: an interface, its first queue, the mode, and
/// the UMEM (the shell pool's backing memory) the rings will address.
struct af_xdp_device {
    char ifname[IFNAMSIZ] = {};
    std::uint32_t queue_id = 0; ///< first NIC queue; plugin queue q uses queue_id + q
    xdp_mode mode = xdp_mode::automatic;
    bool need_wakeup = true; ///< XDP_USE_NEED_WAKEUP: no syscalls while the kernel polls
    bool promiscuous = true; ///< receive frames for any MAC (the shell's MAC is not the NIC's)
    std::byte* umem_base = nullptr; ///< where the shell's pool lives
    std::size_t umem_size = 0;

    template <class Pool>
    [[nodiscard]] static af_xdp_device over(const char* name, const Pool& pool,
                                            xdp_mode m = xdp_mode::automatic) noexcept {
        af_xdp_device d;
        (void)detail::copy_ifname(d.ifname, name);
        d.mode = m;
        d.umem_base = pool.backing().base();
        d.umem_size = pool.backing().size();
        return d;
    }
};

/// Silences libbpf's and libxdp's own stderr chatter (the plugin reports through the
/// shell API instead). Called once per process by the first attach.
inline void quiet_xdp_libraries() noexcept {
    static std::atomic<bool> done{false};
    if (!done.exchange(true)) {
        libbpf_set_print([](enum libbpf_print_level, const char*, va_list) { return 0; });
        libxdp_set_print([](enum libxdp_print_level, const char*, va_list) { return 0; });
    }
}

/// Removes the AF_XDP redirect program (libxdp's xsk_def_prog) that a process killed
/// while attached left on `ifname`: libxdp removes it only with the last socket of the
/// process that loaded it, and a later process reuses it without owning it, so without
/// this it stays for good. Call it only for an interface this process owns for AF_XDP
/// (another live AF_XDP user of it would lose its program). Other XDP programs are left
/// alone. Returns how many it removed (0: none there), -1 if it could not look.
[[nodiscard]] inline int remove_stale_xsk_program(const char* ifname) noexcept {
    const int ifindex = static_cast<int>(::if_nametoindex(ifname));
    if (ifindex == 0) {
        return -1;
    }
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (mp == nullptr || libxdp_get_error(mp) != 0) {
        return libxdp_get_error(mp) == -ENOENT ? 0 : -1;
    }
    const xdp_attach_mode mode = xdp_multiprog__attach_mode(mp);
    int removed = 0;
    const auto is_xsk = [](xdp_program* p) {
        const char* n = p != nullptr ? xdp_program__name(p) : nullptr;
        return n != nullptr && std::strcmp(n, "xsk_def_prog") == 0;
    };
    if (xdp_multiprog__is_legacy(mp)) {
        xdp_program* p = xdp_multiprog__main_prog(mp);
        if (is_xsk(p) && xdp_program__detach(p, ifindex, mode, 0) == 0) {
            ++removed;
        }
    } else {
        for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p != nullptr;
             p = xdp_multiprog__next_prog(p, mp)) {
            if (is_xsk(p) && xdp_program__detach(p, ifindex, mode, 0) == 0) {
                ++removed;
            }
        }
    }
    xdp_multiprog__close(mp);
    return removed;
}


namespace detail {

/// One queue's socket and its rings, as libxdp maps them. Queue 0's fill and completion
/// rings are the UMEM's (registered with it), the others' their own; fq and cq point at
/// whichever the queue uses.
struct xsk_queue_socket {
    xsk_socket* xsk = nullptr;
    xsk_ring_cons rx{};
    xsk_ring_prod tx{};
    xsk_ring_prod fq_own{};
    xsk_ring_cons cq_own{};
    xsk_ring_prod* fq = nullptr; // queue 0 uses the UMEM's rings, others their own
    xsk_ring_cons* cq = nullptr;

    /// Deletes the socket: the kernel stops using the rings, and libxdp unmaps them.
    void close() noexcept {
        if (xsk != nullptr) {
            xsk_socket__delete(xsk);
            xsk = nullptr;
        }
    }

    /// The kernel's counters for this socket (XDP_STATISTICS), false if there is no
    /// socket or the kernel would not say. A system call: control path only.
    [[nodiscard]] bool read_kernel_stats(xdp_statistics& ks) const noexcept {
        socklen_t len = sizeof ks;
        return xsk != nullptr &&
               ::getsockopt(xsk_socket__fd(xsk), SOL_XDP, XDP_STATISTICS, &ks, &len) == 0;
    }
};

/// The UMEM registration and the sockets of one plugin instance, plus the packet socket
/// that holds the interface promiscuous. The queues (any type derived from
/// xsk_queue_socket) stay with the plugin, next to the state its data path keeps per queue.
class xsk_sockets {
public:
    /// Registers the UMEM [umem_base, umem_base + umem_len) (with queue 0's fill and
    /// completion rings) and opens one socket per queue on dev.ifname from dev.queue_id:
    /// zero-copy first in automatic mode, copy if the driver refuses it; a queue still
    /// busy after a release (EBUSY) is retried attach_busy_retries times, 2 ms apart.
    /// On failure nothing stays open and last_error() holds the errno.
    template <class Queue>
    [[nodiscard]] status open(const af_xdp_device& dev, std::span<Queue> queues,
                              std::uint32_t rx_size, std::uint32_t tx_size, std::byte* umem_base,
                              std::size_t umem_len) noexcept {
        status st;
        for (std::uint32_t attempt = 0;; ++attempt) {
            st = open_once(dev, queues, rx_size, tx_size, umem_base, umem_len,
                           dev.mode == xdp_mode::copy ? xdp_mode::copy : xdp_mode::zero_copy);
            if (!st.ok() && dev.mode == xdp_mode::automatic && last_err_ != EBUSY) {
                close_sockets(queues);
                st = open_once(dev, queues, rx_size, tx_size, umem_base, umem_len,
                               xdp_mode::copy);
            }
            if (st.ok() || last_err_ != EBUSY || attempt == attach_busy_retries) {
                break;
            }
            close_sockets(queues);
            ::usleep(2000);
        }
        if (!st.ok()) {
            close_sockets(queues);
        }
        return st;
    }

    /// A NIC filters by destination MAC before XDP sees a frame; the shell's MAC is not
    /// the NIC's, so hold a promiscuous membership (dropped with the socket, in close()).
    /// False if the kernel refused it.
    [[nodiscard]] bool hold_promiscuous(const char* ifname) noexcept {
        promisc_fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        return promisc_fd_ >= 0 &&
               add_promisc_membership(promisc_fd_, static_cast<int>(::if_nametoindex(ifname)));
    }

    /// Deletes every queue's socket, then the UMEM registration.
    template <class Queue>
    void close_sockets(std::span<Queue> queues) noexcept {
        for (Queue& qu : queues) {
            qu.close();
        }
        if (umem_ != nullptr) {
            (void)xsk_umem__delete(umem_);
            umem_ = nullptr;
        }
    }

    /// close_sockets, and the promiscuous membership with its socket.
    template <class Queue>
    void close(std::span<Queue> queues) noexcept {
        close_sockets(queues);
        if (promisc_fd_ >= 0) {
            ::close(promisc_fd_);
            promisc_fd_ = -1;
        }
    }

    /// A UMEM is registered: a kernel is behind the rings.
    [[nodiscard]] bool registered() const noexcept { return umem_ != nullptr; }
    /// The mode the sockets were opened in.
    [[nodiscard]] xdp_mode mode() const noexcept { return mode_; }
    /// The errno of the last failed libxdp call.
    [[nodiscard]] int last_error() const noexcept { return last_err_; }

private:
    template <class Queue>
    status open_once(const af_xdp_device& dev, std::span<Queue> queues, std::uint32_t rx_size,
                     std::uint32_t tx_size, std::byte* umem_base, std::size_t umem_len,
                     xdp_mode m) noexcept {
        xsk_umem_config uc{};
        uc.fill_size = rx_size;
        uc.comp_size = tx_size;
        uc.frame_size = umem_chunk_size;
        uc.frame_headroom = 0; // data lands at XDP_PACKET_HEADROOM, which the pool matches
        uc.flags = 0;
        int r = xsk_umem__create(&umem_, umem_base, umem_len, &queues[0].fq_own,
                                 &queues[0].cq_own, &uc);
        if (r != 0) {
            last_err_ = -r;
            umem_ = nullptr;
            return {errc::no_memory, "xsk_umem__create failed"};
        }
        for (std::size_t q = 0; q < queues.size(); ++q) {
            Queue& qu = queues[q];
            xsk_socket_config sc{};
            sc.rx_size = rx_size;
            sc.tx_size = tx_size;
            sc.libxdp_flags = 0; // let libxdp load (and later remove) its redirect program
            sc.xdp_flags = 0;    // native XDP where the driver has it, generic otherwise
            sc.bind_flags =
                static_cast<std::uint16_t>((m == xdp_mode::copy ? XDP_COPY : XDP_ZEROCOPY) |
                                           (dev.need_wakeup ? XDP_USE_NEED_WAKEUP : 0));
            const auto queue_id = static_cast<std::uint32_t>(dev.queue_id + q);
            if (q == 0) {
                r = xsk_socket__create(&qu.xsk, dev.ifname, queue_id, umem_, &qu.rx, &qu.tx, &sc);
            } else {
                r = xsk_socket__create_shared(&qu.xsk, dev.ifname, queue_id, umem_, &qu.rx,
                                              &qu.tx, &qu.fq_own, &qu.cq_own, &sc);
            }
            if (r != 0) {
                last_err_ = -r;
                qu.xsk = nullptr;
                return {-r == ENODEV || -r == ENXIO ? errc::removed : errc::not_supported,
                        m == xdp_mode::zero_copy ? "zero-copy AF_XDP socket refused"
                                                 : "AF_XDP socket refused"};
            }
            qu.fq = &qu.fq_own;
            qu.cq = &qu.cq_own;
        }
        mode_ = m;
        return {};
    }

    xsk_umem* umem_ = nullptr;
    int last_err_ = 0;
    int promisc_fd_ = -1;
    xdp_mode mode_ = xdp_mode::copy;
};

} // namespace detail
} // namespace npa::lnx
