// npa/sim/vmxnet3/tx.hpp: the vmxnet3 backend's TX engine (part of vmxnet3_device).
//
// A doorbell (or the TX timer) makes the device gather each packet's descriptors up to
// EOP (checking every one), apply the virtual switch's checks (filter.hpp), segment a TSO
// packet (headers repeated in front of each MSS; IP lengths and TCP sequence numbers are
// not rewritten), insert a VLAN tag when asked, send, and complete the packet with cq.
#pragma once

#include <npa/sim/vmxnet3/device.hpp>

namespace npa::sim {

inline bool vmxnet3_device::process_tx(std::uint32_t q) {
    using td = vmxnet3::tx_desc;
    dq& d = q_[q];
    if (d.tx_failed) {
        return false;
    }
    const bool kick = kick_[q].exchange(false, std::memory_order_acq_rel);
    d.st.tx_doorbells += kick ? 1 : 0;
    if (!kick && steps_ - d.last_tx_step < cfg_.tx_timer_steps) {
        return false;
    }
    d.last_tx_step = steps_;
    bool any = false;
    for (std::uint32_t k = 0; k < d.tx_size && active_; ++k) {
        const std::uint32_t slot = d.tx.next_to_clean();
        vmxnet3::tx_desc desc;
        if (!d.tx.poll(desc)) {
            break;
        }
        any = true;
        d.chain.emplace_back(slot, desc);
        if (td::eop::get(desc.dword3) == 0) {
            if (d.chain.size() >= vmxnet3::MAX_TXD_PER_PKT) {
                violation(q, true, slot, vmxnet3::err::NOEOP, "%zu descriptors without EOP", d.chain.size());
                return true;
            }
            continue;
        }
        if (!send_packet(q)) {
            return true;
        }
    }
    return any;
}

// Gathers the chain into one frame (checking every descriptor), sends it, completes it.
inline bool vmxnet3_device::send_packet(std::uint32_t q) {
    using td = vmxnet3::tx_desc;
    dq& d = q_[q];
    std::uint32_t total = 0;
    bool dma_ok = true;
    const td& sop = d.chain.front().second;
    const td& eop = d.chain.back().second;
    const std::uint32_t eop_slot = d.chain.back().first;
    const bool tso = td::om_::get(sop.dword3) == vmxnet3::om::TSO;
    for (const auto& [slot, x] : d.chain) {
        std::uint32_t len = td::len::get(x.dword2);
        len = len == 0 ? vmxnet3::MAX_TX_BUF_SIZE : len;
        if (td::dtype::get(x.dword2) != 0) {
            violation(q, true, slot, vmxnet3::err::DESC_NOT_SPT, "descriptor type %u", td::dtype::get(x.dword2));
            return false;
        }
        if (!mem_.contains(x.addr, len)) {
            violation(q, true, slot, vmxnet3::err::TXD_INVALID, "IOVA 0x%" PRIx64 " + %u bytes is not guest memory",
                      x.addr, len);
            return false;
        }
        if (total + len > sizeof(big_)) {
            violation(q, true, slot, vmxnet3::err::BIG_PKT, "packet longer than %zu bytes", sizeof(big_));
            return false;
        }
        dma_ok = dma_ok && mem_.dma_read(x.addr, big_ + total, len);
        total += len;
    }
    d.chain.clear();
    const bool vtag = td::ti::get(sop.dword3) != 0;
    const std::uint32_t limit = max_frame_size - (vtag ? 4u : 0u);
    if (!tso && (total > limit || total < min_frame_size)) {
        violation(q, true, eop_slot, vmxnet3::err::BIG_PKT, "frame of %u bytes without TSO", total);
        return false;
    }
    switch (next_tx_event()) {
    case tx_event::remove: do_remove(); return false; // surprise removal mid-burst
    case tx_event::reset: do_reset(); return false;
    case tx_event::none: break;
    }
    if (!dma_ok) {
        ++d.st.tx_dma_errors;  // vmxnet3 TX completions carry no error: counted here only
    } else if (!link_up_.load()) {
        ++d.st.tx_link_down;
    } else if (!tx_allowed(d, total, vtag ? td::tci::get(sop.dword3) & 0x0fffu : 0u,
                           tso ? td::hlen::get(sop.dword3) + td::msscof::get(sop.dword2)
                               : total)) {
        // Dropped and counted by tx_allowed(); the descriptors still complete below.
    } else {
        // TSO: headers (hlen) repeated in front of each MSS of payload; the sim does not
        // rewrite IP lengths or TCP sequence numbers.
        const std::uint32_t hlen = tso ? td::hlen::get(sop.dword3) : total;
        const std::uint32_t mss = tso ? td::msscof::get(sop.dword2) : total;
        if (tso && (hlen >= total || hlen < min_frame_size || mss == 0 || hlen + mss > limit)) {
            violation(q, true, eop_slot, vmxnet3::err::TXD_INVALID, "TSO hlen %u mss %u for %u bytes", hlen, mss, total);
            return false;
        }
        for (std::uint32_t off = hlen; off < total || off == hlen; off += mss) {
            const std::uint32_t seg = tso ? std::min(mss, total - off) : 0;
            frame& out = scratch_;
            std::memcpy(out.data.data(), big_, hlen);
            std::memcpy(out.data.data() + hlen, big_ + off, seg);
            out.len = hlen + seg;
            if (vtag) {  // insert the 802.1Q tag
                const std::uint32_t tci = td::tci::get(sop.dword3);
                std::memmove(out.data.data() + 16, out.data.data() + 12, out.len - 12);
                eth::put16(out.data.data() + 12, eth::type_vlan);
                eth::put16(out.data.data() + 14, static_cast<std::uint16_t>(tci));
                out.len += 4;
            }
            ++d.st.tx_frames;
            d.st.tx_bytes += out.len;
            frame_out(out);
            if (!tso) {
                break;
            }
        }
    }
    if (td::cq::get(eop.dword3) != 0) {
        vmxnet3::tx_comp_desc c{};
        vmxnet3::tx_comp_desc::txdIdx::set(c.dword0, eop_slot);
        vmxnet3::tx_comp_desc::type::set(c.dword3, vmxnet3::cdtype::TXCOMP);
        d.txp.complete(c, 0, comp_faults::of(faults_, ring_kind::tx), steps_, d.st,
                       tx_writer{this, q});
    }
    return true;
}

// The virtual switch's view of a guest frame (filter.hpp); a refusal is counted.
inline bool vmxnet3_device::tx_allowed(dq& d, std::uint32_t len, std::uint32_t insert_vid,
                                       std::uint32_t seg_len) noexcept {
    switch (filter_.check_tx(std::span<const std::byte>(big_, len), insert_vid, seg_len, mtu_)) {
    case vmxnet3_filter::tx_verdict::spoofed: ++d.st.tx_spoofed; return false;
    case vmxnet3_filter::tx_verdict::oversize: ++d.st.tx_oversize; return false;
    case vmxnet3_filter::tx_verdict::vlan_refused: ++d.st.tx_vlan_refused; return false;
    case vmxnet3_filter::tx_verdict::ok: break;
    }
    return true;
}

inline void vmxnet3_device::write_tx_comp(std::uint32_t q, vmxnet3::tx_comp_desc c) {
    dq& d = q_[q];
    moderation_.cause(d.tx_vec);
    write_fields(d.txc, c); // under write jitter: field by field, before the gen bit
    produce_corrupted(d.txc, c, take_corruption(faults_, ring_kind::tx, d.st),
                      [&](vmxnet3::tx_comp_desc& x, comp_fault f) {
        if (f == comp_fault::index_out_of_range) {
            vmxnet3::tx_comp_desc::txdIdx::set(x.dword0, d.tx_size + 7);
        } else {  // never posted: the slot the device would fetch next, not handed over
            vmxnet3::tx_comp_desc::txdIdx::set(x.dword0, d.tx.next_to_clean());
        }
    });
}

} // namespace npa::sim
