// Guest memory: translation is bounds-checked on every access; faults are counted.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/sim/guest_memory.hpp>
#include <npa/sim/test_api.hpp>

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <vector>

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

namespace {
struct dma_seen {
    npa::iova_t iova = 0;
    std::size_t len = 0;
    bool write = false;
};
void record_dma(void* ctx, npa::iova_t iova, std::size_t len, bool write) noexcept {
    static_cast<std::vector<dma_seen>*>(ctx)->push_back({iova, len, write});
}
} // namespace

TEST_CASE("the DMA watch sees every buffer DMA that reaches memory, and only those") {
    guest_memory m(1 << 20);
    const auto base = guest_memory::default_iova_base;
    std::vector<dma_seen> seen;
    m.set_dma_watch(&record_dma, &seen);
    std::array<std::byte, 8> x{};
    CHECK(m.dma_write(base + 64, x.data(), 8));
    CHECK(m.dma_read(base + 128, x.data(), 4));
    CHECK_FALSE(m.dma_read(base - 8, x.data(), 4));  // a fault reaches no memory: not seen
    m.fail_next_dma(1);
    CHECK_FALSE(m.dma_write(base, x.data(), 4));     // nor does an injected one
    CHECK(m.translate(base, 16) != nullptr);         // ring access, not buffer DMA
    REQUIRE(seen.size() == 2);
    CHECK((seen[0].iova == base + 64 && seen[0].len == 8 && seen[0].write));
    CHECK((seen[1].iova == base + 128 && seen[1].len == 4 && !seen[1].write));
    m.set_dma_watch(nullptr, nullptr);
    CHECK(m.dma_write(base, x.data(), 4));
    CHECK(seen.size() == 2);
}

TEST_CASE("the test API finds a buffer by device address and remembers who handed it back") {
    using pool_t = npa::fixed_pool<npa::borrowed_memory>;
    guest_memory m(8 << 20);
    npa::pool_config pc;
    pc.count = 16;
    const auto blk = m.allocate(pool_t::required_bytes(pc));
    REQUIRE(blk);
    auto pool = pool_t::create(pc, blk.backing());
    REQUIRE(pool.ok());
    npa::sim::test_api<pool_t> api(*pool);
    using api_t = npa::sim::test_api<pool_t>;
    const npa::packet_buffer* first = pool->at(0).get();
    const npa::packet_buffer* last = pool->at(15).get();
    CHECK(api.buffer_at(first->buf_iova) == 0);
    CHECK(api.buffer_at(first->buf_iova - 1) == api_t::no_buffer);     // before the pool
    CHECK(api.buffer_at(pool->at(3).iova() + 100) == 3);
    CHECK(api.buffer_at(last->buf_iova + last->buf_len - 1) == 15);
    CHECK(api.buffer_at(last->buf_iova + last->buf_len) == api_t::no_buffer); // past the end

    std::array<npa::buffer_ref, 2> b{};
    REQUIRE(api.alloc_rx_buffers(1, b) == 2);
    const std::uint32_t i = b[0].get()->index;
    CHECK(api.handed_back(i).where == nullptr);
    CHECK(api.owner_of(i) == npa::sim::owner::plugin);
    api.release_rx_buffers(1, std::span(b).first(1));
    CHECK(api.owner_of(i) == npa::sim::owner::pool);
    CHECK(std::string(api.handed_back(i).where) == "release_rx_buffers");
    CHECK(api.handed_back(i).queue == 1);
    api.release_rx_buffers(1, std::span(b).subspan(1));
    CHECK(api.audit().balanced());
}
