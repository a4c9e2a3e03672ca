// npa/image/loaded_plugin.hpp: a loaded plugin image as an npa::plugin, for the shell.
//
// loaded_plugin<Api> is a plugin type like any compiled-in one: the shell lists it among
// its plugin templates and add_path<loaded_plugin>() binds it to an image_device (the
// image's operations and the device window they drive). Each operation is one call
// through the image's plugin_ops table; calls back into the shell go through
// shell_table_for<Api>, whose entries call the Api directly. So a burst costs one indirect
// call more than a compiled-in plugin, and buffers cross as they are: the Api's buffer
// type names the layout (layout_of: buffer_ref, or net_npa's mbuf_ref), and the image was
// entered with that layout (the host's loader asks for it).
//
// Who loads the image (validation, signature, mapping) is the host's business: the POSIX
// loader is adapters/image (npa/image/posix_loader.hpp). The image stays loaded while a
// loaded_plugin instance or an image_device holds it (image_hold): a path removed from the
// shell deletes its plugin, and with the last hold the host unloads the image.
#pragma once

#include <npa/concepts/plugin.hpp>
#include <npa/image/abi.hpp>
#include <npa/status.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <utility>

namespace npa::image {

/// A count on a loaded image, kept through the host's functions: the image stays mapped
/// while any hold on it lives (posix_loader.hpp unmaps at zero). Copying takes another
/// count, destruction gives one back. Without functions it holds nothing (a host whose
/// images live for the whole process).
class image_hold {
public:
    using count_fn = void (*)(void* owner) noexcept;

