// npa/image/entry.hpp: a plugin template as a plugin image's entry point.
//
// An image's source is three lines:
//
//     #include <npa/image/entry.hpp>
//     #include <npa/sim/simnic_plugin.hpp>
//     NPA_PLUGIN_IMAGE(npa::sim::simnic_plugin)
//
// The macro instantiates the plugin with image_api, an Api whose calls go through the
// host's shell_table (abi.hpp), once per buffer layout (image_layouts: npa::packet_buffer
// and rte_mbuf), fills one plugin_ops table per layout, exports npa_image_entry, which
// returns the table of the host's layout, and writes the image_note (the layouts included)
// the pack tool copies into the header. The plugin is the same source as the compiled-in
// one; only its Api differs. The device it drives is its device_type's image_device_id.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/image/abi.hpp>
#include <npa/image/mbuf_layout.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <span>

namespace npa::image {

/// The shell API inside an image: each call is one call through the host's table, whose
/// buffers are Buffer handles (the layout the host named).
template <class Buffer>
class image_api {
public:
    using buffer_type = Buffer;

    void bind(const shell_table* t, void* api) noexcept {
        t_ = t;
        api_ = api;
    }
    std::uint32_t alloc_rx_buffers(std::uint16_t q, std::span<Buffer> out) noexcept {
        return t_->alloc_rx_buffers(api_, q, out.data(), static_cast<std::uint32_t>(out.size()));
    }
    void release_rx_buffers(std::uint16_t q, std::span<const Buffer> in) noexcept {
        t_->release_rx_buffers(api_, q, in.data(), static_cast<std::uint32_t>(in.size()));
    }
    void tx_complete(std::uint16_t q, std::span<const Buffer> in) noexcept {
        t_->tx_complete(api_, q, in.data(), static_cast<std::uint32_t>(in.size()));
    }
    void tx_unsent(std::uint16_t q, std::span<const Buffer> in) noexcept {
        t_->tx_unsent(api_, q, in.data(), static_cast<std::uint32_t>(in.size()));
    }
    void log(log_level l, const char* msg) noexcept {
        t_->log(api_, static_cast<std::uint8_t>(l), msg);
    }
    /// The host's clock; one that stands still (0) if the host's API has none, so a wait
    /// the plugin bounds in time is then never given up (detach still returns everything).
    [[nodiscard]] std::uint64_t now_ns() const noexcept {
        return t_->now_ns != nullptr ? t_->now_ns(api_) : 0;
    }

private:
    const shell_table* t_ = nullptr;
    void* api_ = nullptr;
};
static_assert(shell_api<image_api<buffer_ref>> && shell_api<image_api<mbuf::mbuf_view>>);

/// The host table the image was entered with: the image's operator new uses its memory
/// functions (image_runtime.cpp).
inline const shell_table* entry_table = nullptr;

/// Whether an image built for this ABI can work with the host that offers `t` (its
/// buffer layout is chosen by image_entry::enter).
[[nodiscard]] inline bool host_compatible(const shell_table* t) noexcept {
    return t != nullptr && t->abi_major == abi_major && t->abi_minor >= abi_minor &&
           t->size >= sizeof(shell_table);
}

/// plugin_ops for P<image_api<Buffer>>: each operation casts the instance and forwards.
template <template <class> class P, class Buffer>
struct layout_entry {
    using api_type = image_api<Buffer>;
    using plugin = P<api_type>;
    using window = typename plugin::device_type;
    static_assert(check_plugin<plugin, api_type>());
    static constexpr std::uint32_t device_id = window::image_device_id;

    struct instance {
        api_type api;
        plugin p;
    };
    static instance& self(void* s) noexcept { return *static_cast<instance*>(s); }
    static const instance& self(const void* s) noexcept { return *static_cast<const instance*>(s); }

