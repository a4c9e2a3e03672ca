// The device-model base (npa/sim/device/): a whole device model written on it, small
// enough to read at once, and the parts it is made of.
//
// mini_nic is what a new model starts from: descriptors posted by a method call instead
// of a ring in guest memory, completions kept in a list instead of a completion ring.
// Everything else (inbox, fault plan, link flap, reset and removal countdown, completion
// faults, RSS, stepping) is the base's.
#include <npa/sim/device/base.hpp>
#include <npa/sim/device/checksum.hpp>
#include <npa/sim/device/completion.hpp>
#include <npa/sim/device/policy.hpp>
#include <npa/sim/device/steering.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <utility>
#include <vector>

using namespace npa::sim;

namespace {

struct mini_desc {
    std::uint32_t slot = 0;
    npa::iova_t addr = 0;
    std::uint32_t len = 0;
};
struct mini_comp {
    std::uint32_t slot = 0, len = 0;
};
struct mini_stats {
    std::uint64_t tx_frames = 0, rx_frames = 0, rx_no_buf = 0;
    std::uint64_t comp_dropped = 0, comp_delayed = 0, comp_reordered = 0, comp_corrupted = 0;
};

class mini_nic final : public frame_port, public device_model<mini_nic> {
    friend class device_model<mini_nic>;

public:
    static constexpr std::uint16_t queues = 2;
    mini_nic(guest_memory& mem, std::size_t inbox_limit) : device_model(mem, inbox_limit) {}
    ~mini_nic() override { stop(); }

    // ---- the driver's side --------------------------------------------------------------
    void post(ring_kind r, std::uint16_t q, mini_desc d) {
        std::lock_guard g(mu_);
        q_[q].ring[static_cast<std::size_t>(r)].push_back(d);
    }
    [[nodiscard]] std::vector<mini_comp> completions(ring_kind r, std::uint16_t q) const {
        std::lock_guard g(mu_);
        return q_[q].done[static_cast<std::size_t>(r)];
    }
    [[nodiscard]] mini_stats stats(std::uint16_t q) const {
        std::lock_guard g(mu_);
        return q_[q].st;
    }
    [[nodiscard]] bool removed() const {
        std::lock_guard g(mu_);
        return removed_;
    }
    [[nodiscard]] std::uint64_t rx_link_down() const {
        std::lock_guard g(mu_);
        return rx_link_down_;
    }
    [[nodiscard]] const frame_inbox& inbox() const noexcept { return inbox_; }

    // ---- the wire and time ----------------------------------------------------------------
    void frame_in(const frame& f) noexcept override { inbox_.push(f); }

    bool step() {
        std::lock_guard g(mu_);
        ++steps_;
        tick_link();
        if (removed_) {
            return false;
        }
        bool any = false;
        for (std::uint16_t q = 0; q < queues; ++q) {
            for (const ring_kind r : {ring_kind::tx, ring_kind::rx}) {
                any |= path(q, r).flush_due(steps_, writer{this, q, r});
            }
        }
        for (std::uint16_t q = 0; q < queues && !removed_; ++q) {
            auto& tx = q_[q].ring[0];
            while (!tx.empty() && !removed_) {
                const mini_desc d = tx.front();
                tx.pop_front();
                any = true;
                if (next_tx_event() != tx_event::none) {
                    removed_ = true; // reset and removal alike: this device is gone
                    break;
                }
                if (mem_.dma_read(d.addr, scratch_.data.data(), d.len) && link_up_) {
                    scratch_.len = d.len;
                    ++q_[q].st.tx_frames;
                    frame_out(scratch_);
                }
                complete(q, ring_kind::tx, {d.slot, d.len});
            }
            (void)path(q, ring_kind::tx).flush_held(writer{this, q, ring_kind::tx});
        }
        take_rx_batch(64);
        for (const frame& f : rx_batch_) {
            if (!link_up_) {
                ++rx_link_down_;
                continue;
            }
            const auto q = static_cast<std::uint16_t>(rss_queue(rss_hash(f), queues, true));
            auto& rx = q_[q].ring[1];
            if (rx.empty() || rx.front().len < f.len) {
                ++q_[q].st.rx_no_buf;
                continue;
            }
            const mini_desc d = rx.front();
            rx.pop_front();
            if (mem_.dma_write(d.addr, f.data.data(), f.len)) {
                ++q_[q].st.rx_frames;
            }
            complete(q, ring_kind::rx, {d.slot, f.len});
        }
        for (std::uint16_t q = 0; q < queues; ++q) {
            (void)path(q, ring_kind::rx).flush_held(writer{this, q, ring_kind::rx});
        }
        return any || !rx_batch_.empty();
    }

private:
    struct queue {
        std::array<std::deque<mini_desc>, 2> ring;
        std::array<std::vector<mini_comp>, 2> done;
        std::array<comp_path<mini_comp>, 2> path;
        mini_stats st;
    };
    comp_path<mini_comp>& path(std::uint16_t q, ring_kind r) {
        return q_[q].path[static_cast<std::size_t>(r)];
    }
    // Where a completion that leaves the fault path goes: the queue's list.
    struct writer {
        mini_nic* nic;
        std::uint16_t q;
        ring_kind r;
        void operator()(const mini_comp& c, std::uint32_t) const {
            nic->q_[q].done[static_cast<std::size_t>(r)].push_back(c);
        }
    };
    void complete(std::uint16_t q, ring_kind r, const mini_comp& c) {
        path(q, r).complete(c, 0, comp_faults::of(faults_, r), steps_, q_[q].st, writer{this, q, r});
    }

