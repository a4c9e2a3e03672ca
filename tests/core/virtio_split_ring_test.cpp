// The split virtqueue core (npa/virtio/split_ring.hpp, split_device.hpp): layouts byte by
// byte, both sides against each other, 16-bit wrap, the event-idx rule, and the device's
// checks of hostile chains and the driver's checks of hostile used entries.
#include <doctest/doctest.h>

#include <npa/virtio/ring_driver.hpp>
#include <npa/virtio/split_device.hpp>
#include <npa/virtio/split_ring.hpp>

#include "virtio_tables.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

using namespace npa::virtio;

namespace {

struct queue {
    explicit queue(std::uint32_t n, bool event_idx = false, bool in_order = false,
                   bool batches = false)
        : mem(layout_of(n).total + 16), state(split_driver::state_words(n)) {
        // 16-byte aligned block inside mem
        auto p = reinterpret_cast<std::uintptr_t>(mem.data());
        block = mem.data() + ((16 - p % 16) % 16);
        ring = split_ring::in_block(block, n);
        REQUIRE(drv.reset(ring, state, event_idx, in_order, batches));
        REQUIRE(dev.reset(ring, event_idx));
    }
    std::vector<std::byte> mem;
    std::byte* block = nullptr;
    std::vector<std::uint16_t> state;
    split_ring ring;
    split_driver drv;
    split_device dev;
    std::array<segment, 8> segs{};
    chain c{};

    pop_status pop() {
        return dev.pop(c, segs, [](std::uint64_t a, std::uint32_t, bool) { return a < 0x100000; });
    }
    std::uint8_t byte_at(std::size_t off) const { return static_cast<std::uint8_t>(block[off]); }
};

} // namespace

TEST_CASE("layouts are the specification's, byte by byte") {
    CHECK(sizeof(virtq_desc) == 16);
    CHECK(layout_of(4).avail == 64);
    CHECK(layout_of(4).used == 64 + 16); // 6 + 8 = 14, up to 16
    CHECK(layout_of(4).total == 80 + 6 + 32);
    CHECK(avail_bytes(4) == 14);
    CHECK(used_bytes(4) == 38);
    CHECK(queue_size_ok(1));
    CHECK(queue_size_ok(32768));
    CHECK_FALSE(queue_size_ok(0));
    CHECK_FALSE(queue_size_ok(48));
    CHECK_FALSE(queue_size_ok(65536));

    queue q(4);
    const segment s[2] = {{0x1122334455667788ull, 0x0A0B0C0D, false}, {0x1000, 60, true}};
    const std::int32_t head = q.drv.add(s);
    REQUIRE(head == 0);
    (void)q.drv.publish();
    // descriptor 0: addr le64, len le32, flags le16 (NEXT), next le16 (1)
    const std::uint8_t d0[16] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                                 0x0D, 0x0C, 0x0B, 0x0A, 0x01, 0x00, 0x01, 0x00};
    for (int i = 0; i < 16; ++i) {
        CHECK(q.byte_at(i) == d0[i]);
    }
    CHECK(q.byte_at(16 + 12) == 0x02); // descriptor 1: WRITE, no NEXT
    // available ring: flags 0, idx 1, ring[0] = 0
    CHECK(q.byte_at(64 + 2) == 1);
    CHECK(q.byte_at(64 + 3) == 0);
    // device pushes used {id 0, len 0x0102}
    REQUIRE(q.dev.pop(q.c, q.segs, [](std::uint64_t, std::uint32_t, bool) { return true; }) ==
            pop_status::ok);
    CHECK(q.segs[0].addr == 0x1122334455667788ull);
    q.dev.push_used(0, 0x0102);
    q.dev.publish_used();
    CHECK(q.byte_at(80 + 2) == 1);     // used idx
    CHECK(q.byte_at(80 + 4) == 0);     // id
    CHECK(q.byte_at(80 + 8) == 0x02);  // len, little-endian
    CHECK(q.byte_at(80 + 9) == 0x01);
}

TEST_CASE("a chain goes over and comes back: segments, lengths, flags") {
    queue q(8);
    const segment s[3] = {{0x100, 12, false}, {0x200, 100, false}, {0x400, 1500, true}};
    const std::int32_t head = q.drv.add(s);
    REQUIRE(head >= 0);
    CHECK(q.drv.free_descs() == 5);
    CHECK(q.drv.publish()); // no suppression: notify
    REQUIRE(q.pop() == pop_status::ok);
    CHECK(q.c.head == head);
    CHECK(q.c.segments == 3);
    CHECK(q.c.readable == 2);
    CHECK(q.c.read_len == 112);
    CHECK(q.c.write_len == 1500);
    CHECK(q.segs[2].addr == 0x400);
    CHECK(q.segs[2].write);
    CHECK(q.pop() == pop_status::empty);
    q.dev.push_used(q.c.head, 60);
    q.dev.publish_used();
    CHECK(q.dev.need_interrupt());
    used_chain u;
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK(u.id == head);
    CHECK(u.len == 60);
    CHECK(q.drv.free_descs() == 8);
    CHECK(q.drv.in_flight() == 0);
    CHECK(q.drv.poll_used(u) == used_status::empty);
}

