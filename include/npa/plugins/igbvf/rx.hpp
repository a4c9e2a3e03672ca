// npa/plugins/igbvf/rx.hpp: the igbvf plugin's RX engine, one queue's RX ring, its
// write-back checks and refill (the plugin, plugin.hpp, owns one per queue pair).
//
// One-buffer advanced descriptors, a buffer per frame; one RDT write per refill. Every
// write-back is copied out as one snapshot and checked before use: DD, EOP (buffers hold a
// whole frame, so a chain is an error), no unknown status bits, no header-split length
// (one-buffer mode), a length that fits the buffer.
// A DD on the one slot never handed over, or a later slot done before an earlier one, is
// counted and the slot dropped (its buffer reposted, never lost). An earlier slot still as
// it was posted (not written back at all) gets one more poll first: its write-back may
// only be late (out of order), and then it is delivered, in order.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/offload.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/slot_ring.hpp>

#include <atomic>
#include <cstdint>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
/// How far past an RX slot that is not done rx_burst looks for a later one that is (a
/// device that skipped slots): two descriptor cache lines. A run of more skipped slots
/// than this is not recognised, and RX waits on the first of them.
inline constexpr std::uint32_t igbvf_rx_skip_look = 8;

/// One queue's RX side. The plugin's attach lays out the ring; its rx_burst calls burst()
/// with the shell API, the device, and where faults are counted.
template <class Api>
struct igbvf_rxq {
    using buffer_type = typename Api::buffer_type;
    static constexpr std::uint32_t no_slot = ~std::uint32_t{0};

    igbvf::adv_rx_desc* ring = nullptr;
    gen_consumer<igbvf::rx_done_traits> dd;  // DD polling at next_to_clean
    slot_ring<buffer_type> slots;            // buf_info: the buffer in each slot
    std::uint32_t buf_len = 0;
    std::uint32_t wait = no_slot;            // a later slot seen done past one that is not

    // ---- burst: snapshot, validate, deliver, refill -------------------------------------
    std::uint16_t burst(Api& api, igbvf_window& dev, std::uint16_t qi, std::span<buffer_type> out,
                        std::uint32_t offloads, queue_stats& st, trust_latch& trust) noexcept {
        check_rx_stray(st, trust);
        std::uint16_t n = 0;
        igbvf::adv_rx_desc d{};
        while (n < out.size() && slots.in_flight() != 0) {
            const std::uint32_t slot = dd.next_to_clean();
            if (!dd.poll(d)) {
                // Not done. If a later posted slot is, the device skipped this one or
                // wrote them back out of order. The device writes slots in order, so once
                // the later DD is seen (acquire) this slot is read again: still not done
                // is a fault. A slot the device wrote back without DD is dropped (buffer
                // back to the shell) so RX cannot wedge; one still as posted gets one
                // more poll for a late write-back (then it is delivered, in order).
                const std::uint32_t later = done_ahead(slot);
                if (later == no_slot) {
                    break;
                }
                if (!dd.poll(d)) {
                    if (wait == no_slot && as_posted(ring[slot])) {
                        wait = later;
                        trust.distrust(st);
                        break;
                    }
                    if (wait == no_slot) {
                        trust.distrust(st);
                    }
                    ++st.rx_dropped;
                    dd.advance();
                    drop(api, qi, slot);
                    continue;
                }
            }
            if (slot == wait) { // the later slot that was seen done is reached
                wait = no_slot;
            }
            igbvf::clear_word(ring[slot], 2);  // a consumed slot never looks done again
            const buffer_type b = slots.take();
            const igbvf::adv_rx_wb wb = d.wb;
            const bool garbage = (wb.status_error & ~igbvf::rxd::known) != 0 ||
                                 (wb.status_error & igbvf::rxd::stat_eop) == 0 ||
                                 wb.hdr_info != 0 || wb.length < igbvf::eth_hlen ||
                                 wb.length > buf_len;
            if (garbage || (wb.status_error & igbvf::rxd::err_frame) != 0) {
                trust.distrust(st, garbage ? 1 : 0);
                ++st.rx_dropped;
                api.release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            b.set_length(wb.length);
            b.set_offload(igbvf::rx_offload(wb, (offloads & cap::rx_csum) != 0));
            out[n++] = b;
            ++st.rx_packets;
            st.rx_bytes += wb.length;
        }
        refill(api, dev, qi, st);
        return n;
    }

    // Post a buffer in every free slot but one (head == tail means empty), one doorbell.
    // A buffer smaller than SRRCTL announced is never posted: it goes back, counted as
    // rx_no_buffer, and the next buffer takes its slot.
    void refill(Api& api, igbvf_window& dev, std::uint16_t qi, queue_stats& st) noexcept {
        const std::uint32_t want = slots.free_slots() - 1;
        const std::uint32_t posted = slots.refill(
            want, [&](std::span<buffer_type> s) { return api.alloc_rx_buffers(qi, s); },
            [&](std::uint32_t slot, const buffer_type& b) {
                if (b.capacity() < buf_len) {
                    api.release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
                    return false;
                }
                igbvf::adv_rx_desc& d = ring[slot];
                d.read.pkt_addr = b.iova();
                d.read.hdr_addr = 0;  // no header split; clears DD
                return true;
            });
        st.rx_no_buffer += want - posted;
        if (posted != 0) {
            // release: as before TDT in the TX engine's burst(), for RDT
            std::atomic_thread_fence(std::memory_order_release);
            dev.write(igbvf_reg::rdt, qi, slots.next_to_fill());
        }
    }

private:
    static bool dd_set(igbvf::adv_rx_desc& d) noexcept {
        return (igbvf::load_word(d, 2) & igbvf::rxd::stat_dd) != 0;
    }
    // Words 2 and 3 as refill left them (hdr_addr 0): nothing was written back.
    static bool as_posted(igbvf::adv_rx_desc& d) noexcept {
        return igbvf::load_word(d, 2) == 0 && igbvf::load_word(d, 3) == 0;
    }
    // The first posted slot within igbvf_rx_skip_look past `slot` that is done, or
    // no_slot if there is none.
    std::uint32_t done_ahead(std::uint32_t slot) noexcept {
        std::uint32_t s = slot;
        for (std::uint32_t k = 1; k < slots.in_flight() && k <= igbvf_rx_skip_look; ++k) {
            s = slots.next(s);
            if (dd_set(ring[s])) {
                return s;
            }
        }
        return no_slot;
    }

    // The one slot never handed over (at the tail) must never be written back.
    void check_rx_stray(queue_stats& st, trust_latch& trust) noexcept {
        if (slots.free_slots() != 0 && dd_set(ring[slots.next_to_fill()])) {
            trust.distrust(st);
            igbvf::clear_word(ring[slots.next_to_fill()], 2);
        }
    }

    void drop(Api& api, std::uint16_t qi, std::uint32_t slot) noexcept {
        igbvf::clear_word(ring[slot], 2);
        const buffer_type b = slots.take();
        api.release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
    }
};

} // namespace npa
