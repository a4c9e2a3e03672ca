// The packed virtqueue core (npa/virtio/packed_ring.hpp, packed_device.hpp): layout byte by
// byte, both sides against each other over many wraps of a ring whose size is not a power of
// two, the event suppression modes, and hostile used descriptors and chains.
#include <doctest/doctest.h>

#include <npa/virtio/packed_device.hpp>
#include <npa/virtio/packed_ring.hpp>

#include "virtio_tables.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

using namespace npa::virtio;

namespace {

struct queue {
    explicit queue(std::uint32_t n) : descs(n), state(packed_driver::state_words(n)) {
        ring = packed_ring(descs.data(), &drv_event, &dev_event, n);
        REQUIRE(drv.reset(ring, state));
        REQUIRE(dev.reset(ring));
    }
    std::vector<pvirtq_desc> descs;
    alignas(4) pvirtq_event_suppress drv_event{};
    alignas(4) pvirtq_event_suppress dev_event{};
    std::vector<std::uint16_t> state;
    packed_ring ring;
    packed_driver drv;
    packed_device dev;
    std::array<segment, 8> segs{};
    chain c{};
    std::uint16_t ndesc = 0;

    pop_status pop() {
        return dev.pop(c, ndesc, segs, [](std::uint64_t a, std::uint32_t, bool) { return a < 0x100000; });
    }
};

} // namespace

TEST_CASE("packed layout: descriptor and event areas, byte by byte") {
    queue q(4);
    const segment s{0x1122, 0x33445566, true};
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    const auto* b = reinterpret_cast<const std::uint8_t*>(q.descs.data());
    CHECK(b[0] == 0x22);
    CHECK(b[1] == 0x11);
    CHECK(b[8] == 0x66);
    CHECK(b[11] == 0x33);
    // flags: WRITE (2) | AVAIL (1 << 7) on the first lap, USED clear
    CHECK(b[14] == 0x82);
    CHECK(b[15] == 0x00);
    CHECK(sizeof(pvirtq_event_suppress) == 4);
}

TEST_CASE("packed: chains both ways over many wraps of a ring of 5") {
    queue q(5);
    used_chain u;
    for (std::uint32_t i = 0; i < 10000; ++i) {
        const std::uint32_t k = 1 + i % 3;
        std::array<segment, 3> s{};
        for (std::uint32_t j = 0; j < k; ++j) {
            s[j] = {0x1000 + j, 100 + j, j + 1 == k};
        }
        const std::int32_t id = q.drv.add({s.data(), k});
        REQUIRE(id >= 0);
        (void)q.drv.publish();
        REQUIRE(q.pop() == pop_status::ok);
        REQUIRE(q.c.head == id);
        REQUIRE(q.c.segments == k);
        REQUIRE(q.c.readable == k - 1);
        REQUIRE(q.segs[k - 1].write);
        CHECK(q.pop() == pop_status::empty);
        q.dev.push_used(q.c.head, i, q.ndesc);
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        REQUIRE(u.id == id);
        REQUIRE(u.len == i);
        REQUIRE(q.drv.free_descs() == 5);
        REQUIRE(q.drv.poll_used(u) == used_status::empty);
    }
    CHECK(q.drv.stats().bad_used_id == 0);
}

TEST_CASE("packed: several buffers in flight, used in order, ring full") {
    queue q(4);
    const segment s{0x100, 64, true};
    std::array<std::int32_t, 4> ids{};
    for (auto& id : ids) {
        id = q.drv.add({&s, 1});
        REQUIRE(id >= 0);
    }
    CHECK(q.drv.add({&s, 1}) == -1);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(q.pop() == pop_status::ok);
        q.dev.push_used(q.c.head, 10, q.ndesc);
    }
    used_chain u;
    for (int i = 0; i < 4; ++i) {
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK(u.id == ids[static_cast<std::size_t>(i)]);
    }
    std::vector<std::uint16_t> left;
    q.drv.drain_in_flight([&](std::uint16_t id) { left.push_back(id); });
    CHECK(left.empty());
}

