// The vhost-user front end (npa/linux/vhost_user): its messages checked byte by byte, and
// its session against a back end nobody here wrote: DPDK's net_vhost in dpdk-testpmd
// (NPA_TESTPMD; skipped, and said so, when the program is not there). testpmd's view is
// read through its telemetry socket: the port's link comes up only when the vhost library
// has taken the memory table and both rings (addresses translated, enabled).
#include <doctest/doctest.h>

#include <npa/linux/vhost_user/front_end.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace vu = npa::vhost_user;

TEST_CASE("vhost-user messages: layouts and the checks a message that arrived goes through") {
    SUBCASE("well-formed requests pass") {
        CHECK(vu::check(vu::message::make(vu::request::get_features), 0));
        CHECK(vu::check(vu::message::with_u64(vu::request::set_features, 1ull << 32), 0));
        CHECK(vu::check(vu::message::with_state(vu::request::set_vring_num, 1, 256), 0));
        CHECK(vu::check(vu::message::with_u64(vu::request::set_vring_kick, 1), 1));
        CHECK(vu::check(vu::message::with_u64(vu::request::set_vring_call, 0 | vu::vring_nofd), 0));
        vu::message t = vu::message::make(vu::request::set_mem_table);
        vu::memory_table mt{};
        mt.nregions = 2;
        mt.regions[0] = {0, 4096, 0x10000, 0};
        mt.regions[1] = {4096, 8192, 0x20000, 0};
        std::memcpy(t.payload.data(), &mt, sizeof mt);
        t.hdr.size = 8 + 2 * sizeof(vu::memory_region);
        CHECK(vu::check(t, 2));
        CHECK_FALSE(vu::check(t, 1));  // one descriptor a region
        t.hdr.size += 32;              // a size that does not match the count
        CHECK_FALSE(vu::check(t, 2));
    }
    SUBCASE("a hostile peer's messages are refused with a sentence") {
        vu::message m = vu::message::make(vu::request::get_features);
        m.hdr.flags = 2;  // version 2
        CHECK(vu::check(m, 0).reason() == std::string("vhost-user: a message of another protocol version"));
        m = vu::message::make(vu::request::get_features);
        m.hdr.flags |= 1u << 7;
        CHECK_FALSE(vu::check(m, 0));
        m = vu::message::make(static_cast<vu::request>(99));
        CHECK(vu::check(m, 0).reason() == std::string("vhost-user: unknown request"));
        m = vu::message::make(vu::request::get_features);
        m.hdr.size = vu::max_payload + 1;
        CHECK_FALSE(vu::check(m, 0));
        m = vu::message::with_u64(vu::request::set_features, 1);
        m.hdr.size = 4;
        CHECK_FALSE(vu::check(m, 0));
        CHECK_FALSE(vu::check(vu::message::with_state(vu::request::set_vring_num, 256, 256), 0));
        CHECK_FALSE(vu::check(vu::message::with_u64(vu::request::set_vring_kick, 1), 0));  // no fd
        CHECK_FALSE(vu::check(vu::message::with_u64(vu::request::set_vring_kick, 1 | vu::vring_nofd), 1));
        CHECK_FALSE(vu::check(vu::message::with_u64(vu::request::set_vring_kick, 1ull << 20), 1));
        CHECK_FALSE(vu::check(vu::message::make(vu::request::set_owner), 1));
        vu::message t = vu::message::make(vu::request::set_mem_table);
        vu::memory_table mt{};
        mt.nregions = 9;
        std::memcpy(t.payload.data(), &mt, 8);
        t.hdr.size = 8;
        CHECK_FALSE(vu::check(t, 0));
        mt.nregions = 1;
        mt.regions[0] = {0, ~0ull, 0x1000, 0};  // wraps
        std::memcpy(t.payload.data(), &mt, 8 + 32);
        t.hdr.size = 40;
        CHECK(vu::check(t, 1).reason() == std::string("vhost-user: a memory region that is empty or wraps"));
    }
    SUBCASE("replies") {
        vu::message r = vu::message::with_u64(vu::request::get_features, 5);
        CHECK_FALSE(vu::check(r, 0, true, vu::request::get_features));  // no reply flag
        r.hdr.flags |= vu::flag_reply;
        CHECK(vu::check(r, 0, true, vu::request::get_features));
        CHECK_FALSE(vu::check(r, 0, true, vu::request::get_protocol_features));  // another request's
        CHECK_FALSE(vu::check(r, 1, true, vu::request::get_features));
        CHECK_FALSE(vu::check(r, 0, false));  // a request with the reply flag
    }
}

