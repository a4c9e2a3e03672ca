// npa/switch.hpp: switch reasons, policy (hysteresis) and telemetry.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/status.hpp>

#include <array>
#include <cstdint>

namespace npa {

enum class switch_reason : std::uint8_t {
    boot,              ///< first path attached at start-up
    vf_arrived,        ///< hypervisor: a VF is available (passthrough on)
    vf_leaving,        ///< hypervisor: the VF is being taken away (passthrough off)
    migration,         ///< hypervisor: live migration
    policy,            ///< hypervisor or operator policy
    device_error,      ///< shell: the active device reported an error
    reset,             ///< shell: the active device was reset
    surprise_removal,  ///< the active device disappeared without notice
    operator_request,  ///< an administrator asked (npactl, telemetry)
};

[[nodiscard]] constexpr const char* to_string(switch_reason r) noexcept {
    switch (r) {
    case switch_reason::boot: return "boot";
    case switch_reason::vf_arrived: return "vf-arrived";
    case switch_reason::vf_leaving: return "vf-leaving";
    case switch_reason::migration: return "migration";
    case switch_reason::policy: return "policy";
    case switch_reason::device_error: return "device-error";
    case switch_reason::reset: return "reset";
    case switch_reason::surprise_removal: return "surprise-removal";
    case switch_reason::operator_request: return "operator-request";
    }
    return "unknown";
}

/// Reasons the shell cannot refuse: the old device is going away whatever we think, so
/// hysteresis does not apply to them.
[[nodiscard]] constexpr bool is_mandatory(switch_reason r) noexcept {
    return r == switch_reason::vf_leaving || r == switch_reason::migration ||
           r == switch_reason::device_error || r == switch_reason::reset ||
           r == switch_reason::surprise_removal;
}

/// Hysteresis and time limits of the switch state machine (DESIGN.md section 4).
struct switch_policy {
    /// A discretionary switch (vf_arrived, policy, operator) is refused until the current
    /// path has been active this long, so a flapping VF cannot flap the data path.
    std::uint64_t min_dwell_ns = 50'000'000;
    /// After a failed prepare, the next discretionary attempt waits this long, doubling
    /// on each further failure up to backoff_max_ns.
    std::uint64_t backoff_initial_ns = 100'000'000;
    std::uint64_t backoff_max_ns = 5'000'000'000;
    /// How long a queue waits for the old device to complete its in-flight TX before it
    /// flips anyway (holding new TX until the old path's unsent buffers are back), and for
    /// old-path RX it does not read (or that a plugin without rx_drain_bound delivers).
    std::uint64_t drain_timeout_ns = 2'000'000;
    /// The old path's RX counts as drained once it has delivered nothing for this long
    /// (0: at its first short burst). A device may hold received frames before it shows
    /// them (a TPACKET_V3 block until its retire timer, interrupt moderation): frames
    /// already on their way to the old device when the peer learns the new one must be
    /// read before the old path is released. Keep it below drain_timeout_ns.
    std::uint64_t rx_quiet_ns = 0;
    /// How much longer than drain_timeout_ns a queue that reads RX (it has called
    /// rx_burst) is waited for to read the old path's RX, when only its other calls
    /// (tx_burst, poll) come round: a NAPI poll held off by a busy CPU still reads what
    /// the old device holds, and an application that stopped reading RX does not hold
    /// the switch for ever.
    std::uint64_t rx_reader_wait_ns = 100'000'000;
};

/// One switch, as telemetry.
struct switch_record {
    std::uint64_t seq = 0;            ///< 1, 2, 3 ...
    std::uint8_t from = 0;            ///< plugin index
    std::uint8_t to = 0;
    switch_reason reason = switch_reason::boot;
    errc result = errc::ok;           ///< ok, or why it failed (old path kept)
    const char* detail = nullptr;     ///< the failure's reason sentence
    std::uint64_t requested_ns = 0;
    std::uint64_t duration_ns = 0;    ///< request to every queue running on the new path
    std::uint64_t held = 0;           ///< TX packets that waited in the backlog
    std::uint64_t requeued = 0;       ///< TX packets the old path returned unsent, resent
    std::uint64_t tx_lost = 0;        ///< TX packets lost (the goal is 0)
    std::uint64_t rx_dropped = 0;     ///< RX drops the devices reported during the switch
    std::uint32_t caps_lost = 0;      ///< offload bits lost by this switch
    std::uint32_t caps_gained = 0;    ///< offload bits regained
};

/// The last `capacity` switch records plus running totals.
class switch_history {
public:
    static constexpr std::uint32_t capacity = 64;

    void push(const switch_record& r) noexcept {
        ring_[count_ % capacity] = r;
        ++count_;
        if (r.result == errc::ok) {
            ++ok_;
            last_ns_ = r.duration_ns;
            max_ns_ = r.duration_ns > max_ns_ ? r.duration_ns : max_ns_;
            total_lost_ += r.tx_lost;
            total_held_ += r.held;
        } else {
            ++failed_;
        }
    }

    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    [[nodiscard]] std::uint64_t switches() const noexcept { return ok_; }
    [[nodiscard]] std::uint64_t failures() const noexcept { return failed_; }
    [[nodiscard]] std::uint64_t last_duration_ns() const noexcept { return last_ns_; }
    [[nodiscard]] std::uint64_t max_duration_ns() const noexcept { return max_ns_; }
    [[nodiscard]] std::uint64_t total_tx_lost() const noexcept { return total_lost_; }
    [[nodiscard]] std::uint64_t total_held() const noexcept { return total_held_; }
    /// The i-th most recent record (0 = newest); valid for i < min(count, capacity).
    [[nodiscard]] const switch_record& recent(std::uint32_t i) const noexcept {
        return ring_[(count_ - 1 - i) % capacity];
    }
    [[nodiscard]] std::uint32_t size() const noexcept {
        return count_ < capacity ? static_cast<std::uint32_t>(count_) : capacity;
    }

private:
    std::array<switch_record, capacity> ring_{};
    std::uint64_t count_ = 0, ok_ = 0, failed_ = 0;
    std::uint64_t last_ns_ = 0, max_ns_ = 0, total_lost_ = 0, total_held_ = 0;
};

/// A capability that was lost or regained, and why.
struct capability_event {
    std::uint64_t switch_seq = 0;
    std::uint32_t bit = 0;            ///< a cap:: bit
    bool lost = true;
    const char* plugin = nullptr;     ///< the path now active
    const char* why = nullptr;        ///< "not supported by <plugin>", "supported again"
};

} // namespace npa