TEST_CASE("packed IN_ORDER: one used descriptor for a batch, its positions skipped, over laps") {
    // Buffers of 1..3 descriptors on a ring of 7, made available in order; the device marks
    // each batch used with one descriptor (the last buffer's id) at the batch's first
    // position and moves past every descriptor of it. used_ready() counts the batch's
    // buffers; they come back oldest first, the last with the descriptor's length and the
    // others whole (used completely, no length written).
    queue q(7);
    q.state.assign(packed_driver::state_words(7), 0);
    REQUIRE(q.drv.reset(q.ring, q.state, false, /*in_order=*/true, /*batches=*/true));
    REQUIRE(q.dev.reset(q.ring));
    std::uint32_t next_len = 1;
    for (int round = 0; round < 40; ++round) {
        // as many buffers as fit: 1, 2, 3, 1, 2, 3 ... descriptors
        std::vector<std::int32_t> ids;
        for (;;) {
            const std::array<segment, 3> segs{segment{0x100, 64, false}, segment{0x200, 100, true},
                                              segment{0x300, 700, true}};
            const std::uint32_t k = 1 + next_len % 3;
            const std::int32_t id = q.drv.add({segs.data(), k});
            if (id < 0) {
                break;
            }
            ++next_len;
            ids.push_back(id);
        }
        REQUIRE(!ids.empty());
        // the device takes them all, and confirms them in batches of up to 2 buffers
        std::vector<std::pair<std::uint16_t, std::uint16_t>> taken; // id, descriptors
        while (q.pop() == pop_status::ok) {
            taken.emplace_back(q.c.head, q.ndesc);
        }
        REQUIRE(taken.size() == ids.size());
        for (std::size_t i = 0; i < taken.size(); i += 2) {
            const std::size_t last = i + 1 < taken.size() ? i + 1 : i;
            const auto descs = static_cast<std::uint16_t>(taken[i].second + (last != i ? taken[last].second : 0));
            q.dev.push_used(taken[last].first, 77, descs);
        }
        CHECK(q.drv.used_ready() == ids.size());
        used_chain u;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            REQUIRE(q.drv.poll_used(u) == used_status::ok);
            CHECK(u.id == ids[i]);
            const bool last_of_batch = i % 2 == 1 || i + 1 == ids.size();
            CHECK(u.len == (last_of_batch ? 77u : 0u));
            CHECK(u.whole == !last_of_batch);
        }
        CHECK(q.drv.poll_used(u) == used_status::empty);
        CHECK(q.drv.in_flight() == 0);
    }
    CHECK(q.drv.stats().batches > 0);
    CHECK(q.drv.stats().bad_used_id == 0);
    CHECK(q.drv.stats().passed_over == 0);
}

TEST_CASE("packed IN_ORDER without batches: older buffers passed over are handed to on_passed") {
    queue q(8);
    q.state.assign(packed_driver::state_words(8), 0);
    REQUIRE(q.drv.reset(q.ring, q.state, false, /*in_order=*/true, /*batches=*/false));
    REQUIRE(q.dev.reset(q.ring));
    const segment s{0x100, 64, true};
    std::array<std::int32_t, 4> ids{};
    for (auto& id : ids) {
        id = q.drv.add({&s, 1});
        REQUIRE(id >= 0);
    }
    std::array<std::uint16_t, 4> heads{};
    for (auto& h : heads) {
        REQUIRE(q.pop() == pop_status::ok);
        h = q.c.head;
    }
    q.dev.push_used(heads[2], 10, 3); // names the third: the first two were passed over
    std::vector<std::uint16_t> passed;
    used_chain u;
    REQUIRE(q.drv.poll_used(u, [&](std::uint16_t id) { passed.push_back(id); }) == used_status::ok);
    CHECK(u.id == ids[2]);
    CHECK(passed == std::vector<std::uint16_t>{static_cast<std::uint16_t>(ids[0]), static_cast<std::uint16_t>(ids[1])});
    CHECK(q.drv.stats().passed_over == 2);
    // the fourth, then a descriptor naming the first again: not in flight, the ring is broken
    q.dev.push_used(heads[3], 10, 1);
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK(u.id == ids[3]);
    CHECK(q.drv.in_flight() == 0);
    const std::int32_t again = q.drv.add({&s, 1});
    REQUIRE(again >= 0);
    REQUIRE(q.pop() == pop_status::ok);
    q.dev.push_used(static_cast<std::uint16_t>(again == ids[0] ? ids[1] : ids[0]), 10, 1);
    CHECK(q.drv.poll_used(u) == used_status::broken);
    CHECK(q.drv.stats().bad_used_id == 1);
}

