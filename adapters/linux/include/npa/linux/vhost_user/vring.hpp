// npa/linux/vhost_user/vring.hpp: one virtqueue as a vhost-user back end holds it (the
// device side, split or packed as negotiated: virtq_device.hpp, over guest_memory), and the
// two ways a virtio-net back end uses one: take a frame the front end transmits (its
// transmitq, 2q+1), give a frame to the front end (its receiveq, 2q).
//
// Every chain is walked by the ring's device side with guest_memory as the address check,
// so a descriptor index, a loop, a length or an address outside the mapped regions is
// refused and counted (errors(chain_error)) before a byte of it is touched. A refused chain
// whose head (split) or buffer id (packed) is known goes back to the front end unused
// (length 0); an impossible avail->idx, or a packed chain with no end, marks the ring
// broken: it is left alone until the front end sets it up again.
//
// A packed ring's three areas arrive in SET_VRING_ADDR's three fields, as DPDK's
// virtio-user and QEMU send them: the descriptor ring in desc, the driver's event
// suppression area in avail, the device's in used.
//
// The 12-byte virtio_net_hdr_v1 (VIRTIO_F_VERSION_1 or MRG_RXBUF; 10 bytes otherwise)
// leads every buffer: skipped on transmit, written as zeros (num_buffers set) on receive.
#pragma once

#include <npa/config.hpp>
#include <npa/detail/store_changed.hpp>
#include <npa/linux/vhost_user/guest_memory.hpp>
#include <npa/linux/vhost_user/virtq_device.hpp>
#include <npa/virtio/packed_ring.hpp>
#include <npa/virtio/split_ring.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::vhost_user {

/// Tuning: segments one chain may have (a TX chain of a 64 KiB frame in 4 KiB pages is 17;
/// DPDK's virtio-user sends at most 2) and RX chains one frame may take with MRG_RXBUF.
inline constexpr std::size_t max_segments = 64;
inline constexpr std::uint16_t max_rx_chains = 64;

struct vring {
    // set up by the front end (SET_VRING_*)
    std::uint32_t num = 0;
    std::uint16_t base = 0; ///< split: the index; packed: encode_base()'s position and wrap
    std::uint64_t desc_uva = 0, avail_uva = 0, used_uva = 0;
    int kick = -1, call = -1, err = -1;
    bool addr_set = false, kicked = false, enabled = false;
    // what the back end made of it
    bool started = false, broken = false;
    virtq_device dev{};
    /// Where each walk puts a chain's segments: kept here, not on the stack, so an empty poll
    /// does not zero 1 KiB of segments every time.
    std::array<virtio::segment, max_segments> segs{};

    [[nodiscard]] bool ready() const noexcept { return started && enabled && !broken; }

    /// Binds the ring to `mem` at its user addresses and starts it at `base`; false (nothing
    /// started) when an area lies outside the mapped memory, is misaligned, the size is not
    /// one the layout allows or a packed base lies past the ring.
    /// `indirect`: VIRTIO_F_INDIRECT_DESC negotiated (tables read through `mem`, take_frame /
    /// give_frame).
    [[nodiscard]] bool start(const guest_memory& mem, bool event_idx, bool packed = false,
                             bool indirect = false) noexcept {
        started = broken = false;
        if (!addr_set) {
            return false;
        }
        if (packed) {
            if (!virtio::packed_size_ok(num)) {
                return false;
            }
            std::byte* d = mem.uva(desc_uva, virtio::packed_desc_bytes(num));
            std::byte* drv = mem.uva(avail_uva, sizeof(virtio::pvirtq_event_suppress));
            std::byte* dv = mem.uva(used_uva, sizeof(virtio::pvirtq_event_suppress));
            started = d != nullptr && drv != nullptr && dv != nullptr &&
                      dev.reset(virtio::packed_ring(d, drv, dv, num), base, indirect, event_idx);
            return started;
        }
        if (!virtio::queue_size_ok(num)) {
            return false;
        }
        std::byte* d = mem.uva(desc_uva, virtio::desc_bytes(num));
        std::byte* a = mem.uva(avail_uva, virtio::avail_bytes(num));
        std::byte* u = mem.uva(used_uva, virtio::used_bytes(num));
        if (d == nullptr || a == nullptr || u == nullptr) {
            return false;
        }
        started = dev.reset(virtio::split_ring(d, a, u, num), event_idx, base, indirect);
        return started;
    }
    /// GET_VRING_BASE: stops the ring and answers where the front end resumes.
    std::uint16_t stop() noexcept {
        if (started) {
            base = dev.base();
        }
        started = false;
        return base;
    }
};

