// Each hostile 82576 behaviour is caught by the check meant for it, counted once per
// event, and a well-behaved VF is never accused (bad_completion stays 0).
#include <doctest/doctest.h>

#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/control/igbvf.hpp>
#include <npa/sim/igbvf_rig.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace npa;
using namespace npa::sim;

namespace {

// Offers n frames of flow 5 to plugin p's queue 0; what it does not accept goes back to the
// pool. Returns how many it accepted.
template <class Plugin>
std::uint16_t send_frames(igbvf_rig& rig, Plugin& p, std::uint32_t n) {
    std::vector<buffer_ref> b(n);
    b.resize(rig.api().alloc_tx(b));
    for (buffer_ref x : b) rig.build_tx(x, 5);
    rig.api().offer(b);
    const std::uint16_t k = p.tx_burst(0, b);
    rig.api().not_accepted(std::span(b).subspan(k));
    rig.api().free(std::span(b).subspan(k));
    return k;
}

struct bench {
    igbvf_rig rig;
    igbvf_plugin<igbvf_rig::api_type> p;
    std::uint64_t accepted = 0;

    explicit bench(std::uint32_t ring = 64, std::uint32_t offloads = igbvf_limits{}.offloads)
        : rig(make_cfg(ring, offloads)) {
        REQUIRE(rig.ok());
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    }
    static igbvf_rig::config make_cfg(std::uint32_t ring, std::uint32_t offloads) {
        igbvf_rig::config c;
        c.offloads = offloads;
        c.queues = 1;
        c.tx_ring = c.rx_ring = ring;
        return c;
    }
    void send(std::uint32_t n) { accepted += send_frames(rig, p, n); }
    std::uint16_t poll() {
        std::array<buffer_ref, 64> out{};
        const std::uint16_t n = p.rx_burst(0, out);
        rig.api().received(std::span(out).first(n));
        for (std::uint16_t i = 0; i < n; ++i) {
            (void)rig.guest_sink().record(std::span<const std::byte>(out[i].data(), out[i].length()));
        }
        rig.api().free(std::span(out).first(n));
        return n;
    }
    void rounds(int r) {
        for (int i = 0; i < r; ++i) {
            rig.step();
            (void)poll();
            (void)p.tx_reap(0);
        }
    }
    void traffic(int bursts) {
        for (int i = 0; i < bursts; ++i) {
            send(16);
            rig.far_send(rig.flow_for_queue(0), 16);
            rounds(2);
        }
        rounds(10);
    }
    void finish() {
        p.detach();
        auto un = rig.api().take_unsent();
        rig.api().free(un);
        const buffer_audit a = rig.api().audit();
        CHECK(a.balanced());
        CHECK(a.in_pool == a.total);
        CHECK(rig.violations().empty());
    }
    // Plans pl, sends n frames to queue 0 and steps once; returns their flow.
    std::uint32_t rx_with(const fault_plan& pl, std::uint32_t n) {
        rig.inject(pl);
        const std::uint32_t flow = rig.flow_for_queue(0);
        rig.far_send(flow, n);
        rig.step();
        return flow;
    }
    // Of `sent` frames of the flow, exactly `lost` did not arrive; none reordered,
    // duplicated or corrupt.
    bool rx_clean(std::uint32_t flow, std::uint64_t sent, std::uint64_t lost) {
        const auto r = rig.guest_sink().report(flow, sent);
        return r.lost == lost && r.reordered + r.duplicates + r.corrupt == 0;
    }
    fault_plan corrupt(comp_fault f, ring_kind r, std::uint32_t n) {
        fault_plan pl;
        pl.corrupt = f;
        pl.corrupt_ring = r;
        pl.corrupt_count = n;
        return pl;
    }
};

// What the VF's uplink puts on the wire.
struct wire_tap final : frame_port {
    std::vector<frame> got;
    void frame_in(const frame& f) noexcept override { got.push_back(f); }
};

} // namespace

