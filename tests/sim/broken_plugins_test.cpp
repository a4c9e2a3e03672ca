// Deliberately broken plugins, one per rule: the conformance kit catches each with a
// message naming the ring, the slot (or the buffer) and the rule, and the process lives on.
#include <npa/sim/conformance_doctest.hpp>
#include <npa/sim/simnic_plugin.hpp>
#include <npa/sim/simnic_rig.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include <sys/wait.h>
#include <unistd.h>

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
        if (n != 0) { // the plugin's own doorbell write has just gone out: overwrite it
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

// Writes a frame length of 0 into the first descriptor of each burst (a fill loop that
// forgot the length); the device must refuse it rather than DMA a zero-length frame.
template <class Api>
struct tx_zero_len_plugin : simnic_plugin<Api> {
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        win = &w;
        ring_size = qc.tx_ring_size;
        return simnic_plugin<Api>::attach(a, w, qc);
    }
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        const std::uint16_t n = simnic_plugin<Api>::tx_burst(q, b);
        if (n != 0) {
            auto* ring = reinterpret_cast<simnic_tx_desc*>(win->ring_area(q).virt);
            ring[(win->tx_prod(q) - n) & (ring_size - 1)].len = 0;
        }
        return n;
    }
    simnic_window* win = nullptr;
    std::uint32_t ring_size = 0;
};

// Plugins whose RX refill writes a wrong descriptor on queue 0 (Edit says which): the RX
// ring follows the TX ring and its completions in the queue's ring memory.
template <class Api, class Edit>
struct rx_desc_plugin : simnic_plugin<Api> {
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        const npa::status st = simnic_plugin<Api>::attach(a, w, qc);
        if (st) {
            Edit{}(reinterpret_cast<simnic_rx_desc*>(w.ring_area(0).virt) + 2 * qc.tx_ring_size);
        }
        return st;
    }
};
struct header_sized_buffer { // posts 64 bytes where a whole frame must fit
    void operator()(simnic_rx_desc* r) const noexcept { r[0].len = 64; }
};
struct same_buffer_twice { // slot 1 gets slot 0's buffer again
    void operator()(simnic_rx_desc* r) const noexcept { r[1].addr = r[0].addr; }
};
struct host_pointer { // a virtual address where the IOVA belongs
    void operator()(simnic_rx_desc* r) const noexcept {
        r[0].addr = reinterpret_cast<std::uintptr_t>(r);
    }
};
template <class Api>
using rx_short_buffer_plugin = rx_desc_plugin<Api, header_sized_buffer>;
template <class Api>
using rx_double_post_plugin = rx_desc_plugin<Api, same_buffer_twice>;
template <class Api>
using rx_bad_iova_plugin = rx_desc_plugin<Api, host_pointer>;

// Rings the RX doorbell three past what each refill filled.
template <class Api>
struct rx_past_filled_plugin : simnic_plugin<Api> {
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        win = &w;
        return simnic_plugin<Api>::attach(a, w, qc);
    }
    std::uint16_t rx_burst(std::uint16_t q, std::span<typename Api::buffer_type> out) noexcept {
        const std::uint32_t before = win->rx_prod(q);
        const std::uint16_t n = simnic_plugin<Api>::rx_burst(q, out);
        if (win->rx_prod(q) != before) { // the refill's doorbell has just gone out: overwrite it
            win->rx_doorbell(q, win->rx_prod(q) + 3);
        }
        return n;
    }
    simnic_window* win = nullptr;
};