TEST_CASE("packed event suppression: enable, disable, desc") {
    queue q(8);
    const segment s{0x100, 64, false};
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    CHECK(q.drv.publish()); // enabled
    q.dev_event.flags = ring_event_disable;
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    CHECK_FALSE(q.drv.publish());
    q.dev_event.flags = ring_event_desc;
    q.dev_event.off_wrap = static_cast<std::uint16_t>(3 | 0x8000); // at position 3, lap 1
    REQUIRE(q.drv.add({&s, 1}) >= 0);           // 2 -> 3: not past 3
    CHECK_FALSE(q.drv.publish());
    REQUIRE(q.drv.add({&s, 1}) >= 0);           // 3 -> 4: passes 3
    CHECK(q.drv.publish());
    // the device side: the driver's area
    q.drv.disable_interrupts();
    REQUIRE(q.pop() == pop_status::ok);
    q.dev.push_used(q.c.head, 0, q.ndesc);
    CHECK_FALSE(q.dev.need_interrupt());
    used_chain u;
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK_FALSE(q.drv.enable_interrupts());
    REQUIRE(q.pop() == pop_status::ok);
    q.dev.push_used(q.c.head, 0, q.ndesc);
    CHECK(q.dev.need_interrupt());
}

TEST_CASE("packed EVENT_IDX: the wrap-aware event rule on a move across the end of the ring") {
    // n = 8: the driver goes from position 6 of lap 1 to position 2 of lap 0 (4 buffers).
    // The device's off_wrap names a position and a lap; one on the other lap counts a ring
    // further back (Linux virtqueue_kick_prepare_packed, DPDK vhost_vring_call_packed).
    const auto run = [](std::uint16_t off_wrap) {
        queue q(8);
        const segment s{0x100, 64, false};
        for (int i = 0; i < 6; ++i) { // to position 6, taken and used: the ring has room
            REQUIRE(q.drv.add({&s, 1}) >= 0);
            REQUIRE(q.pop() == pop_status::ok);
            q.dev.push_used(q.c.head, 0, q.ndesc);
            used_chain u;
            REQUIRE(q.drv.poll_used(u) == used_status::ok);
        }
        q.dev_event.flags = ring_event_disable;
        (void)q.drv.publish();
        q.dev_event.off_wrap = off_wrap;
        q.dev_event.flags = ring_event_desc;
        for (int i = 0; i < 4; ++i) {
            REQUIRE(q.drv.add({&s, 1}) >= 0);
        }
        return q.drv.publish();
    };
    CHECK(run(6 | 0x8000));        // the first position written, lap 1
    CHECK(run(7 | 0x8000));        // the last of lap 1
    CHECK(run(0));                 // the first of lap 0
    CHECK(run(1));                 // the last written, lap 0
    CHECK_FALSE(run(2));           // the next one: not written yet
    CHECK_FALSE(run(5 | 0x8000));  // before the move
    CHECK_FALSE(run(6));           // position 6 of lap 0: a lap ahead
    CHECK_FALSE(run(1 | 0x8000));  // position 1 of lap 1: long passed
}

