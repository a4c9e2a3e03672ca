// npa/sim/sriov_nic.hpp: an SR-IOV NIC: VFs and a PF uplink behind an embedded switch,
// with the PF driver that answers the VFs' mailboxes and owns policy.
//
//   guest A --igbvf_device 0--.                       .-- uplink (frame_port): cable it to
//   guest B --igbvf_device 1--+-- embedded switch ----'   the sim l2_switch, the wire ...
//                                      ^
//                                 pf_driver: per-VF policy (allowed MACs, assigned VLAN,
//                                 MTU limit, promiscuous allowed), answers the mailbox
//
// Embedded switch (82576 datasheet 7.10 "Virtualization": L2 switching by MAC and VLAN,
// anti-spoofing):
//   from a VF: the source MAC must be the one the PF gave that VF, and a tagged frame's
//   VLAN one it may use, otherwise the frame is dropped and counted (anti-spoofing); a
//   frame longer than the VF's MTU (what the PF accepted through SET_LPE) is dropped and
//   counted (oversize); a VF with an assigned (port) VLAN has it inserted; then the frame
//   goes to another VF whose (MAC, VLAN) it is for (VM-to-VM), or to the uplink;
//   broadcast and multicast go to both.
//   from the uplink: to the VF whose (MAC, VLAN) matches (the port VLAN is stripped),
//   broadcast and multicast to every VF of that VLAN, unknown unicast nowhere (counted);
//   a promiscuous VF gets every frame of its VLAN.
//
// Use (a hypervisor in a scenario):
//   auto nic = sriov_nic::create(guest_mem, {.vfs = 2, .vf = {.limits = this_hosts_vf}});
//   nic->pf().set_policy(0, {.default_mac = m, .allowed_macs = {...}, .port_vlan = 0});
//   connect(**nic, vswitch.port_at(k));                    // the uplink
//   shell.request_switch(shell.add_path<igbvf_plugin>(nic->vf(0).window(), control_link::to(ctl)), reason);
//     where ctl is an igbvf_control on nic->vf(0).mailbox_port()
//   nic->vf(0).remove() / revive()                         // hot removal, hot add
//   nic->switch_stats(0).spoofed                           // anti-spoofing drops
#pragma once

#include <npa/plugins/igbvf/defs.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/igbvf_device.hpp>
#include <npa/sim/wire.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

namespace npa::sim {

/// What the hypervisor lets one VF do: the sim's one port policy (device/policy.hpp).
using vf_policy = port_policy;

/// What the PF has accepted for one VF.
struct vf_state {
    mac_addr mac{};
    std::set<std::uint16_t> vlans;
    std::uint32_t mtu = 1500;
    bool promisc = false;
    std::uint32_t mcast_count = 0;
};

struct vf_switch_stats {
    std::uint64_t spoofed = 0;        ///< frames sent with a source MAC the VF does not own
    std::uint64_t vlan_violations = 0;///< frames sent on a VLAN the VF may not use
    std::uint64_t oversize = 0;       ///< longer than the VF's MTU, or than the wire once tagged
    std::uint64_t to_uplink = 0, to_vfs = 0, from_uplink = 0;
};

struct pf_stats {
    std::uint64_t acks = 0, nacks = 0;
    igbvf::nack_reason last_nack = igbvf::nack_reason::unspecified;
};

class sriov_nic;

/// The PF driver: answers VF mailbox messages by policy.
class pf_driver {
public:
    explicit pf_driver(sriov_nic& nic) noexcept : nic_(nic) {}

