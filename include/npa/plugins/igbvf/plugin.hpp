// npa/plugins/igbvf/plugin.hpp: the plugin for an Intel 82576 virtual function (igbvf).
//
// It drives the VF's advanced descriptor rings (defs.hpp) through the device window
// (window.hpp) and nothing else: the MAC, VLAN and MTU go through the PF mailbox,
// which only the shell's igbvf_control can reach. A packet's offloads become context and
// descriptor bits, and a write-back's become offload_info, in offload.hpp.
//
// Rings (82576 datasheet 7.1 / 7.2): head/tail. The driver writes descriptors and moves
// the tail register (RDT/TDT, one doorbell per burst); the device consumes from head and
// writes each descriptor back with the DD bit. At most size - 1 descriptors are handed
// over (head == tail means empty).
//
// Trust nothing the device writes (DESIGN.md section 3). Every write-back is copied out
// as one snapshot and checked before use:
//   RX: DD, EOP (buffers hold a whole frame, so a chain is an error), no unknown status
//       bits, no header-split length (one-buffer mode), a length that fits the buffer.
//       A DD on the one slot never handed over, or a later slot done before an earlier
//       one, is counted and the slot dropped (its buffer reposted, never lost). An earlier
//       slot still as it was posted (not written back at all) gets one more poll first:
//       its write-back may only be late (out of order), and then it is delivered, in order.
//   TX: a packet is done when its last descriptor has DD, as in igbvf_clean_tx_irq;
//       the head register is not read for it. TDH names the descriptor the device is at,
//       and an 82576 fetches descriptors ahead of sending them, so the head may pass a
//       packet long before its write-back lands: it proves nothing about completion.
//       A DD on the free slot at the tail is a write-back for nothing handed over. A
//       later packet done before an earlier one (re-read after the later DD) is out of
//       order: attach clears DCA_TXCTRL.TX_WB_RO_EN as igbvf_configure_tx does, so the
//       device writes back in ring order and anything else is a fault.
//       A write-back that does not come is accused only after igbvf_tx_timeout_ns, igbvf's
//       own transmit timeout, measured with the shell's clock (provides_clock) from the
//       second reap in a row that finds the oldest packet not done (a first such reap is
//       the normal case under load, so it reads no clock). Past the bound, a packet the
//       head has passed is a lost write-back: its buffer goes back, counted as a TX error,
//       with every packet handed over before the wait began (they waited as long). One
//       the head has not reached is a stalled queue: counted once, its buffers stay until
//       detach hands them back unsent. A queue a reset disabled accuses nothing. Without
//       a clock the bound is counted in TDH reads, one per such reap (see the constants).
//   health(): STATUS reading all ones is a removed function (removed); a queue whose
//       ENABLE bit the driver did not clear is a reset behind our back (reset); any bad
//       completion means the device is not trusted again (device_error), so the shell
//       switches away. A reset of the PF shows on the mailbox, which the plugin cannot
//       reach: the shell's igbvf_control reports that one (npa/control/igbvf.hpp).
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/offload.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/ring/gen_ring.hpp>
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
/// How far past an RX slot that is not done rx_burst looks for a later one that is (a
/// device that skipped slots): two descriptor cache lines. A run of more skipped slots
/// than this is not recognised, and RX waits on the first of them.
inline constexpr std::uint32_t igbvf_rx_skip_look = 8;
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
/// Reads of TXDCTL and RXDCTL a queue stop waits for ENABLE to read 0 (stop_queue()). The
/// window has no clock, so the wait is counted in reads: at about 1 us a PCIe read, some
/// 10 ms, the time Linux's igbvf sleeps after clearing ENABLE.
inline constexpr std::uint32_t igbvf_stop_polls = 10000;
/// Ethernet header and 802.1Q tag: the frame bounds around the MTU.
inline constexpr std::uint32_t igbvf_eth_hlen = 14, igbvf_vlan_hlen = 4;

template <class Api>
class igbvf_plugin {
public:
    using buffer_type = typename Api::buffer_type;
    using device_type = igbvf_window;
    static constexpr const char* name = "igbvf";

