// npa/control/virtio_net.hpp: the control path of a virtio-net path, shell side.
//
// A virtio network device takes its receive filter and its number of queue pairs through
// the control virtqueue (virtio 1.2 5.1.6.5): each command is one chain, a header (class,
// command) and its data the device reads, then one byte it writes its answer in
// (VIRTIO_NET_OK or VIRTIO_NET_ERR). virtio_net_control is an npa::control_channel over
// that queue. It owns the queue and its memory; the plugin only calls its hook while it
// initialises the device (the controlq must be enabled before DRIVER_OK, 3.1.1), through
// the window (npa/plugins/virtio_net/window.hpp). A plugin has no way to send a command.
//
// npa's requests become commands:
//   set_mac         MAC_ADDR_SET (CTRL_MAC_ADDR)
//   set_rx_mode     RX PROMISC / ALLMULTI (CTRL_RX), and NOUNI / NOMULTI / NOBCAST for a
//                   mode without unicast, multicast or broadcast (CTRL_RX_EXTRA)
//   set_mcast_list  MAC_TABLE_SET: no unicast entries, the list as the multicast table
//   add/del_vlan    VLAN ADD / DEL (CTRL_VLAN)
//   set_mtu         no command: the MTU is the plugin's at attach (checked here against
//                   the device's limit), as the shell attaches with the MTU it holds
//   set_rss         only "off" (RSS is not negotiated)
// With MQ and more than one pair set up, VQ_PAIRS_SET goes as soon as the device is live,
// before the plugin posts a buffer (the hook's start(), which the plugin calls after
// DRIVER_OK): the device starts with one pair (5.1.6.5.5), as Linux's virtnet_probe sets
// the pairs right after virtio_device_ready. A request the device lacks the feature for
// is not_supported.
//
// The controlq has the layout the plugin negotiated for its data queues: split, or packed
// when RING_PACKED was taken (2.8: the feature is the device's, every queue follows it).
//
// The device's answer is checked, not trusted: a used entry naming another chain, a
// length other than the one byte of the answer, or an answer neither OK nor ERR is
// device_error; no answer within the polls is timeout. After either the command's
// buffers may still be the device's, so the queue takes no more commands until the
// plugin sets it up again (the next attach, after the device's reset).
//
// The device reads nothing back, so the channel keeps what it applied (the device's
// reset state when the queue is set up: promiscuous, as QEMU's virtio-net resets
// to, its configured MAC, no tables) and rolls a failed batch back by sending what was
// there before. The VLAN table is taken to start as QEMU 10.0.2's does, every VLAN allowed
// until one is deleted (docs/real-devices.md); a device whose table starts empty (later
// QEMU clears it at DRIVER_OK) filters as asked all the same, but a rolled-back VLAN add
// on it stays added. The channel adds and deletes what it is asked and clears no other VLAN.
#pragma once

#include <npa/concepts/control_channel.hpp>
#include <npa/control.hpp>
#include <npa/endian.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/status.hpp>
#include <npa/virtio/ring_driver.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
namespace virtio_net_control_tuning {
/// Controlq size: one command is in flight at a time (2 descriptors); QEMU's holds 64.
inline constexpr std::uint16_t queue_size = 16;
/// Polls of the used ring before a command times out; the wait hook decides how long a
/// poll takes (a host sleeps, a sim steps its device), as igbvf's mailbox does.
inline constexpr std::uint32_t polls = 2000;
/// The largest command: MAC_TABLE_SET with an empty unicast table and a full multicast one.
inline constexpr std::size_t cmd_bytes = sizeof(virtio_net::ctrl_hdr) + 4 + 4 + 6 * max_mcast_addrs;
} // namespace virtio_net_control_tuning

namespace detail {
// Bytes of a controlq ring of either layout (split: layout_of; packed: packed_layout_of).
[[nodiscard]] constexpr std::size_t control_ring_bytes(std::uint16_t n) noexcept {
    const std::size_t split = virtio::layout_of(n).total, packed = virtio::packed_layout_of(n).total;
    return split > packed ? split : packed;
}
} // namespace detail

class virtio_net_control {
public:
    using wait_fn = void (*)(void* ctx) noexcept;

