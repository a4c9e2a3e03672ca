// npa::index_ring: single-threaded behaviour checked against a model (std::deque), at
// index 0 and across the 2^32 wrap of the free-running indices, for the two element
// sizes the ring exists for (8-byte buffer handles, 16-byte descriptors).
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <npa/buffer/fixed_pool.hpp>
#include <npa/ring/index_ring.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <type_traits>
#include <vector>

namespace {

using npa_test::desc16;
using npa_test::make_desc;

/// 24 bytes: a size that is not a divisor of the 32-byte vectors of the bulk copy, so
/// runs of it end at every offset within a vector.
struct desc24 {
    std::uint64_t seq = 0;
    std::uint64_t addr = 0;
    std::uint64_t check = 0;

    friend bool operator==(const desc24&, const desc24&) = default;
};
static_assert(sizeof(desc24) == 24);

template <class T>
T make_item(std::uint64_t seq) {
    if constexpr (std::is_same_v<T, desc16>) {
        return make_desc(seq);
    } else if constexpr (std::is_same_v<T, desc24>) {
        return {seq, seq * 0x9E3779B97F4A7C15ull, ~seq};
    } else {
        return static_cast<T>(seq * 0x9E3779B97F4A7C15ull);
    }
}

/// Moves both indices of an empty ring that has never been used from 0 to `target`
/// without copying anything: whole-ring reserve/commit then peek/release laps. This is
/// how the tests reach the 2^32 index wrap without a back door into the ring.
template <class Ring>
void move_indices_to(Ring& r, std::uint32_t target) {
    std::uint64_t pos = 0;
    while (pos < target) {
        const auto step = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(Ring::capacity, std::uint64_t{target} - pos));
        const auto w = r.reserve(step);
        REQUIRE(w.size() == step);
        r.commit(step);
        const auto rd = r.peek(step);
        REQUIRE(rd.size() == step);
        r.release(step);
        pos += step;
    }
    REQUIRE(r.empty());
}

