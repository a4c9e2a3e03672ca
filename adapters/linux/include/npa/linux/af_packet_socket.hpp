// npa/linux/af_packet_socket.hpp: the packet socket under one AF_PACKET plugin queue.
//
// Opening and closing it (Documentation/networking/packet_mmap.rst: version, rings, mmap,
// bind, fanout), the ring geometry it is set up with, and the kernel's drop counter. The
// plugin's data path over the mapped rings is in npa/linux/af_packet.hpp.
#pragma once

#include <npa/linux/detail.hpp>
#include <npa/status.hpp>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace npa::lnx {

// ---- tuning ---------------------------------------------------------------------------
/// RX block size: 128 KiB holds 64 full-size frames, so the kernel hands a block over
/// after a burst rather than per packet, and a block is small enough to retire quickly.
inline constexpr std::uint32_t packet_rx_block_size = 1u << 17;
/// RX blocks: 32 x 128 KiB = 4 MiB of ring, about 2700 full-size frames of slack before
/// the kernel drops (counted by the kernel in PACKET_STATISTICS).
inline constexpr std::uint32_t packet_rx_block_count = 32;
/// Block retire timeout (ms): a partly filled block is handed over after this long, which
/// bounds the latency a lone packet (a ping) sees. 1 ms is the smallest the API allows.
inline constexpr std::uint32_t packet_rx_retire_ms = 1;
/// TX frame size: the frame header plus the largest frame the shell sends (2048 - 48).
inline constexpr std::uint32_t packet_tx_frame_size = 2048;

/// The device window of an AF_PACKET plugin: which interface, and a fanout group id for
/// multi-queue receive (0 picks one from the process id).
struct af_packet_device {
    char ifname[IFNAMSIZ] = {};
    std::uint16_t fanout_id = 0;
    bool promiscuous = true; ///< receive frames for any MAC (the shell's MAC is not the lower's)

    [[nodiscard]] static af_packet_device named(const char* name) noexcept {
        af_packet_device d;
        (void)detail::copy_ifname(d.ifname, name);
        return d;
    }
};

namespace detail {

/// One packet socket with a TPACKET_V3 RX ring of packet_rx_block_count blocks and a TX
/// ring of fixed frames, both in one mapping (RX first). Closed by close(), not by the
/// destructor: the plugin decides when the kernel lets go of the rings.
struct packet_socket {
    int fd = -1;
    std::byte* map = nullptr;
    std::size_t map_len = 0;
    std::byte* rx_ring = nullptr;
    std::byte* tx_ring = nullptr;
    bool vnet = false;              ///< a virtio_net_hdr precedes every frame (PACKET_VNET_HDR)
    /// A second socket on the same interface, without rings, for frames larger than a TX
    /// ring frame (a TSO frame from the TAP, up to 64 KB) sent whole with their GSO
    /// header by sendmsg; -1 when the kernel has no PACKET_VNET_HDR (frames are then cut).
    int gso_fd = -1;
    std::uint64_t kernel_drops = 0; ///< PACKET_STATISTICS tp_drops so far

