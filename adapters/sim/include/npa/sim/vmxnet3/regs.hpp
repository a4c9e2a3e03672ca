// npa/sim/vmxnet3/regs.hpp: the vmxnet3 backend's registers (part of vmxnet3_device).
//
// BAR0 (pt): IMR masks and unmasks a vector at once; TXPROD, RXPROD, RXPROD2 are latched
// for the next step. BAR1 (vd): the bring-up protocol (VRRS, UVRS, DSAL/DSAH, in that
// order), CMD, the MAC registers (a new MAC goes to the policy first) and ECR. A removed
// device ignores writes and reads all ones. A breach of the bring-up protocol is refused
// and counted (protocol_violation()).
#pragma once

#include <npa/sim/vmxnet3/device.hpp>

namespace npa::sim {

inline void vmxnet3_device::on_write(vmxnet3::bar b, std::uint32_t off, std::uint32_t v) noexcept {
    if (removed_.load()) {
        return;  // nothing answers any more
    }
    using namespace vmxnet3;
    if (b == bar::pt) {
        if (off < reg::TXPROD) {  // IMR: takes effect at once (the vector's mask bit)
            const std::uint32_t vec = off / reg::stride;
            if (vec < MAX_INTRS) {
                (v & 1u) != 0 ? irqs_[vec].disarm() : irqs_[vec].arm();
            }
        } else if (off < reg::RXPROD) {
            const std::uint32_t q = (off - reg::TXPROD) / reg::stride;
            if (q < max_queues) {
                txprod_[q].store(v, std::memory_order_release);
                kick_[q].store(true, std::memory_order_release);
            }
        } else if (off < reg::RXPROD2 + max_queues * reg::stride) {
            const std::uint32_t ring = off >= reg::RXPROD2 ? 1 : 0;
            const std::uint32_t q = (off - (ring == 0 ? reg::RXPROD : reg::RXPROD2)) / reg::stride;
            if (q < max_queues) {
                rxprod_[q][ring].store(v, std::memory_order_release);
            }
        }
        return;
    }
    std::lock_guard g(mu_);
    switch (off) {
    case reg::VRRS:
        if (v != REV1_BIT) {
            protocol_violation(
                "VRRS: 0x%x does not select one revision the device reported (0x1)", v);
        } else {
            rev_ = v;
        }
        break;
    case reg::UVRS:
        if (rev_ == 0) {
            protocol_violation("UVRS written before a vmxnet3 revision was selected in VRRS");
        } else if (v != REV1_BIT) {
            protocol_violation(
                "UVRS: 0x%x does not select one UPT revision the device reported (0x1)", v);
        } else {
            upt_rev_ = v;
        }
        break;
    case reg::DSAL:
    case reg::DSAH:
        if (rev_ == 0 || upt_rev_ == 0) {
            protocol_violation("%s written before the revisions were selected (VRRS, UVRS)",
                               off == reg::DSAL ? "DSAL" : "DSAH");
        } else if (off == reg::DSAL) {
            dsa_ = (dsa_ & ~0xffffffffull) | v;
            dsa_halves_ |= 1u;
        } else {
            dsa_ = (dsa_ & 0xffffffffull) | (std::uint64_t{v} << 32);
            dsa_halves_ |= 2u;
        }
        break;
    case reg::CMD: cmd_result_ = run_command(v); break;
    case reg::MACL: macl_ = v; break;
    case reg::MACH: {
        const mac_addr m{static_cast<std::uint8_t>(macl_), static_cast<std::uint8_t>(macl_ >> 8),
                         static_cast<std::uint8_t>(macl_ >> 16), static_cast<std::uint8_t>(macl_ >> 24),
                         static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
        if (const char* why = filter_.check_mac(m); why != nullptr) {
            refuse(why);
        } else {
            filter_.mac = m;
        }
        break;
    }
    case reg::ECR:  // write one to clear, in the shared area too
        ecr_ &= ~v;
        publish_ecr();
        break;
    default: break;
    }
}

inline std::uint32_t vmxnet3_device::on_read(vmxnet3::bar b, std::uint32_t off) noexcept {
    if (removed_.load()) {
        return vmxnet3::removed_read;
    }
    using namespace vmxnet3;
    if (b == bar::pt) {
        return 0;
    }
    std::lock_guard g(mu_);
    const mac_addr& m = filter_.mac;
    switch (off) {
    case reg::VRRS: return REV1_BIT; // the revisions it speaks: 1
    case reg::UVRS: return REV1_BIT;
    case reg::CMD: ++cmd_reads_; return cmd_result_;
    case reg::MACL:
        return std::uint32_t{m[0]} | std::uint32_t{m[1]} << 8 | std::uint32_t{m[2]} << 16 |
               std::uint32_t{m[3]} << 24;
    case reg::MACH: return std::uint32_t{m[4]} | std::uint32_t{m[5]} << 8;
    // ICR: with INTx, whether the device raised its line (vector 0); the read lowers it, as
    // QEMU's vmxnet3_io_bar1_read clears the interrupt. 0 with MSI or MSI-X.
    case reg::ICR:
        if (it::of(cfg_.conf_intr) != it::INTX || !irqs_[0].pending()) {
            return 0;
        }
        irqs_[0].clear();
        return 1;
    // ECR is not read back: the events are in the shared area (QEMU answers 0 here too).
    default: return 0;
    }
}

// A driver that breaks the bring-up protocol (order or values): the access is refused
// (ignored, or the command answers 1), and counted.
template <class... Args>
void vmxnet3_device::protocol_violation(const char* fmt, Args... args) {
    char detail[256];
    if constexpr (sizeof...(Args) == 0) {
        std::snprintf(detail, sizeof detail, "%s", fmt);
    } else {
        std::snprintf(detail, sizeof detail, fmt, args...);
    }
    violations_.emplace_back(std::string(cfg_.name) + " protocol: " + detail);
    ++protocol_violations_;
}

template <class... Args>
std::uint32_t vmxnet3_device::refuse_activation(const char* fmt, Args... args) {
    char detail[200];
    std::snprintf(detail, sizeof detail, fmt, args...);
    protocol_violation("ACTIVATE_DEV refused: %s", detail);
    return 1;
}

} // namespace npa::sim