// Plugins that read each queue's TX completion ring through an edit (Edit says which),
// applied to every entry before each call that reaps it (tx_burst, tx_reap, detach).
template <class Api, class Edit>
struct tx_comp_view_plugin : simnic_plugin<Api> {
    using base = simnic_plugin<Api>;
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        win = &w;
        cfg = qc;
        return base::attach(a, w, qc);
    }
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        view(q);
        return base::tx_burst(q, b);
    }
    std::uint32_t tx_reap(std::uint16_t q) noexcept {
        view(q);
        return base::tx_reap(q);
    }
    void detach() noexcept {
        for (std::uint16_t q = 0; q < cfg.queues; ++q) {
            view(q);
        }
        base::detach();
    }
    void view(std::uint16_t q) noexcept {
        const auto* ring = reinterpret_cast<const simnic_tx_desc*>(win->ring_area(q).virt);
        auto* comp = reinterpret_cast<simnic_comp_desc*>(win->ring_area(q).virt) + cfg.tx_ring_size;
        for (std::uint32_t i = 0; i < cfg.tx_ring_size; ++i) {
            Edit{}(comp[i], ring, cfg.tx_ring_size);
        }
    }
    simnic_window* win = nullptr;
    npa::queue_config cfg{};
};
// A TX reap that checks a completion's ring index but not the buffer tag it carries: the
// tag it checks is taken from its own descriptor at that index, so any completion naming
// a posted slot is believed.
struct tag_from_own_descriptor {
    void operator()(simnic_comp_desc& c, const simnic_tx_desc* ring, std::uint32_t n) const noexcept {
        if (c.index < n) {
            c.tag = ring[c.index].tag;
        }
    }
};
// A generation bit stuck at 1, as a plugin sees it when it never flips the generation it
// expects: from the second lap on, every completion the device writes looks stale, so the
// reap makes no progress. (Entries the device never wrote stay zero.)
struct generation_stuck_at_one {
    void operator()(simnic_comp_desc& c, const simnic_tx_desc*, std::uint32_t) const noexcept {
        if (c.tag != 0 || simnic_comp_traits::own_word(c) != 0) {
            simnic_comp_traits::own_word(c) |= simnic_comp_traits::own_mask;
        }
    }
};
template <class Api>
using tag_blind_plugin = tx_comp_view_plugin<Api, tag_from_own_descriptor>;
template <class Api>
using stuck_gen_plugin = tx_comp_view_plugin<Api, generation_stuck_at_one>;

// Reads a burst's RX completions with plain loads first, one copy of the next slots (as a
// vectorised read would), prefetches the frames of the batch (the first bytes of each
// posted buffer), and only then walks the copies, checking each one's generation bit
// (acquire) when it comes to it: the fields it uses may be older than the bit it checked.
// With the device stepped between plugin calls nothing changes within a call, so every
// stepped check passes; with the device writing on its own thread, completions land between
// the copy and the check, and are delivered torn (the previous lap's length, or its tag).
template <class Api>
struct early_read_plugin : simnic_plugin<Api> {
    std::uint16_t rx_burst(std::uint16_t qi, std::span<typename Api::buffer_type> out) noexcept {
        auto& q = this->q_[qi];
        std::array<simnic_comp_desc, 64> early;
        const auto k = static_cast<std::uint32_t>(
            std::min<std::size_t>({out.size(), early.size(), q.rx_slots.in_flight()}));
        read_early(q.rxc, std::span(early).first(k));
        unsigned sum = 0;
        for (std::uint32_t i = 0; i < k; ++i) { // the prefetch: each frame's Ethernet header
            const auto& b = q.rx_slots[(q.rxc.next_to_clean() + i) % q.rxc.size()];
            for (std::uint32_t j = 0; j < 64; j += 4) {
                sum += std::to_integer<unsigned>(b.data()[j]);
            }
        }
        prefetched = sum;
        std::uint16_t n = 0;
        for (std::uint32_t i = 0; i < k && q.rxc.ready(); ++i) { // the done bit, last
            q.rxc.advance();
            if (this->rx_complete(qi, early[i], out[n])) {
                ++n;
            }
        }
        this->refill(qi);
        return n;
    }
    // The bug: plain loads of completions the device may be writing at this moment.
    static void read_early(const npa::gen_consumer<simnic_comp_traits>& rxc,
                           std::span<simnic_comp_desc> to) noexcept {
        for (std::uint32_t i = 0; i < to.size(); ++i) {
            std::memcpy(&to[i], &rxc.ring()[(rxc.next_to_clean() + i) % rxc.size()],
                        sizeof(simnic_comp_desc));
        }
    }
    volatile unsigned prefetched = 0; // keeps the prefetch loads
};

// A TX reap that spins until the device has written the next completion. The kit steps
// the device on the plugin's thread, so a completion that is not there yet (a slow
// device) never comes: the call never returns.
template <class Api>
struct spin_reap_plugin : simnic_plugin<Api> {
    std::uint32_t tx_reap(std::uint16_t q) noexcept {
        std::uint32_t n = 0;
        while ((n = simnic_plugin<Api>::tx_reap(q)) == 0 && this->tx_in_flight(q) != 0) {
        }
        return n;
    }
};

