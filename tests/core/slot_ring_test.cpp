// npa::slot_ring and npa::trust_latch: the books every plugin keeps of its descriptor
// rings (which buffer sits in which slot, next_to_fill, next_to_clean, in flight), and the
// latch that stops trusting a device; and gen_consumer's skip past a stale slot.
#include <doctest/doctest.h>

#include <npa/ring/gen_ring.hpp>
#include <npa/ring/slot_ring.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace {

using ring = npa::slot_ring<std::uint32_t>; // a slot remembers a buffer handle (a number)
constexpr std::uint32_t not_filled = ring::not_filled;

/// A pool of numbered handles: alloc hands out the next ones, up to `left`, and records
/// each span it was asked to fill (where in the ring, how long).
struct pool {
    std::uint32_t next = 100;
    std::uint32_t left = ~0u;
    std::vector<std::pair<const std::uint32_t*, std::size_t>> calls;
    std::uint32_t operator()(std::span<std::uint32_t> s) {
        calls.emplace_back(s.data(), s.size());
        std::uint32_t n = 0;
        for (; n < s.size() && left != 0; ++n, --left) {
            s[n] = next++;
        }
        return n;
    }
};

/// What post() saw: (slot, handle) in call order.
using posts = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

/// Fills and takes `n` slots, so that both cursors sit at slot n mod size.
void move_cursors(ring& r, std::uint32_t n) {
    for (std::uint32_t i = 0; i < n; ++i) {
        (void)r.fill(i);
        (void)r.take();
    }
}

} // namespace

TEST_CASE("reset gives empty slots with both cursors at 0; release gives none") {
    ring r;
    CHECK(!r);
    REQUIRE(r.reset(6));
    CHECK(r);
    CHECK(r.size() == 6);
    CHECK(r.next_to_fill() == 0);
    CHECK(r.next_to_clean() == 0);
    CHECK(r.in_flight() == 0);
    CHECK(r.free_slots() == 6);
    move_cursors(r, 4);
    (void)r.fill(1);
    REQUIRE(r.reset(6)); // a second attach starts from scratch
    CHECK(r.next_to_fill() == 0);
    CHECK(r.in_flight() == 0);
    CHECK(r.filled_count() == 0);
    r.release();
    CHECK(!r);
    CHECK(r.size() == 0);
    CHECK(r.free_slots() == 0);
}

TEST_CASE("wrap-around: a ring whose size is not a power of two, over many laps") {
    ring r;
    REQUIRE(r.reset(5));
    std::uint32_t filled = 0, taken = 0;
    for (std::uint32_t lap = 0; lap < 7; ++lap) {
        // three in, two out each step: the ring fills, then drains, crossing slot 0 often
        while (r.free_slots() != 0) {
            CHECK(r.fill(filled) == filled % 5);
            ++filled;
        }
        CHECK(r.in_flight() == 5);
        CHECK(r.next_to_fill() == r.next_to_clean());
        while (r.in_flight() > 1) {
            CHECK(r.next_to_clean() == taken % 5);
            CHECK(r.oldest() == taken);
            CHECK(r.take() == taken);
            ++taken;
        }
    }
    CHECK(r.filled_count() == filled);
    CHECK(r.cleaned_count() == taken);
    CHECK(r.in_flight() == filled - taken);
    CHECK(r.next(4) == 0);
    CHECK(r.next(3) == 4);
    CHECK(r.distance(3, 1) == 3);
    CHECK(r.distance(1, 3) == 2);
    CHECK(r.distance(2, 2) == 0);
}

TEST_CASE("refill in two runs: to the end of the ring, then the rest from slot 0") {
    ring r;
    REQUIRE(r.reset(8));
    move_cursors(r, 6); // next_to_fill at slot 6
    pool p;
    posts seen;
    const std::uint32_t posted =
        r.refill(8, p, [&](std::uint32_t slot, std::uint32_t h) { seen.emplace_back(slot, h); });
    CHECK(posted == 8);
    REQUIRE(p.calls.size() == 2);
    CHECK(p.calls[0].first == &r[6]);
    CHECK(p.calls[0].second == 2);
    CHECK(p.calls[1].first == &r[0]);
    CHECK(p.calls[1].second == 6);
    // Posted in ring order, each at the slot it occupies, which remembers it.
    const posts want{{6, 100}, {7, 101}, {0, 102}, {1, 103},
                     {2, 104}, {3, 105}, {4, 106}, {5, 107}};
    CHECK(seen == want);
    for (const auto& [slot, h] : want) {
        CHECK(r[slot] == h);
    }
    CHECK(r.in_flight() == 8);
    CHECK(r.free_slots() == 0);
    CHECK(r.next_to_fill() == 6);
    CHECK(r.next_to_clean() == 6);
}

TEST_CASE("refill: a short first run ends it; nothing is asked of the pool past that") {
    ring r;
    REQUIRE(r.reset(8));
    move_cursors(r, 6);
    pool p;
    p.left = 1;
    posts seen;
    CHECK(r.refill(8, p, [&](std::uint32_t s, std::uint32_t h) { seen.emplace_back(s, h); }) == 1);
    CHECK(p.calls.size() == 1);
    CHECK(seen == posts{{6, 100}});
    CHECK(r.in_flight() == 1);
    CHECK(r.next_to_fill() == 7);
}

