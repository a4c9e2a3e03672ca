// npa/plugins/vmxnet3/plugin.hpp: the vmxnet3 plugin, NPA's always-present emulated path.
//
// Drives a vmxnet3's rings by the device ABI (defs.hpp), as Linux
// drivers/net/vmxnet3 and DPDK drivers/net/vmxnet3 do, so that the same plugin could drive
// the real device:
//   UP  attach is a driver's open: the probe (vmxnet3::probe: revision 1 and UPT revision 1
//       selected in VRRS/UVRS, the shared area stamped and registered at DSAL/DSAH), the
//       queue and misc configuration, ACTIVATE_DEV (its answer checked), GET_LINK, RX
//       buffers posted. detach: QUIESCE_DEV, every buffer back, RESET_DEV. link_up()
//       follows ECR.LINK (in the shared area's ecr) with GET_LINK; device_stats() reads
//       the UPT1 counters (GET_STATS).
//   TX  one descriptor per packet on the gen-bit TX ring; packets of up to
//       tx_data_copy_max bytes are copied into the TX data ring entry of their slot (the
//       device then reads descriptor and data from one place, one DMA saved); one
//       completion per packet (cq + eop), reaped from the TX completion ring.
//       Doorbell rule (Vmxnet3_TxQueueCtrl): the driver counts packets in txNumDeferred
//       and writes TXPROD only once it reaches the device-set txThreshold.
//       One slot is always left empty (as vmxnet3_cmd_ring_desc_avail), so that a stale
//       completion naming the slot just cleaned can never look valid.
//   RX  ring 1 holds head buffers, ring 2 spare body buffers for packets larger than a
//       head buffer; one completion ring for both (rqID tells the rings apart: qid for
//       ring 1, qid + numRxQueues for ring 2). RXPROD/RXPROD2 are written once after
//       activation, as Linux's vmxnet3_activate_dev does, and then only when the device
//       set updateRxProd (a ring then keeps one slot empty). A packet that spans buffers is dropped and counted: an
//       npa buffer is one segment. rx_drain_bound: a ring 1's worth, so a switch reads
//       everything the old device received before it lets go of it.
//   IRQ the layout is negotiated at attach (interrupts.hpp): GET_CONF_INTR's type and
//       mask mode, and the MSI-X vectors the binder enabled. MSI-X with enough vectors:
//       one per queue pair (txq and rxq intrIdx = q), the event vector last. INTx, MSI
//       or too few vectors: one vector for the queue pair and the events. Auto-masked by
//       the device when raised (mask mode AUTO), unmasked through IMR by irq_arm.
//       Moderation: the queue's minimum gap (queue_config::irq_moderation_us, or
//       set_irq_moderation at run time with UPDATE_IML) becomes its vector's
//       intrConf.modLevels level (vmxnet3_mod_level).
// Nothing the device writes is trusted: each completion is copied out (gen_consumer),
// and its type, ring id, index and length are checked against what this plugin posted
// before anything is touched. A violation is counted (bad_completion) and the entry
// ignored, or the packet dropped; no buffer is ever lost or handed over twice, and health()
// reports device_error from then on so the shell switches away.
//
// The plugin never reaches the control registers: its device_type (vmxnet3::window) has
// no MAC register, RX filter or UPDATE_* command. That is vmxnet3_control's job. Offload
// requests become descriptor fields, and completions' flags offload_info, in offload.hpp.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/plugins/vmxnet3/interrupts.hpp>
#include <npa/plugins/vmxnet3/offload.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/slot_ring.hpp>

#include <array>
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
/// RX ring 2 (body buffers) size: only packets larger than a head buffer use it, and an
/// npa head buffer already holds a full MTU frame, so the minimum ring size is plenty.
inline constexpr std::uint32_t rx_ring2_size = vmxnet3::RING_SIZE_ALIGN;
/// A completion naming a slot more than this fraction of the ring ahead of the oldest
/// posted buffer is treated as stale, not as "the device skipped that many": RX rings
/// are posted full, so a stale duplicate of the slot just cleaned would otherwise name
/// the whole ring.
inline constexpr std::uint32_t rx_max_skip_div = 2;
/// Interrupt moderation: the UPT1 levels are abstract (IML_NONE, 1 .. IML_HIGHEST, ADAPTIVE)
/// and the hypervisor picks each one's interval. A requested minimum gap is asked for as the
/// lowest level whose nominal gap, iml_level1_us << (level - 1), covers it (8 us .. 512 us).
inline constexpr std::uint32_t iml_level1_us = 8;
/// RSS indirection table entries: four per queue of the largest queue count, as Linux's
/// and DPDK's drivers size it (each entry names queue i mod n).
inline constexpr std::uint32_t rss_ind_table_size = 4 * vmxnet3::MAX_TX_QUEUES;
/// The Toeplitz key handed to the device: the widely used default key (the one Microsoft's
/// RSS verification suite and DPDK's PMDs use), so hashes can be checked from outside.
inline constexpr std::uint8_t rss_key[vmxnet3::rss::MAX_KEY_SIZE] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
} // namespace vmxnet3_tuning