TEST_CASE("16-bit indexes wrap: 70,000 chains through a queue of 4") {
    queue q(4);
    used_chain u;
    for (std::uint32_t i = 0; i < 70000; ++i) {
        const segment s{0x1000 + i % 16, 64, (i & 1) != 0};
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        (void)q.drv.publish();
        REQUIRE(q.pop() == pop_status::ok);
        REQUIRE(q.segs[0].addr == s.addr);
        q.dev.push_used(q.c.head, i);
        q.dev.publish_used();
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        REQUIRE(u.len == i);
    }
    CHECK(q.dev.last_avail() == static_cast<std::uint16_t>(70000));
    CHECK(q.ring.used()->idx.get() == static_cast<std::uint16_t>(70000));
    CHECK(q.dev.errors() == 0);
    CHECK(q.drv.stats().bad_used_id == 0);
}

TEST_CASE("ORDER_PLATFORM: the platform's barriers, chosen from the features, move chains as before") {
    CHECK(ordering_of(feature::VERSION_1) == ordering::smp);
    CHECK(ordering_of(feature::VERSION_1 | feature::ORDER_PLATFORM) == ordering::platform);
    queue q(8, /*event_idx=*/true);
    CHECK(q.drv.order() == ordering::smp); // a fresh driver: the default, SMP barriers
    q.drv.set_ordering(ordering::platform);
    REQUIRE(q.drv.reset(q.ring, q.state, true));
    CHECK(q.drv.order() == ordering::platform); // kept across reset()
    used_chain u;
    std::uint32_t kicks = 0;
    for (std::uint32_t i = 0; i < 1000; ++i) {
        const segment s{0x2000 + i % 16, 128, true};
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        kicks += q.drv.publish() ? 1 : 0; // wmb, then the store-load barrier
        REQUIRE(q.pop() == pop_status::ok);
        q.dev.push_used(q.c.head, i);
        q.dev.publish_used();
        REQUIRE(q.drv.poll_used(u) == used_status::ok); // rmb after used->idx
        CHECK(u.len == i);
        CHECK_FALSE(q.drv.enable_interrupts()); // the store-load barrier, nothing waiting
        (void)q.dev.enable_notify(true);
    }
    CHECK(kicks > 0);
    CHECK(q.dev.errors() == 0);
    ring_driver r;
    r.set_ordering(ordering::platform);
    CHECK(r.split.order() == ordering::platform);
    CHECK(r.packed.order() == ordering::platform);
    r.clear();
    CHECK(r.split.order() == ordering::smp);
}

TEST_CASE("a full queue refuses the next chain and leaves it with the caller") {
    queue q(4);
    const segment s[2] = {{0x100, 10, false}, {0x200, 10, false}};
    CHECK(q.drv.add(s) >= 0);
    CHECK(q.drv.add(s) >= 0);
    CHECK(q.drv.add({s, 1}) == -1);
    CHECK(q.drv.in_flight() == 2);
}

TEST_CASE("vring_need_event: the rule of 2.7.10, across the wrap") {
    CHECK(need_event(5, 6, 5));
    CHECK_FALSE(need_event(6, 6, 5));
    CHECK(need_event(5, 10, 0));
    CHECK_FALSE(need_event(10, 10, 0));
    CHECK(need_event(0xFFFE, 2, 0xFFF0));  // event idx passed across the wrap
    CHECK_FALSE(need_event(3, 2, 0xFFF0)); // not yet reached
}

TEST_CASE("event idx: the driver notifies only when avail passes avail_event") {
    queue q(8, /*event_idx=*/true);
    const segment s{0x100, 64, false};
    q.ring.avail_event() = 1; // the device wants a kick once avail->idx passes 1
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    CHECK_FALSE(q.drv.publish()); // idx 0 -> 1: event 1 not passed
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    CHECK(q.drv.publish()); // 1 -> 2 passes 1
    // device side: used_event
    q.ring.used_event() = 0;
    REQUIRE(q.pop() == pop_status::ok);
    q.dev.push_used(q.c.head, 0);
    q.dev.publish_used();
    CHECK(q.dev.need_interrupt()); // 0 -> 1 passes 0
    REQUIRE(q.pop() == pop_status::ok);
    q.dev.push_used(q.c.head, 0);
    q.dev.publish_used();
    CHECK_FALSE(q.dev.need_interrupt()); // 1 -> 2: used_event still 0
    // the driver re-enables: used_event = last_used, entries already waiting
    used_chain u;
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK(q.drv.enable_interrupts()); // one more is waiting
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK_FALSE(q.drv.enable_interrupts());
    CHECK(q.ring.used_event().get() == 2);
}