/// Random mix of every producer and consumer call, each result compared with a model.
/// `start` is the index value the ring's head and tail both hold on entry.
template <class T, std::uint32_t Cap>
void run_model(npa::index_ring<T, Cap>& r, std::uint32_t start, std::uint64_t seed, int steps) {
    using ring_t = npa::index_ring<T, Cap>;
    npa_test::rng g(seed);
    std::deque<T> model;  // published, not yet consumed
    std::deque<T> staged; // written by stage_burst(), not yet published
    std::uint64_t next_seq = 0;
    std::uint32_t head = start; // where the next produced element goes (after staged ones)
    std::uint32_t tail = start; // where the next consumed element comes from
    std::vector<T> buf(Cap + 4);

    for (int step = 0; step < steps; ++step) {
        const auto used = static_cast<std::uint32_t>(model.size());
        const auto free = static_cast<std::uint32_t>(Cap - used - staged.size());
        const std::uint32_t n = g.range(0, Cap + 3);
        // A call that publishes publishes the staged elements first.
        const auto publish_staged = [&] {
            model.insert(model.end(), staged.begin(), staged.end());
            staged.clear();
        };
        switch (g.range(0, 7)) {
        case 0: { // enqueue_burst: 0..n, the rest stays with the caller
            for (std::uint32_t i = 0; i < n; ++i) {
                buf[i] = make_item<T>(next_seq + i);
            }
            const std::uint32_t k = r.enqueue_burst(std::span<const T>(buf.data(), n));
            REQUIRE(k == std::min(n, free));
            if (k > 0) {
                publish_staged();
            }
            for (std::uint32_t i = 0; i < k; ++i) {
                model.push_back(buf[i]);
            }
            next_seq += k;
            head += k;
            break;
        }
        case 1: { // enqueue_bulk: n or nothing
            for (std::uint32_t i = 0; i < n; ++i) {
                buf[i] = make_item<T>(next_seq + i);
            }
            const std::uint32_t k = r.enqueue_bulk(std::span<const T>(buf.data(), n));
            REQUIRE(k == (n <= free ? n : 0u));
            if (n <= free) { // an accepted bulk publishes, an empty one included
                publish_staged();
            }
            for (std::uint32_t i = 0; i < k; ++i) {
                model.push_back(buf[i]);
            }
            next_seq += k;
            head += k;
            break;
        }
        case 2: { // reserve, write in place, commit a prefix
            const npa::ring_region<T> reg = r.reserve(n);
            const std::uint32_t got = std::min(n, free);
            REQUIRE(reg.size() == got);
            const std::uint32_t to_end = Cap - (head & ring_t::mask);
            REQUIRE(reg.first.size() == std::min(got, to_end));
            REQUIRE(reg.second.size() == got - reg.first.size());
            if (got > 0) {
                REQUIRE(reg.first.data() != nullptr);
            }
            const std::uint32_t m = got == 0 ? 0 : g.range(0, got);
            publish_staged(); // commit() publishes them, m == 0 included
            for (std::uint32_t i = 0; i < m; ++i) {
                reg[i] = make_item<T>(next_seq + i);
                model.push_back(reg[i]);
            }
            r.commit(m);
            next_seq += m;
            head += m;
            break;
        }
        case 3: { // dequeue_burst: 0..n
            const std::uint32_t k = r.dequeue_burst(std::span<T>(buf.data(), n));
            REQUIRE(k == std::min(n, used));
            for (std::uint32_t i = 0; i < k; ++i) {
                REQUIRE(buf[i] == model.front());
                model.pop_front();
            }
            tail += k;
            break;
        }
        case 4: { // dequeue_bulk: n or nothing
            const T sentinel = make_item<T>(~0ull);
            std::fill(buf.begin(), buf.end(), sentinel);
            const std::uint32_t k = r.dequeue_bulk(std::span<T>(buf.data(), n));
            REQUIRE(k == (n <= used ? n : 0u));
            if (k == 0) {
                // All or nothing: a refused bulk writes nothing to the caller's array.
                REQUIRE(std::all_of(buf.begin(), buf.end(), [&](const T& v) { return v == sentinel; }));
            }
            for (std::uint32_t i = 0; i < k; ++i) {
                REQUIRE(buf[i] == model.front());
                model.pop_front();
            }
            tail += k;
            break;
        }
        case 5: { // stage_burst: written, invisible to the consumer until published
            for (std::uint32_t i = 0; i < n; ++i) {
                buf[i] = make_item<T>(next_seq + i);
            }
            const std::uint32_t k = r.stage_burst(std::span<const T>(buf.data(), n));
            REQUIRE(k == std::min(n, free));
            staged.insert(staged.end(), buf.begin(), buf.begin() + k);
            next_seq += k;
            head += k;
            break;
        }
        case 6: // flush
            r.flush();
            publish_staged();
            break;
        default: { // peek in place, release a prefix
            const npa::ring_region<T> reg = r.peek(n);
            const std::uint32_t got = std::min(n, used);
            REQUIRE(reg.size() == got);
            const std::uint32_t to_end = Cap - (tail & ring_t::mask);
            REQUIRE(reg.first.size() == std::min(got, to_end));
            for (std::uint32_t i = 0; i < got; ++i) {
                REQUIRE(reg[i] == model[i]);
            }
            const std::uint32_t m = got == 0 ? 0 : g.range(0, got);
            r.release(m);
            model.erase(model.begin(), model.begin() + m);
            tail += m;
            break;
        }
        }
        REQUIRE(r.size() == model.size());
        REQUIRE(r.free_count() == Cap - model.size());
        REQUIRE(r.empty() == model.empty());
        REQUIRE(r.full() == (model.size() == Cap));
        REQUIRE(head - tail == model.size() + staged.size());
    }
}

