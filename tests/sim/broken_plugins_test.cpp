// Deliberately broken plugins, one per rule: the conformance kit catches each with a
// message naming the ring, the slot (or the buffer) and the rule, and the process lives on.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <npa/sim/conformance.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#include <array>
#include <string>

using namespace npa::sim;
using api = simnic_rig::api_type;
using buf = api::buffer_type;

namespace {

// Posts the same buffer twice: bufs[1] is overwritten with bufs[0].
template <class Api>
struct double_post_plugin : simnic_plugin<Api> {
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        if (b.size() >= 2) {
            b[1] = b[0];
        }
        return simnic_plugin<Api>::tx_burst(q, b);
    }
};

// Posts an IOVA outside guest memory (a host pointer instead of a device address).
template <class Api>
struct bad_iova_plugin : simnic_plugin<Api> {
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        if (b.empty()) {
            return 0;
        }
        npa::packet_buffer* p = b[0].get();
        const npa::iova_t saved = p->buf_iova;
        p->buf_iova = reinterpret_cast<std::uintptr_t>(p->buf_addr);
        const std::uint16_t n = simnic_plugin<Api>::tx_burst(q, b);
        p->buf_iova = saved;
        return n;
    }
};

// Rings the TX doorbell three descriptors past what it filled.
template <class Api>
struct doorbell_plugin : simnic_plugin<Api> {
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        win = &w;
        return simnic_plugin<Api>::attach(a, w, qc);
    }
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        const std::uint16_t n = simnic_plugin<Api>::tx_burst(q, b);
        if (n != 0) {  // the plugin's own doorbell write has just gone out: overwrite it
            win->tx_doorbell(q, win->tx_prod(q) + 3);
        }
        return n;
    }
    simnic_window* win = nullptr;
};

// Rings the RX doorbell a whole ring ahead.
template <class Api>
struct rx_doorbell_plugin : simnic_plugin<Api> {
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        const npa::status st = simnic_plugin<Api>::attach(a, w, qc);
        w.rx_doorbell(0, w.rx_prod(0) + qc.rx_ring_size + 1);
        return st;
    }
};

// An API filter in front of the real one, so a plugin can "forget" or repeat a hand-over.
template <class Api, bool Lose, bool Twice>
struct filter_api {
    using buffer_type = typename Api::buffer_type;
    Api* inner = nullptr;
    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<buffer_type> o) noexcept {
        return inner->alloc_rx_buffers(q, o);
    }
    void release_rx_buffers(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        inner->release_rx_buffers(q, Lose && !in.empty() ? in.subspan(1) : in);  // loses one
    }
    void tx_complete(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        inner->tx_complete(q, in);
        if (Twice && !in.empty()) {
            inner->tx_complete(q, in.first(1));  // returns one twice
        }
    }
    void tx_unsent(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        inner->tx_unsent(q, in);
    }
    void log(npa::log_level l, const char* m) noexcept { inner->log(l, m); }
};

template <class Api, bool Lose, bool Twice>
struct filtered_plugin {
    using buffer_type = typename Api::buffer_type;
    using device_type = simnic_window;
    static constexpr const char* name = "filtered";
    using fapi = filter_api<Api, Lose, Twice>;
    fapi f;
    simnic_plugin<fapi> p;
    npa::status attach(Api& a, device_type& d, const npa::queue_config& qc) {
        f.inner = &a;
        return p.attach(f, d, qc);
    }
    void detach() noexcept { p.detach(); }
    std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept { return p.tx_burst(q, b); }
    std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept { return p.rx_burst(q, b); }
    std::uint32_t tx_reap(std::uint16_t q) noexcept { return p.tx_reap(q); }
    std::uint32_t tx_in_flight(std::uint16_t q) const noexcept { return p.tx_in_flight(q); }
    void irq_arm(std::uint16_t q) noexcept { p.irq_arm(q); }
    void irq_disarm(std::uint16_t q) noexcept { p.irq_disarm(q); }
    npa::capabilities capabilities() const noexcept { return p.capabilities(); }
    const npa::queue_stats& stats(std::uint16_t q) const noexcept { return p.stats(q); }
};
template <class Api>
using lossy_plugin = filtered_plugin<Api, true, false>;
template <class Api>
using double_return_plugin = filtered_plugin<Api, false, true>;

bool has(const verdict& v, const char* s) { return v.message.find(s) != std::string::npos; }

} // namespace

TEST_CASE("a plugin that posts a buffer twice is caught: ring, slot, rule") {
    const verdict v = conformance<double_post_plugin, simnic_rig>::tx_all_completed();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "simnic0 txq 0 slot 1: buffer posted twice: IOVA 0x"));
    CHECK(has(v, "already in flight in slot 0"));
}

TEST_CASE("a plugin that posts an IOVA outside guest memory is caught") {
    const verdict v = conformance<bad_iova_plugin, simnic_rig>::tx_all_completed();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "simnic0 txq 0 slot 0: IOVA outside guest memory"));
}

TEST_CASE("a plugin that rings the doorbell past what it filled is caught") {
    const verdict v = conformance<doorbell_plugin, simnic_rig>::tx_all_completed();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "simnic0 txq 0 slot 0: doorbell beyond the ring"));  // the kit fills the ring first
}

TEST_CASE("a doorbell three past one burst: the device names the first slot not handed over") {
    simnic_rig rig;
    doorbell_plugin<api> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    std::array<buf, 4> b{};
    REQUIRE(rig.api().alloc_tx(b) == 4);
    for (buf x : b) {
        rig.build_tx(x, 1);
    }
    rig.api().offer(b);
    CHECK(p.tx_burst(0, b) == 4);
    rig.step();
    const auto v = rig.violations();
    REQUIRE(v.size() == 1);
    CHECK(v[0] == "simnic0 txq 0 slot 4: doorbell past the filled descriptors: doorbell says 3 "
                  "more descriptors, but this slot is not handed over (generation bit not flipped)");
    CHECK(rig.device().state() == simnic_state::failed);
    CHECK(p.health() == npa::errc::device_error);
    p.detach();  // the four come back unsent: the device stopped the queue before sending
    CHECK(rig.api().unsent().size() == 4);
    rig.api().free(rig.api().take_unsent());
    CHECK(rig.api().audit().balanced());
}

TEST_CASE("a plugin that rings the RX doorbell beyond the ring is caught") {
    const verdict v = conformance<rx_doorbell_plugin, simnic_rig>::attach_detach();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "simnic0 rxq 0 slot 0: doorbell beyond the ring"));
}

TEST_CASE("a plugin that loses a buffer on detach is caught") {
    const verdict v = conformance<lossy_plugin, simnic_rig>::attach_detach();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "detach: the plugin still holds"));
}

TEST_CASE("a plugin that returns a TX buffer twice is caught") {
    const verdict v = conformance<double_return_plugin, simnic_rig>::tx_all_completed();
    INFO(v.message);
    CHECK_FALSE(v.ok);
    CHECK(has(v, "shell API: tx_complete: buffer #"));
    CHECK(has(v, "handed over twice"));
}

TEST_CASE("the reference plugin behind a pass-through filter still passes") {
    using pass = filtered_plugin<api, false, false>;
    (void)sizeof(pass);
    const verdict v = conformance<simnic_plugin, simnic_rig>::tx_all_completed();
    CHECK_MESSAGE(v.ok, v.message);
}