TEST_CASE("flags suppression without event idx") {
    queue q(8);
    const segment s{0x100, 64, false};
    (void)q.dev.enable_notify(false);
    REQUIRE(q.drv.add({&s, 1}) >= 0);
    CHECK_FALSE(q.drv.publish()); // NO_NOTIFY
    CHECK(q.dev.enable_notify(true)); // one is waiting
    q.drv.disable_interrupts();
    REQUIRE(q.pop() == pop_status::ok);
    q.dev.push_used(q.c.head, 0);
    q.dev.publish_used();
    CHECK_FALSE(q.dev.need_interrupt()); // NO_INTERRUPT
}

TEST_CASE("hostile chains are refused and counted, never followed") {
    SUBCASE("head index out of range") {
        queue q(4);
        const segment s{0x100, 64, false};
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        q.ring.avail_ring(0) = 9;
        (void)q.drv.publish();
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::head_range) == 1);
    }
    SUBCASE("next beyond the table") {
        queue q(4);
        const segment s[2] = {{0x100, 64, false}, {0x200, 64, false}};
        REQUIRE(q.drv.add(s) >= 0);
        q.ring.desc()[0].next = 4;
        (void)q.drv.publish();
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::next_range) == 1);
        CHECK(q.c.head == 0); // the head is known: the device can give it back
    }
    SUBCASE("a loop") {
        queue q(4);
        const segment s[2] = {{0x100, 64, false}, {0x200, 64, false}};
        REQUIRE(q.drv.add(s) >= 0);
        q.ring.desc()[1].flags = desc_f_next;
        q.ring.desc()[1].next = 0;
        (void)q.drv.publish();
        std::array<segment, 64> many{};
        CHECK(q.dev.pop(q.c, many, [](std::uint64_t, std::uint32_t, bool) { return true; }) ==
              pop_status::refused);
        CHECK(q.dev.errors(chain_error::loop) == 1);
    }
    SUBCASE("more segments than the device takes") {
        queue q(16);
        std::array<segment, 10> s{};
        for (auto& x : s) {
            x = {0x100, 8, false};
        }
        REQUIRE(q.drv.add(s) >= 0);
        (void)q.drv.publish();
        CHECK(q.pop() == pop_status::refused); // q.segs holds 8
        CHECK(q.dev.errors(chain_error::too_long) == 1);
    }
    SUBCASE("length overflow") {
        queue q(4);
        const segment s[2] = {{0x100, 0xFFFFFFF0u, true}, {0x200, 0x20, true}};
        REQUIRE(q.drv.add(s) >= 0);
        (void)q.drv.publish();
        std::array<segment, 4> segs{};
        CHECK(q.dev.pop(q.c, segs, [](std::uint64_t, std::uint32_t, bool) { return true; }) ==
              pop_status::refused);
        CHECK(q.dev.errors(chain_error::length_overflow) == 1);
    }
    SUBCASE("address outside driver memory") {
        queue q(4);
        const segment s{0x7000000, 64, false};
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        (void)q.drv.publish();
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::bad_address) == 1);
    }
    SUBCASE("indirect, readable after writable") {
        queue q(4);
        const segment s[2] = {{0x100, 64, true}, {0x200, 64, false}};
        REQUIRE(q.drv.add(s) >= 0);
        const segment t{0x300, 64, false};
        REQUIRE(q.drv.add({&t, 1}) >= 0);
        q.ring.desc()[2].flags = desc_f_indirect;
        (void)q.drv.publish();
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::read_after_write) == 1);
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::indirect) == 1);
    }
    SUBCASE("avail idx more than N ahead") {
        queue q(4);
        q.ring.avail()->idx = 5;
        CHECK(q.pop() == pop_status::broken);
        CHECK(q.dev.errors(chain_error::avail_idx) == 1);
        CHECK(q.dev.last_avail() == 0); // nothing taken
    }
    SUBCASE("avail idx loaded once a burst: what it showed is taken, a later impossible one caught") {
        queue q(8);
        for (std::uint64_t a : {0x100u, 0x200u, 0x300u}) {
            const segment s{a, 64, false};
            REQUIRE(q.drv.add({&s, 1}) >= 0);
        }
        (void)q.drv.publish();
        REQUIRE(q.pop() == pop_status::ok); // loads idx: 3 chains
        CHECK(q.segs[0].addr == 0x100);
        q.ring.avail()->idx = 200; // a hostile driver, after the load
        REQUIRE(q.pop() == pop_status::ok); // the chains the load showed are still taken
        CHECK(q.segs[0].addr == 0x200);
        REQUIRE(q.pop() == pop_status::ok);
        CHECK(q.segs[0].addr == 0x300);
        CHECK(q.dev.errors() == 0);
        CHECK(q.pop() == pop_status::broken); // the next load sees it
        CHECK(q.dev.errors(chain_error::avail_idx) == 1);
        CHECK(q.dev.last_avail() == 3);
    }
    SUBCASE("unpop after the load: the chains given back are taken again without a new one") {
        queue q(8);
        for (std::uint64_t a : {0x100u, 0x200u}) {
            const segment s{a, 64, true};
            REQUIRE(q.drv.add({&s, 1}) >= 0);
        }
        (void)q.drv.publish();
        REQUIRE(q.pop() == pop_status::ok);
        REQUIRE(q.pop() == pop_status::ok);
        q.dev.unpop(2);
        q.ring.avail()->idx = 0; // moved back: the device keeps what the driver made available
        REQUIRE(q.pop() == pop_status::ok);
        CHECK(q.segs[0].addr == 0x100);
        REQUIRE(q.pop() == pop_status::ok);
        CHECK(q.segs[0].addr == 0x200);
        CHECK(q.pop() == pop_status::broken); // the next load: 0 is 65534 ahead of 2
        CHECK(q.dev.errors(chain_error::avail_idx) == 1);
    }
}

