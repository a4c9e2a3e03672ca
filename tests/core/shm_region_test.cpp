// npa/shm/layout.hpp and npa/shm/region.hpp in one process, over heap memory: the
// validator's refusals (each with its sentence, touching nothing), the pool's free ring,
// audit and reclaim after a side stops mid-operation, the ring's producer take-over.
#include <doctest/doctest.h>

#include <npa/shm/layout.hpp>
#include <npa/shm/region.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

namespace shm = npa::shm;

using data_ring = npa::index_ring<shm::buf_desc, 64>;
using pool_type = shm::pool<128>;

constexpr std::uint32_t free_obj = 0;
constexpr std::uint32_t pool_obj = 1;
constexpr std::uint32_t ring_obj = 2;

shm::layout make_layout() {
    shm::layout l;
    CHECK(l.add_pool(100, 200, 32, 128) == pool_obj); // buffers rounded up to 256 bytes
    CHECK(l.add_ring(64, sizeof(shm::buf_desc)) == ring_obj);
    return l;
}

// Cache-line aligned memory for a region (rings need their alignment).
struct region_memory {
    explicit region_memory(std::size_t n) : raw(n + npa::cache_line_size) {}
    std::span<std::byte> bytes(std::size_t n) {
        auto a = reinterpret_cast<std::uintptr_t>(raw.data());
        a = (a + npa::cache_line_size - 1) / npa::cache_line_size * npa::cache_line_size;
        return {reinterpret_cast<std::byte*>(a), n};
    }
    std::vector<std::byte> raw;
};

shm::region_header& header_of(std::span<std::byte> mem) {
    return *reinterpret_cast<shm::region_header*>(mem.data());
}

void reseal(std::span<std::byte> mem) {
    header_of(mem).checksum = shm::header_checksum(header_of(mem));
}

// Validates and expects a refusal naming `what`, with the output header untouched.
void expect_refused(std::span<const std::byte> mem, const char* what) {
    shm::region_header out{};
    out.magic = 0x1234;
    const npa::status st = shm::validate(mem, out);
    CHECK_FALSE(st.ok());
    INFO(st.reason());
    CHECK(std::string(st.reason()).find(what) != std::string::npos);
    CHECK(out.magic == 0x1234u);
}

struct fixture {
    shm::layout l = make_layout();
    region_memory m{l.total_bytes()};
    std::span<std::byte> mem = m.bytes(l.total_bytes());
    fixture() { REQUIRE(l.write(mem, 42, 7, 99).ok()); }
};

} // namespace

TEST_CASE("layout: the header's format is fixed") {
    static_assert(sizeof(shm::region_header) == 384);
    static_assert(sizeof(shm::side_state) == 64);
    static_assert(shm::ring_bytes(64, 8) == sizeof(data_ring));
    static_assert(shm::ring_bytes(128, 4) == sizeof(pool_type::free_ring));
    fixture f;
    // Little-endian bytes at fixed offsets, whatever the host.
    const auto* b = reinterpret_cast<const unsigned char*>(f.mem.data());
    CHECK(std::memcmp(b, "NPASHM01", 8) == 0);
    CHECK(b[8] == shm::format_version);
    CHECK(b[12] == sizeof(shm::region_header) % 256);
    CHECK(b[24] == 42); // creator id
    CHECK(b[40] == 7);  // creator pid
    CHECK(b[44] == 3);  // object count
    const std::uint64_t total = f.l.total_bytes();
    CHECK(total == 512 + shm::ring_bytes(128, 4) + 100 * 256 + shm::ring_bytes(64, 8));
}

TEST_CASE("wake words: each side's in its own line at offset 24, zero as written, outside the checksum") {
    fixture f;
    auto r = shm::region::attach(f.mem);
    REQUIRE(r.ok());
    CHECK(r->wake(0) == 0u);
    CHECK(r->wake(1) == 0u);
    r->set_wake(0, 0x01020305u);
    r->set_wake(1, 7u);
    const auto* b = reinterpret_cast<const unsigned char*>(f.mem.data());
    CHECK(b[shm::sides_offset + 24] == 0x05);
    CHECK(b[shm::sides_offset + 27] == 0x01);
    CHECK(b[shm::sides_offset + 64 + 24] == 7);
    CHECK(r->wake(0) == 0x01020305u);
    CHECK(r->wake(1) == 7u);
    shm::region_header out{};
    CHECK(shm::validate(f.mem, out).ok()); // the words change while the region is in use
}