    // ---- attach: check, lay out rings, program queues, post RX ------------------------
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        // step 1: the device must be there and able to do what is asked.
        if (dev.read(igbvf_reg::status) == igbvf::reg_removed) {
            return {errc::removed, "igbvf: VF not present (registers read all ones)"};
        }
        const igbvf_limits& lim = dev.limits();
        if (qc.queues == 0 || qc.queues > lim.queues || qc.queues > igbvf::max_queues) {
            return {errc::invalid_argument, "igbvf: more queue pairs than this VF has"};
        }
        if (qc.mtu > lim.max_mtu) {
            return {errc::not_supported, "igbvf: MTU above what this VF supports"};
        }
        // Ring sizes are the device's: the asked-for size is fitted into this host's range
        // (a VF on another host may offer other sizes; the shell's config is shared).
        const std::uint32_t tsz = fit_ring(qc.tx_ring_size, lim);
        const std::uint32_t rsz = fit_ring(qc.rx_ring_size, lim);
        api_ = &api;
        trust_.reset();
        dev_ = &dev;
        offloads_ = qc.offloads & lim.offloads;
        mtu_ = qc.mtu;
        for (std::uint16_t i = 0; i < qc.queues; ++i) {
            if (const status st = attach_queue(i, tsz, rsz); !st) {
                detach();
                return st;
            }
        }
        // step 5: interrupts: one MSI-X vector per queue pair (IVAR0), auto-masked and
        // auto-cleared when it fires (EIAM/EIAC), so each vector is one-shot as NAPI wants.
        std::uint32_t ivar = 0, vecs = 0;
        for (std::uint16_t i = 0; i < nq_; ++i) {
            const std::uint32_t entry = (i | 0x80u) | ((i | 0x80u) << 8);  // RX and TX cause -> vector i
            ivar |= entry << (16 * i);
            vecs |= 1u << i;
            dev.write(igbvf_reg::eitr, i, (qc.irq_moderation_us & 0xFFF) << 2);  // interval, 1 us units
        }
        dev.write(igbvf_reg::ivar0, 0, ivar);
        dev.write(igbvf_reg::eiac, 0, vecs);
        dev.write(igbvf_reg::eiam, 0, vecs);
        dev.write(igbvf_reg::eimc, 0, vecs);  // masked until the shell arms it
        api.log(log_level::info, "igbvf: attached");
        return status::success();
    }

    // ---- rx_burst: snapshot, validate, deliver, refill --------------------------------
    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        check_rx_stray(q);
        std::uint16_t n = 0;
        igbvf::adv_rx_desc d{};
        while (n < out.size() && q.rxs.in_flight() != 0) {
            const std::uint32_t slot = q.rxc.next_to_clean();
            if (!q.rxc.poll(d)) {
                // Not done. If a later posted slot is, the device skipped this one or
                // wrote them back out of order. The device writes slots in order, so once
                // the later DD is seen (acquire) this slot is read again: still not done
                // is a fault. A slot the device wrote back without DD is dropped (buffer
                // back to the shell) so RX cannot wedge; one still as posted gets one
                // more poll for a late write-back (then it is delivered, in order).
                const std::uint32_t later = done_ahead(q, slot);
                if (later == no_slot) {
                    break;
                }
                if (!q.rxc.poll(d)) {
                    if (q.rx_wait == no_slot && as_posted(q.rx_ring[slot])) {
                        q.rx_wait = later;
                        trust_.distrust(q.stats);
                        break;
                    }
                    if (q.rx_wait == no_slot) {
                        trust_.distrust(q.stats);
                    }
                    ++q.stats.rx_dropped;
                    q.rxc.advance();
                    drop_rx(qi, q, slot);
                    continue;
                }
            }
            if (slot == q.rx_wait) { // the later slot that was seen done is reached
                q.rx_wait = no_slot;
            }
            clear_word(q.rx_ring[slot], 2);  // a consumed slot never looks done again
            const buffer_type b = q.rxs.take();
            const igbvf::adv_rx_wb wb = d.wb;
            const bool garbage = (wb.status_error & ~igbvf::rxd::known) != 0 ||
                                 (wb.status_error & igbvf::rxd::stat_eop) == 0 ||
                                 wb.hdr_info != 0 || wb.length < igbvf_eth_hlen ||
                                 wb.length > q.rx_buf_len;
            if (garbage || (wb.status_error & igbvf::rxd::err_frame) != 0) {
                trust_.distrust(q.stats, garbage ? 1 : 0);
                ++q.stats.rx_dropped;
                api_->release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            b.set_length(wb.length);
            b.set_offload(igbvf::rx_offload(wb, (offloads_ & cap::rx_csum) != 0));
            out[n++] = b;
            ++q.stats.rx_packets;
            q.stats.rx_bytes += wb.length;
        }
        refill(qi);
        return n;
    }

    // ---- tx_burst: reap if short of room, fill, one doorbell --------------------------
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        if (tx_free(q) < igbvf_tx_reap_below) {
            (void)tx_reap(qi);
        }
        std::uint16_t n = 0;
        bool filled = false;
        for (; n < bufs.size(); ++n) {
            const buffer_type b = bufs[n];
            const offload_info ol = b.offload();
            const bool tso = (ol.flags & ol::tx_tso) != 0 && (offloads_ & cap::tso) != 0;
            const std::uint32_t max_len = tso ? b.capacity() : mtu_ + igbvf_eth_hlen + igbvf_vlan_hlen;
            if (b.length() < igbvf_eth_hlen || b.length() > max_len ||
                b.length() > igbvf::txd::dtalen_mask) {
                ++q.stats.tx_errors;  // not a frame this device can send: refused, handed back
                api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            const igbvf::tx_offload off = igbvf::tx_offload_for(b.data(), b.length(), ol, offloads_, tso);
            const igbvf::adv_tx_context_desc& ctx = off.ctx;
            const bool need_ctx = ctx.type_tucmd_mlhl != 0 &&
                                  (!q.ctx_valid || std::memcmp(&ctx, &q.ctx, sizeof ctx) != 0);
            if (tx_free(q) < (need_ctx ? 2u : 1u)) {
                break;
            }
            // Under txd::min_frame the TX engine may fail (igb_xmit_frame pads such frames):
            // the frame is padded with zeroes in its own buffer, never with whatever the
            // buffer held there before. Done after the room check, so a frame that stays
            // with the caller (ring full) is left as it came.
            if (b.length() < igbvf::txd::min_frame) {
                if (b.capacity() < igbvf::txd::min_frame) {
                    ++q.stats.tx_errors;  // no room to pad: refused, handed back
                    api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                    continue;
                }
                std::memset(b.data() + b.length(), 0, igbvf::txd::min_frame - b.length());
                b.set_length(igbvf::txd::min_frame);
            }
            const std::uint32_t first = q.txs.next_to_fill();
            if (need_ctx) {
                std::memcpy(&q.tx_ring[q.txs.fill()], &ctx, sizeof ctx);
                q.ctx = ctx;
                q.ctx_valid = true;
            }
            const std::uint32_t cmd = igbvf::txd::dtyp_data | igbvf::txd::dcmd_dext |
                                      igbvf::txd::dcmd_ifcs | igbvf::txd::dcmd_eop |
                                      igbvf::txd::dcmd_rs | off.cmd | b.length();
            std::uint32_t olinfo = off.olinfo;
            // PAYLEN: the whole frame, or for TSO the TCP payload (datasheet 7.2.2.2.9).
            const std::uint32_t hdrs =
                (ol.l2_len != 0 ? std::uint32_t{ol.l2_len} : igbvf_eth_hlen) + ol.l3_len + ol.l4_len;
            const std::uint32_t paylen = tso ? b.length() - (hdrs < b.length() ? hdrs : 0) : b.length();
            olinfo |= paylen << igbvf::txd::paylen_shift;
            const std::uint32_t eop = q.txs.fill();
            igbvf::adv_tx_desc& d = q.tx_ring[eop];
            d.read.buffer_addr = b.iova();
            d.read.cmd_type_len = cmd;
            d.read.olinfo_status = olinfo;  // STA (DD) = 0
            q.txs[first].eop = eop;
            q.txs[eop].buf = b;
            ++q.tx_pkts;
            filled = true;
        }
        q.stats.tx_ring_full += n < bufs.size() ? 1 : 0;
        if (filled) {
            // release: the descriptors before the tail; pairs with the device's acquire of
            // TDT (a platform's write must also order them for a real device: writel()).
            std::atomic_thread_fence(std::memory_order_release);
            dev_->write(igbvf_reg::tdt, qi, q.txs.next_to_fill());
        }
        return n;
    }

    // ---- tx_reap: return what the device has finished ---------------------------------
    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        check_tx_stray(q);
        std::uint32_t done = 0;
        batch bt;
        while (q.tx_pkts != 0) {
            const std::uint32_t eop = q.txs.oldest().eop;
            const std::uint32_t len = q.txs.distance(q.txs.next_to_clean(), eop) + 1;
            if (dd_set_tx(q.tx_ring[eop])) {
                ++q.stats.tx_packets;
                q.stats.tx_bytes += q.txs[eop].buf.length();
                q.tx_wait = tx_wait_state{};  // progress: any wait starts over
            } else if (!tx_overdue(qi, q, eop, len)) {
                if (q.tx_pkts > 1) {
                    check_tx_ahead(q, eop);
                }
                break;  // not done yet
            }
            clear_word(q.tx_ring[eop], 3);
            q.flagged = q.flagged == eop ? ~0u : q.flagged;  // the slot's next use starts clean
            bt.add(q.txs[eop].buf, [&](auto s) { api_->tx_complete(qi, s); });
            q.txs[eop].buf = buffer_type{};
            q.txs.clean(len);
            --q.tx_pkts;
            ++done;
        }
        bt.flush([&](auto s) { api_->tx_complete(qi, s); });
        return done;
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t qi) const noexcept {
        return q_[qi].tx_pkts;
    }

    // ---- detach: stop the queues, hand every buffer back ------------------------------
    void detach() noexcept {
        const bool removed = dev_ != nullptr && dev_->read(igbvf_reg::status) == igbvf::reg_removed;
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            // step 1: disable the queues and wait until they stopped; after this the
            // device writes nothing more.
            if (!removed) {
                stop_queue(i);
            }
            dev_->write(igbvf_reg::eimc, 0, 1u << i);
            // step 2: TX the device confirmed (DD, as in tx_reap) goes back completed. A
            // write-back in ring memory outlives a reset or a removal, so it still counts.
            batch bt;
            auto done = [&](auto s) { api_->tx_complete(i, s); };
            while (q.tx_pkts != 0) {
                const std::uint32_t eop = q.txs.oldest().eop;
                const std::uint32_t len = q.txs.distance(q.txs.next_to_clean(), eop) + 1;
                if (!dd_set_tx(q.tx_ring[eop])) {
                    break;
                }
                ++q.stats.tx_packets;
                bt.add(q.txs[eop].buf, done);
                q.txs.clean(len);
                --q.tx_pkts;
            }
            bt.flush(done);
            // step 3: what it took but never confirmed goes back unsent, oldest first.
            batch ub;
            auto unsent = [&](auto s) { api_->tx_unsent(i, s); };
            for (; q.tx_pkts != 0; --q.tx_pkts) {
                const std::uint32_t eop = q.txs.oldest().eop;
                ub.add(q.txs[eop].buf, unsent);
                q.txs.clean(q.txs.distance(q.txs.next_to_clean(), eop) + 1);
            }
            ub.flush(unsent);
            // step 4: posted RX buffers go back to the shell, in ring order.
            q.rxs.give_back(q.rxs.in_flight(), [&](auto s) { api_->release_rx_buffers(i, s); });
            q.txs.release();
            q.rxs.release();
        }
        nq_ = 0;
        trust_.reset();
    }

    void irq_arm(std::uint16_t qi) noexcept { dev_->write(igbvf_reg::eims, 0, 1u << qi); }
    void irq_disarm(std::uint16_t qi) noexcept { dev_->write(igbvf_reg::eimc, 0, 1u << qi); }

    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        const igbvf_limits l = dev_ != nullptr ? dev_->limits() : igbvf_limits{};
        return {l.offloads, l.queues, l.min_ring, l.max_ring, l.min_mtu, l.max_mtu};
    }
    [[nodiscard]] const queue_stats& stats(std::uint16_t qi) const noexcept { return q_[qi].stats; }

    [[nodiscard]] errc health() const noexcept {
        if (dev_ == nullptr || nq_ == 0) {
            return errc::ok;
        }
        if (dev_->read(igbvf_reg::status) == igbvf::reg_removed) {
            return errc::removed;
        }
        // The driver enabled every queue at attach; only a function-level reset clears
        // ENABLE while the registers still answer (82576 datasheet 4.2.1.2.2: a VF reset
        // returns the queue registers to their defaults). Checked first: the cleared
        // head and tail registers also look like bad completions, and the reset explains them.
        for (std::uint16_t i = 0; i < nq_; ++i) {
            if ((dev_->read(igbvf_reg::txdctl, i) & igbvf::txdctl_enable) == 0 ||
                (dev_->read(igbvf_reg::rxdctl, i) & igbvf::rxdctl_enable) == 0) {
                return errc::reset;
            }
        }
        return trust_.distrusted() ? errc::device_error : errc::ok;
    }

    /// The offloads enabled at attach: what the shell asked for that this VF has.
    [[nodiscard]] std::uint32_t offloads() const noexcept { return offloads_; }

    /// Descriptors of each ring in use after fitting (tests, telemetry).
    [[nodiscard]] std::uint32_t tx_ring_size(std::uint16_t qi) const noexcept { return q_[qi].txs.size(); }
    [[nodiscard]] std::uint32_t rx_ring_size(std::uint16_t qi) const noexcept { return q_[qi].rxs.size(); }
    /// The most packets queue qi's RX ring can hold received and not yet read: a switch
    /// reads the old path's RX up to this many (or a short burst) whatever the drain
    /// timeout says, so nothing the VF received is lost with the detach.
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t qi) const noexcept {
        return qi < nq_ ? q_[qi].rxs.size() : 0;
    }

