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
//   RX: rx.hpp (igbvf_rxq): DD, EOP, known status bits, a length that fits the buffer; a
//       slot the device skipped or wrote back out of order is counted and dropped, one
//       only late gets one more poll.
//   TX: tx.hpp (igbvf_txq): a packet is done when its last descriptor has DD (the head
//       register proves nothing about completion); a write-back on the free slot or out of
//       ring order is a fault, and one that does not come is accused only after
//       igbvf_tx_timeout_ns, igbvf's own transmit timeout.
//   health(): STATUS reading all ones is a removed function (removed); a queue whose
//       ENABLE bit the driver did not clear is a reset behind our back (reset); any bad
//       completion means the device is not trusted again (device_error), so the shell
//       switches away. A reset of the PF shows on the mailbox, which the plugin cannot
//       reach: the shell's igbvf_control reports that one (npa/control/igbvf.hpp).
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/rx.hpp>
#include <npa/plugins/igbvf/tx.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/ring/slot_ring.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
// (the TX and RX engines' own are at the top of tx.hpp and rx.hpp)
/// Reads of TXDCTL and RXDCTL a queue stop waits for ENABLE to read 0 (stop_queue()). The
/// window has no clock, so the wait is counted in reads: at about 1 us a PCIe read, some
/// 10 ms, the time Linux's igbvf sleeps after clearing ENABLE.
inline constexpr std::uint32_t igbvf_stop_polls = 10000;

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


    // ---- the data path: each queue's engines (tx.hpp, rx.hpp) -------------------------
    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        return q.rx.burst(*api_, *dev_, qi, out, offloads_, q.stats, trust_);
    }

    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        return q.tx.burst(*api_, *dev_, qi, bufs, offloads_, mtu_, q.stats, trust_);
    }

    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        return q.tx.reap(*api_, *dev_, qi, q.stats, trust_);
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t qi) const noexcept {
        return q_[qi].tx.pkts;
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
            // steps 2 and 3: TX the device confirmed goes back completed, the rest unsent,
            // oldest first (tx.hpp, hand_back).
            q.tx.hand_back(*api_, i, q.stats);
            // step 4: posted RX buffers go back to the shell, in ring order.
            q.rx.slots.give_back(q.rx.slots.in_flight(), [&](auto s) { api_->release_rx_buffers(i, s); });
            q.tx.slots.release();
            q.rx.slots.release();
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
    [[nodiscard]] std::uint32_t tx_ring_size(std::uint16_t qi) const noexcept { return q_[qi].tx.slots.size(); }
    [[nodiscard]] std::uint32_t rx_ring_size(std::uint16_t qi) const noexcept { return q_[qi].rx.slots.size(); }
    /// The most packets queue qi's RX ring can hold received and not yet read: a switch
    /// reads the old path's RX up to this many (or a short burst) whatever the drain
    /// timeout says, so nothing the VF received is lost with the detach.
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t qi) const noexcept {
        return qi < nq_ ? q_[qi].rx.slots.size() : 0;
    }

private:
    struct queue {
        igbvf_txq<Api> tx;
        igbvf_rxq<Api> rx;
        queue_stats stats{};
    };

    static std::uint32_t fit_ring(std::uint32_t want, const igbvf_limits& l) noexcept {
        std::uint32_t n = want < l.min_ring ? l.min_ring : want > l.max_ring ? l.max_ring : want;
        n -= n % igbvf::ring_multiple;
        return n < igbvf::min_ring_size ? igbvf::min_ring_size : n;
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
            !q.tx.slots.reset(tsz) || !q.rx.slots.reset(rsz)) {
            return {errc::no_memory, "igbvf: ring memory too small for these ring sizes"};
        }
        std::memset(area.virt, 0, tx_bytes + rx_bytes);
        q.tx.ring = reinterpret_cast<igbvf::adv_tx_desc*>(area.virt);
        q.rx.ring = reinterpret_cast<igbvf::adv_rx_desc*>(area.virt + tx_bytes);
        q.rx.dd.reset(q.rx.ring, rsz);
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
        q.rx.buf_len = bsize_kb * 1024;
        if (bsize_kb == 0 || q.rx.buf_len < mtu_ + igbvf::eth_hlen + igbvf::vlan_hlen) {
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
        q.rx.refill(*api_, *dev_, i, q.stats);
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

    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    trust_latch trust_;  // something impossible was written back: health() says device_error
    std::uint32_t offloads_ = 0;
    std::uint32_t mtu_ = 1500;
    std::array<queue, igbvf::max_queues> q_{};
};

} // namespace npa