    /// Bytes of device-reachable memory the channel needs: its ring, a command, the answer.
    static constexpr std::size_t memory_bytes =
        (detail::control_ring_bytes(virtio_net_control_tuning::queue_size) + 63) / 64 * 64 + 256 + 64;

    /// `mem` must be memory_bytes of memory the device can reach, not shared with the plugin.
    explicit virtio_net_control(virtio_net::ring_memory mem, wait_fn wait = nullptr,
                                void* wait_ctx = nullptr) noexcept
        : mem_(mem), wait_(wait), wait_ctx_(wait_ctx) {
        hook_.ctx = this;
        hook_.enable = &enable_hook;
        hook_.start = &start_hook;
        hook_.disable = &disable_hook;
    }
    virtio_net_control(const virtio_net_control&) = delete;
    virtio_net_control& operator=(const virtio_net_control&) = delete;

    /// What the window carries (window::set_control) so the plugin sets the queue up.
    [[nodiscard]] const virtio_net::control_hook* hook() const noexcept { return &hook_; }
    /// The controlq is set up and takes commands.
    [[nodiscard]] bool live() const noexcept { return live_ && !broken_; }
    /// Commands the device answered OK (tests, telemetry).
    [[nodiscard]] std::uint64_t commands_ok() const noexcept { return ok_; }
    /// The controlq's number (5.1.2), valid while live.
    [[nodiscard]] std::uint16_t queue_index() const noexcept { return index_; }

    [[nodiscard]] status submit(const control_request& r) {
        if (const status st = ready(); !st.ok()) {
            return st;
        }
        const filter before = applied_;
        const status st = apply(r);
        if (!st.ok()) {
            restore(before);
        }
        return st;
    }

    [[nodiscard]] status submit_batch(std::span<const control_request> batch) {
        if (const status st = ready(); !st.ok()) {
            return st;
        }
        const filter before = applied_;
        for (const control_request& r : batch) {
            if (const status st = apply(r); !st.ok()) {
                restore(before);
                return st;
            }
        }
        return status::success();
    }

private:
    // What the device's filter holds, as far as this channel set it.
    struct filter {
        mac_addr mac{};
        bool promisc = true, allmulti = false, nouni = false, nomulti = false, nobcast = false;
        std::uint32_t mcast_count = 0;
        std::array<mac_addr, max_mcast_addrs> mcast{};
        std::array<std::uint64_t, (max_vlan_id + 1) / 64> vlans{};

        [[nodiscard]] bool vlan(std::uint16_t v) const noexcept { return (vlans[v / 64] >> (v % 64) & 1u) != 0; }
        void set_vlan(std::uint16_t v, bool on) noexcept {
            on ? vlans[v / 64] |= 1ull << (v % 64) : vlans[v / 64] &= ~(1ull << (v % 64));
        }
    };

    // ---- the plugin's hook ------------------------------------------------------------------
    static bool enable_hook(void* ctx, const virtio::transport& t, std::uint64_t f, std::uint16_t index,
                            std::uint16_t pairs) noexcept {
        return static_cast<virtio_net_control*>(ctx)->enable(t, f, index, pairs);
    }
    static status start_hook(void* ctx) noexcept { return static_cast<virtio_net_control*>(ctx)->ready(); }
    static void disable_hook(void* ctx) noexcept {
        auto& c = *static_cast<virtio_net_control*>(ctx);
        c.live_ = false;
        c.broken_ = false;
    }

