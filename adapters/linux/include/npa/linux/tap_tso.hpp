// npa/linux/tap_tso.hpp: TCP frames the stack hands the TAP unsegmented, sent whole to a
// lower that can take them, else cut into MTU-sized segments in the shell's buffers.
//
// With TUN_F_TSO4 | TUN_F_TSO6 on the TAP, one read returns up to 64 KB of one TCP flow
// with a virtio-net header saying how to cut it (gso_type, gso_size; virtio 1.2, section
// 5.1.6.2): one system call for what would be forty reads of MTU-sized frames. The frame is
// read into a per-queue scratch buffer. From there it goes one of two ways:
//
// - whole (whole_pending, then sent_whole): the caller hands the frame and its header as
//   read to a lower that takes GSO frames (the AF_PACKET plugin's tx_gso, with
//   PACKET_VNET_HDR), and the kernel segments it or passes it on as one GSO packet; no
//   checksum is summed here. A shell buffer holds at most one MTU-sized frame, so such a
//   frame never enters the shell: the caller sends it only while the queue is steady on
//   that path (shell::steady_path) with nothing of its own waiting, so order is kept.
// - cut (emit): handed out one segment per shell buffer, cut as the kernel's own GSO cuts
//   it (packet_gso_segment, npa/linux/af_packet_rx.hpp, the same code that cuts the
//   AF_PACKET plugin's received 64 KB frames): headers copied per segment, IPv4 length, id
//   and header checksum redone, sequence numbers advanced, FIN and PSH only on the last
//   segment, CWR only on the first, each TCP checksum computed in software. That is the
//   way for a lower without GSO (AF_XDP, the PCI plugins), during a switch, and for a
//   frame the lower refused whole. A frame that needs no cutting (not GSO, or one
//   segment's worth) goes out as it came, its checksum left partial for the plugin to
//   finish as before.
//
// The scratch holds the frame until it is sent whole or every segment is handed out: when
// the shell has fewer buffers than the frame has segments, the rest wait for the next
// call, so a frame is never lost or half-sent. A header the mapping cannot carry (UDP
// fragmentation, a GSO type without a checksum request, zero gso_size, a frame that cannot
// be cut into the shell's buffers) drops the frame, counted.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/linux/af_packet_rx.hpp>
#include <npa/linux/tap.hpp>
#include <npa/linux/virtio_net_defs.hpp>

#include <sys/uio.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace npa::lnx {

/// One queue's frame read from the TAP and the segments of it not yet handed out.
class tap_gso_scratch {
public:
    /// The largest frame a TAP hands over with TSO on: an IP packet of 64 KB behind an
    /// Ethernet header with one VLAN tag.
    static constexpr std::uint32_t capacity = 65535 + 18;

    struct counters {
        std::uint64_t frames = 0;   ///< frames taken (GSO or not)
        std::uint64_t gso = 0;      ///< of them, GSO frames (larger than one segment)
        std::uint64_t whole = 0;    ///< of those, sent whole to the lower (sent_whole)
        std::uint64_t whole_segments = 0; ///< the segments those stand for
        std::uint64_t segments = 0; ///< segments the others were cut into
        std::uint64_t bad_vnet = 0; ///< dropped: a header that cannot be carried
        std::uint64_t too_long = 0; ///< dropped: not GSO and larger than a buffer

        counters& operator+=(const counters& o) noexcept {
            frames += o.frames;
            gso += o.gso;
            whole += o.whole;
            whole_segments += o.whole_segments;
            segments += o.segments;
            bad_vnet += o.bad_vnet;
            too_long += o.too_long;
            return *this;
        }
    };

    tap_gso_scratch() : data_(std::make_unique<std::byte[]>(capacity)) {}

    /// Segments of the current frame still to hand out.
    [[nodiscard]] bool holding() const noexcept { return next_ < count_; }
    [[nodiscard]] const counters& stats() const noexcept { return st_; }
    [[nodiscard]] std::byte* data() noexcept { return data_.get(); }