TEST_CASE("a well-behaved VF is never accused, across many ring laps and with delays") {
    bench b(32);
    b.traffic(200);
    fault_plan d;
    d.delay_tx_steps = 3;
    b.rig.inject(d);
    b.traffic(50);
    CHECK(b.p.stats(0).bad_completion == 0);
    CHECK(b.p.stats(0).tx_errors == 0);
    CHECK(b.p.stats(0).tx_packets == b.accepted);
    CHECK(b.p.health() == errc::ok);
    CHECK(b.rig.far_report(5, b.accepted).lost == 0);
    b.finish();
}

TEST_CASE("TX: a head register past the ring completes nothing wrongly: DD alone decides") {
    bench b;
    b.traffic(2);
    b.send(8);
    b.rig.inject(b.corrupt(comp_fault::index_out_of_range, ring_kind::tx, 1));
    b.rig.step();
    CHECK(b.p.tx_reap(0) == 8);  // written back: done, whatever TDH reads
    CHECK(b.p.stats(0).bad_completion == 0);
    CHECK(b.p.stats(0).tx_packets == b.accepted);
    CHECK(b.rig.far_report(5, b.accepted).lost == 0);
    b.finish();
}

TEST_CASE("TX: a lost write-back is returned only after igbvf's transmit timeout") {
    bench b;
    fault_plan pl;
    pl.drop_tx_completions = 2;
    b.rig.inject(pl);
    b.send(8);
    b.rig.step();
    (void)b.p.tx_reap(0);  // first sight: a write-back may be on its way
    (void)b.p.tx_reap(0);  // no progress: the wait is timed from here
    b.rig.api().advance_clock(igbvf_tx_timeout_ns - 1);
    (void)b.p.tx_reap(0);
    CHECK(b.p.stats(0).bad_completion == 0);  // not before the bound
    CHECK(b.p.tx_in_flight(0) == 8);
    b.rig.api().advance_clock(1);
    (void)b.p.tx_reap(0);  // both waited as long: both go back, the six behind them complete
    CHECK(b.p.stats(0).bad_completion == 2);
    CHECK(b.p.stats(0).tx_errors == 2);
    CHECK(b.p.tx_in_flight(0) == 0);
    b.finish();
}

TEST_CASE("TX: a head far ahead of late write-backs, over many reaps, accuses nobody") {
    igbvf_rig::config c = bench::make_cfg(64, igbvf_limits{}.offloads);
    c.tx_head_ahead = 64;        // TDH moves with the fetch, whole packets ahead of DD
    c.tx_writeback_steps = 4;    // each write-back lands four steps late
    c.relaxed_order_swaps = false;  // in ring order whatever DCA_TXCTRL says: the head alone
    igbvf_rig rig(c);
    REQUIRE(rig.ok());
    igbvf_plugin<igbvf_rig::api_type> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    std::uint64_t accepted = 0, head_ahead_seen = 0;
    for (int i = 0; i < 300; ++i) {
        accepted += send_frames(rig, p, 8);
        rig.step();
        rig.api().advance_clock(1'000'000);  // a step is a millisecond: write-backs 4 ms late
        for (int r = 0; r < 4; ++r) (void)p.tx_reap(0);  // many reaps between steps
        // the head at the tail while packets wait for their write-backs
        const bool at_tail = rig.window().read(igbvf_reg::tdh, 0) == rig.window().read(igbvf_reg::tdt, 0);
        head_ahead_seen += at_tail && p.tx_in_flight(0) != 0 ? 1 : 0;
    }
    for (int i = 0; i < 8; ++i) {
        rig.step();
        rig.api().advance_clock(1'000'000);
        (void)p.tx_reap(0);
    }
    CHECK(head_ahead_seen > 0);
    CHECK(p.stats(0).bad_completion == 0);
    CHECK(p.stats(0).tx_errors == 0);
    CHECK(p.stats(0).tx_packets == accepted);
    CHECK(p.health() == errc::ok);
    CHECK(rig.far_report(5, accepted).lost == 0);
    p.detach();
    CHECK(rig.api().audit().balanced());
    CHECK(rig.api().unsent().empty());
}

