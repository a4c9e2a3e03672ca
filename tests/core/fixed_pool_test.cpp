// npa::fixed_pool: allocation, exhaustion, bad frees, metadata reset, device addresses
// and configuration checks.
#include <doctest/doctest.h>

#include <npa/buffer/fixed_pool.hpp>
#include <npa/buffer/memory.hpp>
#include <npa/concepts/buffer_pool.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr npa::pool_config small_cfg{.count = 8, .buf_size = 512, .headroom = 64, .pool_id = 3};

npa::fixed_pool<> make_pool(const npa::pool_config& c = small_cfg) {
    auto r = npa::fixed_pool<>::create(c);
    REQUIRE(r.ok());
    return std::move(*r);
}

std::string reason_of(const npa::status& s) { return s.reason(); }

} // namespace

TEST_CASE("fixed_pool: a new pool hands out every buffer once, each empty and in range") {
    auto pool = make_pool();
    CHECK(pool.size() == 8);
    CHECK(pool.available() == 8);
    CHECK(pool.in_use() == 0);

    std::array<npa::buffer_ref, 8> b{};
    REQUIRE(pool.alloc_bulk(b) == 8);
    CHECK(pool.available() == 0);
    CHECK(pool.in_use() == 8);

    const std::byte* lo = pool.backing().base();
    const std::byte* hi = lo + pool.backing().size();
    std::set<const std::byte*> starts;
    for (const auto& h : b) {
        REQUIRE(h);
        CHECK(pool.owns(h));
        CHECK(h.length() == 0);
        CHECK(h.headroom() == 64);
        CHECK(h.capacity() == 512 - 64);
        CHECK(h.get()->pool_id == 3);
        // The whole buffer lies inside the backing memory.
        CHECK(h.data() - h.headroom() >= lo);
        CHECK(h.data() + h.capacity() <= hi);
        starts.insert(h.data());
    }
    CHECK(starts.size() == 8); // distinct
    // No two buffers overlap: sorted starts are at least buf_size apart.
    std::vector<const std::byte*> v(starts.begin(), starts.end());
    for (std::size_t i = 1; i < v.size(); ++i) {
        CHECK(v[i] - v[i - 1] >= 512);
    }
    pool.free_burst(b);
    CHECK(pool.available() == 8);
    CHECK(pool.stats().double_free == 0);
    CHECK(pool.stats().foreign_free == 0);
}

TEST_CASE("fixed_pool: exhaustion returns fewer buffers and counts it, never aborts") {
    auto pool = make_pool();
    std::array<npa::buffer_ref, 10> b{};
    CHECK(pool.alloc_burst(b) == 8);
    CHECK(pool.stats().alloc_fail == 2);
    CHECK_FALSE(b[8]);
    CHECK_FALSE(b[9]);

    std::array<npa::buffer_ref, 4> more{};
    CHECK(pool.alloc_burst(more) == 0);
    CHECK(pool.stats().alloc_fail == 6);
    CHECK(pool.alloc_bulk(more) == 0);
    CHECK(pool.stats().alloc_fail == 10);

    // Free three: a burst of four gets three, a bulk of four gets none and takes nothing.
    pool.free_burst(std::span<const npa::buffer_ref>(b.data(), 3));
    CHECK(pool.alloc_bulk(more) == 0);
    CHECK(pool.available() == 3);
    CHECK(pool.alloc_burst(more) == 3);
    CHECK(pool.available() == 0);
    CHECK(pool.stats().alloc_fail == 15);

    pool.free_burst(std::span<const npa::buffer_ref>(more.data(), 3));
    pool.free_burst(std::span<const npa::buffer_ref>(b.data() + 3, 5));
    CHECK(pool.available() == 8);
}

