// npa/plugins/virtio_net/plugin.hpp: the virtio-net plugin (virtio 1.2 section 5.1) over
// split virtqueues (npa/virtio/split_ring.hpp), or packed ones (npa/virtio/packed_ring.hpp)
// when the device offers VIRTIO_F_RING_PACKED, reaching its device through a transport
// (npa/virtio/transport.hpp) so that the sim, virtio-pci and vhost-user carry it alike.
// A transport offers RING_PACKED only when its user asked for packed rings (vhost-user:
// net_config::packed_ring, as DPDK's packed_vq=1), so split rings stay the default.
//
//   UP  attach is the driver initialisation of 3.1.1: reset, ACKNOWLEDGE, DRIVER, the
//       features (VERSION_1 required; MRG_RXBUF, IN_ORDER, CSUM, HOST_TSO4/6, GUEST_CSUM,
//       MTU, MAC, STATUS, MQ, RING_PACKED, ACCESS_PLATFORM and ORDER_PLATFORM (the rings
//       then use DMA barriers, npa/virtio/barriers.hpp) taken when offered and
//       wanted, IN_ORDER with either layout, see RINGS; CTRL_VQ and
//       its commands when the window carries the shell's control hook, and MQ only with
//       CTRL_VQ, 5.1.3.1), FEATURES_OK read back, the queues (receiveq 2q, transmitq
//       2q+1, vector q; the controlq through the hook, which the plugin never sends on),
//       DRIVER_OK, the hook's start (with MQ, VQ_PAIRS_SET before any pair but the first
//       is used, 5.1.6.5.5), RX buffers posted. detach: reset (the device stops writing), completed TX back,
//       the rest of TX back unsent in order, RX back.
//   RINGS split (2.7): descriptor table, available and used rings in one block per queue.
//       Packed (2.8, with RING_PACKED): a 16-byte descriptor ring, then the driver's and
//       the device's event suppression areas (4 bytes each) in one block per queue. Both
//       sit behind virtio::ring_driver (ring_driver.hpp), so TX, RX and the checks
//       below are written once. IN_ORDER is taken on both, and on every queue a used
//       entry (packed: used descriptor) may stand for a batch: it names the batch's last
//       buffer, and on a packed ring the driver skips the batch's positions itself
//       (packed_driver). The buffers before the last were used completely (virtio 1.2
//       2.7.9, 2.8's in-order use of descriptors), so a receiveq's come back with the whole
//       length posted, header included, as Linux's in-order driver reads them; each is
//       then read as any buffer (RX below). EVENT_IDX is
//       taken on both layouts and behaves alike (IRQ): on a packed ring the hints are the event
//       suppression areas (2.8.10) in RING_EVENT_FLAGS_DESC mode, off_wrap naming a ring
//       position and its lap where a split ring names a 16-bit index.
//   TX  tx.hpp (virtio_net_txq): one descriptor per frame: the 12-byte virtio_net_hdr_v1 is written into the
//       buffer's headroom, so the device reads header and frame from one buffer. Checksum
//       and TSO requests become NEEDS_CSUM / gso_type (offload.hpp). A buffer without 12 bytes of
//       headroom, or a frame outside the MTU, is refused and counted (tx_errors).
//   RX  rx.hpp (virtio_net_rxq): one descriptor per buffer, 12 bytes in front of its data for the header. Every
//       buffer holds an MTU frame, so a device needs one buffer per frame. MRG_RXBUF is
//       taken (a device without it needs buffers for 64 KiB frames once it offers GUEST
//       TSO, 5.1.6.3.1; GUEST TSO is never taken). Without it every buffer must hold the
//       largest frame the device may send (its MTU with the Ethernet header and a VLAN
//       tag, 5.1.4.2): attach refuses a pool whose buffers are smaller, naming the sizes,
//       and a smaller buffer is never posted. A frame it spreads over num_buffers buffers fills each but the
//       last completely, so it is larger than one npa buffer (one segment): it is taken
//       off the ring, dropped and counted, as vmxnet3's plugin drops a frame spanning its
//       rings. A partial checksum (NEEDS_CSUM, with GUEST_CSUM) is completed (offload.hpp), so
//       the shell never sees one.
//   IRQ one vector per queue pair; irq_arm/irq_disarm unmask and mask it. Without
//       EVENT_IDX the rings never suppress interrupts (no NO_INTERRUPT), so a masked vector
//       latches what arrived and unmasking delivers it (NAPI's contract). With EVENT_IDX
//       (taken when offered, 2.7.10 and 2.8.10) each receiveq's used_event (packed: the
//       driver's off_wrap) is moved to the last entry read (packed: the next used position)
//       when an rx_burst finds the ring empty (and the ring polled again if an entry came
//       in between: its interrupt may have been suppressed), so the device interrupts once
//       for the first entry after a poll, not for each entry; a transmitq's used_event
//       stays where it is (index 0; packed: position 0 of lap 1, TX is reaped by
//       polling). Kicks follow the device's avail_event (packed: its off_wrap, wrap-aware).
// Nothing the device writes is trusted: used->idx, each used id (a head this plugin
// handed over and has not had back; on a packed ring the used descriptor's buffer id,
// and an unknown one leaves the ring broken: how far to skip is unknown), each length (no more than the buffer), num_buffers
// (1 without MRG_RXBUF, at most what the ring holds, every piece present) are checked
// before anything is touched; a violation is counted (bad_completion, rx_dropped), no
// buffer is lost, and health() reports device_error from then on. With IN_ORDER an
// entry may stand for a batch (virtio 1.2 2.7.9: the id of the batch's last chain,
// used->idx moved by the batch; 2.8: the last buffer's id, its positions skipped): every
// chain up to it completes, as Linux's in-order driver takes it (a reordered pair of
// entries then reads as a batch: the spec cannot tell them apart, and on a split ring the
// second entry names a buffer already back, a violation). A receiveq's batch hands up
// each earlier buffer full, its frame the posted length less the header: without
// MRG_RXBUF a frame per buffer, with it num_buffers in the first buffer's header says how
// many buffers (of this batch or the next entries) the frame spans. Only the batch's last
// length is the device's word, checked as any. A split entry that names a later chain
// without used->idx having moved past the chains before it passes over them: TX through
// tx_complete, counted in tx_errors and bad_completion, as the plugin contract asks; RX
// buffers are counted as dropped but held until detach, since the device may still write
// them. After any
// violation no more RX buffers are posted (see rx.hpp, refill()) and none is delivered: what the
// device hands back is held until detach, as the device may have lied about it too.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/detail/reason_text.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/rx.hpp>
#include <npa/plugins/virtio_net/tx.hpp>
#include <npa/plugins/virtio_net/vq.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/virtio/ring_driver.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
// (the TX and RX engines' own are at the top of tx.hpp and rx.hpp)
namespace virtio_net_tuning {
/// Each virtqueue's block starts at a multiple of this (the spec asks 16 of the
/// descriptor table; a cache line keeps two queues' rings off one line).
inline constexpr std::size_t vq_align = 64;
} // namespace virtio_net_tuning