// A TX path that accepts one buffer every 150th tx_burst: always some progress, so no
// stall is ever long enough to be one, but far too slow to finish.
template <class Api>
struct trickle_plugin : simnic_plugin<Api> {
    std::uint16_t tx_burst(std::uint16_t q, std::span<typename Api::buffer_type> b) noexcept {
        return ++calls % 150 == 0 ? simnic_plugin<Api>::tx_burst(q, b.first(b.empty() ? 0 : 1))
                                  : std::uint16_t{0};
    }
    std::uint64_t calls = 0;
};

// Detach takes every buffer back without stopping the device first: the quiesce command
// never reaches it (a driver that frees its buffers before it disables the queue), so the
// device still holds the posted RX buffers and the TX descriptors it was told about.
template <class Api>
struct no_quiesce_plugin : simnic_plugin<Api> {
    npa::status attach(Api& a, simnic_window& w, const npa::queue_config& qc) {
        win = &w;
        return simnic_plugin<Api>::attach(a, w, qc);
    }
    void detach() noexcept {
        if (win == nullptr) {
            return simnic_plugin<Api>::detach();
        }
        dev = {win->context(), win->command_handler()};
        win->bind(&dev, &drop_quiesce, win->max_queues()); // every command but quiesce
        simnic_plugin<Api>::detach();
        win->bind(dev.ctx, dev.fn, win->max_queues());
    }
    struct device {
        void* ctx = nullptr;
        simnic_window::command_fn fn = nullptr;
    };
    static npa::status drop_quiesce(void* ctx, simnic_window::command c, std::uint16_t q) noexcept {
        const auto* d = static_cast<const device*>(ctx);
        return c == simnic_window::command::quiesce ? npa::status::success() : d->fn(d->ctx, c, q);
    }
    device dev;
    simnic_window* win = nullptr;
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
        inner->release_rx_buffers(q, Lose && !in.empty() ? in.subspan(1) : in); // loses one
    }
    void tx_complete(std::uint16_t q, std::span<const buffer_type> in) noexcept {
        inner->tx_complete(q, in);
        if (Twice && !in.empty()) {
            inner->tx_complete(q, in.first(1)); // returns one twice
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
    std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept {
        return p.tx_burst(q, b);
    }
    std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> b) noexcept {
        return p.rx_burst(q, b);
    }
    std::uint32_t tx_reap(std::uint16_t q) noexcept { return p.tx_reap(q); }
    std::uint32_t tx_in_flight(std::uint16_t q) const noexcept { return p.tx_in_flight(q); }
    void irq_arm(std::uint16_t q) noexcept { p.irq_arm(q); }
    void irq_disarm(std::uint16_t q) noexcept { p.irq_disarm(q); }
    npa::capabilities capabilities() const noexcept { return p.capabilities(); }
    const npa::queue_stats& stats(std::uint16_t q) const noexcept { return p.stats(q); }
};
template <class Api>
using pass_through_plugin = filtered_plugin<Api, false, false>;
template <class Api>
using lossy_plugin = filtered_plugin<Api, true, false>;
template <class Api>
using double_return_plugin = filtered_plugin<Api, false, true>;

bool has(const verdict& v, const char* s) { return v.message.find(s) != std::string::npos; }

// The check failed, and its message says each of `says` (ring, slot, rule ...).
void expect_caught(const verdict& v, std::initializer_list<const char*> says) {
    INFO(v.message);
    CHECK_FALSE(v.ok);
    for (const char* s : says) {
        CHECK_MESSAGE(has(v, s), std::string(s));
    }
}

const hostile_case& hostile_case_named(std::string_view name) {
    for (const hostile_case& hc : hostile_cases()) {
        if (name == hc.name) {
            return hc;
        }
    }
    FAIL("no hostile case named " << name);
    return hostile_cases()[0];
}

} // namespace