TEST_CASE("fixed_pool: alloc_bulk gives exactly n") {
    auto pool = make_pool();
    std::array<npa::buffer_ref, 5> b{};
    CHECK(pool.alloc_bulk(b) == 5);
    CHECK(std::all_of(b.begin(), b.end(), [](auto h) { return static_cast<bool>(h); }));
    CHECK(pool.available() == 3);
    CHECK(pool.alloc_bulk({}) == 0);
    CHECK(pool.stats().alloc_fail == 0);
    pool.free_burst(b);
}

TEST_CASE("fixed_pool: double and foreign frees are counted and ignored") {
    auto pool = make_pool();
    auto other = make_pool();
    std::array<npa::buffer_ref, 2> b{};
    REQUIRE(pool.alloc_bulk(b) == 2);
    std::array<npa::buffer_ref, 1> o{};
    REQUIRE(other.alloc_bulk(o) == 1);

    pool.free(b[0]);
    CHECK(pool.available() == 7);
    pool.free(b[0]); // twice
    CHECK(pool.stats().double_free == 1);
    CHECK(pool.available() == 7);

    pool.free(o[0]); // another pool's buffer
    CHECK(pool.stats().foreign_free == 1);
    CHECK(pool.available() == 7);
    CHECK_FALSE(pool.owns(o[0]));

    // Not a header at all: a stray packet_buffer, and a pointer into the middle of one.
    npa::packet_buffer stray{};
    pool.free(npa::buffer_ref(&stray));
    auto* mid = reinterpret_cast<npa::packet_buffer*>(reinterpret_cast<std::byte*>(b[1].get()) + 8);
    pool.free(npa::buffer_ref(mid));
    CHECK(pool.stats().foreign_free == 3);

    // Null handles are skipped silently (a sparse array of handles is normal).
    pool.free(npa::buffer_ref());
    CHECK(pool.stats().foreign_free == 3);
    CHECK(pool.stats().double_free == 1);

    // A double free inside one burst is caught too, and the free list is intact: every
    // buffer comes out exactly once afterwards.
    const std::array<npa::buffer_ref, 3> burst{b[1], b[1], b[0]};
    pool.free_burst(burst);
    CHECK(pool.stats().double_free == 3);
    CHECK(pool.available() == 8);
    std::array<npa::buffer_ref, 8> all{};
    REQUIRE(pool.alloc_bulk(all) == 8);
    std::set<npa::packet_buffer*> seen;
    for (auto h : all) {
        seen.insert(h.get());
    }
    CHECK(seen.size() == 8);
    CHECK(pool.stats().alloc_fail == 0);
    pool.free_burst(all);
    other.free_burst(o);
    CHECK(other.available() == 8);
}

TEST_CASE("fixed_pool: alloc resets the metadata the previous user left behind") {
    auto pool = make_pool();
    npa::buffer_ref b;
    REQUIRE(pool.alloc_bulk(std::span<npa::buffer_ref>(&b, 1)) == 1);
    b.set_length(300);
    b.set_user(0xfeed);
    npa::offload_info ol;
    ol.flags = npa::ol::tx_tso | npa::ol::rx_vlan;
    ol.vlan_tci = 42;
    ol.tso_mss = 1448;
    ol.rss_hash = 0x1234;
    ol.csum = npa::csum_state::bad;
    b.set_offload(ol);
    b.get()->data_off = 0; // a prepend used the headroom
    const npa::iova_t iova_before = b.get()->buf_iova;
    pool.free(b);

    npa::buffer_ref c;
    REQUIRE(pool.alloc_bulk(std::span<npa::buffer_ref>(&c, 1)) == 1);
    CHECK(c == b); // LIFO: the warm buffer comes back first
    CHECK(c.length() == 0);
    CHECK(c.user() == 0);
    CHECK(c.headroom() == 64);
    CHECK(c.offload().flags == 0);
    CHECK(c.offload().vlan_tci == 0);
    CHECK(c.offload().tso_mss == 0);
    CHECK(c.offload().rss_hash == 0);
    CHECK(c.offload().csum == npa::csum_state::unknown);
    CHECK(c.get()->buf_iova == iova_before); // the address is the buffer's, not metadata
    pool.free(c);
}

