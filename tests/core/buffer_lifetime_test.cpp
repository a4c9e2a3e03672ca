// Buffer lifetime tracking: every buffer of a pool has exactly one owner at any instant
// (DESIGN.md section 3, "each buffer is in exactly one place"). A tracker shadows the
// pool, records where each buffer is, and flags a buffer handed out twice, a buffer
// freed twice, a buffer moved by someone who does not hold it, and leaks.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <npa/buffer/fixed_pool.hpp>
#include <npa/ring/index_ring.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

namespace {

enum class where : std::uint8_t { pool, app, ring, device };

template <class Pool>
class buffer_tracker {
public:
    explicit buffer_tracker(const Pool& p) : pool_(p), owner_(p.size(), where::pool) {}

    /// The pool just handed these out: each must have been in the pool, and be empty.
    void allocated(std::span<const npa::buffer_ref> bufs) {
        for (const auto b : bufs) {
            where& o = slot(b);
            if (o != where::pool) {
                ++handed_out_twice_;
            }
            if (b.length() != 0 || b.user() != 0) {
                ++dirty_on_alloc_;
            }
            o = where::app;
        }
    }
    /// Ownership moves from `from` to `to`.
    void moved(std::span<const npa::buffer_ref> bufs, where from, where to) {
        for (const auto b : bufs) {
            where& o = slot(b);
            if (o != from) {
                ++misplaced_;
            }
            o = to;
        }
    }
    /// `from` gives these back to the pool.
    void freed(std::span<const npa::buffer_ref> bufs, where from) {
        for (const auto b : bufs) {
            where& o = slot(b);
            if (o == where::pool) {
                ++double_frees_;
                continue;
            }
            if (o != from) {
                ++misplaced_;
            }
            o = where::pool;
        }
    }

    /// Buffers not back in the pool.
    [[nodiscard]] std::uint32_t outstanding() const {
        std::uint32_t n = 0;
        for (const where o : owner_) {
            n += o != where::pool ? 1u : 0u;
        }
        return n;
    }
    [[nodiscard]] std::uint32_t handed_out_twice() const { return handed_out_twice_; }
    [[nodiscard]] std::uint32_t double_frees() const { return double_frees_; }
    [[nodiscard]] std::uint32_t misplaced() const { return misplaced_; }
    [[nodiscard]] std::uint32_t dirty_on_alloc() const { return dirty_on_alloc_; }

    /// The end-of-test audit: nothing leaked, nothing doubled, and the pool agrees.
    [[nodiscard]] bool balanced() const {
        return outstanding() == 0 && handed_out_twice_ == 0 && double_frees_ == 0 &&
               misplaced_ == 0 && dirty_on_alloc_ == 0 && pool_.available() == pool_.size();
    }

private:
    where& slot(npa::buffer_ref b) {
        REQUIRE(pool_.owns(b));
        return owner_.at(b.get()->index);
    }

    const Pool& pool_;
    std::vector<where> owner_;
    std::uint32_t handed_out_twice_ = 0;
    std::uint32_t double_frees_ = 0;
    std::uint32_t misplaced_ = 0;
    std::uint32_t dirty_on_alloc_ = 0;
};

using pool_t = npa::fixed_pool<>;

pool_t make_pool(std::uint32_t count) {
    auto r = pool_t::create({.count = count, .buf_size = 256, .headroom = 32});
    REQUIRE(r.ok());
    return std::move(*r);
}

} // namespace

