// npa/sim/vmxnet3_rig.hpp: a vmxnet3 device model on a bench, ready for the conformance kit
// (the same members as simnic_rig). The guest's driver probes the device (vmxnet3::probe:
// revisions, shared area), then its control path is brought up the way a shell would before
// attaching the plugin: MAC and RX mode through vmxnet3_control.
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/control/vmxnet3.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/capabilities.hpp>
#include <npa/sim/rig_base.hpp>
#include <npa/sim/test_api.hpp>
#include <npa/sim/traffic.hpp>
#include <npa/sim/vmxnet3_device.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace npa::sim {

struct vmxnet3_rig_config {
    std::uint16_t queues = 2;
    std::uint32_t tx_ring = 256;
    std::uint32_t rx_ring = 256;
    std::uint32_t buffers = 2048;
    std::size_t guest_bytes = std::size_t{16} << 20;
    bool update_rx_prod = false;  ///< the device asks for RXPROD writes
    std::uint32_t tx_threshold = 32;
    bool qemu = false;  ///< the device as QEMU emulates it (vmxnet3_device_config::qemu())
    std::uint32_t conf_intr = 0;  ///< GET_CONF_INTR's answer (vmxnet3_device_config::conf_intr)
    /// MSI-X vectors the guest's binder enabled (vmxnet3::window::irq_vectors).
    std::uint32_t irq_vectors = vmxnet3::MAX_INTRS;
};

class vmxnet3_rig : public rig_base<vmxnet3_rig_config> {
public:
    using device_type = vmxnet3::window;
    static constexpr const char* device_name = "vmxnet3";
    /// The device drops, delays and reorders RX completions when the fault plan says so.
    static constexpr bool rx_completion_faults = true;
    /// The device may pass over posted RX buffers (fault_plan::pass_over_rx_buffers).
    static constexpr bool rx_pass_over = true;
    static constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x01};
    static constexpr mac_addr far_mac{0x02, 0, 0, 0, 0, 0x02};

    explicit vmxnet3_rig(const config& c = {}) : rig_base(c, guest_mac, far_mac) {
        if (!ok()) {
            return;
        }
        vmxnet3_device_config dc = c.qemu ? vmxnet3_device_config::qemu() : vmxnet3_device_config{};
        dc.profile.max_queues = c.queues < 4 ? 4 : c.queues;
        const std::uint32_t big = c.tx_ring > c.rx_ring ? c.tx_ring : c.rx_ring;
        dc.profile.max_ring_size = (big + 31) / 32 * 32;
        if (!c.qemu) {
            dc.update_rx_prod = c.update_rx_prod;
            dc.tx_threshold = c.tx_threshold;
        }
        dc.conf_intr = c.conf_intr;
        auto dev = vmxnet3_device::create(mem_, dc);
        if (!dev) {
            error_ = dev.error().reason();
            return;
        }
        dev_ = std::move(*dev);
        dev_->window().set_irq_vectors(c.irq_vectors);
        connect(*dev_, far_);
        // The driver's probe (revisions, shared area) comes before any RX filter command.
        if (const char* why = vmxnet3::probe(dev_->window()); why != nullptr) {
            error_ = why;
            return;
        }
        control_.emplace(dev_->control_port());
        if (const status st = apply_control(); !st) {
            error_ = st.reason();
        }
    }

    /// The guest's MAC and RX mode through the control path; the shell does it again after
    /// every attach (a device like QEMU's takes its permanent MAC back at ACTIVATE_DEV).
    status apply_control() {
        const control_request init[] = {
            control_request::make_set_mac(guest_mac),
            control_request::make_rx_mode(rx_mode::unicast | rx_mode::broadcast | rx_mode::multicast)};
        return control_->submit_batch(init);
    }

    [[nodiscard]] queue_config queue_cfg() const noexcept {
        queue_config qc;
        qc.queues = cfg_.queues;
        qc.tx_ring_size = cfg_.tx_ring;
        qc.rx_ring_size = cfg_.rx_ring;
        qc.offloads = cap::all;  // intersected with the device's by the plugin
        return qc;
    }

    [[nodiscard]] device_type& window() noexcept { return dev_->window(); }
    [[nodiscard]] vmxnet3_device& device() noexcept { return *dev_; }
    [[nodiscard]] vmxnet3_control& control() noexcept { return *control_; }
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
    [[nodiscard]] std::uint32_t device_rx_posted(std::uint16_t q) const { return dev_->rx_posted(q, 0); }
    [[nodiscard]] std::uint64_t device_rx_no_desc(std::uint16_t q) const { return dev_->counters(q).rx_no_desc; }
    [[nodiscard]] std::uint64_t device_tx_not_sent(std::uint16_t q) const {
        return dev_->counters(q).tx_link_down;
    }

private:
    std::unique_ptr<vmxnet3_device> dev_;
    std::optional<vmxnet3_control> control_;
};

} // namespace npa::sim