    static void construct(void* s) noexcept { ::new (s) instance{}; }
    static void destroy(void* s) noexcept { self(s).~instance(); }
    static std::uint8_t attach(void* s, const shell_table* t, void* api, void* win,
                               const queue_config* qc, const char** reason) noexcept {
        instance& in = self(s);
        in.api.bind(t, api);
        const status st = in.p.attach(in.api, *static_cast<window*>(win), *qc);
        *reason = st.reason();
        return static_cast<std::uint8_t>(st.code());
    }
    static void detach(void* s) noexcept { self(s).p.detach(); }
    static std::uint16_t tx_burst(void* s, std::uint16_t q, void* b, std::uint16_t n) noexcept {
        return self(s).p.tx_burst(q, std::span<Buffer>(static_cast<Buffer*>(b), n));
    }
    static std::uint16_t rx_burst(void* s, std::uint16_t q, void* b, std::uint16_t n) noexcept {
        return self(s).p.rx_burst(q, std::span<Buffer>(static_cast<Buffer*>(b), n));
    }
    static std::uint32_t tx_reap(void* s, std::uint16_t q) noexcept { return self(s).p.tx_reap(q); }
    static std::uint32_t tx_in_flight(const void* s, std::uint16_t q) noexcept {
        return self(s).p.tx_in_flight(q);
    }
    static void irq_arm(void* s, std::uint16_t q) noexcept { self(s).p.irq_arm(q); }
    static void irq_disarm(void* s, std::uint16_t q) noexcept { self(s).p.irq_disarm(q); }
    static void get_capabilities(const void* s, capabilities* out) noexcept {
        *out = self(s).p.capabilities();
    }
    static const queue_stats* stats(const void* s, std::uint16_t q) noexcept {
        return &self(s).p.stats(q);
    }
    // The optional operations: what the shell does for a plugin without them.
    static std::uint8_t health(const void* s) noexcept {
        if constexpr (reports_health<plugin>) {
            return static_cast<std::uint8_t>(self(s).p.health());
        } else {
            return static_cast<std::uint8_t>(errc::ok);
        }
    }
    static std::uint32_t rx_drain_bound(const void* s, std::uint16_t q) noexcept {
        if constexpr (bounds_rx_drain<plugin>) {
            return self(s).p.rx_drain_bound(q);
        } else {
            return ~std::uint32_t{0};
        }
    }

    static constexpr plugin_ops ops = {
        abi_major, abi_minor, sizeof(plugin_ops), device_id,
        (reports_health<plugin> ? feature_health : 0u) |
            (bounds_rx_drain<plugin> ? feature_rx_drain_bound : 0u),
        plugin::name, sizeof(instance), alignof(instance),
        &construct, &destroy, &attach, &detach, &tx_burst, &rx_burst, &tx_reap, &tx_in_flight,
        &irq_arm, &irq_disarm, &get_capabilities, &stats, &health, &rx_drain_bound};
};

/// An image's plugin, once per layout it carries, and its entry.
template <template <class> class P>
struct image_entry {
    using for_packet_buffer = layout_entry<P, buffer_ref>;
    using for_rte_mbuf = layout_entry<P, mbuf::mbuf_view>;
    using plugin = typename for_packet_buffer::plugin;
    static constexpr std::uint32_t device_id = for_packet_buffer::device_id;
    static constexpr std::uint32_t layouts =
        layout_bit(buffer_layout::packet_buffer) | layout_bit(buffer_layout::rte_mbuf);

    static constexpr image_note note() noexcept {
        image_note n{image_magic, abi_major, abi_minor, device_id, layouts, {}};
        for (std::size_t i = 0; i + 1 < sizeof(n.name) && plugin::name[i] != '\0'; ++i) {
            n.name[i] = plugin::name[i];
        }
        return n;
    }

    static const plugin_ops* enter(const shell_table* host) noexcept {
        if (!host_compatible(host)) {
            return nullptr;
        }
        const plugin_ops* ops = nullptr;
        switch (static_cast<buffer_layout>(host->buffer_layout)) {
        case buffer_layout::packet_buffer: ops = &for_packet_buffer::ops; break;
        case buffer_layout::rte_mbuf: ops = &for_rte_mbuf::ops; break;
        }
        if (ops != nullptr) {
            entry_table = host;
        }
        return ops; // null: a layout this image does not carry
    }
};

} // namespace npa::image

/// Defines the image's entry point and note for a plugin template (one per image).
#define NPA_PLUGIN_IMAGE(PluginTemplate)                                                     \
    [[gnu::section(".npa_image"), gnu::used]] constexpr ::npa::image::image_note             \
        npa_image_note = ::npa::image::image_entry<PluginTemplate>::note();                  \
    extern "C" [[gnu::visibility("default")]] const ::npa::image::plugin_ops*                \
    npa_image_entry(const ::npa::image::shell_table* host) noexcept {                        \
        return ::npa::image::image_entry<PluginTemplate>::enter(host);                       \
    }