namespace {
// A split queue whose device negotiated INDIRECT_DESC, with driver memory for tables.
struct indirect_queue : queue {
    explicit indirect_queue(std::uint32_t n = 8) : queue(n) { REQUIRE(dev.reset(ring, false, 0, true)); }
    test::driver_tables t;
    /// Makes a chain of one ring descriptor naming the table at `off` (`len` bytes) available,
    /// with `extra` flags beside INDIRECT; returns its head.
    std::int32_t add_table(std::size_t off, std::uint32_t len, std::uint16_t extra = 0) {
        const segment s{test::driver_tables::gpa(off), len, false};
        const std::int32_t head = drv.add({&s, 1});
        REQUIRE(head >= 0);
        ring.desc()[head].flags = static_cast<std::uint16_t>(desc_f_indirect | extra);
        (void)drv.publish();
        return head;
    }
    pop_status pop_t(std::span<segment> into) {
        return dev.pop(c, into, [](std::uint64_t a, std::uint32_t, bool) { return a < 0x100000; }, t.reader());
    }
    pop_status pop_t() { return pop_t(segs); }
};
} // namespace

TEST_CASE("indirect: a table walked as the chain, in next order, read where it lies") {
    indirect_queue q;
    // Three entries linked 0 -> 2 -> 1 at an offset that is not 16-byte aligned: a header
    // and a frame readable, a buffer writable (2.7.5.3.2).
    const std::size_t off = 4;
    q.t.put(off, 0, 0x1000, 12, desc_f_next, 2);
    q.t.put(off, 2, 0x2000, 64, desc_f_next, 1);
    q.t.put(off, 1, 0x3000, 100, desc_f_write, 0);
    // WRITE on the ring descriptor naming the table is ignored (2.7.5.3.2)
    const std::int32_t head = q.add_table(off, 48, desc_f_write);
    REQUIRE(q.pop_t() == pop_status::ok);
    CHECK(q.c.head == head);
    CHECK(q.c.indirect);
    CHECK(q.c.segments == 3);
    CHECK(q.c.readable == 2);
    CHECK(q.c.read_len == 76);
    CHECK(q.c.write_len == 100);
    CHECK((q.segs[0].addr == 0x1000 && q.segs[1].addr == 0x2000 && q.segs[2].addr == 0x3000));
    CHECK(q.segs[2].write);
    CHECK(q.dev.indirect_chains() == 1);
    CHECK(q.dev.errors() == 0);
    q.dev.push_used(q.c.head, 100);
    q.dev.publish_used();
    used_chain u;
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK((u.id == head && u.len == 100));

    // A table of exactly N entries is the largest (a chain no longer than the queue, as
    // DPDK's vhost library allows), all of them in order
    for (std::uint16_t i = 0; i < 8; ++i) {
        q.t.put(256, i, 0x4000 + i, 8, i + 1 < 8 ? desc_f_next : 0, static_cast<std::uint16_t>(i + 1));
    }
    (void)q.add_table(256, 8 * 16);
    REQUIRE(q.pop_t() == pop_status::ok);
    CHECK(q.c.segments == 8);
    CHECK(q.segs[7].addr == 0x4007);
    // A direct chain after them is walked as before.
    const segment d{0x5000, 64, false};
    REQUIRE(q.drv.add({&d, 1}) >= 0);
    (void)q.drv.publish();
    REQUIRE(q.pop_t() == pop_status::ok);
    CHECK_FALSE(q.c.indirect);
    CHECK(q.dev.indirect_chains() == 2);
}