private:
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
    struct queue {
        igbvf::adv_tx_desc* tx_ring = nullptr;
        igbvf::adv_rx_desc* rx_ring = nullptr;
        slot_ring<tx_slot> txs;                // TX books: in_flight counts descriptors
        std::uint32_t tx_pkts = 0;             // packets handed over, not reaped
        tx_wait_state tx_wait{};               // for the oldest packet's write-back
        std::uint32_t flagged = ~0u;           // later packet last counted as done before an earlier one
        gen_consumer<igbvf::rx_done_traits> rxc;  // DD polling at the RX next_to_clean
        slot_ring<buffer_type> rxs;            // buf_info: the buffer in each RX slot
        std::uint32_t rx_buf_len = 0;
        std::uint32_t rx_wait = no_slot;       // a later slot seen done past one that is not
        igbvf::adv_tx_context_desc ctx{};        // the context the device holds (slot 0)
        bool ctx_valid = false;
        queue_stats stats{};
    };

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

    static std::uint32_t fit_ring(std::uint32_t want, const igbvf_limits& l) noexcept {
        std::uint32_t n = want < l.min_ring ? l.min_ring : want > l.max_ring ? l.max_ring : want;
        n -= n % igbvf::ring_multiple;
        return n < igbvf::min_ring_size ? igbvf::min_ring_size : n;
    }
    // Head == tail means empty: one descriptor is never handed over.
    static std::uint32_t tx_free(const queue& q) noexcept { return q.txs.free_slots() - 1; }

    // acquire: pairs with the device's release store of the word it writes back last
    // (DD in the status word); the fields are read only after it.
    template <class Desc>
    static std::uint32_t load_word(Desc& d, std::size_t w) noexcept {
        return from_le32(std::atomic_ref<std::uint32_t>(reinterpret_cast<std::uint32_t*>(&d)[w])
                             .load(std::memory_order_acquire));
    }
    template <class Desc>
    static void clear_word(Desc& d, std::size_t w) noexcept {
        // relaxed: the slot is the driver's until the tail write, which a release fence
        // precedes; 0 is the same in every byte order.
        std::atomic_ref<std::uint32_t> word(reinterpret_cast<std::uint32_t*>(&d)[w]);
        word.store(0, std::memory_order_relaxed);  // relaxed: see above
    }
    static bool dd_set(igbvf::adv_rx_desc& d) noexcept {
        return (load_word(d, 2) & igbvf::rxd::stat_dd) != 0;
    }
    // Words 2 and 3 as refill left them (hdr_addr 0): nothing was written back.
    static bool as_posted(igbvf::adv_rx_desc& d) noexcept {
        return load_word(d, 2) == 0 && load_word(d, 3) == 0;
    }
    // The first posted slot within igbvf_rx_skip_look past `slot` that is done, or
    // no_slot if there is none.
    static std::uint32_t done_ahead(queue& q, std::uint32_t slot) noexcept {
        std::uint32_t s = slot;
        for (std::uint32_t k = 1; k < q.rxs.in_flight() && k <= igbvf_rx_skip_look; ++k) {
            s = q.rxs.next(s);
            if (dd_set(q.rx_ring[s])) {
                return s;
            }
        }
        return no_slot;
    }
    static bool dd_set_tx(igbvf::adv_tx_desc& d) noexcept {
        return (load_word(d, 3) & igbvf::txd::stat_dd) != 0;
    }

    status attach_queue(std::uint16_t i, std::uint32_t tsz, std::uint32_t rsz) {
        queue& q = q_[i];
        q = queue{};
        // step 2: rings in the queue's DMA area, zeroed so no slot looks done:
        //         [ TX ring | RX ring ], each 128-byte aligned (datasheet: TDBAL/RDBAL).
        const igbvf_dma_area area = dev_->ring_area(i);
        const std::size_t tx_bytes = std::size_t{tsz} * igbvf::desc_size;
        const std::size_t rx_bytes = std::size_t{rsz} * igbvf::desc_size;
        nq_ = static_cast<std::uint16_t>(i + 1);
        if (area.virt == nullptr || area.size < tx_bytes + rx_bytes || (area.iova & 127) != 0 ||
            !q.txs.reset(tsz) || !q.rxs.reset(rsz)) {
            return {errc::no_memory, "igbvf: ring memory too small for these ring sizes"};
        }
        std::memset(area.virt, 0, tx_bytes + rx_bytes);
        q.tx_ring = reinterpret_cast<igbvf::adv_tx_desc*>(area.virt);
        q.rx_ring = reinterpret_cast<igbvf::adv_rx_desc*>(area.virt + tx_bytes);
        q.rxc.reset(q.rx_ring, rsz);
        // step 3: stop the queue pair (stop_queue()), then program and enable TX
        //         (datasheet 4.5.10 "Transmit initialization").
        const iova_t tx = area.iova, rx = area.iova + tx_bytes;
        stop_queue(i);
        dev_->write(igbvf_reg::tdbal, i, static_cast<std::uint32_t>(tx));
        dev_->write(igbvf_reg::tdbah, i, static_cast<std::uint32_t>(tx >> 32));
        dev_->write(igbvf_reg::tdlen, i, static_cast<std::uint32_t>(tx_bytes));
        dev_->write(igbvf_reg::tdh, i, 0);
        dev_->write(igbvf_reg::tdt, i, 0);
        // Write-backs in ring order: no relaxed ordering on them (igbvf_configure_tx clears
        // the bit too), so a later packet done before an earlier one is a fault.
        dev_->write(igbvf_reg::dca_txctrl, i,
                    dev_->read(igbvf_reg::dca_txctrl, i) & ~igbvf::dca_txctrl_tx_wb_ro_en);
        dev_->write(igbvf_reg::txdctl, i, igbvf::txdctl_enable);
        // step 4: program and enable RX (4.5.9): one-buffer advanced descriptors of the
        // pool's buffer size, in KiB; the buffer must hold a whole frame.
        const std::uint32_t bsize_kb = rx_buffer_kb(i);
        q.rx_buf_len = bsize_kb * 1024;
        if (bsize_kb == 0 || q.rx_buf_len < mtu_ + igbvf_eth_hlen + igbvf_vlan_hlen) {
            return {errc::invalid_argument, "igbvf: RX buffers smaller than a frame"};
        }
        dev_->write(igbvf_reg::rdbal, i, static_cast<std::uint32_t>(rx));
        dev_->write(igbvf_reg::rdbah, i, static_cast<std::uint32_t>(rx >> 32));
        dev_->write(igbvf_reg::rdlen, i, static_cast<std::uint32_t>(rx_bytes));
        dev_->write(igbvf_reg::srrctl, i, igbvf::srrctl_desctype_adv_onebuf | igbvf::srrctl_drop_en |
                                              (bsize_kb & igbvf::srrctl_bsizepkt_mask));
        dev_->write(igbvf_reg::rdh, i, 0);
        dev_->write(igbvf_reg::rdt, i, 0);
        dev_->write(igbvf_reg::rxdctl, i, igbvf::rxdctl_enable);
        // The device answers by setting ENABLE; a queue it refused (bad ring) reads 0.
        if ((dev_->read(igbvf_reg::txdctl, i) & igbvf::txdctl_enable) == 0 ||
            (dev_->read(igbvf_reg::rxdctl, i) & igbvf::rxdctl_enable) == 0) {
            return {errc::device_error, "igbvf: the VF did not enable the queue"};
        }
        refill(i);
        return status::success();
    }

    // Clear queue qi's ENABLE bits and poll until both read 0: the 82576 first finishes
    // the descriptor and buffer DMA it has started (igb polls RXDCTL so; igbvf sleeps
    // 10 ms after clearing it, igbvf_configure_rx), and only then may its ring be
    // reprogrammed or its buffers go back. Not stopped within igbvf_stop_polls reads is
    // logged, and the caller goes on, as igb does; a function reading all ones is gone.
    void stop_queue(std::uint16_t qi) noexcept {
        dev_->write(igbvf_reg::txdctl, qi, 0);
        dev_->write(igbvf_reg::rxdctl, qi, 0);
        for (std::uint32_t n = 0; n < igbvf_stop_polls; ++n) {
            const std::uint32_t t = dev_->read(igbvf_reg::txdctl, qi);
            const std::uint32_t r = dev_->read(igbvf_reg::rxdctl, qi);
            if (t == igbvf::reg_removed || r == igbvf::reg_removed) {
                return;  // gone: nothing is in flight, and health() says so
            }
            if ((t & igbvf::txdctl_enable) == 0 && (r & igbvf::rxdctl_enable) == 0) {
                return;
            }
        }
        api_->log(log_level::warning, "igbvf: queue still enabled after the stop wait");
    }

    // The RX buffer size SRRCTL announces, in KiB: what one buffer of the pool can hold.
    // Probed with one buffer from the shell (given straight back).
    std::uint32_t rx_buffer_kb(std::uint16_t qi) noexcept {
        buffer_type b{};
        if (api_->alloc_rx_buffers(qi, std::span<buffer_type>(&b, 1)) != 1) {
            return 2;  // the pool is empty now; the npa pool default (2 KiB) is assumed
        }
        const std::uint32_t kb = b.capacity() / 1024;
        api_->release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
        return kb > igbvf::srrctl_bsizepkt_mask ? igbvf::srrctl_bsizepkt_mask : kb;
    }

    // Post a buffer in every free slot but one (head == tail means empty), one doorbell.
    // A buffer smaller than SRRCTL announced is never posted: it goes back, counted as
    // rx_no_buffer, and the next buffer takes its slot.
    void refill(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        const std::uint32_t want = q.rxs.free_slots() - 1;
        const std::uint32_t posted = q.rxs.refill(
            want, [&](std::span<buffer_type> s) { return api_->alloc_rx_buffers(qi, s); },
            [&](std::uint32_t slot, const buffer_type& b) {
                if (b.capacity() < q.rx_buf_len) {
                    api_->release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
                    return false;
                }
                igbvf::adv_rx_desc& d = q.rx_ring[slot];
                d.read.pkt_addr = b.iova();
                d.read.hdr_addr = 0;  // no header split; clears DD
                return true;
            });
        q.stats.rx_no_buffer += want - posted;
        if (posted != 0) {
            // release: as before TDT in tx_burst(), for RDT
            std::atomic_thread_fence(std::memory_order_release);
            dev_->write(igbvf_reg::rdt, qi, q.rxs.next_to_fill());
        }
    }

    // The one slot never handed over (at the tail) must never be written back.
    void check_rx_stray(queue& q) noexcept {
        if (q.rxs.free_slots() != 0 && dd_set(q.rx_ring[q.rxs.next_to_fill()])) {
            trust_.distrust(q.stats);
            clear_word(q.rx_ring[q.rxs.next_to_fill()], 2);
        }
    }
    // The same on TX: the first free slot holds nothing the device may write back.
    void check_tx_stray(queue& q) noexcept {
        if (q.txs.free_slots() != 0 && dd_set_tx(q.tx_ring[q.txs.next_to_fill()])) {
            trust_.distrust(q.stats);
            clear_word(q.tx_ring[q.txs.next_to_fill()], 3);
        }
    }
    // The oldest packet is not done; if the next one is, write-backs came out of order.
    // Write-backs land in ring order, so after seeing the later DD (acquire) the earlier
    // one is read again: still clear means out of order, not a write still in progress.
    void check_tx_ahead(queue& q, std::uint32_t eop) noexcept {
        const std::uint32_t next_eop = q.txs[q.txs.next(eop)].eop;
        if (next_eop < q.txs.size() && dd_set_tx(q.tx_ring[next_eop]) &&
            !dd_set_tx(q.tx_ring[eop]) && q.flagged != next_eop) {
            q.flagged = next_eop;
            trust_.distrust(q.stats);
        }
    }

    // The oldest packet (`len` descriptors up to `eop`) is not done: whether it is given up
    // as a lost write-back (counted here; the caller hands its buffer back). The wait is
    // timed from the second reap in a row that finds it so (the first is the normal case
    // under load and reads no clock); past igbvf_tx_timeout_ns the head decides: passed,
    // the write-back is lost; not reached, the queue stalled (counted once, nothing given
    // up). A packet handed over before the timing began inherits it when the one before
    // it is given up.
    bool tx_overdue(std::uint16_t qi, queue& q, std::uint32_t eop, std::uint32_t len) noexcept {
        tx_wait_state& w = q.tx_wait;
        if (!w.timing && w.stuck != eop) {
            w.stuck = eop;  // first sight: most likely just in flight
            return false;
        }
        if (!w.timing || w.until == q.txs.next_to_clean()) {
            // No progress since the last reap, or everything that waited so long is gone.
            w.timing = true;
            w.until = q.txs.next_to_fill();
            w.since = wait_start();
            return false;
        }
        if (!waited_out(qi, w) || !tx_enabled(qi)) {
            return false;  // a disabled queue: a reset or a removal, which health() reports
        }
        std::uint32_t behind = 0;
        if (!head_behind(qi, q, behind)) {
            return false;  // a head that cannot be believed is counted there
        }
        if (len > behind) {
            if (!w.stall_counted) {  // handed over, never taken: the queue stalled
                w.stall_counted = true;
                trust_.distrust(q.stats);
            }
            return false;
        }
        trust_.distrust(q.stats);  // taken and never written back: a lost write-back
        ++q.stats.tx_errors;
        return true;
    }
    std::uint64_t wait_start() noexcept {
        if constexpr (provides_clock<Api>) {
            return api_->now_ns();
        } else {
            return 0;
        }
    }
    // Whether the timed wait ran past the bound: by the shell's clock, or counted in TDH
    // reads (each call one read: the unit igbvf_tx_timeout_reads counts in).
    bool waited_out(std::uint16_t qi, tx_wait_state& w) noexcept {
        if constexpr (provides_clock<Api>) {
            (void)qi;
            return api_->now_ns() - w.since >= igbvf_tx_timeout_ns;
        } else {
            (void)dev_->read(igbvf_reg::tdh, qi);
            return ++w.since >= igbvf_tx_timeout_reads;
        }
    }

    // Whether TX queue qi still runs: the driver enabled it at attach, and only a reset or
    // a device that is gone reads ENABLE clear (a VF its PF removed reads 0 on QEMU, head
    // included). Read only before accusing the device of dropping TX: such a head is no
    // evidence of sending, and what the queue holds goes back unsent at detach.
    bool tx_enabled(std::uint16_t qi) noexcept {
        return (dev_->read(igbvf_reg::txdctl, qi) & igbvf::txdctl_enable) != 0;
    }

    // Descriptors between next_to_clean and the head register, checked: a head outside
    // the ring or past what was handed over is counted and believed for nothing.
    bool head_behind(std::uint16_t qi, queue& q, std::uint32_t& behind) noexcept {
        const std::uint32_t h = dev_->read(igbvf_reg::tdh, qi);
        behind = 0;
        if (h == igbvf::reg_removed) {
            return false;  // gone: health() says so, no accusation
        }
        const std::uint32_t b = h < q.txs.size() ? q.txs.distance(q.txs.next_to_clean(), h) : 0;
        if (h >= q.txs.size() || b > q.txs.in_flight()) {
            trust_.distrust(q.stats);
            return false;
        }
        behind = b;
        return true;
    }

    void drop_rx(std::uint16_t qi, queue& q, std::uint32_t slot) noexcept {
        clear_word(q.rx_ring[slot], 2);
        const buffer_type b = q.rxs.take();
        api_->release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
    }

    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    trust_latch trust_;  // something impossible was written back: health() says device_error
    std::uint32_t offloads_ = 0;
    std::uint32_t mtu_ = 1500;
    std::array<queue, igbvf::max_queues> q_{};
};

} // namespace npa
