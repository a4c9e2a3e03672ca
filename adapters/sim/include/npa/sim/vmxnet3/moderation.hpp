// npa/sim/vmxnet3/moderation.hpp: interrupt moderation of the vmxnet3 backend's vectors.
//
// The UPT1 levels are abstract; this emulation spaces a vector's interrupts at least
// 2^level device steps apart (level 1: 2 steps ... IML_HIGHEST: 128) and treats
// IML_ADAPTIVE as level 2. A cause raised sooner stays latched, not lost, and the steps
// it waited are counted. Levels are read from intrConf.modLevels at ACTIVATE_DEV and
// UPDATE_IML.
#pragma once

#include <npa/plugins/vmxnet3/defs.hpp>
#include <npa/sim/sim_irq.hpp>

#include <algorithm>
#include <array>
#include <cstdint>

namespace npa::sim {

class vmxnet3_moderation {
public:
    static constexpr std::uint32_t vectors = vmxnet3::MAX_INTRS;

    [[nodiscard]] static std::uint64_t gap_steps(std::uint8_t level) noexcept {
        if (level == vmxnet3::upt1::IML_NONE) {
            return 0;
        }
        return std::uint64_t{1} << (level == vmxnet3::upt1::IML_ADAPTIVE ? 2 : level);
    }

    /// Takes intrConf.modLevels of every vector the driver configured, if each is a level
    /// the ABI knows; otherwise takes none and returns the first bad vector.
    [[nodiscard]] int take_levels(const vmxnet3::intr_conf& ic) noexcept {
        const std::uint32_t n = ic.numIntrs < vectors ? ic.numIntrs : vectors;
        for (std::uint32_t v = 0; v < n; ++v) {
            if (ic.modLevels[v] > vmxnet3::upt1::IML_ADAPTIVE) {
                return static_cast<int>(v);
            }
        }
        level_.fill(vmxnet3::upt1::IML_NONE);
        std::copy(ic.modLevels, ic.modLevels + n, level_.begin());
        return -1;
    }
    /// A new set of queues: causes latched by moderation belong to the old ones.
    void restart() noexcept {
        last_.fill(0);
        raise_.fill(false);
    }
    /// A completion for vector v: its interrupt is due.
    void cause(std::uint32_t v) noexcept { raise_[v] = true; }

    /// Delivers the causes whose gap has passed (to the line unless `enabled` is false;
    /// a line that fires masks itself when `auto_mask`).
    void deliver(std::uint64_t now, std::array<sim_irq, vectors>& irqs, bool enabled,
                 bool auto_mask) noexcept {
        for (std::uint32_t v = 0; v < vectors; ++v) {
            if (!raise_[v]) {
                continue;
            }
            if (last_[v] != 0 && now - last_[v] < gap_steps(level_[v])) {
                ++held_[v]; // moderated: the cause stays latched until the gap has passed
                continue;
            }
            raise_[v] = false;
            last_[v] = now;
            if (enabled) {
                irqs[v].raise(auto_mask);
            }
        }
    }

    [[nodiscard]] std::uint8_t level(std::uint32_t v) const noexcept { return level_[v]; }
    [[nodiscard]] std::uint64_t held(std::uint32_t v) const noexcept { return held_[v]; }

private:
    std::array<std::uint8_t, vectors> level_{};  // per vector, as last read
    std::array<std::uint64_t, vectors> last_{};  // last delivery (0: none yet)
    std::array<std::uint64_t, vectors> held_{};  // steps a cause waited
    std::array<bool, vectors> raise_{};
};

} // namespace npa::sim