// ThreadSanitizer reports the planted race itself (read_early's plain loads against the
// device's writes) and ends the run, so under TSan this case is not compiled: the tsan stage
// proves the shipped plugins race-free (tests/sim/threaded_test.cpp), this case proves the
// kit names the bug, in every other build.
#if defined(__SANITIZE_THREAD__)
#define NPA_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NPA_TEST_TSAN 1
#endif
#endif
#ifndef NPA_TEST_TSAN
TEST_CASE("a plugin that reads RX completion fields before the done bit: a torn completion") {
    using kit = conformance<early_read_plugin, simnic_rig>;
    // The stepped checks cannot see it: within a call, nothing is being written.
    NPA_SIM_CHECK_VERDICT(kit::ring_wrap());
    NPA_SIM_CHECK_VERDICT(kit::rx_refill_keeps_ring_full());
    // With the device on its own thread, writing each completion field by field with a
    // random pause before each and before the done bit, the copy meets half-written ones.
    const auto threaded = kit::threaded_checks();
    expect_caught(kit::run(threaded[1]),
                  {"torn completion: ", "a completion field was read before the done bit (read "
                                        "the done bit with acquire ordering first)"});
    // The control: the reference plugin passes the same case.
    NPA_SIM_CHECK_VERDICT((conformance<simnic_plugin, simnic_rig>::threaded_write_jitter()));
}
#endif

TEST_CASE("a plugin that posts a buffer twice is caught: ring, slot, rule") {
    expect_caught(
        conformance<double_post_plugin, simnic_rig>::tx_all_completed(),
        {"simnic0 txq 0 slot 1: buffer posted twice: IOVA 0x", "already in flight in slot 0"});
}

TEST_CASE("a plugin that posts an IOVA outside guest memory is caught") {
    expect_caught(conformance<bad_iova_plugin, simnic_rig>::tx_all_completed(),
                  {"simnic0 txq 0 slot 0: IOVA outside guest memory"});
}

TEST_CASE("a plugin that rings the doorbell past what it filled is caught") {
    expect_caught(conformance<doorbell_plugin, simnic_rig>::tx_all_completed(),
                  {"simnic0 txq 0 slot 0: doorbell beyond the ring"});
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
    CHECK(v[0] ==
          "simnic0 txq 0 slot 4: doorbell past the filled descriptors: doorbell says 3 "
          "more descriptors, but this slot is not handed over (generation bit not flipped)");
    CHECK(rig.device().state() == simnic_state::failed);
    CHECK(p.health() == npa::errc::device_error);
    p.detach(); // the four come back unsent: the device stopped the queue before sending
    CHECK(rig.api().unsent().size() == 4);
    rig.api().free(rig.api().take_unsent());
    CHECK(rig.api().audit().balanced());
}

TEST_CASE("a plugin that rings the RX doorbell beyond the ring is caught") {
    expect_caught(conformance<rx_doorbell_plugin, simnic_rig>::attach_detach(),
                  {"simnic0 rxq 0 slot 0: doorbell beyond the ring"});
}

TEST_CASE("a plugin that loses a buffer on detach is caught") {
    expect_caught(conformance<lossy_plugin, simnic_rig>::attach_detach(),
                  {"detach: the plugin still holds"});
}

TEST_CASE("a plugin that returns a TX buffer twice is caught") {
    expect_caught(conformance<double_return_plugin, simnic_rig>::tx_all_completed(),
                  {"shell API: tx_complete: buffer #", "handed over twice"});
}

TEST_CASE("a plugin that writes a bad TX frame length is caught") {
    expect_caught(conformance<tx_zero_len_plugin, simnic_rig>::tx_all_completed(),
                  {"device: simnic0 txq 0 slot 0: bad descriptor length: frame length 0 outside "
                   "14..1518"});
}

TEST_CASE("a plugin that posts an RX buffer smaller than a frame is caught") {
    expect_caught(conformance<rx_short_buffer_plugin, simnic_rig>::attach_detach(),
                  {"device: simnic0 rxq 0 slot 0: bad descriptor length: buffer of 64 bytes is "
                   "smaller than a frame (1518)"});
}

TEST_CASE("a plugin that posts an RX buffer twice is caught") {
    expect_caught(conformance<rx_double_post_plugin, simnic_rig>::attach_detach(),
                  {"device: simnic0 rxq 0 slot 1: buffer posted twice: IOVA 0x",
                   "is already posted in slot 0"});
}

