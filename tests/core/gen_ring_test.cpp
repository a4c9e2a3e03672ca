// npa::gen_producer / npa::gen_consumer: the shared cursor code of every descriptor ring
// whose ownership lives in the descriptor (vmxnet3 gen bit, Intel DD bit, virtio packed
// AVAIL/USED). Single-threaded here; gen_ring_stress_test.cpp runs the two sides on two
// threads.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <npa/endian.hpp>
#include <npa/ring/gen_ring.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace {

/// Shaped like vmxnet3's Vmxnet3_TxDesc: 64-bit address, then a dword with len:14 and
/// gen at bit 14 (vmxnet3_defs.h), then a dword of flags.
struct vmx_tx_desc {
    std::uint64_t addr;
    std::uint32_t dword2; // len:14, gen:1, ...
    std::uint32_t dword3;
};
static_assert(sizeof(vmx_tx_desc) == 16);
// The test descriptors hold host-order integers, so the traits say so (device layouts are
// little-endian: see the byte-order case at the end).
using vmx_tx_traits = npa::gen_bit_traits<vmx_tx_desc, 2, 14, std::endian::native>;

/// Shaped like vmxnet3's Vmxnet3_RxCompDesc: four dwords, gen at bit 31 of the last.
struct vmx_rx_comp {
    std::uint32_t dword[4];
};
using vmx_comp_traits = npa::gen_bit_traits<vmx_rx_comp, 3, 31, std::endian::native>;

/// Shaped like an Intel advanced RX write-back descriptor (82599 datasheet 7.1.6.2):
/// the status/error dword at byte 8 carries DD in bit 0.
struct intel_rx_wb {
    std::uint64_t lower;
    std::uint32_t status_error;
    std::uint16_t length;
    std::uint16_t vlan;
};
using intel_dd_traits = npa::done_bit_traits<intel_rx_wb, 2, 0, std::endian::native>;

/// virtio 1.1 packed ring, driver to device (spec 2.8.1): flags is the top half of the
/// last dword; a descriptor is available when AVAIL (flag bit 7) equals the driver's wrap
/// counter and USED (flag bit 15) does not. Little-endian, as virtio 1.x defines it: the
/// masks are in stored order, as every gen_ring traits type keeps them.
struct packed_desc {
    npa::le64 addr;
    npa::le32 len;
    npa::le16 id;
    npa::le16 flags;
};
struct packed_avail_traits {
    using desc_type = packed_desc;
    static constexpr std::uint32_t avail = npa::to_le32(1u << (16 + 7));
    static constexpr std::uint32_t used = npa::to_le32(1u << (16 + 15));
    static std::uint32_t& own_word(packed_desc& d) noexcept {
        return reinterpret_cast<std::uint32_t*>(&d)[3];
    }
    static constexpr std::uint32_t own_mask = avail | used;
    static constexpr std::uint32_t own_bits(bool wrap) noexcept { return wrap ? avail : used; }
};

static_assert(npa::gen_desc_traits<vmx_tx_traits>);
static_assert(npa::gen_desc_traits<vmx_comp_traits>);
static_assert(npa::gen_desc_traits<intel_dd_traits>);
static_assert(npa::gen_desc_traits<packed_avail_traits>);

vmx_tx_desc make_tx(std::uint64_t seq) {
    return {seq * 4096, static_cast<std::uint32_t>(seq & 0x3fff), static_cast<std::uint32_t>(~seq)};
}

template <class Tr>
std::uint32_t own_of(typename Tr::desc_type& d) {
    return Tr::own_word(d) & Tr::own_mask;
}

} // namespace

TEST_CASE("gen ring: a zeroed ring with initial gen 1 has nothing ready (VMXNET3_INIT_GEN)") {
    std::vector<vmx_tx_desc> ring(32, vmx_tx_desc{});
    npa::gen_consumer<vmx_tx_traits> cons(ring.data(), 32);
    CHECK(cons.gen());
    CHECK(cons.next_to_clean() == 0);
    CHECK_FALSE(cons.ready());
    vmx_tx_desc out = make_tx(77);
    CHECK_FALSE(cons.poll(out));
    CHECK(out.addr == make_tx(77).addr); // a failed poll touches nothing
    CHECK(cons.next_to_clean() == 0);
}

