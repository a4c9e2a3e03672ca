// npa/sim/simnic_window.hpp: what a simnic plugin is given to reach its device.
//
// The device window of DESIGN.md section 1: ring memory, doorbell registers, interrupt
// lines and the status register. There is no MAC, VLAN or MTU register here: the control
// path is not reachable from a plugin. The two commands (activate, quiesce) are register
// writes that the device answers; they are control-path calls made from attach/detach.
#pragma once

#include <npa/image/abi.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/sim_irq.hpp>
#include <npa/sim/simnic_defs.hpp>
#include <npa/status.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <type_traits>

namespace npa::sim {

class simnic_window {
public:
    /// The device a simnic plugin image drives (npa/image/abi.hpp): a plugin image reaches
    /// the window through a pointer, so its layout is checked below.
    static constexpr std::uint32_t image_device_id = image::sim_device_id(1);

    // ---- the plugin's view ------------------------------------------------------------
    [[nodiscard]] std::uint16_t max_queues() const noexcept { return queues_; }
    /// Guest memory set aside for queue pair q's rings (simnic_ring_bytes of the largest
    /// ring sizes the device supports).
    [[nodiscard]] guest_block ring_area(std::uint16_t q) const noexcept {
        return q < queues_ ? areas_[q] : guest_block{};
    }
    /// Register writes: where queue q's rings are. Takes effect at activate().
    void set_rings(std::uint16_t q, const simnic_ring_layout& l) noexcept {
        if (q < queues_) {
            regs_[q].layout = l;
        }
    }
    /// Command: the device checks the layout and starts queue q (doorbells from 0).
    [[nodiscard]] status activate(std::uint16_t q) noexcept {
        return cmd_ != nullptr ? cmd_(ctx_, command::activate, q)
                               : status{errc::removed, "simnic: no device behind the window"};
    }
    /// Command: the device stops queue q; after it returns the device writes nothing more
    /// to q's rings or buffers.
    void quiesce(std::uint16_t q) noexcept {
        if (cmd_ != nullptr) {
            (void)cmd_(ctx_, command::quiesce, q);
        }
    }
    void tx_doorbell(std::uint16_t q, std::uint32_t handed_over) noexcept {
        regs_[q].tx_prod.store(handed_over, std::memory_order_release);
    }
    void rx_doorbell(std::uint16_t q, std::uint32_t handed_over) noexcept {
        regs_[q].rx_prod.store(handed_over, std::memory_order_release);
    }
    [[nodiscard]] sim_irq& irq(std::uint16_t q) noexcept { return irqs_[q]; }
    [[nodiscard]] simnic_state state() const noexcept {
        return state_.load(std::memory_order_acquire);
    }

    // ---- the device model's side (not for plugins) --------------------------------------
    enum class command : std::uint8_t { activate, quiesce };
    using command_fn = status (*)(void* ctx, command c, std::uint16_t q) noexcept;

    void bind(void* ctx, command_fn fn, std::uint16_t queues) noexcept {
        ctx_ = ctx;
        cmd_ = fn;
        queues_ = queues;
    }
    /// The device behind the window and its command handler (so a test can put a filter in
    /// front of the commands, and bind() the pair back afterwards).
    [[nodiscard]] void* context() const noexcept { return ctx_; }
    [[nodiscard]] command_fn command_handler() const noexcept { return cmd_; }
    void set_area(std::uint16_t q, guest_block b) noexcept { areas_[q] = b; }
    void set_state(simnic_state s) noexcept { state_.store(s, std::memory_order_release); }
    [[nodiscard]] const simnic_ring_layout& layout(std::uint16_t q) const noexcept {
        return regs_[q].layout;
    }
    [[nodiscard]] std::uint32_t tx_prod(std::uint16_t q) const noexcept {
        return regs_[q].tx_prod.load(std::memory_order_acquire);
    }
    [[nodiscard]] std::uint32_t rx_prod(std::uint16_t q) const noexcept {
        return regs_[q].rx_prod.load(std::memory_order_acquire);
    }
    void reset_doorbells(std::uint16_t q) noexcept {
        regs_[q].tx_prod.store(0, std::memory_order_relaxed);
        regs_[q].rx_prod.store(0, std::memory_order_relaxed);
    }

private:
    struct alignas(cache_line_size) queue_regs {
        simnic_ring_layout layout{};
        std::atomic<std::uint32_t> tx_prod{0};
        std::atomic<std::uint32_t> rx_prod{0};
    };

    std::array<queue_regs, simnic_max_queues> regs_{};
    std::array<sim_irq, simnic_max_queues> irqs_{};
    std::array<guest_block, simnic_max_queues> areas_{};
    std::atomic<simnic_state> state_{simnic_state::running};
    std::uint16_t queues_ = 0;
    void* ctx_ = nullptr;
    command_fn cmd_ = nullptr;
};
// The layout an image compiled from this header shares with its host (same compiler, same
// header): plain fields and lock-free atomics, nothing that differs between the two builds.
static_assert(std::is_standard_layout_v<simnic_window>);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
              std::atomic<std::uint64_t>::is_always_lock_free);

} // namespace npa::sim