template <class T, std::uint32_t Cap>
std::unique_ptr<npa::index_ring<T, Cap>> make_ring() {
    return std::make_unique<npa::index_ring<T, Cap>>();
}

} // namespace

TEST_CASE("index_ring: a new ring is empty and refuses every consumer call") {
    auto r = make_ring<std::uint64_t, 8>();
    std::array<std::uint64_t, 4> out{1, 2, 3, 4};
    CHECK(r->empty());
    CHECK_FALSE(r->full());
    CHECK(r->size() == 0);
    CHECK(r->free_count() == 8);
    CHECK(r->dequeue_burst(out) == 0);
    CHECK(r->dequeue_bulk(out) == 0);
    CHECK(r->peek(4).empty());
    CHECK(r->peek(4).size() == 0);
    std::uint64_t v = 7;
    CHECK_FALSE(r->try_dequeue(v));
    CHECK(v == 7);
    CHECK(out == std::array<std::uint64_t, 4>{1, 2, 3, 4});
    // Zero-sized requests are legal no-ops on either side.
    CHECK(r->enqueue_burst({}) == 0);
    CHECK(r->enqueue_bulk({}) == 0);
    CHECK(r->dequeue_bulk({}) == 0);
    CHECK(r->reserve(0).size() == 0);
    r->commit(0);
    r->release(0);
    CHECK(r->empty());
}

TEST_CASE("index_ring: fills to exactly Capacity (no wasted slot) and then refuses") {
    auto r = make_ring<std::uint64_t, 16>();
    std::vector<std::uint64_t> in(20);
    for (std::uint64_t i = 0; i < in.size(); ++i) {
        in[i] = 100 + i;
    }
    CHECK(r->enqueue_burst(in) == 16);
    CHECK(r->full());
    CHECK(r->size() == 16);
    CHECK(r->free_count() == 0);
    CHECK(r->enqueue_burst(in) == 0);
    CHECK(r->enqueue_bulk(std::span<const std::uint64_t>(in.data(), 1)) == 0);
    CHECK_FALSE(r->try_enqueue(1));
    CHECK(r->reserve(1).empty());

    std::array<std::uint64_t, 16> out{};
    CHECK(r->dequeue_bulk(out) == 16);
    for (std::uint64_t i = 0; i < 16; ++i) {
        CHECK(out[i] == 100 + i);
    }
    CHECK(r->empty());
}

TEST_CASE("index_ring: partial bursts take what fits and leave the rest to the caller") {
    auto r = make_ring<std::uint64_t, 8>();
    const std::array<std::uint64_t, 5> a{1, 2, 3, 4, 5};
    const std::array<std::uint64_t, 5> b{6, 7, 8, 9, 10};
    CHECK(r->enqueue_burst(a) == 5);
    // Three free slots: the first three of b go in, 9 and 10 stay with the caller.
    CHECK(r->enqueue_burst(b) == 3);
    std::array<std::uint64_t, 3> out{};
    CHECK(r->dequeue_burst(out) == 3);
    CHECK(out == std::array<std::uint64_t, 3>{1, 2, 3});
    // The caller retries with what was not accepted.
    CHECK(r->enqueue_burst(std::span<const std::uint64_t>(b.data() + 3, 2)) == 2);
    std::array<std::uint64_t, 10> rest{};
    CHECK(r->dequeue_burst(rest) == 7);
    CHECK(std::equal(rest.begin(), rest.begin() + 7,
                     std::array<std::uint64_t, 7>{4, 5, 6, 7, 8, 9, 10}.begin()));
}

