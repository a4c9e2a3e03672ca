// The core's data-path calls allocate nothing: rings (burst, bulk, zero-copy), the
// generation-bit cursors and the buffer pool (bursts, exhaustion, bad frees), each run for
// many laps with every operator new on the thread counted (tests/support/alloc_counter.hpp).
// Setup (creating a pool on the heap) may allocate; what runs per packet may not.
#include <doctest/doctest.h>

#include "../support/alloc_counter.hpp"

#include <npa/buffer/fixed_pool.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/index_ring.hpp>

#include <array>
#include <cstdint>
#include <memory>

namespace {

using npa::test::allocations;
using npa::test::no_alloc_scope;

struct desc16 {
    std::uint64_t addr;
    std::uint32_t len;
    std::uint32_t flags;
};
using desc_traits = npa::gen_bit_traits<desc16, 3, 31>;

} // namespace

TEST_CASE("no allocation: the counter sees an allocation inside a scope") {
    // The instrument first: a test that cannot see an allocation proves nothing.
    const auto before = allocations;
    {
        no_alloc_scope s;
        auto p = std::make_unique<int>(7);
        CHECK(*p == 7);
    }
    CHECK(allocations == before + 1);
    auto outside = std::make_unique<int>(8); // not counted: no scope
    CHECK(allocations == before + 1);
}

TEST_CASE("no allocation: index ring bursts, bulks and zero-copy calls") {
    auto ring = std::make_unique<npa::index_ring<std::uint64_t, 256>>();
    auto drings = std::make_unique<npa::index_ring<desc16, 64>>();
    std::array<std::uint64_t, 32> in{}, out{};
    std::array<desc16, 8> din{}, dout{};
    std::uint64_t checked_out_of_order = 1;
    const auto before = allocations;
    {
        no_alloc_scope s;
        std::uint64_t seq = 0, expect = 0, out_of_order = 0;
        for (int lap = 0; lap < 20'000; ++lap) {
            for (auto& v : in)
                v = seq++;
            const std::uint32_t n = ring->enqueue_burst(in);
            seq -= in.size() - n;
            const std::uint32_t m = ring->dequeue_burst(out);
            for (std::uint32_t i = 0; i < m; ++i)
                out_of_order += out[i] != expect++;
            (void)ring->enqueue_bulk(std::span(in).first(7));
            (void)ring->dequeue_bulk(std::span(out).first(7));
            auto w = ring->reserve(5);
            ring->commit(w.size());
            auto r = ring->peek(5);
            ring->release(r.size());
            (void)drings->enqueue_burst(din);
            (void)drings->dequeue_burst(dout);
            (void)ring->dequeue_burst(out); // empty or not: never allocates
        }
        checked_out_of_order = out_of_order;
    }
    CHECK(allocations == before);
    CHECK(checked_out_of_order == 0);
}

TEST_CASE("no allocation: generation-bit cursors across many wraps") {
    std::array<desc16, 61> ring{}; // not a power of two, as device rings may be
    npa::gen_producer<desc_traits> prod(ring.data(), ring.size());
    npa::gen_consumer<desc_traits> cons(ring.data(), ring.size());
    std::array<desc16, 16> burst{}, got{};
    const auto before = allocations;
    std::uint64_t moved = 0;
    {
        no_alloc_scope s;
        for (int lap = 0; lap < 50'000; ++lap) {
            prod.produce_burst(std::span(burst).first(static_cast<std::size_t>(1 + lap % 16)));
            moved += cons.poll_burst(got);
            moved += cons.poll_burst(got); // an empty poll
        }
    }
    CHECK(allocations == before);
    CHECK(moved > 0);
}

TEST_CASE("no allocation: pool bursts, exhaustion, double and foreign frees") {
    auto pool = npa::fixed_pool<>::create({.count = 64, .buf_size = 2176, .headroom = 128});
    REQUIRE(pool.ok());
    auto other = npa::fixed_pool<>::create({.count = 4, .buf_size = 2176, .headroom = 128});
    REQUIRE(other.ok());
    std::array<npa::buffer_ref, 96> bufs{};
    npa::buffer_ref stranger{};
    REQUIRE(other->alloc_burst(std::span(&stranger, 1)) == 1);
    std::uint64_t short_bursts = 0, empty_allocs = 0, bulks = 0;
    const auto before = allocations;
    {
        no_alloc_scope s;
        for (int lap = 0; lap < 20'000; ++lap) {
            const std::uint32_t n = pool->alloc_burst(bufs); // asks 96 of 64: short
            short_bursts += n == 64;
            empty_allocs += pool->alloc_burst(std::span(bufs).last(1)) == 0; // empty pool
            pool->free_burst(std::span(bufs).first(n));
            pool->free_burst(std::span(bufs).first(1)); // double free: counted, ignored
            pool->free_burst(std::span(&stranger, 1));  // foreign: counted, ignored
            bulks += pool->alloc_bulk(std::span(bufs).first(8)) == 8;
            pool->free_burst(std::span(bufs).first(8));
        }
    }
    CHECK(allocations == before);
    CHECK(short_bursts == 20'000);
    CHECK(empty_allocs == 20'000);
    CHECK(bulks == 20'000);
    CHECK(pool->stats().alloc_fail == 20'000 * (32 + 1));
    CHECK(pool->available() == 64);
    CHECK(pool->stats().double_free == 20'000);
    CHECK(pool->stats().foreign_free == 20'000);
}
