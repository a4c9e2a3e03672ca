// npa/sim/igbvf/tx.hpp: the 82576 VF model's TX engine (part of igbvf_device).
//
// Whole packets between the internal fetch pointer and TDT are fetched (context and data
// descriptors, each checked), sent with their offloads (offload.hpp) and written back
// (writeback.hpp); TDH then moves past the written-back prefix, or up to tx_head_ahead
// descriptors further into what was fetched (a real 82576 moves it with the fetch).
#pragma once

#include <npa/sim/igbvf/device.hpp>

namespace npa::sim {

// The write-back of a TX packet: the whole descriptor, DD last (release); under write
// jitter (device/base.hpp) each word after a pause of its own.
inline void igbvf_device::write_tx_wb(igbvf::adv_tx_desc& slot, bool dd) noexcept {
    auto* w = reinterpret_cast<std::uint32_t*>(&slot);
    for (int i = 0; i < 3; ++i) {
        write_pause(i == 0);
        w[i] = 0;
    }
    std::atomic_ref<std::uint32_t>(w[3]).store(to_le32(dd ? igbvf::txd::stat_dd : 0), std::memory_order_release);
}

// Fetch whole packets between the internal fetch pointer and TDT, send them, and
// write them back; then move TDH past the written-back prefix.
inline void igbvf_device::process_tx(std::uint16_t q) {
    dq& d = q_[q];
    if (!d.tx_on || d.failed) {
        return;
    }
    bool wrote = flush_tx(q);
    const std::uint32_t tail = reg(igbvf::reg::tdt(q));
    if (tail >= d.tx_size) {
        violation(q, ring_kind::tx, d.tx_fetch, igbvf_rule::tail_beyond_ring,
                  "TDT %u, the ring has %u descriptors", tail, d.tx_size);
        return;
    }
    while (d.tx_fetch != tail && !removed_) {
        // one packet: descriptors up to EOP, all of them before the tail
        std::uint32_t s = d.tx_fetch, len = 0, ndata = 0;
        std::uint32_t cmd_all = 0, olinfo = 0;
        bool complete = false;
        scratch_.len = 0;
        std::uint32_t dma_ok = 1;
        std::uint32_t eop = s;
        for (std::uint32_t k = 0; k < d.tx_size && s != tail; ++k) {
            igbvf::adv_tx_desc desc{};
            std::memcpy(&desc, &d.tx[s], sizeof desc);
            const std::uint32_t cmd = desc.read.cmd_type_len;
            if ((cmd & igbvf::txd::dcmd_dext) == 0 ||
                ((cmd & igbvf::txd::dtyp_mask) != igbvf::txd::dtyp_ctxt &&
                 (cmd & igbvf::txd::dtyp_mask) != igbvf::txd::dtyp_data)) {
                violation(q, ring_kind::tx, s, igbvf_rule::bad_desc_type,
                          "cmd_type_len 0x%08x: DEXT with DTYP context or data expected", cmd);
                return;
            }
            if ((cmd & igbvf::txd::dtyp_mask) == igbvf::txd::dtyp_ctxt) {
                std::memcpy(&d.ctx, &desc, sizeof d.ctx);
                s = (s + 1) % d.tx_size;
                continue;
            }
            const std::uint32_t dl = cmd & igbvf::txd::dtalen_mask;
            const std::uint32_t limit = (cmd & igbvf::txd::dcmd_tse) != 0 ? tso_max : max_frame_size;
            if (dl == 0 || len + dl > limit) {
                violation(q, ring_kind::tx, s, igbvf_rule::bad_length,
                          "data length %u (packet %u so far) outside 1..%u", dl, len, limit);
                return;
            }
            if (!mem_.contains(desc.read.buffer_addr, dl)) {
                (void)mem_.translate(desc.read.buffer_addr, dl);  // counts the fault
                violation(q, ring_kind::tx, s, igbvf_rule::iova_outside,
                          "IOVA 0x%" PRIx64 " + %u bytes is not guest memory", desc.read.buffer_addr, dl);
                return;
            }
            if ((cmd & igbvf::txd::dcmd_tse) != 0 && (cfg_.limits.offloads & cap::tso) == 0) {
                violation(q, ring_kind::tx, s, igbvf_rule::offload_off, "TSE set, TSO not offered");
                return;
            }
            dma_ok &= mem_.dma_read(desc.read.buffer_addr, gather_.data() + len, dl) ? 1u : 0u;
            len += dl;
            ++ndata;
            cmd_all |= cmd;
            olinfo |= desc.read.olinfo_status;
            if ((cmd & igbvf::txd::dcmd_eop) != 0) {
                eop = s;
                complete = true;
                break;
            }
            s = (s + 1) % d.tx_size;
        }
        if (!complete) {
            break;  // the driver has not handed over the whole packet yet: wait
        }
        // A frame under 17 bytes is one the 82576's TX engine cannot take (igb_xmit_frame
        // pads every frame to that length for it): a driver error, the queue stops.
        if ((cmd_all & igbvf::txd::dcmd_tse) == 0 && len < igbvf::txd::min_frame) {
            violation(q, ring_kind::tx, eop, igbvf_rule::short_frame,
                      "frame of %u bytes, the TX engine needs at least %u", len, igbvf::txd::min_frame);
            return;
        }
        // fault: removal or reset in the middle of the burst. What was sent before it
        // is written back first (write-back follows each packet, WTHRESH = 0).
        if (const tx_event e = next_tx_event(); e != tx_event::none) {
            (void)flush_tx(q);
            e == tx_event::remove ? do_remove() : do_reset();
            return;
        }
        if (dma_ok == 0) {
            ++d.st.tx_dma_errors;
        } else if ((cmd_all & igbvf::txd::dcmd_tse) != 0) {
            if (!segment(q, d, len, cmd_all, olinfo, eop)) {
                return;
            }
        } else {
            std::memcpy(scratch_.data.data(), gather_.data(), len);
            scratch_.len = len;
            apply_tx_offloads(d, cmd_all, olinfo);
            send_frame(d);
        }
        const std::uint32_t first = d.tx_fetch;
        d.tx_fetch = (eop + 1) % d.tx_size;
        write_back p{eop, d.tx_fetch, steps_ + cfg_.tx_writeback_steps, false,
                     (cmd_all & igbvf::txd::dcmd_rs) != 0};
        p.first = first;
        if (!plan_fault(d, ring_kind::tx, p)) {
            plan_tx_corruption(q, d, p);
            relaxed_order(q, d, p);
        }
        d.inflight.push_back(p);
        (void)ndata;
    }
    wrote = flush_tx(q) || wrote;
    if (d.stray_tx) {  // a write-back where nothing was handed over: the slot at the tail
        d.stray_tx = false;
        std::atomic_ref<std::uint32_t>(reinterpret_cast<std::uint32_t*>(&d.tx[tail])[3])
            .store(to_le32(igbvf::txd::stat_dd), std::memory_order_release);
    }
    if (wrote) {
        raise(q);
    }
}

inline void igbvf_device::plan_tx_corruption(std::uint16_t q, dq& d, write_back& p) {
    switch (take_corruption(faults_, ring_kind::tx, d.st)) {
    case comp_fault::index_out_of_range: tdh_bad_[q].store(d.tx_size + 7); break;
    case comp_fault::gen_out_of_order: p.dd = false; break;
    case comp_fault::never_posted:
    case comp_fault::double_completion: d.stray_tx = true; break;
    default: break;
    }
}

// Relaxed ordering (DCA_TXCTRL.TX_WB_RO_EN set, relaxed_order_swaps): the first of each
// pair of write-backs lands a step after the second.
inline void igbvf_device::relaxed_order(std::uint16_t q, dq& d, write_back& p) {
    if (!cfg_.relaxed_order_swaps ||
        (reg(igbvf::reg::dca_txctrl(q)) & igbvf::dca_txctrl_tx_wb_ro_en) == 0) {
        d.ro_hold = false;
        return;
    }
    if (!d.ro_hold) {
        p.due += 1;
    }
    d.ro_hold = !d.ro_hold;
}

inline bool igbvf_device::flush_tx(std::uint16_t q) {
    dq& d = q_[q];
    const std::uint32_t ahead = cfg_.tx_head_ahead;
    const bool any = flush_due(d.inflight, ahead == 0 ? igbvf::reg::tdh(q) : head_by_caller,
                               [&](const write_back& p) { write_tx_wb(d.tx[p.slot], p.dd); });
    if (ahead != 0 && d.tx_size != 0) {
        // TDH: past what is written back, and up to `ahead` further into what was fetched.
        const std::uint32_t done = d.inflight.empty() ? d.tx_fetch : d.inflight.front().first;
        const std::uint32_t fetched = (d.tx_fetch + d.tx_size - done) % d.tx_size;
        set_reg(igbvf::reg::tdh(q), (done + (fetched < ahead ? fetched : ahead)) % d.tx_size);
    }
    return any;
}

inline void igbvf_device::send_frame(dq& d) {
    if (!link_up_) {
        ++d.st.tx_link_down;
        return;
    }
    ++d.st.tx_frames;
    d.st.tx_bytes += scratch_.len;
    if (uplink_ != nullptr) {
        uplink_->from_vf(index_, scratch_);
    }
}

} // namespace npa::sim
