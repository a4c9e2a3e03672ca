// npa/control/igbvf.hpp: the control path of an 82576 VF, shell side.
//
// An npa::control_channel that speaks the PF mailbox protocol (82576 datasheet 7.8.2.9;
// Linux igbvf mbx.c describes the same handshake): take the buffer (VFU), write the
// message into VMBMEM, set REQ; wait for PFACK; wait for PFSTS, read the reply, set ACK.
// The reply's word 0 carries the request id with ACK (done) or NACK (refused). A NACK
// becomes errc::refused with the PF's reason (npa/plugins/igbvf/defs.hpp nack_reason).
//
// The plugin never sees this object: the shell holds it and reaches it through a
// control_link, so a plugin has no way to send a mailbox message.
//
// A PF reset shows only here: V2PMAILBOX's RSTI while the PF resets, RSTD once it is done
// (read to clear). Linux's igbvf takes either as the link lost and re-initialises the VF
// (e1000_check_for_rst_vf, from e1000_check_for_link_vf in its watchdog), because the PF
// has forgotten the VF's filters and takes nothing but RESET from it. Every read of
// V2PMAILBOX here keeps them, and health() reports errc::reset until the RESET handshake
// is done again; the shell then falls back and brings the VF up anew.
#pragma once

#include <npa/concepts/control_channel.hpp>
#include <npa/control.hpp>
#include <npa/plugins/igbvf/defs.hpp>
#include <npa/plugins/igbvf/window.hpp>
#include <npa/status.hpp>

#include <array>
#include <cstdint>
#include <span>

namespace npa {

// ---- tuning constants -----------------------------------------------------------------
/// Polls of V2PMAILBOX before a mailbox step times out. igbvf allows 2000 polls 500 us
/// apart (1 s); the wait hook decides how long a poll takes (a sim PF answers at once).
inline constexpr std::uint32_t igbvf_mbx_polls = 2000;

class igbvf_control {
public:
    /// `wait` is called between polls (a real host sleeps; a sim steps its PF).
    using wait_fn = void (*)(void* ctx) noexcept;

    igbvf_control() noexcept = default;
    explicit igbvf_control(igbvf_mailbox_port port, wait_fn wait = nullptr,
                           void* wait_ctx = nullptr) noexcept
        : port_(port), wait_(wait), wait_ctx_(wait_ctx) {}

    /// E1000_VF_RESET: the PF resets the VF's filters and answers with the MAC it assigned.
    /// A NACK is no refusal here: Linux's igb PF NACKs the reset of a VF it has no MAC for
    /// (none pinned, none set since the VF's last function reset) and still makes the VF
    /// clear to send; `assigned` is then all zeroes and the VF picks its own (SET_MAC_ADDR),
    /// as Linux igbvf does.
    [[nodiscard]] status reset(mac_addr& assigned) {
        std::array<std::uint32_t, igbvf::mbx::size> msg{};
        msg[0] = igbvf::mbx::vf_reset;
        std::array<std::uint32_t, igbvf::mbx::size> reply{};
        if (const status st = exchange(msg, 1, reply); !st) {
            if (st.code() != errc::refused) {
                return st;
            }
            reply = {};  // NACK: no MAC (the PF did not write words 1-2 with one)
        }
        unpack_mac(reply, assigned);
        state_ = {};
        state_.mac = assigned;
        reset_mac_ = assigned;
        reset_pending_ = false;
        pf_reset_ = false;  // the handshake answers the PF's reset too
        return status::success();
    }

    /// reset() for a VF that was just reset (CTRL.RST, FLR): its PF may still hold the
    /// mailbox while it handles the reset event, so a busy mailbox is asked again between
    /// waits, as long as one mailbox step may poll.
    [[nodiscard]] status reset_when_free(mac_addr& assigned) {
        status st = reset(assigned);
        for (std::uint32_t i = 0; i < igbvf_mbx_polls && st.code() == errc::busy; ++i) {
            if (wait_ != nullptr) {
                wait_(wait_ctx_);
            }
            st = reset(assigned);
        }
        return st;
    }

    /// The VF was reset behind the driver's back (a function-level reset: its queues came
    /// back disabled), or is being brought up anew (the shell attached its plugin and is
    /// about to replay the whole control state). Linux's igb PF refuses every message but
    /// RESET from a VF that was reset until it has done the handshake again (it clears the
    /// VF's clear-to-send flag), and a reset while the VF was not in use is seen by nobody,
    /// so a bring-up starts with RESET too, as Linux's igbvf does at each one. The next
    /// request sends RESET first; the PF forgets the VF's filters there, and the replay that
    /// follows puts them back.
    void device_reset() noexcept { reset_pending_ = true; }