TEST_CASE("gen ring: producer and consumer agree across many wraps of non-power-of-two rings") {
    for (const std::uint32_t size : {1u, 7u, 32u, 100u, 509u}) {
        CAPTURE(size);
        std::vector<vmx_tx_desc> ring(size, vmx_tx_desc{});
        npa::gen_producer<vmx_tx_traits> prod(ring.data(), size);
        npa::gen_consumer<vmx_tx_traits> cons(ring.data(), size);
        npa_test::rng g(size);
        std::uint64_t produced = 0;
        std::uint64_t consumed = 0;
        const std::uint64_t target = std::uint64_t{size} * 40 + 3; // 40 laps and a bit
        while (consumed < target) {
            const auto in_flight = static_cast<std::uint32_t>(produced - consumed);
            const std::uint32_t k = g.range(0, size - in_flight);
            for (std::uint32_t i = 0; i < k; ++i) {
                prod.produce(make_tx(produced++));
            }
            // Cursor state is a pure function of the count: index = count mod size and
            // the generation flips once per lap, starting from 1.
            REQUIRE(prod.next_to_fill() == produced % size);
            REQUIRE(prod.gen() == ((produced / size) % 2 == 0));

            const auto avail = static_cast<std::uint32_t>(produced - consumed);
            const std::uint32_t m = g.range(0, avail);
            for (std::uint32_t i = 0; i < m; ++i) {
                REQUIRE(cons.ready());
                vmx_tx_desc d{};
                REQUIRE(cons.poll(d));
                const vmx_tx_desc want = make_tx(consumed);
                CHECK(d.addr == want.addr);
                CHECK(d.dword3 == want.dword3);
                // The other bits of the ownership dword (len) travel with it.
                CHECK((d.dword2 & 0x3fffu) == (want.dword2 & 0x3fffu));
                // The snapshot carries the generation of the lap it was written in.
                CHECK(((d.dword2 >> 14) & 1u) == ((consumed / size) % 2 == 0 ? 1u : 0u));
                ++consumed;
            }
            REQUIRE(cons.next_to_clean() == consumed % size);
            REQUIRE(cons.gen() == ((consumed / size) % 2 == 0));
            if (consumed == produced) {
                vmx_tx_desc d{};
                REQUIRE_FALSE(cons.ready());
                REQUIRE_FALSE(cons.poll(d));
            }
        }
    }
}

TEST_CASE("gen ring: produce_burst and poll_burst move partial bursts across the wrap in order") {
    constexpr std::uint32_t size = 13;  // bursts straddle the wrap at different offsets
    std::vector<vmx_tx_desc> ring(size, vmx_tx_desc{});
    npa::gen_producer<vmx_tx_traits> prod(ring.data(), size);
    npa::gen_consumer<vmx_tx_traits> cons(ring.data(), size);
    npa_test::rng g(17);
    std::uint64_t produced = 0, consumed = 0;
    std::vector<vmx_tx_desc> in, out(size + 4);
    while (consumed < std::uint64_t{size} * 50) {
        const auto free = static_cast<std::uint32_t>(size - (produced - consumed));
        in.clear();
        for (std::uint32_t i = g.range(0, free); i != 0; --i) {
            in.push_back(make_tx(produced++));
        }
        prod.produce_burst(in);
        REQUIRE(prod.next_to_fill() == produced % size);
        // Ask for more than is there (up to size + 4): the burst stops at the first slot
        // the producer has not handed over, and reports exactly what it copied.
        const std::uint32_t want = g.range(0, size + 4);
        const std::uint32_t got = cons.poll_burst(std::span(out).first(want));
        REQUIRE(got == std::min<std::uint64_t>(want, produced - consumed));
        for (std::uint32_t i = 0; i < got; ++i) {
            const vmx_tx_desc expect = make_tx(consumed);
            CHECK(out[i].addr == expect.addr);
            CHECK(out[i].dword3 == expect.dword3);
            CHECK(((out[i].dword2 >> 14) & 1u) == ((consumed / size) % 2 == 0 ? 1u : 0u));
            ++consumed;
        }
        REQUIRE(cons.next_to_clean() == consumed % size);
    }
    // Drained: an empty burst is 0 and leaves the cursor where it was.
    while (consumed < produced) {
        consumed += cons.poll_burst(out);
    }
    CHECK(cons.poll_burst(out) == 0);
    CHECK(cons.poll_burst(std::span<vmx_tx_desc>{}) == 0);
    CHECK(cons.next_to_clean() == produced % size);
}