TEST_CASE("index_ring: bulk calls are all or nothing") {
    auto r = make_ring<std::uint64_t, 8>();
    const std::array<std::uint64_t, 6> six{1, 2, 3, 4, 5, 6};
    CHECK(r->enqueue_bulk(six) == 6);
    // Two free: a bulk of six is refused and changes nothing.
    CHECK(r->enqueue_bulk(six) == 0);
    CHECK(r->size() == 6);
    std::array<std::uint64_t, 7> seven{};
    seven.fill(99);
    CHECK(r->dequeue_bulk(seven) == 0);
    CHECK(std::all_of(seven.begin(), seven.end(), [](auto v) { return v == 99; }));
    CHECK(r->size() == 6);
    std::array<std::uint64_t, 6> out{};
    CHECK(r->dequeue_bulk(out) == 6);
    CHECK(out == six);
}

TEST_CASE("index_ring: staged elements stay invisible until flush, then arrive in order") {
    auto r = make_ring<std::uint64_t, 8>();
    const std::array<std::uint64_t, 3> a{1, 2, 3};
    const std::array<std::uint64_t, 3> b{4, 5, 6};
    const std::array<std::uint64_t, 3> c{7, 8, 9};
    std::array<std::uint64_t, 8> out{};
    CHECK(r->stage_burst(a) == 3);
    CHECK(r->stage_burst(b) == 3);
    // Nothing published yet: the consumer sees an empty ring.
    CHECK(r->size() == 0);
    CHECK(r->dequeue_burst(out) == 0);
    // Staged elements take room: two slots are left for c.
    CHECK(r->stage_burst(c) == 2);
    CHECK(r->stage_burst(c) == 0);
    r->flush();
    CHECK(r->size() == 8);
    CHECK(r->dequeue_burst(out) == 8);
    CHECK(out == std::array<std::uint64_t, 8>{1, 2, 3, 4, 5, 6, 7, 8});
    // A plain enqueue publishes what was staged before it, in order.
    CHECK(r->stage_burst(std::span<const std::uint64_t>(a.data(), 1)) == 1);
    CHECK(r->enqueue_burst(std::span<const std::uint64_t>(b.data(), 1)) == 1);
    std::array<std::uint64_t, 2> two{};
    CHECK(r->dequeue_burst(two) == 2);
    CHECK(two == std::array<std::uint64_t, 2>{1, 4});
    // And so does a commit after reserve.
    CHECK(r->stage_burst(std::span<const std::uint64_t>(c.data(), 1)) == 1);
    const auto w = r->reserve(1);
    REQUIRE(w.size() == 1);
    w[0] = 42;
    r->commit(1);
    CHECK(r->dequeue_burst(two) == 2);
    CHECK(two == std::array<std::uint64_t, 2>{7, 42});
    CHECK(r->empty());
}

TEST_CASE("index_ring: staging stores nothing to the line the consumer polls") {
    // The producer's first line holds head, which a waiting consumer reads: stage_burst()
    // must leave every byte of it alone (its count lives on a line of its own), and only a
    // publication may change it.
    auto r = make_ring<std::uint64_t, 64>();
    const auto line0 = [&] {
        std::array<unsigned char, npa::cache_line_size> b{};
        std::memcpy(b.data(), static_cast<const void*>(r.get()), b.size());
        return b;
    };
    const std::array<std::uint64_t, 5> a{1, 2, 3, 4, 5};
    REQUIRE(r->enqueue_burst(a) == 5);
    const auto before = line0();
    for (int i = 0; i < 10; ++i) {
        REQUIRE(r->stage_burst(a) == 5);
        CHECK(line0() == before);
    }
    CHECK(r->size() == 5);
    r->flush();
    CHECK(line0() != before);
    CHECK(r->size() == 55);
    static_assert(sizeof(npa::index_ring<std::uint64_t, 64>) == 3 * npa::cache_line_size + 64 * 8,
                  "three lines of indices, then the slots (the layout in index_ring.hpp)");
}