TEST_CASE("TX: a VF that never writes DD is accused at the bound, not before, and loses no buffer") {
    bench b;
    fault_plan pl;
    pl.drop_tx_completions = 1000;  // the head moves, no write-back ever lands
    b.rig.inject(pl);
    b.send(12);
    for (int i = 0; i < 50; ++i) {  // many reaps, 4.9 s: nothing accused, nothing given up
        b.rig.step();
        (void)b.p.tx_reap(0);
        b.rig.api().advance_clock(igbvf_tx_timeout_ns / 50 - 2'000'000);
    }
    CHECK(b.p.stats(0).bad_completion == 0);
    CHECK(b.p.tx_in_flight(0) == 12);
    CHECK(b.p.health() == errc::ok);
    b.rig.api().advance_clock(igbvf_tx_timeout_ns / 10);
    (void)b.p.tx_reap(0);
    CHECK(b.p.stats(0).bad_completion == 12);
    CHECK(b.p.stats(0).tx_errors == 12);
    CHECK(b.p.tx_in_flight(0) == 0);
    CHECK(b.rig.api().tx_completed(0) == 12);
    CHECK(b.p.health() == errc::device_error);
    b.finish();
}

TEST_CASE("TX: a queue the VF never takes from is counted once at the bound; detach returns it unsent") {
    bench b;
    b.send(6);  // the device never steps: TDH stays where it was
    (void)b.p.tx_reap(0);
    (void)b.p.tx_reap(0);
    b.rig.api().advance_clock(igbvf_tx_timeout_ns);
    for (int i = 0; i < 5; ++i) (void)b.p.tx_reap(0);
    CHECK(b.p.stats(0).bad_completion == 1);
    CHECK(b.p.stats(0).tx_errors == 0);
    CHECK(b.p.tx_in_flight(0) == 6);  // the device may still take them: nothing handed back
    CHECK(b.p.health() == errc::device_error);
    b.p.detach();
    CHECK(b.rig.api().unsent().size() == 6);
    auto un = b.rig.api().take_unsent();
    b.rig.api().free(un);
    CHECK(b.rig.api().audit().balanced());
}

// The rig's API without its clock: what a plugin image or a host without one offers.
struct no_clock_api {
    using buffer_type = igbvf_rig::api_type::buffer_type;
    igbvf_rig::api_type* a = nullptr;
    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<buffer_type> out) noexcept {
        return a->alloc_rx_buffers(q, out);
    }
    void release_rx_buffers(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        a->release_rx_buffers(q, in);
    }
    void tx_complete(std::uint16_t q, std::span<const buffer_type> in) noexcept { a->tx_complete(q, in); }
    void tx_unsent(std::uint16_t q, std::span<const buffer_type> in) noexcept { a->tx_unsent(q, in); }
    void log(log_level l, const char* m) noexcept { a->log(l, m); }
};
static_assert(shell_api<no_clock_api> && !provides_clock<no_clock_api>);
static_assert(provides_clock<igbvf_rig::api_type>);

TEST_CASE("TX without a shell clock: honest traffic accuses nobody; a lost write-back waits out the TDH-read bound") {
    igbvf_rig rig(bench::make_cfg(64, igbvf_limits{}.offloads));
    REQUIRE(rig.ok());
    no_clock_api api{&rig.api()};
    igbvf_plugin<no_clock_api> p;
    REQUIRE(p.attach(api, rig.window(), rig.queue_cfg()).ok());
    std::uint64_t accepted = 0;
    for (int i = 0; i < 100; ++i) {
        accepted += send_frames(rig, p, 8);
        rig.step();
        for (int r = 0; r < 3; ++r) (void)p.tx_reap(0);
    }
    rig.step(3);
    (void)p.tx_reap(0);
    CHECK(p.stats(0).tx_packets == accepted);
    CHECK(p.stats(0).bad_completion == 0);
    fault_plan pl;
    pl.drop_tx_completions = 1;
    rig.inject(pl);
    REQUIRE(send_frames(rig, p, 1) == 1);
    rig.step();
    (void)p.tx_reap(0);  // first sight
    (void)p.tx_reap(0);  // the wait is counted from here
    for (std::uint32_t i = 1; i < igbvf_tx_timeout_reads; ++i) (void)p.tx_reap(0);
    CHECK(p.stats(0).bad_completion == 0);
    CHECK(p.tx_in_flight(0) == 1);
    (void)p.tx_reap(0);
    CHECK(p.stats(0).bad_completion == 1);
    CHECK(p.stats(0).tx_errors == 1);
    CHECK(p.tx_in_flight(0) == 0);
    p.detach();
    CHECK(rig.api().audit().balanced());
}