    image_hold() noexcept = default;
    image_hold(void* owner, count_fn retain, count_fn release) noexcept
        : owner_(owner), retain_(retain), release_(release) {
        take();
    }
    image_hold(const image_hold& o) noexcept
        : owner_(o.owner_), retain_(o.retain_), release_(o.release_) {
        take();
    }
    image_hold(image_hold&& o) noexcept
        : owner_(std::exchange(o.owner_, nullptr)), retain_(std::exchange(o.retain_, nullptr)),
          release_(std::exchange(o.release_, nullptr)) {}
    image_hold& operator=(image_hold o) noexcept {
        std::swap(owner_, o.owner_);
        std::swap(retain_, o.retain_);
        std::swap(release_, o.release_);
        return *this;
    }
    ~image_hold() {
        if (release_ != nullptr) {
            release_(owner_);
        }
    }

private:
    void take() noexcept {
        if (retain_ != nullptr) {
            retain_(owner_);
        }
    }
    void* owner_ = nullptr;
    count_fn retain_ = nullptr;
    count_fn release_ = nullptr;
};

/// What a loaded plugin attaches to: the image's operations, the device window, and a
/// hold on the image (a path's plugin instance keeps its own while it exists).
struct image_device {
    const plugin_ops* ops = nullptr;
    void* window = nullptr;
    image_hold hold{};
    buffer_layout layout = buffer_layout::packet_buffer; ///< the layout ops were entered with
};

/// Binds an image's operations to a window, if the image drives that window's device.
template <class Window>
[[nodiscard]] result<image_device> bind_device(
    const plugin_ops& ops, Window& w, image_hold hold = {},
    buffer_layout layout = buffer_layout::packet_buffer) noexcept {
    if (ops.device_id != Window::image_device_id) {
        return status{errc::not_supported, "image: the plugin drives another device"};
    }
    return image_device{&ops, &w, std::move(hold), layout};
}

namespace detail {
/// Control-path memory for an image (instances, ring books), from the host's heap. Every
/// block is aligned to host_align (mem_free is not told the alignment); more is refused.
inline constexpr std::size_t host_align = 64;
inline void* host_alloc(std::size_t n, std::size_t align) noexcept {
    return align <= host_align ? ::operator new(n, std::align_val_t{host_align}, std::nothrow)
                               : nullptr;
}
inline void host_free(void* p) noexcept { ::operator delete(p, std::align_val_t{host_align}); }
/// The shell table's now_ns for a host API: its clock, or null without one.
template <class Api>
constexpr auto host_clock() noexcept -> std::uint64_t (*)(void*) noexcept {
    if constexpr (provides_clock<Api>) {
        return [](void* a) noexcept { return static_cast<Api*>(a)->now_ns(); };
    } else {
        return nullptr;
    }
}
} // namespace detail

/// The table a host enters an image with (npa_image_entry): versions, the host's buffer
/// layout and memory. Its shell API entries are null: they are per shell, given at attach
/// (shell_table_for), and an image never calls them through this one.
template <buffer_layout Layout>
inline constexpr shell_table host_entry_table_for = {
    abi_major, abi_minor, sizeof(shell_table), static_cast<std::uint32_t>(Layout), 0,
    &detail::host_alloc, &detail::host_free, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
inline constexpr const shell_table& host_entry_table =
    host_entry_table_for<buffer_layout::packet_buffer>;

/// The shell table an image calls back through for a shell whose API type is Api.
template <class Api, class B = typename Api::buffer_type>
inline constexpr shell_table shell_table_for = {
    abi_major, abi_minor, sizeof(shell_table), static_cast<std::uint32_t>(layout_of<B>), 0,
    &detail::host_alloc, &detail::host_free,
    [](void* a, std::uint16_t q, void* out, std::uint32_t n) noexcept -> std::uint32_t {
        return static_cast<Api*>(a)->alloc_rx_buffers(q, std::span<B>(static_cast<B*>(out), n));
    },
    [](void* a, std::uint16_t q, const void* in, std::uint32_t n) noexcept {
        static_cast<Api*>(a)->release_rx_buffers(q, std::span<const B>(static_cast<const B*>(in), n));
    },
    [](void* a, std::uint16_t q, const void* in, std::uint32_t n) noexcept {
        static_cast<Api*>(a)->tx_complete(q, std::span<const B>(static_cast<const B*>(in), n));
    },
    [](void* a, std::uint16_t q, const void* in, std::uint32_t n) noexcept {
        static_cast<Api*>(a)->tx_unsent(q, std::span<const B>(static_cast<const B*>(in), n));
    },
    [](void* a, std::uint8_t level, const char* msg) noexcept {
        static_cast<Api*>(a)->log(static_cast<log_level>(level), msg);
    },
    detail::host_clock<Api>()};

template <class Api>
class loaded_plugin {
public:
    using buffer_type = typename Api::buffer_type;
    using device_type = image_device;
    static_assert(sizeof(buffer_type) == 8,
                  "loaded_plugin: images move 8-byte handles (buffer_ref, an rte_mbuf*)");
    /// The layout the image must have been entered with (the loader's `layout`).
    static constexpr buffer_layout layout = layout_of<buffer_type>;
    static constexpr const char* name = "image";

    loaded_plugin() noexcept = default;
    loaded_plugin(loaded_plugin&& o) noexcept
        : ops_(std::exchange(o.ops_, nullptr)), self_(std::exchange(o.self_, nullptr)),
          hold_(std::move(o.hold_)) {}
    loaded_plugin& operator=(loaded_plugin&& o) noexcept {
        if (this != &o) {
            release();
            ops_ = std::exchange(o.ops_, nullptr);
            self_ = std::exchange(o.self_, nullptr);
            hold_ = std::move(o.hold_);
        }
        return *this;
    }
    loaded_plugin(const loaded_plugin&) = delete;
    loaded_plugin& operator=(const loaded_plugin&) = delete;
    ~loaded_plugin() { release(); }

    /// The plugin's own name, from the image ("image" until attached).
    [[nodiscard]] const char* plugin_name() const noexcept { return ops_ ? ops_->name : name; }

    // ---- attach: an instance of the image's plugin, then its attach ---------------------
    status attach(Api& api, device_type& dev, const queue_config& qc) {
        if (dev.ops == nullptr || dev.window == nullptr) {
            return {errc::invalid_argument, "image: no image bound to this device"};
        }
        if (dev.layout != layout) {
            return {errc::invalid_argument,
                    "image: loaded for another buffer layout than this shell's buffers"};
        }
        if (ops_ != dev.ops) {
            release();
            void* mem = detail::host_alloc(dev.ops->instance_size, dev.ops->instance_align);
            if (mem == nullptr) {
                return {errc::no_memory, "image: no memory for the plugin instance"};
            }
            dev.ops->construct(mem);
            ops_ = dev.ops;
            self_ = mem;
            hold_ = dev.hold; // the image stays mapped while this instance exists
        }
        const char* reason = nullptr;
        const auto code = static_cast<errc>(
            ops_->attach(self_, &shell_table_for<Api>, &api, dev.window, &qc, &reason));
        return {code, reason};
    }
    void detach() noexcept {
        if (self_ != nullptr) {
            ops_->detach(self_);
        }
    }

    // ---- data path: one call through the image's table each ------------------------------
    std::uint16_t tx_burst(std::uint16_t q, std::span<buffer_type> bufs) noexcept {
        return ops_->tx_burst(self_, q, bufs.data(), static_cast<std::uint16_t>(bufs.size()));
    }
    std::uint16_t rx_burst(std::uint16_t q, std::span<buffer_type> out) noexcept {
        return ops_->rx_burst(self_, q, out.data(), static_cast<std::uint16_t>(out.size()));
    }
    std::uint32_t tx_reap(std::uint16_t q) noexcept { return ops_->tx_reap(self_, q); }
    [[nodiscard]] std::uint32_t tx_in_flight(std::uint16_t q) const noexcept {
        return self_ != nullptr ? ops_->tx_in_flight(self_, q) : 0;
    }
    void irq_arm(std::uint16_t q) noexcept { ops_->irq_arm(self_, q); }
    void irq_disarm(std::uint16_t q) noexcept { ops_->irq_disarm(self_, q); }

    // ---- control thread ------------------------------------------------------------------
    [[nodiscard]] npa::capabilities capabilities() const noexcept {
        npa::capabilities c{};
        if (self_ != nullptr) {
            ops_->get_capabilities(self_, &c);
        }
        return c;
    }
    [[nodiscard]] const queue_stats& stats(std::uint16_t q) const noexcept {
        static constexpr queue_stats none{};
        return self_ != nullptr ? *ops_->stats(self_, q) : none;
    }
    [[nodiscard]] errc health() const noexcept {
        return self_ != nullptr ? static_cast<errc>(ops_->health(self_)) : errc::ok;
    }
    [[nodiscard]] std::uint32_t rx_drain_bound(std::uint16_t q) const noexcept {
        return self_ != nullptr ? ops_->rx_drain_bound(self_, q) : ~std::uint32_t{0};
    }

private:
    void release() noexcept {
        if (self_ != nullptr) {
            ops_->destroy(self_);
            detail::host_free(self_);
        }
        ops_ = nullptr;
        self_ = nullptr;
        hold_ = image_hold{}; // last: the image's code ran destroy above
    }

    const plugin_ops* ops_ = nullptr;
    void* self_ = nullptr;
    image_hold hold_{};
};

} // namespace npa::image
