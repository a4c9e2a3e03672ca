// The rules of docs/plugin-guide.md ("Rules the guide settles") on the reference plugin:
// for each rule the kit checks, a copy of the reference plugin that breaks it and the kit's
// message naming it; for the frame limit and ring memory, the reference plugin and the simnic.
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

using namespace npa::sim;
using api = simnic_rig::api_type;
using buf = api::buffer_type;

namespace {

// Clears the latched interrupt cause when it arms: work that arrived while the line was
// masked is lost instead of firing on arm.
template <class Api>
struct arm_clears_cause_plugin : simnic_plugin<Api> {
    simnic_window* win = nullptr;
    npa::status attach(Api& a, simnic_window& d, const npa::queue_config& qc) {
        win = &d;
        return simnic_plugin<Api>::attach(a, d, qc);
    }
    void irq_arm(std::uint16_t q) noexcept {
        win->irq(q).clear();
        simnic_plugin<Api>::irq_arm(q);
    }
};

// Leaves the shortfall of an RX refill to the shell: its own rx_no_buffer never rises.
template <class Api>
struct uncounted_shortfall_plugin : simnic_plugin<Api> {
    mutable std::array<npa::queue_stats, simnic_max_queues> shown{};
    const npa::queue_stats& stats(std::uint16_t q) const noexcept {
        shown[q] = simnic_plugin<Api>::stats(q);
        shown[q].rx_no_buffer = 0;
        return shown[q];
    }
};

// Refuses a frame longer than the link carries with a short count, leaving it with the
// caller, who offers it again forever.
template <class Api>
struct short_count_too_long_plugin : simnic_plugin<Api> {
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        if (!b.empty() && b[0].length() > simnic_max_mtu + simnic_frame_overhead) {
            return 0;
        }
        return simnic_plugin<Api>::tx_burst(q, b);
    }
};

// An API in front of the real one that holds back what the plugin completes during one
// call, so that the plugin below can decide where it goes.
template <class Api>
struct holding_api {
    using buffer_type = typename Api::buffer_type;
    Api* inner = nullptr;
    std::vector<buffer_type> held;
    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<buffer_type> o) noexcept {
        return inner->alloc_rx_buffers(q, o);
    }
    void release_rx_buffers(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        inner->release_rx_buffers(q, in);
    }
    void tx_complete(std::uint16_t, std::span<const buffer_type> in) noexcept {
        held.insert(held.end(), in.begin(), in.end());
    }
    void tx_unsent(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        inner->tx_unsent(q, in);
    }
    void log(npa::log_level l, const char* m) noexcept { inner->log(l, m); }
};

// Hands the TX buffers a completion passed over (the ones counted in tx_errors) back as
// unsent instead of completing them: the shell would send frames the device took again.
template <class Api>
struct skipped_tx_unsent_plugin {
    using buffer_type = typename Api::buffer_type;
    using device_type = simnic_window;
    static constexpr const char* name = "skipped_tx_unsent";
    holding_api<Api> h;
    simnic_plugin<holding_api<Api>> p;

    npa::status attach(Api& a, device_type& d, const npa::queue_config& qc) {
        h.inner = &a;
        return p.attach(h, d, qc);
    }
    void detach() noexcept {
        p.detach();
        flush(0, 0);
    }
    std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept {
        const std::uint64_t e = p.stats(q).tx_errors;
        const std::uint16_t n = p.tx_burst(q, b);
        flush(q, p.stats(q).tx_errors - e);
        return n;
    }
    std::uint32_t tx_reap(std::uint16_t q) noexcept {
        const std::uint64_t e = p.stats(q).tx_errors;
        const std::uint32_t n = p.tx_reap(q);
        flush(q, p.stats(q).tx_errors - e);
        return n;
    }
    std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept {
        return p.rx_burst(q, b);
    }
    std::uint32_t tx_in_flight(std::uint16_t q) const noexcept { return p.tx_in_flight(q); }
    void irq_arm(std::uint16_t q) noexcept { p.irq_arm(q); }
    void irq_disarm(std::uint16_t q) noexcept { p.irq_disarm(q); }
    npa::capabilities capabilities() const noexcept { return p.capabilities(); }
    const npa::queue_stats& stats(std::uint16_t q) const noexcept { return p.stats(q); }
    npa::errc health() const noexcept { return p.health(); }

private:
    // The first `skipped` held buffers go back unsent, the rest completed.
    void flush(std::uint16_t q, std::uint64_t skipped) noexcept {
        const std::span<const buffer_type> all(h.held);
        const std::size_t k = skipped < all.size() ? static_cast<std::size_t>(skipped) : all.size();
        if (k != 0) {
            h.inner->tx_unsent(q, all.first(k));
        }
        if (k != all.size()) {
            h.inner->tx_complete(q, all.subspan(k));
        }
        h.held.clear();
    }
};

bool has(const verdict& v, const char* s) { return v.message.find(s) != std::string::npos; }

const hostile_case& hostile_named(const char* name) {
    for (const hostile_case& hc : hostile_cases()) {
        if (std::string(hc.name) == name) {
            return hc;
        }
    }
    FAIL("no hostile case named " << name);
    return hostile_cases()[0];
}

