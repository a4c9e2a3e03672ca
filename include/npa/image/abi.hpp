// npa/image/abi.hpp: the two versioned C tables between a host and a plugin image.
//
// The host calls the image's one exported function, npa_image_entry(shell_table*), which
// checks the host's ABI and buffer layout and returns the image's plugin_ops, or null if
// it cannot work with this host. Then, per path, the host allocates instance_size bytes,
// construct()s a plugin in them and calls the operations with that instance. attach()
// also gets a shell table and the host's per-path API pointer: every call back into the
// shell goes through them (entry.hpp holds the image side, loaded_plugin.hpp the host's).
//
// The tables are plain C: fixed-width fields, function pointers, no C++ types but the
// ones static_asserted below, whose layouts are therefore part of the ABI. Both tables
// start with abi_major, abi_minor and their size; a minor version only appends fields.
// Every operation is present (the image fills health and rx_drain_bound with the shell's
// own defaults where the plugin has none); `features` says which ones the plugin has.
//
// Buffers: the image reads and writes the host's buffers directly, in the layout the host
// names in shell_table::buffer_layout: npa::packet_buffer through npa::buffer_ref (the sim,
// npa-linkd) or DPDK's rte_mbuf through an rte_mbuf* (net_npa; mbuf_layout.hpp). A burst
// crosses as a pointer to n 8-byte handles and a count, with no translation. An image
// carries one instantiation of its plugin per layout (entry.hpp), lists them in its header,
// and enters with the host's: the ops table it returns is that layout's.
//
// Device windows cross as void*: the window type is compiled into both sides from the
// same header, and its layout is static_asserted there (simnic_window.hpp). Its
// device id (below) is in the image header, so that a host refuses an image for another
// device before it maps it.
#pragma once

#include <npa/buffer/packet_buffer.hpp>
#include <npa/capabilities.hpp>
#include <npa/image/format.hpp>
#include <npa/stats.hpp>

#include <cstddef>
#include <cstdint>

namespace npa::image {

// ---- device ids ---------------------------------------------------------------------------
/// A PCI function: vendor in the high half, device in the low half.
constexpr std::uint32_t pci_device_id(std::uint16_t vendor, std::uint16_t device) noexcept {
    return (std::uint32_t{vendor} << 16) | device;
}
/// A simulated device: vendor 0xffff, which no PCI function has.
constexpr std::uint32_t sim_device_id(std::uint16_t n) noexcept { return pci_device_id(0xffff, n); }

// ---- the layouts both sides compile in ------------------------------------------------------
static_assert(offsetof(packet_buffer, data_len) == 20 &&
              offsetof(packet_buffer, data_off) == 24 && offsetof(packet_buffer, offload) == 32);
static_assert(sizeof(buffer_ref) == 8);
static_assert(sizeof(queue_config) == 24 && offsetof(queue_config, mtu) == 12);
static_assert(sizeof(capabilities) == 24 && offsetof(capabilities, max_mtu) == 20);
static_assert(sizeof(queue_stats) == 11 * 8);

/// The layout a buffer handle reads: npa::buffer_ref's is packet_buffer; another handle
/// names its own (mbuf_layout.hpp's mbuf_view and npa::dpdk::mbuf_ref: rte_mbuf).
template <class Buffer>
inline constexpr buffer_layout layout_of = Buffer::image_buffer_layout;
template <>
inline constexpr buffer_layout layout_of<buffer_ref> = buffer_layout::packet_buffer;

/// plugin_ops::features bits.
inline constexpr std::uint32_t feature_health = 1;         ///< npa::reports_health
inline constexpr std::uint32_t feature_rx_drain_bound = 2; ///< npa::bounds_rx_drain

extern "C" {

/// What the host offers: memory for the control path, and the shell API per path.
struct shell_table {
    std::uint16_t abi_major;
    std::uint16_t abi_minor;
    std::uint32_t size;          ///< sizeof(shell_table) as the host knows it
    std::uint32_t buffer_layout; ///< enum buffer_layout: the host's buffers
    std::uint32_t reserved;
    /// Control path only (attach, construct): memory for the plugin's ring books.
    void* (*mem_alloc)(std::size_t bytes, std::size_t align) noexcept;
    void (*mem_free)(void* p) noexcept;
    // The shell API (concepts/shell_api.hpp); `api` is the pointer attach() was given.
    // Buffer arrays (`out`, `in`, `bufs` below) are n handles of the host's layout.
    std::uint32_t (*alloc_rx_buffers)(void* api, std::uint16_t q, void* out,
                                      std::uint32_t n) noexcept;
    void (*release_rx_buffers)(void* api, std::uint16_t q, const void* in,
                               std::uint32_t n) noexcept;
    void (*tx_complete)(void* api, std::uint16_t q, const void* in, std::uint32_t n) noexcept;
    void (*tx_unsent)(void* api, std::uint16_t q, const void* in, std::uint32_t n) noexcept;
    void (*log)(void* api, std::uint8_t level, const char* msg) noexcept;
    /// Minor 2: the shell's clock (npa::provides_clock), nanoseconds; null when the host's
    /// API has none (the image then reads a clock that stands still).
    std::uint64_t (*now_ns)(void* api) noexcept;
};
static_assert(sizeof(shell_table) == 80);

/// What the image offers: one plugin type's operations (concepts/plugin.hpp), each taking
/// the instance the host construct()ed.
struct plugin_ops {
    std::uint16_t abi_major;
    std::uint16_t abi_minor;
    std::uint32_t size;          ///< sizeof(plugin_ops) as the image knows it
    std::uint32_t device_id;     ///< as in the image header
    std::uint32_t features;      ///< feature_* bits
    const char* name;
    std::size_t instance_size;
    std::size_t instance_align;
    void (*construct)(void* self) noexcept;
    void (*destroy)(void* self) noexcept;
    /// errc as a byte; *reason is a string in the image (valid while it is loaded).
    std::uint8_t (*attach)(void* self, const shell_table* shell, void* api, void* window,
                           const queue_config* qc, const char** reason) noexcept;
    void (*detach)(void* self) noexcept;
    std::uint16_t (*tx_burst)(void* self, std::uint16_t q, void* bufs, std::uint16_t n) noexcept;
    std::uint16_t (*rx_burst)(void* self, std::uint16_t q, void* out, std::uint16_t n) noexcept;
    std::uint32_t (*tx_reap)(void* self, std::uint16_t q) noexcept;
    std::uint32_t (*tx_in_flight)(const void* self, std::uint16_t q) noexcept;
    void (*irq_arm)(void* self, std::uint16_t q) noexcept;
    void (*irq_disarm)(void* self, std::uint16_t q) noexcept;
    void (*get_capabilities)(const void* self, capabilities* out) noexcept;
    const queue_stats* (*stats)(const void* self, std::uint16_t q) noexcept;
    std::uint8_t (*health)(const void* self) noexcept;
    std::uint32_t (*rx_drain_bound)(const void* self, std::uint16_t q) noexcept;
};
static_assert(sizeof(plugin_ops) == 152);

/// The image's one export.
using entry_fn = const plugin_ops* (*)(const shell_table* host) noexcept;

} // extern "C"

} // namespace npa::image