TEST_CASE("fixed_pool: the IOVA of every buffer is iova_base plus its offset") {
    constexpr npa::pool_config cfg{.count = 16, .buf_size = 2176, .headroom = 128};
    constexpr npa::iova_t base_iova = 0x8000'0000ull;

    SUBCASE("heap memory with a device view") {
        npa::heap_memory mem(npa::fixed_pool<>::required_bytes(cfg), base_iova);
        const std::byte* base = mem.base();
        REQUIRE(mem.iova_base() == base_iova);
        auto r = npa::fixed_pool<>::create(cfg, std::move(mem));
        REQUIRE(r.ok());
        std::array<npa::buffer_ref, 16> b{};
        REQUIRE(r->alloc_bulk(b) == 16);
        for (auto h : b) {
            const auto off = static_cast<npa::iova_t>(h.data() - base);
            CHECK(h.iova() == base_iova + off);
            CHECK(h.get()->buf_iova == base_iova + off - h.headroom());
        }
        r->free_burst(b);
    }
    SUBCASE("heap memory, identity mapped by default") {
        auto pool = make_pool(cfg);
        std::array<npa::buffer_ref, 4> b{};
        REQUIRE(pool.alloc_bulk(b) == 4);
        for (auto h : b) {
            CHECK(h.iova() == reinterpret_cast<std::uintptr_t>(h.data()));
        }
        pool.free_burst(b);
    }
    SUBCASE("borrowed memory (shared segment, guest memory, UMEM)") {
        const std::size_t bytes = npa::fixed_pool<npa::borrowed_memory>::required_bytes(cfg);
        npa::heap_memory owner(bytes + 4096);
        std::byte* base = owner.base() + 4096; // page aligned, not the start of the block
        npa::borrowed_memory mem(base, bytes, 0x10'0000);
        auto r = npa::fixed_pool<npa::borrowed_memory>::create(cfg, mem);
        REQUIRE(r.ok());
        std::array<npa::buffer_ref, 16> b{};
        REQUIRE(r->alloc_bulk(b) == 16);
        for (auto h : b) {
            CHECK(h.data() >= base);
            CHECK(h.data() + h.capacity() <= base + bytes);
            CHECK(h.iova() == 0x10'0000 + static_cast<npa::iova_t>(h.data() - base));
        }
        r->free_burst(b);
        CHECK(r->available() == 16);
    }
}

TEST_CASE("fixed_pool: create() rejects bad configurations with a reason") {
    using pool_t = npa::fixed_pool<npa::borrowed_memory>;
    SUBCASE("no buffers") {
        auto r = npa::fixed_pool<>::create({.count = 0});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == npa::errc::invalid_argument);
        CHECK(reason_of(r.error()).find("count") != std::string::npos);
    }
    SUBCASE("headroom eats the whole buffer") {
        auto r = npa::fixed_pool<>::create({.count = 4, .buf_size = 128, .headroom = 128});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == npa::errc::invalid_argument);
        CHECK(reason_of(r.error()).find("headroom") != std::string::npos);
    }
    SUBCASE("a configuration too large to describe") {
        // 2^32-1 buffers of 4 GiB: the byte count overflows 64 bits. It must be refused,
        // not wrapped round to a small allocation that the pool then overruns.
        auto r = npa::fixed_pool<>::create({.count = 0xFFFFFFFFu, .buf_size = 0xFFFFFFFFu});
        REQUIRE_FALSE(r.ok());
        CHECK(reason_of(r.error()).find("buffer pool") != std::string::npos);
    }
    SUBCASE("backing memory missing, too small or misaligned") {
        const npa::pool_config cfg{.count = 4, .buf_size = 256, .headroom = 32};
        const std::size_t need = pool_t::required_bytes(cfg);
        npa::heap_memory owner(need + 4096);

        auto none = pool_t::create(cfg, npa::borrowed_memory());
        REQUIRE_FALSE(none.ok());
        CHECK(none.error() == npa::errc::no_memory);

        auto small = pool_t::create(cfg, npa::borrowed_memory(owner.base(), need - 1, 0));
        REQUIRE_FALSE(small.ok());
        CHECK(small.error() == npa::errc::no_memory);
        CHECK(reason_of(small.error()).find("too small") != std::string::npos);

        auto skew = pool_t::create(cfg, npa::borrowed_memory(owner.base() + 8, need, 0));
        REQUIRE_FALSE(skew.ok());
        CHECK(skew.error() == npa::errc::invalid_argument);
        CHECK(reason_of(skew.error()).find("aligned") != std::string::npos);

        // Refusal loses nothing: the caller's memory is untouched and usable.
        std::memset(owner.base(), 0x5a, need);
        auto bad = pool_t::create({.count = 0}, npa::borrowed_memory(owner.base(), need, 0));
        REQUIRE_FALSE(bad.ok());
        CHECK(std::all_of(owner.base(), owner.base() + need,
                          [](std::byte x) { return x == std::byte{0x5a}; }));
        auto good = pool_t::create(cfg, npa::borrowed_memory(owner.base(), need, 0));
        CHECK(good.ok());
    }
}

