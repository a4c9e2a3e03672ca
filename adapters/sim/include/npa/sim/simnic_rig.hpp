// npa/sim/simnic_rig.hpp: a simnic on a bench, ready for the conformance kit.
//
// A rig is the device-model half of the kit's (plugin, device model) pair. It owns guest
// memory, a buffer pool inside it, the test shell API, the device, and a traffic host at
// the far end of the device's cable. Another device model joins the kit by providing a rig
// with the same members (see docs/plugin-guide.md, "A rig for another device model").
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/capabilities.hpp>
#include <npa/sim/faults.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/simnic.hpp>
#include <npa/sim/test_api.hpp>
#include <npa/sim/traffic.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace npa::sim {

/// The far end of a cable: sends numbered frames of any flow, checks what arrives.
class far_end final : public frame_port {
public:
    far_end(mac_addr self, mac_addr remote) noexcept : self_(self), remote_(remote) {}

    std::uint64_t send(std::uint32_t flow, std::uint64_t n) {
        traffic_gen& g = gens_.try_emplace(flow, flow, self_, remote_).first->second;
        std::uint64_t k = 0;
        for (; k < n; ++k) {
            g.build(scratch_);
            if (!frame_out(scratch_)) {
                break;
            }
        }
        return k;
    }
    void frame_in(const frame& f) noexcept override {
        std::lock_guard g(mu_);
        (void)sink_.record(f.bytes());
    }
    [[nodiscard]] flow_report report(std::uint32_t flow, std::uint64_t sent) const {
        std::lock_guard g(mu_);
        return sink_.report(flow, sent);
    }
    [[nodiscard]] std::uint64_t sent(std::uint32_t flow) const {
        const auto it = gens_.find(flow);
        return it == gens_.end() ? 0 : it->second.sent();
    }

private:
    mac_addr self_, remote_;
    std::map<std::uint32_t, traffic_gen> gens_;
    frame scratch_{};
    mutable std::mutex mu_;
    traffic_sink sink_;
};

struct simnic_rig_config {
    std::uint16_t queues = 2;
    std::uint32_t tx_ring = 256;
    std::uint32_t rx_ring = 256;
    std::uint32_t buffers = 2048;
    std::size_t guest_bytes = std::size_t{16} << 20;
};

class simnic_rig {
public:
    using config = simnic_rig_config;
    using pool_type = fixed_pool<borrowed_memory>;
    using api_type = test_api<pool_type>;
    using device_type = simnic_window;
    using buffer_type = buffer_ref;
    static constexpr const char* device_name = "simnic";
    static constexpr mac_addr guest_mac{0x02, 0, 0, 0, 0, 0x01};
    static constexpr mac_addr far_mac{0x02, 0, 0, 0, 0, 0x02};

    explicit simnic_rig(const config& c = {}) : cfg_(c), mem_(c.guest_bytes), far_(far_mac, guest_mac) {
        pool_config pc;
        pc.count = c.buffers;
        const guest_block b = mem_.allocate(pool_type::required_bytes(pc));
        auto pool = pool_type::create(pc, b.backing());
        if (!pool) {
            error_ = pool.error().reason();
            return;
        }
        pool_.emplace(std::move(*pool));
        api_.emplace(*pool_);
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

    [[nodiscard]] bool ok() const noexcept { return error_ == nullptr; }
    [[nodiscard]] const char* error() const noexcept { return error_ != nullptr ? error_ : "ok"; }
    [[nodiscard]] const config& cfg() const noexcept { return cfg_; }
    [[nodiscard]] queue_config queue_cfg() const noexcept {
        queue_config qc;
        qc.queues = cfg_.queues;
        qc.tx_ring_size = cfg_.tx_ring;
        qc.rx_ring_size = cfg_.rx_ring;
        return qc;
    }

    [[nodiscard]] api_type& api() noexcept { return *api_; }
    [[nodiscard]] device_type& window() noexcept { return dev_->window(); }
    [[nodiscard]] simnic& device() noexcept { return *dev_; }
    [[nodiscard]] guest_memory& memory() noexcept { return mem_; }
    [[nodiscard]] sim_irq& irq(std::uint16_t q) noexcept { return dev_->window().irq(q); }

    void step(std::uint32_t n = 1) {
        for (std::uint32_t i = 0; i < n; ++i) {
            dev_->step();
        }
    }
    void inject(const fault_plan& p) { dev_->inject(p); }
    void reset_device() { dev_->reset(); }
    void remove_device() { dev_->remove(); }

    // ---- traffic: far end -> device (guest RX) ------------------------------------------
    /// A flow id whose frames the device steers to queue q (with all queues active).
    [[nodiscard]] std::uint32_t flow_for_queue(std::uint16_t q) const {
        for (std::uint32_t f = 0;; ++f) {
            traffic_gen g(f, far_mac, guest_mac);
            frame fr;
            g.build(fr);
            if (simnic::flow_hash(fr) % cfg_.queues == q) {
                return f;
            }
        }
    }
    std::uint64_t far_send(std::uint32_t flow, std::uint64_t n) { return far_.send(flow, n); }
    [[nodiscard]] std::uint64_t far_sent(std::uint32_t flow) const { return far_.sent(flow); }
    /// What the far end received of a guest TX flow.
    [[nodiscard]] flow_report far_report(std::uint32_t flow, std::uint64_t sent) const {
        return far_.report(flow, sent);
    }

    // ---- traffic: guest side --------------------------------------------------------------
    /// Writes the next frame of a guest TX flow into b.
    void build_tx(buffer_type b, std::uint32_t flow) {
        traffic_gen& g = guest_gens_.try_emplace(flow, flow, guest_mac, far_mac).first->second;
        b.set_length(g.build(std::span<std::byte>(b.data(), b.capacity())));
    }
    [[nodiscard]] traffic_sink& guest_sink() noexcept { return guest_sink_; }

    // ---- device-side observations the kit asserts on --------------------------------------
    [[nodiscard]] std::vector<std::string> violations() const {
        std::vector<std::string> v;
        for (const simnic_violation& x : dev_->violations()) {
            v.push_back(x.message);
        }
        return v;
    }
    [[nodiscard]] std::uint32_t device_rx_posted(std::uint16_t q) const { return dev_->rx_posted(q); }
    [[nodiscard]] std::uint64_t device_rx_no_desc(std::uint16_t q) const {
        return dev_->stats(q).rx_no_desc;
    }
    /// TX frames the device completed without putting them on the wire (link down).
    [[nodiscard]] std::uint64_t device_tx_not_sent(std::uint16_t q) const {
        return dev_->stats(q).tx_link_down;
    }

private:
    config cfg_;
    guest_memory mem_;
    far_end far_;  // before dev_: the device (and its thread) goes first
    std::optional<pool_type> pool_;
    std::optional<api_type> api_;
    std::unique_ptr<simnic> dev_;
    std::map<std::uint32_t, traffic_gen> guest_gens_;
    traffic_sink guest_sink_;
    const char* error_ = nullptr;
};

} // namespace npa::sim