TEST_CASE("indirect: every hostile table is refused by cause, taken off the ring, never followed") {
    SUBCASE("not negotiated: refused before the table is looked at") {
        indirect_queue q;
        REQUIRE(q.dev.reset(q.ring, false, 0, false));
        q.t.put(0, 0, 0x1000, 64, 0);
        const std::int32_t head = q.add_table(0, 16);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::indirect) == 1);
        CHECK(q.c.head == head);
        CHECK(q.t.reads == 0);
    }
    SUBCASE("the plain pop() reads no table: refused as outside driver memory") {
        indirect_queue q;
        q.t.put(0, 0, 0x1000, 64, 0);
        (void)q.add_table(0, 16);
        CHECK(q.pop() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::bad_address) == 1);
    }
    SUBCASE("INDIRECT with NEXT (2.7.5.3.1), and after a direct descriptor") {
        indirect_queue q;
        q.t.put(0, 0, 0x1000, 64, 0);
        (void)q.add_table(0, 16, desc_f_next);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::indirect_next) == 1);
        const segment s[2] = {{0x100, 8, false}, {test::driver_tables::gpa(0), 16, false}};
        const std::int32_t h = q.drv.add(s);
        REQUIRE(h >= 0);
        const std::uint16_t second = q.ring.desc()[h].next;
        q.ring.desc()[second].flags = desc_f_indirect;
        (void)q.drv.publish();
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::indirect_next) == 2);
        CHECK(q.t.reads == 0);
    }
    SUBCASE("lengths: 0, not a multiple of 16, more entries than the queue") {
        indirect_queue q;
        for (std::uint16_t i = 0; i < 9; ++i) {
            q.t.put(0, i, 0x1000, 8, desc_f_next, static_cast<std::uint16_t>(i + 1));
        }
        (void)q.add_table(0, 0);
        (void)q.add_table(0, 24);
        (void)q.add_table(0, 9 * 16);
        for (int i = 0; i < 3; ++i) {
            CHECK(q.pop_t() == pop_status::refused);
        }
        CHECK(q.dev.errors(chain_error::indirect_len) == 3);
        CHECK(q.t.reads == 0);
    }
    SUBCASE("a table outside driver memory, or running past its end") {
        indirect_queue q;
        const segment s{0x7000000, 16, false};
        const std::int32_t h = q.drv.add({&s, 1});
        q.ring.desc()[h].flags = desc_f_indirect;
        (void)q.drv.publish();
        (void)q.add_table(4096 - 16, 32);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::bad_address) == 2);
    }
    SUBCASE("INDIRECT inside a table") {
        indirect_queue q;
        q.t.put(0, 0, 0x1000, 8, desc_f_next, 1);
        q.t.put(0, 1, test::driver_tables::gpa(64), 16, desc_f_indirect);
        (void)q.add_table(0, 32);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::indirect_nested) == 1);
    }
    SUBCASE("next at or past the table's entry count") {
        indirect_queue q;
        q.t.put(0, 0, 0x1000, 8, desc_f_next, 2); // a table of 2: entry 2 is outside it
        q.t.put(0, 1, 0x1000, 8, 0);
        q.t.put(0, 2, 0x1000, 8, 0);
        (void)q.add_table(0, 32);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::next_range) == 1);
    }
    SUBCASE("a loop inside the table") {
        indirect_queue q;
        q.t.put(0, 0, 0x1000, 8, desc_f_next, 1);
        q.t.put(0, 1, 0x1000, 8, desc_f_next, 0);
        (void)q.add_table(0, 32);
        std::array<segment, 64> many{};
        CHECK(q.pop_t(many) == pop_status::refused);
        CHECK(q.dev.errors(chain_error::loop) == 1);
    }
    SUBCASE("entries checked as a chain's: segments, order, lengths, addresses") {
        indirect_queue q;
        for (std::uint16_t i = 0; i < 4; ++i) {
            q.t.put(0, i, 0x1000, 8, i + 1 < 4 ? desc_f_next : 0, static_cast<std::uint16_t>(i + 1));
        }
        q.t.put(64, 0, 0x1000, 8, desc_f_write | desc_f_next, 1);
        q.t.put(64, 1, 0x1000, 8, 0);
        q.t.put(128, 0, 0x1000, 0xFFFFFFF0u, desc_f_write | desc_f_next, 1);
        q.t.put(128, 1, 0x1000, 0x20, desc_f_write);
        q.t.put(192, 0, 0x7000000, 8, 0);
        (void)q.add_table(0, 64);
        (void)q.add_table(64, 32);
        (void)q.add_table(128, 32);
        (void)q.add_table(192, 16);
        std::array<segment, 3> three{};
        CHECK(q.pop_t(three) == pop_status::refused);
        CHECK(q.dev.errors(chain_error::too_long) == 1);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::read_after_write) == 1);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::length_overflow) == 1);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.dev.errors(chain_error::bad_address) == 1);
    }
    SUBCASE("a refused table is given back unused; the ring runs on") {
        indirect_queue q;
        q.t.put(0, 0, 0x1000, 8, desc_f_indirect);
        const std::int32_t bad = q.add_table(0, 16);
        q.t.put(64, 0, 0x2000, 64, desc_f_write);
        const std::int32_t good = q.add_table(64, 16);
        CHECK(q.pop_t() == pop_status::refused);
        CHECK(q.c.head == bad);
        q.dev.push_used(q.c.head, 0);
        REQUIRE(q.pop_t() == pop_status::ok);
        CHECK(q.c.head == good);
        q.dev.push_used(q.c.head, 64);
        q.dev.publish_used();
        used_chain u;
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK((u.id == bad && u.len == 0));
        REQUIRE(q.drv.poll_used(u) == used_status::ok);
        CHECK((u.id == good && u.len == 64));
        CHECK(q.drv.free_descs() == 8);
        CHECK(q.dev.indirect_chains() == 1);
    }
}

