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
//   TX  tx.hpp (vmxnet3_txq): one descriptor per packet, small ones through the TX data
//       ring, one completion per packet; TXPROD by the txNumDeferred/txThreshold rule.
//   RX  rx.hpp (vmxnet3_rxq): head buffers on ring 1, body buffers on ring 2, one
//       completion ring for both; a packet that spans buffers is dropped and counted.
//       rx_drain_bound: a ring 1's worth, so a switch reads everything the old device
//       received before it lets go of it.
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
#include <npa/plugins/vmxnet3/rx.hpp>
#include <npa/plugins/vmxnet3/tx.hpp>
#include <npa/plugins/vmxnet3/window.hpp>
#include <npa/ring/slot_ring.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
// (the TX and RX engines' own are at the top of tx.hpp and rx.hpp)
namespace vmxnet3_tuning {
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
            q.tx.txd = dev.txq(i);
            q.rx.rxd = dev.rxq(nq_, i);
            if (!q.tx.slots.reset(t) || !q.rx.rings[0].slots.reset(r) ||
                !q.rx.rings[1].slots.reset(vmxnet3_tuning::rx_ring2_size)) {
                release_all();
                return {errc::no_memory, "vmxnet3: cannot allocate buffer bookkeeping"};
            }
            iova_t tx_pa, data_pa, txc_pa, rx1_pa, rx2_pa, rxc_pa;
            q.tx.ring.reset(reinterpret_cast<v::tx_desc*>(carve(t * 16ull, tx_pa)), t);
            q.tx.data = reinterpret_cast<v::tx_data_desc*>(carve(std::size_t{t} * v::HDR_COPY_SIZE, data_pa));
            q.tx.data_iova = data_pa;
            q.tx.comp.reset(reinterpret_cast<v::tx_comp_desc*>(carve(t * 16ull, txc_pa)), t);
            const std::uint32_t r2 = vmxnet3_tuning::rx_ring2_size;
            q.rx.rings[0].ring.reset(reinterpret_cast<v::rx_desc*>(carve(r * 16ull, rx1_pa)), r);
            q.rx.rings[1].ring.reset(reinterpret_cast<v::rx_desc*>(carve(r2 * 16ull, rx2_pa)), r2);
            q.rx.comp.reset(reinterpret_cast<v::rx_comp_desc*>(carve((r + r2) * 16ull, rxc_pa)), r + r2);
            // step 4: the queue descriptors (Vmxnet3_TxQueueDesc / Vmxnet3_RxQueueDesc).
            std::memset(static_cast<void*>(q.tx.txd), 0, sizeof(v::tx_queue_desc));
            std::memset(static_cast<void*>(q.rx.rxd), 0, sizeof(v::rx_queue_desc));
            v::tx_queue_conf& tc = q.tx.txd->conf;
            tc.txRingBasePA = tx_pa;
            tc.dataRingBasePA = data_pa;
            tc.compRingBasePA = txc_pa;
            tc.txRingSize = t;
            tc.dataRingSize = t;
            tc.compRingSize = t;
            q.vec = layout_.queue_vector(i);
            tc.intrIdx = q.vec;
            tc.txDataRingDescSize = v::HDR_COPY_SIZE;
            v::rx_queue_conf& rc = q.rx.rxd->conf;
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
            q_[i].rx.refill(api, dev, i, q_[i].stats);
            for (std::uint32_t ri = 0; ri < 2; ++ri) {
                dev.rxprod(i, ri, q_[i].rx.rings[ri].ring.next_to_fill());
            }
        }
        api.log(log_level::info, "vmxnet3: attached");
        return status::success();
    }

    // ---- the data path: each queue's engines (tx.hpp, rx.hpp) -------------------------
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        return q.tx.burst(*api_, *dev_, qi, bufs, offloads_, mtu_, q.stats, trust_);
    }

    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        queue& q = q_[qi];
        return q.tx.reap(*api_, qi, q.stats, trust_);
    }

    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t qi) const noexcept {
        return q_[qi].tx.slots.in_flight();
    }

    /// The most packets queue qi's device can hold received and not yet read: one per
    /// ring 1 (head) buffer. The shell reads the old path's RX during a switch until a
    /// short burst or this many, whatever the clock says: without it the drain timeout
    /// ended that read, and what the device held was lost with the detach (on QEMU under
    /// TCG a data-path round is longer than the timeout; docs/real-devices.md).
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t qi) const noexcept {
        return qi < nq_ ? q_[qi].rx.rings[0].slots.size() : 0;
    }

    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        if (!q.tx.slots) {  // not attached: attach sets up all of a queue's rings or none
            return 0;
        }
        return q.rx.burst(*api_, *dev_, qi, nq_, out, q.stats, trust_);
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
            if (q.tx.slots) {
                (void)tx_reap(i);  // step 2: what the device confirmed goes back completed
                // step 3: what it took but never confirmed goes back unsent, oldest first
                q.tx.slots.give_back(q.tx.slots.in_flight(), [&](std::span<const buffer_type> s) {
                    api_->tx_unsent(i, s);
                });
            }
            for (auto& ring : q.rx.rings) {  // step 4: posted RX buffers go back to the shell
                ring.slots.give_back(ring.slots.in_flight(), rxq::release(*api_, i));
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
        return {q_[qi].tx.txd->stats, q_[qi].rx.rxd->stats};
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
    using rxq = vmxnet3_rxq<Api>;
    struct queue {
        vmxnet3_txq<Api> tx;
        rxq rx;
        std::uint8_t vec = 0;   // the interrupt vector this queue pair raises (intrIdx)
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

    void release_all() noexcept {
        for (std::uint16_t i = 0; i < nq_; ++i) {
            q_[i].tx.slots.release();
            q_[i].rx.rings[0].slots.release();
            q_[i].rx.rings[1].slots.release();
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
