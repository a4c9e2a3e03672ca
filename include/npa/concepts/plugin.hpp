// npa/concepts/plugin.hpp: the device-specific half of a driver.
//
// A plugin drives one device's TX/RX descriptor rings and nothing else. It is a class
// template over the shell API it is given (template <class Api> class my_plugin), so the
// shell instantiates it with its own API type and every call is resolved at compile time.
//
// Checked by the compiler (each piece is its own concept, so check_plugin<P, Api>() can
// say which one is missing):
//   plugin_identity      static constexpr const char* name; using device_type = ...;
//   plugin_lifecycle     status attach(Api&, device_type&, const queue_config&);
//                        void detach() noexcept;
//   tx_plugin            std::uint16_t tx_burst(std::uint16_t q, std::span<buffer>) noexcept;
//   rx_plugin            std::uint16_t rx_burst(std::uint16_t q, std::span<buffer>) noexcept;
//   completion_reaper    std::uint32_t tx_reap(std::uint16_t q) noexcept;
//                        std::uint32_t tx_in_flight(std::uint16_t q) const noexcept;
//   interrupt_plugin     void irq_arm(std::uint16_t q) noexcept;
//                        void irq_disarm(std::uint16_t q) noexcept;
//   capability_provider  capabilities capabilities() const noexcept;
//   stats_provider       const queue_stats& stats(std::uint16_t q) const noexcept;
// Optional (detected with if constexpr): reports_health (errc health() const noexcept),
//   bounds_rx_drain (std::uint32_t rx_drain_bound(q) const noexcept),
//   device_managed_buffers (static constexpr bool device_managed_buffers = true).
//
// Semantic requirements (not checked by the compiler):
//   - attach() takes the device window, lays out rings in the device's memory, posts RX
//     buffers from api.alloc_rx_buffers and enables the queues; on failure it leaves
//     nothing allocated and returns why. detach() stops the queues and hands every
//     buffer back: completed TX through tx_complete, accepted-but-unconfirmed TX through
//     tx_unsent (in order), RX buffers through release_rx_buffers.
//   - tx_burst(q, bufs) takes ownership of bufs[0..k) and returns k; bufs[k..) stay
//     with the caller. It reaps completions first when the ring is short of room.
//     A full ring is a short count and a tx_ring_full increment, never an error.
//   - a frame tx_burst cannot carry (shorter than 14 bytes, or longer than the frame
//     limit) is accepted all the same (counted in k: a short count means "ring full, offer
//     the rest again", and the caller would offer it forever), never sent, handed back at
//     once through tx_complete and counted in tx_errors.
//   - the frame limit follows the configured MTU: without TSO a frame is at most
//     queue_config::mtu + 18 bytes (Ethernet header and one VLAN tag); attach refuses an
//     MTU outside capabilities' min_mtu..max_mtu (invalid_argument); RX buffers hold at
//     least mtu + 18 bytes and whatever more the device may write.
//   - a TX completion that passes over earlier descriptors completes them too: they go
//     back through tx_complete in ring order with the one it names, counted in tx_errors
//     (whether they went out is unknown) and bad_completion. Never tx_unsent: the device
//     took them and may have sent them, and the shell would send them twice.
//   - rx_burst(q, out) fills out[0..k) with received buffers (ownership to the caller),
//     refills the RX ring and returns k <= out.size(). out.size() is the NAPI budget.
//     A refill short of buffers posts what it got and counts the shortfall in the
//     plugin's own stats(q).rx_no_buffer; the shell counts nothing of its own.
//   - ring memory: the plugin lays out its rings in the area the device window gives,
//     each base aligned as the device requires (the simnic: a multiple of its 16-byte
//     descriptor, in a page-aligned area of exactly the bytes its largest rings take,
//     simnic_ring_bytes(max, max): no room reserved for padding),
//     and checks the area's size itself before using it, padding included; too small is
//     errc::no_memory from attach, never a write past the area.
//   - irq_arm/irq_disarm unmask and mask queue q's line and nothing else: the latched
//     cause is cleared by whoever takes the interrupt (concepts/irq_source.hpp).
//   - the data-path calls are noexcept, never allocate, never block, and are called only
//     from the thread that owns queue q; different queues may run on different threads.
//   - nothing the device writes is trusted: every index, length, flag and generation bit
//     is range-checked on a snapshot before use; violations are counted
//     (bad_completion, rx_dropped), the packet or ring is dropped or reset, and no
//     buffer is lost.
//   - the plugin never touches control registers (MAC, VLAN, MTU ...); it has no way to.
#pragma once

#include <npa/capabilities.hpp>
#include <npa/concepts/shell_api.hpp>
#include <npa/stats.hpp>
#include <npa/status.hpp>

#include <concepts>
#include <cstdint>
#include <span>