    /// A reset is waiting for its handshake (telemetry, tests).
    [[nodiscard]] bool reset_pending() const noexcept { return reset_pending_; }

    /// What the mailbox says of the VF, asked as Linux's igbvf watchdog asks
    /// e1000_check_for_link_vf: RSTI or RSTD seen since the last RESET handshake is a PF
    /// reset (errc::reset); a mailbox reading all ones, a VF that is gone. A PFSTS this
    /// read clears (a message the PF started) is kept for the next request, as Linux keeps
    /// the bits it read in mbx.v2p_mailbox. Control path: on the thread of the requests.
    [[nodiscard]] errc health() noexcept {
        const std::uint32_t v = read_vmmb();
        if (v == igbvf::reg_removed) {
            return errc::removed;
        }
        kept_ |= v & igbvf::mbx::pfsts;
        return pf_reset_ ? errc::reset : errc::ok;
    }

    [[nodiscard]] status submit(const control_request& r) {
        if (const status st = handshake_if_reset(); !st) {
            return st;
        }
        if (r.op == control_op::set_mac && r.mac == reset_mac_ && r.mac == state_.mac &&
            r.mac != mac_addr{}) {
            // The PF programmed this MAC at the reset, and Linux's igb NACKs every
            // SET_MAC_ADDR of a VF whose MAC it pinned, that same MAC included: asking for
            // the MAC in effect since the reset is answered here (a replay after attach).
            return status::success();
        }
        std::array<std::uint32_t, igbvf::mbx::size> msg{};
        std::uint32_t words = 0;
        if (const status st = encode(r, msg, words); !st) {
            return st;
        }
        std::array<std::uint32_t, igbvf::mbx::size> reply{};
        if (const status st = exchange(msg, words, reply); !st) {
            return st;
        }
        remember(r);
        return status::success();
    }

    /// All or nothing: on a failure, what the batch had applied is undone (in reverse)
    /// from the state this channel knows was in effect before.
    [[nodiscard]] status submit_batch(std::span<const control_request> batch) {
        if (const status st = handshake_if_reset(); !st) {
            return st;
        }
        const known saved = state_;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const status st = submit(batch[i]);
            if (!st) {
                const known applied = state_;
                state_ = saved;
                rollback(saved, applied, batch.first(i));
                return st;
            }
        }
        return status::success();
    }

    /// Messages the PF started (its CTS ping) taken and ACKed on the way (telemetry).
    [[nodiscard]] std::uint64_t pf_messages() const noexcept { return pf_messages_; }

    /// Mailbox round trips made (telemetry).
    [[nodiscard]] std::uint64_t messages() const noexcept { return messages_; }

private:
    struct known {
        mac_addr mac{};
        std::uint32_t mtu = 1500;
        std::uint32_t mode = rx_mode::unicast | rx_mode::broadcast | rx_mode::multicast;
        std::uint32_t mcast_count = 0; ///< the multicast list last accepted (empty at reset)
        std::array<mac_addr, max_mcast_addrs> mcast{};

        [[nodiscard]] bool same_mcast(const known& o) const noexcept {
            if (mcast_count != o.mcast_count) {
                return false;
            }
            for (std::uint32_t i = 0; i < mcast_count; ++i) {
                if (mcast[i] != o.mcast[i]) {
                    return false;
                }
            }
            return true;
        }
    };

    // The RESET owed since device_reset(); not done (busy, timeout), it stays owed and the
    // request is not sent.
    status handshake_if_reset() {
        if (!reset_pending_) {
            return status::success();
        }
        mac_addr assigned{};
        return reset_when_free(assigned);
    }

    static void pack_mac(const mac_addr& m, std::array<std::uint32_t, igbvf::mbx::size>& msg) noexcept {
        // Bytes in order from word 1, as the VF's message buffer is a byte array.
        msg[1] = std::uint32_t{m[0]} | std::uint32_t{m[1]} << 8 | std::uint32_t{m[2]} << 16 |
                 std::uint32_t{m[3]} << 24;
        msg[2] = std::uint32_t{m[4]} | std::uint32_t{m[5]} << 8;
    }
    static void unpack_mac(const std::array<std::uint32_t, igbvf::mbx::size>& msg, mac_addr& m) noexcept {
        for (int i = 0; i < 4; ++i) m[i] = static_cast<std::uint8_t>(msg[1] >> (8 * i));
        m[4] = static_cast<std::uint8_t>(msg[2]);
        m[5] = static_cast<std::uint8_t>(msg[2] >> 8);
    }