/// What one ring walk refused or could not do, beside split_device's per-error counters.
struct io_stats {
    std::uint64_t broken = 0;       ///< avail->idx impossible: the ring was stopped
    std::uint64_t short_chain = 0;  ///< a TX chain shorter than the virtio-net header
    std::uint64_t rx_no_buffer = 0; ///< no RX chain (or not enough of them) for a frame
    std::uint64_t rx_too_big = 0;   ///< without MRG_RXBUF, a frame larger than the chain
    std::uint64_t indirect = 0;     ///< not an error: chains used whole from an indirect table
};

/// The table reader every walk here passes to pop(): an indirect table is read where it
/// lies in the front end's memory, all of it inside one mapped region, or refused.
struct table_reader {
    const guest_memory& mem;
    [[nodiscard]] const std::byte* operator()(std::uint64_t addr, std::uint32_t len) const noexcept {
        return mem.gpa(addr, len);
    }
};

/// A frame taken from a transmitq (take_frame_in_place): `len` bytes at `data`, which points
/// into the front end's memory when the frame lies in one segment after the header (no copy
/// made), else into the caller's scratch buffer (gathered there). When `len` is more than the
/// scratch holds, only its first scratch.size() bytes are there (the caller drops it).
struct tx_frame {
    const std::byte* data = nullptr;
    std::size_t len = 0;
};

/// Takes the next frame the front end transmits, in place where it can: its length is 0 when
/// nothing is waiting or the chain was refused (counted; its head given back unused). The
/// chain is marked used (length 0) before this returns. On a split ring publish_used() is
/// the caller's, once a burst, and only after it is done with the bytes, which stay in the
/// front end's memory until then; on a packed ring (used as soon as marked) the frame is
/// always copied into the scratch buffer first. The front end can still rewrite them (a hostile one will, between a
/// check and a copy): decide on a snapshot of what the decision reads, never on the bytes
/// in place.
[[nodiscard]] inline tx_frame take_frame_in_place(vring& r, const guest_memory& mem, std::size_t hdr_len,
                                                  std::span<std::byte> scratch, io_stats& st, bool& more) noexcept {
    more = false;
    std::span<virtio::segment> segs = r.segs;
    // pop() calls the address check once for each descriptor it accepts, in chain order
    // (virtqueue.hpp, chain_walk::take), so host[i] is where segs[i] lies here: each
    // segment is translated once.
    std::array<const std::byte*, max_segments> host;
    std::uint16_t nh = 0;
    const auto ok = [&](std::uint64_t a, std::uint32_t l, bool) {
        const std::byte* p = mem.gpa(a, l);
        if (p != nullptr) {
            host[nh++] = p;
        }
        return p != nullptr;
    };
    virtio::chain c;
    std::uint16_t descs = 0;
    // a transmitq's buffers are all device-readable (5.1.6.2), whatever a packed table's
    // entries say (virtqueue.hpp, table_direction)
    const virtio::pop_status ps = r.dev.pop(c, descs, segs, ok, table_reader{mem}, virtio::table_direction::readable);
    if (ps == virtio::pop_status::empty) {
        return {};
    }
    if (ps == virtio::pop_status::broken) {
        r.broken = true;
        ++st.broken;
        return {};
    }
    more = true;
    if (ps == virtio::pop_status::refused) {
        if (r.dev.last_error() != virtio::chain_error::head_range) {
            r.dev.push_used(c.head, 0, descs);
        }
        return {};
    }
    st.indirect += c.indirect ? 1 : 0;
    if (c.read_len <= hdr_len) {
        r.dev.push_used(c.head, 0, descs);
        ++st.short_chain;
        return {};
    }
    // Step over the header (it may span segments); a frame left in one segment stays where
    // it is, one in several is gathered into the scratch buffer.
    std::uint16_t i = 0;
    std::size_t skip = hdr_len;
    while (skip >= segs[i].len) { // read_len > hdr_len: a readable segment holds frame bytes
        skip -= segs[i].len;
        ++i;
    }
    const std::size_t len = c.read_len - hdr_len;
    // A split ring's used entry reaches the front end only with publish_used(), after the
    // caller is done with the bytes, so a frame in one segment is read where it is. A packed
    // ring's used flag is visible as soon as it is written: the front end may then reuse the
    // buffer, so the frame is copied out before it is given back.
    if (segs[i].len - skip == len && !r.dev.packed()) {
        r.dev.push_used(c.head, 0, descs);
        return {host[i] + skip, len};
    }
    std::size_t at = 0;
    for (; i < c.readable; ++i) {
        const std::size_t seg = segs[i].len - skip;
        const std::size_t n = at < scratch.size() ? std::min(seg, scratch.size() - at) : 0;
        std::memcpy(scratch.data() + at, host[i] + skip, n);
        at += seg;
        skip = 0;
    }
    r.dev.push_used(c.head, 0, descs);
    return {scratch.data(), len};
}

