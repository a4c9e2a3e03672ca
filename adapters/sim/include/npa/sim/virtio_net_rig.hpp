// npa/sim/virtio_net_rig.hpp: a virtio-net device model on a bench, ready for the
// conformance kit (the shared half of a rig is rig_base.hpp). The MAC and RX mode are the
// device's defaults: the control virtqueue belongs to the shell's control path. With more
// than one queue pair the rig brings one up (a virtio_net_control in guest memory of its
// own, its answers waited for by stepping the device), since MQ needs it (5.1.3.1); it
// sends nothing but the VQ_PAIRS_SET the plugin's attach asks for. A test that wants its
// own channel sets it on the window after the rig is built.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/control/virtio_net.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/rig_base.hpp>
#include <npa/sim/virtio_net_device.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace npa::sim {

struct virtio_net_rig_config {
    std::uint16_t queues = 2;
    std::uint32_t tx_ring = 256;
    std::uint32_t rx_ring = 256;
    std::uint32_t buffers = 2048;
    std::size_t guest_bytes = std::size_t{16} << 20;
    /// Bytes per pool buffer, headroom included (fixed_pool's default: 2048 of data).
    std::uint32_t buf_size = npa::pool_config{}.buf_size;
    /// Feature bits the device offers (virtio_net_device_config's default when 0).
    std::uint64_t features = 0;
    /// The device's config mtu (VIRTIO_NET_F_MTU).
    std::uint16_t mtu = virtio_net_device_config{}.mtu;
    /// virtio_net_device_config::tx_batch: transmitq chains per used entry under IN_ORDER.
    std::uint16_t tx_batch = 1;
    /// virtio_net_device_config::rx_batch: receiveq chains per used entry under IN_ORDER.
    std::uint16_t rx_batch = 1;
    /// The device offers VIRTIO_F_RING_PACKED too (the plugin then lays out packed rings).
    bool packed_ring = false;
};

class virtio_net_rig : public rig_base<virtio_net_rig_config> {
public:
    using device_type = virtio_net::window;
    static constexpr const char* device_name = "virtio-net";
    /// The model drops, delays and reorders RX used entries too (faults.hpp).
    static constexpr bool rx_completion_faults = true;
    /// The device offers IN_ORDER and the plugin takes transmitq entries for batches
    /// (virtio 1.2 2.7.9): a swapped pair of TX entries is a batch to it.
    static constexpr bool tx_completion_batches = true;
    static constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x01};
    static constexpr mac_addr far_mac{0x02, 0, 0, 0, 0, 0x02};

    explicit virtio_net_rig(const config& c = {}) : rig_base(c, guest_mac, far_mac) {
        if (!ok()) {
            return;
        }
        virtio_net_device_config dc;
        dc.max_pairs = c.queues < 4 ? 4 : c.queues;
        const std::uint32_t big = c.tx_ring > c.rx_ring ? c.tx_ring : c.rx_ring;
        dc.queue_max = static_cast<std::uint16_t>(big < 256 ? 256 : big);
        dc.mac = guest_mac;
        dc.mtu = c.mtu;
        if (c.features != 0) {
            dc.features = c.features;
        }
        if (c.packed_ring) {
            dc.features |= virtio::feature::RING_PACKED;
        }
        dc.tx_batch = c.tx_batch;
        dc.rx_batch = c.rx_batch;
        auto dev = virtio_net_device::create(mem_, dc);
        if (!dev) {
            error_ = dev.error().reason();
            return;
        }
        dev_ = std::move(*dev);
        connect(*dev_, far_);
        if (c.queues > 1) {
            const guest_block cm = mem_.allocate(virtio_net_control::memory_bytes);
            ctl_ = std::make_unique<virtio_net_control>(
                virtio_net::ring_memory{cm.virt, cm.iova, cm.size},
                [](void* d) noexcept { static_cast<virtio_net_device*>(d)->step(); }, dev_.get());
            dev_->window().set_control(ctl_->hook());
        }
    }

    [[nodiscard]] queue_config queue_cfg() const noexcept {
        queue_config qc;
        qc.queues = cfg_.queues;
        qc.tx_ring_size = cfg_.tx_ring;
        qc.rx_ring_size = cfg_.rx_ring;
        qc.offloads = cap::all; // intersected with the device's by the plugin
        return qc;
    }

    [[nodiscard]] device_type& window() noexcept { return dev_->window(); }
    [[nodiscard]] virtio_net_device& device() noexcept { return *dev_; }
    [[nodiscard]] sim_irq& irq(std::uint16_t q) noexcept { return dev_->irq(q); }

    void step(std::uint32_t n = 1) {
        for (std::uint32_t i = 0; i < n; ++i) {
            dev_->step();
        }
    }
    void inject(const fault_plan& p) { dev_->inject(p); }
    void reset_device() { dev_->reset(); }
    void remove_device() { dev_->remove(); }

    [[nodiscard]] std::vector<std::string> violations() const { return dev_->violations(); }
    [[nodiscard]] std::uint32_t device_rx_posted(std::uint16_t q) const { return dev_->rx_posted(q); }
    [[nodiscard]] std::uint64_t device_rx_no_desc(std::uint16_t q) const { return dev_->counters(q).rx_no_desc; }
    /// TX frames the device used without putting them on the wire (link down).
    [[nodiscard]] std::uint64_t device_tx_not_sent(std::uint16_t q) const {
        return dev_->counters(q).tx_link_down;
    }

private:
    std::unique_ptr<virtio_net_device> dev_;
    std::unique_ptr<virtio_net_control> ctl_; // with more than one pair: MQ needs a controlq
};

/// The same device with packed virtqueues (VIRTIO_F_RING_PACKED offered, which the plugin
/// takes). Without IN_ORDER (`InOrder` false, as QEMU's virtio-net-pci by default) its
/// completions name buffers by id and may come in any order, so the kit reads a
/// reordered, dropped or skipped completion as such a ring allows. With IN_ORDER (offered
/// and taken, as DPDK's net_vhost and QEMU's in_order=on) buffers are used in order, and a
/// used descriptor that names a later transmitted buffer than the oldest is a batch whose
/// size is not announced; the kit reads completions so. The model writes a descriptor per
/// buffer here (tx_batch 1), so a reordered pair reads as a batch; its own batches
/// (tx_batch over 1) go through the plugin in virtio_net_device_test, without faults: with
/// them a reordered completion, too, leaves driver and device a different number of
/// positions apart.
template <bool InOrder>
class basic_virtio_net_packed_rig : public virtio_net_rig {
public:
    static constexpr const char* device_name = InOrder ? "virtio-net (packed, IN_ORDER)" : "virtio-net (packed)";
    static constexpr bool tx_completion_batches = InOrder;
    static constexpr bool unannounced_batches = InOrder;
    static constexpr bool any_order_completions = !InOrder;

    explicit basic_virtio_net_packed_rig(const config& c = {}) : virtio_net_rig(packed(c)) {}

private:
    static config packed(config c) noexcept {
        c.packed_ring = true;
        if (!InOrder) {
            c.features = (c.features != 0 ? c.features : virtio_net_device_config{}.features) &
                         ~virtio::feature::IN_ORDER;
        }
        return c;
    }
};
using virtio_net_packed_rig = basic_virtio_net_packed_rig<false>;
using virtio_net_packed_in_order_rig = basic_virtio_net_packed_rig<true>;

} // namespace npa::sim