    void set_policy(std::uint16_t vf, const vf_policy& p);
    [[nodiscard]] const vf_policy& policy(std::uint16_t vf) const { return vfs_[vf].policy; }
    [[nodiscard]] vf_state state(std::uint16_t vf) const {
        std::lock_guard g(mu_);
        return vfs_[vf].state;
    }
    [[nodiscard]] pf_stats stats(std::uint16_t vf) const {
        std::lock_guard g(mu_);
        return vfs_[vf].st;
    }
    /// Handles the message in VF `vf`'s mailbox (called when the VF sets REQ).
    void on_message(std::uint16_t vf) noexcept;
    /// PF_CONTROL_MSG with CTS in VF `vf`'s mailbox, as Linux's igb sends every VF when it
    /// comes up or resets (igb_ping_all_vfs); it waits with PFSTS until the VF ACKs it.
    /// sriov_nic::create pings every VF, as the PF driver does when the VFs are enabled.
    void ping(std::uint16_t vf) noexcept;
    /// The PF resets itself, as Linux's igb does in igb_reset (ifdown and up, an MTU
    /// change, error recovery): every VF's mailbox shows RSTI, and the PF forgets each VF's
    /// filters and clear-to-send, so it takes nothing but RESET from it again.
    /// reset_done() is the end of it (CTRL_EXT.PFRSTD): RSTI gives way to RSTD. The VFs'
    /// queue registers are left as they are: the mailbox alone tells a VF of the reset.
    void reset() noexcept;
    void reset_done() noexcept;

private:
    friend class sriov_nic;
    struct per_vf {
        vf_policy policy;
        vf_state state;
        pf_stats st;
        /// Clear to send: Linux's igb refuses every message but RESET from a VF that was
        /// reset (FLR, CTRL.RST) until it sends RESET. A VF starts clear here (its
        /// handshake taken as done when the sim hands it over).
        bool cts = true;
        std::uint64_t resets_seen = 0;  ///< the VF's reset count the PF has handled

        /// After a reset of the VF's or the PF's own: the filters go back to defaults (the
        /// MAC stays) and the VF is no longer clear to send.
        void forget() noexcept {
            cts = false;
            const mac_addr keep = state.mac;
            state = vf_state{};
            state.mac = keep;
        }
    };
    void resize(std::size_t n) { vfs_.resize(n); }
    igbvf::nack_reason decide(per_vf& v, const std::uint32_t* msg, std::uint32_t* reply) noexcept;

    sriov_nic& nic_;
    mutable std::mutex mu_;
    std::vector<per_vf> vfs_;
};

struct sriov_nic_config {
    std::uint16_t vfs = 2;
    igbvf_device_config vf{};  ///< every VF's device model (names are vf0, vf1 ...)
};

class sriov_nic final : public frame_port, private vf_uplink {
public:
    [[nodiscard]] static result<std::unique_ptr<sriov_nic>> create(guest_memory& mem,
                                                                   const sriov_nic_config& c) {
        if (c.vfs == 0 || c.vfs > max_vfs) {
            return {errc::invalid_argument, "sriov_nic: 1..8 VFs"};
        }
        std::unique_ptr<sriov_nic> n(new (std::nothrow) sriov_nic());
        if (!n) {
            return {errc::no_memory, "sriov_nic: allocation failed"};
        }
        n->pf_.resize(c.vfs);
        n->filters_.resize(c.vfs);
        for (std::uint16_t i = 0; i < c.vfs; ++i) {
            igbvf_device_config dc = c.vf;
            dc.name = vf_names[i];
            auto d = igbvf_device::create(mem, dc);
            if (!d) {
                return d.error();
            }
            (*d)->set_uplink(n.get(), i);
            (*d)->set_mailbox_handler(&n->pf_, [](void* ctx, std::uint16_t vf) noexcept {
                static_cast<pf_driver*>(ctx)->on_message(vf);
            });
            n->vfs_.push_back(std::move(*d));
            n->sw_.emplace_back();
        }
        for (std::uint16_t i = 0; i < c.vfs; ++i) {
            n->pf_.ping(i);
        }
        return n;
    }

    [[nodiscard]] std::uint16_t vf_count() const noexcept { return static_cast<std::uint16_t>(vfs_.size()); }
    [[nodiscard]] igbvf_device& vf(std::uint16_t i) noexcept { return *vfs_[i]; }
    [[nodiscard]] pf_driver& pf() noexcept { return pf_; }
    [[nodiscard]] vf_switch_stats switch_stats(std::uint16_t vf) const {
        std::lock_guard g(mu_);
        return sw_[vf];
    }
    [[nodiscard]] std::uint64_t uplink_unknown() const {
        std::lock_guard g(mu_);
        return unknown_;
    }