/// Takes the next frame the front end transmits into `out`: its length, 0 when nothing is
/// waiting or the chain was refused (counted; its head given back unused), or more than
/// out.size() when the frame did not fit (the first out.size() bytes copied; the caller drops
/// it). As take_frame_in_place, with the frame always copied.
[[nodiscard]] inline std::size_t take_frame(vring& r, const guest_memory& mem, std::size_t hdr_len,
                                            std::span<std::byte> out, io_stats& st, bool& more) noexcept {
    const tx_frame f = take_frame_in_place(r, mem, hdr_len, out, st, more);
    if (f.data != nullptr && f.data != out.data()) {
        std::memcpy(out.data(), f.data, std::min(f.len, out.size()));
    }
    return f.len;
}

/// A frame to give in two pieces, `head` then `tail` (a switch passes the Ethernet header it
/// checked, from its own snapshot, and the rest of the frame from where it was taken).
struct frame_parts {
    std::span<const std::byte> head, tail;
    [[nodiscard]] std::size_t size() const noexcept { return head.size() + tail.size(); }
    /// Copies bytes [at, at + n) of the frame to `to`.
    void copy(std::byte* to, std::size_t at, std::size_t n) const noexcept {
        if (at < head.size()) {
            const std::size_t h = std::min(n, head.size() - at);
            std::memcpy(to, head.data() + at, h);
            to += h;
            at += h;
            n -= h;
        }
        if (n != 0) {
            std::memcpy(to, tail.data() + (at - head.size()), n);
        }
    }
};

namespace detail {
/// The virtio-net header of a frame in one buffer: zeros, num_buffers 1 (read only when the
/// header has it: VERSION_1 or MRG_RXBUF, 12 bytes).
inline constexpr std::array<std::byte, 12> one_buffer_hdr{
    std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
    std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{1}, std::byte{0}}; // le16 1

/// Writes the header and `frame` at `p`, which holds them both. The header is not written
/// where the buffer holds it already: a front end that posts the same buffers again (DPDK's,
/// Linux's) finds in each the header of its last frame (npa/detail/store_changed.hpp).
NPA_ALWAYS_INLINE void give_whole(std::byte* p, std::size_t hdr_len, const frame_parts& frame) noexcept {
    if (hdr_len == 12) {
        npa::detail::store_changed(p, one_buffer_hdr.data(), 12);
    } else {
        npa::detail::store_changed(p, one_buffer_hdr.data(), 10); // legacy: no num_buffers
    }
    p += hdr_len;
    if (frame.head.size() == 18) { // a switch's Ethernet snapshot: destination to type
        std::memcpy(p, frame.head.data(), 18);
    } else if (!frame.head.empty()) {
        std::memcpy(p, frame.head.data(), frame.head.size());
    }
    if (!frame.tail.empty()) {
        std::memcpy(p + frame.head.size(), frame.tail.data(), frame.tail.size());
    }
}
} // namespace detail