TEST_CASE("packed EVENT_IDX: one interrupt and one kick per re-arm, over many wraps") {
    // n = 5 (not a power of two), 3 buffers a round: rounds end anywhere in the ring and
    // every position is crossed on both laps. Each round the device asks for a notification
    // at its next available position and the driver for an interrupt at its next used one;
    // then each side hears exactly once of the 3 buffers, the first.
    queue q(5);
    REQUIRE(q.drv.reset(q.ring, q.state, /*event_idx=*/true));
    REQUIRE(q.dev.reset(q.ring, {}, false, /*event_idx=*/true));
    // reset: an interrupt for the first used buffer (position 0, lap 1), as used_event 0
    CHECK(q.drv_event.flags == ring_event_desc);
    CHECK(q.drv_event.off_wrap == 0x8000);
    const segment s{0x100, 64, true};
    packed_cursor avail{}, used{};
    std::uint32_t kicks = 0, irqs = 0;
    for (int round = 0; round < 40; ++round) {
        CHECK_FALSE(q.dev.enable_notify(true)); // nothing waiting
        CHECK(q.dev_event.flags == ring_event_desc);
        CHECK(q.dev_event.off_wrap == static_cast<std::uint16_t>(avail.index | (avail.wrap ? 0x8000 : 0)));
        if (round != 0) {
            CHECK_FALSE(q.drv.enable_interrupts()); // nothing waiting
            CHECK(q.drv_event.flags == ring_event_desc);
            CHECK(q.drv_event.off_wrap == static_cast<std::uint16_t>(used.index | (used.wrap ? 0x8000 : 0)));
        }
        for (int i = 0; i < 3; ++i) { // a publish per buffer: only the first kicks
            REQUIRE(q.drv.add({&s, 1}) >= 0);
            const bool kick = q.drv.publish();
            CHECK(kick == (i == 0));
            kicks += kick ? 1 : 0;
            avail.advance(1, 5);
        }
        for (int i = 0; i < 3; ++i) { // an interrupt decision per buffer: only the first
            REQUIRE(q.pop() == pop_status::ok);
            q.dev.push_used(q.c.head, 60, q.ndesc);
            const bool irq = q.dev.need_interrupt();
            CHECK(irq == (i == 0));
            irqs += irq ? 1 : 0;
            used.advance(1, 5);
        }
        used_chain u;
        for (int i = 0; i < 3; ++i) {
            REQUIRE(q.drv.poll_used(u) == used_status::ok);
        }
        CHECK(q.drv.poll_used(u) == used_status::empty);
    }
    CHECK(kicks == 40);
    CHECK(irqs == 40);
    CHECK((used.index == (40 * 3) % 5 && used.wrap == ((40 * 3 / 5) % 2 == 0)));
}

TEST_CASE("packed EVENT_IDX: no wake-up lost around the re-arm") {
    queue q(5);
    REQUIRE(q.drv.reset(q.ring, q.state, true));
    REQUIRE(q.dev.reset(q.ring, {}, false, true));
    const segment s{0x100, 64, true};
    used_chain u;
    for (int lap = 0; lap < 12; ++lap) { // 12 buffers: past both wraps more than once
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        (void)q.drv.publish();
        // The device writes a buffer at the position the driver's last re-arm named: the
        // interrupt is asked for, and a re-arm before the driver polls sees it waiting.
        REQUIRE(q.pop() == pop_status::ok);
        q.dev.push_used(q.c.head, 60, q.ndesc);
        CHECK(q.dev.need_interrupt());
        CHECK(q.drv.enable_interrupts()); // already waiting: the caller polls again
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK_FALSE(q.drv.enable_interrupts());
        CHECK_FALSE(q.dev.need_interrupt()); // nothing new used since the last decision
        // the device notices a buffer made available after its re-arm (a notification)
        CHECK_FALSE(q.dev.enable_notify(true));
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        CHECK(q.drv.publish());
        CHECK(q.dev.enable_notify(true)); // and a re-arm after it sees it waiting
        REQUIRE(q.pop() == pop_status::ok);
        q.dev.push_used(q.c.head, 60, q.ndesc);
        CHECK(q.dev.need_interrupt()); // at the driver's re-armed position
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK_FALSE(q.drv.enable_interrupts()); // the empty poll's re-arm
    }
}