    std::array<queue, queues> q_{};
    bool removed_ = false;
    std::uint64_t rx_link_down_ = 0;
};

struct capture final : frame_port {
    std::vector<frame> got;
    void frame_in(const frame& f) noexcept override { got.push_back(f); }
};

struct bench {
    guest_memory mem{std::size_t{1} << 20};
    mini_nic nic{mem, 16};
    capture wire;
    guest_block buf = mem.allocate(64 * 2048);
    bench() { connect(nic, wire); }

    void post_tx(std::uint32_t n) {
        for (std::uint32_t i = 0; i < n; ++i) {
            std::memset(buf.virt + i * 2048, static_cast<int>(i), 60);
            nic.post(ring_kind::tx, 0, {i, buf.iova + i * 2048, 60});
        }
    }
    std::vector<std::uint32_t> tx_slots() const {
        std::vector<std::uint32_t> s;
        for (const mini_comp& c : nic.completions(ring_kind::tx, 0)) {
            s.push_back(c.slot);
        }
        return s;
    }
};

frame flow_frame(std::uint8_t flow) {
    frame f;
    f.len = 64;
    const npa::mac_addr dst{2, 0, 0, 0, 0, 1}, src{2, 0, 0, 0, 0, flow};
    std::memcpy(f.data.data(), dst.data(), 6);
    std::memcpy(f.data.data() + 6, src.data(), 6);
    eth::put16(f.data.data() + 12, 0x88b5);
    return f;
}

} // namespace

TEST_CASE("device base: a model on it sends, completes in order and counts") {
    bench b;
    b.post_tx(4);
    CHECK(b.nic.run_until([&] { return b.tx_slots().size() == 4; }, 5));
    CHECK(b.tx_slots() == std::vector<std::uint32_t>{0, 1, 2, 3});
    REQUIRE(b.wire.got.size() == 4);
    CHECK(b.wire.got[2].data[0] == std::byte{2});
    CHECK(b.nic.stats(0).tx_frames == 4);
}

