// The concepts, the passing way: minimal conforming types for every concept (a test
// plugin over a test shell API, a test interrupt line, a test control channel) and the
// library's own types (fixed_pool, buffer_ref, heap and borrowed memory). The failing
// way lives in tests/compile_fail/: for each requirement a type that breaks only it.
#include <doctest/doctest.h>

#include <npa/buffer/fixed_pool.hpp>
#include <npa/buffer/memory.hpp>
#include <npa/concepts/buffer.hpp>
#include <npa/concepts/buffer_pool.hpp>
#include <npa/concepts/control_channel.hpp>
#include <npa/concepts/irq_source.hpp>
#include <npa/concepts/memory_backing.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/concepts/shell_api.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/index_ring.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace {

// ---- a test shell API: the least a shell offers a plugin ----------------------------
class test_shell_api {
public:
    using buffer_type = npa::buffer_ref;

    explicit test_shell_api(npa::fixed_pool<>& pool) : pool_(pool) {}

    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<buffer_type> out) noexcept {
        return pool_.alloc_burst(out);
    }
    void release_rx_buffers(std::uint16_t, std::span<const buffer_type> in) noexcept {
        released += static_cast<std::uint32_t>(in.size());
        pool_.free_burst(in);
    }
    void tx_complete(std::uint16_t, std::span<const buffer_type> in) noexcept {
        completed += static_cast<std::uint32_t>(in.size());
        pool_.free_burst(in);
    }
    void tx_unsent(std::uint16_t, std::span<const buffer_type> in) noexcept {
        unsent += static_cast<std::uint32_t>(in.size());
        pool_.free_burst(in);
    }
    void log(npa::log_level, const char*) noexcept { ++logs; }

    std::uint32_t released = 0;
    std::uint32_t completed = 0;
    std::uint32_t unsent = 0;
    std::uint32_t logs = 0;

private:
    npa::fixed_pool<>& pool_;
};

// ---- a test plugin: a loopback "device" made of one index ring ----------------------
struct loopback_device {
    npa::index_ring<npa::buffer_ref, 64> wire;
};

template <class Api>
class loopback_plugin {
public:
    static constexpr const char* name = "loopback";
    using device_type = loopback_device;

    npa::status attach(Api& api, device_type& dev, const npa::queue_config& qc) {
        if (qc.queues != 1) {
            return {npa::errc::not_supported, "loopback: one queue pair only"};
        }
        api_ = &api;
        dev_ = &dev;
        return npa::status::success();
    }
    void detach() noexcept {
        // Hand every buffer back: what is on the wire was accepted but never confirmed.
        npa::buffer_ref b;
        while (dev_->wire.try_dequeue(b)) {
            api_->tx_unsent(0, std::span<const npa::buffer_ref>(&b, 1));
        }
        api_ = nullptr;
    }
    std::uint16_t tx_burst(std::uint16_t, std::span<npa::buffer_ref> bufs) noexcept {
        const std::uint32_t k = dev_->wire.enqueue_burst(bufs);
        if (k < bufs.size()) {
            ++stats_.tx_ring_full;
        }
        stats_.tx_packets += k;
        return static_cast<std::uint16_t>(k);
    }
    std::uint16_t rx_burst(std::uint16_t, std::span<npa::buffer_ref> out) noexcept {
        const std::uint32_t k = dev_->wire.dequeue_burst(out);
        stats_.rx_packets += k;
        return static_cast<std::uint16_t>(k);
    }
    std::uint32_t tx_reap(std::uint16_t) noexcept { return 0; }
    std::uint32_t tx_in_flight(std::uint16_t) const noexcept { return dev_->wire.size(); }
    void irq_arm(std::uint16_t) noexcept { armed_ = true; }
    void irq_disarm(std::uint16_t) noexcept { armed_ = false; }
    npa::capabilities capabilities() const noexcept {
        return {.offloads = npa::cap::rx_csum, .max_queues = 1};
    }
    const npa::queue_stats& stats(std::uint16_t) const noexcept { return stats_; }

private:
    Api* api_ = nullptr;
    device_type* dev_ = nullptr;
    npa::queue_stats stats_{};
    bool armed_ = false;
};

