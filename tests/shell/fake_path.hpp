// A minimal device + plugin pair for shell unit tests: every behaviour the shell relies
// on (in-flight TX, completions, unsent TX on detach, RX delivery and refill, health,
// capabilities, counter resets) is explicit and steerable from the test.
#pragma once

#include <npa/npa.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace npa_test {

/// The device: a TX wire, an RX inbox, knobs.
struct fake_dev {
    std::uint16_t queues = 1;
    std::uint32_t ring_size = 64;
    std::uint32_t offloads = npa::cap::all;
    std::uint32_t max_mtu = 9216;  ///< jumbo frames: the authority's policy is the limit
    npa::errc health = npa::errc::ok;
    bool fail_attach = false;
    bool complete_tx = true;  ///< false: TX stays in flight forever (stuck device)
    std::uint64_t completion_delay = 1;  ///< reaps before a TX completes
    std::uint32_t leak_on_detach = 0;    ///< RX buffers a buggy plugin keeps when it detaches
    bool drop_rx = false;                ///< every rx_burst, the device reports one drop
    /// false: rx_drain_bound answers "none" (~0), as a plugin image without one does
    bool declares_rx_bound = true;

    // What the driver programmed at attach, and what the device did with it.
    std::uint32_t enabled = 0;            ///< offloads the plugin enabled on this device
    std::uint32_t mtu = 0;                ///< the MTU it was attached with
    std::uint64_t tx_csum_offloaded = 0;  ///< frames whose L4 checksum the device computed
    std::uint64_t tx_vlan_inserted = 0;   ///< frames the device tagged
    std::uint64_t tx_offload_ignored = 0; ///< frames asking for an offload not enabled

    // Per queue: what went out on the wire (sequence numbers), what waits to come in.
    std::vector<std::vector<std::uint64_t>> wire;
    /// Optional: the far end every device's wire leads to (one switch port, one peer),
    /// so the order across paths is what the peer saw.
    std::vector<std::uint64_t>* far_end = nullptr;
    std::vector<std::deque<std::uint64_t>> inbox;
    std::mutex inbox_lock;  ///< the inbox may be fed from another thread
    std::atomic<bool> irq_armed[8] = {};

    /// Device side: raise the interrupt if armed (one-shot: raising disarms).
    bool raise(std::uint16_t q) noexcept { return irq_armed[q].exchange(false); }

    explicit fake_dev(std::uint16_t nq = 1) : queues(nq), wire(nq), inbox(nq) {}
    void inject(std::uint16_t q, std::uint64_t seq) {
        std::lock_guard g(inbox_lock);
        inbox[q].push_back(seq);
    }
};

template <class Api>
class fake_plugin {
public:
    static constexpr const char* name = "fake";
    using device_type = fake_dev;
    using buffer_type = typename Api::buffer_type;

    npa::status attach(Api& api, fake_dev& dev, const npa::queue_config& qc) {
        if (dev.fail_attach) {
            return {npa::errc::device_error, "fake device refused to initialise"};
        }
        api_ = &api;
        dev_ = &dev;
        nq_ = qc.queues;
        dev.enabled = qc.offloads & dev.offloads;
        dev.mtu = qc.mtu;
        qs_.assign(nq_, queue{});
        for (std::uint16_t q = 0; q < nq_; ++q) {
            refill(q);
        }
        return {};
    }

    void detach() noexcept {
        for (std::uint16_t q = 0; q < nq_; ++q) {
            queue& s = qs_[q];
            std::vector<buffer_type> done, unsent;
            for (auto& f : s.in_flight) {
                (f.age >= dev_->completion_delay && dev_->complete_tx ? done : unsent).push_back(f.b);
            }
            api_->tx_complete(q, done);
            api_->tx_unsent(q, unsent);
            const std::size_t keep = std::min<std::size_t>(dev_->leak_on_detach, s.posted.size());
            api_->release_rx_buffers(q, std::span(s.posted).subspan(keep));
            // What completed here is counted, as the igbvf plugin's detach does; the
            // counters outlive the detach until the next attach.
            npa::queue_stats st = s.st;
            st.tx_packets += done.size();
            s = queue{};
            s.st = st;
        }
        dev_ = nullptr;
    }

