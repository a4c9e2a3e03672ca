// npa/sim/simnic_rig.hpp: a simnic on a bench, ready for the conformance kit (the shared
// half of a rig is rig_base.hpp).
#pragma once

#include <npa/capabilities.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/rig_base.hpp>
#include <npa/sim/simnic.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace npa::sim {

struct simnic_rig_config {
    std::uint16_t queues = 2;
    std::uint32_t tx_ring = 256;
    std::uint32_t rx_ring = 256;
    std::uint32_t buffers = 2048;
    std::size_t guest_bytes = std::size_t{16} << 20;
};

class simnic_rig : public rig_base<simnic_rig_config> {
public:
    using device_type = simnic_window;
    static constexpr const char* device_name = "simnic";
    /// The simnic model drops, delays and reorders RX completions too (faults.hpp).
    static constexpr bool rx_completion_faults = true;
    /// Its completions echo the descriptor's tag (simnic_comp_desc::tag), so a completion can
    /// name a posted slot with another buffer's tag (faults.hpp, mislabel_tx_completions).
    static constexpr bool completion_tags = true;
    static constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x01};
    static constexpr mac_addr far_mac{0x02, 0, 0, 0, 0, 0x02};

    explicit simnic_rig(const config& c = {}) : rig_base(c, guest_mac, far_mac) {
        if (!ok()) {
            return;
        }
        simnic_config dc;
        dc.queues = c.queues;
        dc.max_ring_size = c.tx_ring > c.rx_ring ? c.tx_ring : c.rx_ring;
        auto dev = simnic::create(mem_, dc);
        if (!dev) {
            error_ = dev.error().reason();
            return;
        }
        dev_ = std::move(*dev);
        connect(*dev_, far_);
    }

    [[nodiscard]] queue_config queue_cfg() const noexcept {
        queue_config qc;
        qc.queues = cfg_.queues;
        qc.tx_ring_size = cfg_.tx_ring;
        qc.rx_ring_size = cfg_.rx_ring;
        return qc;
    }

    [[nodiscard]] device_type& window() noexcept { return dev_->window(); }
    [[nodiscard]] simnic& device() noexcept { return *dev_; }
    [[nodiscard]] sim_irq& irq(std::uint16_t q) noexcept { return dev_->window().irq(q); }

    void step(std::uint32_t n = 1) {
        for (std::uint32_t i = 0; i < n; ++i) {
            dev_->step();
        }
    }
    void inject(const fault_plan& p) { dev_->inject(p); }
    void reset_device() { dev_->reset(); }
    void remove_device() { dev_->remove(); }

    // ---- device-side observations the kit asserts on --------------------------------------
    [[nodiscard]] std::vector<std::string> violations() const {
        std::vector<std::string> v;
        for (const simnic_violation& x : dev_->violations()) {
            v.push_back(x.message);
        }
        return v;
    }
    [[nodiscard]] std::uint32_t device_rx_posted(std::uint16_t q) const {
        return dev_->rx_posted(q);
    }
    [[nodiscard]] std::uint64_t device_rx_no_desc(std::uint16_t q) const {
        return dev_->stats(q).rx_no_desc;
    }
    /// TX frames the device completed without putting them on the wire (link down).
    [[nodiscard]] std::uint64_t device_tx_not_sent(std::uint16_t q) const {
        return dev_->stats(q).tx_link_down;
    }

private:
    std::unique_ptr<simnic> dev_;
};

} // namespace npa::sim