TEST_CASE("packed: hostile used descriptors and chains") {
    SUBCASE("a used id never made available leaves the ring broken, nothing consumed") {
        queue q(4);
        const segment s{0x100, 64, true};
        REQUIRE(q.drv.add({&s, 1}) == 3); // ids from the top of the free stack
        q.descs[0].id = 2;
        q.descs[0].flags = static_cast<std::uint16_t>(desc_f_avail | desc_f_used);
        used_chain u;
        CHECK(q.drv.poll_used(u) == used_status::broken);
        CHECK(q.drv.stats().bad_used_id == 1);
        CHECK(q.drv.in_flight() == 1);
        q.descs[0].id = 9;
        CHECK(q.drv.poll_used(u) == used_status::broken);
    }
    SUBCASE("NEXT on every descriptor: the chain never ends") {
        queue q(4);
        const segment s[4] = {{0x100, 8, false}, {0x100, 8, false}, {0x100, 8, false}, {0x100, 8, false}};
        REQUIRE(q.drv.add(s) >= 0);
        q.descs[3].flags = static_cast<std::uint16_t>(q.descs[3].flags | desc_f_next);
        std::array<segment, 16> many{};
        CHECK(q.dev.pop(q.c, q.ndesc, many, [](std::uint64_t, std::uint32_t, bool) { return true; }) ==
              pop_status::broken);
        CHECK(q.dev.errors(chain_error::loop) == 1);
    }
    SUBCASE("a chain running into descriptors not made available") {
        queue q(4);
        const segment s{0x100, 8, false};
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        q.descs[0].flags = static_cast<std::uint16_t>(q.descs[0].flags | desc_f_next);
        CHECK(q.pop() == pop_status::broken);
        CHECK(q.dev.errors(chain_error::loop) == 1);
    }
    SUBCASE("readable after writable, indirect, address, too many: refused, given back, the ring runs on") {
        queue q(8);
        const segment s[3] = {{0x100, 8, true}, {0x100, 8, false}, {0x100, 8, true}};
        const std::int32_t bad = q.drv.add(s);
        REQUIRE(bad >= 0);
        const segment good{0x200, 64, true};
        const std::int32_t next = q.drv.add({&good, 1});
        REQUIRE(next >= 0);
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::read_after_write) == 1);
        CHECK(q.c.head == bad); // the buffer id, from the chain's last descriptor
        CHECK(q.ndesc == 3);    // every position of the chain, though only 1 was taken
        CHECK(q.c.segments == 1);
        q.dev.push_used(q.c.head, 0, q.ndesc);
        REQUIRE(q.pop() == pop_status::ok);
        CHECK(q.c.head == next);
        CHECK(q.segs[0].addr == 0x200);
        q.dev.push_used(q.c.head, 64, q.ndesc);
        used_chain u;
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK((u.id == bad && u.len == 0));
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK((u.id == next && u.len == 64));
        CHECK(q.drv.free_descs() == 8);

        queue r(8);
        const segment t{0x7000000, 8, false};
        REQUIRE(r.drv.add({&t, 1}) >= 0);
        CHECK(r.pop() == pop_status::refused);
        CHECK(r.dev.errors(chain_error::bad_address) == 1);
        queue w(8);
        const segment x{0x100, 8, false};
        REQUIRE(w.drv.add({&x, 1}) >= 0);
        w.descs[0].flags = static_cast<std::uint16_t>(w.descs[0].flags | desc_f_indirect);
        CHECK(w.pop() == pop_status::refused);
        CHECK(w.dev.errors(chain_error::indirect) == 1);
        queue m(16);
        std::array<segment, 10> ten{};
        ten.fill({0x100, 8, false});
        REQUIRE(m.drv.add(ten) >= 0);
        CHECK(m.pop() == pop_status::refused); // 8 segments is all the caller takes
        CHECK(m.dev.errors(chain_error::too_long) == 1);
        CHECK(m.ndesc == 10);
        CHECK(m.dev.last_avail().index == 10);
    }
}