/// The same plugin with the optional health report.
template <class Api>
class healthy_plugin : public loopback_plugin<Api> {
public:
    npa::errc health() const noexcept { return npa::errc::ok; }
};

// ---- a test interrupt line (one-shot, latched) ----------------------------------------
class test_irq {
public:
    void arm() noexcept { armed_ = true; }
    void disarm() noexcept { armed_ = false; }
    bool armed() const noexcept { return armed_; }
    bool pending() const noexcept { return pending_.load(std::memory_order_acquire); }
    void clear() noexcept { pending_.store(false, std::memory_order_relaxed); }
    /// The device side: raises only while armed, and raising disarms.
    void raise() noexcept {
        if (armed_) {
            armed_ = false;
            pending_.store(true, std::memory_order_release);
        }
    }

private:
    bool armed_ = false;
    std::atomic<bool> pending_{false};
};

// ---- a test control channel: a policy that allows VLANs below 100 ----------------------
class test_channel {
public:
    npa::status submit(const npa::control_request& r) {
        if ((r.op == npa::control_op::add_vlan) && r.vlan >= 100) {
            return {npa::errc::refused, "VLAN not allowed by policy"};
        }
        ++applied;
        return npa::status::success();
    }
    npa::status submit_batch(std::span<const npa::control_request> batch) {
        const std::uint32_t before = applied;
        for (const auto& r : batch) {
            if (npa::status s = submit(r); !s.ok()) {
                applied = before; // all or nothing
                return s;
            }
        }
        return npa::status::success();
    }

    std::uint32_t applied = 0;
};

using api_t = test_shell_api;
using plugin_t = loopback_plugin<api_t>;

// ---- the passing way ---------------------------------------------------------------

// Buffers and pools.
static_assert(npa::buffer_handle<npa::buffer_ref>);
static_assert(npa::addressable_buffer<npa::buffer_ref>);
static_assert(npa::sized_buffer<npa::buffer_ref>);
static_assert(npa::offload_carrier<npa::buffer_ref>);
static_assert(npa::buffer<npa::buffer_ref>);
static_assert(npa::buffer_pool<npa::fixed_pool<>>);
static_assert(npa::buffer_pool<npa::fixed_pool<npa::borrowed_memory>>);
static_assert(npa::buffer_pool<npa::shared_fixed_pool<>>);
static_assert(npa::buffer_source<npa::fixed_pool<>> && npa::buffer_sink<npa::fixed_pool<>> &&
              npa::sized_pool<npa::fixed_pool<>>);

// Memory.
static_assert(npa::memory_backing<npa::heap_memory>);
static_assert(npa::memory_backing<npa::borrowed_memory>);

// Interrupts and the control path.
static_assert(npa::maskable_irq<test_irq> && npa::latched_irq<test_irq>);
static_assert(npa::irq_source<test_irq>);
static_assert(npa::control_channel<test_channel>);

// The shell API, piece by piece and whole.
static_assert(npa::shell_buffer_api<api_t>);
static_assert(npa::shell_rx_api<api_t>);
static_assert(npa::shell_tx_api<api_t>);
static_assert(npa::shell_log_api<api_t>);
static_assert(npa::shell_api<api_t>);
// The clock is optional: the least API has none, and one with a clock is still an API.
struct clock_api : test_shell_api {
    using test_shell_api::test_shell_api;
    std::uint64_t now_ns() const noexcept { return 1; }
};
static_assert(npa::shell_clock_api<api_t> && !npa::provides_clock<api_t>);
static_assert(npa::shell_api<clock_api> && npa::provides_clock<clock_api>);

