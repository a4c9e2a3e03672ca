// npa/sim/igbvf_rig.hpp: an 82576 VF on a bench, for the conformance kit.
//
// The same members as simnic_rig (the kit's rig contract): guest memory, a pool in it,
// the test shell API, and here an sriov_nic with one VF whose PF policy gives it the
// guest MAC, its uplink cabled to a far end.
//
// One difference the kit must know: an Intel ring of N descriptors holds at most N - 1
// buffers (RDH == RDT means empty, datasheet 7.1.3), and the kit reads rx_ring as "buffers
// the device holds when the ring is full". So for a kit ring of N the plugin is asked for
// the next Intel ring that holds N buffers (N + 8 descriptors, rings come in multiples of
// 8), and cfg().rx_ring reports what that ring holds (N + 7).
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/igbvf_device.hpp>
#include <npa/capabilities.hpp>
#include <npa/sim/rig_base.hpp>
#include <npa/sim/sriov_nic.hpp>
#include <npa/sim/test_api.hpp>
#include <npa/sim/traffic.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace npa::sim {

struct igbvf_rig_config {
    std::uint16_t queues = 2;
    std::uint32_t tx_ring = 256;
    std::uint32_t rx_ring = 256;
    std::uint32_t buffers = 2048;
    std::size_t guest_bytes = std::size_t{16} << 20;
    std::uint32_t offloads = igbvf_limits{}.offloads;  ///< what the VF offers (cap bits)
    std::uint32_t stop_reads = 0;  ///< igbvf_device_config::stop_reads
    std::uint32_t tx_head_ahead = 0;       ///< igbvf_device_config::tx_head_ahead
    std::uint32_t tx_writeback_steps = 0;  ///< igbvf_device_config::tx_writeback_steps
    bool relaxed_order_swaps = true;       ///< igbvf_device_config::relaxed_order_swaps
};

class igbvf_rig : public rig_base<igbvf_rig_config> {
public:
    using device_type = igbvf_window;
    static constexpr const char* device_name = "igbvf";
    /// The device drops, delays and reorders RX completions when the fault plan says so.
    static constexpr bool rx_completion_faults = true;
    /// A TX packet is done on its DD bit; TDH completes nothing (rig_has_tx_done_bits).
    static constexpr bool tx_done_bits = true;
    static constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0x76, 0x01};
    static constexpr mac_addr far_mac{0x02, 0, 0, 0, 0x76, 0x02};

    explicit igbvf_rig(const config& c = {}) : rig_base(c, guest_mac, far_mac), ring_(c) {
        ring_.rx_ring = c.rx_ring + igbvf::ring_multiple;
        cfg_.rx_ring = ring_.rx_ring - 1;
        if (!ok()) {
            return;
        }
        sriov_nic_config nc;
        nc.vfs = 1;
        nc.vf.limits.queues = c.queues;
        nc.vf.limits.offloads = c.offloads;
        nc.vf.stop_reads = c.stop_reads;
        nc.vf.tx_head_ahead = c.tx_head_ahead;
        nc.vf.tx_writeback_steps = c.tx_writeback_steps;
        nc.vf.relaxed_order_swaps = c.relaxed_order_swaps;
        auto nic = sriov_nic::create(mem_, nc);
        if (!nic) {
            error_ = nic.error().reason();
            return;
        }
        nic_ = std::move(*nic);
        vf_policy pol;
        pol.default_mac = guest_mac;
        nic_->pf().set_policy(0, pol);
        connect(*nic_, far_);
    }

    [[nodiscard]] queue_config queue_cfg() const noexcept {
        queue_config qc;
        qc.queues = ring_.queues;
        qc.tx_ring_size = ring_.tx_ring;
        qc.rx_ring_size = ring_.rx_ring;
        return qc;
    }

    [[nodiscard]] device_type& window() noexcept { return nic_->vf(0).window(); }
    [[nodiscard]] igbvf_device& device() noexcept { return nic_->vf(0); }
    [[nodiscard]] sriov_nic& nic() noexcept { return *nic_; }
    [[nodiscard]] sim_irq& irq(std::uint16_t q) noexcept { return nic_->vf(0).irq(q); }

    void step(std::uint32_t n = 1) {
        for (std::uint32_t i = 0; i < n; ++i) {
            nic_->step();
        }
    }
    void inject(const fault_plan& p) { nic_->vf(0).inject(p); }
    void reset_device() { nic_->vf(0).reset(); }
    void remove_device() { nic_->vf(0).remove(); }

    [[nodiscard]] std::vector<std::string> violations() const {
        std::vector<std::string> v;
        for (const igbvf_violation& x : nic_->vf(0).violations()) {
            v.push_back(x.message);
        }
        return v;
    }
    [[nodiscard]] std::uint32_t device_rx_posted(std::uint16_t q) const { return nic_->vf(0).rx_posted(q); }
    [[nodiscard]] std::uint64_t device_rx_no_desc(std::uint16_t q) const {
        return nic_->vf(0).stats(q).rx_no_desc;
    }
    [[nodiscard]] std::uint64_t device_tx_not_sent(std::uint16_t q) const {
        return nic_->vf(0).stats(q).tx_link_down;
    }

private:
    config ring_;  // as asked: ring sizes in descriptors (cfg() is as the kit reads it)
    std::unique_ptr<sriov_nic> nic_;
};

} // namespace npa::sim