namespace {
// A packed queue whose device negotiated INDIRECT_DESC, with driver memory for tables.
struct indirect_queue : queue {
    explicit indirect_queue(std::uint32_t n = 6) : queue(n) { REQUIRE(dev.reset(ring, {}, true)); }
    test::driver_tables t;
    std::uint32_t placed = 0; // ring positions the driver has written
    /// Adds `segs` as one buffer with INDIRECT (and `extra`) set on its first descriptor (a
    /// device sees no difference from a driver that wrote them so: it runs on this thread).
    std::int32_t add_flagged(std::span<const segment> buf, std::uint16_t extra = 0) {
        const std::uint32_t at = placed % static_cast<std::uint32_t>(descs.size());
        const std::int32_t id = drv.add(buf);
        REQUIRE(id >= 0);
        placed += static_cast<std::uint32_t>(buf.size());
        descs[at].flags = static_cast<std::uint16_t>(descs[at].flags | desc_f_indirect | extra);
        return id;
    }
    /// A buffer of one descriptor naming the table at `off` (`len` bytes).
    std::int32_t add_table(std::size_t off, std::uint32_t len, std::uint16_t extra = 0) {
        const segment s{test::driver_tables::gpa(off), len, false};
        return add_flagged({&s, 1}, extra);
    }
    pop_status pop_t(std::span<segment> into) {
        return dev.pop(c, ndesc, into, [](std::uint64_t a, std::uint32_t, bool) { return a < 0x100000; },
                       t.reader());
    }
    pop_status pop_t() { return pop_t(segs); }
};
} // namespace

TEST_CASE("packed indirect: a table is the buffer, every entry in order, over laps") {
    indirect_queue q;
    used_chain u;
    for (std::uint32_t i = 0; i < 20; ++i) { // more than three laps of a ring of 6
        const std::size_t off = 4 + (i % 4) * 64; // not 16-byte aligned
        // NEXT and the buffer id are reserved in a packed table (2.8.13): order is the table's
        q.t.put(off, 0, 0x1000 + i, 12, desc_f_next, 0, true);
        q.t.put(off, 1, 0x2000 + i, 60, 0, 0, true);
        q.t.put(off, 2, 0x3000 + i, 128, desc_f_write, 0, true);
        const std::int32_t id = q.add_table(off, 48);
        REQUIRE(q.pop_t() == pop_status::ok);
        CHECK(q.c.head == id);
        CHECK(q.ndesc == 1);
        CHECK(q.c.indirect);
        CHECK(q.c.segments == 3);
        CHECK(q.c.readable == 2);
        CHECK((q.c.read_len == 72 && q.c.write_len == 128));
        CHECK(q.segs[1].addr == 0x2000 + i);
        q.dev.push_used(q.c.head, 128, q.ndesc);
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK((u.id == id && u.len == 128));
    }
    CHECK(q.dev.indirect_chains() == 20);
    CHECK(q.dev.errors() == 0);
}

TEST_CASE("packed indirect: a queue of one direction takes it for every entry (DPDK's TX tables)") {
    // DPDK's virtio PMD leaves WRITE on its TX table's header entry (and on data entries at
    // some ring positions): read by each entry's flag it is a readable-after-writable chain
    indirect_queue q;
    q.t.put(0, 0, 0x1000, 12, desc_f_write, 0, true);
    q.t.put(0, 1, 0x2000, 64, desc_f_next | desc_f_avail, 0, true);
    q.t.put(0, 2, 0x3000, 64, desc_f_write, 0, true);
    (void)q.add_table(0, 48);
    CHECK(q.pop_t() == pop_status::refused);
    CHECK(q.dev.last_error() == chain_error::read_after_write);
    q.dev.push_used(q.c.head, 0, q.ndesc);
    (void)q.add_table(0, 48);
    const auto ok = [](std::uint64_t a, std::uint32_t, bool) { return a < 0x100000; };
    REQUIRE(q.dev.pop(q.c, q.ndesc, q.segs, ok, q.t.reader(), table_direction::readable) == pop_status::ok);
    CHECK((q.c.readable == 3 && q.c.read_len == 140 && q.c.write_len == 0));
    q.dev.push_used(q.c.head, 0, q.ndesc);
    (void)q.add_table(0, 48);
    REQUIRE(q.dev.pop(q.c, q.ndesc, q.segs, ok, q.t.reader(), table_direction::writable) == pop_status::ok);
    CHECK((q.c.readable == 0 && q.c.write_len == 140));
    CHECK(q.dev.indirect_chains() == 2);
}

