// npa/control_state.hpp: the shell's desired control state and how it reaches the
// hypervisor.
//
// The shell keeps what the OS asked for (MAC, VLAN filters, MTU, RX mode, multicast
// list, RSS) and is the only party that talks to the control path. A change is sent to
// the active path's control channel and recorded only if the authority accepted it; at
// switch time the whole state is replayed onto the new device as one batch (NPA: "the
// control path is already initialized by the PF driver when the VF is allocated").
#pragma once

#include <npa/concepts/control_channel.hpp>
#include <npa/control.hpp>
#include <npa/status.hpp>

#include <array>
#include <concepts>
#include <cstdint>
#include <span>

namespace npa {

/// A non-owning, type-erased control channel. The control path is not the data path,
/// so one indirect call per request is fine here and lets each path (vmxnet3 registers,
/// a PF mailbox, a DPDK port) bring its own channel type.
class control_link {
public:
    control_link() noexcept = default;

    template <control_channel C>
    static control_link to(C& channel) noexcept {
        control_link l;
        l.ctx_ = &channel;
        l.submit_ = [](void* c, const control_request& r) { return static_cast<C*>(c)->submit(r); };
        l.batch_ = [](void* c, std::span<const control_request> b) {
            return static_cast<C*>(c)->submit_batch(b);
        };
        if constexpr (requires(C& c) { { c.device_reset() } noexcept; }) {
            l.reset_ = [](void* c) noexcept { static_cast<C*>(c)->device_reset(); };
        }
        if constexpr (requires(C& c) { { c.health() } noexcept -> std::same_as<errc>; }) {
            l.health_ = [](void* c) noexcept { return static_cast<C*>(c)->health(); };
        }
        return l;
    }

    [[nodiscard]] bool valid() const noexcept { return ctx_ != nullptr; }
    [[nodiscard]] status submit(const control_request& r) const {
        return valid() ? submit_(ctx_, r) : status{errc::bad_state, "no control channel"};
    }
    [[nodiscard]] status submit_batch(std::span<const control_request> b) const {
        return valid() ? batch_(ctx_, b) : status{errc::bad_state, "no control channel"};
    }
    /// The device behind this channel was reset (its health said so) or is brought up
    /// anew (a switch's prepare, before the replay): a channel with a handshake of its own
    /// (an SR-IOV VF's mailbox RESET) redoes it before its next request. Nothing for a
    /// channel without one.
    void device_reset() const noexcept {
        if (reset_ != nullptr) {
            reset_(ctx_);
        }
    }
    /// What the channel sees of the device (a VF's mailbox showing its PF's reset:
    /// errc::reset); errc::ok for a channel that sees nothing of it. Control thread.
    [[nodiscard]] errc health() const noexcept {
        return health_ != nullptr ? health_(ctx_) : errc::ok;
    }

private:
    void* ctx_ = nullptr;
    status (*submit_)(void*, const control_request&) = nullptr;
    status (*batch_)(void*, std::span<const control_request>) = nullptr;
    void (*reset_)(void*) noexcept = nullptr;
    errc (*health_)(void*) noexcept = nullptr;
};

/// What the OS wants the device to look like.
class control_state {
public:
    /// Upper bound of requests a full replay produces: MAC, MTU, RX mode, multicast
    /// list, RSS, plus one per VLAN filter.
    static constexpr std::size_t max_batch = 5 + max_vlan_id + 1;

    [[nodiscard]] const mac_addr& mac() const noexcept { return mac_; }
    [[nodiscard]] bool has_mac() const noexcept { return has_mac_; }
    [[nodiscard]] std::uint32_t mtu() const noexcept { return mtu_; }
    [[nodiscard]] std::uint32_t rx_mode() const noexcept { return rx_mode_; }
    [[nodiscard]] bool has_vlan(std::uint16_t vid) const noexcept {
        return vid <= max_vlan_id && (vlans_[vid / 64] >> (vid % 64) & 1u) != 0;
    }
    [[nodiscard]] std::uint32_t vlan_count() const noexcept {
        // Bit by bit (each step clears the lowest set bit), not __builtin_popcountll:
        // without -mpopcnt that builtin is a call into libgcc (__popcountdi2), which a
        // kernel does not export, so a module using the core would not load.
        std::uint32_t n = 0;
        for (auto w : vlans_) {
            for (; w != 0; w &= w - 1) {
                ++n;
            }
        }
        return n;
    }
    [[nodiscard]] std::span<const mac_addr> mcast() const noexcept {
        return {mcast_.data(), mcast_count_};
    }
    [[nodiscard]] const rss_config& rss() const noexcept { return rss_; }