TEST_CASE("a plugin that posts an RX IOVA outside guest memory is caught") {
    expect_caught(conformance<rx_bad_iova_plugin, simnic_rig>::attach_detach(),
                  {"device: simnic0 rxq 0 slot 0: IOVA outside guest memory: IOVA 0x",
                   "bytes is not guest memory"});
}

TEST_CASE("a plugin that rings the RX doorbell past what it filled is caught") {
    expect_caught(conformance<rx_past_filled_plugin, simnic_rig>::rx_refill_keeps_ring_full(),
                  {"device: simnic0 rxq 0 slot ",
                   ": doorbell past the filled descriptors: doorbell says 3 more descriptors"});
}

TEST_CASE("an RX doorbell three past one refill: the device names the first slot not handed over") {
    simnic_rig rig;
    rx_past_filled_plugin<api> p;
    REQUIRE(p.attach(rig.api(), rig.window(), rig.queue_cfg()).ok());
    rig.step(); // the device fetches the full ring
    rig.far_send(rig.flow_for_queue(0), 5);
    rig.step();
    std::array<buf, 8> out{};
    const std::uint16_t k = p.rx_burst(0, out); // refills 5, then rings the doorbell 3 further
    REQUIRE(k == 5);
    rig.api().received(std::span(out).first(k));
    rig.api().free(std::span(out).first(k));
    rig.step();
    const auto v = rig.violations();
    REQUIRE(v.size() == 1);
    CHECK(v[0] ==
          "simnic0 rxq 0 slot 5: doorbell past the filled descriptors: doorbell says 3 "
          "more descriptors, but this slot is not handed over (generation bit not flipped)");
    CHECK(rig.device().state() == simnic_state::failed);
    p.detach(); // the posted buffers come back, including the five refilled ones
    CHECK(rig.api().audit().balanced());
    CHECK(rig.api().audit().in_pool == rig.api().audit().total);
}

TEST_CASE("a TX reap that checks the ring index but not the tag is caught") {
    const hostile_case& hc =
        hostile_case_named("TX completions out of order, each naming the other's slot (tags mismatched)");
    expect_caught(conformance<tag_blind_plugin, simnic_rig>::hostile(hc),
                  {"TX completions out of order, each naming the other's slot (tags mismatched): "
                   "not detected (bad_completion stayed 0)",
                   "the TX reap checks the ring index but not the buffer tag the completion "
                   "carries"});
    // The control: the reference plugin checks the tag and passes the same case.
    NPA_SIM_CHECK_VERDICT((conformance<simnic_plugin, simnic_rig>::hostile(hc)));
}

TEST_CASE("a TX reap whose generation bit is stuck fails its case, naming case, ring and slot") {
    using kit = conformance<stuck_gen_plugin, simnic_rig>;
    const auto checks = kit::checks();
    const auto& tx_check = checks[1];
    REQUIRE(std::string_view(tx_check.name) == "TX of N packets all completed");
    // 256-slot rings: the first lap completes, then nothing does.
    expect_caught(kit::run(tx_check),
                  {"watchdog: TX of N packets all completed: tx_reap on txq 0 made no progress "
                   "for 200 device steps", "last slot completed 255 (256 buffers completed on "
                   "that ring)"});
    // Called directly (no run()), the same bound holds.
    expect_caught(kit::tx_all_completed(), {"watchdog: this case: tx_reap on txq 0 made no "
                                            "progress for 200 device steps"});
}

TEST_CASE("a plugin too slow to ever finish runs out of the case's budget of device steps") {
    using kit = conformance<trickle_plugin, simnic_rig>;
    const auto checks = kit::checks();
    expect_caught(kit::run(checks[1]),
                  {"watchdog: TX of N packets all completed: tx_burst on txq 0 was the last call "
                   "when the case ran out of its budget of 20000 device steps",
                   "last slot completed 133 (134 buffers completed on that ring)"});
}