TEST_CASE("hostile used entries are refused and counted") {
    queue q(8);
    const segment s{0x100, 64, true};
    used_chain u;
    SUBCASE("id out of range") {
        REQUIRE(q.drv.add({&s, 1}) >= 0);
        q.ring.used_ring(0).id = 8;
        q.ring.used()->idx = 1;
        CHECK(q.drv.poll_used(u) == used_status::bad_id);
        CHECK(q.drv.stats().bad_used_id == 1);
        CHECK(q.drv.in_flight() == 1); // the chain is still the device's
    }
    SUBCASE("an id never handed over, and a double completion") {
        REQUIRE(q.drv.add({&s, 1}) == 0);
        q.ring.used_ring(0).id = 3;
        q.ring.used_ring(1).id = 0;
        q.ring.used_ring(2).id = 0;
        q.ring.used()->idx = 3;
        CHECK(q.drv.poll_used(u) == used_status::bad_id);
        CHECK(q.drv.poll_used(u) == used_status::ok);
        CHECK(q.drv.poll_used(u) == used_status::bad_id);
        CHECK(q.drv.stats().bad_used_id == 2);
    }
    SUBCASE("used idx more than N ahead") {
        q.ring.used()->idx = 9;
        CHECK(q.drv.poll_used(u) == used_status::broken);
        CHECK(q.drv.stats().bad_used_idx == 1);
    }
}

TEST_CASE("IN_ORDER: an entry that passes over older chains hands them back first") {
    // used->idx moved by that one entry, on a queue that takes batches or not; or by three,
    // on a queue that takes none: the same entry passes over the older chains. A batch of
    // three needs the index moved by three (2.7.9), so one that moved by one is no batch.
    struct way {
        std::uint16_t idx;
        bool batches;
    };
    for (const way w : {way{1, false}, way{3, false}, way{1, true}}) {
        const std::uint16_t idx = w.idx;
        CAPTURE(idx);
        CAPTURE(w.batches);
        queue q(8, false, /*in_order=*/true, w.batches);
        const segment s{0x100, 64, true};
        for (int i = 0; i < 3; ++i) {
            REQUIRE(q.drv.add({&s, 1}) == i); // ring order
        }
        q.ring.used_ring(0).id = 2;
        q.ring.used()->idx = idx;
        std::vector<std::uint16_t> passed;
        used_chain u;
        REQUIRE(q.drv.poll_used(u, [&](std::uint16_t h) { passed.push_back(h); }) == used_status::ok);
        CHECK(u.id == 2);
        CHECK_FALSE(u.whole);
        CHECK(passed == std::vector<std::uint16_t>{0, 1});
        CHECK(q.drv.stats().passed_over == 2);
        CHECK(q.drv.stats().batches == 0);
        CHECK(q.drv.in_flight() == 0);
        if (idx == 1) { // their own late entries are now stale
            q.ring.used_ring(1).id = 0;
            q.ring.used()->idx = 2;
            CHECK(q.drv.poll_used(u) == used_status::bad_id);
        }
    }
}