/// Gives `frame` to the front end through its receive ring: true when delivered (used
/// entries written, not yet published). With `mrg` (VIRTIO_NET_F_MRG_RXBUF) the frame may
/// take several chains (num_buffers in the header); without, it must fit one. Chains taken
/// and not used go back to the ring.
[[nodiscard]] inline bool give_frame(vring& r, const guest_memory& mem, std::size_t hdr_len, bool mrg,
                                     const frame_parts& frame, io_stats& st) noexcept {
    struct taken {
        std::uint16_t head;
        std::uint32_t len;
        std::uint16_t descs;
        bool indirect;
    };
    std::span<virtio::segment> segs = r.segs;
    std::array<taken, max_rx_chains> used;
    std::uint16_t nused = 0;
    std::uint32_t ndescs = 0;               // ring positions the chains taken hold
    std::byte* num_buffers = nullptr;
    std::size_t at = 0;                     // frame bytes written
    const std::size_t total = hdr_len + frame.size();
    std::size_t written = 0;                // header and frame bytes written
    // As in take_frame_in_place: host[i] is where segs[i] lies, translated by the check.
    std::array<std::byte*, max_segments> host;
    std::uint16_t nh = 0;
    const auto ok = [&](std::uint64_t a, std::uint32_t l, bool w) {
        std::byte* p = w ? mem.gpa(a, l) : nullptr;
        if (p != nullptr) {
            host[nh++] = p;
        }
        return p != nullptr;
    };
    while (written < total) {
        if (nused == max_rx_chains || (nused != 0 && !mrg)) {
            r.dev.unpop(nused, ndescs);
            ++(mrg ? st.rx_no_buffer : st.rx_too_big);
            return false;
        }
        virtio::chain c;
        nh = 0;
        std::uint16_t descs = 0;
        const virtio::pop_status ps =
            r.dev.pop(c, descs, segs, ok, table_reader{mem}, virtio::table_direction::writable);
        if (ps == virtio::pop_status::broken) {
            r.dev.unpop(nused, ndescs);
            r.broken = true;
            ++st.broken;
            return false;
        }
        if (ps == virtio::pop_status::empty) {
            r.dev.unpop(nused, ndescs);
            ++st.rx_no_buffer;
            return false;
        }
        if (ps == virtio::pop_status::refused) {
            // A chain that cannot be written is given back unused; the frame tries the next
            // one, unless chains were taken before it: they can no longer go back to the
            // ring (the refused one sits after them), so they go back unused too, first,
            // in the order they were taken (IN_ORDER; a packed ring's positions).
            for (std::uint16_t i = 0; i < nused; ++i) {
                r.dev.push_used(used[i].head, 0, used[i].descs);
            }
            if (r.dev.last_error() != virtio::chain_error::head_range) {
                r.dev.push_used(c.head, 0, descs);
            }
            if (nused == 0) {
                continue;
            }
            ++st.rx_no_buffer;
            return false;
        }
        // A chain with readable segments is refused by the write check (every segment must
        // be writable), so segment i is host[i].
        if (nused == 0 && c.segments == 1 && segs[0].len >= total) {
            // the common case (one buffer a frame, as DPDK's and Linux's front ends post them,
            // 64-byte frames or MTU-sized ones in 2 KiB buffers): fixed-size stores
            detail::give_whole(host[0], hdr_len, frame);
            r.dev.push_used(c.head, static_cast<std::uint32_t>(total), descs);
            st.indirect += c.indirect ? 1 : 0;
            return true;
        }
        std::uint32_t len = 0;
        for (std::uint16_t i = c.readable; i < c.segments && written < total; ++i) {
            std::byte* p = host[i];
            std::size_t room = segs[i].len;
            if (written < hdr_len) { // the header, zeros but num_buffers
                const std::size_t n = std::min(room, hdr_len - written);
                std::memset(p, 0, n);
                if (written <= 10 && written + n >= 12 && hdr_len >= 12) {
                    num_buffers = p + (10 - written);
                }
                p += n;
                room -= n;
                written += n;
                len += static_cast<std::uint32_t>(n);
            }
            const std::size_t n = std::min(room, frame.size() - at);
            frame.copy(p, at, n);
            at += n;
            written += n;
            len += static_cast<std::uint32_t>(n);
        }
        used[nused++] = {c.head, len, descs, c.indirect};
        ndescs += descs;
    }
    if (num_buffers != nullptr) {
        const std::uint16_t nb = nused; // le16 on the x86 and arm64 hosts this runs on
        std::memcpy(num_buffers, &nb, 2);
    }
    for (std::uint16_t i = 0; i < nused; ++i) {
        r.dev.push_used(used[i].head, used[i].len, used[i].descs);
        st.indirect += used[i].indirect ? 1 : 0;
    }
    return true;
}
[[nodiscard]] inline bool give_frame(vring& r, const guest_memory& mem, std::size_t hdr_len, bool mrg,
                                     std::span<const std::byte> frame, io_stats& st) noexcept {
    return give_frame(r, mem, hdr_len, mrg, frame_parts{frame, {}}, st);
}

} // namespace npa::vhost_user