TEST_CASE("gen ring: a full ring on the next lap is not mistaken for an empty one") {
    constexpr std::uint32_t size = 5;
    std::vector<vmx_rx_comp> ring(size, vmx_rx_comp{});
    npa::gen_producer<vmx_comp_traits> prod(ring.data(), size);
    npa::gen_consumer<vmx_comp_traits> cons(ring.data(), size);
    // Lap 1: fill and drain. Lap 2: fill; every slot now carries gen 0, which is exactly
    // what the consumer (now on gen 0) expects, and nothing else.
    for (std::uint32_t lap = 0; lap < 2; ++lap) {
        for (std::uint32_t i = 0; i < size; ++i) {
            prod.produce(vmx_rx_comp{{lap, i, 0, 0}});
        }
        for (std::uint32_t i = 0; i < size; ++i) {
            vmx_rx_comp c{};
            REQUIRE(cons.poll(c));
            CHECK(c.dword[0] == lap);
            CHECK(c.dword[1] == i);
            CHECK((c.dword[3] >> 31) == (lap == 0 ? 1u : 0u));
        }
        vmx_rx_comp c{};
        CHECK_FALSE(cons.poll(c)); // the stale slot of the previous lap is not taken
    }
}

TEST_CASE("gen ring: produce() replaces the caller's ownership bits with the lap's") {
    std::vector<vmx_tx_desc> ring(3, vmx_tx_desc{});
    npa::gen_producer<vmx_tx_traits> prod(ring.data(), 3);
    vmx_tx_desc d = make_tx(5);
    d.dword2 &= ~(1u << 14); // caller says gen 0 on a gen-1 lap: ignored
    prod.produce(d);
    CHECK(own_of<vmx_tx_traits>(ring[0]) == (1u << 14));
    CHECK((ring[0].dword2 & 0x3fffu) == 5u);
    d.dword2 |= 1u << 14;
    prod.produce(d);
    prod.produce(d);
    CHECK(prod.gen() == false);
    prod.produce(d); // gen-0 lap: the bit is cleared although the caller set it
    CHECK(own_of<vmx_tx_traits>(ring[0]) == 0u);
    CHECK(ring[0].addr == d.addr);
}

TEST_CASE("gen ring: the consumer takes one snapshot and never looks before ownership") {
    std::vector<vmx_tx_desc> ring(4, vmx_tx_desc{});
    npa::gen_producer<vmx_tx_traits> prod(ring.data(), 4);
    npa::gen_consumer<vmx_tx_traits> cons(ring.data(), 4);

    // A producer halfway through writing (body written, ownership not yet): the consumer
    // sees nothing and leaves its output alone.
    ring[0].addr = 0xdead;
    ring[0].dword3 = 0xbeef;
    vmx_tx_desc out = make_tx(1);
    CHECK_FALSE(cons.poll(out));
    CHECK(out.addr == make_tx(1).addr);

    prod.produce(make_tx(9));
    REQUIRE(cons.poll(out));
    CHECK(out.addr == make_tx(9).addr);
    CHECK(out.dword3 == make_tx(9).dword3);
    CHECK(own_of<vmx_tx_traits>(out) == (1u << 14)); // the own word is part of the snapshot

    // The device rewriting the slot after the check changes nothing the caller holds
    // (no time-of-check/time-of-use window: callers validate the snapshot).
    ring[0].addr = 0xbad;
    ring[0].dword2 = 0x3fff | (1u << 14);
    CHECK(out.addr == make_tx(9).addr);
    CHECK((out.dword2 & 0x3fffu) == 9u);
}

TEST_CASE("gen ring: Intel DD-style done bit, recycled by the consumer") {
    constexpr std::uint32_t size = 6;
    std::vector<intel_rx_wb> ring(size, intel_rx_wb{});
    npa::gen_producer<intel_dd_traits> dev(ring.data(), size);   // device writes back
    npa::gen_consumer<intel_dd_traits> drv(ring.data(), size);   // driver reaps
    std::uint64_t next = 0;
    std::uint64_t expect = 0;
    for (int round = 0; round < 50; ++round) {
        const std::uint32_t k = 1 + static_cast<std::uint32_t>(round % static_cast<int>(size));
        for (std::uint32_t i = 0; i < k; ++i) {
            dev.produce(intel_rx_wb{next, 0, static_cast<std::uint16_t>(64 + next % 1000), 0});
            ++next;
        }
        for (std::uint32_t i = 0; i < k; ++i) {
            intel_rx_wb wb{};
            REQUIRE(drv.poll(wb));
            CHECK(wb.lower == expect);
            CHECK(wb.length == 64 + expect % 1000);
            CHECK((wb.status_error & 1u) == 1u); // DD whatever the lap
            // The driver recycles the slot: rewriting the descriptor clears DD, so the
            // next lap's stale write-back cannot be mistaken for a new one.
            const std::uint32_t slot =
                (drv.next_to_clean() + size - 1) % size; // the slot just reaped
            std::atomic_ref<std::uint32_t>(intel_dd_traits::own_word(ring[slot]))
                .store(0, std::memory_order_release);
            ++expect;
        }
        intel_rx_wb wb{};
        CHECK_FALSE(drv.poll(wb));
    }
    // Unlike the gen bit, DD does not flip with the lap.
    CHECK(intel_dd_traits::own_bits(true) == intel_dd_traits::own_bits(false));
}