TEST_CASE("lifetime: a random workload through a ring and a device balances to zero") {
    constexpr std::uint32_t count = 96;
    auto pool = make_pool(count);
    buffer_tracker<pool_t> t(pool);
    auto ring = std::make_unique<npa::index_ring<npa::buffer_ref, 32>>();
    std::deque<npa::buffer_ref> device; // stands for buffers posted to a device
    npa_test::rng g(42);
    std::array<npa::buffer_ref, 40> tmp{};
    std::uint64_t stamp = 1;

    for (int step = 0; step < 20000; ++step) {
        const std::uint32_t n = g.range(0, 40);
        switch (g.range(0, 4)) {
        case 0: { // the app allocates and sends into the ring; what does not fit is freed
            const std::uint32_t k = pool.alloc_burst(std::span<npa::buffer_ref>(tmp.data(), n));
            t.allocated(std::span<const npa::buffer_ref>(tmp.data(), k));
            for (std::uint32_t i = 0; i < k; ++i) {
                tmp[i].set_user(stamp++);
                tmp[i].set_length(60);
            }
            const std::uint32_t sent =
                ring->enqueue_burst(std::span<const npa::buffer_ref>(tmp.data(), k));
            t.moved(std::span<const npa::buffer_ref>(tmp.data(), sent), where::app, where::ring);
            t.freed(std::span<const npa::buffer_ref>(tmp.data() + sent, k - sent), where::app);
            pool.free_burst(std::span<const npa::buffer_ref>(tmp.data() + sent, k - sent));
            break;
        }
        case 1: { // the device takes from the ring
            const std::uint32_t k = ring->dequeue_burst(std::span<npa::buffer_ref>(tmp.data(), n));
            t.moved(std::span<const npa::buffer_ref>(tmp.data(), k), where::ring, where::device);
            device.insert(device.end(), tmp.begin(), tmp.begin() + k);
            break;
        }
        case 2: { // the device completes some: back to the pool
            const std::uint32_t k = std::min<std::uint32_t>(n, static_cast<std::uint32_t>(device.size()));
            for (std::uint32_t i = 0; i < k; ++i) {
                tmp[i] = device.front();
                device.pop_front();
            }
            t.freed(std::span<const npa::buffer_ref>(tmp.data(), k), where::device);
            pool.free_burst(std::span<const npa::buffer_ref>(tmp.data(), k));
            break;
        }
        case 3: { // zero-copy drain of the ring straight to the pool
            const auto reg = ring->peek(n);
            for (std::uint32_t i = 0; i < reg.size(); ++i) {
                tmp[i] = reg[i];
            }
            const std::uint32_t k = reg.size();
            ring->release(k);
            t.freed(std::span<const npa::buffer_ref>(tmp.data(), k), where::ring);
            pool.free_burst(std::span<const npa::buffer_ref>(tmp.data(), k));
            break;
        }
        default: { // bulk alloc, all or nothing, given straight to the device
            const std::uint32_t k = pool.alloc_bulk(std::span<npa::buffer_ref>(tmp.data(), n));
            REQUIRE((k == n || k == 0));
            t.allocated(std::span<const npa::buffer_ref>(tmp.data(), k));
            t.moved(std::span<const npa::buffer_ref>(tmp.data(), k), where::app, where::device);
            device.insert(device.end(), tmp.begin(), tmp.begin() + k);
            break;
        }
        }
        REQUIRE(t.outstanding() == pool.in_use());
    }

    // Teardown: everything still in the ring or at the device goes home.
    npa::buffer_ref b;
    while (ring->try_dequeue(b)) {
        t.freed(std::span<const npa::buffer_ref>(&b, 1), where::ring);
        pool.free(b);
    }
    for (const auto d : device) {
        t.freed(std::span<const npa::buffer_ref>(&d, 1), where::device);
        pool.free(d);
    }
    CHECK(t.balanced());
    CHECK(t.handed_out_twice() == 0);
    CHECK(pool.stats().double_free == 0);
    CHECK(pool.stats().foreign_free == 0);
    CHECK(pool.stats().alloc_fail > 0); // the workload did run the pool dry
}

TEST_CASE("lifetime: the tracker catches a leak") {
    auto pool = make_pool(8);
    buffer_tracker<pool_t> t(pool);
    std::array<npa::buffer_ref, 3> b{};
    REQUIRE(pool.alloc_bulk(b) == 3);
    t.allocated(b);
    t.freed(std::span<const npa::buffer_ref>(b.data(), 2), where::app);
    pool.free_burst(std::span<const npa::buffer_ref>(b.data(), 2));
    // b[2] is never returned.
    CHECK(t.outstanding() == 1);
    CHECK(pool.available() == 7);
    CHECK_FALSE(t.balanced());
    pool.free(b[2]);
    t.freed(std::span<const npa::buffer_ref>(&b[2], 1), where::app);
    CHECK(t.balanced());
}

TEST_CASE("lifetime: a double free is caught by the tracker and absorbed by the pool") {
    auto pool = make_pool(8);
    buffer_tracker<pool_t> t(pool);
    std::array<npa::buffer_ref, 2> b{};
    REQUIRE(pool.alloc_bulk(b) == 2);
    t.allocated(b);
    t.freed(b, where::app);
    pool.free_burst(b);
    // A buggy caller frees b[0] again.
    t.freed(std::span<const npa::buffer_ref>(b.data(), 1), where::app);
    pool.free(b[0]);
    CHECK(t.double_frees() == 1);
    CHECK(pool.stats().double_free == 1);
    CHECK(pool.available() == 8); // not 9: the free list was not corrupted

    // The pool still hands every buffer out exactly once.
    std::array<npa::buffer_ref, 8> all{};
    REQUIRE(pool.alloc_bulk(all) == 8);
    t.allocated(all);
    CHECK(t.handed_out_twice() == 0);
    std::array<npa::buffer_ref, 1> none{};
    CHECK(pool.alloc_burst(none) == 0);
    t.freed(all, where::app);
    pool.free_burst(all);
}

TEST_CASE("lifetime: the tracker catches a buffer handed out twice and a stray move") {
    auto pool = make_pool(4);
    buffer_tracker<pool_t> t(pool);
    std::array<npa::buffer_ref, 1> b{};
    REQUIRE(pool.alloc_bulk(b) == 1);
    t.allocated(b);
    // What a pool bug would look like: the same buffer reported as allocated again.
    t.allocated(b);
    CHECK(t.handed_out_twice() == 1);
    // Moving a buffer out of a place it is not in.
    t.moved(b, where::ring, where::device);
    CHECK(t.misplaced() == 1);
    t.freed(b, where::device);
    pool.free_burst(b);
    CHECK(t.outstanding() == 0);
    CHECK_FALSE(t.balanced()); // the recorded faults keep it from balancing
}
