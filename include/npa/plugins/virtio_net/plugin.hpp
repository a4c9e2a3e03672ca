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
//   TX  one descriptor per frame: the 12-byte virtio_net_hdr_v1 is written into the
//       buffer's headroom, so the device reads header and frame from one buffer. Checksum
//       and TSO requests become NEEDS_CSUM / gso_type (offload.hpp). A buffer without 12 bytes of
//       headroom, or a frame outside the MTU, is refused and counted (tx_errors).
//   RX  one descriptor per buffer, 12 bytes in front of its data for the header. Every
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
// violation no more RX buffers are posted (see refill()) and none is delivered: what the
// device hands back is held until detach, as the device may have lied about it too.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/detail/reason_text.hpp>
#include <npa/detail/store_changed.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/offload.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/ring/slot_ring.hpp>
#include <npa/virtio/ring_driver.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
namespace virtio_net_tuning {
/// tx_burst reaps completions first when fewer descriptors than this are free.
inline constexpr std::uint32_t tx_reap_below = 32;
/// Each virtqueue's block starts at a multiple of this (the spec asks 16 of the
/// descriptor table; a cache line keeps two queues' rings off one line).
inline constexpr std::size_t vq_align = 64;
/// Used entries taken per call into the virtqueue, and TX buffers handed back to the
/// shell per tx_complete call (one call per frame costs the shell a call per frame).
inline constexpr std::uint32_t tx_reap_chunk = 32;
/// RX buffers taken from the shell per alloc call during a refill.
inline constexpr std::uint32_t refill_chunk = 64;
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
        // here, and refill() never posts a smaller buffer that comes later.
        rx_max_frame_ = max_mtu + vn::eth_hlen + vn::vlan_hlen;
        rx_min_ = (f & vn::feature::MRG_RXBUF) != 0 ? 0 : rx_max_frame_;
        if (const std::uint32_t cap = rx_capacity(api, qc.queues); cap < rx_min_) {
            why_.start("virtio-net: RX buffers of ")
                .add(cap)
                .add(" bytes cannot hold a frame of MTU ")
                .add(max_mtu)
                .add(" (")
                .add(rx_min_)
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
            refill(i);
        }
        api.log(log_level::info, "virtio-net: attached");
        return status::success();
    }

    // ---- tx_burst: header into the headroom, one descriptor per frame -------------------
    std::uint16_t tx_burst(std::uint16_t qi, std::span<buffer_type> bufs) noexcept {
        return q_[qi].tx.visit([&](auto& drv) { return tx_burst_on(qi, drv, bufs); });
    }
    // tx_reap: used entries back to the shell, a chunk at a time.
    std::uint32_t tx_reap(std::uint16_t qi) noexcept {
        return q_[qi].tx.visit([&](auto& drv) { return tx_reap_on(qi, drv); });
    }

