// Two-thread stress of npa::index_ring: a producer thread and a consumer thread move
// NPA_STRESS_ITEMS (default 10 million) sequenced items per element type through one
// ring, mixing every call (burst, bulk, staged bursts published by flush() or by the next
// publishing call, reserve/commit, peek/release) with burst sizes
// that vary, and the consumer checks that every item arrives once, in order, untorn.
// Run under TSan by the TSan preset (label `concurrent`).
#include <doctest/doctest.h>

#include "stress_support.hpp"
#include "test_support.hpp"

#include <npa/ring/index_ring.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>

namespace {

using npa_test::desc16;

/// Largest burst either side asks for; bigger than a typical NIC burst (32) and not a
/// divisor of the ring sizes below, so bursts straddle the end of the ring often.
constexpr std::uint32_t max_burst = 48;

template <class T>
T item(std::uint64_t seq) noexcept {
    if constexpr (std::is_same_v<T, desc16>) {
        return npa_test::make_desc(seq);
    } else {
        return seq;
    }
}

struct outcome {
    std::uint64_t received = 0;
    std::uint64_t bad = 0;            // out of order, duplicated or torn
    std::uint64_t first_bad_at = ~0ull;
};

template <class T, std::uint32_t Cap>
outcome run_stress(npa_test::stress_budget& budget, std::uint64_t seed) {
    using ring_t = npa::index_ring<T, Cap>;
    auto ring = std::make_unique<ring_t>();
    outcome res;

    std::thread producer([&ring, &budget, seed] {
        npa_test::rng g(seed);
        npa_test::backoff bo;
        std::array<T, max_burst> buf{};
        std::uint64_t seq = 0;
        while (budget.more(seq)) {
            const std::uint64_t left = budget.items() - seq;
            const auto n = static_cast<std::uint32_t>(
                std::min<std::uint64_t>(g.range(1, max_burst), left));
            std::uint32_t k = 0;
            switch (g.next() % 4) {
            case 0:
                for (std::uint32_t i = 0; i < n; ++i) {
                    buf[i] = item<T>(seq + i);
                }
                k = ring->enqueue_burst(std::span<const T>(buf.data(), n));
                break;
            case 1:
                for (std::uint32_t i = 0; i < n; ++i) {
                    buf[i] = item<T>(seq + i);
                }
                k = ring->enqueue_bulk(std::span<const T>(buf.data(), n));
                break;
            case 2: // staged, published now and then (or by the next publishing call)
                for (std::uint32_t i = 0; i < n; ++i) {
                    buf[i] = item<T>(seq + i);
                }
                k = ring->stage_burst(std::span<const T>(buf.data(), n));
                if (g.next() % 4 == 0) {
                    ring->flush();
                }
                break;
            default: {
                const npa::ring_region<T> reg = ring->reserve(n);
                for (std::uint32_t i = 0; i < reg.size(); ++i) {
                    reg[i] = item<T>(seq + i);
                }
                k = reg.size();
                ring->commit(k);
                break;
            }
            }
            seq += k;
            if (k == 0) {
                ring->flush(); // what it staged may be what fills the ring
                bo.wait();
            } else {
                bo.reset();
            }
        }
        ring->flush();
        budget.finish(seq);
    });

    {
        npa_test::rng g(seed * 7 + 1);
        npa_test::backoff bo;
        std::array<T, max_burst> buf{};
        std::uint64_t expect = 0;
        auto check = [&res, &expect](const T& v) {
            if (!(v == item<T>(expect))) {
                if (res.bad++ == 0) {
                    res.first_bad_at = expect;
                }
            }
            ++expect;
        };
        for (std::uint64_t limit = budget.limit(); expect < limit; limit = budget.limit()) {
            const std::uint64_t left = limit - expect;
            const auto n = static_cast<std::uint32_t>(
                std::min<std::uint64_t>(g.range(1, max_burst), left));
            std::uint32_t k = 0;
            switch (g.next() % 3) {
            case 0:
                k = ring->dequeue_burst(std::span<T>(buf.data(), n));
                for (std::uint32_t i = 0; i < k; ++i) {
                    check(buf[i]);
                }
                break;
            case 1:
                k = ring->dequeue_bulk(std::span<T>(buf.data(), n));
                for (std::uint32_t i = 0; i < k; ++i) {
                    check(buf[i]);
                }
                break;
            default: {
                const npa::ring_region<T> reg = ring->peek(n);
                // Release a prefix only, sometimes: the rest must be seen again next time.
                k = reg.size() == 0 ? 0 : g.range(1, reg.size());
                for (std::uint32_t i = 0; i < k; ++i) {
                    check(reg[i]);
                }
                ring->release(k);
                break;
            }
            }
            if (k == 0) {
                bo.wait();
            } else {
                bo.reset();
            }
        }
        res.received = expect;
    }
    producer.join();
    CHECK(ring->empty());
    return res;
}

} // namespace