    /// Records a request the authority accepted.
    void apply(const control_request& r) noexcept {
        switch (r.op) {
        case control_op::set_mac:
            mac_ = r.mac;
            has_mac_ = true;
            break;
        case control_op::add_vlan:
            if (r.vlan <= max_vlan_id) vlans_[r.vlan / 64] |= std::uint64_t{1} << (r.vlan % 64);
            break;
        case control_op::del_vlan:
            if (r.vlan <= max_vlan_id) vlans_[r.vlan / 64] &= ~(std::uint64_t{1} << (r.vlan % 64));
            break;
        case control_op::set_mtu: mtu_ = r.mtu; break;
        case control_op::set_rx_mode: rx_mode_ = r.mode; break;
        case control_op::set_mcast_list:
            mcast_count_ = r.mcast_count <= max_mcast_addrs ? r.mcast_count : max_mcast_addrs;
            for (std::uint32_t i = 0; i < mcast_count_; ++i) mcast_[i] = r.mcast[i];
            break;
        case control_op::set_rss: rss_ = r.rss; break;
        }
    }

    /// Writes the whole state as requests (the replay batch); returns how many.
    std::size_t to_batch(std::span<control_request> out) const noexcept {
        std::size_t n = 0;
        auto push = [&](const control_request& r) {
            if (n < out.size()) out[n++] = r;
        };
        if (has_mac_) push(control_request::make_set_mac(mac_));
        push(control_request::make_mtu(mtu_));
        push(control_request::make_rx_mode(rx_mode_));
        control_request m;
        m.op = control_op::set_mcast_list;
        m.mcast_count = mcast_count_;
        for (std::uint32_t i = 0; i < mcast_count_; ++i) m.mcast[i] = mcast_[i];
        push(m);
        if (rss_.hash_types != 0) {
            control_request r;
            r.op = control_op::set_rss;
            r.rss = rss_;
            push(r);
        }
        for (std::uint16_t vid = 0; vid <= max_vlan_id; ++vid) {
            if (has_vlan(vid)) push(control_request::make_vlan(true, vid));
        }
        return n;
    }

private:
    mac_addr mac_{};
    bool has_mac_ = false;
    std::uint32_t mtu_ = 1500;
    std::uint32_t rx_mode_ = rx_mode::unicast | rx_mode::broadcast | rx_mode::multicast;
    std::array<std::uint64_t, (max_vlan_id + 1) / 64> vlans_{};
    std::array<mac_addr, max_mcast_addrs> mcast_{};
    std::uint32_t mcast_count_ = 0;
    rss_config rss_{};
};

/// Checks a request for malformed content before it goes anywhere.
[[nodiscard]] inline status validate(const control_request& r) noexcept {
    switch (r.op) {
    case control_op::set_mac:
        if ((r.mac[0] & 1u) != 0) return {errc::invalid_argument, "MAC is a multicast address"};
        if (r.mac == mac_addr{}) return {errc::invalid_argument, "MAC is all zeroes"};
        return {};
    case control_op::add_vlan:
    case control_op::del_vlan:
        if (r.vlan == 0 || r.vlan > max_vlan_id)
            return {errc::invalid_argument, "VLAN id must be 1..4095"};
        return {};
    case control_op::set_mtu:
        if (r.mtu < 68 || r.mtu > 65535) return {errc::invalid_argument, "MTU must be 68..65535"};
        return {};
    case control_op::set_rx_mode:
        if ((r.mode & ~std::uint32_t{0x1f}) != 0)
            return {errc::invalid_argument, "unknown RX mode bits"};
        return {};
    case control_op::set_mcast_list:
        if (r.mcast_count > max_mcast_addrs)
            return {errc::invalid_argument, "multicast list longer than 32 entries"};
        for (std::uint32_t i = 0; i < r.mcast_count; ++i)
            if ((r.mcast[i][0] & 1u) == 0)
                return {errc::invalid_argument, "multicast list holds a unicast address"};
        return {};
    case control_op::set_rss:
        for (const auto e : r.rss.table)
            if (e >= 64) return {errc::invalid_argument, "RSS table entry beyond 64 queues"};
        return {};
    }
    return {errc::invalid_argument, "unknown control operation"};
}

} // namespace npa