TEST_CASE("packed indirect: hostile tables refused by cause, given back, the ring runs on") {
    indirect_queue q(8);
    // 0: INDIRECT with NEXT (its chain's second descriptor is plain), 1: length not a
    // multiple of 16, 2: more entries than the queue, 3: outside driver memory, 4: INDIRECT
    // inside, 5: more entries than the caller takes
    q.t.put(0, 0, 0x1000, 8, 0, 0, true);
    q.t.put(64, 0, 0x1000, 8, desc_f_indirect, 0, true);
    for (std::uint32_t i = 0; i < 9; ++i) {
        q.t.put(128, i, 0x1000, 8, 0, 0, true);
    }
    const segment pair[2] = {{test::driver_tables::gpa(0), 16, false}, {0x100, 8, false}};
    const std::int32_t id0 = q.add_flagged(pair);
    std::array<std::int32_t, 5> ids{q.add_table(0, 24), q.add_table(128, 9 * 16), q.add_table(4096, 16),
                                    q.add_table(64, 16), q.add_table(128, 5 * 16)};
    std::array<segment, 4> four{};
    CHECK(q.pop_t(four) == pop_status::refused);
    CHECK(q.dev.errors(chain_error::indirect_next) == 1);
    CHECK((q.c.head == id0 && q.ndesc == 2)); // the whole chain taken, its id known
    q.dev.push_used(q.c.head, 0, q.ndesc);
    const chain_error want[5] = {chain_error::indirect_len, chain_error::indirect_len, chain_error::bad_address,
                                 chain_error::indirect_nested, chain_error::too_long};
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(q.pop_t(four) == pop_status::refused);
        CHECK(q.dev.last_error() == want[i]);
        CHECK((q.c.head == ids[i] && q.ndesc == 1));
        q.dev.push_used(q.c.head, 0, q.ndesc);
    }
    CHECK(q.dev.errors(chain_error::indirect_len) == 2);
    used_chain u;
    for (int i = 0; i < 6; ++i) {
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK(u.len == 0);
    }
    // the ring runs on: a good table next
    q.t.put(256, 0, 0x2000, 64, 0, 0, true);
    const std::int32_t good = q.add_table(256, 16);
    REQUIRE(q.pop_t() == pop_status::ok);
    CHECK(q.c.head == good);
    CHECK(q.dev.indirect_chains() == 1);

    SUBCASE("not negotiated") {
        indirect_queue r;
        REQUIRE(r.dev.reset(r.ring, {}, false));
        r.t.put(0, 0, 0x1000, 8, 0, 0, true);
        (void)r.add_table(0, 16);
        CHECK(r.pop_t() == pop_status::refused);
        CHECK(r.dev.errors(chain_error::indirect) == 1);
        CHECK(r.t.reads == 0);
    }
}