TEST_CASE("index_ring: reserve/commit and peek/release work in place, also across the end") {
    auto r = make_ring<desc16, 8>();
    // Move both indices to 6 so that a region of 5 wraps: slots 6,7 then 0,1,2.
    std::array<desc16, 6> pad{};
    REQUIRE(r->enqueue_bulk(pad) == 6);
    REQUIRE(r->dequeue_bulk(pad) == 6);

    npa::ring_region<desc16> w = r->reserve(5);
    REQUIRE(w.size() == 5);
    CHECK(w.first.size() == 2);
    CHECK(w.second.size() == 3);
    // The two runs are the end and the start of the same slot array.
    CHECK(w.second.data() + 6 == w.first.data());
    for (std::uint32_t i = 0; i < 5; ++i) {
        w[i] = make_desc(40 + i);
    }
    // Nothing is visible before commit.
    CHECK(r->empty());
    CHECK(r->peek(8).empty());
    r->commit(4); // publish a prefix only; the fifth slot is dropped
    CHECK(r->size() == 4);

    npa::ring_region<desc16> rd = r->peek(8);
    REQUIRE(rd.size() == 4);
    CHECK(rd.first.size() == 2);
    CHECK(rd.second.size() == 2);
    CHECK(rd.first.data() == w.first.data()); // zero-copy: the very same slots
    for (std::uint32_t i = 0; i < 4; ++i) {
        CHECK(rd[i] == make_desc(40 + i));
    }
    r->release(3);
    CHECK(r->size() == 1);
    desc16 last{};
    REQUIRE(r->try_dequeue(last));
    CHECK(last == make_desc(43));

    // A reserve larger than the free space is clamped.
    std::array<desc16, 7> seven{};
    REQUIRE(r->enqueue_bulk(seven) == 7);
    CHECK(r->reserve(5).size() == 1);
}

TEST_CASE("index_ring: model check with 8-byte handles from index 0") {
    auto r = make_ring<std::uint64_t, 16>();
    run_model(*r, 0, 1, 20000);
}

TEST_CASE("index_ring: model check with 16-byte descriptors from index 0") {
    auto r = make_ring<desc16, 32>();
    run_model(*r, 0, 2, 20000);
}

TEST_CASE("index_ring: model check with bursts of 256 bytes and more (the bulk copy)") {
    // Runs of at least 256 bytes go through npa::detail::bulk_copy; the model's bursts of
    // 0..Capacity+3 elements make most of them that long, at every slot offset and across
    // the end of the ring.
    SUBCASE("1-byte elements: every length from 256 bytes on") {
        auto r = make_ring<std::uint8_t, 1024>();
        run_model(*r, 0, 5, 4000);
    }
    SUBCASE("8-byte handles") {
        auto r = make_ring<std::uint64_t, 256>();
        run_model(*r, 0, 6, 4000);
    }
    SUBCASE("16-byte descriptors") {
        auto r = make_ring<desc16, 128>();
        run_model(*r, 0, 7, 4000);
    }
    SUBCASE("24-byte descriptors") {
        auto r = make_ring<desc24, 64>();
        run_model(*r, 0, 8, 4000);
    }
}

TEST_CASE("index_ring: an empty burst request moves nothing and publishes nothing") {
    auto r = make_ring<std::uint64_t, 64>();
    const std::array<std::uint64_t, 3> a{1, 2, 3};
    REQUIRE(r->stage_burst(a) == 3);
    // enqueue_burst publishes staged elements only when it enqueues something.
    CHECK(r->enqueue_burst({}) == 0);
    CHECK(r->empty());
    r->flush();
    CHECK(r->size() == 3);
    std::array<std::uint64_t, 3> out{7, 7, 7};
    CHECK(r->dequeue_burst(std::span<std::uint64_t>(out.data(), 0)) == 0);
    CHECK(r->size() == 3);
    CHECK(out == std::array<std::uint64_t, 3>{7, 7, 7});
    CHECK(r->dequeue_burst(out) == 3);
    CHECK(out == a);
}

