// npa/sim/rig_base.hpp: what every rig of the conformance kit shares.
//
// A rig is the device-model half of the kit's (plugin, device model) pair: guest memory
// with a buffer pool in it, the test shell API, the device, and a traffic host at the far
// end of the device's cable. The device part differs per model; the rest is here. A rig
// derives from rig_base<its config> and adds the device (see docs/plugin-guide.md, "A rig
// for another device model").
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/test_api.hpp>
#include <npa/sim/traffic.hpp>
#include <npa/sim/wire.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>

namespace npa::sim {

/// The far end of a cable: sends numbered frames of any flow, checks what arrives.
class far_end final : public frame_port {
public:
    far_end(mac_addr self, mac_addr remote) noexcept : self_(self), remote_(remote) {}

    /// Sends n frames of `flow`; `varied`: each of a length of its own (traffic_gen::vary_length),
    /// from the flow's first frame on.
    std::uint64_t send(std::uint32_t flow, std::uint64_t n, bool varied = false) {
        const auto [it, fresh] = gens_.try_emplace(flow, flow, self_, remote_);
        traffic_gen& g = it->second;
        if (fresh && varied) {
            g.vary_length();
        }
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

/// The shared half of a rig. Config has at least queues, buffers and guest_bytes.
template <class Config>
class rig_base {
public:
    using config = Config;
    using pool_type = fixed_pool<borrowed_memory>;
    using api_type = test_api<pool_type>;
    using buffer_type = buffer_ref;

    [[nodiscard]] bool ok() const noexcept { return error_ == nullptr; }
    [[nodiscard]] const char* error() const noexcept { return error_ != nullptr ? error_ : "ok"; }
    [[nodiscard]] const config& cfg() const noexcept { return cfg_; }
    [[nodiscard]] api_type& api() noexcept { return *api_; }
    [[nodiscard]] guest_memory& memory() noexcept { return mem_; }

    // ---- traffic: far end -> device (guest RX) ------------------------------------------
    /// A flow id whose frames the device steers to queue q (with all queues active): every
    /// sim device spreads flows with eth::flow_hash.
    [[nodiscard]] std::uint32_t flow_for_queue(std::uint16_t q) const {
        for (std::uint32_t f = 0;; ++f) {
            traffic_gen g(f, far_mac_, guest_mac_);
            frame fr;
            g.build(fr);
            if (eth::flow_hash(fr) % cfg_.queues == q) {
                return f;
            }
        }
    }
    std::uint64_t far_send(std::uint32_t flow, std::uint64_t n) { return far_.send(flow, n); }
    /// The same, each frame of a length of its own (traffic_gen::varied_len of its sequence
    /// number) if this is the flow's first frame.
    std::uint64_t far_send_varied(std::uint32_t flow, std::uint64_t n) {
        return far_.send(flow, n, true);
    }
    [[nodiscard]] std::uint64_t far_sent(std::uint32_t flow) const { return far_.sent(flow); }
    /// What the far end received of a guest TX flow.
    [[nodiscard]] flow_report far_report(std::uint32_t flow, std::uint64_t sent) const {
        return far_.report(flow, sent);
    }

    // ---- traffic: guest side --------------------------------------------------------------
    /// Writes the next frame of a guest TX flow into b.
    void build_tx(buffer_type b, std::uint32_t flow) {
        traffic_gen& g = guest_gens_.try_emplace(flow, flow, guest_mac_, far_mac_).first->second;
        b.set_length(g.build(std::span<std::byte>(b.data(), b.capacity())));
    }
    /// The same, padded to `len` bytes (at most b.capacity()) with the flow's payload
    /// pattern, so the far end can check the whole frame.
    void build_tx(buffer_type b, std::uint32_t flow, std::uint32_t len) {
        build_tx(b, flow);
        const std::uint64_t n = traffic_gen::seq_of(b.data() + 14);
        for (std::uint32_t i = b.length(); i < len; ++i) {
            b.data()[i] = traffic_gen::pattern(n, i);
        }
        b.set_length(len);
    }
    [[nodiscard]] traffic_sink& guest_sink() noexcept { return guest_sink_; }

protected:
    /// Guest memory, a pool of c.buffers in it and the test API; error() says if not.
    rig_base(const config& c, mac_addr guest, mac_addr far)
        : cfg_(c), mem_(c.guest_bytes), far_(far, guest), guest_mac_(guest), far_mac_(far) {
        pool_config pc;
        pc.count = c.buffers;
        if constexpr (requires { c.buf_size; }) { // a rig whose config sizes its buffers
            pc.buf_size = c.buf_size;
        }
        const guest_block b = mem_.allocate(pool_type::required_bytes(pc));
        auto pool = b ? pool_type::create(pc, b.backing())
                      : result<pool_type>(errc::no_memory, "rig: guest memory too small for the pool");
        if (!pool) {
            error_ = pool.error().reason();
            return;
        }
        pool_.emplace(std::move(*pool));
        api_.emplace(*pool_);
    }

    config cfg_;
    guest_memory mem_;
    far_end far_;  // a derived rig's device goes first (its members are destroyed first)
    std::optional<pool_type> pool_;
    std::optional<api_type> api_;
    const char* error_ = nullptr;

private:
    mac_addr guest_mac_, far_mac_;
    std::map<std::uint32_t, traffic_gen> guest_gens_;
    traffic_sink guest_sink_;
};

} // namespace npa::sim