    // Lays the queue out in mem_ (ring, then the command, then the answer) and enables it.
    bool enable(const virtio::transport& t, std::uint64_t f, std::uint16_t index, std::uint16_t pairs) noexcept {
        constexpr std::uint16_t n = virtio_net_control_tuning::queue_size;
        live_ = false;
        broken_ = false;
        ring_.is_packed = (f & virtio::feature::RING_PACKED) != 0;
        if (mem_.virt == nullptr || mem_.size < memory_bytes || t.queue_max(index) < n) {
            return false;
        }
        virtio::queue_setup s{};
        s.size = n;
        s.vector = 0xFFFF; // VIRTIO_MSI_NO_VECTOR: answers are polled
        if (ring_.is_packed) {
            const virtio::packed_layout l = virtio::packed_layout_of(n);
            if (!ring_.packed.reset(virtio::packed_ring::in_block(mem_.virt, n), state_)) {
                return false;
            }
            s.desc = mem_.iova + l.desc;
            s.driver = mem_.iova + l.driver;
            s.device = mem_.iova + l.device;
        } else {
            const virtio::split_layout l = virtio::layout_of(n);
            if (!ring_.split.reset(virtio::split_ring::in_block(mem_.virt, n), state_, false)) {
                return false;
            }
            s.desc = mem_.iova + l.desc;
            s.driver = mem_.iova + l.avail;
            s.device = mem_.iova + l.used;
        }
        ring_.set_ordering(virtio::ordering_of(f)); // the device's barriers, as its data queues
        cmd_off_ = (detail::control_ring_bytes(n) + 63) / 64 * 64;
        ack_off_ = cmd_off_ + 256;
        if (!t.queue_enable(index, s)) {
            return false;
        }
        t_ = t;
        features_ = f;
        index_ = index;
        // The device's filter after its reset (QEMU's virtio_net_reset): promiscuous, its
        // own MAC, no tables, every VLAN allowed.
        applied_ = filter{};
        applied_.vlans.fill(~0ull);
        if ((f & virtio_net::feature::MAC) != 0) {
            t.read_config(0, applied_.mac.data(), 6);
        }
        pairs_owed_ = (f & virtio_net::feature::MQ) != 0 && pairs > 1 ? pairs : 0;
        live_ = true;
        return true;
    }

    [[nodiscard]] bool has(std::uint64_t f) const noexcept { return (features_ & f) != 0; }

    // Whether a command can go now; VQ_PAIRS_SET first when it is owed.
    status ready() noexcept {
        if (!live_) {
            return {errc::bad_state, "virtio-net control: no control queue (no plugin attached, or no CTRL_VQ)"};
        }
        if (broken_) {
            return {errc::device_error,
                    "virtio-net control: the control queue stopped after a device error; the next attach sets it up"};
        }
        if (!t_.present()) {
            return {errc::removed, "virtio-net control: device removed"};
        }
        if (pairs_owed_ != 0) {
            std::uint8_t d[2];
            store_le16(d, pairs_owed_);
            if (const status st = exchange(virtio_net::ctrl::MQ, virtio_net::ctrl::MQ_VQ_PAIRS_SET, d, 2,
                                           "virtio-net: the device refused the number of queue pairs");
                !st.ok()) {
                return st;
            }
            pairs_owed_ = 0;
        }
        return status::success();
    }

    status apply(const control_request& r) noexcept {
        namespace vn = virtio_net;
        switch (r.op) {
        case control_op::set_mac:
            if ((r.mac[0] & 1u) != 0) {
                return {errc::invalid_argument, "virtio-net: MAC is a multicast address"};
            }
            if (r.mac == applied_.mac) {
                return status::success();
            }
            if (!has(vn::feature::CTRL_MAC_ADDR)) {
                return {errc::not_supported, "virtio-net: the device cannot change its MAC (no CTRL_MAC_ADDR)"};
            }
            return set_mac(r.mac);
        case control_op::add_vlan:
        case control_op::del_vlan:
            if (r.vlan > max_vlan_id) {
                return {errc::invalid_argument, "virtio-net: VLAN id above 4095"};
            }
            if (!has(vn::feature::CTRL_VLAN)) {
                return {errc::not_supported, "virtio-net: the device has no VLAN filter (no CTRL_VLAN)"};
            }
            return set_vlan(r.vlan, r.op == control_op::add_vlan);
        case control_op::set_rx_mode: {
            filter w = applied_;
            w.promisc = (r.mode & rx_mode::promisc) != 0;
            w.allmulti = (r.mode & rx_mode::all_multi) != 0;
            w.nouni = (r.mode & rx_mode::unicast) == 0;
            w.nomulti = (r.mode & (rx_mode::multicast | rx_mode::all_multi)) == 0;
            w.nobcast = (r.mode & rx_mode::broadcast) == 0;
            if (!has(vn::feature::CTRL_RX)) {
                return {errc::not_supported, "virtio-net: the device has no RX mode commands (no CTRL_RX)"};
            }
            if ((w.nouni || w.nomulti || w.nobcast) && !has(vn::feature::CTRL_RX_EXTRA)) {
                return {errc::not_supported,
                        "virtio-net: the device cannot refuse unicast, multicast or broadcast (no CTRL_RX_EXTRA)"};
            }
            return set_rx(w);
        }
        case control_op::set_mcast_list: {
            if (r.mcast_count > max_mcast_addrs) {
                return {errc::invalid_argument, "virtio-net: multicast list longer than 32"};
            }
            if (!has(vn::feature::CTRL_RX)) {
                return {errc::not_supported, "virtio-net: the device has no MAC table (no CTRL_RX)"};
            }
            return set_mcast(r.mcast_count, r.mcast);
        }
        case control_op::set_mtu: {
            std::uint8_t b[2] = {0, 0};
            if (has(vn::feature::MTU)) {
                t_.read_config(10, b, 2);
            }
            const std::uint32_t max = has(vn::feature::MTU) ? load_le16(b) : vn::DEFAULT_MTU;
            return r.mtu >= vn::MIN_MTU && r.mtu <= max
                       ? status::success()
                       : status{errc::invalid_argument, "virtio-net: MTU outside the device's range"};
        }
        case control_op::set_rss:
            return r.rss.hash_types == 0
                       ? status::success()
                       : status{errc::not_supported, "virtio-net: RSS configuration not supported"};
        }
        return {errc::invalid_argument, "virtio-net: unknown control request"};
    }

