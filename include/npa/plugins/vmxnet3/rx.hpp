// npa/plugins/vmxnet3/rx.hpp: the vmxnet3 plugin's RX engine, one queue's two RX rings and
// their completion ring (the plugin, plugin.hpp, owns one per queue pair).
//
// Ring 1 holds head buffers, ring 2 spare body buffers for packets larger than a head
// buffer; one completion ring for both (rqID tells the rings apart: qid for ring 1, qid +
// numRxQueues for ring 2). RXPROD/RXPROD2 are written once after activation, as Linux's
// vmxnet3_activate_dev does (the plugin's attach), and then only when the device set
// updateRxProd (a ring then keeps one slot empty). A packet that spans buffers is dropped
// and counted: an npa buffer is one segment.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/offload.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/slot_ring.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
namespace vmxnet3_tuning {
/// RX ring 2 (body buffers) size: only packets larger than a head buffer use it, and an
/// npa head buffer already holds a full MTU frame, so the minimum ring size is plenty.
inline constexpr std::uint32_t rx_ring2_size = vmxnet3::RING_SIZE_ALIGN;
/// A completion naming a slot more than this fraction of the ring ahead of the oldest
/// posted buffer is treated as stale, not as "the device skipped that many": RX rings
/// are posted full, so a stale duplicate of the slot just cleaned would otherwise name
/// the whole ring.
inline constexpr std::uint32_t rx_max_skip_div = 2;
} // namespace vmxnet3_tuning

/// One queue's RX side. attach lays out the rings; the plugin's rx_burst calls burst() with
/// the shell API, the device, and where faults are counted.
template <class Api>
struct vmxnet3_rxq {
    using buffer_type = typename Api::buffer_type;

    struct rx_ring {
        gen_producer<vmxnet3::rx_traits> ring;
        slot_ring<buffer_type> slots;  // buf_info: the buffer posted in each slot
    };
    std::array<rx_ring, 2> rings{};  // ring 1 (head buffers), ring 2 (body buffers)
    gen_consumer<vmxnet3::rx_comp_traits> comp;
    bool dropping = false;  // inside a multi-buffer packet being dropped
    vmxnet3::rx_queue_desc* rxd = nullptr;

