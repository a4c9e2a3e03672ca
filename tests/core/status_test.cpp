// npa::status and npa::result<T>: the control path's error reporting.
#include <doctest/doctest.h>

#include <npa/status.hpp>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

namespace {

/// Counts live instances, to prove result<T> constructs and destroys exactly once.
struct counted {
    static inline int live = 0;
    int v;
    explicit counted(int x) noexcept : v(x) { ++live; }
    counted(counted&& o) noexcept : v(o.v) { ++live; }
    counted(const counted&) = delete;
    ~counted() { --live; }
};

npa::result<int> parse_mtu(int v) {
    if (v < 68) {
        return {npa::errc::invalid_argument, "MTU below the IPv4 minimum of 68"};
    }
    return v;
}

npa::status apply(bool allowed) {
    if (!allowed) {
        return {npa::errc::refused, "MAC not allowed by policy"};
    }
    return npa::status::success();
}

} // namespace

TEST_CASE("status: success, codes and reasons") {
    constexpr npa::status ok;
    static_assert(ok.ok());
    static_assert(static_cast<bool>(ok));
    static_assert(ok.code() == npa::errc::ok);
    CHECK(std::string(ok.reason()) == "ok");

    const npa::status e = apply(false);
    CHECK_FALSE(e.ok());
    CHECK_FALSE(static_cast<bool>(e));
    CHECK(e == npa::errc::refused);
    CHECK(std::string(e.reason()) == "MAC not allowed by policy");

    // Without a reason, the code's own text stands in.
    const npa::status t(npa::errc::timeout);
    CHECK(std::string(t.reason()) == "timeout");
    CHECK(apply(true).ok());

    // [[nodiscard]] and trivially copyable: cheap to return, hard to ignore.
    static_assert(std::is_trivially_copyable_v<npa::status>);
    static_assert(sizeof(npa::status) <= 16);
}

TEST_CASE("status: every code has its own text") {
    std::set<std::string> texts;
    for (int c = 0; c <= static_cast<int>(npa::errc::bad_state); ++c) {
        const char* s = npa::to_string(static_cast<npa::errc>(c));
        REQUIRE(s != nullptr);
        CHECK(std::strlen(s) > 0);
        texts.insert(s);
    }
    CHECK(texts.size() == static_cast<std::size_t>(npa::errc::bad_state) + 1);
    CHECK(std::string(npa::to_string(static_cast<npa::errc>(200))) == "unknown");
}

TEST_CASE("result: holds a value or a status") {
    auto good = parse_mtu(1500);
    REQUIRE(good.ok());
    CHECK(static_cast<bool>(good));
    CHECK(*good == 1500);
    CHECK(good.error().ok());

    auto bad = parse_mtu(10);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error() == npa::errc::invalid_argument);
    CHECK(std::string(bad.error().reason()).find("68") != std::string::npos);

    const npa::result<int> from_status(npa::status(npa::errc::busy, "switch in progress"));
    CHECK_FALSE(from_status.ok());
    CHECK(from_status.error() == npa::errc::busy);
}

TEST_CASE("result: a success status without a value is not a success") {
    // A result built from status::success() has no value to give; it must not report
    // ok() and must not report "ok" as its error either (a caller testing error() would
    // otherwise conclude that nothing went wrong and dereference an empty result).
    const npa::result<int> r(npa::status::success());
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.error().ok());
}

TEST_CASE("result: move-only values, constructed and destroyed exactly once") {
    counted::live = 0;
    {
        npa::result<counted> r(counted(7));
        REQUIRE(r.ok());
        CHECK(r->v == 7);
        CHECK(counted::live == 1);
        npa::result<counted> moved(std::move(r));
        CHECK(moved->v == 7);
        CHECK(counted::live == 2); // the moved-from value still exists until r dies
        npa::result<counted> err(npa::errc::no_memory);
        CHECK(counted::live == 2); // an error holds no value
    }
    CHECK(counted::live == 0);

    npa::result<std::unique_ptr<int>> p(std::make_unique<int>(5));
    REQUIRE(p.ok());
    CHECK(**p == 5);
    npa::result<std::unique_ptr<int>> q(std::move(p));
    CHECK(**q == 5);
    static_assert(!std::is_copy_constructible_v<npa::result<int>>);
    static_assert(std::is_nothrow_move_constructible_v<npa::result<int>>);
}