/// Bytes of one virtqueue's block: split (2.7, layout_of) or packed (2.8,
/// packed_layout_of), rounded to vq_align.
[[nodiscard]] constexpr std::size_t virtio_net_vq_bytes(std::uint32_t n, bool packed) noexcept {
    constexpr std::size_t a = virtio_net_tuning::vq_align;
    const std::size_t b = packed ? virtio::packed_layout_of(n).total : virtio::layout_of(n).total;
    return (b + a - 1) / a * a;
}
/// Bytes of ring memory one queue pair needs (its receiveq and transmitq blocks).
[[nodiscard]] constexpr std::size_t virtio_net_queue_bytes(std::uint32_t tx, std::uint32_t rx,
                                                           bool packed = false) noexcept {
    return virtio_net_vq_bytes(rx, packed) + virtio_net_vq_bytes(tx, packed);
}
// A block starts at vq_align, so packed_layout_of's areas are aligned as 2.8.10 asks.
static_assert(virtio_net_tuning::vq_align % virtio::packed_desc_align == 0);

template <class Api>
class virtio_net_plugin {
public:
    using buffer_type = typename Api::buffer_type;
    using device_type = virtio_net::window;
    static constexpr const char* name = "virtio-net";
    static constexpr std::uint16_t max_queue_pairs = 8;