    status set_mac(const mac_addr& m) noexcept {
        const status st = exchange(virtio_net::ctrl::MAC, virtio_net::ctrl::MAC_ADDR_SET, m.data(), 6,
                                   "virtio-net: the device refused the MAC address");
        if (st.ok()) {
            applied_.mac = m;
        }
        return st;
    }
    status set_vlan(std::uint16_t vid, bool on) noexcept {
        std::uint8_t d[2];
        store_le16(d, vid);
        const status st = exchange(virtio_net::ctrl::VLAN, on ? virtio_net::ctrl::VLAN_ADD : virtio_net::ctrl::VLAN_DEL,
                                   d, 2, "virtio-net: the device refused the VLAN filter");
        if (st.ok()) {
            applied_.set_vlan(vid, on);
        }
        return st;
    }
    // The RX commands whose value differs from what the device has, one by one.
    status set_rx(const filter& w) noexcept {
        namespace c = virtio_net::ctrl;
        const struct {
            bool filter::*field;
            std::uint8_t cmd;
        } cmds[] = {{&filter::promisc, c::RX_PROMISC}, {&filter::allmulti, c::RX_ALLMULTI},
                    {&filter::nouni, c::RX_NOUNI},     {&filter::nomulti, c::RX_NOMULTI},
                    {&filter::nobcast, c::RX_NOBCAST}};
        for (const auto& x : cmds) {
            if (w.*x.field == applied_.*x.field) {
                continue;
            }
            const std::uint8_t on = w.*x.field ? 1 : 0;
            if (const status st = exchange(c::RX, x.cmd, &on, 1, "virtio-net: the device refused the RX mode");
                !st.ok()) {
                return st;
            }
            applied_.*x.field = w.*x.field;
        }
        return status::success();
    }
    status set_mcast(std::uint32_t count, const std::array<mac_addr, max_mcast_addrs>& macs) noexcept {
        std::array<std::uint8_t, 8 + 6 * max_mcast_addrs> d{};
        store_le32(d.data(), 0);         // unicast table: empty (the MAC is MAC_ADDR_SET's)
        store_le32(d.data() + 4, count); // multicast table
        for (std::uint32_t i = 0; i < count; ++i) {
            std::memcpy(d.data() + 8 + 6 * i, macs[i].data(), 6);
        }
        const status st = exchange(virtio_net::ctrl::MAC, virtio_net::ctrl::MAC_TABLE_SET, d.data(), 8 + 6 * count,
                                   "virtio-net: the device refused the multicast list");
        if (st.ok()) {
            applied_.mcast_count = count;
            applied_.mcast = macs;
        }
        return st;
    }