    /// Runs every VF once (deterministic).
    void step() {
        for (auto& v : vfs_) {
            v->step();
        }
    }

    /// A frame from the wire, at the PF uplink.
    void frame_in(const frame& f) noexcept override {
        eth::header h;
        if (!eth::parse(f.bytes(), h)) {
            return;
        }
        targets t{};
        {
            std::lock_guard g(mu_);
            for (std::uint16_t i = 0; i < vfs_.size(); ++i) {
                const vf_filter& vf = filters_[i];
                const bool vlan_ok = vf.port_vlan != 0 ? h.vlan == vf.port_vlan
                                                       : h.vlan == 0 || vf.vlans.count(h.vlan) != 0;
                if (vlan_ok && (eth::is_multicast(h.dst) || h.dst == vf.mac || vf.promisc)) {
                    t.add(i, vf.port_vlan != 0);
                    ++sw_[i].from_uplink;
                }
            }
            unknown_ += t.n == 0 ? 1 : 0;
        }
        deliver(f, t);
    }

private:
    static constexpr std::uint16_t max_vfs = 8;
    static constexpr const char* vf_names[max_vfs] = {"vf0", "vf1", "vf2", "vf3",
                                                      "vf4", "vf5", "vf6", "vf7"};
    friend class pf_driver;

    // The switch's view of a VF, programmed by the PF.
    struct vf_filter {
        mac_addr mac{};
        std::uint16_t port_vlan = 0;
        std::set<std::uint16_t> vlans;
        bool promisc = false;
        std::uint32_t mtu = 1500;
    };
    struct targets {
        std::array<std::uint16_t, max_vfs> vf{};
        std::array<bool, max_vfs> strip{};
        std::uint16_t n = 0;
        void add(std::uint16_t i, bool s) noexcept {
            vf[n] = i;
            strip[n++] = s;
        }
    };

    sriov_nic() : pf_(*this) {}

    void program(std::uint16_t vf, const vf_policy& p, const vf_state& s) {
        std::lock_guard g(mu_);
        filters_[vf].mac = s.mac;
        filters_[vf].port_vlan = p.port_vlan;
        filters_[vf].vlans = s.vlans;
        filters_[vf].promisc = s.promisc;
        filters_[vf].mtu = s.mtu;
    }

    void deliver(const frame& f, const targets& t) noexcept {
        for (std::uint16_t k = 0; k < t.n; ++k) {
            if (t.strip[k] && f.len >= 18) {
                frame g = f;
                std::memmove(g.data.data() + 12, g.data.data() + 16, g.len - 16);
                g.len -= 4;
                vfs_[t.vf[k]]->deliver(g);
            } else {
                vfs_[t.vf[k]]->deliver(f);
            }
        }
    }

    // A frame a VF sent: anti-spoofing, MTU, port VLAN, then forward.
    void from_vf(std::uint16_t from, const frame& f0) noexcept override {
        eth::header h;
        if (!eth::parse(f0.bytes(), h)) {
            return;
        }
        frame f = f0;
        targets t{};
        bool up = false;
        {
            std::lock_guard g(mu_);
            const vf_filter& me = filters_[from];
            if (h.src != me.mac) {
                ++sw_[from].spoofed;  // not its MAC: dropped by the switch
                return;
            }
            if (f.len > h.payload_off + me.mtu) {
                ++sw_[from].oversize;  // longer than the MTU the PF gave it (SET_LPE)
                return;
            }
            std::uint16_t vlan = h.vlan;
            if (me.port_vlan != 0) {
                if (h.vlan != 0) {
                    ++sw_[from].vlan_violations;  // a guest on a port VLAN may not tag
                    return;
                }
                if (f.len + 4 > max_frame_size) {
                    ++sw_[from].oversize;  // no room for the port VLAN's tag
                    return;
                }
                std::memmove(f.data.data() + 16, f.data.data() + 12, f.len - 12);
                eth::put16(f.data.data() + 12, eth::type_vlan);
                eth::put16(f.data.data() + 14, me.port_vlan);
                f.len += 4;
                vlan = me.port_vlan;
            } else if (h.vlan != 0 && me.vlans.count(h.vlan) == 0) {
                ++sw_[from].vlan_violations;
                return;
            }
            const bool multi = eth::is_multicast(h.dst);
            for (std::uint16_t i = 0; i < vfs_.size(); ++i) {
                if (i == from) continue;
                const vf_filter& o = filters_[i];
                const bool vlan_ok = o.port_vlan != 0 ? vlan == o.port_vlan
                                                      : vlan == 0 || o.vlans.count(vlan) != 0;
                if (vlan_ok && (multi || h.dst == o.mac)) {
                    t.add(i, o.port_vlan != 0);
                    ++sw_[from].to_vfs;
                }
            }
            up = multi || t.n == 0;
            sw_[from].to_uplink += up ? 1 : 0;
        }
        deliver(f, t);
        if (up) {
            frame_out(f);
        }
    }