    /// Takes the frame now in data() (len bytes, its header h) for buffers of
    /// `buf_cap` bytes. False: dropped and counted.
    bool take(const virtio_net_hdr& h, std::uint32_t len, std::uint32_t buf_cap) noexcept {
        next_ = count_ = 0;
        h_ = h;
        if (len < 14 || len > capacity || !offload_from_vnet(h, data_.get(), len, o_)) {
            ++st_.bad_vnet;
            return false;
        }
        len_ = len;
        gso_size_ = 0;
        if (o_.flags & ol::tx_tso) {
            // One segment's worth (the headers and at most gso_size of payload) needs
            // no cutting: it goes as a plain frame with its checksum left partial.
            if (len <= std::uint32_t{h.hdr_len} + h.gso_size && len <= buf_cap) {
                o_.flags &= ~ol::tx_tso;
                o_.tso_mss = 0;
            } else {
                std::uint32_t first = 0;
                const std::uint32_t n =
                    detail::packet_gso_segment(frame(), h.gso_size, 0, nullptr, buf_cap, first);
                if (n == 0) {
                    ++st_.bad_vnet;
                    return false;
                }
                gso_size_ = h.gso_size;
                count_ = n;
                ++st_.gso;
                ++st_.frames;
                return true;
            }
        }
        if (len > buf_cap) {
            ++st_.too_long;
            return false;
        }
        count_ = 1;
        ++st_.frames;
        return true;
    }

    /// A GSO frame none of whose segments went yet: it may be sent whole (bytes(),
    /// header(), then sent_whole()) instead of emitted.
    [[nodiscard]] bool whole_pending() const noexcept {
        return gso_size_ != 0 && next_ == 0 && count_ != 0;
    }
    /// The frame as read (from the Ethernet header) and its virtio-net header as read.
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        return {data_.get(), len_};
    }
    [[nodiscard]] const virtio_net_hdr& header() const noexcept { return h_; }
    /// The segments the frame is cut into (1 when it is not cut).
    [[nodiscard]] std::uint32_t segment_count() const noexcept { return count_; }
    /// The lower took the frame whole: it is done.
    void sent_whole() noexcept {
        ++st_.whole;
        st_.whole_segments += count_;
        next_ = count_;
    }

    /// Hands the next segment (or the whole frame) out into b. Only while holding().
    void emit(buffer_ref b) noexcept {
        if (gso_size_ == 0) {
            std::memcpy(b.data(), data_.get(), len_);
            b.set_length(len_);
            b.set_offload(o_);
        } else {
            std::uint32_t n = 0;
            (void)detail::packet_gso_segment(frame(), gso_size_, next_, b.data(), b.capacity(), n);
            b.set_length(n);
            b.set_offload(offload_info{}); // checksums finished in software
            ++st_.segments;
        }
        ++next_;
    }

private:
    [[nodiscard]] detail::packet_wire_frame frame() const noexcept {
        detail::packet_wire_frame f;
        f.src = data_.get();
        f.snap = len_;
        return f;
    }

    std::unique_ptr<std::byte[]> data_;
    virtio_net_hdr h_{};
    offload_info o_{};
    std::uint32_t len_ = 0;
    std::uint16_t gso_size_ = 0;
    std::uint32_t next_ = 0, count_ = 0;
    counters st_{};
};

/// Reads one frame from a TAP descriptor opened with IFF_VNET_HDR into s and takes it.
/// 1: a frame to hand out; 0: none waiting; -1: one dropped (counted in s).
inline int tap_read_gso(int fd, tap_gso_scratch& s, std::uint32_t buf_cap) noexcept {
    virtio_net_hdr h{};
    iovec iov[2] = {{&h, sizeof h}, {s.data(), tap_gso_scratch::capacity}};
    const ssize_t n = ::readv(fd, iov, 2);
    if (n < 0) {
        return 0;
    }
    if (static_cast<std::size_t>(n) < sizeof h) {
        return -1;
    }
    return s.take(h, static_cast<std::uint32_t>(static_cast<std::size_t>(n) - sizeof h), buf_cap)
               ? 1
               : -1;
}

} // namespace npa::lnx