TEST_CASE("IN_ORDER: one used entry for a batch completes every chain up to it") {
    queue q(8, false, /*in_order=*/true, /*batches=*/true);
    const segment w{0x100, 64, true}, r{0x200, 60, false};
    REQUIRE(q.drv.add({&w, 1}) == 0);
    REQUIRE(q.drv.add({&r, 1}) == 1); // a readable chain: no bytes for the device to write
    REQUIRE(q.drv.add({&w, 1}) == 2);
    REQUIRE(q.drv.add({&w, 1}) == 3);
    // 2.7.9: the entry names the batch's last chain; the index moved by the batch (3).
    q.ring.used_ring(0).id = 2;
    q.ring.used_ring(0).len = 40;
    q.ring.used()->idx = 3;
    std::vector<std::uint16_t> passed;
    const auto on_passed = [&](std::uint16_t h) { passed.push_back(h); };
    used_chain u;
    REQUIRE(q.drv.poll_used(u, on_passed) == used_status::ok);
    CHECK(u.id == 0);
    CHECK(u.whole);     // an earlier chain of the batch: used completely (2.7.9),
    CHECK(u.len == 0);  // no length of the device's
    CHECK(q.drv.batch_pending() == 2);
    CHECK(q.drv.enable_interrupts()); // chains are waiting, though used->idx was read
    REQUIRE(q.drv.poll_used(u, on_passed) == used_status::ok);
    CHECK(u.id == 1);
    CHECK(u.len == 0);
    CHECK(u.whole);
    REQUIRE(q.drv.poll_used(u, on_passed) == used_status::ok);
    CHECK(u.id == 2);
    CHECK(u.len == 40); // the entry's own length
    CHECK_FALSE(u.whole);
    CHECK(q.drv.poll_used(u, on_passed) == used_status::empty);
    CHECK(passed.empty());
    CHECK(q.drv.stats().passed_over == 0);
    CHECK(q.drv.stats().batches == 1);
    CHECK(q.drv.in_flight() == 1);
    // The next entry is read where the batch ended (slot 3), not at slot 1.
    q.ring.used_ring(1).id = 7; // never written by a device that batched: must not be read
    q.ring.used_ring(3).id = 3;
    q.ring.used_ring(3).len = 64;
    q.ring.used()->idx = 4;
    REQUIRE(q.drv.poll_used(u, on_passed) == used_status::ok);
    CHECK(u.id == 3);
    CHECK(q.drv.stats().bad_used_id == 0);
    CHECK(q.drv.free_descs() == 8);
}

TEST_CASE("out of order without IN_ORDER is legal, and drain returns what is left") {
    queue q(8);
    const segment s{0x100, 64, true};
    for (int i = 0; i < 4; ++i) {
        REQUIRE(q.drv.add({&s, 1}) >= 0);
    }
    q.ring.used_ring(0).id = 2;
    q.ring.used()->idx = 1;
    used_chain u;
    REQUIRE(q.drv.poll_used(u) == used_status::ok);
    CHECK(u.id == 2);
    CHECK(q.drv.stats().passed_over == 0);
    std::vector<std::uint16_t> left;
    q.drv.drain_in_flight([&](std::uint16_t h) { left.push_back(h); });
    CHECK(left == std::vector<std::uint16_t>{0, 1, 3});
    CHECK(q.drv.free_descs() == 8);
}

namespace {

// What a driver made of the used ring: each chain back (C), passed over (P), each refused
// entry (B), a broken index (X), in the order they came.
struct reaped {
    std::vector<std::pair<char, std::uint16_t>> events;
    bool operator==(const reaped&) const = default;
};

void drain_one_by_one(split_driver& d, reaped& r) {
    for (;;) {
        used_chain u;
        const used_status st = d.poll_used(u, [&](std::uint16_t h) { r.events.emplace_back('P', h); });
        if (st == used_status::ok) {
            r.events.emplace_back('C', u.id);
        } else if (st == used_status::bad_id) {
            r.events.emplace_back('B', 0);
        } else {
            if (st == used_status::broken) {
                r.events.emplace_back('X', 0);
            }
            return;
        }
    }
}

void drain_in_bulk(split_driver& d, reaped& r, std::size_t chunk) {
    std::array<std::uint16_t, 8> heads{};
    for (;;) {
        std::uint32_t got = 0;
        const used_status st = d.poll_used_bulk(std::span(heads.data(), chunk), got,
                                                [&](std::uint16_t h) { r.events.emplace_back('P', h); });
        for (std::uint32_t i = 0; i < got; ++i) {
            r.events.emplace_back('C', heads[i]);
        }
        if (st == used_status::bad_id) {
            r.events.emplace_back('B', 0);
        } else if (st == used_status::broken) {
            r.events.emplace_back('X', 0);
            return;
        } else if (st == used_status::empty) {
            return;
        }
    }
}

} // namespace