TEST_CASE("fixed_pool: a moved pool keeps its buffers and its counters") {
    auto pool = make_pool();
    std::array<npa::buffer_ref, 3> b{};
    REQUIRE(pool.alloc_bulk(b) == 3);
    pool.free(b[0]);
    pool.free(b[0]);
    npa::fixed_pool<> moved(std::move(pool));
    CHECK(moved.available() == 6);
    CHECK(moved.stats().double_free == 1);
    CHECK(moved.owns(b[1]));
    moved.free_burst(std::span<const npa::buffer_ref>(b.data() + 1, 2));
    CHECK(moved.available() == 8);
    // The moved-from pool is empty and refuses politely.
    std::array<npa::buffer_ref, 1> x{};
    CHECK(pool.alloc_burst(x) == 0);
    CHECK(pool.available() == 0);
}

TEST_CASE("shared_fixed_pool: two threads allocating and freeing keep the pool whole") {
    auto r = npa::shared_fixed_pool<>::create({.count = 64, .buf_size = 256, .headroom = 0});
    REQUIRE(r.ok());
    auto& pool = *r;
    auto worker = [&pool](std::uint64_t tag) {
        std::array<npa::buffer_ref, 8> b{};
        for (int i = 0; i < 5000; ++i) {
            const std::uint32_t n = pool.alloc_burst(b);
            for (std::uint32_t k = 0; k < n; ++k) {
                b[k].set_user(tag); // exclusive while held
            }
            for (std::uint32_t k = 0; k < n; ++k) {
                if (b[k].user() != tag) {
                    FAIL("a buffer was handed to both threads at once");
                }
            }
            pool.free_burst(std::span<const npa::buffer_ref>(b.data(), n));
        }
    };
    std::atomic<bool> done{false};
    std::uint32_t observed_over = 0;
    // An auditor reads the fill level while the bursts run (the shell's audit does):
    // a locked snapshot, never more than the pool holds.
    std::thread auditor([&] {
        while (!done.load(std::memory_order_acquire)) {
            const std::uint32_t a = pool.available();
            observed_over += (a > 64 || pool.in_use() > 64) ? 1u : 0u;
        }
    });
    std::thread t1(worker, 1);
    std::thread t2(worker, 2);
    t1.join();
    t2.join();
    done.store(true, std::memory_order_release);
    auditor.join();
    CHECK(observed_over == 0);
    CHECK(pool.available() == 64);
    CHECK(pool.stats().double_free == 0);
}