// The plugin, piece by piece, whole, and through check_plugin.
static_assert(npa::plugin_identity<plugin_t>);
static_assert(npa::plugin_lifecycle<plugin_t, api_t>);
static_assert(npa::tx_plugin<plugin_t, api_t>);
static_assert(npa::rx_plugin<plugin_t, api_t>);
static_assert(npa::completion_reaper<plugin_t>);
static_assert(npa::interrupt_plugin<plugin_t>);
static_assert(npa::capability_provider<plugin_t>);
static_assert(npa::stats_provider<plugin_t>);
static_assert(npa::plugin<plugin_t, api_t>);
static_assert(npa::check_plugin<plugin_t, api_t>());
static_assert(npa::check_plugin<healthy_plugin<api_t>, api_t>());

// Optional parts are detected, not required.
static_assert(!npa::reports_health<plugin_t>);
static_assert(npa::reports_health<healthy_plugin<api_t>>);

// Ring traits.
struct desc16 {
    std::uint64_t addr;
    std::uint32_t word2;
    std::uint32_t word3;
};
static_assert(npa::gen_desc_traits<npa::gen_bit_traits<desc16, 2, 14>>);
static_assert(npa::gen_desc_traits<npa::done_bit_traits<desc16, 2, 0>>);

// ---- and a few obvious non-members, so the concepts are not vacuous -----------------
static_assert(!npa::buffer<int>);
static_assert(!npa::buffer<npa::packet_buffer*>);
static_assert(!npa::buffer_pool<npa::heap_memory>);
static_assert(!npa::memory_backing<npa::buffer_ref>);
static_assert(!npa::irq_source<test_channel>);
static_assert(!npa::control_channel<test_irq>);
static_assert(!npa::shell_api<plugin_t>);
static_assert(!npa::plugin<api_t, api_t>);
static_assert(!npa::plugin<plugin_t, test_irq>); // not over a shell API

} // namespace

TEST_CASE("concepts: the conforming test plugin works over the test shell API") {
    auto pool = npa::fixed_pool<>::create({.count = 128, .buf_size = 256, .headroom = 0});
    REQUIRE(pool.ok());
    api_t api(*pool);
    loopback_device dev;
    plugin_t p;

    REQUIRE(p.attach(api, dev, npa::queue_config{}).ok());
    CHECK(p.attach(api, dev, npa::queue_config{.queues = 2}) == npa::errc::not_supported);
    CHECK(std::string_view(plugin_t::name) == "loopback");
    CHECK(p.capabilities().has(npa::cap::rx_csum));

    std::array<npa::buffer_ref, 80> bufs{};
    REQUIRE(pool->alloc_bulk(bufs) == 80);
    const std::uint16_t sent = p.tx_burst(0, bufs);
    CHECK(sent == 64); // the wire holds 64; the rest stay with the caller
    CHECK(p.stats(0).tx_ring_full == 1);
    CHECK(p.tx_in_flight(0) == 64);
    pool->free_burst(std::span<const npa::buffer_ref>(bufs.data() + sent, 80 - sent));

    std::array<npa::buffer_ref, 16> rx{};
    CHECK(p.rx_burst(0, rx) == 16);
    pool->free_burst(rx);
    p.detach();
    CHECK(api.unsent == 48); // every buffer came back
    CHECK(pool->available() == 128);
}

TEST_CASE("concepts: the test interrupt line and control channel keep their contracts") {
    test_irq irq;
    irq.raise();
    CHECK_FALSE(irq.pending()); // not armed: nothing
    irq.arm();
    irq.raise();
    CHECK(irq.pending());
    CHECK_FALSE(irq.armed()); // one-shot
    irq.clear();
    CHECK_FALSE(irq.pending());

    test_channel ch;
    CHECK(ch.submit(npa::control_request::make_vlan(true, 10)).ok());
    CHECK(ch.submit(npa::control_request::make_vlan(true, 200)) == npa::errc::refused);
    const std::array<npa::control_request, 3> batch{npa::control_request::make_mtu(9000),
                                                    npa::control_request::make_vlan(true, 5),
                                                    npa::control_request::make_vlan(true, 500)};
    CHECK(ch.submit_batch(batch) == npa::errc::refused);
    CHECK(ch.applied == 1); // rolled back to before the batch
}