    virtio_net_plugin() noexcept = default;
    virtio_net_plugin(const virtio_net_plugin&) = delete;
    virtio_net_plugin& operator=(const virtio_net_plugin&) = delete;
    ~virtio_net_plugin() = default;

    // ---- attach: the initialisation sequence of 3.1.1 -----------------------------------
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        namespace vn = virtio_net;
        using virtio::status_bit::ACKNOWLEDGE, virtio::status_bit::DRIVER;
        // step 0: the request against what cannot change.
        if (!dev.bound()) {
            return {errc::invalid_argument, "virtio-net: window not bound to a device"};
        }
        if (!dev.present()) {
            return {errc::removed, "virtio-net: device removed"};
        }
        if (qc.queues == 0 || qc.queues > max_queue_pairs) {
            return {errc::invalid_argument, "virtio-net: queue pairs outside 1..8"};
        }
        if (!virtio::queue_size_ok(qc.tx_ring_size) || !virtio::queue_size_ok(qc.rx_ring_size)) {
            return {errc::invalid_argument, "virtio-net: ring sizes must be powers of two up to 32768"};
        }
        const virtio::transport& t = dev.transport();
        // step 1: reset; the device must read back 0 (4.1.4.3.2).
        t.set_status(0);
        if (t.status() != 0) {
            return {errc::device_error, "virtio-net: the device did not reset"};
        }
        // step 2: ACKNOWLEDGE, DRIVER.
        t.set_status(ACKNOWLEDGE);
        t.set_status(ACKNOWLEDGE | DRIVER);
        // step 3: features. VERSION_1 is the ABI this plugin speaks (12-byte header,
        // little-endian rings); ACCESS_PLATFORM must be taken when offered (buffers are
        // handed over by device address, so an IOMMU in between changes nothing here);
        // ORDER_PLATFORM is taken when offered, as Linux's vring_transport_features keeps
        // it: a device in hardware may need it, and the rings then use the platform's DMA
        // barriers (npa/virtio/barriers.hpp).
        const std::uint64_t offered = t.device_features();
        if (offered == 0 && !t.present()) {
            return fail(t, errc::removed,
                        "virtio-net: the device went away while its features were read");
        }
        if ((offered & virtio::feature::VERSION_1) == 0) {
            return fail(t, errc::not_supported, "virtio-net: the device does not offer VERSION_1");
        }
        std::uint64_t want = virtio::feature::VERSION_1 | virtio::feature::ACCESS_PLATFORM |
                             virtio::feature::ORDER_PLATFORM | virtio::feature::IN_ORDER | virtio::feature::EVENT_IDX |
                             virtio::feature::RING_PACKED | vn::feature::MRG_RXBUF |
                             vn::feature::MTU | vn::feature::MAC | vn::feature::STATUS;
        want |= (qc.offloads & cap::tx_l4_csum) != 0 || (qc.offloads & cap::tso) != 0
                    ? vn::feature::CSUM : 0;
        want |= (qc.offloads & cap::tso) != 0 ? vn::feature::HOST_TSO4 | vn::feature::HOST_TSO6 : 0;
        want |= (qc.offloads & cap::rx_csum) != 0 ? vn::feature::GUEST_CSUM : 0;
        want |= qc.queues > 1 ? vn::feature::MQ : 0;
        // The controlq and the commands npa's control requests become, when the shell
        // gave the window a control channel (npa/control/virtio_net.hpp); it owns the queue.
        want |= dev.control() != nullptr ? vn::feature::CTRL_VQ | vn::feature::CTRL_RX |
                                               vn::feature::CTRL_RX_EXTRA | vn::feature::CTRL_VLAN |
                                               vn::feature::CTRL_MAC_ADDR
                                         : 0;
        std::uint64_t f = offered & want;
        if ((f & vn::feature::CSUM) == 0) { // HOST_TSO* depend on CSUM (5.1.3.1)
            f &= ~(vn::feature::HOST_TSO4 | vn::feature::HOST_TSO6);
        }
        // The CTRL_* commands and MQ depend on CTRL_VQ (5.1.3.1): the pairs past the first
        // are set with VQ_PAIRS_SET on the controlq (5.1.6.5.5); Linux's
        // virtnet_validate_features refuses a device that offers MQ without CTRL_VQ.
        if ((f & vn::feature::CTRL_VQ) == 0) {
            f &= ~(vn::feature::CTRL_RX | vn::feature::CTRL_RX_EXTRA | vn::feature::CTRL_VLAN |
                   vn::feature::CTRL_MAC_ADDR | vn::feature::MQ);
        }
        if (qc.queues > 1 && (f & vn::feature::MQ) == 0) {
            return fail(t, errc::invalid_argument,
                        (offered & vn::feature::MQ) != 0
                            ? "virtio-net: more than one queue pair needs MQ with the control queue "
                              "(CTRL_VQ, 5.1.3.1): the device offers no controlq or the window has no "
                              "control channel"
                            : "virtio-net: more than one queue pair asked of a device without MQ");
        }
        if (qc.queues > 1 && dev.max_virtqueue_pairs() < qc.queues) {
            return fail(t, errc::invalid_argument,
                        "virtio-net: more queue pairs asked than the device has (max_virtqueue_pairs)");
        }
        const std::uint32_t max_mtu = (f & vn::feature::MTU) != 0 ? dev.mtu() : vn::DEFAULT_MTU;
        if (qc.mtu < vn::MIN_MTU || qc.mtu > max_mtu) {
            return fail(t, errc::invalid_argument, "virtio-net: MTU outside the device's range");
        }
        // step 3b: without MRG_RXBUF a frame must fit one buffer (5.1.6.3.1), and with MTU
        // negotiated the driver must be able to receive a frame of the device's mtu (5.1.4.2):
        // the device sends up to its own MTU whatever the shell asked, plus the Ethernet
        // header and a VLAN tag. Linux then posts chains of pages (big_packets); an npa
        // buffer is one segment, so a pool whose buffers cannot hold that frame is refused
        // here, and the RX engine's refill() never posts a smaller buffer that comes later.
        const std::uint32_t rx_max_frame = max_mtu + vn::eth_hlen + vn::vlan_hlen;
        const std::uint32_t rx_min = (f & vn::feature::MRG_RXBUF) != 0 ? 0 : rx_max_frame;
        if (const std::uint32_t cap = rx_capacity(api, qc.queues); cap < rx_min) {
            why_.start("virtio-net: RX buffers of ")
                .add(cap)
                .add(" bytes cannot hold a frame of MTU ")
                .add(max_mtu)
                .add(" (")
                .add(rx_min)
                .add(" bytes with the Ethernet header and a VLAN tag, the 12-byte virtio-net "
                     "header in the headroom) and the device does not merge buffers (no MRG_RXBUF)");
            api.log(log_level::error, why_.c_str());
            return fail(t, errc::invalid_argument, why_.c_str());
        }
        t.set_driver_features(f);
        t.set_status(ACKNOWLEDGE | DRIVER | virtio::status_bit::FEATURES_OK);
        if ((t.status() & virtio::status_bit::FEATURES_OK) == 0) {
            return fail(t, errc::not_supported, "virtio-net: the device refused the features");
        }
        // step 4: the queues' sizes and memory.
        for (std::uint16_t i = 0; i < qc.queues; ++i) {
            if (t.queue_max(vn::rxq_index(i)) < qc.rx_ring_size ||
                t.queue_max(vn::txq_index(i)) < qc.tx_ring_size) {
                return fail(t, errc::invalid_argument, "virtio-net: a ring larger than the device's queue");
            }
        }
        const std::size_t per_pair = virtio_net_queue_bytes(
            qc.tx_ring_size, qc.rx_ring_size, (f & virtio::feature::RING_PACKED) != 0);
        const vn::ring_memory area = dev.ring_area();
        const std::size_t skew = (virtio_net_tuning::vq_align -
                                  reinterpret_cast<std::uintptr_t>(area.virt) % virtio_net_tuning::vq_align) %
                                 virtio_net_tuning::vq_align;
        if (area.size < skew + per_pair * qc.queues) {
            return fail(t, errc::no_memory, "virtio-net: ring memory too small for these ring sizes");
        }
        api_ = &api;
        dev_ = &dev;
        features_ = f;
        mtu_ = qc.mtu;
        offloads_ = qc.offloads & capabilities().offloads;
        trust_.reset();
        // step 5: lay out each queue, zero it, tell the device (vector q for both).
        std::memset(area.virt + skew, 0, per_pair * qc.queues);
        std::size_t at = skew;
        nq_ = qc.queues;
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            q.stats = {};
            q.rx.features = f;
            q.rx.min_room = rx_min;
            q.rx.max_frame = rx_max_frame;
            if (!setup_vq(q.rx, vn::rxq_index(i), i, qc.rx_ring_size, at) ||
                !setup_vq(q.tx, vn::txq_index(i), i, qc.tx_ring_size, at)) {
                release_all();
                return fail(t, errc::device_error, "virtio-net: the device refused a queue");
            }
            t.irq_mask(i, true); // masked until the shell arms the queue
        }
        // step 5b: the controlq, laid out and enabled by the shell's control channel.
        if ((f & vn::feature::CTRL_VQ) != 0 &&
            !dev.control()->enable(dev.control()->ctx, t, f,
                                   vn::ctrlq_index((f & vn::feature::MQ) != 0, dev.max_virtqueue_pairs()),
                                   nq_)) {
            release_all();
            return fail(t, errc::device_error, "virtio-net: the device refused the control queue");
        }
        // step 6: DRIVER_OK: the device is live.
        t.set_status(ACKNOWLEDGE | DRIVER | virtio::status_bit::FEATURES_OK |
                     virtio::status_bit::DRIVER_OK);
        // step 6b: what the control channel owes the live device before any queue is used:
        // with MQ, VQ_PAIRS_SET (the device starts with one pair; 5.1.6.5.5).
        if ((f & vn::feature::CTRL_VQ) != 0 && dev.control()->start != nullptr) {
            if (const status st = dev.control()->start(dev.control()->ctx); !st.ok()) {
                t.set_status(0); // nothing posted yet; the device stops and forgets the queues
                dev.control()->disable(dev.control()->ctx);
                release_all();
                return fail(t, st.code(), st.reason());
            }
        }
        // step 7: RX buffers on every receiveq (fewer if the pool is short: counted).
        for (std::uint16_t i = 0; i < nq_; ++i) {
            q_[i].rx.refill(api, dev, i, q_[i].stats, trust_);
        }
        api.log(log_level::info, "virtio-net: attached");
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
        return q_[qi].tx.in_flight();
    }
    /// TX chains the device has handed back and tx_reap() has not yet taken (a snapshot;
    /// equal to tx_in_flight() once the device has sent everything it was given).
    [[nodiscard]] std::uint32_t tx_reapable(std::uint16_t qi) const noexcept {
        return q_[qi].tx.used_ready();
    }
    /// Pair qi's transmitq, as its ring driver counted it: IN_ORDER batches taken, chains
    /// passed over, ids refused.
    [[nodiscard]] virtio::driver_stats tx_ring_stats(std::uint16_t qi) const noexcept {
        return q_[qi].tx.visit([](const auto& d) { return d.stats(); });
    }

    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        return q.rx.burst(*api_, *dev_, qi, out, q.stats, trust_);
    }


    // ---- detach: reset, every buffer back ---------------------------------------------
    void detach() noexcept {
        if (dev_ != nullptr && nq_ != 0) {
            dev_->transport().set_status(0); // step 1: after a reset the device writes nothing
            if ((features_ & virtio_net::feature::CTRL_VQ) != 0 && dev_->control() != nullptr) {
                dev_->control()->disable(dev_->control()->ctx); // the controlq went with it
            }
        }
        for (std::uint16_t i = 0; i < nq_; ++i) {
            queue& q = q_[i];
            if (q.tx.bufs) {
                (void)tx_reap(i); // step 2: what the device confirmed goes back completed
                // step 3: what it took but never confirmed goes back unsent, oldest first
                q.tx.drain_in_flight([&](std::uint16_t head) {
                    const buffer_type b = q.tx.bufs[head];
                    api_->tx_unsent(i, std::span<const buffer_type>(&b, 1));
                });
            }
            if (q.rx.bufs) { // step 4: posted RX buffers go back to the shell
                q.rx.drain_in_flight([&](std::uint16_t head) {
                    const buffer_type b = q.rx.bufs[head];
                    api_->release_rx_buffers(i, std::span<const buffer_type>(&b, 1));
                });
                for (std::uint32_t h = 0; h < q.rx.size(); ++h) { // and those held back
                    if (q.rx.held[h] != 0) {
                        const buffer_type b = q.rx.bufs[h];
                        api_->release_rx_buffers(i, std::span<const buffer_type>(&b, 1));
                    }
                }
            }
        }
        release_all();
    }

    void irq_arm(std::uint16_t qi) noexcept {
        if (event_idx()) { // used_event at the last entry read (the last rx_burst did so too)
            (void)q_[qi].rx.enable_interrupts();
        }
        dev_->transport().irq_mask(qi, false);
    }
    void irq_disarm(std::uint16_t qi) noexcept { dev_->transport().irq_mask(qi, true); }

    /// What the device offers, as npa capabilities. Before attach: nothing.
    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        namespace vn = virtio_net;
        npa::capabilities c{};
        c.min_ring_size = 1;
        c.max_ring_size = virtio::max_queue_size;
        c.min_mtu = vn::MIN_MTU;
        if (dev_ == nullptr) {
            return c;
        }
        const std::uint64_t f = dev_->transport().device_features();
        const bool csum = (f & vn::feature::CSUM) != 0;
        c.offloads = (csum ? cap::tx_l4_csum : 0u) |
                     (csum && (f & (vn::feature::HOST_TSO4 | vn::feature::HOST_TSO6)) != 0 ? cap::tso : 0u) |
                     ((f & vn::feature::GUEST_CSUM) != 0 ? cap::rx_csum : 0u);
        const std::uint16_t pairs = (f & vn::feature::MQ) != 0 ? dev_->max_virtqueue_pairs() : 1;
        c.max_queues = pairs < max_queue_pairs ? (pairs == 0 ? 1 : pairs) : max_queue_pairs;
        c.max_mtu = (f & vn::feature::MTU) != 0 ? dev_->mtu() : vn::DEFAULT_MTU;
        return c;
    }

    [[nodiscard]] const queue_stats& stats(std::uint16_t qi) const noexcept { return q_[qi].stats; }
    /// The feature bits negotiated at attach.
    [[nodiscard]] std::uint64_t features() const noexcept { return features_; }
    /// A receiveq's worth: what the device can have received and not yet handed over.
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t qi) const noexcept {
        return q_[qi].rx.size();
    }

    /// removed: the status reads all ones. device_error: the device reset itself or asked
    /// for a reset (DRIVER_OK gone, DEVICE_NEEDS_RESET), or wrote something impossible.
    [[nodiscard]] errc health() const noexcept {
        if (dev_ == nullptr || nq_ == 0) {
            return errc::ok;
        }
        const std::uint8_t s = dev_->transport().status();
        if (s == 0xFF) {
            return errc::removed;
        }
        if (trust_.distrusted() || (s & virtio::status_bit::DRIVER_OK) == 0 ||
            (s & (virtio::status_bit::DEVICE_NEEDS_RESET | virtio::status_bit::FAILED)) != 0) {
            return errc::device_error;
        }
        return errc::ok;
    }

