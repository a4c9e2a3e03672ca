// npa/plugins/vmxnet3/tx.hpp: the vmxnet3 plugin's TX engine, one queue's TX ring, data
// ring and completion ring (the plugin, plugin.hpp, owns one per queue pair).
//
// One descriptor per packet on the gen-bit TX ring; packets of up to tx_data_copy_max bytes
// are copied into the TX data ring entry of their slot (the device then reads descriptor and
// data from one place, one DMA saved); one completion per packet (cq + eop), reaped from the
// TX completion ring.
// Doorbell rule (Vmxnet3_TxQueueCtrl): the driver counts packets in txNumDeferred and writes
// TXPROD only once it reaches the device-set txThreshold.
// One slot is always left empty (as vmxnet3_cmd_ring_desc_avail), so that a stale
// completion naming the slot just cleaned can never look valid.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/offload.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/slot_ring.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
namespace vmxnet3_tuning {
/// tx_burst reaps completions first when fewer slots than this are free: reaping touches
/// the completion ring, wasted work while the TX ring is mostly empty.
inline constexpr std::uint32_t tx_reap_below = 32;
/// Packets up to this size go through the TX data ring: the copy (a cache line or two)
/// is cheaper than the device's second DMA. The revision 1 entry size is the ceiling.
inline constexpr std::uint32_t tx_data_copy_max = vmxnet3::HDR_COPY_SIZE;
} // namespace vmxnet3_tuning

/// One queue's TX side. attach lays out the rings; the plugin's tx_burst and tx_reap call
/// burst() and reap() with the shell API, the device, and where faults are counted.
template <class Api>
struct vmxnet3_txq {
    using buffer_type = typename Api::buffer_type;

    gen_producer<vmxnet3::tx_traits> ring;
    gen_consumer<vmxnet3::tx_comp_traits> comp;
    vmxnet3::tx_data_desc* data = nullptr;
    iova_t data_iova = 0;
    slot_ring<buffer_type> slots;  // buf_info of the TX ring
    vmxnet3::tx_queue_desc* txd = nullptr;

    // ---- burst: reap if short of room, fill, doorbell by the deferral rule --------------
    std::uint16_t burst(Api& api, vmxnet3::window& dev, std::uint16_t qi,
                        std::span<buffer_type> bufs, std::uint32_t offloads, std::uint32_t mtu,
                        queue_stats& st, trust_latch& trust) noexcept {
        // One slot stays empty (vmxnet3_cmd_ring_desc_avail): see the file comment.
        if (slots.free_slots() - 1 < vmxnet3_tuning::tx_reap_below) {
            (void)reap(api, qi, st, trust);
        }
        const std::uint32_t room = slots.free_slots() - 1;
        const auto n = static_cast<std::uint16_t>(bufs.size() < room ? bufs.size() : room);
        st.tx_ring_full += n < bufs.size() ? 1 : 0;
        std::uint32_t deferred = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            const buffer_type b = bufs[i];
            const offload_info ol = b.offload();
            const bool tso_asked = (ol.flags & ol::tx_tso) != 0 && (offloads & cap::tso) != 0 &&
                                   ol.tso_mss != 0;
            const bool tso = tso_asked && vmxnet3::tso_request_ok(ol);
            const std::uint32_t len = b.length();
            // A TSO request without its header lengths is refused: hlen 0 is no request a
            // device can segment by.
            if (len < 14 || len >= vmxnet3::MAX_TX_BUF_SIZE || (!tso && len > mtu + 18) ||
                tso != tso_asked) {
                ++st.tx_errors;  // no frame the device may carry: refuse it, hand it back
                api.tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            const std::uint32_t slot = ring.next_to_fill();
            vmxnet3::tx_desc d{};
            if (len <= vmxnet3_tuning::tx_data_copy_max) {
                std::memcpy(data[slot].data, b.data(), len);
                d.addr = data_iova + std::uint64_t{slot} * vmxnet3::HDR_COPY_SIZE;
            } else {
                d.addr = b.iova();
            }
            vmxnet3::tx_desc::len::set(d.dword2, len);
            vmxnet3::set_tx_offload(d, ol, offloads, tso);
            vmxnet3::tx_desc::eop::set(d.dword3, 1);
            vmxnet3::tx_desc::cq::set(d.dword3, 1);
            slots.fill(b);
            ring.produce(d);
            // TSO counts each segment the device will send (as Linux counts gso_segs).
            deferred += tso ? (len + ol.tso_mss - 1) / ol.tso_mss : 1;
        }
        if (deferred != 0) {
            // Relaxed: txNumDeferred and txThreshold are a counter and a limit in shared
            // memory that carry no data; the descriptors are published by produce()'s
            // release store and by the TXPROD write, not by these words. Only this queue's
            // TX thread writes txNumDeferred once the queue runs.
            le32& nd = txd->ctrl.txNumDeferred;
            // relaxed: a counter (see above)
            const std::uint32_t total = nd.load(std::memory_order_relaxed) + deferred;
            // relaxed: a limit the device set at activation (see above)
            const std::uint32_t threshold = txd->ctrl.txThreshold.load(std::memory_order_relaxed);
            if (total >= threshold) {
                nd.store(0, std::memory_order_relaxed); // relaxed: a counter
                // The doorbell: the descriptors' release stores (produce()) come before it,
                // and the platform's TXPROD write orders them for the device (see window.hpp).
                dev.txprod(qi, ring.next_to_fill());
            } else {
                nd.store(total, std::memory_order_relaxed); // relaxed: a counter
            }
        }
        return n;
    }

    // ---- reap: one completion per packet, txdIdx = its EOP slot -------------------------
    std::uint32_t reap(Api& api, std::uint16_t qi, queue_stats& st, trust_latch& trust) noexcept {
        if (!slots) {
            return 0;
        }
        std::uint32_t done = 0;
        std::uint64_t packets = 0, bytes = 0;
        vmxnet3::tx_comp_desc c;
        while (comp.poll_past_stale(c, [&] { trust.distrust(st); })) {
            const std::uint32_t idx = vmxnet3::tx_comp_desc::txdIdx::get(c.dword0);
            const std::uint32_t skip = slots.completion_skip(idx);
            if (vmxnet3::tx_comp_desc::type::get(c.dword3) != vmxnet3::cdtype::TXCOMP ||
                skip == slot_ring<buffer_type>::not_filled) {
                trust.distrust(st);  // out of range, stale, duplicated or invented: ignore it
                continue;
            }
            if (skip != 0) {
                // Earlier packets without a completion of their own: the device took them
                // but never said so. Counted, and returned with this one.
                trust.distrust(st);
                st.tx_errors += skip;
            }
            ++packets;
            bytes += slots[idx].length();
            slots.give_back(skip + 1,
                               [&](std::span<const buffer_type> s) { api.tx_complete(qi, s); });
            done += skip + 1;
        }
        st.tx_packets += packets; // once per reap: the stats are not the loop's to reload
        st.tx_bytes += bytes;
        return done;
    }
};

} // namespace npa
