// npa/sim/virtio_net/rx.hpp: the virtio-net model's RX engine (part of virtio_net_device):
// frames from the wire through the receive filter, steered to a pair, written header first
// into one chain or, with MRG_RXBUF, as many as the frame takes.
#pragma once

#include <npa/sim/virtio_net/device.hpp>

namespace npa::sim {

inline bool virtio_net_device::deliver_rx() {
    take_rx_batch(cfg_.rx_frames_per_step);
    active_queues<max_pairs> active;
    for (std::uint16_t p = 0; p < pairs_in_use(); ++p) {
        if (vqs_[virtio_net::rxq_index(p)].enabled) {
            active.add(p);
        }
    }
    for (const frame& f : rx_batch_) {
        if (!accept(f)) {
            ++rx_filtered_;
            continue;
        }
        const auto [ok, p, hash] = steer(f, active);
        if (ok && live()) {
            receive(p, f);
        }
    }
    for (std::uint16_t p = 0; p < npairs_ && live(); ++p) {
        (void)pairs_[p].cp[1].flush_held(writer(p, ring_kind::rx));
        flush_batch(p, ring_kind::rx);
    }
    const bool any = !rx_batch_.empty();
    rx_batch_.clear();
    return any;
}

// One frame into one chain (or, with MRG_RXBUF, as many as it takes).
inline void virtio_net_device::receive(std::uint16_t p, const frame& f) {
    vq& v = vqs_[virtio_net::rxq_index(p)];
    pair_state& ps = pairs_[p];
    if (v.failed) {
        ++ps.st.rx_no_desc;
        return;
    }
    const bool mrg = has(virtio_net::feature::MRG_RXBUF);
    const std::uint32_t need = virtio_net::HDR_LEN + f.len;
    // Take chains until the frame fits (one, without MRG_RXBUF).
    std::uint32_t room = 0;
    std::uint16_t taken = 0;
    std::uint32_t taken_descs = 0;
    chains_.clear();
    while (room < need && (mrg || taken == 0)) {
        virtio::chain c;
        std::uint16_t descs = 1;
        const virtio::pop_status st = v.dev.pop(c, descs, segs_, addr_ok());
        if (st == virtio::pop_status::empty) {
            break;
        }
        if (st != virtio::pop_status::ok || c.readable != 0) {
            refuse(p, ring_kind::rx, c.head,
                   st == virtio::pop_status::ok ? virtio::chain_error::read_after_write : v.dev.last_error());
            return;
        }
        ++taken;
        taken_descs += descs;
        room += c.write_len;
        chains_.push_back({c, descs, std::vector<virtio::segment>(segs_.begin(), segs_.begin() + c.segments)});
    }
    if (room < need) {
        v.dev.unpop(taken, taken_descs); // not enough: the chains stay available
        taken == 0 || mrg ? ++ps.st.rx_no_desc : ++ps.st.rx_oversize;
        return;
    }
    // The header, then the frame, across the chains' writable buffers.
    virtio_net::net_hdr_v1 h{};
    h.num_buffers = static_cast<std::uint16_t>(chains_.size());
    if (nb_fault_count_ != 0) {
        --nb_fault_count_;
        h.num_buffers = static_cast<std::uint16_t>(static_cast<std::int32_t>(chains_.size()) + nb_fault_delta_);
    }
    if (has(virtio_net::feature::GUEST_CSUM)) {
        h.flags = virtio_net::HDR_F_DATA_VALID; // the sim's wire never corrupts a frame
    }
    std::memcpy(rx_buf_.data(), &h, sizeof h);
    std::memcpy(rx_buf_.data() + sizeof h, f.data.data(), f.len);
    std::uint32_t at = 0;
    bool ok = true;
    for (const auto& [c, descs, segs] : chains_) {
        v.hold(c.head);
        std::uint32_t wrote = 0;
        for (const virtio::segment& s : segs) {
            const std::uint32_t k = need - at < s.len ? need - at : s.len;
            if (k != 0 && ok) {
                ok = mem_.dma_write(s.addr, rx_buf_.data() + at, k);
            }
            at += k;
            wrote += k;
        }
        complete(p, ring_kind::rx, used_rec{c.head, ok ? wrote : 0, descs}, c.write_len);
    }
    ps.st.rx_merged += chains_.size() > 1 ? 1 : 0;
    if (ok) {
        ++ps.st.rx_frames;
        ps.st.rx_bytes += f.len;
    } else {
        ++ps.st.rx_dma_errors;
    }
}

} // namespace npa::sim