private:
    using vq = virtio_net_vq<Api>;
    struct queue {
        virtio_net_rxq<Api> rx;
        virtio_net_txq<Api> tx;
        queue_stats stats{};
    };


    [[nodiscard]] bool event_idx() const noexcept { return (features_ & virtio::feature::EVENT_IDX) != 0; }
    [[nodiscard]] bool packed() const noexcept { return (features_ & virtio::feature::RING_PACKED) != 0; }

    status fail(const virtio::transport& t, errc e, const char* why) noexcept {
        t.set_status(t.status() | virtio::status_bit::FAILED); // 3.1.1 step 8: give up
        return {e, why};
    }

    // One queue's block at `at` in the ring area: its layout, its driver, and the device
    // told where its areas are (split: desc / avail / used; packed: the descriptor ring /
    // the driver's event area / the device's event area, 4.1.4.3 and 2.8.10).
    bool setup_vq(vq& v, std::uint16_t index, std::uint16_t vector, std::uint32_t size,
                  std::size_t& at) noexcept {
        const virtio_net::ring_memory area = dev_->ring_area();
        std::byte* block = area.virt + at;
        const iova_t iova = area.iova + at;
        v.is_packed = packed();
        at += virtio_net_vq_bytes(size, v.is_packed);
        v.index = index;
        const std::size_t words = virtio::ring_driver::state_words(size, v.is_packed);
        v.state.reset(new (std::nothrow) std::uint16_t[words]);
        v.bufs.reset(new (std::nothrow) buffer_type[size]());
        v.held.reset(new (std::nothrow) std::uint8_t[size]());
        if (!v.state || !v.bufs || !v.held) {
            return false;
        }
        virtio::queue_setup s{};
        if (v.is_packed) {
            const virtio::packed_layout l = virtio::packed_layout_of(size);
            if (!v.packed.reset(virtio::packed_ring::in_block(block, size), {v.state.get(), words},
                                event_idx(), (features_ & virtio::feature::IN_ORDER) != 0,
                                /*batches=*/true)) {
                return false;
            }
            s = {iova + l.desc, iova + l.driver, iova + l.device, static_cast<std::uint16_t>(size),
                 vector};
        } else {
            const virtio::split_layout l = virtio::layout_of(size);
            if (!v.split.reset(virtio::split_ring::in_block(block, size), {v.state.get(), words},
                               event_idx(), (features_ & virtio::feature::IN_ORDER) != 0,
                               /*batches=*/true)) {
                return false;
            }
            s = {iova + l.desc, iova + l.avail, iova + l.used, static_cast<std::uint16_t>(size),
                 vector};
        }
        v.set_ordering(virtio::ordering_of(features_));
        return dev_->transport().queue_enable(index, s);
    }

    // The smallest frame room of the shell's RX buffers, probed with one buffer per queue
    // (given straight back). An empty pool says nothing: refill() checks every buffer.
    static std::uint32_t rx_capacity(Api& api, std::uint16_t queues) noexcept {
        std::uint32_t cap = 0xFFFFFFFFu;
        for (std::uint16_t i = 0; i < queues; ++i) {
            buffer_type b{};
            if (api.alloc_rx_buffers(i, std::span<buffer_type>(&b, 1)) == 1) {
                cap = b.capacity() < cap ? b.capacity() : cap;
                api.release_rx_buffers(i, std::span<const buffer_type>(&b, 1));
            }
        }
        return cap;
    }

    void release_all() noexcept {
        for (std::uint16_t i = 0; i < nq_; ++i) {
            for (vq* v : {static_cast<vq*>(&q_[i].rx), static_cast<vq*>(&q_[i].tx)}) {
                v->state.reset();
                v->bufs.reset();
                v->held.reset();
                v->clear();
            }
        }
        nq_ = 0;
    }

    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    std::uint32_t mtu_ = 1500;
    std::uint32_t offloads_ = 0;
    std::uint64_t features_ = 0;
    trust_latch trust_; // something impossible was read: health() says device_error
    detail::reason_text<256> why_; // an attach failure's reason that names sizes
    std::array<queue, max_queue_pairs> q_{};
};

} // namespace npa