TEST_CASE("validator: a region as written validates, and the header copy is returned") {
    fixture f;
    shm::region_header out{};
    REQUIRE(shm::validate(f.mem, out).ok());
    CHECK(out.creator_id == 42u);
    CHECK(out.object_count == 3u);
    CHECK(out.objects[pool_obj].count == 100u);
    CHECK(out.objects[pool_obj].elem_size == 256u);
    CHECK(out.objects[pool_obj].link == free_obj);
}

TEST_CASE("validator: refuses with a sentence and touches nothing") {
    fixture f;
    SUBCASE("wrong magic") {
        header_of(f.mem).magic = 0x4141414141414141ULL;
        reseal(f.mem);
        expect_refused(f.mem, "wrong magic");
    }
    SUBCASE("wrong version") {
        header_of(f.mem).version = shm::format_version + 1;
        reseal(f.mem);
        expect_refused(f.mem, "version");
    }
    SUBCASE("bad checksum") {
        header_of(f.mem).objects[ring_obj].tag = 5; // not resealed
        expect_refused(f.mem, "checksum");
    }
    SUBCASE("a flipped checksum bit") {
        header_of(f.mem).checksum = header_of(f.mem).checksum ^ 1u;
        expect_refused(f.mem, "checksum");
    }
    SUBCASE("a mapping smaller than the header says") {
        expect_refused(f.mem.first(f.mem.size() - 64), "total size");
    }
    SUBCASE("a mapping larger than the header says") {
        region_memory big(f.mem.size() + 4096);
        auto mem = big.bytes(f.mem.size() + 4096);
        std::memcpy(mem.data(), f.mem.data(), f.mem.size());
        expect_refused(mem, "total size");
    }
    SUBCASE("a mapping smaller than a header") {
        expect_refused(f.mem.first(100), "smaller than its header");
    }
    SUBCASE("an object past the end of the region") {
        header_of(f.mem).objects[ring_obj].offset = f.l.total_bytes();
        reseal(f.mem);
        expect_refused(f.mem, "does not fit");
    }
    SUBCASE("an object whose size wraps around") {
        header_of(f.mem).objects[ring_obj].bytes = ~std::uint64_t{0} - 63;
        reseal(f.mem);
        expect_refused(f.mem, "does not fit");
    }
    SUBCASE("an object over the header") {
        header_of(f.mem).objects[free_obj].offset = 448;
        reseal(f.mem);
        expect_refused(f.mem, "overlaps the header");
    }
    SUBCASE("overlapping objects") {
        header_of(f.mem).objects[ring_obj].offset =
            static_cast<std::uint64_t>(header_of(f.mem).objects[pool_obj].offset) + 256;
        reseal(f.mem);
        expect_refused(f.mem, "overlap");
    }
    SUBCASE("a misaligned object") {
        header_of(f.mem).objects[ring_obj].offset = header_of(f.mem).objects[ring_obj].offset + 8;
        reseal(f.mem);
        expect_refused(f.mem, "aligned");
    }
    SUBCASE("a ring capacity that is not a power of two") {
        header_of(f.mem).objects[ring_obj].count = 48;
        reseal(f.mem);
        expect_refused(f.mem, "power of two");
    }
    SUBCASE("a ring too small for its capacity") {
        header_of(f.mem).objects[ring_obj].count = 128;
        reseal(f.mem);
        expect_refused(f.mem, "smaller than its capacity");
    }
    SUBCASE("a pool whose count and buffer size do not make its size") {
        header_of(f.mem).objects[pool_obj].count = 101;
        reseal(f.mem);
        expect_refused(f.mem, "count times buffer size");
    }
    SUBCASE("a pool buffer size that is not a cache-line multiple") {
        header_of(f.mem).objects[pool_obj].elem_size = 200;
        header_of(f.mem).objects[pool_obj].bytes = 20000;
        reseal(f.mem);
        expect_refused(f.mem, "cache line");
    }
    SUBCASE("a pool whose free ring cannot hold every buffer") {
        header_of(f.mem).objects[pool_obj].count = 200;
        header_of(f.mem).objects[pool_obj].elem_size = 128;
        reseal(f.mem);
        expect_refused(f.mem, "holds every buffer");
    }
    SUBCASE("a pool whose free ring is itself") {
        header_of(f.mem).objects[pool_obj].link = pool_obj;
        reseal(f.mem);
        expect_refused(f.mem, "free ring does not exist");
    }
    SUBCASE("headroom as large as the buffer") {
        header_of(f.mem).objects[pool_obj].headroom = 256;
        reseal(f.mem);
        expect_refused(f.mem, "headroom");
    }
    SUBCASE("an unknown object kind") {
        header_of(f.mem).objects[ring_obj].kind = 9;
        reseal(f.mem);
        expect_refused(f.mem, "unknown kind");
    }
    SUBCASE("more objects than the table") {
        header_of(f.mem).object_count = shm::max_objects + 1;
        reseal(f.mem);
        expect_refused(f.mem, "more objects");
    }
    SUBCASE("a used entry past object_count") {
        header_of(f.mem).object_count = 2;
        reseal(f.mem);
        expect_refused(f.mem, "past object_count");
    }
}

