// npa/sim/vmxnet3/rx.hpp: the vmxnet3 backend's RX engine (part of vmxnet3_device).
//
// Buffers: descriptors the guest handed over (gen bit; with updateRxProd only up to the
// RXPROD index it wrote), each checked. Frames: taken from the inbox, filtered
// (filter.hpp), steered by RSS when the guest enabled it, the 802.1Q tag stripped when
// asked, written into a ring 1 head buffer and ring 2 body buffers, and completed through
// the completion path (device/completion.hpp) with the corruption the plan asks for.
#pragma once

#include <npa/sim/vmxnet3/device.hpp>

namespace npa::sim {

inline bool vmxnet3_device::fetch_rx(std::uint32_t q) {
    dq& d = q_[q];
    if (d.rx_failed) {
        return false;
    }
    bool any = false;
    for (std::uint32_t r = 0; r < 2; ++r) {
        auto& c = d.rx[r];
        for (std::uint32_t k = 0; k < c.size(); ++k) {
            if (cfg_.update_rx_prod && c.next_to_clean() == rxprod_[q][r].load(std::memory_order_acquire)) {
                break;
            }
            const std::uint32_t slot = c.next_to_clean();
            vmxnet3::rx_desc desc;
            if (!c.poll(desc)) {
                break;
            }
            any = true;
            const std::uint32_t len = vmxnet3::rx_desc::len::get(desc.dword2);
            if (len == 0 || mem_.translate(desc.addr, len) == nullptr) {
                violation(q, false, slot, vmxnet3::err::SMALL_BUF,
                          "ring %u: IOVA 0x%" PRIx64 " + %u bytes is not guest memory", r, desc.addr, len);
                return true;
            }
            if (!d.rx_addrs.insert(desc.addr).second) {
                violation(q, false, slot, vmxnet3::err::TXD_REUSE,
                          "ring %u: buffer 0x%" PRIx64 " posted twice", r, desc.addr);
                return true;
            }
            d.posted[r].push_back({slot, desc.addr, len});
        }
    }
    return any;
}

inline bool vmxnet3_device::deliver_rx() {
    take_rx_batch(cfg_.rx_frames_per_step);
    for (frame& f : rx_batch_) {
        eth::header h;
        if (!link_up_.load()) {
            ++rx_link_down_;
            continue;
        }
        if (!eth::parse(f.bytes(), h) || !filter_.accept(h)) {
            ++rx_filtered_;
            continue;
        }
        const std::uint32_t hash = flow_hash(f);
        // RSS: the guest's indirection table (UPT1_RSSConf) picks the queue; the hash is
        // the sim's own, not Toeplitz over its key.
        const std::uint32_t q = (features_ & vmxnet3::upt1::F_RSS) != 0 && rss_ind_n_ != 0
                                    ? rss_ind_[hash % rss_ind_n_]
                                    : 0;
        receive(q, f, h, hash);
    }
    const bool any = !rx_batch_.empty();
    rx_batch_.clear();
    return any;
}

inline void vmxnet3_device::receive(std::uint32_t q, frame& f, const eth::header& h,
                                     std::uint32_t hash) {
    using rcd = vmxnet3::rx_comp_desc;
    dq& d = q_[q];
    std::uint32_t tci = 0;
    bool stripped = false;
    if (h.vlan != 0 && (features_ & vmxnet3::upt1::F_RXVLAN) != 0) {  // strip the 802.1Q tag
        tci = eth::get16(f.data.data() + 14);
        std::memmove(f.data.data() + 12, f.data.data() + 16, f.len - 16);
        f.len -= 4;
        stripped = true;
    }
    if (!d.rx_failed && d.posted[0].empty()) {
        (void)fetch_rx(q);  // out of buffers: look again before dropping, as a NIC does
    }
    // Buffers passed over (fault plan): each handed back unused, length 0, sop and eop set,
    // before the frame's own completion.
    while (faults_.skip_rx_buffers != 0 && !d.rx_failed && d.posted[0].size() > 1) {
        --faults_.skip_rx_buffers;
        const rx_buf b = d.posted[0].front();
        d.posted[0].pop_front();
        d.rx_addrs.erase(b.addr);
        vmxnet3::rx_comp_desc c{};
        rcd::rxdIdx::set(c.dword0, b.slot);
        rcd::sop::set(c.dword0, 1);
        rcd::eop::set(c.dword0, 1);
        rcd::rqID::set(c.dword0, q);
        rcd::cnc::set(c.dword0, 1);
        rcd::type::set(c.dword3, cfg_.rx_comp_type_zero ? 0 : vmxnet3::cdtype::RXCOMP);
        d.rxp.complete(c, b.len, comp_faults::of(faults_, ring_kind::rx), steps_, d.st,
                       rx_writer{this, q});
    }
    // Buffers passed over with no completion (fault plan): the frame's completion names
    // a later slot.
    while (faults_.pass_over_rx_buffers != 0 && !d.rx_failed && d.posted[0].size() > 1) {
        --faults_.pass_over_rx_buffers;
        d.rx_addrs.erase(d.posted[0].front().addr);
        d.posted[0].pop_front();
    }
    // A head buffer from ring 1, body buffers from ring 2 for whatever does not fit.
    std::uint32_t need = 0;
    if (!d.rx_failed && !d.posted[0].empty()) {
        std::uint32_t left = f.len > d.posted[0].front().len ? f.len - d.posted[0].front().len : 0;
        for (std::size_t i = 0; left != 0 && i < d.posted[1].size(); ++i) {
            left -= std::min(left, d.posted[1][i].len);
            ++need;
        }
        if (left != 0) {
            need = ~0u;
        }
    }
    if (d.rx_failed || d.posted[0].empty() || need == ~0u) {
        ++d.st.rx_no_desc;
        return;
    }
    d.st.rx_chained += need != 0 ? 1 : 0;
    std::uint32_t off = 0;
    for (std::uint32_t part = 0; part <= need; ++part) {
        const std::uint32_t ring = part == 0 ? 0 : 1;
        const rx_buf b = d.posted[ring].front();
        d.posted[ring].pop_front();
        d.rx_addrs.erase(b.addr);
        const std::uint32_t len = std::min(b.len, f.len - off);
        vmxnet3::rx_comp_desc c{};
        rcd::rxdIdx::set(c.dword0, b.slot);
        rcd::sop::set(c.dword0, part == 0);
        rcd::eop::set(c.dword0, part == need);
        rcd::rqID::set(c.dword0, ring == 0 ? q : q + nrx_);
        rcd::rssType::set(c.dword0, vmxnet3::rss_type::NONE);  // not an IP frame
        rcd::cnc::set(c.dword0, 1);
        c.rssHash = hash;
        rcd::ts::set(c.dword2, stripped && part == 0);
        rcd::tci::set(c.dword2, part == 0 ? tci : 0);
        rcd::type::set(c.dword3, cfg_.rx_comp_type_zero ? 0 : vmxnet3::cdtype::RXCOMP);
        if (mem_.dma_write(b.addr, f.data.data() + off, len)) {
            rcd::len::set(c.dword2, len);
        } else {
            rcd::err::set(c.dword2, 1);
            ++d.st.rx_dma_errors;
        }
        off += len;
        d.rxp.complete(c, b.len, comp_faults::of(faults_, ring_kind::rx), steps_, d.st,
                       rx_writer{this, q});
    }
    ++d.st.rx_frames;
    d.st.rx_bytes += f.len;
}

inline void vmxnet3_device::write_rx_comp(std::uint32_t q, vmxnet3::rx_comp_desc c,
                                           std::uint32_t buf_len) {
    using rcd = vmxnet3::rx_comp_desc;
    dq& d = q_[q];
    auto& p = d.rxc;
    moderation_.cause(d.rx_vec);
    write_fields(p, c); // under write jitter: field by field, before the gen bit
    produce_corrupted(p, c, take_corruption(faults_, ring_kind::rx, d.st),
                      [&](vmxnet3::rx_comp_desc& x, comp_fault f) {
        if (f == comp_fault::index_out_of_range) {
            rcd::rxdIdx::set(x.dword0, d.rx[0].size() + 7);
        } else if (f == comp_fault::length_too_large) {
            rcd::len::set(x.dword2, buf_len + 512);
        } else {  // never posted: a completion for a ring the guest never configured
            rcd::rqID::set(x.dword0, q + 2 * nrx_);
        }
    });
}

} // namespace npa::sim