TEST_CASE("TX: attach clears DCA_TXCTRL's relaxed ordering; in-order write-backs accuse nobody") {
    bench b;
    CHECK((b.rig.window().read(igbvf_reg::dca_txctrl, 0) & igbvf::dca_txctrl_tx_wb_ro_en) == 0);
    CHECK((b.rig.window().read(igbvf_reg::dca_txctrl, 0) & 0x200) != 0);  // the other bits kept
    b.traffic(40);
    CHECK(b.p.stats(0).bad_completion == 0);
    CHECK(b.p.stats(0).tx_packets == b.accepted);
    b.finish();
}

TEST_CASE("TX: a later packet written back before an earlier one is counted once and waited for") {
    bench b;
    fault_plan pl;
    pl.reorder_tx_completions = 1;
    b.rig.inject(pl);
    b.send(2);
    b.rig.step();
    (void)b.p.tx_reap(0);
    (void)b.p.tx_reap(0);
    CHECK(b.p.stats(0).bad_completion == 1);
    CHECK(b.p.tx_in_flight(0) == 2);
    b.rounds(1);
    CHECK(b.p.tx_in_flight(0) == 0);
    CHECK(b.p.stats(0).tx_errors == 0);
    b.finish();
}

TEST_CASE("RX: late write-backs are waited for, delivered in order, nobody accused") {
    bench b;
    fault_plan pl;
    pl.delay_rx_steps = 3;
    const std::uint32_t flow = b.rx_with(pl, 8);
    CHECK(b.poll() == 0); // filled, not yet written back
    b.rig.step(2);
    CHECK(b.poll() == 0);
    b.rig.step();
    CHECK(b.poll() == 8);
    CHECK(b.p.stats(0).bad_completion == 0);
    CHECK(b.p.stats(0).rx_dropped == 0);
    CHECK(b.rx_clean(flow, 8, 0));
    b.finish();
}

TEST_CASE("RX: slots never written back are counted once, dropped a poll later, not lost") {
    bench b;
    fault_plan pl;
    pl.drop_rx_completions = 3; // a run of three: slots 0..2 filled, left as posted
    const std::uint32_t flow = b.rx_with(pl, 6);
    CHECK(b.poll() == 0); // slot 0 may only be late: one more poll
    CHECK(b.p.stats(0).bad_completion == 1);
    CHECK(b.poll() == 3); // still not written back: the run is dropped, the rest delivered
    CHECK(b.p.stats(0).bad_completion == 1);
    CHECK(b.p.stats(0).rx_dropped == 3);
    b.rig.step();
    CHECK(b.rig.device_rx_posted(0) == b.rig.cfg().rx_ring); // the dropped slots are reposted
    b.rig.far_send(flow, 4);
    b.rig.step();
    CHECK(b.poll() == 4);
    CHECK(b.rx_clean(flow, 10, 3));
    b.finish();
}

TEST_CASE("RX: a slot written back after the next one is counted once and delivered in order") {
    bench b;
    fault_plan pl;
    pl.reorder_rx_completions = 1;
    const std::uint32_t flow = b.rx_with(pl, 4);
    CHECK(b.poll() == 0); // slot 1 is done, slot 0 not yet: waited for
    CHECK(b.p.stats(0).bad_completion == 1);
    b.rig.step();
    CHECK(b.poll() == 4);
    CHECK(b.p.stats(0).bad_completion == 1);
    CHECK(b.p.stats(0).rx_dropped == 0);
    CHECK(b.rx_clean(flow, 4, 0));
    b.finish();
}