// ---- against DPDK's net_vhost ----------------------------------------------------------
#ifdef NPA_TESTPMD
#include "vhost_testpmd.hpp"

namespace {

using npa::test::testpmd;
using npa::test::wait_until;

// Two split rings of 256 (virtio 1.x 2.7: table 16 N, avail 6 + 2 N, used 6 + 8 N aligned 4)
// at page-aligned offsets.
vu::ring_layout ring_at(std::size_t off) {
    vu::ring_layout r;
    r.size = 256;
    r.desc = off;
    r.avail = off + 16 * 256;
    r.used = off + 8192;
    return r;
}

// connect (retrying while testpmd creates its socket), negotiate, both rings.
npa::status bring_up(vu::front_end& fe, const std::string& sock, const vu::shared_memory& mem) {
    npa::status st = npa::status::success();
    if (!wait_until(std::chrono::seconds(30), [&] { return (st = fe.connect(sock)); })) {
        return st;
    }
    constexpr std::uint64_t version_1 = 1ull << 32;
    if (st = fe.negotiate(version_1, mem); !st) {
        return st;
    }
    if (st = fe.set_ring(0, ring_at(0), mem); !st) {
        return st;
    }
    return fe.set_ring(1, ring_at(16384), mem);
}

} // namespace

TEST_CASE("vhost-user front end against DPDK's net_vhost: the port comes up, and again after the back end restarts") {
    char tmpl[] = "/tmp/npa-vhost-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl, sock = dir + "/vhost.sock";
    const std::string prefix = "npa-vu-" + std::to_string(::getpid());
    vu::shared_memory mem;
    REQUIRE(mem.create(64 * 1024));

    testpmd pmd;
    pmd.start(NPA_TESTPMD, sock, prefix);
    vu::front_end fe(10000);
    const npa::status st = bring_up(fe, sock, mem);
    INFO(std::string(st.reason()));
    REQUIRE(st);
    CHECK((fe.features() & (1ull << 32)) != 0);           // VERSION_1 agreed
    CHECK((fe.features() & vu::f_protocol_features) != 0);  // DPDK offers protocol features
    CHECK((fe.protocol_features() & vu::protocol::reply_ack) != 0);
    const auto link_up = [&] { return pmd.telemetry("/ethdev/link_status,0").find("\"UP\"") != std::string::npos; };
    CHECK(wait_until(std::chrono::seconds(30), link_up));
    std::uint32_t base = 99;
    REQUIRE(fe.get_ring_base(1, base));
    CHECK(base == 0);  // nothing was sent

    // The back end dies: the next request says so; it comes back: the same sequence again.
    pmd.kill9();
    std::uint32_t ignored = 0;
    const npa::status gone = fe.get_ring_base(0, ignored);
    CHECK_FALSE(gone);
    CHECK(gone.code() == npa::errc::removed);
    CHECK_FALSE(fe.connected());
    ::unlink(sock.c_str());
    pmd.start(NPA_TESTPMD, sock, prefix);
    const npa::status again = bring_up(fe, sock, mem);
    INFO(std::string(again.reason()));
    REQUIRE(again);
    CHECK(wait_until(std::chrono::seconds(30), link_up));
    pmd.kill9();
    ::unlink(sock.c_str());
    ::rmdir(dir.c_str());
}
#else
TEST_CASE("vhost-user front end against DPDK's net_vhost" * doctest::skip(true)) {
    MESSAGE("dpdk-testpmd not found at configure time: the session test is not built");
}
#endif