TEST_CASE("packed device: resumes at a base on the second lap, gives buffers back, suppresses notifications") {
    // A driver three buffers into its second lap of a ring of 5, as a vhost-user back end
    // finds it after GET_VRING_BASE / SET_VRING_BASE: the device starts there, not at 0.
    queue q(5);
    const segment s{0x100, 64, true};
    used_chain u;
    for (int i = 0; i < 8; ++i) {
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        REQUIRE(q.pop() == pop_status::ok);
        q.dev.push_used(q.c.head, 1, q.ndesc);
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
    }
    const packed_cursor at = q.dev.last_avail();
    CHECK((at.index == 3 && !at.wrap));
    packed_device resumed;
    REQUIRE(resumed.reset(q.ring, at));
    CHECK_FALSE(resumed.reset(q.ring, packed_cursor{5, true})); // past the ring's end
    REQUIRE(resumed.reset(q.ring, at));
    const segment two[2] = {{0x100, 8, true}, {0x200, 8, true}};
    REQUIRE(q.drv.add(two) >= 0); // positions 3 and 4
    const std::int32_t third = q.drv.add({&s, 1}); // position 0 of lap 3 (wrap 1)
    REQUIRE(third >= 0);
    std::uint16_t nd = 0;
    const auto ok = [](std::uint64_t, std::uint32_t, bool) { return true; };
    REQUIRE(resumed.pop(q.c, nd, q.segs, ok) == pop_status::ok);
    CHECK(nd == 2);
    std::uint16_t nd2 = 0;
    REQUIRE(resumed.pop(q.c, nd2, q.segs, ok) == pop_status::ok);
    CHECK(q.c.head == third);
    CHECK((resumed.last_avail().index == 1 && resumed.last_avail().wrap));
    resumed.unpop(3u); // both back, across the lap
    CHECK((resumed.last_avail().index == 3 && !resumed.last_avail().wrap));
    REQUIRE(resumed.pop(q.c, nd, q.segs, ok) == pop_status::ok);
    REQUIRE(resumed.pop(q.c, nd2, q.segs, ok) == pop_status::ok);
    CHECK(q.c.head == third);
    CHECK(resumed.pop(q.c, nd2, q.segs, ok) == pop_status::empty);
    // notification suppression: the device's area, read by the driver's publish()
    CHECK_FALSE(resumed.enable_notify(false));
    CHECK(q.dev_event.flags == ring_event_disable);
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    CHECK_FALSE(q.drv.publish());
    CHECK(resumed.enable_notify(true)); // a buffer already waits
    CHECK(q.dev_event.flags == ring_event_enable);
}

TEST_CASE("packed drain_in_flight: what is left comes back in the order it was made available") {
    // Buffers completed out of order free ids that later adds take again (a stack of free
    // ids): id order is not submission order, and the device's used descriptors overwrote
    // the ring positions of the first heads. The drain must still be oldest first (a
    // driver's detach hands TX frames back unsent in order).
    queue q(6);
    std::vector<std::uint16_t> order; // ids in the order they were made available
    const segment one{0x100, 64, false};
    const segment two[2] = {{0x200, 64, false}, {0x300, 64, false}};
    for (int i = 0; i < 4; ++i) {
        const std::int32_t id = q.drv.add({&one, 1});
        REQUIRE(id >= 0);
        order.push_back(static_cast<std::uint16_t>(id));
    }
    // The device takes three and marks the third and the second used, in that order.
    std::array<std::uint16_t, 3> head{}, nd{};
    for (std::size_t i = 0; i < 3; ++i) {
        REQUIRE(q.pop() == pop_status::ok);
        head[i] = q.c.head;
        nd[i] = q.ndesc;
    }
    q.dev.push_used(head[2], 0, nd[2]);
    q.dev.push_used(head[1], 0, nd[1]);
    used_chain u;
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    order.erase(order.begin() + 1, order.begin() + 3);
    // Two more, one of two descriptors, over the end of the ring: the freed ids again.
    for (const std::span<const segment> s :
         {std::span<const segment>(&one, 1), std::span<const segment>(two, 2)}) {
        const std::int32_t id = q.drv.add(s);
        REQUIRE(id >= 0);
        order.push_back(static_cast<std::uint16_t>(id));
    }
    CHECK(q.drv.in_flight() == 4);
    std::vector<std::uint16_t> left;
    q.drv.drain_in_flight([&](std::uint16_t id) { left.push_back(id); });
    CHECK(left == order);
    CHECK(q.drv.in_flight() == 0);
    CHECK(q.drv.free_descs() == 6);
}
