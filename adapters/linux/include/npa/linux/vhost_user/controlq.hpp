// npa/linux/vhost_user/controlq.hpp: a virtio-net control virtqueue served in the front end,
// as QEMU's net front end and DPDK's virtio_user (cq=1) serve it: no vhost-user back end
// has one. transport.hpp offers it to the plugin when net_config::control_queue is set.
//
//   memory     memory(): this object's own; its device addresses are its addresses, and
//              no back end reads it. The controlq must lie in it (start() checks each area).
//   walk       every chain is taken by the virtqueue core's device side (device_queue.hpp,
//              split or packed as the data queues are), each segment checked to lie in
//              memory(); a refused chain is used unanswered and counted (`refused`).
//   answers    the readable part is the command (class, command, data); the answer goes in
//              the first writable byte (OK or ERR) and the chain is used with length 1. A
//              chain with nowhere to answer is used with length 0, not executed.
//   commands   VQ_PAIRS_SET (MQ) is carried out by the caller (serve()'s `set_pairs`: the
//              transport turns it into SET_VRING_ENABLE); MAC_ADDR_SET, MAC_TABLE_SET, RX
//              PROMISC / ALLMULTI and VLAN ADD / DEL are checked, kept (state()) and
//              answered OK: no vhost-user back end filters by them, as with QEMU's and
//              DPDK's front ends. Anything else, a command whose feature was not taken, or
//              data of a length the command does not have, is answered ERR.
#pragma once

#include <npa/endian.hpp>
#include <npa/plugins/virtio_net/defs.hpp>
#include <npa/plugins/virtio_net/window.hpp>
#include <npa/virtio/device_queue.hpp>
#include <npa/virtio/transport.hpp>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace npa::vhost_user {

/// What the controlq was told (control_server::state()).
struct control_state {
    std::uint16_t pairs = 1;                      ///< pairs running (VQ_PAIRS_SET)
    std::array<std::uint8_t, 6> mac{};            ///< MAC_ADDR_SET's (zero: none yet)
    bool promisc = true, allmulti = false;        ///< RX PROMISC / ALLMULTI (a device resets promiscuous)
    std::uint32_t uc_entries = 0, mc_entries = 0; ///< MAC_TABLE_SET's two tables
    std::bitset<4096> vlans;                      ///< VLAN ADD / DEL
    std::uint64_t ok = 0, err = 0;                ///< commands answered OK / ERR
    std::uint64_t refused = 0;                    ///< chains the walk refused (used unanswered)

    [[nodiscard]] bool vlan(std::uint16_t v) const noexcept { return v < vlans.size() && vlans[v]; }
};

class control_server {
public:
    /// The controlq's largest size, the bytes of memory(), and the most entries one
    /// MAC_TABLE_SET table may have (QEMU's MAC_TABLE_ENTRIES).
    static constexpr std::uint16_t queue_max = 64;
    static constexpr std::size_t bytes = 8192;
    static constexpr std::size_t max_table = 64;

    control_server() noexcept = default;
    control_server(const control_server&) = delete;
    control_server& operator=(const control_server&) = delete;

    /// Memory for the shell's control channel (npa/control/virtio_net.hpp).
    [[nodiscard]] virtio_net::ring_memory memory() noexcept {
        return {mem_.data(), reinterpret_cast<iova_t>(mem_.data()), mem_.size()};
    }
    [[nodiscard]] const control_state& state() const noexcept { return state_; }
    [[nodiscard]] bool live() const noexcept { return live_; }

    /// The driver enables the controlq (`packed`: the negotiated layout): false, nothing
    /// started, when an area lies outside memory() or the size is one the layout refuses.
    /// The state starts as a device's after its reset.
    [[nodiscard]] bool start(const virtio::queue_setup& s, bool packed) noexcept {
        live_ = false;
        const std::uint32_t n = s.size;
        if (n > queue_max) {
            return false;
        }
        bool ok = false;
        if (packed) {
            std::byte* d = at(s.desc, virtio::packed_desc_bytes(n));
            std::byte* drv = at(s.driver, sizeof(virtio::pvirtq_event_suppress));
            std::byte* dv = at(s.device, sizeof(virtio::pvirtq_event_suppress));
            ok = virtio::packed_size_ok(n) && d != nullptr && drv != nullptr && dv != nullptr &&
                 q_.reset(virtio::packed_ring(d, drv, dv, n));
        } else if (virtio::queue_size_ok(n)) {
            std::byte* d = at(s.desc, virtio::desc_bytes(n));
            std::byte* a = at(s.driver, virtio::avail_bytes(n));
            std::byte* u = at(s.device, virtio::used_bytes(n));
            ok = d != nullptr && a != nullptr && u != nullptr && q_.reset(virtio::split_ring(d, a, u, n), false);
        }
        if (ok) {
            state_ = {};
            live_ = true;
        }
        return ok;
    }
    /// The device was reset: the controlq is gone.
    void stop() noexcept { live_ = false; }
    /// Forgets what it was told (a new connection).
    void clear() noexcept {
        live_ = false;
        state_ = {};
    }