TEST_CASE("index_ring: the free-running indices wrap at 2^32 without a hiccup") {
    constexpr std::uint32_t cap = 4096;
    // Stop just short of the wrap, in the middle of a lap so that the slot index and the
    // 32-bit index wrap at different moments.
    constexpr std::uint32_t start = 0xFFFFFFF0u - 40;

    SUBCASE("8-byte handles") {
        auto r = make_ring<std::uint64_t, cap>();
        move_indices_to(*r, start);
        // Fill across the wrap: head goes from 0xFFFFFFC8 to past 0, tail stays below.
        std::vector<std::uint64_t> in(cap);
        for (std::uint64_t i = 0; i < cap; ++i) {
            in[i] = i;
        }
        CHECK(r->enqueue_bulk(in) == cap);
        CHECK(r->full());
        CHECK(r->size() == cap); // head - tail across the wrap
        CHECK(r->enqueue_burst(in) == 0);
        std::vector<std::uint64_t> out(cap);
        CHECK(r->dequeue_burst(std::span<std::uint64_t>(out.data(), 100)) == 100);
        CHECK(r->size() == cap - 100);
        CHECK(r->dequeue_bulk(std::span<std::uint64_t>(out.data() + 100, cap - 100)) ==
              cap - 100);
        CHECK(out == in);
        CHECK(r->empty());
    }
    SUBCASE("8-byte handles, model") {
        auto r = make_ring<std::uint64_t, cap>();
        move_indices_to(*r, 0xFFFFFFF0u);
        run_model(*r, 0xFFFFFFF0u, 3, 3000);
    }
    SUBCASE("16-byte descriptors, model, tiny bursts straddling the wrap") {
        auto r = make_ring<desc16, cap>();
        move_indices_to(*r, 0xFFFFFFF0u);
        // Step across the wrap a few elements at a time.
        std::uint64_t seq = 0;
        std::uint64_t expect = 0;
        for (int i = 0; i < 20; ++i) {
            std::array<desc16, 3> in{make_desc(seq), make_desc(seq + 1), make_desc(seq + 2)};
            REQUIRE(r->enqueue_bulk(in) == 3);
            seq += 3;
            std::array<desc16, 2> out{};
            REQUIRE(r->dequeue_burst(out) == 2);
            CHECK(out[0] == make_desc(expect));
            CHECK(out[1] == make_desc(expect + 1));
            expect += 2;
            CHECK(r->size() == seq - expect);
        }
        desc16 d{};
        while (r->try_dequeue(d)) {
            CHECK(d == make_desc(expect++));
        }
        CHECK(expect == 60);
        run_model(*r, static_cast<std::uint32_t>(0xFFFFFFF0u + 60), 4, 3000);
    }
}

TEST_CASE("index_ring: carries buffer_ref handles from a pool unchanged") {
    auto pool = npa::fixed_pool<>::create({.count = 32, .buf_size = 256, .headroom = 64});
    REQUIRE(pool.ok());
    std::array<npa::buffer_ref, 32> bufs{};
    REQUIRE(pool->alloc_bulk(bufs) == 32);
    for (std::uint32_t i = 0; i < 32; ++i) {
        bufs[i].set_user(i);
    }
    auto r = make_ring<npa::buffer_ref, 16>();
    std::array<npa::buffer_ref, 32> out{};
    std::uint32_t sent = 0;
    std::uint32_t got = 0;
    while (got < 32) {
        sent += r->enqueue_burst(std::span<const npa::buffer_ref>(bufs.data() + sent, 32 - sent));
        got += r->dequeue_burst(std::span<npa::buffer_ref>(out.data() + got, 5));
    }
    CHECK(out == bufs);
    for (std::uint32_t i = 0; i < 32; ++i) {
        CHECK(out[i].user() == i);
    }
    pool->free_burst(out);
    CHECK(pool->available() == 32);
}