    static status encode(const control_request& r, std::array<std::uint32_t, igbvf::mbx::size>& msg,
                         std::uint32_t& words) noexcept {
        namespace m = igbvf::mbx;
        switch (r.op) {
        case control_op::set_mac:
            msg[0] = m::vf_set_mac_addr;
            pack_mac(r.mac, msg);
            words = 3;
            return {};
        case control_op::add_vlan:
        case control_op::del_vlan:
            if (r.vlan == 0 || r.vlan > max_vlan_id) {
                return {errc::invalid_argument, "igbvf: VLAN id outside 1..4095"};
            }
            msg[0] = m::vf_set_vlan | (r.op == control_op::add_vlan ? m::vf_set_vlan_add : 0);
            msg[1] = r.vlan;
            words = 2;
            return {};
        case control_op::set_mtu:
            // SET_LPE carries the largest frame: MTU + Ethernet header + FCS + one VLAN tag,
            // as Linux's igbvf_set_rlpml sends it (a PF like today's igb programs RLPML with
            // it unchanged, and the device counts a tag against RLPML).
            msg[0] = m::vf_set_lpe;
            msg[1] = r.mtu + 14 + 4 + 4;
            words = 2;
            return {};
        case control_op::set_rx_mode:
            msg[0] = m::vf_set_promisc |
                     ((r.mode & rx_mode::promisc) != 0 ? m::vf_set_promisc_unicast : 0) |
                     ((r.mode & (rx_mode::all_multi | rx_mode::promisc)) != 0
                          ? m::vf_set_promisc_multicast : 0);
            words = 1;
            return {};
        case control_op::set_mcast_list: {
            if (r.mcast_count > m::max_mcast_hashes) {
                return {errc::invalid_argument, "igbvf: more than 30 multicast addresses"};
            }
            msg[0] = m::vf_set_multicast | (r.mcast_count << m::msginfo_shift);
            for (std::uint32_t i = 0; i < r.mcast_count; ++i) {
                const std::uint32_t h = igbvf::mta_hash(r.mcast[i].data());
                msg[1 + i / 2] |= h << (16 * (i % 2));
            }
            words = 1 + (r.mcast_count + 1) / 2;
            return {};
        }
        case control_op::set_rss:
            return {errc::not_supported, "igbvf: an 82576 VF has no RSS of its own"};
        }
        return {errc::invalid_argument, "igbvf: unknown control request"};
    }

    void remember(const control_request& r) noexcept {
        if (r.op == control_op::set_mac) state_.mac = r.mac;
        if (r.op == control_op::set_mtu) state_.mtu = r.mtu;
        if (r.op == control_op::set_rx_mode) state_.mode = r.mode;
        if (r.op == control_op::set_mcast_list) {
            state_.mcast_count = r.mcast_count;
            state_.mcast = r.mcast;
        }
    }

    // Undo what `done` applied: VLANs added are removed (and removed ones re-added), the
    // MAC, MTU, RX mode and multicast list go back to what they were. Best effort: a failing undo is
    // reported by the PF's own state, nothing more can be done from here.
    void rollback(const known& before, const known& after, std::span<const control_request> done) {
        for (std::size_t i = done.size(); i-- > 0;) {
            const control_request& r = done[i];
            if (r.op == control_op::add_vlan || r.op == control_op::del_vlan) {
                (void)send_quiet(control_request::make_vlan(r.op == control_op::del_vlan, r.vlan));
            }
        }
        if (before.mac != after.mac) (void)send_quiet(control_request::make_set_mac(before.mac));
        if (before.mtu != after.mtu) (void)send_quiet(control_request::make_mtu(before.mtu));
        if (before.mode != after.mode) (void)send_quiet(control_request::make_rx_mode(before.mode));
        if (!before.same_mcast(after)) {
            control_request m;
            m.op = control_op::set_mcast_list;
            m.mcast_count = before.mcast_count;
            m.mcast = before.mcast;
            (void)send_quiet(m);
        }
    }
    status send_quiet(const control_request& r) {
        std::array<std::uint32_t, igbvf::mbx::size> msg{}, reply{};
        std::uint32_t words = 0;
        if (const status st = encode(r, msg, words); !st) {
            return st;
        }
        return exchange(msg, words, reply);
    }

    // PFACK and PFSTS are read-to-clear: every read's bits are kept in `seen`, so a read
    // that returns both satisfies both waits.
    bool poll_for(std::uint32_t bits, std::uint32_t& seen) noexcept {
        for (std::uint32_t i = 0; i < igbvf_mbx_polls; ++i) {
            if ((seen & bits) != 0) {
                return true;
            }
            const std::uint32_t v = read_vmmb();
            if (v == igbvf::reg_removed) {
                return false;
            }
            seen |= v;
            if ((seen & bits) != 0) {
                return true;
            }
            if (wait_ != nullptr) {
                wait_(wait_ctx_);
            }
        }
        return false;
    }