    /// Serves every command waiting. `features`: those negotiated (a command needs its own);
    /// `max_pairs`: max_virtqueue_pairs; `set_pairs(n)` runs n pairs, false when it could not
    /// (the command is answered ERR).
    template <class SetPairs>
    void serve(std::uint64_t features, std::uint16_t max_pairs, SetPairs&& set_pairs) noexcept {
        while (live_) {
            virtio::chain c;
            std::uint16_t descs = 0;
            std::array<virtio::segment, 8> segs;
            std::array<std::byte*, 8> host{}; // where segs[i] lies, from the address check
            std::uint16_t nh = 0;
            const auto ok = [&](std::uint64_t a, std::uint32_t l, bool) {
                std::byte* p = at(a, l);
                if (p != nullptr) {
                    host[nh++] = p;
                }
                return p != nullptr;
            };
            const virtio::pop_status ps = q_.pop(c, descs, segs, ok);
            if (ps == virtio::pop_status::empty) {
                break;
            }
            if (ps == virtio::pop_status::broken) { // an impossible index: left alone
                live_ = false;
                ++state_.refused;
                break;
            }
            if (ps == virtio::pop_status::refused) {
                ++state_.refused;
                if (q_.last_error() != virtio::chain_error::head_range) {
                    q_.push_used(c.head, 0, descs);
                }
                continue;
            }
            std::array<std::uint8_t, 2 + 8 + 6 * 2 * max_table> cmd{}; // the largest command
            std::size_t len = 0;
            bool too_long = false;
            for (std::uint16_t i = 0; i < c.readable; ++i) {
                const std::size_t k = std::min<std::size_t>(segs[i].len, cmd.size() - len);
                too_long = too_long || k < segs[i].len;
                std::memcpy(cmd.data() + len, host[i], k);
                len += k;
            }
            std::uint32_t written = 0;
            if (c.segments > c.readable && segs[c.readable].len >= 1) {
                const std::uint8_t ack = too_long ? virtio_net::ctrl::ERR
                                                  : command({cmd.data(), len}, features, max_pairs, set_pairs);
                *host[c.readable] = std::byte{ack};
                ++(ack == virtio_net::ctrl::OK ? state_.ok : state_.err);
                written = 1;
            } else {
                ++state_.err; // nowhere to answer: not executed
            }
            q_.push_used(c.head, written, descs);
        }
        q_.publish_used();
    }

private:
    // Where [iova, iova + len) of memory() is here, or nullptr.
    [[nodiscard]] std::byte* at(std::uint64_t iova, std::uint64_t len) noexcept {
        const auto base = reinterpret_cast<std::uint64_t>(mem_.data());
        if (iova < base || iova - base > mem_.size() || len > mem_.size() - (iova - base)) {
            return nullptr;
        }
        return mem_.data() + (iova - base);
    }

    // One command (header, data): OK or ERR, applied when OK.
    template <class SetPairs>
    std::uint8_t command(std::span<const std::uint8_t> b, std::uint64_t f, std::uint16_t max_pairs,
                         SetPairs& set_pairs) noexcept {
        namespace vn = virtio_net;
        if (b.size() < 2) {
            return vn::ctrl::ERR;
        }
        const std::uint8_t cls = b[0], cmd = b[1];
        const std::span<const std::uint8_t> data = b.subspan(2);
        if (cls == vn::ctrl::MQ && cmd == vn::ctrl::MQ_VQ_PAIRS_SET) {
            if ((f & vn::feature::MQ) == 0 || data.size() != 2) {
                return vn::ctrl::ERR;
            }
            const std::uint16_t n = load_le16(data.data());
            if (n < 1 || n > max_pairs || !set_pairs(n)) {
                return vn::ctrl::ERR;
            }
            state_.pairs = n;
            return vn::ctrl::OK;
        }
        if (cls == vn::ctrl::RX && (f & vn::feature::CTRL_RX) != 0 && data.size() == 1 &&
            (cmd == vn::ctrl::RX_PROMISC || cmd == vn::ctrl::RX_ALLMULTI) && data[0] <= 1) {
            (cmd == vn::ctrl::RX_PROMISC ? state_.promisc : state_.allmulti) = data[0] == 1;
            return vn::ctrl::OK;
        }
        if (cls == vn::ctrl::MAC && cmd == vn::ctrl::MAC_ADDR_SET && (f & vn::feature::CTRL_MAC_ADDR) != 0 &&
            data.size() == 6) {
            std::memcpy(state_.mac.data(), data.data(), 6);
            return vn::ctrl::OK;
        }
        if (cls == vn::ctrl::MAC && cmd == vn::ctrl::MAC_TABLE_SET && (f & vn::feature::CTRL_RX) != 0) {
            // two tables, each le32 entries then 6 bytes an entry, filling the data exactly
            if (data.size() < 4) {
                return vn::ctrl::ERR;
            }
            const std::uint32_t uc = load_le32(data.data());
            if (uc > max_table || data.size() < 4 + 6 * std::size_t{uc} + 4) {
                return vn::ctrl::ERR;
            }
            const std::uint32_t mc = load_le32(data.data() + 4 + 6 * std::size_t{uc});
            if (mc > max_table || data.size() != 8 + 6 * (std::size_t{uc} + mc)) {
                return vn::ctrl::ERR;
            }
            state_.uc_entries = uc;
            state_.mc_entries = mc;
            return vn::ctrl::OK;
        }
        if (cls == vn::ctrl::VLAN && (f & vn::feature::CTRL_VLAN) != 0 && data.size() == 2 &&
            (cmd == vn::ctrl::VLAN_ADD || cmd == vn::ctrl::VLAN_DEL)) {
            const std::uint16_t v = load_le16(data.data());
            if (v >= state_.vlans.size()) {
                return vn::ctrl::ERR;
            }
            state_.vlans[v] = cmd == vn::ctrl::VLAN_ADD;
            return vn::ctrl::OK;
        }
        return vn::ctrl::ERR;
    }

    bool live_ = false;
    virtio::device_queue q_{};
    control_state state_{};
    alignas(64) std::array<std::byte, bytes> mem_{};
};

} // namespace npa::vhost_user
