// Two-thread stress of the generation-bit cursors: a producer thread (npa::gen_producer)
// and a consumer thread (npa::gen_consumer) on one shared descriptor array of a
// non-power-of-two size, NPA_STRESS_ITEMS (default 10 million) descriptors per ownership
// protocol. The consumer checks order, count, and that every snapshot is whole: the body
// and the other bits of the ownership word belong to the same descriptor, and the
// ownership bits to the lap it was written in.
//
// A generation ring carries no "free slots" count of its own: in a real driver the
// producer learns that slots are free from another channel (the completion ring, the
// device's head register). Here that channel is one atomic counter of consumed
// descriptors, published by the consumer with release and read by the producer with
// acquire, batched as a device would batch completions.
#include <doctest/doctest.h>

#include "stress_support.hpp"
#include "test_support.hpp"

#include <npa/ring/gen_ring.hpp>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

/// Shaped like vmxnet3's Vmxnet3_TxDesc: gen at bit 14 of dword 2, len in bits 0..13.
struct vmx_desc {
    std::uint64_t addr;
    std::uint32_t dword2;
    std::uint32_t dword3;
};
using vmx_traits = npa::gen_bit_traits<vmx_desc, 2, 14, std::endian::native>;  // host-order words
/// Intel DD style: "done" at bit 0 of dword 2, whatever the lap; the rest of dword 2
/// carries data as the write-back status/length would.
using dd_traits = npa::done_bit_traits<vmx_desc, 2, 0, std::endian::native>;

/// Consumed descriptors are published in batches of this many (a device writes
/// completions in batches too); also published whenever the consumer runs dry.
constexpr std::uint32_t credit_batch = 16;

vmx_desc make(std::uint64_t seq) noexcept {
    // dword2: bit 0 and bit 14 are the ownership bits of the two protocols; the payload
    // goes around them so both traits can share one descriptor shape.
    const auto payload = static_cast<std::uint32_t>(seq & 0x1fff);
    return {seq * 4096 + 17, payload << 1, static_cast<std::uint32_t>(~seq)};
}

struct outcome {
    std::uint64_t received = 0;
    std::uint64_t bad_body = 0;
    std::uint64_t bad_own = 0;
};

template <class Tr, bool ConsumerClears>
outcome run_stress(std::uint32_t size, npa_test::stress_budget& budget) {
    std::vector<vmx_desc> ring(size, vmx_desc{});
    std::atomic<std::uint64_t> consumed_pub{0};
    outcome res;

    std::thread producer([&] {
        npa::gen_producer<Tr> prod(ring.data(), size);
        npa_test::backoff bo;
        std::uint64_t cached_consumed = 0;
        // A consumer that ran ahead of the producer (it took stale slots: a protocol
        // bug the test exists to catch) must not make the producer wait forever.
        auto in_flight = [&](std::uint64_t seq) {
            return seq > cached_consumed ? seq - cached_consumed : 0;
        };
        std::uint64_t seq = 0;
        while (budget.more(seq)) {
            if (in_flight(seq) >= size) {
                cached_consumed = consumed_pub.load(std::memory_order_acquire);
                if (in_flight(seq) >= size) {
                    bo.wait();
                    continue;
                }
                bo.reset();
            }
            prod.produce(make(seq));
            ++seq;
        }
        budget.finish(seq);
    });

    {
        npa::gen_consumer<Tr> cons(ring.data(), size);
        npa_test::backoff bo;
        std::uint64_t expect = 0;
        std::uint32_t unpublished = 0;
        while (expect < budget.limit()) {
            const std::uint32_t slot = cons.next_to_clean();
            const bool lap_gen = cons.gen();
            vmx_desc d{};
            if (!cons.poll(d)) {
                if (unpublished != 0) {
                    consumed_pub.store(expect, std::memory_order_release);
                    unpublished = 0;
                }
                bo.wait();
                continue;
            }
            bo.reset();
            const vmx_desc want = make(expect);
            // Body and the non-ownership bits of the ownership word: same descriptor.
            if (d.addr != want.addr || d.dword3 != want.dword3 ||
                (d.dword2 & ~Tr::own_mask) != want.dword2) {
                ++res.bad_body;
            }
            if ((d.dword2 & Tr::own_mask) != Tr::own_bits(lap_gen)) {
                ++res.bad_own;
            }
            if constexpr (ConsumerClears) {
                // Recycle the slot as an Intel driver does when it rewrites the
                // descriptor: DD cleared before the slot is offered again.
                std::atomic_ref<std::uint32_t>(Tr::own_word(ring[slot]))
                    .store(0, std::memory_order_relaxed);
            }
            ++expect;
            if (++unpublished == credit_batch) {
                consumed_pub.store(expect, std::memory_order_release);
                unpublished = 0;
            }
        }
        consumed_pub.store(expect, std::memory_order_release);
        res.received = expect;
    }
    producer.join();
    return res;
}

} // namespace

TEST_CASE("gen ring stress: vmxnet3 gen bit, 509-slot ring, two threads") {
    npa_test::stress_budget budget(npa_test::stress_items());
    const outcome o = run_stress<vmx_traits, false>(509, budget);
    CHECK(o.received == budget.limit());
    CHECK(o.received >= budget.floor());
    MESSAGE(o.received << " of " << budget.items() << " descriptors moved");
    CHECK(o.bad_body == 0);
    CHECK(o.bad_own == 0);
}

TEST_CASE("gen ring stress: Intel DD-style done bit, 200-slot ring, two threads") {
    npa_test::stress_budget budget(npa_test::stress_items());
    const outcome o = run_stress<dd_traits, true>(200, budget);
    CHECK(o.received == budget.limit());
    CHECK(o.received >= budget.floor());
    MESSAGE(o.received << " of " << budget.items() << " descriptors moved");
    CHECK(o.bad_body == 0);
    CHECK(o.bad_own == 0);
}