TEST_CASE("TX and RX: a DD on a slot never handed over is counted and cleared") {
    bench b;
    b.send(4);
    b.rig.inject(b.corrupt(comp_fault::never_posted, ring_kind::tx, 1));
    b.rig.step();
    (void)b.p.tx_reap(0);
    (void)b.p.tx_reap(0);
    CHECK(b.p.stats(0).bad_completion == 1);
    bench r;
    r.rig.inject(r.corrupt(comp_fault::double_completion, ring_kind::rx, 1));
    r.rig.far_send(r.rig.flow_for_queue(0), 3);
    r.rig.step();
    CHECK(r.poll() == 3);
    CHECK(r.p.stats(0).bad_completion == 1);
    CHECK(r.poll() == 0);
    CHECK(r.p.stats(0).bad_completion == 1);
    b.finish();
    r.finish();
}

TEST_CASE("RX: garbage write-backs are dropped, their buffers reposted, nothing delivered") {
    for (comp_fault f : {comp_fault::index_out_of_range, comp_fault::length_too_large,
                         comp_fault::gen_out_of_order}) {
        INFO(to_string(f));
        bench b;
        b.rig.inject(b.corrupt(f, ring_kind::rx, 1));
        b.rig.far_send(b.rig.flow_for_queue(0), 4);
        b.rig.step();
        CHECK(b.poll() == 3);
        CHECK(b.p.stats(0).bad_completion == 1);
        CHECK(b.p.stats(0).rx_dropped == 1);
        b.rig.step();
        CHECK(b.rig.device_rx_posted(0) == b.rig.cfg().rx_ring);  // the dropped slot is reposted
        CHECK(b.rig.guest_sink().report(b.rig.flow_for_queue(0), 0).corrupt == 0);
        b.finish();
    }
}

TEST_CASE("reset and removal: health() says so; detach returns confirmed TX completed, the rest unsent") {
    for (bool remove : {false, true}) {
        const char* what = remove ? "removal" : "reset";
        INFO(what);
        bench b;
        fault_plan pl;
        (remove ? pl.remove_after_tx : pl.reset_after_tx) = 5;
        b.rig.inject(pl);
        b.send(12);
        b.rig.step();
        CHECK(b.p.health() == (remove ? errc::removed : errc::reset));
        b.p.detach();
        CHECK(b.rig.api().tx_completed(0) == 5);
        CHECK(b.rig.api().unsent().size() == 7);
        CHECK(b.rig.far_report(5, 5).lost == 0);
        auto un = b.rig.api().take_unsent();
        b.rig.api().free(un);
        CHECK(b.rig.api().audit().balanced());
    }
}

TEST_CASE("TX: frames of 14-16 bytes leave padded to 17 with zeroes; no room to pad, or under 14, is refused") {
    bench b;
    wire_tap wire;
    connect(b.rig.nic(), wire);
    std::array<buffer_ref, 5> x{};
    REQUIRE(b.rig.api().alloc_tx(x) == x.size());
    // x[3] has 16 bytes of room (the pool puts its headroom back when it is freed).
    x[3].get()->data_off = static_cast<std::uint16_t>(x[3].get()->buf_len - 16);
    const std::uint32_t lens[] = {14, 15, 16, 16, 13};
    for (std::size_t i = 0; i < x.size(); ++i) {
        std::memset(x[i].data(), 0xA5, x[i].capacity() < 64 ? x[i].capacity() : 64);  // stale bytes
        std::array<std::byte, 18> h{};
        (void)eth::write_header(h, igbvf_rig::far_mac, igbvf_rig::guest_mac, 0, 0x88B5);
        std::memcpy(x[i].data(), h.data(), lens[i] < 14 ? lens[i] : 14);
        x[i].set_length(lens[i]);
    }
    b.rig.api().offer(x);
    CHECK(b.p.tx_burst(0, x) == x.size());  // all taken: three to send, two handed back refused
    CHECK(b.p.stats(0).tx_errors == 2);
    CHECK(b.rig.api().tx_completed(0) == 2);
    b.rounds(3);
    CHECK(b.rig.api().tx_completed(0) == 5);
    REQUIRE(wire.got.size() == 3);
    for (std::size_t i = 0; i < wire.got.size(); ++i) {
        INFO("frame of " << lens[i] << " bytes");
        CHECK(wire.got[i].len == igbvf::txd::min_frame);
        for (std::uint32_t k = lens[i]; k < igbvf::txd::min_frame; ++k) {
            CHECK(wire.got[i].data[k] == std::byte{0});
        }
    }
    CHECK(b.rig.device().stats(0).tx_frames == 3);
    CHECK(b.p.stats(0).bad_completion == 0);
    b.finish();  // no violation: the VF never saw a frame under 17 bytes
}

