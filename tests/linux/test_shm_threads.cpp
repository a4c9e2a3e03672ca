// npa/linux/shm_region.hpp with both sides in one process, on two threads, over two
// mappings of the same memfd (the creator's and the peer's, at different addresses):
// what ThreadSanitizer can check of the shared ring and pool (it sees threads, not
// processes; test_shm.cpp runs the same stream between two processes).
#include <doctest/doctest.h>

#include "shm_stream.hpp"

#include <npa/linux/shm_region.hpp>

#include <cstdlib>
#include <thread>
#include <vector>

#include <unistd.h>

TEST_CASE("shm region: producer and consumer threads on two mappings of one memfd") {
    namespace shm = npa::shm;
    // A million by default; NPA_SHM_ITEMS scales it down for a slow (sanitised) build.
    std::uint64_t items = 1'000'000;
    if (const char* s = std::getenv("NPA_SHM_ITEMS")) {
        items = std::strtoull(s, nullptr, 10);
    }
    shm::layout l = shm_stream::make_layout();
    auto creator = npa::lnx::shm_region::create(l, "npa-shm-threads");
    REQUIRE(creator.ok());
    auto ce = shm_stream::open(creator->region(), true);
    REQUIRE(ce.ok());
    auto peer = npa::lnx::shm_region::attach(::dup(creator->fd()));
    REQUIRE(peer.ok());
    CHECK(peer->bytes().data() != creator->bytes().data()); // another address
    auto pe = shm_stream::open(peer->region(), false);
    REQUIRE(pe.ok());

    shm_stream::consumer c;
    std::thread t([&] {
        shm_stream::consume(*pe, c, items, [] { return false; }, [] {});
    });
    shm_stream::producer p;
    CHECK(shm_stream::produce(*ce, p, items, [] { return false; }, [] {}));
    t.join();
    CHECK(c.received == items);
    CHECK(c.bad == 0);
    std::vector<std::uint8_t> marks(shm_stream::pool_count);
    CHECK(shm::audit(ce->pool, {}, marks, *ce->ring).all_home());
}