/// Bytes of ring memory one queue pair needs, every ring base aligned to RING_BA_ALIGN.
[[nodiscard]] constexpr std::size_t vmxnet3_queue_bytes(std::uint32_t tx, std::uint32_t rx) noexcept {
    constexpr std::size_t a = vmxnet3::RING_BA_ALIGN;
    auto up = [](std::size_t n) { return (n + a - 1) / a * a; };
    const std::uint32_t rx2 = vmxnet3_tuning::rx_ring2_size;
    return up(std::size_t{tx} * 16) + up(std::size_t{tx} * vmxnet3::HDR_COPY_SIZE) +
           up(std::size_t{tx} * 16) + up(std::size_t{rx} * 16) + up(std::size_t{rx2} * 16) +
           up(std::size_t{rx + rx2} * 16);
}

/// The moderation level (Vmxnet3_IntrConf::modLevels) for a minimum gap between interrupts.
[[nodiscard]] constexpr std::uint8_t vmxnet3_mod_level(std::uint32_t gap_us) noexcept {
    if (gap_us == 0) {
        return vmxnet3::upt1::IML_NONE;
    }
    std::uint8_t level = 1;
    while (level < vmxnet3::upt1::IML_HIGHEST &&
           (vmxnet3_tuning::iml_level1_us << (level - 1)) < gap_us) {
        ++level;
    }
    return level;
}

template <class Api>
class vmxnet3_plugin {
public:
    using buffer_type = typename Api::buffer_type;
    using device_type = vmxnet3::window;
    static constexpr const char* name = "vmxnet3";
    static constexpr std::uint16_t max_queue_pairs = vmxnet3::MAX_TX_QUEUES;

    vmxnet3_plugin() noexcept = default;
    vmxnet3_plugin(const vmxnet3_plugin&) = delete;
    vmxnet3_plugin& operator=(const vmxnet3_plugin&) = delete;
    ~vmxnet3_plugin() = default;