/// What every run asserts besides its own checks: the consumer took exactly what the
/// producer sent, and that was at least the budget's floor.
void check_count(const npa_test::stress_budget& b, std::uint64_t received) {
    CHECK(received == b.limit());
    CHECK(received >= b.floor());
    MESSAGE(received << " of " << b.items() << " items moved");
}

TEST_CASE("index_ring stress: 8-byte handles, two threads, order and count") {
    npa_test::stress_budget budget(npa_test::stress_items());
    const outcome o = run_stress<std::uint64_t, 256>(budget, 11);
    check_count(budget, o.received);
    CHECK(o.bad == 0);
    CHECK(o.first_bad_at == ~0ull);
}

TEST_CASE("index_ring stress: 16-byte descriptors, two threads, order, count, no tearing") {
    npa_test::stress_budget budget(npa_test::stress_items());
    const outcome o = run_stress<desc16, 128>(budget, 12);
    check_count(budget, o.received);
    CHECK(o.bad == 0);
    CHECK(o.first_bad_at == ~0ull);
}

TEST_CASE("index_ring stress: a third thread's size() snapshot stays within 0..Capacity") {
    // size() is documented as a snapshot; read from a thread that is neither producer nor
    // consumer it must still be a number of elements the ring can hold. Three threads on
    // a machine that may have two cores: a fiftieth of the stress count is plenty, and the
    // observer yields after every look so that it never starves the other two.
    constexpr std::uint32_t cap = 64;
    constexpr std::uint32_t burst = 16;
    auto ring = std::make_unique<npa::index_ring<std::uint64_t, cap>>();
    npa_test::stress_budget budget(npa_test::stress_items() / 50 + 1);
    std::atomic<bool> done{false};
    std::uint64_t out_of_range = 0;
    std::thread observer([&] {
        while (!done.load(std::memory_order_acquire)) {
            const std::uint32_t s = ring->size();
            const std::uint32_t f = ring->free_count();
            out_of_range += (s > cap || f > cap) ? 1u : 0u;
            std::this_thread::yield();
        }
    });
    std::thread producer([&] {
        npa_test::backoff bo;
        std::array<std::uint64_t, burst> buf{};
        std::uint64_t seq = 0;
        while (budget.more(seq)) {
            const auto n =
                static_cast<std::uint32_t>(std::min<std::uint64_t>(burst, budget.items() - seq));
            for (std::uint32_t i = 0; i < n; ++i) {
                buf[i] = seq + i;
            }
            const std::uint32_t k = ring->enqueue_burst(std::span<const std::uint64_t>(buf.data(), n));
            seq += k;
            if (k == 0) {
                bo.wait();
            } else {
                bo.reset();
            }
        }
        budget.finish(seq);
    });
    npa_test::backoff bo;
    std::array<std::uint64_t, burst> buf{};
    std::uint64_t expect = 0;
    std::uint64_t bad = 0;
    while (expect < budget.limit()) {
        const std::uint32_t k = ring->dequeue_burst(buf);
        for (std::uint32_t i = 0; i < k; ++i) {
            bad += buf[i] != expect ? 1u : 0u;
            ++expect;
        }
        if (k == 0) {
            bo.wait();
        } else {
            bo.reset();
        }
    }
    producer.join();
    done.store(true, std::memory_order_release);
    observer.join();
    check_count(budget, expect);
    CHECK(bad == 0);
    CHECK(out_of_range == 0);
}