TEST_CASE("offloads: VLAN insertion and IPv4 checksum through a context descriptor") {
    bench b;
    wire_tap wire;
    connect(b.rig.nic(), wire);
    // The PF must let the guest use VLAN 5, or the embedded switch drops the tagged frame.
    igbvf_control ctl(b.rig.device().mailbox_port());
    REQUIRE(ctl.submit(control_request::make_vlan(true, 5)).ok());
    // re-attach with offloads enabled
    b.p.detach();
    queue_config qc = b.rig.queue_cfg();
    qc.offloads = cap::vlan_insert | cap::tx_ip_csum;
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), qc).ok());
    buffer_ref x{};
    REQUIRE(b.rig.api().alloc_tx(std::span(&x, 1)) == 1);
    // Ethernet + IPv4 header (checksum 0) + 26 bytes
    std::byte* d = x.data();
    const mac_addr dst = igbvf_rig::far_mac, src = igbvf_rig::guest_mac;
    const std::uint32_t l2 = eth::write_header(std::span<std::byte>(d, 18), dst, src, 0, 0x0800);
    const std::uint8_t ip[20] = {0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(d + l2, ip, 20);
    std::memset(d + l2 + 20, 0, 26);
    x.set_length(l2 + 46);
    offload_info o{};
    o.flags = ol::tx_vlan | ol::tx_ip_csum;
    o.vlan_tci = 5;
    o.l2_len = 14;
    o.l3_len = 20;
    x.set_offload(o);
    b.rig.api().offer(std::span(&x, 1));
    REQUIRE(b.p.tx_burst(0, std::span(&x, 1)) == 1);
    b.rig.step();
    REQUIRE(wire.got.size() == 1);
    eth::header h;
    REQUIRE(eth::parse(wire.got[0].bytes(), h));
    CHECK(h.vlan == 5);
    const std::byte* iph = wire.got[0].data.data() + h.payload_off;
    std::uint32_t s = 0;
    for (int i = 0; i < 20; i += 2) s += eth::get16(iph + i);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    CHECK(s == 0xffff);  // the device filled in a correct header checksum
    b.rounds(2);
    b.finish();
}