    // ---- attach ---------------------------------------------------------------------
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        namespace v = vmxnet3;
        // step 1: check the request against the device before touching anything.
        if (!dev.bound()) {
            return {errc::invalid_argument, "vmxnet3: window not bound to a device"};
        }
        if (!dev.present()) {
            return {errc::removed, "vmxnet3: device removed"};
        }
        const v::device_profile& prof = dev.profile();
        if (qc.queues == 0 || qc.queues > prof.max_queues || qc.queues > max_queue_pairs ||
            2u * qc.queues > dev.queue_table_slots() || qc.queues + 1u > v::MAX_INTRS) {
            return {errc::invalid_argument, "vmxnet3: queue pairs outside 1..max_queues"};
        }
        const std::uint32_t t = qc.tx_ring_size, r = qc.rx_ring_size;
        if (!v::ring_size_ok(t, prof.max_ring_size) || !v::ring_size_ok(r, prof.max_ring_size)) {
            return {errc::invalid_argument,
                    "vmxnet3: ring sizes must be multiples of 32 up to the device maximum"};
        }
        if (qc.mtu < v::MIN_MTU || qc.mtu > prof.max_mtu) {
            return {errc::invalid_argument, "vmxnet3: MTU outside the device's range"};
        }
        if (dev.ring_area().size < vmxnet3_queue_bytes(t, r) * qc.queues) {
            return {errc::no_memory, "vmxnet3: ring memory too small for these ring sizes"};
        }
        // RSS over more than one queue: Linux's and DPDK's drivers hand the device a
        // UPT1_RSSConf whenever they ask for UPT1_F_RSS, over a power-of-two number of RX
        // queues (Linux rounds the count down, DPDK refuses any other).
        const bool rss = (qc.offloads & cap::rss) != 0 && qc.queues > 1 &&
                         (prof.upt_features & v::upt1::F_RSS) != 0;
        if (rss && (qc.queues & (qc.queues - 1u)) != 0) {
            return {errc::invalid_argument,
                    "vmxnet3: RSS over more than one queue pair needs a power-of-two count"};
        }
        if (rss && dev.rss_area(qc.queues).size == 0) {
            return {errc::no_memory, "vmxnet3: the queue descriptor block has no room for the "
                                     "RSS configuration (vmxnet3::queue_table_bytes)"};
        }
        // step 2: the probe: select revision 1 and UPT revision 1 (VRRS, UVRS), stamp the
        // shared area's header and register its address (DSAL, DSAH).
        if (const char* why = v::probe(dev); why != nullptr) {
            return {dev.present() ? errc::not_supported : errc::removed, why};
        }
        // step 2b: the interrupt layout (GET_CONF_INTR, the binder's vectors), decided once
        // here: the data path only reads the vector each queue was given.
        result<v::intr_layout> lay =
            v::decide_intr_layout(dev.conf_intr(), qc.queues, dev.irq_vectors());
        if (!lay) {
            return dev.present() ? lay.error() : status{errc::removed, "vmxnet3: device removed"};
        }
        layout_ = *lay;
        if (!layout_.auto_mask()) {
            api.log(log_level::warning, "vmxnet3: the device does not mask a vector as it raises "
                                        "it (mask mode active or lazy): an interrupt may come "
                                        "again while its queue is polled");
        }
        api_ = &api;
        dev_ = &dev;
        mtu_ = qc.mtu;
        offloads_ = qc.offloads & capabilities().offloads;
        trust_.reset();
        // step 3: lay out and zero every ring (no slot may look handed over), buf_info.
        std::byte* at = dev.ring_area().virt;
        const iova_t base = dev.ring_area().iova;
        auto carve = [&](std::size_t bytes, iova_t& iova) {
            std::byte* p = at;
            iova = base + static_cast<iova_t>(at - dev.ring_area().virt);
            at += (bytes + v::RING_BA_ALIGN - 1) / v::RING_BA_ALIGN * v::RING_BA_ALIGN;
            return p;
        };
        std::memset(dev.ring_area().virt, 0, vmxnet3_queue_bytes(t, r) * qc.queues);
        nq_ = qc.queues;
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            q = queue{};
            q.txd = dev.txq(i);
            q.rxd = dev.rxq(nq_, i);
            if (!q.tx_slots.reset(t) || !q.rx[0].slots.reset(r) ||
                !q.rx[1].slots.reset(vmxnet3_tuning::rx_ring2_size)) {
                release_all();
                return {errc::no_memory, "vmxnet3: cannot allocate buffer bookkeeping"};
            }
            iova_t tx_pa, data_pa, txc_pa, rx1_pa, rx2_pa, rxc_pa;
            q.tx.reset(reinterpret_cast<v::tx_desc*>(carve(t * 16ull, tx_pa)), t);
            q.data = reinterpret_cast<v::tx_data_desc*>(carve(std::size_t{t} * v::HDR_COPY_SIZE, data_pa));
            q.data_iova = data_pa;
            q.txc.reset(reinterpret_cast<v::tx_comp_desc*>(carve(t * 16ull, txc_pa)), t);
            const std::uint32_t r2 = vmxnet3_tuning::rx_ring2_size;
            q.rx[0].ring.reset(reinterpret_cast<v::rx_desc*>(carve(r * 16ull, rx1_pa)), r);
            q.rx[1].ring.reset(reinterpret_cast<v::rx_desc*>(carve(r2 * 16ull, rx2_pa)), r2);
            q.rxc.reset(reinterpret_cast<v::rx_comp_desc*>(carve((r + r2) * 16ull, rxc_pa)), r + r2);
            // step 4: the queue descriptors (Vmxnet3_TxQueueDesc / Vmxnet3_RxQueueDesc).
            std::memset(static_cast<void*>(q.txd), 0, sizeof(v::tx_queue_desc));
            std::memset(static_cast<void*>(q.rxd), 0, sizeof(v::rx_queue_desc));
            v::tx_queue_conf& tc = q.txd->conf;
            tc.txRingBasePA = tx_pa;
            tc.dataRingBasePA = data_pa;
            tc.compRingBasePA = txc_pa;
            tc.txRingSize = t;
            tc.dataRingSize = t;
            tc.compRingSize = t;
            q.vec = layout_.queue_vector(i);
            tc.intrIdx = q.vec;
            tc.txDataRingDescSize = v::HDR_COPY_SIZE;
            v::rx_queue_conf& rc = q.rxd->conf;
            rc.rxRingBasePA[0] = rx1_pa;
            rc.rxRingBasePA[1] = rx2_pa;
            rc.compRingBasePA = rxc_pa;
            rc.rxRingSize[0] = r;
            rc.rxRingSize[1] = r2;
            rc.compRingSize = r + r2;
            rc.intrIdx = q.vec;
        }
        // step 5: misc and interrupt configuration (Vmxnet3_MiscConf, Vmxnet3_IntrConf).
        v::misc_conf& m = dev.misc();
        m.driverInfo.version = 1;
        m.driverInfo.vmxnet3RevSpt = 1;
        m.driverInfo.uptVerSpt = 1;
        m.uptFeatures = upt_features(prof);
        m.queueDescPA = dev.queue_table_iova();
        m.queueDescLen = static_cast<std::uint32_t>(2u * nq_ * sizeof(v::tx_queue_desc));
        m.mtu = qc.mtu;
        m.maxNumRxSG = 1;
        m.numTxQueues = static_cast<std::uint8_t>(nq_);
        m.numRxQueues = static_cast<std::uint8_t>(nq_);
        write_rss_conf(dev, (m.uptFeatures & v::upt1::F_RSS) != 0);
        // Every vector stays masked in IMR until the shell arms its queue, so intrCtrl keeps
        // them all enabled (Linux sets IC_DISABLE_ALL before ACTIVATE_DEV and clears it as it
        // unmasks every vector after).
        v::intr_conf& ic = dev.intr();
        ic = {};
        ic.autoMask = layout_.auto_mask() ? 1 : 0;
        ic.numIntrs = layout_.num_intrs;
        ic.eventIntrIdx = layout_.event_idx;
        ic.intrCtrl = 0;
        for (std::uint32_t i = 0; i < layout_.num_intrs; ++i) {
            // Queue vectors are moderated as asked; an event vector of its own (link, errors)
            // is not. One shared vector is the queue's.
            ic.modLevels[i] = i != layout_.event_idx || layout_.shared
                                  ? vmxnet3_mod_level(qc.irq_moderation_us)
                                  : v::upt1::IML_NONE;
            dev.imr(i, true);
        }
        // step 6: ACTIVATE_DEV; the device answers 0 or refuses the configuration.
        if (dev.activate() != 0) {
            release_all();
            return {errc::device_error, "vmxnet3: the device refused ACTIVATE_DEV"};
        }
        // step 7: the link state (GET_LINK), as the driver checks it after activation.
        dev.ack_events(v::ecr::LINK);
        // relaxed: a snapshot of GET_LINK for health(); publishes nothing else
        link_.store(dev.link(), std::memory_order_relaxed);
        // step 8: post RX buffers on both rings (fewer if the pool is short: counted), and
        // tell the device where each ring's producer is whatever updateRxProd says, as
        // Linux's vmxnet3_activate_dev writes RXPROD and RXPROD2 after activation.
        for (std::uint16_t i = 0; i < nq_; ++i) {
            refill(i);
            for (std::uint32_t ri = 0; ri < 2; ++ri) {
                dev.rxprod(i, ri, q_[i].rx[ri].ring.next_to_fill());
            }
        }
        api.log(log_level::info, "vmxnet3: attached");
        return status::success();
    }

    // ---- tx_burst: reap if short of room, fill, doorbell by the deferral rule ---------
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        // One slot stays empty (vmxnet3_cmd_ring_desc_avail): see the file comment.
        if (q.tx_slots.free_slots() - 1 < vmxnet3_tuning::tx_reap_below) {
            (void)tx_reap(qi);
        }
        const std::uint32_t room = q.tx_slots.free_slots() - 1;
        const auto n = static_cast<std::uint16_t>(bufs.size() < room ? bufs.size() : room);
        q.stats.tx_ring_full += n < bufs.size() ? 1 : 0;
        std::uint32_t deferred = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            const buffer_type b = bufs[i];
            const offload_info ol = b.offload();
            const bool tso_asked = (ol.flags & ol::tx_tso) != 0 && (offloads_ & cap::tso) != 0 &&
                                   ol.tso_mss != 0;
            const bool tso = tso_asked && vmxnet3::tso_request_ok(ol);
            const std::uint32_t len = b.length();
            // A TSO request without its header lengths is refused: hlen 0 is no request a
            // device can segment by.
            if (len < 14 || len >= vmxnet3::MAX_TX_BUF_SIZE || (!tso && len > mtu_ + 18) ||
                tso != tso_asked) {
                ++q.stats.tx_errors;  // no frame the device may carry: refuse it, hand it back
                api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            const std::uint32_t slot = q.tx.next_to_fill();
            vmxnet3::tx_desc d{};
            if (len <= vmxnet3_tuning::tx_data_copy_max) {
                std::memcpy(q.data[slot].data, b.data(), len);
                d.addr = q.data_iova + std::uint64_t{slot} * vmxnet3::HDR_COPY_SIZE;
            } else {
                d.addr = b.iova();
            }
            vmxnet3::tx_desc::len::set(d.dword2, len);
            vmxnet3::set_tx_offload(d, ol, offloads_, tso);
            vmxnet3::tx_desc::eop::set(d.dword3, 1);
            vmxnet3::tx_desc::cq::set(d.dword3, 1);
            q.tx_slots.fill(b);
            q.tx.produce(d);
            // TSO counts each segment the device will send (as Linux counts gso_segs).
            deferred += tso ? (len + ol.tso_mss - 1) / ol.tso_mss : 1;
        }
        if (deferred != 0) {
            // Relaxed: txNumDeferred and txThreshold are a counter and a limit in shared
            // memory that carry no data; the descriptors are published by produce()'s
            // release store and by the TXPROD write, not by these words. Only this queue's
            // TX thread writes txNumDeferred once the queue runs.
            le32& nd = q.txd->ctrl.txNumDeferred;
            // relaxed: a counter (see above)
            const std::uint32_t total = nd.load(std::memory_order_relaxed) + deferred;
            // relaxed: a limit the device set at activation (see above)
            const std::uint32_t threshold = q.txd->ctrl.txThreshold.load(std::memory_order_relaxed);
            if (total >= threshold) {
                nd.store(0, std::memory_order_relaxed); // relaxed: a counter
                // The doorbell: the descriptors' release stores (produce()) come before it,
                // and the platform's TXPROD write orders them for the device (see window.hpp).
                dev_->txprod(qi, q.tx.next_to_fill());
            } else {
                nd.store(total, std::memory_order_relaxed); // relaxed: a counter
            }
        }
        return n;
    }

    // ---- tx_reap: one completion per packet, txdIdx = its EOP slot ---------------------
    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        if (!q.tx_slots) {
            return 0;
        }
        std::uint32_t done = 0;
        vmxnet3::tx_comp_desc c;
        while (q.txc.poll_past_stale(c, [&] { trust_.distrust(q.stats); })) {
            const std::uint32_t idx = vmxnet3::tx_comp_desc::txdIdx::get(c.dword0);
            const std::uint32_t skip = q.tx_slots.completion_skip(idx);
            if (vmxnet3::tx_comp_desc::type::get(c.dword3) != vmxnet3::cdtype::TXCOMP ||
                skip == not_filled) {
                trust_.distrust(q.stats);  // out of range, stale, duplicated or invented: ignore it
                continue;
            }
            if (skip != 0) {
                // Earlier packets without a completion of their own: the device took them
                // but never said so. Counted, and returned with this one.
                trust_.distrust(q.stats);
                q.stats.tx_errors += skip;
            }
            ++q.stats.tx_packets;
            q.stats.tx_bytes += q.tx_slots[idx].length();
            q.tx_slots.give_back(skip + 1,
                                 [&](std::span<const buffer_type> s) { api_->tx_complete(qi, s); });
            done += skip + 1;
        }
        return done;
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t qi) const noexcept {
        return q_[qi].tx_slots.in_flight();
    }

    /// The most packets queue qi's device can hold received and not yet read: one per
    /// ring 1 (head) buffer. The shell reads the old path's RX during a switch until a
    /// short burst or this many, whatever the clock says: without it the drain timeout
    /// ended that read, and what the device held was lost with the detach (on QEMU under
    /// TCG a data-path round is longer than the timeout; docs/real-devices.md).
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t qi) const noexcept {
        return qi < nq_ ? q_[qi].rx[0].slots.size() : 0;
    }

    // ---- rx_burst: snapshot, validate, deliver, refill ---------------------------------
    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        if (!q.tx_slots) {
            return 0;
        }
        std::uint16_t n = 0;
        vmxnet3::rx_comp_desc c;
        using rcd = vmxnet3::rx_comp_desc;
        // A stale completion slot followed by a fresh one is skipped (and distrusted).
        while (n < out.size() && q.rxc.poll_past_stale(c, [&] { trust_.distrust(q.stats); })) {
            // Which ring: rqID is qid for ring 1, qid + numRxQueues for ring 2.
            const std::uint32_t rq = rcd::rqID::get(c.dword0);
            const std::uint32_t ri = rq == qi ? 0 : rq == std::uint32_t{qi} + nq_ ? 1 : 2;
            // type: VMware's device writes RXCOMP; QEMU's leaves it 0 (Linux's and DPDK's
            // drivers look at it only for LRO, which this plugin never enables).
            const std::uint32_t type = rcd::type::get(c.dword3);
            if (ri == 2 || (type != vmxnet3::cdtype::RXCOMP && type != 0)) {
                trust_.distrust(q.stats);  // a ring never configured, or not an RX completion
                continue;
            }
            slot_ring<buffer_type>& ring = q.rx[ri].slots;
            const std::uint32_t skip = ring.completion_skip(rcd::rxdIdx::get(c.dword0));
            if (skip == not_filled || skip > ring.size() / vmxnet3_tuning::rx_max_skip_div) {
                trust_.distrust(q.stats);
                continue;
            }
            if (skip != 0) {
                // The device passed over earlier buffers without using them: legal, and no
                // frame was lost (Linux's vmxnet3_rq_rx_complete moves next2comp to the
                // completed slot and posts the skipped ones again). They go back to the
                // pool; refill() posts fresh ones in their slots.
                ring.give_back(skip, release_rx(qi));
            }
            const buffer_type b = ring.take();
            const bool sop = rcd::sop::get(c.dword0) != 0, eop = rcd::eop::get(c.dword0) != 0;
            const std::uint32_t len = rcd::len::get(c.dword2);
            if (q.dropping || !sop || !eop || ri != 0) {
                // Part of a packet that spans buffers (an npa buffer is one segment), or a
                // body buffer with no head: dropped, the buffer goes back to the pool.
                if (!q.dropping && (!sop || ri != 0)) {
                    trust_.distrust(q.stats);  // a packet must start in a ring 1 head buffer
                } else if (!q.dropping) {
                    ++q.stats.rx_dropped;
                }
                q.dropping = !eop && (q.dropping || sop);
                release_rx(qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            if (len == 0 && rcd::err::get(c.dword2) == 0) {
                // A buffer the device passed over and handed back unused: no frame was lost
                // (Linux's vmxnet3_rq_rx_complete recycles it); it goes back to the pool.
                release_rx(qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            if (rcd::err::get(c.dword2) != 0 || len < 14 || len > posted_len(b)) {
                if (rcd::err::get(c.dword2) == 0) {
                    trust_.distrust(q.stats);  // a length the buffer cannot hold: never read past it
                }
                ++q.stats.rx_dropped;
                release_rx(qi)(std::span<const buffer_type>(&b, 1));
                continue;
            }
            b.set_length(len);
            b.set_offload(vmxnet3::rx_offload(c));
            out[n++] = b;
            ++q.stats.rx_packets;
            q.stats.rx_bytes += len;
        }
        refill(qi);
        return n;
    }

    // ---- detach: quiesce, hand every buffer back, reset -------------------------------
    void detach() noexcept {
        if (dev_ != nullptr && nq_ != 0) {
            dev_->quiesce();  // step 1: after this the device writes nothing more
            for (std::uint32_t i = 0; i < layout_.num_intrs; ++i) {
                dev_->imr(i, true);
            }
        }
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            if (q.tx_slots) {
                (void)tx_reap(i);  // step 2: what the device confirmed goes back completed
                // step 3: what it took but never confirmed goes back unsent, oldest first
                q.tx_slots.give_back(q.tx_slots.in_flight(), [&](std::span<const buffer_type> s) {
                    api_->tx_unsent(i, s);
                });
            }
            for (rx_ring& ring : q.rx) {  // step 4: posted RX buffers go back to the shell
                ring.slots.give_back(ring.slots.in_flight(), release_rx(i));
            }
        }
        if (dev_ != nullptr && nq_ != 0) {
            dev_->reset(); // step 5: RESET_DEV, the device forgets these rings
        }
        release_all();
    }

    void irq_arm(std::uint16_t qi) noexcept { dev_->imr(q_[qi].vec, false); }
    void irq_disarm(std::uint16_t qi) noexcept { dev_->imr(q_[qi].vec, true); }
    /// The interrupt layout attach programmed (interrupts.hpp): which vector each queue and
    /// the events raise, whether the device masks them, and INTx (the binder reads ICR).
    [[nodiscard]] const vmxnet3::intr_layout& irq_layout() const noexcept { return layout_; }
    /// Changes queue qi's interrupt moderation (control thread): the level for `gap_us`
    /// goes into its vector's intrConf.modLevels and UPDATE_IML makes the device read it.
    /// Like Linux's driver, nothing reads CMD after the command; a device gone meanwhile
    /// puts the old level back.
    [[nodiscard]] status set_irq_moderation(std::uint16_t qi, std::uint32_t gap_us) noexcept {
        if (dev_ == nullptr || qi >= nq_) {
            return {errc::bad_state, "vmxnet3: no such attached queue"};
        }
        std::uint8_t& level = dev_->intr().modLevels[q_[qi].vec];
        const std::uint8_t old = level;
        level = vmxnet3_mod_level(gap_us);
        dev_->update_iml();
        if (!dev_->present()) {
            level = old;
            return {errc::removed, "vmxnet3: device removed"};
        }
        return status::success();
    }
    /// The moderation level queue qi's vector is configured with.
    [[nodiscard]] std::uint8_t irq_moderation_level(std::uint16_t qi) const noexcept {
        return dev_ != nullptr && qi < nq_ ? dev_->intr().modLevels[q_[qi].vec]
                                           : vmxnet3::upt1::IML_NONE;
    }

    /// What the device offers (its profile), as npa capabilities. Before attach: nothing.
    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        npa::capabilities c{};
        if (dev_ == nullptr) {
            c.max_queues = 1;
            return c;
        }
        const vmxnet3::device_profile& p = dev_->profile();
        c.offloads = (p.tx_csum ? cap::tx_l4_csum : 0u) | (p.tso ? cap::tso : 0u) |
                     (p.vlan_insert ? cap::vlan_insert : 0u) |
                     ((p.upt_features & vmxnet3::upt1::F_RXCSUM) != 0 ? cap::rx_csum : 0u) |
                     ((p.upt_features & vmxnet3::upt1::F_RXVLAN) != 0 ? cap::vlan_strip : 0u) |
                     ((p.upt_features & vmxnet3::upt1::F_RSS) != 0 ? cap::rss : 0u) |
                     cap::vlan_filter;
        c.max_queues = p.max_queues < max_queue_pairs ? p.max_queues : max_queue_pairs;
        c.min_ring_size = vmxnet3::RING_SIZE_ALIGN;
        c.max_ring_size = p.max_ring_size;
        c.min_mtu = vmxnet3::MIN_MTU;
        c.max_mtu = p.max_mtu;
        return c;
    }

    [[nodiscard]] const queue_stats& stats(std::uint16_t qi) const noexcept { return q_[qi].stats; }

    /// The device's own counters for queue qi (UPT1_TxStats, UPT1_RxStats in the queue
    /// descriptors), fresh from GET_STATS. Control thread; zeros when qi is not attached.
    struct device_queue_stats {
        vmxnet3::upt1::tx_stats tx{};
        vmxnet3::upt1::rx_stats rx{};
    };
    [[nodiscard]] device_queue_stats device_stats(std::uint16_t qi) noexcept {
        if (dev_ == nullptr || qi >= nq_ || !dev_->present()) {
            return {};
        }
        dev_->update_stats();
        return {q_[qi].txd->stats, q_[qi].rxd->stats};
    }

    /// Link state, as the device last answered GET_LINK (bit 0 up, bits 16..31 Mbit/s). A
    /// link event (ECR.LINK) is acknowledged and the link asked again. Control thread.
    [[nodiscard]] bool link_up() noexcept {
        if (dev_ == nullptr || !dev_->present()) {
            return false;
        }
        if ((dev_->ecr() & vmxnet3::ecr::LINK) != 0) {
            dev_->ack_events(vmxnet3::ecr::LINK);
            // relaxed: as at attach (a snapshot; publishes nothing else)
            link_.store(dev_->link(), std::memory_order_relaxed);
        }
        return (link_.load(std::memory_order_relaxed) & 1u) != 0;  // relaxed: a snapshot
    }
    /// The speed GET_LINK reported, Mbit/s (0 while down).
    [[nodiscard]] std::uint32_t link_speed_mbps() const noexcept {
        const std::uint32_t l = link_.load(std::memory_order_relaxed);  // relaxed: a snapshot
        return (l & 1u) != 0 ? l >> 16 : 0;
    }

    /// removed: the device reads all ones (VRRS). device_error: the device reported a queue
    /// error (ECR TQERR/RQERR) or wrote something this plugin had to reject.
    [[nodiscard]] errc health() const noexcept {
        if (dev_ == nullptr) {
            return errc::ok;
        }
        if (!dev_->present()) {
            return errc::removed;
        }
        if (trust_.distrusted() ||
            (dev_->ecr() & (vmxnet3::ecr::TQERR | vmxnet3::ecr::RQERR)) != 0) {
            return errc::device_error;
        }
        return errc::ok;
    }

private:
    static constexpr std::uint32_t not_filled = slot_ring<buffer_type>::not_filled;
    struct rx_ring {
        gen_producer<vmxnet3::rx_traits> ring;
        slot_ring<buffer_type> slots;  // buf_info: the buffer posted in each slot
    };
    struct queue {
        gen_producer<vmxnet3::tx_traits> tx;
        gen_consumer<vmxnet3::tx_comp_traits> txc;
        vmxnet3::tx_data_desc* data = nullptr;
        iova_t data_iova = 0;
        slot_ring<buffer_type> tx_slots;  // buf_info of the TX ring
        std::array<rx_ring, 2> rx{};
        gen_consumer<vmxnet3::rx_comp_traits> rxc;
        bool dropping = false;  // inside a multi-buffer packet being dropped
        std::uint8_t vec = 0;   // the interrupt vector this queue pair raises (intrIdx)
        vmxnet3::tx_queue_desc* txd = nullptr;
        vmxnet3::rx_queue_desc* rxd = nullptr;
        queue_stats stats{};
    };

    std::uint64_t upt_features(const vmxnet3::device_profile& p) const noexcept {
        std::uint64_t f = 0;
        f |= (offloads_ & cap::rx_csum) != 0 ? vmxnet3::upt1::F_RXCSUM : 0;
        f |= (offloads_ & cap::vlan_strip) != 0 ? vmxnet3::upt1::F_RXVLAN : 0;
        f |= (offloads_ & cap::rss) != 0 && nq_ > 1 ? vmxnet3::upt1::F_RSS : 0;
        return f & p.upt_features;
    }

    // With RSS: IPv4 and IPv6 hashed with their TCP ports, by Toeplitz, the entries
    // spreading hashes over the queues in turn (Linux's vmxnet3_setup_driver_shared).
    // Without it the descriptor is cleared, so no configuration of an earlier attach
    // stays named.
    void write_rss_conf(vmxnet3::window& dev, bool on) const noexcept {
        namespace v = vmxnet3;
        v::var_len_conf_desc& d = dev.rss_conf_desc();
        d = {};
        if (!on) {
            return;
        }
        const v::dma_block a = dev.rss_area(nq_);  // checked at attach
        v::rss_conf c{};
        c.hashType = v::rss::HASH_IPV4 | v::rss::HASH_TCP_IPV4 | v::rss::HASH_IPV6 |
                     v::rss::HASH_TCP_IPV6;
        c.hashFunc = v::rss::FUNC_TOEPLITZ;
        c.hashKeySize = v::rss::MAX_KEY_SIZE;
        c.indTableSize = vmxnet3_tuning::rss_ind_table_size;
        std::memcpy(c.hashKey, vmxnet3_tuning::rss_key, sizeof c.hashKey);
        for (std::uint32_t i = 0; i < vmxnet3_tuning::rss_ind_table_size; ++i) {
            c.indTable[i] = static_cast<std::uint8_t>(i % nq_);
        }
        std::memcpy(a.virt, &c, sizeof c);
        d.confVer = v::rss::CONF_VERSION;
        d.confLen = sizeof c;
        d.confPA = a.iova;
    }

    static std::uint32_t posted_len(const buffer_type& b) noexcept {
        const std::uint32_t cap = b.capacity();
        return cap < vmxnet3::MAX_RX_BUF_SIZE ? cap : vmxnet3::MAX_RX_BUF_SIZE;
    }

    // Posts a buffer on every free slot of both rings; the doorbells only when the device
    // asked for them (updateRxProd). With updateRxProd a ring keeps one slot empty, so
    // that the producer index tells a full ring from an empty one (Linux's and DPDK's
    // drivers always leave it; a device that does not read RXPROD goes by the gen bits).
    void refill(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        const std::atomic_ref<std::uint8_t> update_rx_prod(q.rxd->ctrl.updateRxProd);
        // relaxed: the device sets updateRxProd during ACTIVATE_DEV (attach, step 6, a
        // synchronous command), before any refill: attach's own on this thread, the
        // queues' after the epoch that starts them (release/acquire)
        const bool doorbell = update_rx_prod.load(std::memory_order_relaxed) != 0;
        for (std::uint32_t ri = 0; ri < 2; ++ri) {
            rx_ring& ring = q.rx[ri];
            const std::uint32_t keep_empty = doorbell ? 1 : 0;
            if (ring.slots.free_slots() <= keep_empty) {
                continue;
            }
            const std::uint32_t want = ring.slots.free_slots() - keep_empty;
            const std::uint32_t got = ring.slots.refill(
                want, [&](std::span<buffer_type> s) { return api_->alloc_rx_buffers(qi, s); },
                [&](std::uint32_t, const buffer_type& b) {
                    vmxnet3::rx_desc d{};
                    d.addr = b.iova();
                    vmxnet3::rx_desc::len::set(d.dword2, posted_len(b));
                    vmxnet3::rx_desc::btype_::set(d.dword2, ri == 0 ? vmxnet3::btype::HEAD
                                                                    : vmxnet3::btype::BODY);
                    ring.ring.produce(d);
                });
            q.stats.rx_no_buffer += ri == 0 ? want - got : 0;
            if (got != 0 && doorbell) {
                dev_->rxprod(qi, ri, ring.ring.next_to_fill());
            }
        }
    }

    auto release_rx(std::uint16_t qi) noexcept {
        return [this, qi](std::span<const buffer_type> s) { api_->release_rx_buffers(qi, s); };
    }

    void release_all() noexcept {
        for (std::uint16_t i = 0; i < nq_; ++i) {
            q_[i].tx_slots.release();
            q_[i].rx[0].slots.release();
            q_[i].rx[1].slots.release();
        }
        nq_ = 0;
    }

    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    std::uint32_t mtu_ = 1500;
    std::uint32_t offloads_ = 0;
    trust_latch trust_;  // something impossible was read: health() says device_error
    vmxnet3::intr_layout layout_{};  // negotiated at attach
    std::atomic<std::uint32_t> link_{0}; // the last GET_LINK answer
    std::array<queue, max_queue_pairs> q_{};
};

} // namespace npa