TEST_CASE("poll_used_bulk takes what poll_used takes, in the same order, hostile entries too") {
    // Two drivers over two copies of the same device writes: one drained entry by entry,
    // one in bulk (chunks of 1, 3 and 8). Mostly the device completes in order (the bulk's
    // short way), now and then it names a later chain, a chain twice, an index past the
    // ring, or moves used->idx impossibly far: every event, count and free descriptor must
    // come out the same.
    for (const bool in_order : {false, true}) {
        for (const bool batches : {false, true}) {
            for (const std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{8}}) {
                CAPTURE(in_order);
                CAPTURE(batches);
                CAPTURE(chunk);
                queue a(16, false, in_order, batches), b(16, false, in_order, batches);
                std::uint32_t rng = 12345;
                auto next = [&](std::uint32_t m) {
                    rng = rng * 1103515245u + 12345u;
                    return (rng >> 8) % m;
                };
                std::uint16_t used_idx = 0;
                std::vector<std::uint16_t> live; // heads the device holds, oldest first
                reaped ra, rb;
                std::size_t seen = 0;
                for (int round = 0; round < 400; ++round) {
                    // the driver adds chains of 1..3 descriptors while it has room
                    const std::uint32_t adds = next(6);
                    for (std::uint32_t i = 0; i < adds; ++i) {
                        const std::uint32_t k = 1 + next(3);
                        std::array<segment, 3> segs{};
                        for (std::uint32_t j = 0; j < k; ++j) {
                            segs[j] = {0x1000u + j, 64, j + 1 == k};
                        }
                        const std::int32_t ha = a.drv.add(std::span(segs.data(), k));
                        const std::int32_t hb = b.drv.add(std::span(segs.data(), k));
                        REQUIRE(ha == hb);
                        if (ha >= 0) {
                            live.push_back(static_cast<std::uint16_t>(ha));
                        }
                    }
                    // the device writes 0..4 entries, mostly right
                    const std::uint32_t writes = next(5);
                    std::size_t pos = 0;
                    for (std::uint32_t i = 0; i < writes; ++i) {
                        std::uint32_t id;
                        const std::uint32_t kind = next(20);
                        if (kind == 0) {
                            id = 16 + next(4); // out of range
                        } else if (kind == 1 && live.size() > 1) {
                            id = live[1 + next(static_cast<std::uint32_t>(live.size() - 1))]; // a later chain
                        } else if (kind == 2) {
                            id = next(16); // anything: a chain twice, one never handed over
                        } else if (pos < live.size()) {
                            // the oldest not yet written, or now and then a batch's last
                            pos += next(8) == 0 ? next(3) : 0;
                            pos = pos < live.size() ? pos : live.size() - 1;
                            id = live[pos++];
                        } else {
                            continue;
                        }
                        for (queue* q : {&a, &b}) {
                            q->ring.used_ring(used_idx).id = id;
                            q->ring.used_ring(used_idx).len = 64;
                        }
                        ++used_idx;
                    }
                    const bool wild = next(100) == 0; // an index no device can have written
                    for (queue* q : {&a, &b}) {
                        q->ring.used()->idx = static_cast<std::uint16_t>(wild ? used_idx + 40 : used_idx);
                    }
                    drain_one_by_one(a.drv, ra);
                    drain_in_bulk(b.drv, rb, chunk);
                    REQUIRE(ra == rb);
                    REQUIRE(a.drv.free_descs() == b.drv.free_descs());
                    REQUIRE(a.drv.in_flight() == b.drv.in_flight());
                    if (wild) {
                        for (queue* q : {&a, &b}) {
                            q->ring.used()->idx = used_idx;
                        }
                    }
                    // what the drivers took back the device no longer holds
                    for (std::size_t e = seen; e < ra.events.size(); ++e) {
                        const auto [what, h] = ra.events[e];
                        if (what == 'C' || what == 'P') {
                            std::erase(live, h);
                        }
                    }
                    seen = ra.events.size();
                }
                CHECK(a.drv.stats().bad_used_id == b.drv.stats().bad_used_id);
                CHECK(a.drv.stats().bad_used_idx == b.drv.stats().bad_used_idx);
                CHECK(a.drv.stats().passed_over == b.drv.stats().passed_over);
                CHECK(a.drv.stats().batches == b.drv.stats().batches);
                CHECK(ra.events.size() > 400); // chains came back, and not only refusals
                CHECK(a.drv.stats().bad_used_id > 0);
                CHECK(a.drv.stats().bad_used_idx > 0);
            }
        }
    }
}