namespace {
std::uint16_t csum_fold(std::uint32_t s) {
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(s);
}
std::uint32_t sum(const std::byte* p, std::uint32_t n, std::uint32_t s = 0) {
    for (std::uint32_t i = 0; i + 1 < n; i += 2) s += eth::get16(p + i);
    if (n % 2) s += std::to_integer<std::uint32_t>(p[n - 1]) << 8;
    return s;
}

// One 1,854-byte TCP payload over IPv4 or IPv6, TSO with an MSS of 500, out through the
// sim VF: 4 segments, each with its own lengths, sequence number, flags and checksums.
// Only the TSO bit is asked for: the IPv4 header checksum comes with it.
void tso_run(bool v6) {
    bench b(64, igbvf_limits{}.offloads | cap::tso);
    wire_tap wire;
    connect(b.rig.nic(), wire);
    b.p.detach();
    queue_config qc = b.rig.queue_cfg();
    qc.offloads = cap::tso | cap::tx_l4_csum;
    REQUIRE(b.p.attach(b.rig.api(), b.rig.window(), qc).ok());
    buffer_ref x{};
    REQUIRE(b.rig.api().alloc_tx(std::span(&x, 1)) == 1);
    std::byte* d = x.data();
    const std::uint32_t payload = 1854;
    const std::uint32_t l3 = v6 ? 40 : 20, hdrs = 14 + l3 + 20;
    const std::uint32_t l2 = eth::write_header(std::span<std::byte>(d, 18), igbvf_rig::far_mac,
                                               igbvf_rig::guest_mac, 0, v6 ? 0x86DD : 0x0800);
    const std::uint8_t ip4[20] = {0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
    std::uint8_t ip6[40] = {0x60, 0, 0, 0, 0, 0, 6, 64};
    for (int k = 8; k < 40; ++k) ip6[k] = static_cast<std::uint8_t>(k < 24 ? 0xfd : 0x20 + k);
    const std::uint8_t tcp[20] = {0x30, 0x39, 0x00, 0x50, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x19, 0xff, 0xff, 0, 0, 0, 0};
    std::memcpy(d + l2, v6 ? ip6 : ip4, l3);
    std::memcpy(d + l2 + l3, tcp, 20);
    for (std::uint32_t i = 0; i < payload; ++i) d[hdrs + i] = static_cast<std::byte>(i * 7);
    x.set_length(hdrs + payload);
    offload_info o{};
    o.flags = ol::tx_tso;
    o.l2_len = 14;
    o.l3_len = static_cast<std::uint8_t>(l3);
    o.l4_len = 20;
    o.tso_mss = 500;
    x.set_offload(o);
    b.rig.api().offer(std::span(&x, 1));
    REQUIRE(b.p.tx_burst(0, std::span(&x, 1)) == 1);
    b.rig.step();
    REQUIRE(wire.got.size() == 4);
    CHECK(b.rig.violations().empty());
    std::uint32_t total = 0;
    for (std::size_t k = 0; k < wire.got.size(); ++k) {
        const frame& f = wire.got[k];
        const std::byte* iph = f.data.data() + 14;
        const std::byte* th = iph + l3;
        const std::uint32_t seg = f.len - hdrs;
        CHECK(seg == (k < 3 ? 500u : 354u));
        std::uint32_t pseudo = 0;
        if (v6) {
            CHECK(eth::get16(iph + 4) == 20 + seg); // payload length
            pseudo = sum(iph + 8, 32) + 6 + 20 + seg;
        } else {
            CHECK(eth::get16(iph + 2) == 40 + seg);
            CHECK(eth::get16(iph + 4) == 0x1234 + k);
            CHECK(csum_fold(sum(iph, 20)) == 0xffff);
            pseudo = sum(iph + 12, 8) + 6 + 20 + seg;
        }
        const std::uint32_t seq = (std::uint32_t{eth::get16(th + 4)} << 16) | eth::get16(th + 6);
        CHECK(seq == 0x1000u + total);
        const bool last = k == 3;
        CHECK(((std::to_integer<unsigned>(th[13]) & 0x09) != 0) == last);  // FIN/PSH on the last
        CHECK(csum_fold(sum(th, 20 + seg, pseudo)) == 0xffff);
        for (std::uint32_t i = 0; i < seg; ++i) {
            if (f.data[hdrs + i] != static_cast<std::byte>((total + i) * 7)) {
                FAIL("segment ", k, " byte ", i, " differs");
            }
        }
        total += seg;
    }
    CHECK(total == payload);
    b.rounds(2);
    CHECK(b.p.stats(0).tx_packets == 1);
    b.finish();
}
} // namespace

TEST_CASE("TSO over IPv4: one 1,854-byte TCP payload leaves as 4 segments of at most 500, checksummed") {
    tso_run(false);
}

TEST_CASE("TSO over IPv6: the same payload leaves as 4 segments, payload lengths and checksums redone") {
    tso_run(true);
}

// The shell's pool, not the device, is at fault here: a buffer smaller than SRRCTL
// announced must never be posted. It goes back to the shell once, the slot goes to the
// next buffer, and every other buffer of the same refill is posted, none lost.
namespace {
struct shrinking_api : igbvf_rig::api_type {
    using igbvf_rig::api_type::api_type;
    std::uint32_t shrink_at = ~0u; ///< next refill: this buffer of the burst loses 1 KiB
    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<buffer_type> out) noexcept {
        const std::uint32_t n = igbvf_rig::api_type::alloc_rx_buffers(q, out);
        if (shrink_at < n) {
            out[shrink_at].get()->data_off += 1024; // the pool puts it back when it is freed
            shrink_at = ~0u;
        }
        return n;
    }
};
} // namespace