    std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> bufs) noexcept {
        queue& s = qs_[q];
        (void)tx_reap(q);
        std::uint16_t n = 0;
        for (auto b : bufs) {
            if (s.in_flight.size() >= dev_->ring_size) {
                ++s.st.tx_ring_full;
                break;
            }
            s.in_flight.push_back({b, 0});
            ++n;
        }
        return n;
    }

    std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> out) noexcept {
        queue& s = qs_[q];
        std::uint16_t n = 0;
        if (dev_->health != npa::errc::ok) {
            return 0;
        }
        s.st.rx_dropped += dev_->drop_rx ? 1 : 0;
        std::lock_guard g(dev_->inbox_lock);
        auto& in = dev_->inbox[q];
        while (n < out.size() && !in.empty() && !s.posted.empty()) {
            buffer_type b = s.posted.back();
            s.posted.pop_back();
            b.set_user(in.front());
            b.set_length(64);
            in.pop_front();
            out[n++] = b;
            ++s.st.rx_packets;
        }
        refill(q);
        return n;
    }

    std::uint32_t tx_reap(std::uint16_t q) noexcept {
        queue& s = qs_[q];
        if (dev_->health != npa::errc::ok || !dev_->complete_tx) {
            return 0;
        }
        std::vector<buffer_type> done;
        while (!s.in_flight.empty()) {
            auto& f = s.in_flight.front();
            if (++f.age < dev_->completion_delay) {
                break;
            }
            dev_->wire[q].push_back(f.b.user());
            if (dev_->far_end != nullptr) {
                dev_->far_end->push_back(f.b.user());
            }
            const npa::offload_info ol = f.b.offload();
            const bool csum = (ol.flags & npa::ol::tx_l4_csum) != 0;
            const bool vlan = (ol.flags & npa::ol::tx_vlan) != 0;
            dev_->tx_csum_offloaded += csum && (dev_->enabled & npa::cap::tx_l4_csum) != 0;
            dev_->tx_vlan_inserted += vlan && (dev_->enabled & npa::cap::vlan_insert) != 0;
            dev_->tx_offload_ignored += (csum && (dev_->enabled & npa::cap::tx_l4_csum) == 0) ||
                                        (vlan && (dev_->enabled & npa::cap::vlan_insert) == 0);
            done.push_back(f.b);
            s.in_flight.pop_front();
            ++s.st.tx_packets;
        }
        for (auto& f : s.in_flight) ++f.age;
        api_->tx_complete(q, done);
        return static_cast<std::uint32_t>(done.size());
    }

    /// The inbox has no fixed size, so the device says what it holds when the drain
    /// starts, plus a ring's worth it may not show yet (a ring NIC says its ring size).
    std::uint32_t rx_drain_bound(std::uint16_t q) const noexcept {
        if (!dev_->declares_rx_bound) return ~std::uint32_t{0};
        std::lock_guard g(dev_->inbox_lock);
        return static_cast<std::uint32_t>(dev_->inbox[q].size()) + dev_->ring_size;
    }

    std::uint32_t tx_in_flight(std::uint16_t q) const noexcept {
        return static_cast<std::uint32_t>(qs_[q].in_flight.size());
    }
    // The interrupt mask lives in the device, as an IMR register would.
    void irq_arm(std::uint16_t q) noexcept { dev_->irq_armed[q].store(true); }
    void irq_disarm(std::uint16_t q) noexcept { dev_->irq_armed[q].store(false); }
    bool armed(std::uint16_t q) const noexcept { return dev_->irq_armed[q].load(); }

    npa::capabilities capabilities() const noexcept {
        npa::capabilities c;
        c.offloads = dev_ != nullptr ? dev_->offloads : 0;
        c.max_queues = 8;
        c.max_mtu = dev_ != nullptr ? dev_->max_mtu : c.max_mtu;
        return c;
    }
    const npa::queue_stats& stats(std::uint16_t q) const noexcept { return qs_[q].st; }
    npa::errc health() const noexcept { return dev_ != nullptr ? dev_->health : npa::errc::ok; }

    /// Test hook: the device reset its counters.
    void reset_counters(std::uint16_t q) noexcept { qs_[q].st = npa::queue_stats{}; }

private:
    struct flight {
        buffer_type b;
        std::uint64_t age;
    };
    struct queue {
        std::deque<flight> in_flight;
        std::vector<buffer_type> posted;
        npa::queue_stats st;
    };

    void refill(std::uint16_t q) noexcept {
        queue& s = qs_[q];
        const std::size_t want = dev_->ring_size - s.posted.size();
        if (want == 0) {
            return;
        }
        std::vector<buffer_type> tmp(want);
        const std::uint32_t got = api_->alloc_rx_buffers(q, tmp);
        if (got < want) {
            s.st.rx_no_buffer += want - got;
        }
        s.posted.insert(s.posted.end(), tmp.begin(), tmp.begin() + got);
    }

    Api* api_ = nullptr;
    fake_dev* dev_ = nullptr;
    std::uint16_t nq_ = 0;
    std::vector<queue> qs_;
};

/// A hypervisor/PF control channel with a policy: allowed MACs, a VLAN cap, an MTU cap.
struct fake_authority {
    std::vector<npa::mac_addr> allowed_macs;
    std::uint32_t max_mtu = 9000;
    std::uint16_t max_vlan = 4095;
    bool refuse_everything = false;
    std::vector<npa::control_request> applied;
    std::uint64_t batches = 0;

    npa::status check(const npa::control_request& r) const {
        if (refuse_everything) return {npa::errc::refused, "authority refuses all requests"};
        switch (r.op) {
        case npa::control_op::set_mac:
            for (auto& m : allowed_macs)
                if (m == r.mac) return {};
            return {npa::errc::refused, "MAC not allowed by policy"};
        case npa::control_op::set_mtu:
            return r.mtu <= max_mtu ? npa::status{} : npa::status{npa::errc::refused, "MTU above policy"};
        case npa::control_op::add_vlan:
            return r.vlan <= max_vlan ? npa::status{} : npa::status{npa::errc::refused, "VLAN not assigned"};
        default: return {};
        }
    }
    npa::status submit(const npa::control_request& r) {
        auto st = check(r);
        if (st.ok()) applied.push_back(r);
        return st;
    }
    npa::status submit_batch(std::span<const npa::control_request> b) {
        for (auto& r : b) {
            auto st = check(r);
            if (!st.ok()) return st;
        }
        applied.insert(applied.end(), b.begin(), b.end());
        ++batches;
        return {};
    }
};
static_assert(npa::control_channel<fake_authority>);

} // namespace npa_test
