// <npa/npa.hpp> alone is enough for a program that runs a shell: this file includes nothing
// else of npa (fake_path.hpp includes only the umbrella header too). Every name used below
// comes from a header the umbrella must pull in: the shell, its control link and control
// state, the switch history.
#include <doctest/doctest.h>

#include "fake_path.hpp"

#include <npa/npa.hpp>

#include <vector>

namespace {

struct umbrella_env {
    using pool_type = npa::fixed_pool<>;
    static std::uint64_t now_ns() noexcept { return 1; }
};

} // namespace

TEST_CASE("npa.hpp alone: a shell starts, forwards a burst and records its switch") {
    umbrella_env env;
    auto pool = npa::fixed_pool<>::create({.count = 2048, .buf_size = 256, .headroom = 0});
    REQUIRE(pool.ok());
    npa::fixed_pool<>* pools[] = {&*pool};
    npa::shell<umbrella_env, npa_test::fake_plugin> sh(env, pools, {});
    REQUIRE(sh.init_status().ok());

    npa_test::fake_dev dev;
    npa_test::fake_authority hv;
    const npa::control_link link = npa::control_link::to(hv);
    REQUIRE(sh.start<0>(dev, link).ok());
    CHECK(sh.history().count() == 1);

    npa::control_state wanted;
    wanted.apply(npa::control_request::make_mtu(1500));
    CHECK(wanted.mtu() == 1500);

    std::vector<npa::buffer_ref> b(8);
    REQUIRE(sh.alloc(0, b) == 8);
    for (std::uint32_t i = 0; i < 8; ++i)
        b[i].set_user(i);
    CHECK(sh.tx_burst(0, b) == 8);
    for (int i = 0; i < 4; ++i)
        (void)sh.poll(0);
    CHECK(dev.wire[0] == std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7});
    sh.stop();
    CHECK(sh.audit().ok());
}