    /// Opens the socket on interface `ifindex` with `tx_frames` TX frames. With `fanout`
    /// set, it joins PACKET_FANOUT group `fanout_id`. On failure errno says why and
    /// whatever was opened stays for close().
    [[nodiscard]] status open(int ifindex, bool promiscuous, std::uint32_t tx_frames, bool fanout,
                              std::uint16_t fanout_id) noexcept {
        // 1. A socket that receives nothing until bound (protocol 0), so no frame can
        //    arrive before the ring exists.
        fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            return {errc::not_supported, "af_packet: socket() failed (needs CAP_NET_RAW)"};
        }
        // 2. TPACKET_V3 for both rings.
        int v = TPACKET_V3;
        if (::setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) != 0) {
            return {errc::not_supported, "af_packet: TPACKET_V3 not supported"};
        }
        // 3. GSO and checksum metadata with every frame (a virtio_net_hdr before it, in
        //    both rings; set before the rings exist): a frame the peer's TSO or the
        //    lower's GRO made larger than a buffer arrives with its segment size, so the
        //    RX walk can cut it instead of dropping it. Kernels without it: frames larger
        //    than a buffer are dropped and counted (rx_dropped).
        int one = 1;
        vnet = ::setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) == 0;
        // 4. Only frames the interface received: what the local stack sends on the lower
        //    interface (and our own TX) must not come back as RX (Linux 4.20+).
        (void)::setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
        // 5. The rings: RX as blocks with a retire timeout, TX as fixed frames.
        tpacket_req3 rx{};
        rx.tp_block_size = packet_rx_block_size;
        rx.tp_block_nr = packet_rx_block_count;
        rx.tp_frame_size = packet_tx_frame_size; // only a hint for V3 RX
        rx.tp_frame_nr = packet_rx_block_size / packet_tx_frame_size * packet_rx_block_count;
        rx.tp_retire_blk_tov = packet_rx_retire_ms;
        if (::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx) != 0) {
            return {errc::no_memory, "af_packet: PACKET_RX_RING failed"};
        }
        tpacket_req3 tx{};
        tx.tp_block_size = 4096 * 16;
        tx.tp_frame_size = packet_tx_frame_size;
        tx.tp_block_nr = tx_frames * packet_tx_frame_size / tx.tp_block_size;
        if (tx.tp_block_nr == 0) {
            tx.tp_block_size = tx_frames * packet_tx_frame_size;
            tx.tp_block_nr = 1;
        }
        tx.tp_frame_nr = tx_frames;
        if (::setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx) != 0) {
            return {errc::no_memory, "af_packet: PACKET_TX_RING failed"};
        }
        // 6. One mapping: the RX ring first, the TX ring right after it.
        const std::size_t rx_len = std::size_t{packet_rx_block_size} * packet_rx_block_count;
        const std::size_t tx_len = std::size_t{tx.tp_block_size} * tx.tp_block_nr;
        void* m = ::mmap(nullptr, rx_len + tx_len, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_LOCKED | MAP_POPULATE, fd, 0);
        if (m == MAP_FAILED) {
            m = ::mmap(nullptr, rx_len + tx_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        }
        if (m == MAP_FAILED) {
            return {errc::no_memory, "af_packet: mmap of the rings failed"};
        }
        map = static_cast<std::byte*>(m);
        map_len = rx_len + tx_len;
        rx_ring = map;
        tx_ring = map + rx_len;
        // 7. Bind to the interface for every protocol.
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = ifindex;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
            return {errno == ENETDOWN ? errc::removed : errc::device_error,
                    "af_packet: bind to the interface failed"};
        }
        // 8. Frames for any destination MAC: the shell's MAC is not the lower's.
        if (promiscuous && !add_promisc_membership(fd, ifindex)) {
            return {errc::device_error, "af_packet: promiscuous membership failed"};
        }
        // 9. The socket for whole GSO frames. A socket with a TX ring sends only what is in
        //    the ring (packet_sendmsg hands every send to tpacket_snd), and a ring's frames
        //    are all one size: 64 KB frames would make a 2048-frame ring 128 MiB. So these
        //    go through a ring-less socket by sendmsg (the kernel copies the headers into
        //    the skb's head and the payload into pages, once). Protocol 0: it receives
        //    nothing. Without PACKET_VNET_HDR it stays closed and such frames are cut.
        open_gso_socket(ifindex);
        // 10. Several queues: spread flows over the sockets by hash (PACKET_FANOUT_HASH
        //    keeps a flow on one queue, so its packets stay in order).
        if (fanout) {
            int arg = fanout_id | (PACKET_FANOUT_HASH << 16);
            if (::setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) {
                return {errc::not_supported, "af_packet: PACKET_FANOUT failed"};
            }
        }
        return {};
    }

    void open_gso_socket(int ifindex) noexcept {
        gso_fd = vnet ? ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) : -1;
        if (gso_fd < 0) {
            return;
        }
        int one = 1;
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = 0;
        sll.sll_ifindex = ifindex;
        if (::setsockopt(gso_fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0 ||
            ::bind(gso_fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
            ::close(gso_fd);
            gso_fd = -1;
        }
    }

    /// Unmaps the rings and closes the sockets (the kernel lets go of both).
    void close() noexcept {
        if (gso_fd >= 0) {
            ::close(gso_fd);
            gso_fd = -1;
        }
        if (map != nullptr) {
            ::munmap(map, map_len);
            map = nullptr;
        }
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }

    /// The frames the kernel dropped because the RX ring was full, so far
    /// (PACKET_STATISTICS tp_drops; the kernel resets it on every read, so it is
    /// accumulated here). A system call: control path only.
    std::uint64_t read_kernel_drops() noexcept {
        tpacket_stats_v3 ks{};
        socklen_t len = sizeof ks;
        if (fd >= 0 && ::getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &ks, &len) == 0) {
            kernel_drops += ks.tp_drops;
        }
        return kernel_drops;
    }
};

} // namespace detail
} // namespace npa::lnx