    // One request/reply round trip.
    status exchange(const std::array<std::uint32_t, igbvf::mbx::size>& msg, std::uint32_t words,
                    std::array<std::uint32_t, igbvf::mbx::size>& reply) noexcept {
        namespace m = igbvf::mbx;
        // PFSTS, PFACK and RSTD clear on read; what health() read before is added back.
        const std::uint32_t now = read_vmmb();
        if (now == igbvf::reg_removed) {
            return {errc::removed, "igbvf: VF removed (mailbox reads all ones)"};
        }
        const std::uint32_t before = now | kept_;
        kept_ = 0;
        // 0. a message the PF started (PFSTS was set, e.g. its CTS ping) is taken and
        //    ACKed first: its PFSTS would otherwise pass for the reply to this request.
        if ((before & m::pfsts) != 0) {
            drain();
        }
        // 1. take the buffer: VFU, read back (the PF may hold it with PFU).
        port_.write_vmmb(m::vfu);
        if ((read_vmmb() & m::vfu) == 0) {
            return {errc::busy, "igbvf: the PF holds the mailbox"};
        }
        // 2. message, then REQ (which also releases VFU).
        for (std::uint32_t i = 0; i < words; ++i) {
            port_.write_mem(i, msg[i]);
        }
        port_.write_vmmb(m::req);
        ++messages_;
        // 3. the PF took it (PFACK), then answered (PFSTS).
        std::uint32_t seen = 0;
        if (!poll_for(m::pfack | m::pfsts, seen)) {
            return {errc::timeout, "igbvf: no PFACK from the PF"};
        }
        // A PF message that crossed this request is ACKed and the reply waited for again.
        for (int round = 0; round < 3; ++round) {
            if (!poll_for(m::pfsts, seen)) {
                return {errc::timeout, "igbvf: no reply from the PF"};
            }
            port_.write_vmmb(m::vfu);
            for (std::uint32_t i = 0; i < m::size; ++i) {
                reply[i] = port_.read_mem(i);
            }
            port_.write_vmmb(m::ack);
            if ((reply[0] & m::msgid_mask) != m::pf_control_msg) {
                break;
            }
            ++pf_messages_;
            seen = 0;
        }
        // 4. the verdict, for this request only.
        if ((reply[0] & m::msgid_mask) != (msg[0] & m::msgid_mask)) {
            return {errc::device_error, "igbvf: the PF answered another request"};
        }
        if ((reply[0] & m::msgtype_nack) != 0) {
            // Only a tagged reason word is a reason (defs.hpp nack_reason_tag): a real PF
            // leaves the request's word 1 there.
            const std::uint32_t w = reply[m::nack_reason_word];
            const std::uint32_t why = (w & m::nack_reason_tag_mask) == m::nack_reason_tag &&
                                              (w & ~m::nack_reason_tag_mask) <= igbvf::nack_reason_max
                                          ? w & ~m::nack_reason_tag_mask : 0;
            return {errc::refused, to_string(static_cast<igbvf::nack_reason>(why))};
        }
        if ((reply[0] & m::msgtype_ack) == 0) {
            return {errc::device_error, "igbvf: the PF's reply is neither ACK nor NACK"};
        }
        return status::success();
    }

    // V2PMAILBOX, its reset bits noted (pf_reset_) whoever reads it.
    std::uint32_t read_vmmb() noexcept {
        const std::uint32_t v = port_.read_vmmb();
        if (v != igbvf::reg_removed && (v & (igbvf::mbx::rsti | igbvf::mbx::rstd)) != 0) {
            pf_reset_ = true;
        }
        return v;
    }

    // Reads the PF's own message (PFSTS was set) and ACKs it.
    void drain() noexcept {
        (void)port_.read_mem(0);
        port_.write_vmmb(igbvf::mbx::ack);
        ++pf_messages_;
    }

    igbvf_mailbox_port port_{};
    wait_fn wait_ = nullptr;
    std::uint64_t pf_messages_ = 0;
    void* wait_ctx_ = nullptr;
    known state_{};
    mac_addr reset_mac_{};  ///< the MAC the PF gave at the last reset (zero: none)
    bool reset_pending_ = false;  ///< the VF was reset; RESET goes before the next request
    bool pf_reset_ = false;       ///< RSTI or RSTD seen since the last RESET handshake
    std::uint32_t kept_ = 0;      ///< the PFSTS health() read and cleared, for exchange()
    std::uint64_t messages_ = 0;
};
static_assert(control_channel<igbvf_control>);

} // namespace npa
