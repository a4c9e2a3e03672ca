// npa/sim/l2_switch.hpp: a learning Ethernet switch that forwards by MAC and VLAN.
//
// IEEE 802.1Q bridging reduced to what the sim needs. Each port is a member of a set of
// VLANs: by default of every VLAN (a trunk, what a cable to a device that does its own VLAN
// filtering, or to another switch, is), or of the VLANs given to set_vlans() (0 is the
// untagged one). A frame is accepted only on a port that is a member of its VLAN (802.1Q
// ingress filtering) and leaves only through member ports of that VLAN: the forwarding
// table is keyed by (MAC, VLAN) and learned from source addresses; a known unicast
// destination goes to its port (or nowhere, if that is the port it came from); broadcast,
// multicast and unknown unicast are flooded to every other member port of the frame's
// VLAN, never into another VLAN. Ports are npa::sim::frame_port, so devices, traffic peers
// and other switches are cabled to it the same way. Used as the hypervisor's virtual
// switch and the physical network between sim hosts.
#pragma once

#include <npa/sim/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace npa::sim {

struct switch_port_stats {
    std::uint64_t in = 0;       ///< frames received on the port
    std::uint64_t out = 0;      ///< frames sent out of the port
    std::uint64_t flooded = 0;  ///< of `in`, frames flooded (unknown or multi-destination)
    std::uint64_t filtered = 0; ///< of `in`, frames dropped (destination on the same port,
                                ///< runt, a VLAN the port is not a member of)
};

class l2_switch {
public:
    /// Ports a switch has at most (the ports a frame leaves through fit one 64-bit mask).
    static constexpr std::size_t max_ports = 64;

    /// A switch of `ports` ports (at most max_ports; more are not created).
    explicit l2_switch(std::size_t ports) {
        ports = ports < max_ports ? ports : max_ports;
        ports_.reserve(ports);
        for (std::size_t i = 0; i < ports; ++i) {
            ports_.push_back(std::make_unique<switch_port>(*this, i));
        }
    }

    [[nodiscard]] frame_port& port_at(std::size_t i) noexcept { return *ports_[i]; }
    [[nodiscard]] std::size_t ports() const noexcept { return ports_.size(); }

    /// Makes a port a member of exactly these VLANs (0: untagged); it stops being a trunk.
    void set_vlans(std::size_t port, std::initializer_list<std::uint16_t> vlans) {
        std::lock_guard g(mu_);
        ports_[port]->trunk = false;
        ports_[port]->vlans = vlans;
    }
    /// Makes a port a member of every VLAN again (the default).
    void set_trunk(std::size_t port) {
        std::lock_guard g(mu_);
        ports_[port]->trunk = true;
        ports_[port]->vlans.clear();
    }
    [[nodiscard]] bool is_member(std::size_t port, std::uint16_t vlan) const {
        std::lock_guard g(mu_);
        return ports_[port]->member(vlan);
    }

    /// A static entry (a hypervisor pinning a VF's MAC): never overwritten by learning.
    void add_static(const mac_addr& mac, std::uint16_t vlan, std::size_t port) {
        std::lock_guard g(mu_);
        table_[{mac, vlan}] = entry{port, true};
    }
    /// Forgets what was learned on a port (its device went away).
    void flush_port(std::size_t port) {
        std::lock_guard g(mu_);
        std::erase_if(
            table_, [&](const auto& kv) { return kv.second.port == port && !kv.second.is_static; });
    }
    /// Where (mac, vlan) is known to be, or -1.
    [[nodiscard]] long lookup(const mac_addr& mac, std::uint16_t vlan) const {
        std::lock_guard g(mu_);
        const auto it = table_.find({mac, vlan});
        return it == table_.end() ? -1 : static_cast<long>(it->second.port);
    }
    [[nodiscard]] switch_port_stats stats(std::size_t port) const {
        std::lock_guard g(mu_);
        return ports_[port]->st;
    }

private:
    struct entry {
        std::size_t port = 0;
        bool is_static = false;
    };
    struct switch_port final : frame_port {
        switch_port(l2_switch& s, std::size_t i) noexcept : sw(s), index(i) {}
        void frame_in(const frame& f) noexcept override { sw.forward(index, f); }
        void send(const frame& f) noexcept { frame_out(f); }
        [[nodiscard]] bool member(std::uint16_t vlan) const noexcept {
            return trunk || vlans.contains(vlan);
        }
        l2_switch& sw;
        std::size_t index;
        bool trunk = true;
        std::set<std::uint16_t> vlans; // when not a trunk
        switch_port_stats st{};
    };

    // The table is consulted under the lock; frames are delivered after it is released,
    // so a port's peer may call back into the switch (a loop of cables) without deadlock.
    void forward(std::size_t from, const frame& f) noexcept {
        eth::header h;
        long to = -1;
        bool flood = false;
        std::uint64_t targets = 0; // the ports it leaves through, decided under the lock
        {
            std::lock_guard g(mu_);
            switch_port& in = *ports_[from];
            ++in.st.in;
            if (!eth::parse(f.bytes(), h) || !in.member(h.vlan)) {
                ++in.st.filtered;
                return;
            }
            if (!eth::is_multicast(h.src)) {
                auto [it, fresh] = table_.try_emplace({h.src, h.vlan}, entry{from, false});
                if (!fresh && !it->second.is_static) {
                    it->second.port = from; // the station moved
                }
            }
            const auto it = eth::is_multicast(h.dst) ? table_.end() : table_.find({h.dst, h.vlan});
            if (it == table_.end()) {
                flood = true;
                ++in.st.flooded;
            } else if (it->second.port == from || !ports_[it->second.port]->member(h.vlan)) {
                ++in.st.filtered;
                return;
            } else {
                to = static_cast<long>(it->second.port);
            }
            for (std::size_t i = 0; i < ports_.size(); ++i) {
                if ((flood && i != from && ports_[i]->member(h.vlan)) ||
                    static_cast<long>(i) == to) {
                    ++ports_[i]->st.out;
                    targets |= std::uint64_t{1} << i;
                }
            }
        }
        for (std::size_t i = 0; i < ports_.size(); ++i) {
            if ((targets >> i & 1u) != 0) {
                ports_[i]->send(f);
            }
        }
    }

    std::vector<std::unique_ptr<switch_port>> ports_;
    mutable std::mutex mu_;
    std::map<std::pair<mac_addr, std::uint16_t>, entry> table_;
};

} // namespace npa::sim