TEST_CASE("refill from an empty pool posts nothing and moves nothing") {
    ring r;
    REQUIRE(r.reset(8));
    move_cursors(r, 3);
    pool p;
    p.left = 0;
    int posts_seen = 0;
    CHECK(r.refill(5, p, [&](std::uint32_t, std::uint32_t) { ++posts_seen; }) == 0);
    CHECK(p.calls.size() == 1);
    CHECK(posts_seen == 0);
    CHECK(r.in_flight() == 0);
    CHECK(r.next_to_fill() == 3);
    CHECK(r.filled_count() == 3);
}

TEST_CASE("refill: a refused buffer's slot goes to the next one, in order, across the wrap") {
    ring r;
    REQUIRE(r.reset(8));
    move_cursors(r, 6);
    pool p;
    posts seen;
    std::vector<std::uint32_t> refused;
    const std::uint32_t posted = r.refill(5, p, [&](std::uint32_t slot, std::uint32_t h) {
        if (h == 101 || h == 103) { // the second and fourth: handed back by the plugin
            refused.push_back(h);
            return false;
        }
        seen.emplace_back(slot, h);
        return true;
    });
    CHECK(posted == 3);
    CHECK(refused == std::vector<std::uint32_t>{101, 103});
    CHECK(seen == posts{{6, 100}, {7, 102}, {0, 104}});
    CHECK(r.in_flight() == 3);
    CHECK(r.next_to_fill() == 1);
    CHECK(r.take() == 100);
    CHECK(r.take() == 102);
    CHECK(r.take() == 104);
}

TEST_CASE("a full ring: refill asks for nothing; every slot is one the device holds") {
    ring r;
    REQUIRE(r.reset(4));
    move_cursors(r, 2);
    for (std::uint32_t i = 0; i < 4; ++i) {
        (void)r.fill(10 + i);
    }
    CHECK(r.free_slots() == 0);
    pool p;
    CHECK(r.refill(r.free_slots(), p, [](std::uint32_t, std::uint32_t) {}) == 0);
    CHECK(p.calls.empty());
    // Oldest at slot 2: slot 2 skips 0, 3 skips 1, 0 skips 2, 1 skips 3.
    CHECK(r.completion_skip(2) == 0);
    CHECK(r.completion_skip(3) == 1);
    CHECK(r.completion_skip(0) == 2);
    CHECK(r.completion_skip(1) == 3);
}

TEST_CASE("give_back hands the oldest back in ring order, two spans at most, and cleans them") {
    ring r;
    REQUIRE(r.reset(8));
    move_cursors(r, 5);
    for (std::uint32_t i = 0; i < 6; ++i) {
        (void)r.fill(20 + i); // slots 5, 6, 7, 0, 1, 2
    }
    std::vector<std::vector<std::uint32_t>> spans;
    r.give_back(4, [&](std::span<const std::uint32_t> s) { spans.emplace_back(s.begin(), s.end()); });
    REQUIRE(spans.size() == 2);
    CHECK(spans[0] == std::vector<std::uint32_t>{20, 21, 22});
    CHECK(spans[1] == std::vector<std::uint32_t>{23});
    CHECK(r.in_flight() == 2);
    CHECK(r.next_to_clean() == 1);
    spans.clear();
    r.give_back(r.in_flight(), [&](std::span<const std::uint32_t> s) {
        spans.emplace_back(s.begin(), s.end());
    });
    REQUIRE(spans.size() == 1);
    CHECK(spans[0] == std::vector<std::uint32_t>{24, 25});
    CHECK(r.in_flight() == 0);
    r.give_back(0, [&](std::span<const std::uint32_t>) { FAIL("nothing to give back"); });
}

TEST_CASE("stale slot: a completion naming a slot the device does not hold is refused") {
    ring r;
    REQUIRE(r.reset(8));
    move_cursors(r, 6);
    (void)r.fill(1); // slot 6
    (void)r.fill(2); // slot 7
    (void)r.fill(3); // slot 0
    CHECK(r.completion_skip(6) == 0);
    CHECK(r.completion_skip(7) == 1);
    CHECK(r.completion_skip(0) == 2);
    CHECK(r.completion_skip(1) == not_filled); // free: never handed over
    CHECK(r.completion_skip(5) == not_filled); // cleaned already: a duplicate
    CHECK(r.completion_skip(8) == not_filled); // outside the ring
    CHECK(r.completion_skip(~0u) == not_filled);
    (void)r.take();
    CHECK(r.completion_skip(6) == not_filled); // the slot just cleaned
    CHECK(r.completion_skip(7) == 0);
}