TEST_CASE("gen ring: virtio packed AVAIL/USED pair with a wrap counter") {
    constexpr std::uint32_t size = 3;
    std::vector<packed_desc> ring(size, packed_desc{});
    npa::gen_producer<packed_avail_traits> drv(ring.data(), size);
    npa::gen_consumer<packed_avail_traits> dev(ring.data(), size);
    CHECK_FALSE(dev.ready()); // zeroed: AVAIL=0, USED=0 is nobody's on wrap 1
    for (std::uint16_t i = 0; i < 10; ++i) {
        drv.produce(packed_desc{i, 1500, i, 0});
        packed_desc d{};
        REQUIRE(dev.poll(d));
        CHECK(d.id == i);
        const bool wrap = (i / size) % 2 == 0;
        // spec 2.8.1: available means AVAIL == wrap counter and USED == !wrap counter.
        CHECK(((d.flags >> 7) & 1) == (wrap ? 1 : 0));
        CHECK(((d.flags >> 15) & 1) == (wrap ? 0 : 1));
        CHECK_FALSE(dev.poll(d));
    }
}

TEST_CASE("gen ring: reset() and an initial generation of 0 agree on both sides") {
    constexpr std::uint32_t size = 4;
    std::vector<vmx_tx_desc> ring(size);
    // With generation 0 first, "not yet written" must read as gen 1: fill with ones.
    std::memset(ring.data(), 0xff, size * sizeof(vmx_tx_desc));
    npa::gen_producer<vmx_tx_traits> prod;
    npa::gen_consumer<vmx_tx_traits> cons;
    prod.reset(ring.data(), size, false);
    cons.reset(ring.data(), size, false);
    CHECK(prod.size() == size);
    CHECK(cons.ring() == ring.data());
    CHECK_FALSE(cons.ready());
    for (std::uint64_t i = 0; i < 3 * size; ++i) {
        prod.produce(make_tx(i));
        vmx_tx_desc d{};
        REQUIRE(cons.poll(d));
        CHECK(d.addr == make_tx(i).addr);
    }
    CHECK(prod.gen() == true); // three laps from gen 0
    CHECK(cons.gen() == true);
    // advance() skips a slot without reading it.
    prod.produce(make_tx(100));
    prod.produce(make_tx(101));
    cons.advance();
    vmx_tx_desc d{};
    REQUIRE(cons.poll(d));
    CHECK(d.addr == make_tx(101).addr);
}

// Device descriptors are little-endian on every host: the default traits keep the ownership
// bit where the device looks for it, in the byte it defines, not in the host's bit 14.
struct le_tx_desc {
    npa::le64 addr;
    npa::le32 dword2;  // len:14 gen:1 ...
    npa::le32 dword3;
};
using le_tx_traits = npa::gen_bit_traits<le_tx_desc, 2, 14>;
using le_dd_traits = npa::done_bit_traits<le_tx_desc, 3, 0>;

TEST_CASE("gen ring: little-endian traits put ownership in the device's byte on any host") {
    std::vector<le_tx_desc> ring(32);
    std::memset(ring.data(), 0, ring.size() * sizeof(le_tx_desc));
    npa::gen_producer<le_tx_traits> prod(ring.data(), 32);
    le_tx_desc d{};
    d.addr = 0x0102030405060708ull;
    d.dword2 = 60;
    prod.produce(d);
    const auto* bytes = reinterpret_cast<const unsigned char*>(ring.data());
    // addr: least significant byte first.
    CHECK(bytes[0] == 0x08);
    CHECK(bytes[7] == 0x01);
    // dword2 = 60 | gen << 14: byte 8 holds 60, byte 9 holds bit 14 as 0x40.
    CHECK(bytes[8] == 60);
    CHECK(bytes[9] == 0x40);
    CHECK(bytes[10] == 0);
    CHECK(bytes[11] == 0);
    CHECK(ring[0].dword2 == (60u | 1u << 14));
    npa::gen_consumer<le_tx_traits> cons(ring.data(), 32);
    le_tx_desc out{};
    REQUIRE(cons.poll(out));
    CHECK(out.addr == 0x0102030405060708ull);
    // A device writing DD (bit 0 of word 3) as the byte 0x01 at offset 12 is seen done.
    npa::gen_consumer<le_dd_traits> dd(ring.data(), 32);
    CHECK_FALSE(dd.ready());
    reinterpret_cast<unsigned char*>(ring.data())[12] = 0x01;
    CHECK(dd.ready());
    CHECK(npa::from_le32(le_dd_traits::own_mask) == 1u);
}