TEST_CASE("RX: a buffer smaller than the ring's buffer size is handed back once, the rest posted") {
    igbvf_rig rig(bench::make_cfg(64, igbvf_limits{}.offloads));
    REQUIRE(rig.ok());
    shrinking_api api(rig.api().pool());
    igbvf_plugin<shrinking_api> p;
    REQUIRE(p.attach(api, rig.window(), rig.queue_cfg()).ok());
    const std::uint32_t posted = p.rx_ring_size(0) - 1; // head == tail means empty
    REQUIRE(api.audit().with_plugin == posted);
    const std::uint32_t flow = rig.flow_for_queue(0);
    rig.far_send(flow, 8);
    rig.step();
    api.shrink_at = 3; // the refill after these 8 gets 8 buffers, the fourth too small
    std::array<buffer_ref, 16> out{};
    const std::uint16_t n = p.rx_burst(0, out);
    CHECK(n == 8);
    api.received(std::span(out).first(n));
    api.free(std::span(out).first(n));
    CHECK(api.errors() == 0);
    CHECK(p.stats(0).rx_no_buffer == 1);
    CHECK(api.audit().with_plugin == posted - 1);
    CHECK(p.rx_burst(0, out) == 0); // the next refill fills the slot left over
    CHECK(api.audit().with_plugin == posted);
    p.detach();
    const buffer_audit a = api.audit();
    CHECK(a.balanced());
    CHECK(a.in_pool == a.total);
    CHECK(p.stats(0).bad_completion == 0);
}

TEST_CASE("detach clears RXDCTL/TXDCTL.ENABLE and the VF stops: later frames are dropped") {
    bench b;
    b.traffic(4);
    REQUIRE(b.rig.device().rx_posted(0) != 0);
    b.p.detach();
    // Clearing ENABLE stops the queue (datasheet 4.5.10): nothing more is fetched, written
    // into a buffer or written back, so the buffers detach handed back stay untouched.
    CHECK(b.rig.device().rx_posted(0) == 0);
    const igbvf_device_stats before = b.rig.device().device_stats();
    b.rig.far_send(b.rig.flow_for_queue(0), 8);
    b.rig.step(4);
    CHECK(b.rig.device().device_stats().rx_no_queue == before.rx_no_queue + 8);
    CHECK(b.rig.device().stats(0).rx_frames == b.p.stats(0).rx_packets);
    auto un = b.rig.api().take_unsent();
    b.rig.api().free(un);
    CHECK(b.rig.api().audit().balanced());
    CHECK(b.rig.violations().empty());
}

TEST_CASE("a queue stop waits until TXDCTL and RXDCTL read ENABLE clear, at detach and at attach") {
    igbvf_rig::config c = bench::make_cfg(64, igbvf_limits{}.offloads);
    c.stop_reads = 3;  // the VF shows ENABLE for 3 more reads after it was cleared
    igbvf_rig rig(c);
    REQUIRE(rig.ok());
    igbvf_plugin<igbvf_rig::api_type> p;
    for (int round = 0; round < 2; ++round) {
        INFO("round " << round);
        REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
        rig.far_send(rig.flow_for_queue(0), 8);
        rig.step();
        std::array<buffer_ref, 16> out{};
        const std::uint16_t n = p.rx_burst(0, out);
        rig.api().received(std::span(out).first(n));
        rig.api().free(std::span(out).first(n));
        p.detach();
        // The buffers went back only once the VF said the queues had stopped.
        CHECK_FALSE(rig.device().stopping(0));
        CHECK(rig.api().audit().balanced());
    }
    CHECK(rig.api().warnings() == 0);  // no stop wait ran out
    CHECK(rig.violations().empty());
}