    // A failed request or batch: what it changed goes back (best effort: a device that
    // stops answering leaves the queue stopped, and the next attach starts it afresh).
    void restore(const filter& b) noexcept {
        if (!live()) {
            return;
        }
        if (b.mac != applied_.mac) {
            (void)set_mac(b.mac);
        }
        (void)set_rx(b);
        if (b.mcast_count != applied_.mcast_count || b.mcast != applied_.mcast) {
            (void)set_mcast(b.mcast_count, b.mcast);
        }
        for (std::uint16_t v = 0; v <= max_vlan_id && live(); ++v) {
            if (b.vlan(v) != applied_.vlan(v)) {
                (void)set_vlan(v, b.vlan(v));
            }
        }
    }

    // One command: header and data, then the answer byte; waits for the device's used entry
    // and checks it.
    status exchange(std::uint8_t cls, std::uint8_t cmd, const void* data, std::size_t len,
                    const char* refusal) noexcept {
        if (!live()) {
            return {errc::device_error, "virtio-net control: the control queue stopped after a device error"};
        }
        std::byte* c = mem_.virt + cmd_off_;
        const virtio_net::ctrl_hdr h{cls, cmd};
        std::memcpy(c, &h, sizeof h);
        std::memcpy(c + sizeof h, data, len);
        auto* ack = reinterpret_cast<volatile std::uint8_t*>(mem_.virt + ack_off_);
        *ack = 0xFF; // neither OK nor ERR: a device that uses the chain without answering is caught
        const virtio::segment segs[2] = {{mem_.iova + cmd_off_, static_cast<std::uint32_t>(sizeof h + len), false},
                                         {mem_.iova + ack_off_, 1, true}};
        if (ring_.visit([&](auto& d) { return d.add(segs); }) < 0) {
            broken_ = true; // a command is still the device's: it never answered one
            return {errc::device_error, "virtio-net control: the control queue is full"};
        }
        if (ring_.visit([](auto& d) { return d.publish(); })) {
            t_.notify(index_);
        }
        for (std::uint32_t i = 0; i < virtio_net_control_tuning::polls; ++i) {
            virtio::used_chain u;
            bool passed = false;
            const virtio::used_status st =
                ring_.visit([&](auto& d) { return d.poll_used(u, [&](std::uint16_t) { passed = true; }); });
            if (st == virtio::used_status::empty) {
                if (!t_.present()) {
                    broken_ = true;
                    return {errc::removed, "virtio-net control: device removed"};
                }
                if (wait_ != nullptr) {
                    wait_(wait_ctx_);
                }
                continue;
            }
            if (st != virtio::used_status::ok || passed) {
                broken_ = true;
                return {errc::device_error, "virtio-net control: the device's used entry names no command it holds"};
            }
            if (u.len != 1) {
                broken_ = true;
                return {errc::device_error,
                        u.len == 0 ? "virtio-net control: the device used a command without answering it"
                                   : "virtio-net control: the device says it wrote past the one-byte answer"};
            }
            const std::uint8_t a = *ack;
            if (a == virtio_net::ctrl::OK) {
                ++ok_;
                return status::success();
            }
            if (a == virtio_net::ctrl::ERR) {
                return {errc::refused, refusal};
            }
            broken_ = true;
            return {errc::device_error, "virtio-net control: the device answered neither OK nor ERR"};
        }
        broken_ = true; // the chain is still the device's: nothing more goes on this queue
        return {errc::timeout, "virtio-net control: the device did not answer a command"};
    }

    virtio_net::ring_memory mem_{};
    wait_fn wait_ = nullptr;
    void* wait_ctx_ = nullptr;
    virtio_net::control_hook hook_{};
    virtio::transport t_{};
    virtio::ring_driver ring_; // the layout the plugin negotiated
    static constexpr std::uint16_t n_ = virtio_net_control_tuning::queue_size; // the ring's entries
    std::array<std::uint16_t, (virtio::ring_driver::state_words(n_, false) > virtio::ring_driver::state_words(n_, true)
                                   ? virtio::ring_driver::state_words(n_, false)
                                   : virtio::ring_driver::state_words(n_, true))>
        state_{};
    std::size_t cmd_off_ = 0, ack_off_ = 0;
    std::uint64_t features_ = 0;
    std::uint16_t index_ = 0;
    std::uint16_t pairs_owed_ = 0; // VQ_PAIRS_SET not yet sent
    bool live_ = false, broken_ = false;
    std::uint64_t ok_ = 0;
    filter applied_{};
};
static_assert(control_channel<virtio_net_control>);

} // namespace npa