TEST_CASE("device base: dropped, delayed and reordered completions") {
    SUBCASE("drop: the frames go out, two completions are never written") {
        bench b;
        fault_plan p;
        p.drop_tx_completions = 2;
        b.nic.inject(p);
        b.post_tx(5);
        b.nic.run_until([] { return false; }, 3);
        CHECK(b.wire.got.size() == 5);
        CHECK(b.tx_slots() == std::vector<std::uint32_t>{2, 3, 4});
        CHECK(b.nic.stats(0).comp_dropped == 2);
        CHECK(b.nic.faults().drop_tx_completions == 0); // consumed as they fired
    }
    SUBCASE("delay: written in order, that many steps later") {
        bench b;
        fault_plan p;
        p.delay_tx_steps = 3;
        b.nic.inject(p);
        b.post_tx(2);
        b.nic.step(); // sent at step 1, due at step 4
        CHECK(b.tx_slots().empty());
        b.nic.step();
        b.nic.step();
        CHECK(b.tx_slots().empty());
        b.nic.step();
        CHECK(b.tx_slots() == std::vector<std::uint32_t>{0, 1});
        CHECK(b.nic.stats(0).comp_delayed == 2);
    }
    SUBCASE("reorder: each pair written second first; an odd one at the end of the batch") {
        bench b;
        fault_plan p;
        p.reorder_tx_completions = 2;
        b.nic.inject(p);
        b.post_tx(5);
        b.nic.step();
        CHECK(b.tx_slots() == std::vector<std::uint32_t>{1, 0, 3, 2, 4});
        CHECK(b.nic.stats(0).comp_reordered == 2);
    }
}

TEST_CASE("completion path: a mislabelled pair keeps its indexes in ring order, each with the other's tag") {
    struct tagged_comp {
        std::uint32_t index = 0, tag = 0;
    };
    comp_path<tagged_comp> path;
    mini_stats st;
    fault_plan p;
    p.mislabel_tx_completions = 1;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> written;
    auto write = [&](const tagged_comp& c, std::uint32_t) { written.emplace_back(c.index, c.tag); };
    for (std::uint32_t i = 0; i < 3; ++i) { // slot i, filled as number 100 + i
        path.complete({i, 100 + i}, 0, comp_faults::of(p, ring_kind::tx), 0, st, write);
    }
    // Slot 1 finished first but is written under index 0 with its own tag, then slot 0
    // under index 1; the third is untouched.
    CHECK(written == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{0, 101}, {1, 100}, {2, 102}});
    CHECK(st.comp_reordered == 1);
    CHECK(p.mislabel_tx_completions == 0);
}

TEST_CASE("device base: link flap, removal countdown, inbox overrun, RSS") {
    SUBCASE("a link flap drops what arrives while down, then the link is back") {
        bench b;
        for (std::uint32_t q = 0; q < mini_nic::queues; ++q) {
            for (std::uint32_t i = 0; i < 4; ++i) {
                b.nic.post(ring_kind::rx, static_cast<std::uint16_t>(q),
                           {i, b.buf.iova + (8 + q * 4 + i) * 2048, 2048});
            }
        }
        fault_plan p;
        p.link_down_steps = 2;
        b.nic.inject(p);
        b.nic.frame_in(flow_frame(1));
        b.nic.step(); // step 1: still down
        CHECK(b.nic.rx_link_down() == 1);
        b.nic.step(); // step 2: up again
        b.nic.frame_in(flow_frame(1));
        b.nic.step();
        const std::uint16_t q = static_cast<std::uint16_t>(rss_queue(rss_hash(flow_frame(1)), 2, true));
        CHECK(b.nic.stats(q).rx_frames == 1);
        CHECK(b.nic.completions(ring_kind::rx, q).size() == 1);
    }
    SUBCASE("remove_after_tx: the device is gone at the planned packet") {
        bench b;
        fault_plan p;
        p.remove_after_tx = 2;
        b.nic.inject(p);
        b.post_tx(5);
        b.nic.step();
        CHECK(b.nic.removed());
        CHECK(b.wire.got.size() == 2);
    }
    SUBCASE("a full inbox drops and counts") {
        bench b;
        for (int i = 0; i < 20; ++i) {
            b.nic.frame_in(flow_frame(1));
        }
        CHECK(b.nic.inbox().size() == 16);
        CHECK(b.nic.inbox().overrun() == 4);
    }
    SUBCASE("one flow lands on one queue; active_queues picks among those up") {
        CHECK(rss_hash(flow_frame(3)) == rss_hash(flow_frame(3)));
        CHECK(rss_queue(rss_hash(flow_frame(3)), 1, true) == 0);
        CHECK(rss_queue(12345, 4, false) == 0);
        CHECK(rss_queue(7, 4, true) == 3);
        active_queues<4> a;
        CHECK(a.empty());
        a.add(1);
        a.add(3);
        CHECK(a.pick(0) == 1);
        CHECK(a.pick(1) == 3);
        CHECK(a.pick(2) == 1);
    }
}