// Sends n frames of `len` bytes (numbered frames of `flow`, padded) on queue 0.
void send_sized(simnic_rig& r, simnic_plugin<api>& p, std::uint32_t flow, std::uint32_t len,
                std::uint32_t n) {
    std::vector<buf> b(n);
    REQUIRE(r.api().alloc_tx(b) == n);
    for (buf& x : b) {
        REQUIRE(len <= x.capacity());
        r.build_tx(x, flow, len);
    }
    r.api().offer(b);
    CHECK(p.tx_burst(0, b) == n); // a frame too long is accepted all the same, never retried
    r.step(4);
    (void)p.tx_reap(0);
}

} // namespace

TEST_CASE("the plugin never clears a latched interrupt cause: the kit names the lost wake-up") {
    const verdict v = conformance<arm_clears_cause_plugin, simnic_rig>::napi_budget();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "irq 0: work that arrived while disarmed was not signalled on arm"));
}

TEST_CASE("the plugin counts an RX refill's shortfall in its own rx_no_buffer") {
    const verdict v =
        conformance<uncounted_shortfall_plugin, simnic_rig>::empty_pool_stops_refill();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "rxq 0: refill from an empty pool did not count rx_no_buffer"));

    const verdict f = conformance<uncounted_shortfall_plugin, simnic_rig>::hostile(
        hostile_named("RX flood with no buffers posted"));
    INFO(f.message);
    CHECK_FALSE(f.ok);
    CHECK(has(f, "plugin rx_no_buffer 0 (both must count)"));
}

TEST_CASE("TX a completion passes over is completed, never handed back as unsent") {
    const verdict v = conformance<skipped_tx_unsent_plugin, simnic_rig>::hostile(
        hostile_named("dropped TX completions"));
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "dropped TX completions: "));
    CHECK(has(v, "TX buffers handed back through tx_unsent while attached"));
    // The control: without a fault nothing is passed over, and the copy passes.
    NPA_SIM_CHECK_VERDICT((conformance<skipped_tx_unsent_plugin, simnic_rig>::hostile(
        hostile_named("no fault (control case)"))));
}

TEST_CASE("a TX frame the link cannot carry is accepted and counted, never a short count") {
    const verdict v =
        conformance<short_count_too_long_plugin, simnic_rig>::tx_ring_full_short_count();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "txq 0: tx_burst refused a 1519-byte frame (longer than MTU 1500 + 18) with a "
                 "short count; accept it, count tx_errors and complete it"));
}

TEST_CASE("the TX frame limit follows the configured MTU; a longer frame is accepted, counted "
          "in tx_errors and completed unsent") {
    simnic_rig r;
    REQUIRE(r.ok());
    simnic_plugin<api> p;
    npa::queue_config qc = r.queue_cfg();
    qc.mtu = 1000;
    REQUIRE(p.attach(r.api(), r.window(), qc).ok());

    send_sized(r, p, 1, 1000 + simnic_frame_overhead, 4);     // at the limit: sent
    send_sized(r, p, 2, 1000 + simnic_frame_overhead + 1, 4); // one byte over: refused
    CHECK(p.stats(0).tx_errors == 4);
    CHECK(p.stats(0).tx_packets == 4);
    CHECK(r.api().tx_completed(0) == 8); // all eight back through tx_complete
    CHECK(r.api().unsent().empty());
    CHECK(r.far_report(1, 4).received == 4);
    CHECK(r.far_report(2, 4).received == 0);
    CHECK(p.tx_in_flight(0) == 0);
    p.detach();
    CHECK(r.api().audit().balanced());
    CHECK(r.violations().empty());
}

TEST_CASE("attach refuses an MTU outside the device's range and keeps nothing") {
    for (const std::uint32_t mtu : {67u, 1501u, 9000u}) {
        simnic_rig r;
        REQUIRE(r.ok());
        simnic_plugin<api> p;
        npa::queue_config qc = r.queue_cfg();
        qc.mtu = mtu;
        const npa::status st = p.attach(r.api(), r.window(), qc);
        INFO("mtu " << mtu);
        CHECK(st.code() == npa::errc::invalid_argument);
        CHECK(std::string(st.reason()) == "simnic: MTU outside 68..1500");
        CHECK(r.api().audit().in_pool == r.api().audit().total);
    }
}

TEST_CASE("ring memory: a page-aligned area of exactly the largest rings, bases aligned to a "
          "descriptor") {
    simnic_rig r;
    REQUIRE(r.ok());
    const guest_block area = r.window().ring_area(0);
    CHECK(area.iova % 4096 == 0);
    // the rig asks its simnic for rings of at most its own ring sizes
    const std::uint32_t max = std::max(r.cfg().tx_ring, r.cfg().rx_ring);
    CHECK(area.size == simnic_ring_bytes(max, max));
    const npa::iova_t base = area.iova, d = simnic_desc_size;
    constexpr std::uint32_t n = 32;
    r.window().set_rings(
        0, {base + 8, base + n * d + 8, base + 2 * n * d + 8, base + 3 * n * d + 8, n, n});
    const npa::status st = r.window().activate(0);
    CHECK(st.code() == npa::errc::invalid_argument);
    CHECK(std::string(st.reason()) == "simnic: a ring base is not aligned to a descriptor");
}