    pf_driver pf_;
    std::vector<std::unique_ptr<igbvf_device>> vfs_;
    mutable std::mutex mu_;
    std::vector<vf_filter> filters_;
    std::vector<vf_switch_stats> sw_;
    std::uint64_t unknown_ = 0;
};

// ---- pf_driver ------------------------------------------------------------------------

inline void pf_driver::set_policy(std::uint16_t vf, const vf_policy& p) {
    vf_state s;
    {
        std::lock_guard g(mu_);
        per_vf& v = vfs_[vf];
        v.policy = p;
        v.state = vf_state{};
        v.state.mac = p.default_mac;
        v.state.mtu = std::min(v.state.mtu, p.max_mtu);  // a VF never starts above its limit
        s = v.state;
    }
    nic_.program(vf, p, s);
}

inline void pf_driver::on_message(std::uint16_t vf) noexcept {
    igbvf_device& dev = nic_.vf(vf);
    std::uint32_t msg[igbvf::mbx::size];
    std::uint32_t reply[igbvf::mbx::size] = {};
    for (std::uint32_t i = 0; i < igbvf::mbx::size; ++i) msg[i] = dev.pf_read_mem(i);
    vf_policy pol;
    vf_state st;
    igbvf::nack_reason why;
    {
        std::lock_guard g(mu_);
        per_vf& v = vfs_[vf];
        // The VF's reset event first, as igb's mailbox task looks at VFLRE before the
        // messages: the VF's filters go back to defaults (its MAC stays) and it is no
        // longer clear to send.
        if (const std::uint64_t n = dev.resets(); n != v.resets_seen) {
            v.resets_seen = n;
            v.forget();
        }
        why = decide(v, msg, reply);
        if (why == igbvf::nack_reason::unspecified) {
            ++v.st.acks;
        } else {
            ++v.st.nacks;
            v.st.last_nack = why;
        }
        pol = v.policy;
        st = v.state;
    }
    // As Linux's igb PF: the reply is the request's word 0 (id and info) with ACK or NACK
    // and CTS, and only the words the reply carries are written (3 for RESET, its MAC;
    // else 1): the rest of the buffer still holds the request. A NACK's reason (a sim
    // extension) goes in word 1, tagged so a VF can tell it from request data.
    const std::uint32_t head = msg[0] & (igbvf::mbx::msgid_mask | igbvf::mbx::msginfo_mask);
    const bool is_reset = (msg[0] & igbvf::mbx::msgid_mask) == igbvf::mbx::vf_reset;
    std::uint32_t words = is_reset ? 3 : 1;
    if (why == igbvf::nack_reason::unspecified) {
        reply[0] = head | igbvf::mbx::msgtype_ack | igbvf::mbx::msgtype_cts;
    } else {
        reply[0] = head | igbvf::mbx::msgtype_nack | igbvf::mbx::msgtype_cts;
        if (why != igbvf::nack_reason::mac_not_allowed || !is_reset) {
            reply[igbvf::mbx::nack_reason_word] = igbvf::mbx::nack_reason_tag | static_cast<std::uint32_t>(why);
            words = words < 2 ? 2 : words;
        }
    }
    nic_.program(vf, pol, st);
    for (std::uint32_t i = 0; i < words; ++i) dev.pf_write_mem(i, reply[i]);
    dev.pf_replied();
}

inline void pf_driver::ping(std::uint16_t vf) noexcept {
    igbvf_device& dev = nic_.vf(vf);
    dev.pf_write_mem(0, igbvf::mbx::pf_control_msg | igbvf::mbx::msgtype_cts);
    dev.pf_sent();
}

inline void pf_driver::reset() noexcept {
    for (std::uint16_t i = 0; i < nic_.vf_count(); ++i) {
        nic_.vf(i).pf_reset_started();
        vf_policy pol;
        vf_state st;
        {
            std::lock_guard g(mu_);
            per_vf& v = vfs_[i];
            v.forget();
            pol = v.policy;
            st = v.state;
        }
        nic_.program(i, pol, st);
    }
}

inline void pf_driver::reset_done() noexcept {
    for (std::uint16_t i = 0; i < nic_.vf_count(); ++i) {
        nic_.vf(i).pf_reset_done();
    }
}

// The policy decision; `unspecified` means ACK.
inline igbvf::nack_reason pf_driver::decide(per_vf& v, const std::uint32_t* msg,
                                            std::uint32_t* reply) noexcept {
    namespace m = igbvf::mbx;
    using r = igbvf::nack_reason;
    const std::uint32_t id = msg[0] & m::msgid_mask;
    const std::uint32_t info = (msg[0] & m::msginfo_mask) >> m::msginfo_shift;
    auto mac_of = [&] {
        mac_addr a{};
        for (int i = 0; i < 4; ++i) a[i] = static_cast<std::uint8_t>(msg[1] >> (8 * i));
        a[4] = static_cast<std::uint8_t>(msg[2]);
        a[5] = static_cast<std::uint8_t>(msg[2] >> 8);
        return a;
    };
    if (id != m::vf_reset && !v.cts) {
        return r::not_clear_to_send;
    }
    switch (id) {
    case m::vf_reset: {
        v.cts = true;
        v.state = vf_state{};
        v.state.mac = v.policy.default_mac;
        const mac_addr& a = v.state.mac;
        if (a == mac_addr{}) {
            return r::mac_not_allowed;  // no MAC for this VF: NACK, as Linux's igb PF does
        }
        reply[1] = std::uint32_t{a[0]} | std::uint32_t{a[1]} << 8 | std::uint32_t{a[2]} << 16 |
                   std::uint32_t{a[3]} << 24;
        reply[2] = std::uint32_t{a[4]} | std::uint32_t{a[5]} << 8;
        return r::unspecified;
    }
    case m::vf_set_mac_addr: {
        const mac_addr a = mac_of();
        if (v.policy.check_mac(a) != nullptr) {
            return r::mac_not_allowed;
        }
        v.state.mac = a;
        return r::unspecified;
    }
    case m::vf_set_vlan: {
        const auto vid = static_cast<std::uint16_t>(msg[1] & 0xFFF);
        const bool add = (info & 1u) != 0;
        if (!add) {
            v.state.vlans.erase(vid);
            return r::unspecified;
        }
        if (vid == 0 || v.policy.check_vlan(vid) != nullptr) {
            return r::vlan_not_allowed;
        }
        v.state.vlans.insert(vid);
        return r::unspecified;
    }
    case m::vf_set_lpe: {
        // The largest frame with one VLAN tag (Linux's igbvf_set_rlpml): MTU + 22.
        if (msg[1] < 22 + 68 || v.policy.check_mtu(msg[1] - 22) != nullptr) {
            return r::mtu_too_large;
        }
        v.state.mtu = msg[1] - 22;
        return r::unspecified;
    }
    case m::vf_set_promisc: {
        const bool uc = (msg[0] & m::vf_set_promisc_unicast) != 0;
        if (v.policy.check_promisc(uc) != nullptr) {
            return r::promisc_not_allowed;
        }
        v.state.promisc = uc;
        return r::unspecified;
    }
    case m::vf_set_multicast:
        if (info > m::max_mcast_hashes) {
            return r::too_many_mcast;
        }
        v.state.mcast_count = info;
        return r::unspecified;
    default:
        return r::bad_message;
    }
}

} // namespace npa::sim
