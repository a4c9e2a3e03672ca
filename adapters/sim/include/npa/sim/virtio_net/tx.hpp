// npa/sim/virtio_net/tx.hpp: the virtio-net model's TX engine (part of virtio_net_device):
// every available chain of a transmitq walked and checked, header and frame gathered, a
// NEEDS_CSUM checksum filled in, the frame sent and the chain used with len 0.
#pragma once

#include <npa/sim/virtio_net/device.hpp>

namespace npa::sim {

inline bool virtio_net_device::process_tx(std::uint16_t p) {
    vq& v = vqs_[virtio_net::txq_index(p)];
    if (!v.enabled || v.failed) {
        return false;
    }
    pair_state& ps = pairs_[p];
    bool any = false;
    for (;;) {
        virtio::chain c;
        std::uint16_t descs = 1;
        const virtio::pop_status st = v.dev.pop(c, descs, segs_, addr_ok());
        if (st == virtio::pop_status::empty) {
            break;
        }
        any = true;
        if (st != virtio::pop_status::ok || c.readable != c.segments) {
            refuse(p, ring_kind::tx, c.head,
                   st == virtio::pop_status::ok ? virtio::chain_error::read_after_write : v.dev.last_error());
            return true;
        }
        if (const tx_event e = next_tx_event(); e != tx_event::none) {
            e == tx_event::remove ? do_remove() : do_reset();
            return true;
        }
        v.hold(c.head);
        send_chain(p, c);
        complete(p, ring_kind::tx, used_rec{c.head, 0, descs}, 0);
    }
    (void)ps.cp[0].flush_held(writer(p, ring_kind::tx));
    flush_batch(p, ring_kind::tx);
    return any;
}

// Gathers header and frame from the chain's buffers; sends the frame.
inline void virtio_net_device::send_chain(std::uint16_t p, const virtio::chain& c) {
    pair_state& ps = pairs_[p];
    const std::uint32_t total = c.read_len;
    if (total < virtio_net::HDR_LEN + 14 || total > virtio_net::HDR_LEN + max_frame_size) {
        ++ps.st.tx_bad_frame;
        return;
    }
    std::uint32_t at = 0;
    bool ok = true;
    for (std::uint16_t i = 0; i < c.segments && ok; ++i) {
        ok = mem_.dma_read(segs_[i].addr, tx_buf_.data() + at, segs_[i].len);
        at += segs_[i].len;
    }
    if (!ok) {
        ++ps.st.tx_dma_errors;
        return;
    }
    virtio_net::net_hdr_v1 h;
    std::memcpy(&h, tx_buf_.data(), sizeof h);
    scratch_.len = total - virtio_net::HDR_LEN;
    std::memcpy(scratch_.data.data(), tx_buf_.data() + virtio_net::HDR_LEN, scratch_.len);
    if ((h.flags & virtio_net::HDR_F_NEEDS_CSUM) != 0 && has(virtio_net::feature::CSUM)) {
        const std::uint32_t start = h.csum_start, off = start + h.csum_offset;
        if (off + 2 > scratch_.len) {
            ++ps.st.tx_bad_frame;
            return;
        }
        // The field holds the pseudo-header sum; the checksum covers start..end (5.1.6.2).
        const std::uint16_t sum = inet::checksum(scratch_.data.data() + start, scratch_.len - start);
        scratch_.data[off] = static_cast<std::byte>(sum >> 8);
        scratch_.data[off + 1] = static_cast<std::byte>(sum & 0xFF);
    }
    if (!link_up_.load(std::memory_order_relaxed)) { // relaxed: under mu_
        ++ps.st.tx_link_down;
        return;
    }
    ++ps.st.tx_frames;
    ps.st.tx_bytes += scratch_.len;
    frame_out(scratch_);
}

} // namespace npa::sim