namespace npa {

template <class P>
concept plugin_identity = requires {
    { P::name } -> std::convertible_to<const char*>;
    typename P::device_type;
};

template <class P, class Api>
concept plugin_lifecycle = requires(P& p, Api& api, typename P::device_type& dev,
                                    const queue_config& qc) {
    { p.attach(api, dev, qc) } -> std::same_as<status>;
    { p.detach() } noexcept;
};

template <class P, class Api>
concept tx_plugin = requires(P& p, std::uint16_t q, std::span<typename Api::buffer_type> bufs) {
    { p.tx_burst(q, bufs) } noexcept -> std::same_as<std::uint16_t>;
};

template <class P, class Api>
concept rx_plugin = requires(P& p, std::uint16_t q, std::span<typename Api::buffer_type> out) {
    { p.rx_burst(q, out) } noexcept -> std::same_as<std::uint16_t>;
};

template <class P>
concept completion_reaper = requires(P& p, const P& cp, std::uint16_t q) {
    { p.tx_reap(q) } noexcept -> std::same_as<std::uint32_t>;
    { cp.tx_in_flight(q) } noexcept -> std::same_as<std::uint32_t>;
};

template <class P>
concept interrupt_plugin = requires(P& p, std::uint16_t q) {
    { p.irq_arm(q) } noexcept;
    { p.irq_disarm(q) } noexcept;
};

template <class P>
concept capability_provider = requires(const P& p) {
    { p.capabilities() } noexcept -> std::convertible_to<capabilities>;
};

template <class P>
concept stats_provider = requires(const P& p, std::uint16_t q) {
    { p.stats(q) } noexcept -> std::convertible_to<const queue_stats&>;
};

/// Optional: the plugin can say whether its device is healthy (errc::ok), has failed
/// (errc::device_error) or is gone (errc::removed); the shell switches away on failure.
/// Unchecked: health() is called from the control thread while the data path runs, so it
/// reads only device registers and atomics (never the data path's plain counters).
template <class P>
concept reports_health = requires(const P& p) {
    { p.health() } noexcept -> std::same_as<errc>;
};

/// Optional: a bound on the RX a drain reads from this plugin's device: what the device
/// can have received and not yet delivered when the drain starts (an RX ring's worth).
/// Without it (or answering ~0) the shell takes the RX ring size it attached the plugin
/// with; a device that can hold more than that declares its own. A drain reads the old
/// path until one burst comes back short or the bound is read (a device whose RX never
/// runs dry, a traffic generator or net_null, ends only at the bound); 0: holds nothing.
/// Unchecked: called on queue q's thread when the drain starts.
template <class P>
concept bounds_rx_drain = requires(const P& p, std::uint16_t q) {
    { p.rx_drain_bound(q) } noexcept -> std::same_as<std::uint32_t>;
};

/// Optional: `static constexpr bool device_managed_buffers = true` says that the device
/// side allocates RX buffers and frees sent TX buffers itself (a DPDK port driven through
/// ethdev: its PMD refills from the mempool and frees on completion), so what the shell
/// hands it and gets back never balances per path. The shell then keeps no per-path count
/// for it and does not report a detach as a leak; audit() counts such buffers as in the
/// pool or with the device, not in the plugin.
template <class P>
concept device_managed_buffers = requires {
    requires static_cast<bool>(P::device_managed_buffers);
};

template <class P, class Api>
concept plugin = shell_api<Api> && plugin_identity<P> && plugin_lifecycle<P, Api> &&
                 tx_plugin<P, Api> && rx_plugin<P, Api> && completion_reaper<P> &&
                 interrupt_plugin<P> && capability_provider<P> && stats_provider<P>;

/// Asserts each plugin requirement separately, so that a plugin author reads which one
/// their type misses instead of a wall of substitution failures. Use it right after the
/// plugin: static_assert(npa::check_plugin<my_plugin<my_api>, my_api>());
template <class P, class Api>
consteval bool check_plugin() {
    static_assert(shell_api<Api>,
                  "npa::check_plugin: Api is not an npa::shell_api (it needs buffer_type, "
                  "alloc_rx_buffers, release_rx_buffers, tx_complete, tx_unsent and log)");
    static_assert(plugin_identity<P>,
                  "npa::check_plugin: a plugin declares `static constexpr const char* name` "
                  "and `using device_type = ...;` (the device window it attaches to)");
    if constexpr (plugin_identity<P>) {
        static_assert(plugin_lifecycle<P, Api>,
                      "npa::check_plugin: a plugin needs `npa::status attach(Api&, "
                      "device_type&, const npa::queue_config&)` and `void detach() noexcept` "
                      "(detach hands every buffer back to the shell)");
    }
    // tx and rx are stated in the Api's buffer type: without one, the Api sentence above
    // is the whole story, and two more about tx_burst/rx_burst would only mislead.
    if constexpr (shell_buffer_api<Api>) {
        static_assert(tx_plugin<P, Api>,
                      "npa::check_plugin: a plugin needs `std::uint16_t tx_burst(std::uint16_t q, "
                      "std::span<Api::buffer_type>) noexcept` returning how many it accepted");
        static_assert(rx_plugin<P, Api>,
                      "npa::check_plugin: a plugin needs `std::uint16_t rx_burst(std::uint16_t q, "
                      "std::span<Api::buffer_type>) noexcept` returning how many it received");
    }
    static_assert(completion_reaper<P>,
                  "npa::check_plugin: a plugin needs `std::uint32_t tx_reap(std::uint16_t) "
                  "noexcept` (return finished TX buffers) and `std::uint32_t "
                  "tx_in_flight(std::uint16_t) const noexcept`");
    static_assert(interrupt_plugin<P>,
                  "npa::check_plugin: a plugin needs `void irq_arm(std::uint16_t) noexcept` and "
                  "`void irq_disarm(std::uint16_t) noexcept` (the NAPI contract)");
    static_assert(capability_provider<P>,
                  "npa::check_plugin: a plugin needs `npa::capabilities capabilities() const "
                  "noexcept` describing what its device supports, as data");
    static_assert(stats_provider<P>,
                  "npa::check_plugin: a plugin needs `const npa::queue_stats& "
                  "stats(std::uint16_t q) const noexcept`");
    return plugin<P, Api>;
}

} // namespace npa