TEST_CASE("index_ring: create_at/attach_at in caller memory") {
    using ring_t = npa::index_ring<desc16, 64>;
    // The ring is the shared-memory layout: it must be placeable, and a mapping by a
    // second party must need no constructor or destructor to run.
    static_assert(std::is_standard_layout_v<ring_t>);
    static_assert(std::is_trivially_destructible_v<ring_t>);
    static_assert(alignof(ring_t) == npa::cache_line_size);
    static_assert(sizeof(ring_t) == 3 * npa::cache_line_size + 64 * sizeof(desc16));

    // Dirty memory first: create_at must start from a clean, empty ring regardless.
    struct alignas(npa::cache_line_size) region_t {
        std::byte bytes[sizeof(ring_t)];
    };
    auto mem = std::make_unique<region_t>();
    std::memset(mem->bytes, 0xAB, sizeof(mem->bytes));

    ring_t* prod = ring_t::create_at(mem->bytes);
    REQUIRE(static_cast<void*>(prod) == static_cast<void*>(mem->bytes));
    CHECK(prod->empty());
    CHECK(prod->free_count() == 64);

    ring_t* cons = ring_t::attach_at(mem->bytes);
    REQUIRE(static_cast<void*>(cons) == static_cast<void*>(mem->bytes));

    std::uint64_t seq = 0;
    std::uint64_t expect = 0;
    for (int round = 0; round < 50; ++round) {
        std::array<desc16, 13> in{};
        for (auto& d : in) {
            d = make_desc(seq++);
        }
        REQUIRE(prod->enqueue_bulk(in) == in.size());
        CHECK(cons->size() == seq - expect);
        std::array<desc16, 13> out{};
        REQUIRE(cons->dequeue_bulk(out) == out.size());
        for (const auto& d : out) {
            CHECK(d == make_desc(expect++));
        }
    }
    CHECK(prod->empty());
    CHECK(cons->empty());
}

TEST_CASE("index_ring: published() shows what is in flight without consuming it, across the end") {
    npa::index_ring<std::uint32_t, 8> r;
    std::array<std::uint32_t, 6> a{1, 2, 3, 4, 5, 6};
    REQUIRE(r.enqueue_burst(a) == 6);
    std::array<std::uint32_t, 5> out{};
    REQUIRE(r.dequeue_burst(out) == 5); // tail at 5: the next run wraps
    std::array<std::uint32_t, 5> b{7, 8, 9, 10, 11};
    REQUIRE(r.enqueue_burst(b) == 5);
    const auto v = r.published();
    REQUIRE(v.size() == 6);
    CHECK(v.first.size() == 3);
    CHECK(v.second.size() == 3);
    for (std::uint32_t i = 0; i < 6; ++i) {
        CHECK(v[i] == 6 + i);
    }
    CHECK(r.size() == 6); // nothing consumed
    // Staged, unpublished elements are not in flight.
    std::array<std::uint32_t, 1> c{12};
    REQUIRE(r.stage_burst(c) == 1);
    CHECK(r.published().size() == 6);
}

TEST_CASE("index_ring: take_over_producer() drops what a stopped producer never published") {
    npa::index_ring<std::uint32_t, 8> r;
    std::array<std::uint32_t, 3> a{1, 2, 3};
    REQUIRE(r.enqueue_burst(a) == 3);
    std::array<std::uint32_t, 2> staged{90, 91};
    REQUIRE(r.stage_burst(staged) == 2); // the old producer stops here, never flushes
    r.take_over_producer();
    std::array<std::uint32_t, 1> b{4};
    REQUIRE(r.enqueue_burst(b) == 1);
    std::array<std::uint32_t, 8> out{};
    REQUIRE(r.dequeue_burst(out) == 4);
    CHECK(out[0] == 1);
    CHECK(out[1] == 2);
    CHECK(out[2] == 3);
    CHECK(out[3] == 4); // not 90: the staged slots were dropped
    CHECK(r.empty());
}