private:
    // The data path, once for either ring layout: the layout's driver is chosen once per
    // burst (ring_driver::visit), so each call on it is inlined and the frame loop has no dispatch.
    template <class Drv>
    std::uint16_t tx_burst_on(std::uint16_t qi, Drv& drv, std::span<buffer_type> bufs) noexcept {
        queue& q = q_[qi];
        if (drv.free_descs() < virtio_net_tuning::tx_reap_below) {
            (void)tx_reap_on(qi, drv);
        }
        std::uint16_t n = 0;
        std::uint64_t sent = 0, bytes = 0;
        for (; n < bufs.size(); ++n) {
            const buffer_type b = bufs[n];
            const offload_info ol = b.offload();
            const bool tso = (ol.flags & ol::tx_tso) != 0 && (offloads_ & cap::tso) != 0 &&
                             ol.tso_mss != 0;
            const std::uint32_t len = b.length();
            if (len < 14 || (!tso && len > mtu_ + 18) || len > 65535 ||
                b.headroom() < virtio_net::HDR_LEN) {
                ++q.stats.tx_errors; // no frame the device may carry: refused, handed back
                api_->tx_complete(qi, std::span<const buffer_type>(&b, 1));
                continue;
            }
            if (drv.free_descs() == 0) {
                ++q.stats.tx_ring_full;
                break;
            }
            write_tx_hdr(b, ol, tso);
            const virtio::segment s{b.iova() - virtio_net::HDR_LEN, len + virtio_net::HDR_LEN, false};
            const std::int32_t head = drv.add({&s, 1});
            q.tx.bufs[head] = b;
            ++sent;
            bytes += len;
        }
        q.stats.tx_packets += sent; // once per burst: the stats are not the loop's to reload
        q.stats.tx_bytes += bytes;
        if (drv.publish()) { // one release store and one kick decision per burst
            dev_->transport().notify(q.tx.index);
        }
        return n;
    }

    template <class Drv>
    std::uint32_t tx_reap_on(std::uint16_t qi, Drv& drv) noexcept {
        queue& q = q_[qi];
        std::uint32_t done = 0, k = 0;
        std::array<buffer_type, virtio_net_tuning::tx_reap_chunk> back{};
        auto flush = [&] {
            api_->tx_complete(qi, std::span<const buffer_type>(back.data(), k));
            done += k;
            k = 0;
        };
        auto give = [&](std::uint16_t head) {
            back[k++] = q.tx.bufs[head];
            if (k == back.size()) {
                flush();
            }
        };
        auto passed = [&](std::uint16_t head) { // IN_ORDER: passed over without an entry
            ++q.stats.tx_errors;
            trust_.distrust(q.stats);
            give(head);
        };
        std::array<std::uint16_t, virtio_net_tuning::tx_reap_chunk> heads{};
        for (;;) {
            std::uint32_t got = 0;
            const virtio::used_status st = drv.poll_used_bulk(heads, got, passed);
            for (std::uint32_t i = 0; i < got; ++i) {
                give(heads[i]);
            }
            if (st == virtio::used_status::empty) {
                break;
            }
            if (st == virtio::used_status::broken) {
                trust_.distrust(q.stats); // used->idx cannot be: stop reading this ring
                break;
            }
            if (st == virtio::used_status::bad_id) {
                trust_.distrust(q.stats);
            }
        }
        if (k != 0) {
            flush();
        }
        return done;
    }

public:
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

    // ---- rx_burst: checked used entries, merged frames dropped, refill -----------------
    std::uint16_t rx_burst(std::uint16_t qi, std::span<buffer_type> out) noexcept {
        return q_[qi].rx.visit([&](auto& drv) { return rx_burst_on(qi, drv, out); });
    }

private:
    template <class Drv>
    std::uint16_t rx_burst_on(std::uint16_t qi, Drv& drv, std::span<buffer_type> out) noexcept {
        queue& q = q_[qi];
        std::uint16_t n = 0;
        while (n < out.size()) {
            buffer_type b;
            std::uint32_t len = 0;
            const rx_take r = take_rx(qi, drv, b, len);
            if (r == rx_take::none) {
                // EVENT_IDX: an interrupt for the next entry after this poll; one that came
                // in meanwhile is taken now (its interrupt may have been suppressed).
                if (event_idx() && !trust_.distrusted() && drv.enable_interrupts()) {
                    continue;
                }
                break;
            }
            if (r == rx_take::dropped) {
                continue;
            }
            const auto* h = reinterpret_cast<const virtio_net::net_hdr_v1*>(b.data() - virtio_net::HDR_LEN);
            const std::uint16_t nb = mrg() ? std::uint16_t{h->num_buffers} : std::uint16_t{1};
            if (nb == 0 || nb > drv.size()) {
                trust_.distrust(q.stats); // a count of buffers the ring cannot hold
                drop_rx(qi, b);
                continue;
            }
            if (nb > 1) {
                drop_merged(qi, drv, b, len, nb);
                continue;
            }
            if (len < 14) {
                drop_rx(qi, b);
                continue;
            }
            b.set_length(len);
            offload_info o{};
            if (!virtio_net::rx_csum(*h, b.data(), len,
                                     (features_ & virtio_net::feature::GUEST_CSUM) != 0, o.csum)) {
                drop_rx(qi, b);
                continue;
            }
            b.set_offload(o);
            out[n++] = b;
            ++q.stats.rx_packets;
            q.stats.rx_bytes += len;
        }
        refill_on(qi, drv);
        return n;
    }