// Runs `fn` in a child process and returns what it wrote on stderr; `status` gets its
// wait status. The watchdog ends the process it runs in, so that is where it must run.
template <class Fn>
std::string in_child(Fn fn, int& status) {
    std::array<int, 2> fds{};
    REQUIRE(::pipe(fds.data()) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(fds[1], 2);
        ::close(fds[0]);
        fn();
        std::_Exit(0);
    }
    ::close(fds[1]);
    std::string out;
    std::array<char, 512> chunk{};
    ssize_t n = 0;
    while ((n = ::read(fds[0], chunk.data(), chunk.size())) > 0) {
        out.append(chunk.data(), static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return out;
}

std::string fmt_ms(long long ms) {
    return "did not finish within " + std::to_string(ms) + " ms";
}

TEST_CASE("a TX reap that never returns: the watchdog names case, call, ring and slot, then ends the run") {
    const hostile_case& hc = hostile_case_named("delayed TX completions");
    // The reap hangs for good, so any deadline ends the run; on a loaded machine a short one
    // may expire while the case is still setting up (a report that says so), so the deadline
    // grows until the report catches the plugin in its reap.
    bool in_reap = false;
    for (const long long ms : {300LL, 2'000LL, 10'000LL}) {
        const auto start = std::chrono::steady_clock::now();
        int status = 0;
        const std::string err = in_child(
            [&] {
                (void)conformance<spin_reap_plugin, simnic_rig>::run(hc, std::chrono::milliseconds{ms});
            },
            status);
        const auto took = std::chrono::steady_clock::now() - start;
        INFO(err);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == EXIT_FAILURE);
        CHECK(has(verdict{false, err}, "conformance FAILED: watchdog: delayed TX completions: "));
        CHECK(has(verdict{false, err}, fmt_ms(ms).c_str()));
        CHECK(took < std::chrono::milliseconds{ms} + std::chrono::seconds{30});
        if (has(verdict{false, err}, "tx_reap on txq 0 has not returned; last slot completed ")) {
            in_reap = true;
            break;
        }
        // Not in the reap yet: the report must then say the case was still setting up.
        CHECK(has(verdict{false, err}, "has not returned before the kit's first plugin call"));
    }
    CHECK(in_reap);
    // The control: the reference plugin finishes the same case under the same watchdog.
    NPA_SIM_CHECK_VERDICT(
        (conformance<simnic_plugin, simnic_rig>::run(hc, std::chrono::milliseconds{30'000})));
}

TEST_CASE("a plugin that detaches without stopping the device is caught: DMA after detach") {
    // The device keeps the RX buffers it fetched and writes the next frames into them,
    // although detach has put them back in the pool.
    expect_caught(conformance<no_quiesce_plugin, simnic_rig>::attach_detach(),
                  {"device: DMA into a released buffer after detach: rxq 0, buffer #",
                   "handed back by release_rx_buffers, now held by the pool"});
    // It also fetches and sends the TX descriptors it was told about, from buffers detach
    // has handed back unsent.
    expect_caught(conformance<no_quiesce_plugin, simnic_rig>::detach_returns_every_buffer(),
                  {"device: DMA from a released buffer after detach: txq 0, buffer #",
                   "handed back by tx_unsent, now held by the caller",
                   "device: DMA into a released buffer after detach: rxq 1, buffer #"});
}

TEST_CASE("the kit requires health() to check a device reset or a surprise removal") {
    for (const hostile_case& hc : hostile_cases()) {
        if (hc.expect != detect::device_error && hc.expect != detect::removed) {
            continue;
        }
        INFO(hc.name);
        const verdict v = conformance<pass_through_plugin, simnic_rig>::hostile(hc);
        CHECK_FALSE(v.ok);
        CHECK(has(v, "the plugin has no health(), so it cannot report that the device went away"));
        CHECK_FALSE(has(v, "audit:")); // nothing is lost on the way
    }
}

TEST_CASE("the reference plugin behind a pass-through filter still passes") {
    // The control for the lossy and double-return plugins: the filter alone breaks nothing.
    NPA_SIM_CHECK_VERDICT((conformance<pass_through_plugin, simnic_rig>::attach_detach()));
    NPA_SIM_CHECK_VERDICT((conformance<pass_through_plugin, simnic_rig>::tx_all_completed()));
    NPA_SIM_CHECK_VERDICT(
        (conformance<pass_through_plugin, simnic_rig>::detach_returns_every_buffer()));
    for (const hostile_case& hc : hostile_cases()) {
        if (hc.expect != detect::device_error && hc.expect != detect::removed) {
            INFO(hc.name);
            NPA_SIM_CHECK_VERDICT((conformance<pass_through_plugin, simnic_rig>::hostile(hc)));
        }
    }
}