TEST_CASE("layout: write() refuses what validate() would, and leaves the memory alone") {
    shm::layout l;
    l.add_ring(100, 8); // not a power of two
    region_memory m(l.total_bytes());
    auto mem = m.bytes(l.total_bytes());
    std::memset(mem.data(), 0xAB, mem.size());
    const npa::status st = l.write(mem, 1, 1, 1);
    CHECK_FALSE(st.ok());
    CHECK(std::string(st.reason()).find("power of two") != std::string::npos);
    CHECK(static_cast<unsigned char>(mem[0]) == 0xAB);
}

TEST_CASE("region: rings are checked against their type") {
    fixture f;
    auto r = shm::region::attach(f.mem);
    REQUIRE(r.ok());
    CHECK(r->ring<data_ring>(ring_obj, true).ok());
    CHECK_FALSE(r->ring<npa::index_ring<shm::buf_desc, 128>>(ring_obj).ok());
    CHECK_FALSE(r->ring<npa::index_ring<std::uint32_t, 64>>(ring_obj).ok());
    CHECK_FALSE(r->ring<data_ring>(pool_obj).ok());
    CHECK_FALSE(r->ring<data_ring>(7).ok());
    CHECK_FALSE(pool_type::at(*r, ring_obj).ok());
    CHECK_FALSE(shm::pool<64>::at(*r, pool_obj).ok()); // free ring of another capacity
}