public:
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
    // One virtqueue: its driver for the layout attach chose (virtio::ring_driver: visit()
    // once per burst on the data path), and what the plugin keeps beside it.
    struct vq : virtio::ring_driver {
        std::unique_ptr<std::uint16_t[]> state;
        std::unique_ptr<buffer_type[]> bufs;  // the buffer at each head descriptor / buffer id
        std::unique_ptr<std::uint8_t[]> held; // RX: passed over, held until detach
        std::uint16_t index = 0;              // virtqueue number
    };
    struct queue {
        vq rx, tx;
        queue_stats stats{};
    };
    enum class rx_take : std::uint8_t { none, buffer, dropped };

    [[nodiscard]] bool mrg() const noexcept { return (features_ & virtio_net::feature::MRG_RXBUF) != 0; }
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

    void write_tx_hdr(const buffer_type& b, const offload_info& ol, bool tso) const noexcept {
        const bool csum = (ol.flags & ol::tx_l4_csum) != 0 && (offloads_ & cap::tx_l4_csum) != 0;
        const virtio_net::net_hdr_v1 h = virtio_net::tx_hdr(b.data(), ol, tso, csum);
        // Not written when the buffer holds it already (the device read this line when the
        // buffer last went out: npa/detail/store_changed.hpp).
        detail::store_changed(b.data() - virtio_net::HDR_LEN, &h, sizeof h);
    }

    // The next used entry of queue qi's receiveq, checked: the buffer and the frame bytes
    // it holds (the header excluded).
    // `first`: the first buffer of a frame, which starts with the header; a later piece of
    // a merged frame holds frame bytes only and may be shorter than a header.
    template <class Drv>
    rx_take take_rx(std::uint16_t qi, Drv& drv, buffer_type& b, std::uint32_t& len,
                    bool first = true) noexcept {
        queue& q = q_[qi];
        for (;;) {
            virtio::used_chain u;
            bool passed = false;
            const virtio::used_status st = drv.poll_used(u, [&](std::uint16_t head) {
                passed = true;
                hold_rx(qi, head);
            });
            if (st == virtio::used_status::empty) {
                return rx_take::none;
            }
            if (st == virtio::used_status::broken) {
                trust_.distrust(q.stats);
                return rx_take::none;
            }
            if (st == virtio::used_status::bad_id) {
                trust_.distrust(q.stats);
                continue;
            }
            if (passed || trust_.distrusted()) {
                // An entry that passed over older ones is no better than they are; and once
                // the device has lied, an entry naming the oldest buffer may be one more lie
                // (the device may still write that buffer): held until detach, not delivered.
                hold_rx(qi, u.id, passed);
                return rx_take::dropped;
            }
            b = q.rx.bufs[u.id];
            if (u.whole) [[unlikely]] { // an IN_ORDER batch used it completely (2.7.9, 2.8)
                u.len = posted_len(b);
            }
            if (u.len == 0) { // the device wrote nothing (a DMA error on its side): dropped
                drop_rx(qi, b);
                return rx_take::dropped;
            }
            if ((first && u.len < virtio_net::HDR_LEN) || u.len > posted_len(b)) {
                trust_.distrust(q.stats); // a length the buffer cannot hold: never read past it
                drop_rx(qi, b);
                return rx_take::dropped;
            }
            len = first ? u.len - virtio_net::HDR_LEN : u.len;
            if (u.whole && first && !whole_frame_fits(b, len)) [[unlikely]] {
                trust_.distrust(q.stats); // a batch that cannot be: the device may still write it
                hold_rx(qi, u.id, false);
                return rx_take::dropped;
            }
            return rx_take::buffer;
        }
    }
    // IN_ORDER: a buffer a receiveq batch passed over holds the start of a frame that
    // filled it (2.7.9, 2.8). Alone in it (num_buffers 1, or no MRG_RXBUF) that frame must
    // be one the device may send (its MTU with the Ethernet header and a VLAN tag, 5.1.4.2,
    // 5.1.6.3.1): a longer one says the batch was a lie (a lost or reordered entry the
    // next one read as a batch). A merged frame's buffers are checked by drop_merged().
    [[nodiscard]] bool whole_frame_fits(const buffer_type& b, std::uint32_t len) const noexcept {
        const auto* h = reinterpret_cast<const virtio_net::net_hdr_v1*>(b.data() - virtio_net::HDR_LEN);
        return (mrg() && std::uint16_t{h->num_buffers} != 1) || len <= rx_max_frame_;
    }
    // An RX buffer the device may still write: under IN_ORDER one a split entry passed
    // over without used->idx moving past it (no batch, a violation), or one of a batch that
    // cannot be; any, once the device is distrusted. It is not handed back now: it is held
    // (counted as dropped) until detach, when the reset guarantees the device writes
    // nothing more.
    void hold_rx(std::uint16_t qi, std::uint16_t head, bool violation = true) noexcept {
        if (violation) {
            trust_.distrust(q_[qi].stats);
        }
        ++q_[qi].stats.rx_dropped;
        q_[qi].rx.held[head] = 1;
    }
    void drop_rx(std::uint16_t qi, const buffer_type& b) noexcept {
        ++q_[qi].stats.rx_dropped;
        api_->release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
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
    static std::uint32_t posted_len(const buffer_type& b) noexcept {
        const std::uint32_t n = b.capacity() + virtio_net::HDR_LEN;
        return n < 0xFFFFu ? n : 0xFFFFu;
    }

    // MRG_RXBUF: the nb - 1 buffers after `b` hold the rest of its frame (5.1.6.4). The
    // device fills every buffer but the last completely, so the frame is larger than `b`
    // and cannot be one npa buffer (one segment): every piece is taken off the ring and
    // the frame is dropped and counted. A first buffer that is not full, a piece missing or
    // a piece before the last that is not full is a device that lied about num_buffers.
    template <class Drv>
    void drop_merged(std::uint16_t qi, Drv& drv, buffer_type b, std::uint32_t len,
                     std::uint16_t nb) noexcept {
        queue& q = q_[qi];
        if (len + virtio_net::HDR_LEN != posted_len(b)) {
            trust_.distrust(q.stats); // more buffers claimed than the frame needed
            drop_rx(qi, b);
            return;
        }
        drop_rx(qi, b);
        for (std::uint16_t i = 1; i < nb; ++i) {
            buffer_type p;
            std::uint32_t plen = 0;
            const rx_take r = take_rx(qi, drv, p, plen, false);
            if (r != rx_take::buffer) {
                trust_.distrust(q.stats); // fewer buffers than num_buffers says
                return;
            }
            api_->release_rx_buffers(qi, std::span<const buffer_type>(&p, 1));
            if (i + 1 < nb && plen != posted_len(p)) {
                trust_.distrust(q.stats);
                return;
            }
        }
    }

    // Posts a buffer on every free descriptor of the receiveq, then notifies if asked.
    // Once the device has lied nothing more is posted: a chain its used entries passed over
    // may still be available to it, and posting that descriptor again would hand the
    // device more chains than the ring holds (health() says device_error: the shell
    // switches away and detach resets the device).
    void refill(std::uint16_t qi) noexcept {
        q_[qi].rx.visit([&](auto& drv) { refill_on(qi, drv); });
    }
    template <class Drv>
    void refill_on(std::uint16_t qi, Drv& drv) noexcept {
        queue& q = q_[qi];
        if (trust_.distrusted()) {
            return;
        }
        std::uint32_t want = drv.free_descs();
        std::uint32_t got_total = 0;
        const std::uint32_t asked = want;
        std::array<buffer_type, virtio_net_tuning::refill_chunk> tmp{};
        while (want != 0) {
            const std::uint32_t k = want < tmp.size() ? want : static_cast<std::uint32_t>(tmp.size());
            const std::uint32_t got = api_->alloc_rx_buffers(qi, std::span<buffer_type>(tmp.data(), k));
            for (std::uint32_t i = 0; i < got; ++i) {
                const buffer_type b = tmp[i];
                // no room for the header, or (no MRG_RXBUF) for a whole frame: refused
                if (b.headroom() < virtio_net::HDR_LEN || b.capacity() < rx_min_) {
                    api_->release_rx_buffers(qi, std::span<const buffer_type>(&b, 1));
                    continue;
                }
                const virtio::segment s{b.iova() - virtio_net::HDR_LEN, posted_len(b), true};
                q.rx.bufs[drv.add({&s, 1})] = b;
                ++got_total;
            }
            want -= k;
            if (got < k) {
                break;
            }
        }
        q.stats.rx_no_buffer += asked - got_total;
        if (drv.publish()) {
            dev_->transport().notify(q.rx.index);
        }
    }

    void release_all() noexcept {
        for (std::uint16_t i = 0; i < nq_; ++i) {
            for (vq* v : {&q_[i].rx, &q_[i].tx}) {
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
    std::uint32_t rx_min_ = 0; // frame room an RX buffer needs (without MRG_RXBUF: a whole frame)
    std::uint32_t rx_max_frame_ = 0; // the largest frame the device may send (MTU, Ethernet header, VLAN tag)
    std::uint32_t offloads_ = 0;
    std::uint64_t features_ = 0;
    trust_latch trust_; // something impossible was read: health() says device_error
    detail::reason_text<256> why_; // an attach failure's reason that names sizes
    std::array<queue, max_queue_pairs> q_{};
};

} // namespace npa
