// npa/sim/igbvf/rx.hpp: the 82576 VF model's RX engine (part of igbvf_device).
//
// Frames from the embedded switch, in arrival order, are steered by RSS over the enabled
// queues, the VLAN tag stripped when offered, written into the buffer at the internal
// head (bounds-checked) and written back (writeback.hpp) with RSS hash, VLAN and checksum
// verdicts (offload.hpp); RDH follows the write-backs.
#pragma once

#include <npa/sim/igbvf/device.hpp>

namespace npa::sim {

// Switch -> RX buffers, in arrival order.
inline void igbvf_device::deliver_rx() {
    take_rx_batch(cfg_.rx_frames_per_step);
    active_queues<igbvf::max_queues> active;
    for (std::uint16_t q = 0; q < cfg_.limits.queues; ++q) {
        if (q_[q].rx_on && !q_[q].failed) active.add(q);
    }
    std::uint32_t wrote = 0;
    for (const frame& f0 : rx_batch_) {
        const auto [ok, q, hash] = steer(f0, active);
        if (!ok) {
            continue;
        }
        dq& d = q_[q];
        const std::uint32_t tail = reg(igbvf::reg::rdt(q));
        if (tail >= d.rx_size) {
            violation(q, ring_kind::rx, d.rx_head, igbvf_rule::tail_beyond_ring,
                      "RDT %u, the ring has %u descriptors", tail, d.rx_size);
            continue;
        }
        if (d.rx_head == tail) {
            ++d.st.rx_no_desc;
            continue;
        }
        frame f = f0;
        std::uint16_t vlan = 0;
        std::uint32_t status = igbvf::rxd::stat_dd | igbvf::rxd::stat_eop;
        eth::header h;
        if ((cfg_.limits.offloads & cap::vlan_strip) != 0 && eth::parse(f.bytes(), h) && h.vlan != 0) {
            vlan = eth::get16(f.data.data() + 14);
            std::memmove(f.data.data() + 12, f.data.data() + 16, f.len - 16);
            f.len -= 4;
            status |= igbvf::rxd::stat_vp;
        }
        if (f.len > d.rx_buf) {
            ++d.st.rx_oversize;
            continue;
        }
        igbvf::adv_rx_desc desc{};
        std::memcpy(&desc, &d.rx[d.rx_head], sizeof desc);
        const iova_t addr = desc.read.pkt_addr;
        if (!mem_.contains(addr, d.rx_buf)) {
            (void)mem_.translate(addr, d.rx_buf);
            violation(q, ring_kind::rx, d.rx_head, igbvf_rule::iova_outside,
                      "IOVA 0x%" PRIx64 " + %u bytes is not guest memory", addr, d.rx_buf);
            continue;
        }
        igbvf::adv_rx_wb wb{};
        if (mem_.dma_write(addr, f.data.data(), f.len)) {
            wb.length = static_cast<std::uint16_t>(f.len);
            ++d.st.rx_frames;
            d.st.rx_bytes += f.len;
        } else {
            status |= igbvf::rxd::err_rxe;
            ++d.st.rx_dma_errors;
        }
        wb.rss = hash;
        wb.vlan = vlan;
        status |= rx_csum(f, wb.pkt_info);
        wb.status_error = status;
        write_back p{d.rx_head, (d.rx_head + 1) % d.rx_size, steps_, false, true, wb};
        if (!plan_fault(d, ring_kind::rx, p)) {
            switch (take_corruption(faults_, ring_kind::rx, d.st)) {
            case comp_fault::index_out_of_range:
                p.rx.hdr_info = static_cast<std::uint16_t>(igbvf::rxd::hdr_sph | (64u << 5));
                break;
            case comp_fault::length_too_large:
                p.rx.length = static_cast<std::uint16_t>(d.rx_buf + 512);
                break;
            case comp_fault::gen_out_of_order: p.dd = false; break;
            case comp_fault::never_posted:
            case comp_fault::double_completion: d.stray_rx = true; break;
            default: break;
            }
        }
        d.rx_inflight.push_back(p);
        d.rx_head = p.next;
    }
    rx_batch_.clear();
    for (std::uint16_t q = 0; q < cfg_.limits.queues; ++q) {
        dq& d = q_[q];
        if (d.rx_on && flush_rx(q)) {
            wrote |= 1u << q;
        }
        if (d.stray_rx && d.rx_on) {
            d.stray_rx = false;
            const std::uint32_t tail = reg(igbvf::reg::rdt(q)) % d.rx_size;
            std::atomic_ref<std::uint32_t>(reinterpret_cast<std::uint32_t*>(&d.rx[tail])[2])
                .store(to_le32(igbvf::rxd::stat_dd | igbvf::rxd::stat_eop), std::memory_order_release);
        }
        if ((wrote >> q) & 1u) {
            raise(q);
        }
    }
}

// RX write-back (datasheet 7.1.6.2): the frame's words first, STATUS with DD last.
inline bool igbvf_device::flush_rx(std::uint16_t q) {
    dq& d = q_[q];
    return flush_due(d.rx_inflight, igbvf::reg::rdh(q), [&](const write_back& p) {
        igbvf::adv_rx_wb wb = p.rx;
        const std::uint32_t status =
            p.dd ? wb.status_error.get() : wb.status_error & ~igbvf::rxd::stat_dd;
        wb.status_error = 0;
        auto* w = reinterpret_cast<std::uint32_t*>(&d.rx[p.slot]);
        // Under write jitter (device/base.hpp) each word lands after a pause of its own.
        write_pause(true);
        std::memcpy(w, &wb, 4);
        write_pause();
        std::memcpy(w + 1, reinterpret_cast<const std::byte*>(&wb) + 4, 4);
        write_pause();
        std::memcpy(w + 3, &wb.length, 4);
        std::atomic_ref<std::uint32_t>(w[2]).store(to_le32(status), std::memory_order_release);
    });
}

} // namespace npa::sim
