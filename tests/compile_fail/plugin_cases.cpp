// npa::plugin (concepts/plugin.hpp) through npa::check_plugin, the failing way: a plugin
// that conforms (case 0) and, per case, the same plugin with exactly one requirement
// broken. Each must fail with the sentence check_plugin gives a plugin author for that
// requirement.
//
// case 0 conforming: compiles
// case 1 no_name: a plugin declares `static constexpr const char* name`
// case 2 name_not_text: a plugin declares `static constexpr const char* name`
// case 3 no_device_type: a plugin declares `static constexpr const char* name` && device_type
// case 4 no_attach: a plugin needs `npa::status attach(Api&, device_type&, const npa::queue_config&)`
// case 5 attach_returns_bool: a plugin needs `npa::status attach(Api&
// case 6 detach_may_throw: `void detach() noexcept` (detach hands every buffer back to the shell)
// case 7 no_tx_burst: a plugin needs `std::uint16_t tx_burst(std::uint16_t q, std::span<Api::buffer_type>) noexcept` returning how many it accepted
// case 8 tx_burst_may_throw: a plugin needs `std::uint16_t tx_burst(
// case 9 tx_burst_returns_int: a plugin needs `std::uint16_t tx_burst(
// case 10 no_rx_burst: a plugin needs `std::uint16_t rx_burst(std::uint16_t q, std::span<Api::buffer_type>) noexcept` returning how many it received
// case 11 rx_burst_may_throw: a plugin needs `std::uint16_t rx_burst(
// case 12 no_tx_reap: a plugin needs `std::uint32_t tx_reap(std::uint16_t) noexcept` (return finished TX buffers)
// case 13 tx_in_flight_not_const: `std::uint32_t tx_in_flight(std::uint16_t) const noexcept`
// case 14 no_irq_arm: a plugin needs `void irq_arm(std::uint16_t) noexcept` and `void irq_disarm(std::uint16_t) noexcept` (the NAPI contract)
// case 15 irq_disarm_may_throw: a plugin needs `void irq_arm(std::uint16_t) noexcept`
// case 16 no_capabilities: a plugin needs `npa::capabilities capabilities() const noexcept` describing what its device supports, as data
// case 17 capabilities_not_const: a plugin needs `npa::capabilities capabilities() const noexcept`
// case 18 no_stats: a plugin needs `const npa::queue_stats& stats(std::uint16_t q) const noexcept`
// case 19 stats_may_throw: a plugin needs `const npa::queue_stats& stats(
// case 20 api_not_a_shell_api: Api is not an npa::shell_api
// case 21 api_without_buffer_type: Api is not an npa::shell_api && !a plugin needs `std::uint16_t tx_burst && !a plugin needs `std::uint16_t rx_burst
#include <npa/buffer/packet_buffer.hpp>
#include <npa/concepts/plugin.hpp>

#include <cstdint>
#include <span>

#ifndef CASE
#define CASE 0
#endif

struct api {
#if CASE != 21
    using buffer_type = npa::buffer_ref;
#endif
    using buf = npa::buffer_ref;
    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<buf>) noexcept { return 0; }
    void release_rx_buffers(std::uint16_t, std::span<const buf>) noexcept {}
    void tx_complete(std::uint16_t, std::span<const buf>) noexcept {}
    void tx_unsent(std::uint16_t, std::span<const buf>) noexcept {}
#if CASE != 20
    void log(npa::log_level, const char*) noexcept {}
#endif
};

struct device {};

template <class Api>
class plugin {
public:
#if CASE == 2
    static constexpr int name = 7;
#elif CASE != 1
    static constexpr const char* name = "case";
#endif
#if CASE != 3
    using device_type = device;
#endif

#if CASE == 5
    bool attach(Api&, device&, const npa::queue_config&) { return true; }
#elif CASE != 4
    npa::status attach(Api&, device&, const npa::queue_config&) { return {}; }
#endif
#if CASE == 6
    void detach() {}
#else
    void detach() noexcept {}
#endif

#if CASE == 8
    std::uint16_t tx_burst(std::uint16_t, std::span<npa::buffer_ref>) { return 0; }
#elif CASE == 9
    int tx_burst(std::uint16_t, std::span<npa::buffer_ref>) noexcept { return 0; }
#elif CASE != 7
    std::uint16_t tx_burst(std::uint16_t, std::span<npa::buffer_ref>) noexcept { return 0; }
#endif
#if CASE == 11
    std::uint16_t rx_burst(std::uint16_t, std::span<npa::buffer_ref>) { return 0; }
#elif CASE != 10
    std::uint16_t rx_burst(std::uint16_t, std::span<npa::buffer_ref>) noexcept { return 0; }
#endif

#if CASE != 12
    std::uint32_t tx_reap(std::uint16_t) noexcept { return 0; }
#endif
#if CASE == 13
    std::uint32_t tx_in_flight(std::uint16_t) noexcept { return 0; }
#else
    std::uint32_t tx_in_flight(std::uint16_t) const noexcept { return 0; }
#endif

#if CASE != 14
    void irq_arm(std::uint16_t) noexcept {}
#endif
#if CASE == 15
    void irq_disarm(std::uint16_t) {}
#else
    void irq_disarm(std::uint16_t) noexcept {}
#endif

#if CASE == 17
    npa::capabilities capabilities() noexcept { return {}; }
#elif CASE != 16
    npa::capabilities capabilities() const noexcept { return {}; }
#endif
#if CASE == 19
    const npa::queue_stats& stats(std::uint16_t) const { return stats_; }
#elif CASE != 18
    const npa::queue_stats& stats(std::uint16_t) const noexcept { return stats_; }
#endif

private:
    npa::queue_stats stats_{};
};

using p = plugin<api>;

// One break per case: every other requirement still holds (a plugin without a
// device_type cannot state its lifecycle either, so case 3 may take that down too).
#define TARGETS(lo, hi) (CASE >= (lo) && CASE <= (hi))
static_assert(TARGETS(20, 21) || npa::shell_api<api>, "NPA_CF_COLLATERAL shell_api");
// Without a buffer type the Api cannot carry a tx or rx burst: case 21 names only the Api.
#if CASE == 21
#define TX_RX_EXEMPT 1
#else
#define TX_RX_EXEMPT 0
#endif
static_assert(TARGETS(1, 3) || npa::plugin_identity<p>, "NPA_CF_COLLATERAL plugin_identity");
static_assert(TARGETS(3, 6) || npa::plugin_lifecycle<p, api>, "NPA_CF_COLLATERAL plugin_lifecycle");
static_assert(TARGETS(7, 9) || TX_RX_EXEMPT || npa::tx_plugin<p, api>, "NPA_CF_COLLATERAL tx_plugin");
static_assert(TARGETS(10, 11) || TX_RX_EXEMPT || npa::rx_plugin<p, api>, "NPA_CF_COLLATERAL rx_plugin");
static_assert(TARGETS(12, 13) || npa::completion_reaper<p>, "NPA_CF_COLLATERAL completion_reaper");
static_assert(TARGETS(14, 15) || npa::interrupt_plugin<p>, "NPA_CF_COLLATERAL interrupt_plugin");
static_assert(TARGETS(16, 17) || npa::capability_provider<p>, "NPA_CF_COLLATERAL capability_provider");
static_assert(TARGETS(18, 19) || npa::stats_provider<p>, "NPA_CF_COLLATERAL stats_provider");

static_assert(npa::check_plugin<p, api>());