TEST_CASE("pool: alloc, free, bad indices, and the audit over rings and hands") {
    fixture f;
    auto r = shm::region::attach(f.mem);
    REQUIRE(r.ok());
    auto p = pool_type::at(*r, pool_obj, true);
    REQUIRE(p.ok());
    data_ring* ring = *r->ring<data_ring>(ring_obj, true);
    CHECK(p->available() == 100);
    CHECK(p->room() == 256 - 32);
    CHECK(p->payload(0) == p->buffer(0) + 32);
    CHECK(p->buffer(100) == nullptr);

    std::uint32_t got[40];
    REQUIRE(p->alloc_burst(got) == 40);
    // 10 published in the ring, 20 in our hands, 10 "with the peer" (neither).
    shm::buf_desc d[10];
    for (std::uint32_t i = 0; i < 10; ++i) {
        d[i] = {got[i], 0};
    }
    REQUIRE(ring->enqueue_burst(d) == 10);
    std::vector<std::uint8_t> marks(100);
    const auto a = shm::audit(*p, std::span<const std::uint32_t>(got + 10, 20), marks, *ring);
    CHECK(a.consistent());
    CHECK(a.in_pool == 60);
    CHECK(a.in_rings == 10);
    CHECK(a.held == 20);
    CHECK(a.with_peer == 10);
    CHECK_FALSE(a.all_home());

    // A double free and an index past the pool are counted and found.
    const std::uint32_t bad[2] = {got[10], 1000};
    p->free_burst(bad);
    CHECK(p->stats().foreign_free == 1);
    const auto dup = shm::audit(*p, std::span<const std::uint32_t>(got + 10, 20), marks, *ring);
    CHECK(dup.duplicates == 1);
    CHECK_FALSE(dup.consistent());
    // Take the double-freed one back (it is next in the FIFO only after the 60 others:
    // drain the ring of free indices by allocating everything).
    std::uint32_t all[128];
    const std::uint32_t n = p->alloc_burst(all);
    CHECK(n == 61);
    CHECK(p->stats().alloc_fail == 128 - 61);
    p->free_burst(std::span<const std::uint32_t>(all, n - 1)); // not the duplicate (last)
    const auto back = shm::audit(*p, std::span<const std::uint32_t>(got + 10, 20), marks, *ring);
    CHECK(back.consistent());

    // An index past the pool written into the free ring by the peer is never handed out.
    const std::uint32_t forged = 5000;
    REQUIRE(p->ring().enqueue_burst(std::span<const std::uint32_t>(&forged, 1)) == 1);
    std::uint32_t none[128];
    const std::uint32_t k = p->alloc_burst(none);
    CHECK(p->stats().bad_index == 1);
    for (std::uint32_t i = 0; i < k; ++i) {
        CHECK(none[i] < 100);
    }
    p->free_burst(std::span<const std::uint32_t>(none, k));

    // Reclaim: the peer is "gone" with its 10; drain the ring, free ours, reclaim the rest.
    CHECK(shm::drain_to_pool(*ring, *p) == 10);
    p->free_burst(std::span<const std::uint32_t>(got + 10, 20));
    const auto before = shm::audit(*p, {}, marks);
    CHECK(before.with_peer == 10);
    CHECK(shm::reclaim(*p, marks) == 10);
    const auto after = shm::audit(*p, {}, marks, *ring);
    CHECK(after.all_home());
}

TEST_CASE("index_ring: a producer that stopped between staging and publishing is taken over") {
    fixture f;
    auto r = shm::region::attach(f.mem);
    REQUIRE(r.ok());
    auto p = pool_type::at(*r, pool_obj, true);
    REQUIRE(p.ok());
    std::uint32_t got[8];
    REQUIRE(p->alloc_burst(got) == 8);
    // The "dead" freeing side staged 3 frees and never flushed them.
    REQUIRE(p->ring().stage_burst(std::span<const std::uint32_t>(got, 3)) == 3);
    std::vector<std::uint8_t> marks(100);
    auto a = shm::audit(*p, {}, marks);
    CHECK(a.with_peer == 8);
    // The survivor takes over: the 3 staged slots are dropped, not published twice.
    p->ring().take_over_producer();
    CHECK(shm::reclaim(*p, marks) == 8);
    a = shm::audit(*p, {}, marks);
    CHECK(a.all_home());
    CHECK(p->available() == 100);
}

TEST_CASE("liveness: sides announce, beat and leave; a stalled heartbeat is seen") {
    fixture f;
    auto r = shm::region::attach(f.mem);
    REQUIRE(r.ok());
    CHECK(r->pid(1) == 0);
    r->announce(1, 1234, 5);
    CHECK(r->pid(1) == 1234);
    CHECK(r->generation(1) == 1);
    shm::heartbeat_watch w(1000);
    CHECK_FALSE(w.stalled(r->heartbeat(1), 0));
    r->beat(1);
    CHECK_FALSE(w.stalled(r->heartbeat(1), 900));
    CHECK_FALSE(w.stalled(r->heartbeat(1), 1800));
    CHECK(w.stalled(r->heartbeat(1), 1900));
    r->leave(1);
    CHECK(r->pid(1) == 0);
    r->announce(1, 1234, 5);
    CHECK(r->generation(1) == 2);
    // The side words are outside the checksum: the region still validates.
    shm::region_header out{};
    CHECK(shm::validate(f.mem, out).ok());
}
