// npa/plugins/igbvf/tx.hpp: the igbvf plugin's TX engine, one queue's TX ring and its
// write-back checks (the plugin, plugin.hpp, owns one per queue pair).
//
// A packet is a context descriptor when its offloads differ from the one the device holds,
// and one data descriptor (npa buffers are one segment); one TDT write per burst.
// A packet is done when its last descriptor has DD, as in igbvf_clean_tx_irq; the head
// register is not read for it. TDH names the descriptor the device is at, and an 82576
// fetches descriptors ahead of sending them, so the head may pass a packet long before its
// write-back lands: it proves nothing about completion.
// A DD on the free slot at the tail is a write-back for nothing handed over. A later packet
// done before an earlier one (re-read after the later DD) is out of order: attach clears
// DCA_TXCTRL.TX_WB_RO_EN as igbvf_configure_tx does, so the device writes back in ring
// order and anything else is a fault.
// A write-back that does not come is accused only after igbvf_tx_timeout_ns, igbvf's own
// transmit timeout, measured with the shell's clock (provides_clock) from the second reap
// in a row that finds the oldest packet not done (a first such reap is the normal case
// under load, so it reads no clock). Past the bound, a packet the head has passed is a lost
// write-back: its buffer goes back, counted as a TX error, with every packet handed over
// before the wait began (they waited as long). One the head has not reached is a stalled
// queue: counted once, its buffers stay until detach hands them back unsent. A queue a
// reset disabled accuses nothing. Without a clock the bound is counted in TDH reads, one
// per such reap (see the constants).
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/offload.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/ring/slot_ring.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
/// tx_burst reaps first when fewer descriptors than this are free: a reap costs a head
/// register read (an MMIO round trip), wasted while the ring is mostly empty.
inline constexpr std::uint32_t igbvf_tx_reap_below = 64;
/// TX buffers handed back to the shell per tx_complete call (stack array, no allocation).
inline constexpr std::uint32_t igbvf_tx_batch = 32;
/// Descriptors one packet needs at most: a context descriptor and one data descriptor
/// (npa buffers are one segment).
inline constexpr std::uint32_t igbvf_max_desc_per_pkt = 2;
/// How long the oldest TX packet may stay without a write-back before the device is
/// accused: igbvf's transmit timeout (igbvf_probe sets watchdog_timeo to 5 * HZ; when it
/// runs out, igbvf_tx_timeout counts it and resets the VF). Linux's igbvf has no shorter
/// hang check of its own (igb's detect_tx_hung, 1 s with STATUS.TXOFF clear, is the PF's);
/// write-backs that a prefetching 82576 keeps back for microseconds are far inside it.
inline constexpr std::uint64_t igbvf_tx_timeout_ns = 5'000'000'000;
/// The same bound for a shell API without a clock, counted in TDH reads (one per reap that
/// finds the oldest packet still not done). At about 1 us a PCIe read (as igbvf_stop_polls)
/// that is some 5 s; a read a hypervisor traps takes longer, so the bound only grows. A
/// count of reaps alone would be no time: a reap that reads only ring memory takes
/// nanoseconds, and a tight poll loop would run out of it in milliseconds.
inline constexpr std::uint32_t igbvf_tx_timeout_reads = 5'000'000;

/// One queue's TX side. The plugin's attach lays out the ring; its tx_burst and tx_reap
/// call burst() and reap() with the shell API, the device, and where faults are counted.
template <class Api>
struct igbvf_txq {
    using buffer_type = typename Api::buffer_type;

    struct tx_slot {
        buffer_type buf{};       // on a packet's last descriptor
        std::uint32_t eop = 0;   // on a packet's first descriptor: where it ends
    };
    static constexpr std::uint32_t no_slot = ~std::uint32_t{0};
    // The wait for the oldest TX packet's write-back (tx_overdue()); reset on progress.
    struct tx_wait_state {
        std::uint32_t stuck = no_slot;  // eop of the oldest packet found not done at the last reap
        std::uint32_t until = 0;        // next_to_fill when timing began: packets before it waited as long
        std::uint64_t since = 0;        // clock (ns) when timing began; without a clock, TDH reads since
        bool timing = false;
        bool stall_counted = false;     // a stalled queue was counted in this wait
    };