TEST_CASE("device base: the completion verdicts, one by one") {
    fault_plan p;
    p.drop_rx_completions = 1;
    p.reorder_rx_completions = 1;
    mini_stats st;
    bool holding = false;
    const comp_faults f = comp_faults::of(p, ring_kind::rx);
    CHECK(judge(f, false, holding, st) == comp_verdict::drop);
    CHECK(judge(f, false, holding, st) == comp_verdict::hold);
    CHECK(judge(f, false, holding, st) == comp_verdict::release_pair);
    CHECK(judge(f, false, holding, st) == comp_verdict::write);
    CHECK(judge(f, true, holding, st) == comp_verdict::delay); // behind a delayed one
    CHECK(st.comp_dropped == 1);
    CHECK(st.comp_reordered == 1);
    CHECK(st.comp_delayed == 1);
    CHECK(p.drop_tx_completions == 0);
    p.corrupt = comp_fault::double_completion;
    p.corrupt_ring = ring_kind::tx;
    p.corrupt_count = 1;
    CHECK(take_corruption(p, ring_kind::rx, st) == comp_fault::none);
    CHECK(take_corruption(p, ring_kind::tx, st) == comp_fault::double_completion);
    CHECK(take_corruption(p, ring_kind::tx, st) == comp_fault::none);
    CHECK(st.comp_corrupted == 1);
}

TEST_CASE("device base: the Internet checksum") {
    // An IPv4 header whose checksum is 0xB861.
    const std::array<std::uint8_t, 20> h{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                         0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    std::array<std::byte, 20> ip{};
    std::memcpy(ip.data(), h.data(), h.size());
    CHECK(inet::checksum(ip.data(), 20) == 0xB861);
    CHECK_FALSE(inet::verify(ip.data(), 20));
    eth::put16(ip.data() + 10, 0xB861);
    CHECK(inet::verify(ip.data(), 20));
    const std::array<std::byte, 3> odd{std::byte{0x01}, std::byte{0x02}, std::byte{0x03}};
    CHECK(inet::sum(odd.data(), 3, 0) == 0x0102 + 0x0300);
    CHECK(inet::fold(0x1FFFF) == 0x0001);
}

TEST_CASE("device base: one port policy for every model") {
    port_policy open;
    CHECK(open.check_mac({2, 0, 0, 0, 0, 9}) == nullptr); // no MAC assigned: any
    CHECK(open.check_promisc(true) != nullptr);
    CHECK(port_policy::allow_all().check_promisc(true) == nullptr);
    port_policy vf;
    vf.default_mac = {2, 0, 0, 0, 0, 1};
    vf.allowed_macs = {{2, 0, 0, 0, 0, 2}};
    vf.allowed_vlans = {10};
    vf.max_mtu = 1500;
    CHECK(vf.check_mac({2, 0, 0, 0, 0, 1}) == nullptr);
    CHECK(vf.check_mac({2, 0, 0, 0, 0, 2}) == nullptr);
    CHECK(vf.check_mac({2, 0, 0, 0, 0, 3}) != nullptr);
    CHECK(vf.check_vlan(0) == nullptr);
    CHECK(vf.check_vlan(10) == nullptr);
    CHECK(vf.check_vlan(11) != nullptr);
    CHECK(vf.check_mtu(1500) == nullptr);
    CHECK(vf.check_mtu(1501) != nullptr);
    vf.port_vlan = 5;
    CHECK(vf.check_vlan(10) != nullptr); // on a port VLAN the guest adds none
    // A list of MACs and no default: the zero address is not "the default" (a guest that
    // wrote zeros to vmxnet3's MACL/MACH got it past the policy).
    port_policy listed;
    listed.allowed_macs = {{2, 0, 0, 0, 0, 2}};
    CHECK(listed.check_mac({0, 0, 0, 0, 0, 0}) != nullptr);
    CHECK(listed.check_mac({2, 0, 0, 0, 0, 2}) == nullptr);
}
