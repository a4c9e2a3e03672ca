// The shell's paths: run-time instances of the plugin types, switched and removed by id,
// and the fallback named by a path id.
#include <doctest/doctest.h>

#include "fake_shell_rig.hpp"

#include <npa/shell.hpp>

#include <array>
#include <vector>

using namespace npa_test;

namespace {

/// One plugin type, eight paths over eight devices (the DPDK adapter's shape).
struct many_paths {
    static constexpr std::size_t n = 8;
    using shell1 = npa::shell<test_env, fake_plugin>;
    test_env env;
    npa::fixed_pool<> pool{std::move(
        *npa::fixed_pool<>::create({.count = 1024, .buf_size = 256, .headroom = 0}))};
    std::vector<npa::fixed_pool<>*> pools{&pool};
    std::array<fake_dev, n> devs;
    fake_authority hv;
    std::vector<std::uint64_t> far;
    shell1 sh{env, pools, rig::default_cfg()};
    std::array<npa::path_id, n> ids{};
    std::uint64_t next_seq = 0;

    many_paths() {
        hv.allowed_macs = {mac_a};
        for (std::size_t i = 0; i < n; ++i) {
            devs[i].far_end = &far;
            ids[i] = sh.add_path<fake_plugin>(devs[i], npa::control_link::to(hv));
        }
    }
    void send(std::uint32_t k) {
        std::vector<npa::buffer_ref> b(k);
        const std::uint32_t got = sh.alloc(0, b);
        for (std::uint32_t i = 0; i < got; ++i) b[i].set_user(next_seq++);
        const std::uint16_t took = sh.tx_burst(0, std::span(b.data(), got));
        next_seq -= got - took;
        sh.free(0, std::span<const npa::buffer_ref>(b.data() + took, got - took));
    }
};

} // namespace

TEST_CASE("paths: one plugin type, eight run-time paths, switched by id under traffic") {
    many_paths m;
    static_assert(many_paths::shell1::type_count == 1);
    for (std::size_t i = 0; i < many_paths::n; ++i) {
        CHECK(m.ids[i] == i);  // the lowest free ids, in order
        CHECK(std::string(m.sh.path_name(m.ids[i])) == "fake");
        CHECK(m.sh.plugin<fake_plugin>(m.ids[i]) != nullptr);
    }
    REQUIRE(m.sh.start(m.ids[0]).ok());
    CHECK(m.sh.active_path() == m.ids[0]);
    // 0 -> 1 -> ... -> 7 -> 0, every switch with TX on the way.
    for (std::size_t step = 1; step <= many_paths::n; ++step) {
        const npa::path_id to = m.ids[step % many_paths::n];
        m.send(10);
        REQUIRE(m.sh.request_switch(to, npa::switch_reason::operator_request).ok());
        m.send(10);
        REQUIRE(m.sh.wait_switch().ok());
        CHECK(m.sh.active_path() == to);
        CHECK(m.sh.history().recent(0).to == to);
        CHECK(m.sh.history().recent(0).tx_lost == 0);
        CHECK(m.sh.audit().ok());
    }
    for (int i = 0; i < 8; ++i) (void)m.sh.poll(0);
    // Every device put what it was given on the shared wire, in order, nothing lost.
    check_sequence(m.far, m.next_seq);
    for (std::size_t i = 0; i < many_paths::n; ++i) {
        CHECK(m.sh.path_stats(m.ids[i], 0).tx_packets > 0);
    }
}

TEST_CASE("paths: bad ids, removal, reuse, and the slot limit") {
    many_paths m;
    CHECK(m.sh.request_switch(npa::path_id{200}, npa::switch_reason::boot).code() ==
          npa::errc::invalid_argument);
    CHECK(m.sh.request_switch(many_paths::shell1::no_path, npa::switch_reason::boot).code() ==
          npa::errc::invalid_argument);
    REQUIRE(m.sh.start(m.ids[0]).ok());
    m.sh.set_fallback(m.ids[1]);
    REQUIRE(m.sh.switch_to(m.ids[2], npa::switch_reason::operator_request).ok());
    m.send(20);
    for (int i = 0; i < 4; ++i) (void)m.sh.poll(0);
    REQUIRE(m.sh.switch_to(m.ids[3], npa::switch_reason::operator_request).ok());
    const npa::queue_stats before = m.sh.queue_totals(0);
    CHECK(before.tx_packets == 20);
    // In use: the active path and the fallback cannot go.
    CHECK(m.sh.remove_path(m.ids[3]).code() == npa::errc::bad_state);
    CHECK(m.sh.remove_path(m.ids[1]).code() == npa::errc::bad_state);
    // A path that carried traffic goes; its counters stay in the queue's totals.
    REQUIRE(m.sh.remove_path(m.ids[2]).ok());
    CHECK_FALSE(m.sh.valid_path(m.ids[2]));
    CHECK(m.sh.remove_path(m.ids[2]).code() == npa::errc::invalid_argument);
    CHECK(m.sh.request_switch(m.ids[2], npa::switch_reason::operator_request).code() ==
          npa::errc::invalid_argument);
    CHECK(m.sh.queue_totals(0).tx_packets == before.tx_packets);
    CHECK(m.sh.path_stats(m.ids[2], 0).tx_packets == 0);  // a fresh slot
    // The freed id is the next one handed out; it starts from zero and works.
    fake_dev extra;
    extra.far_end = &m.far;
    const npa::path_id again = m.sh.add_path<fake_plugin>(extra, npa::control_link::to(m.hv));
    CHECK(again == m.ids[2]);
    REQUIRE(m.sh.switch_to(again, npa::switch_reason::operator_request).ok());
    m.send(5);
    for (int i = 0; i < 4; ++i) (void)m.sh.poll(0);
    CHECK(m.sh.queue_totals(0).tx_packets == before.tx_packets + 5);
    CHECK(m.sh.audit().ok());
    // Up to max_paths paths; then add_path answers no_path.
    std::vector<fake_dev> more(many_paths::shell1::max_paths);
    std::size_t added = 0;
    for (auto& d : more) {
        if (m.sh.add_path<fake_plugin>(d, npa::control_link::to(m.hv)) ==
            many_paths::shell1::no_path)
            break;
        ++added;
    }
    CHECK(added == many_paths::shell1::max_paths - many_paths::n);
}

TEST_CASE("paths: the fallback is a path id; a failed device falls back to it") {
    many_paths m;
    REQUIRE(m.sh.start(m.ids[5]).ok());
    m.sh.set_fallback(m.ids[6]);
    m.send(6);
    m.devs[5].health = npa::errc::removed;
    CHECK(m.sh.service());
    for (int i = 0; i < 50 && m.sh.switching(); ++i) {
        (void)m.sh.poll(0);
        test_env::clock += 1'000'000;
        (void)m.sh.service();
    }
    CHECK(m.sh.active_path() == m.ids[6]);
    CHECK(m.sh.history().recent(0).reason == npa::switch_reason::surprise_removal);
    CHECK(m.sh.history().recent(0).tx_lost == 0);
    CHECK(m.sh.audit().ok());
}
