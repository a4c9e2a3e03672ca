// npa/sim/virtio_net/used.hpp: the virtio-net model's used entries (part of
// virtio_net_device): completions through the fault plan (dropped, delayed, reordered,
// corrupted), IN_ORDER batches (tx_batch, rx_batch), and the interrupt after publishing.
#pragma once

#include <npa/sim/virtio_net/device.hpp>

namespace npa::sim {

inline void virtio_net_device::complete(std::uint16_t p, ring_kind r, const used_rec& u, std::uint32_t buf_len) {
    pairs_[p].cp[static_cast<std::size_t>(r)].complete(u, buf_len, comp_faults::of(faults_, r), steps_,
                                                      pairs_[p].st, writer(p, r));
}

inline void virtio_net_device::write_used(std::uint16_t p, ring_kind r, used_rec u, std::uint32_t buf_len) {
    vq& v = vqs_[r == ring_kind::tx ? virtio_net::txq_index(p) : virtio_net::rxq_index(p)];
    if (!v.enabled || !live()) {
        return;
    }
    const std::uint32_t n = v.dev.size();
    const comp_fault fault = take_corruption(faults_, r, pairs_[p].st);
    v.release(u.id);
    const std::uint16_t batch = r == ring_kind::tx ? cfg_.tx_batch : cfg_.rx_batch;
    if (batch > 1 && has(virtio::feature::IN_ORDER)) {
        batch_state& b = batches_[p][static_cast<std::size_t>(r)];
        if (fault == comp_fault::none) {
            b.last = static_cast<std::uint16_t>(u.id);
            b.len = u.len;
            b.descs += u.descs;
            // A receiveq chain the device did not fill ends the batch: the driver takes
            // every chain before the last as written completely (2.7.9, 2.8).
            if (++b.held == batch || (r == ring_kind::rx && u.len != buf_len)) {
                flush_batch(p, r);
            }
            return;
        }
        flush_batch(p, r); // what is held goes first: the order stays the ring's
    }
    write_pause(true); // under write jitter: land it while the driver polls
    const auto id = static_cast<std::uint16_t>(u.id);
    switch (fault) {
    case comp_fault::index_out_of_range: v.dev.push_used(static_cast<std::uint16_t>(n + 7), u.len, 1); break;
    case comp_fault::length_too_large: v.dev.push_used(id, buf_len + 512, u.descs); break;
    case comp_fault::gen_out_of_order: // the index (packed: the position) runs past an entry never written
        v.dev.skip_used(u.descs);
        v.dev.push_used(id, u.len, u.descs);
        break;
    case comp_fault::never_posted:
        v.dev.push_used(id, u.len, u.descs);
        // Split: half a ring away (the plugin reads used entries in order, IN_ORDER).
        // Packed: used buffers may come in any order (no IN_ORDER), so the id must be
        // one the driver has not handed over: none available ahead, none held here,
        // or, when every id is out, the one just used.
        v.dev.push_used(v.dev.packed() ? v.id_not_out(id) : static_cast<std::uint16_t>((u.id + n / 2) % n),
                        u.len, 1);
        break;
    case comp_fault::double_completion:
        v.dev.push_used(id, u.len, u.descs);
        v.dev.push_used(id, u.len, u.descs);
        break;
    case comp_fault::none: v.dev.push_used(id, u.len, u.descs); break;
    }
    publish(v);
}

inline void virtio_net_device::publish(vq& v) {
    write_pause();
    v.dev.publish_used();
    // A vector the device has no interrupt for (VIRTIO_MSI_NO_VECTOR, 0xFFFF, among them)
    // leaves the queue enabled and silent, as QEMU's virtio-pci does (docs/real-devices.md,
    // virtio-net-pci 4): the driver polls it.
    if (v.dev.need_interrupt() && v.s.vector < cfg_.max_pairs) {
        ++raised_[v.s.vector];
        irqs_[v.s.vector].raise();
    }
}

// The held chains of pair p's ring r as one used entry: the last one's id and length,
// then the index moved past the rest (2.7.9; packed: one descriptor at the batch's first
// position, the positions of the whole batch skipped, 2.8).
inline void virtio_net_device::flush_batch(std::uint16_t p, ring_kind r) {
    batch_state& b = batches_[p][static_cast<std::size_t>(r)];
    if (b.held == 0) {
        return;
    }
    vq& v = vqs_[r == ring_kind::tx ? virtio_net::txq_index(p) : virtio_net::rxq_index(p)];
    const batch_state held = b;
    b = batch_state{};
    if (!v.enabled || !live()) {
        return;
    }
    write_pause(true);
    if (v.dev.packed()) {
        v.dev.push_used(held.last, held.len, static_cast<std::uint16_t>(held.descs));
    } else {
        v.dev.push_used(held.last, held.len, 1);
        for (std::uint16_t i = 1; i < held.held; ++i) {
            v.dev.skip_used(1);
        }
    }
    batch_entries_[static_cast<std::size_t>(r)] += held.held > 1 ? 1 : 0;
    publish(v);
}

} // namespace npa::sim