    igbvf::adv_tx_desc* ring = nullptr;
    slot_ring<tx_slot> slots;               // TX books: in_flight counts descriptors
    std::uint32_t pkts = 0;                 // packets handed over, not reaped
    tx_wait_state wait{};                   // for the oldest packet's write-back
    std::uint32_t flagged = ~0u;            // later packet last counted as done before an earlier one
    igbvf::adv_tx_context_desc ctx{};       // the context the device holds (slot 0)
    bool ctx_valid = false;

    // ---- burst: reap if short of room, fill, one doorbell --------------------------------
    std::uint16_t burst(Api& api, igbvf_window& dev, std::uint16_t qi, std::span<buffer_type> bufs,
                        std::uint32_t offloads, std::uint32_t mtu, queue_stats& st,
                        trust_latch& trust) noexcept {
        if (room() < igbvf_tx_reap_below) {
            (void)reap(api, dev, qi, st, trust);
        }
        std::uint16_t n = 0;
        bool filled = false;
        for (; n < bufs.size(); ++n) {
            const buffer_type b = bufs[n];
            const offload_info ol = b.offload();
            const bool tso = (ol.flags & ol::tx_tso) != 0 && (offloads & cap::tso) != 0;
            const std::uint32_t max_len = tso ? b.capacity() : mtu + igbvf::eth_hlen + igbvf::vlan_hlen;
            if (b.length() < igbvf::eth_hlen || b.length() > max_len ||
                b.length() > igbvf::txd::dtalen_mask) {
                ++st.tx_errors;  // not a frame this device can send: refused, handed back
                api.tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            const igbvf::tx_offload off = igbvf::tx_offload_for(b.data(), b.length(), ol, offloads, tso);
            const igbvf::adv_tx_context_desc& c = off.ctx;
            const bool need_ctx = c.type_tucmd_mlhl != 0 &&
                                  (!ctx_valid || std::memcmp(&c, &ctx, sizeof c) != 0);
            if (room() < (need_ctx ? igbvf_max_desc_per_pkt : 1u)) {
                break;
            }
            // Under txd::min_frame the TX engine may fail (igb_xmit_frame pads such frames):
            // the frame is padded with zeroes in its own buffer, never with whatever the
            // buffer held there before. Done after the room check, so a frame that stays
            // with the caller (ring full) is left as it came.
            if (b.length() < igbvf::txd::min_frame) {
                if (b.capacity() < igbvf::txd::min_frame) {
                    ++st.tx_errors;  // no room to pad: refused, handed back
                    api.tx_complete(qi, std::span<const buffer_type>(&b, 1));
                    continue;
                }
                std::memset(b.data() + b.length(), 0, igbvf::txd::min_frame - b.length());
                b.set_length(igbvf::txd::min_frame);
            }
            const std::uint32_t first = slots.next_to_fill();
            if (need_ctx) {
                std::memcpy(&ring[slots.fill()], &c, sizeof c);
                ctx = c;
                ctx_valid = true;
            }
            const std::uint32_t cmd = igbvf::txd::dtyp_data | igbvf::txd::dcmd_dext |
                                      igbvf::txd::dcmd_ifcs | igbvf::txd::dcmd_eop |
                                      igbvf::txd::dcmd_rs | off.cmd | b.length();
            std::uint32_t olinfo = off.olinfo;
            // PAYLEN: the whole frame, or for TSO the TCP payload (datasheet 7.2.2.2.9).
            const std::uint32_t hdrs =
                (ol.l2_len != 0 ? std::uint32_t{ol.l2_len} : igbvf::eth_hlen) + ol.l3_len + ol.l4_len;
            const std::uint32_t paylen = tso ? b.length() - (hdrs < b.length() ? hdrs : 0) : b.length();
            olinfo |= paylen << igbvf::txd::paylen_shift;
            const std::uint32_t eop = slots.fill();
            igbvf::adv_tx_desc& d = ring[eop];
            d.read.buffer_addr = b.iova();
            d.read.cmd_type_len = cmd;
            d.read.olinfo_status = olinfo;  // STA (DD) = 0
            slots[first].eop = eop;
            slots[eop].buf = b;
            ++pkts;
            filled = true;
        }
        st.tx_ring_full += n < bufs.size() ? 1 : 0;
        if (filled) {
            // release: the descriptors before the tail; pairs with the device's acquire of
            // TDT (a platform's write must also order them for a real device: writel()).
            std::atomic_thread_fence(std::memory_order_release);
            dev.write(igbvf_reg::tdt, qi, slots.next_to_fill());
        }
        return n;
    }

    // ---- reap: return what the device has finished ---------------------------------------
    std::uint32_t reap(Api& api, igbvf_window& dev, std::uint16_t qi, queue_stats& st,
                       trust_latch& trust) noexcept {
        check_tx_stray(st, trust);
        std::uint32_t done = 0;
        std::uint64_t packets = 0, bytes = 0;
        batch bt;
        while (pkts != 0) {
            const std::uint32_t eop = slots.oldest().eop;
            const std::uint32_t len = slots.distance(slots.next_to_clean(), eop) + 1;
            if (dd_set_tx(ring[eop])) {
                ++packets;
                bytes += slots[eop].buf.length();
                wait = tx_wait_state{};  // progress: any wait starts over
            } else if (!tx_overdue(api, dev, qi, eop, len, st, trust)) {
                if (pkts > 1) {
                    check_tx_ahead(eop, st, trust);
                }
                break;  // not done yet
            }
            igbvf::clear_word(ring[eop], 3);
            flagged = flagged == eop ? ~0u : flagged;  // the slot's next use starts clean
            bt.add(slots[eop].buf, [&](auto s) { api.tx_complete(qi, s); });
            slots[eop].buf = buffer_type{};
            slots.clean(len);
            --pkts;
            ++done;
        }
        bt.flush([&](auto s) { api.tx_complete(qi, s); });
        st.tx_packets += packets;  // once per reap: the stats are not the loop's to reload
        st.tx_bytes += bytes;
        return done;
    }

    // ---- detach's share, once the queue is stopped: every buffer back ---------------------
    void hand_back(Api& api, std::uint16_t qi, queue_stats& st) noexcept {
        // TX the device confirmed (DD, as in reap) goes back completed. A write-back in
        // ring memory outlives a reset or a removal, so it still counts.
        batch bt;
        auto done = [&](auto s) { api.tx_complete(qi, s); };
        while (pkts != 0) {
            const std::uint32_t eop = slots.oldest().eop;
            const std::uint32_t len = slots.distance(slots.next_to_clean(), eop) + 1;
            if (!dd_set_tx(ring[eop])) {
                break;
            }
            ++st.tx_packets;
            bt.add(slots[eop].buf, done);
            slots.clean(len);
            --pkts;
        }
        bt.flush(done);
        // What it took but never confirmed goes back unsent, oldest first.
        batch ub;
        auto unsent = [&](auto s) { api.tx_unsent(qi, s); };
        for (; pkts != 0; --pkts) {
            const std::uint32_t eop = slots.oldest().eop;
            ub.add(slots[eop].buf, unsent);
            slots.clean(slots.distance(slots.next_to_clean(), eop) + 1);
        }
        ub.flush(unsent);
    }

    // Head == tail means empty: one descriptor is never handed over.
    [[nodiscard]] std::uint32_t room() const noexcept { return slots.free_slots() - 1; }

private:
    // Buffers handed back in runs of igbvf_tx_batch (a stack array: no allocation).
    struct batch {
        std::array<buffer_type, igbvf_tx_batch> b{};
        std::uint32_t n = 0;
        template <class Fn>
        void add(buffer_type x, Fn fn) noexcept {
            b[n++] = x;
            if (n == b.size()) {
                flush(fn);
            }
        }
        template <class Fn>
        void flush(Fn fn) noexcept {
            if (n != 0) {
                fn(std::span<const buffer_type>(b.data(), n));
                n = 0;
            }
        }
    };

    static bool dd_set_tx(igbvf::adv_tx_desc& d) noexcept {
        return (igbvf::load_word(d, 3) & igbvf::txd::stat_dd) != 0;
    }

    // The first free slot holds nothing the device may write back (as RX's check_rx_stray).
    void check_tx_stray(queue_stats& st, trust_latch& trust) noexcept {
        if (slots.free_slots() != 0 && dd_set_tx(ring[slots.next_to_fill()])) {
            trust.distrust(st);
            igbvf::clear_word(ring[slots.next_to_fill()], 3);
        }
    }
    // The oldest packet is not done; if the next one is, write-backs came out of order.
    // Write-backs land in ring order, so after seeing the later DD (acquire) the earlier
    // one is read again: still clear means out of order, not a write still in progress.
    void check_tx_ahead(std::uint32_t eop, queue_stats& st, trust_latch& trust) noexcept {
        const std::uint32_t next_eop = slots[slots.next(eop)].eop;
        if (next_eop < slots.size() && dd_set_tx(ring[next_eop]) &&
            !dd_set_tx(ring[eop]) && flagged != next_eop) {
            flagged = next_eop;
            trust.distrust(st);
        }
    }

    // The oldest packet (`len` descriptors up to `eop`) is not done: whether it is given up
    // as a lost write-back (counted here; the caller hands its buffer back). The wait is
    // timed from the second reap in a row that finds it so (the first is the normal case
    // under load and reads no clock); past igbvf_tx_timeout_ns the head decides: passed,
    // the write-back is lost; not reached, the queue stalled (counted once, nothing given
    // up). A packet handed over before the timing began inherits it when the one before
    // it is given up.
    bool tx_overdue(Api& api, igbvf_window& dev, std::uint16_t qi, std::uint32_t eop,
                    std::uint32_t len, queue_stats& st, trust_latch& trust) noexcept {
        tx_wait_state& w = wait;
        if (!w.timing && w.stuck != eop) {
            w.stuck = eop;  // first sight: most likely just in flight
            return false;
        }
        if (!w.timing || w.until == slots.next_to_clean()) {
            // No progress since the last reap, or everything that waited so long is gone.
            w.timing = true;
            w.until = slots.next_to_fill();
            w.since = wait_start(api);
            return false;
        }
        if (!waited_out(api, dev, qi, w) || !tx_enabled(dev, qi)) {
            return false;  // a disabled queue: a reset or a removal, which health() reports
        }
        std::uint32_t behind = 0;
        if (!head_behind(dev, qi, behind, st, trust)) {
            return false;  // a head that cannot be believed is counted there
        }
        if (len > behind) {
            if (!w.stall_counted) {  // handed over, never taken: the queue stalled
                w.stall_counted = true;
                trust.distrust(st);
            }
            return false;
        }
        trust.distrust(st);  // taken and never written back: a lost write-back
        ++st.tx_errors;
        return true;
    }
    static std::uint64_t wait_start(Api& api) noexcept {
        if constexpr (provides_clock<Api>) {
            return api.now_ns();
        } else {
            (void)api;
            return 0;
        }
    }
    // Whether the timed wait ran past the bound: by the shell's clock, or counted in TDH
    // reads (each call one read: the unit igbvf_tx_timeout_reads counts in).
    static bool waited_out(Api& api, igbvf_window& dev, std::uint16_t qi, tx_wait_state& w) noexcept {
        if constexpr (provides_clock<Api>) {
            (void)dev;
            (void)qi;
            return api.now_ns() - w.since >= igbvf_tx_timeout_ns;
        } else {
            (void)api;
            (void)dev.read(igbvf_reg::tdh, qi);
            return ++w.since >= igbvf_tx_timeout_reads;
        }
    }

    // Whether TX queue qi still runs: the driver enabled it at attach, and only a reset or
    // a device that is gone reads ENABLE clear (a VF its PF removed reads 0 on QEMU, head
    // included). Read only before accusing the device of dropping TX: such a head is no
    // evidence of sending, and what the queue holds goes back unsent at detach.
    static bool tx_enabled(igbvf_window& dev, std::uint16_t qi) noexcept {
        return (dev.read(igbvf_reg::txdctl, qi) & igbvf::txdctl_enable) != 0;
    }

    // Descriptors between next_to_clean and the head register, checked: a head outside
    // the ring or past what was handed over is counted and believed for nothing.
    bool head_behind(igbvf_window& dev, std::uint16_t qi, std::uint32_t& behind, queue_stats& st,
                     trust_latch& trust) noexcept {
        const std::uint32_t h = dev.read(igbvf_reg::tdh, qi);
        behind = 0;
        if (h == igbvf::reg_removed) {
            return false;  // gone: health() says so, no accusation
        }
        const std::uint32_t b = h < slots.size() ? slots.distance(slots.next_to_clean(), h) : 0;
        if (h >= slots.size() || b > slots.in_flight()) {
            trust.distrust(st);
            return false;
        }
        behind = b;
        return true;
    }
};

} // namespace npa