TEST_CASE("stale slot with tags: an earlier lap's completion for a slot held again is refused") {
    ring r;
    REQUIRE(r.reset(4));
    move_cursors(r, 4); // fill numbers 0..3 used; the next filling of slot 0 is number 4
    (void)r.fill(7);    // slot 0, number 4
    (void)r.fill(8);    // slot 1, number 5
    CHECK(r.completion_skip(0, 4) == 0);
    CHECK(r.completion_skip(1, 5) == 1);
    CHECK(r.completion_skip(0, 0) == not_filled); // slot 0's previous filling
    CHECK(r.completion_skip(1, 4) == not_filled); // another slot's tag
    CHECK(r.completion_skip(2, 6) == not_filled); // not held
}

TEST_CASE("fill without a record, for a descriptor that carries no buffer of its own") {
    npa::slot_ring<std::pair<std::uint32_t, std::uint32_t>> r; // (buffer, end slot)
    REQUIRE(r.reset(4));
    const std::uint32_t first = r.next_to_fill();
    CHECK(r.fill() == 0); // a context descriptor
    const std::uint32_t eop = r.fill();
    CHECK(eop == 1);
    r[first].second = eop;
    r[eop].first = 42;
    CHECK(r.in_flight() == 2);
    CHECK(r.distance(r.next_to_clean(), r.oldest().second) + 1 == 2);
    r.clean(2);
    CHECK(r.in_flight() == 0);
    CHECK(r.next_to_clean() == 2);
}

TEST_CASE("trust_latch: trips on the first violation, counts each, stays tripped until reset") {
    npa::trust_latch t;
    npa::queue_stats a, b;
    CHECK(!t.distrusted());
    t.distrust(a, 0); // nothing wrong: nothing happens
    CHECK(!t.distrusted());
    CHECK(a.bad_completion == 0);
    t.distrust(a);
    CHECK(t.distrusted());
    CHECK(a.bad_completion == 1);
    t.distrust(b, 3); // another queue's count, the same latch
    t.distrust(a, 0);
    CHECK(t.distrusted());
    CHECK(a.bad_completion == 1);
    CHECK(b.bad_completion == 3);
    for (int i = 0; i < 100; ++i) {
        t.distrust(a, 0);
    }
    CHECK(t.distrusted()); // good behaviour afterwards does not win trust back
    t.reset();
    CHECK(!t.distrusted());
    CHECK(a.bad_completion == 1); // the counts stay: they are the queue's history
}

namespace {
struct comp {
    std::uint32_t word[4];
};
using comp_traits = npa::gen_bit_traits<comp, 3, 31, std::endian::native>;
using done_traits = npa::done_bit_traits<comp, 3, 31, std::endian::native>;
} // namespace

TEST_CASE("gen_consumer: a stale slot followed by a fresh one is skipped once, reported, and "
          "waits for a real write on the next lap") {
    std::array<comp, 4> mem{};
    npa::gen_producer<comp_traits> prod(mem.data(), 4);
    npa::gen_consumer<comp_traits> cons(mem.data(), 4);
    comp c{};
    int stale = 0;
    auto on_stale = [&] { ++stale; };
    CHECK(!cons.out_of_order());
    CHECK(!cons.poll_past_stale(c, on_stale)); // empty ring: nothing, nobody accused
    CHECK(stale == 0);
    // The producer writes slot 0 but leaves its generation bit stale, then slot 1.
    prod.produce(comp{{10, 0, 0, 0}});
    prod.produce(comp{{11, 0, 0, 0}});
    mem[0].word[3] = 0; // slot 0's generation bit never flipped
    CHECK(cons.out_of_order());
    REQUIRE(cons.poll_past_stale(c, on_stale));
    CHECK(c.word[0] == 11);
    CHECK(stale == 1);
    CHECK(cons.next_to_clean() == 2);
    CHECK(!cons.poll_past_stale(c, on_stale)); // nothing more: no second accusation
    CHECK(stale == 1);
    // Lap two: the consumer reaches slot 0 again before the producer wrote it. Unmarked,
    // its old bit (0) would read as this lap's; it must not.
    prod.produce(comp{{12, 0, 0, 0}});
    prod.produce(comp{{13, 0, 0, 0}});
    REQUIRE(cons.poll_past_stale(c, on_stale));
    CHECK(c.word[0] == 12);
    REQUIRE(cons.poll_past_stale(c, on_stale));
    CHECK(c.word[0] == 13);
    CHECK(cons.next_to_clean() == 0);
    CHECK(!cons.ready());
    CHECK(!cons.poll_past_stale(c, on_stale));
    CHECK(stale == 1);
    prod.produce(comp{{14, 0, 0, 0}});
    REQUIRE(cons.poll_past_stale(c, on_stale));
    CHECK(c.word[0] == 14);
    CHECK(stale == 1);
}

TEST_CASE("gen_consumer: on a done-bit ring the skipped slot is left not done") {
    std::array<comp, 4> mem{};
    npa::gen_consumer<done_traits> cons(mem.data(), 4);
    mem[1].word[0] = 21;
    mem[1].word[3] = 1u << 31; // slot 1 done, slot 0 not
    comp c{};
    int stale = 0;
    REQUIRE(cons.poll_past_stale(c, [&] { ++stale; }));
    CHECK(c.word[0] == 21);
    CHECK(stale == 1);
    CHECK((mem[0].word[3] & (1u << 31)) == 0);
}