    // ---- burst: snapshot, validate, deliver, refill -------------------------------------
    // nq: the queue pairs attached (ring 2's rqID is qi + nq).
    std::uint16_t burst(Api& api, vmxnet3::window& dev, std::uint16_t qi, std::uint16_t nq,
                        std::span<buffer_type> out, queue_stats& st, trust_latch& trust) noexcept {
        std::uint16_t n = 0;
        vmxnet3::rx_comp_desc c;
        using rcd = vmxnet3::rx_comp_desc;
        // A stale completion slot followed by a fresh one is skipped (and distrusted).
        while (n < out.size() && comp.poll_past_stale(c, [&] { trust.distrust(st); })) {
            // Which ring: rqID is qid for ring 1, qid + numRxQueues for ring 2.
            const std::uint32_t rq = rcd::rqID::get(c.dword0);
            const std::uint32_t ri = rq == qi ? 0 : rq == std::uint32_t{qi} + nq ? 1 : 2;
            // type: VMware's device writes RXCOMP; QEMU's leaves it 0 (Linux's and DPDK's
            // drivers look at it only for LRO, which this plugin never enables).
            const std::uint32_t type = rcd::type::get(c.dword3);
            if (ri == 2 || (type != vmxnet3::cdtype::RXCOMP && type != 0)) {
                trust.distrust(st);  // a ring never configured, or not an RX completion
                continue;
            }
            slot_ring<buffer_type>& ring = rings[ri].slots;
            const std::uint32_t skip = ring.completion_skip(rcd::rxdIdx::get(c.dword0));
            if (skip == slot_ring<buffer_type>::not_filled ||
                skip > ring.size() / vmxnet3_tuning::rx_max_skip_div) {
                trust.distrust(st);
                continue;
            }
            if (skip != 0) {
                // The device passed over earlier buffers without using them: legal, and no
                // frame was lost (Linux's vmxnet3_rq_rx_complete moves next2comp to the
                // completed slot and posts the skipped ones again). They go back to the
                // pool; refill() posts fresh ones in their slots.
                ring.give_back(skip, release(api, qi));
            }
            const buffer_type b = ring.take();
            const bool sop = rcd::sop::get(c.dword0) != 0, eop = rcd::eop::get(c.dword0) != 0;
            const std::uint32_t len = rcd::len::get(c.dword2);
            if (dropping || !sop || !eop || ri != 0) {
                // Part of a packet that spans buffers (an npa buffer is one segment), or a
                // body buffer with no head: dropped, the buffer goes back to the pool.
                if (!dropping && (!sop || ri != 0)) {
                    trust.distrust(st);  // a packet must start in a ring 1 head buffer
                } else if (!dropping) {
                    ++st.rx_dropped;
                }
                dropping = !eop && (dropping || sop);
                release(api, qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            if (len == 0 && rcd::err::get(c.dword2) == 0) {
                // A buffer the device passed over and handed back unused: no frame was lost
                // (Linux's vmxnet3_rq_rx_complete recycles it); it goes back to the pool.
                release(api, qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            if (rcd::err::get(c.dword2) != 0 || len < 14 || len > posted_len(b)) {
                if (rcd::err::get(c.dword2) == 0) {
                    trust.distrust(st);  // a length the buffer cannot hold: never read past it
                }
                ++st.rx_dropped;
                release(api, qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            b.set_length(len);
            b.set_offload(vmxnet3::rx_offload(c));
            out[n++] = b;
            ++st.rx_packets;
            st.rx_bytes += len;
        }
        refill(api, dev, qi, st);
        return n;
    }

    // Posts a buffer on every free slot of both rings; the doorbells only when the device
    // asked for them (updateRxProd). With updateRxProd a ring keeps one slot empty, so
    // that the producer index tells a full ring from an empty one (Linux's and DPDK's
    // drivers always leave it; a device that does not read RXPROD goes by the gen bits).
    void refill(Api& api, vmxnet3::window& dev, std::uint16_t qi, queue_stats& st) noexcept {
        const std::atomic_ref<std::uint8_t> update_rx_prod(rxd->ctrl.updateRxProd);
        // relaxed: the device sets updateRxProd during ACTIVATE_DEV (attach, step 6, a
        // synchronous command), before any refill: attach's own on this thread, the
        // queues' after the epoch that starts them (release/acquire)
        const bool doorbell = update_rx_prod.load(std::memory_order_relaxed) != 0;
        for (std::uint32_t ri = 0; ri < 2; ++ri) {
            rx_ring& ring = rings[ri];
            const std::uint32_t keep_empty = doorbell ? 1 : 0;
            if (ring.slots.free_slots() <= keep_empty) {
                continue;
            }
            const std::uint32_t want = ring.slots.free_slots() - keep_empty;
            const std::uint32_t got = ring.slots.refill(
                want, [&](std::span<buffer_type> s) { return api.alloc_rx_buffers(qi, s); },
                [&](std::uint32_t, const buffer_type& b) {
                    vmxnet3::rx_desc d{};
                    d.addr = b.iova();
                    vmxnet3::rx_desc::len::set(d.dword2, posted_len(b));
                    vmxnet3::rx_desc::btype_::set(d.dword2, ri == 0 ? vmxnet3::btype::HEAD
                                                                    : vmxnet3::btype::BODY);
                    ring.ring.produce(d);
                });
            st.rx_no_buffer += ri == 0 ? want - got : 0;
            if (got != 0 && doorbell) {
                dev.rxprod(qi, ri, ring.ring.next_to_fill());
            }
        }
    }

    /// Hands RX buffers of queue qi back to the shell's pool.
    static auto release(Api& api, std::uint16_t qi) noexcept {
        return [&api, qi](std::span<const buffer_type> s) { api.release_rx_buffers(qi, s); };
    }

    static std::uint32_t posted_len(const buffer_type& b) noexcept {
        const std::uint32_t cap = b.capacity();
        return cap < vmxnet3::MAX_RX_BUF_SIZE ? cap : vmxnet3::MAX_RX_BUF_SIZE;
    }
};

} // namespace npa
