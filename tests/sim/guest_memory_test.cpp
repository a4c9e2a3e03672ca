// Guest memory: translation is bounds-checked on every access; faults are counted.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <npa/buffer/fixed_pool.hpp>
#include <npa/sim/guest_memory.hpp>

#include <doctest/doctest.h>

#include <array>

using npa::sim::guest_memory;

TEST_CASE("translation checks every byte of the access") {
    guest_memory m(1 << 20);
    const auto base = guest_memory::default_iova_base;
    CHECK(m.translate(base, 16) != nullptr);
    CHECK(m.translate(base + (1 << 20) - 16, 16) != nullptr);
    CHECK(m.translate(base + (1 << 20) - 15, 16) == nullptr);  // runs off the end
    CHECK(m.translate(base - 1, 1) == nullptr);
    CHECK(m.translate(~npa::iova_t{0} - 3, 16) == nullptr);     // would overflow
    CHECK(m.dma_faults() == 3);
    CHECK(m.contains(base, 1));
    CHECK(m.dma_faults() == 3);  // contains() is a check, not an access
}

TEST_CASE("a second region sits behind a gap; DMA reads and writes copy, faults copy nothing") {
    guest_memory m(4096);
    REQUIRE(m.add_region(4096).ok());
    const auto r1 = m.region_block(1);
    CHECK(r1.iova == guest_memory::default_iova_base + 4096 + guest_memory::region_gap);
    std::array<char, 4> in{'a', 'b', 'c', 'd'}, out{};
    CHECK(m.dma_write(r1.iova + 8, in.data(), 4));
    CHECK(m.dma_read(r1.iova + 8, out.data(), 4));
    CHECK(out == in);
    m.fail_next_dma(1);
    out = {};
    CHECK_FALSE(m.dma_read(r1.iova + 8, out.data(), 4));
    CHECK(out[0] == 0);
    CHECK(m.dma_read(r1.iova + 8, out.data(), 4));
    CHECK(m.dma_faults() == 1);
}

TEST_CASE("a fixed_pool lives in guest memory with IOVAs in the region") {
    guest_memory m(8 << 20);
    npa::pool_config pc;
    pc.count = 64;
    const auto blk = m.allocate(npa::fixed_pool<npa::borrowed_memory>::required_bytes(pc));
    REQUIRE(blk);
    auto pool = npa::fixed_pool<npa::borrowed_memory>::create(pc, blk.backing());
    REQUIRE(pool.ok());
    std::array<npa::buffer_ref, 64> b{};
    REQUIRE(pool->alloc_burst(b) == 64);
    for (auto x : b) {
        CHECK(m.translate(x.iova(), x.capacity()) == x.data());
    }
    pool->free_burst(b);
    CHECK_FALSE(m.allocate(std::size_t{1} << 30));  // bigger than the guest: refused
}
