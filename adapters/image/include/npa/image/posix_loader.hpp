// npa/image/posix_loader.hpp: loading a plugin image in a POSIX process (the sim, npa-linkd).
//
// load_image() takes the file's bytes, the device the host has, the keys it trusts and
// the host's buffer layout (npa::packet_buffer, or rte_mbuf in net_npa), and either refuses with a reason (nothing mapped, nothing run) or returns a loaded_image
// that owns the mapping. In order:
//   1. parse_image: structure, bounds, protections, relocations (npa/image/parse.hpp);
//   2. the device: the header must name the host's device, and list the host's layout;
//   3. the digest, then an Ed25519 signature by one of the trusted keys (libsodium);
//   4. map the image's pages writable (not executable), copy it in, relocate;
//   5. give each segment its final protection (W^X: never writable and executable at
//      once), the gaps none;
//   6. call the entry with the host table; the image checks the host's ABI and returns
//      its operations, whose ABI, device and size the host checks in turn.
// The image is unmapped when the loaded_image and every hold on it (bound devices, plugin
// instances: image_hold in loaded_plugin.hpp) are gone.
#pragma once

#include <npa/image/abi.hpp>
#include <npa/image/loaded_plugin.hpp>
#include <npa/image/parse.hpp>
#include <npa/image/signing.hpp>
#include <npa/status.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <utility>

namespace npa::image {

/// A mapped, relocated, protected image and its operations: a handle on a count. The
/// mapping goes when the last handle and the last hold (image_hold: bound devices, plugin
/// instances) are gone, so a path removed from a shell unloads an image nobody else holds.
class loaded_image {
public:
    loaded_image(loaded_image&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    loaded_image& operator=(loaded_image&&) = delete;
    loaded_image(const loaded_image&) = delete;
    loaded_image& operator=(const loaded_image&) = delete;
    ~loaded_image() {
        if (s_ != nullptr) {
            release(s_);
        }
    }

    [[nodiscard]] const plugin_ops& ops() const noexcept { return *s_->ops; }
    [[nodiscard]] const char* name() const noexcept { return s_->ops->name; }
    [[nodiscard]] const digest_bytes& digest() const noexcept { return s_->digest; }
    [[nodiscard]] std::size_t mapped_bytes() const noexcept { return s_->size; }
    /// The trusted key whose signature the image carries.
    [[nodiscard]] const public_key& signer() const noexcept { return s_->signer; }
    /// The device a loaded_plugin attaches to, if the image drives this window's device;
    /// it holds the image.
    template <class Window>
    [[nodiscard]] result<image_device> bind(Window& w) const noexcept {
        return bind_device(*s_->ops, w, image_hold(s_, &retain, &release), s_->layout);
    }

private:
    friend result<loaded_image> load_image(std::span<const std::byte>, std::uint32_t,
                                           std::span<const public_key>, buffer_layout) noexcept;
    struct state {
        void* base;
        std::size_t size;
        const plugin_ops* ops;
        digest_bytes digest;
        public_key signer;
        buffer_layout layout;
        std::atomic<std::uint32_t> refs{1};
    };
    explicit loaded_image(state* s) noexcept : s_(s) {}

    static void retain(void* s) noexcept {
        // relaxed: taking a count needs no ordering, the caller already holds one.
        static_cast<state*>(s)->refs.fetch_add(1, std::memory_order_relaxed);
    }
    static void release(void* p) noexcept {
        auto* s = static_cast<state*>(p);
        if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            ::munmap(s->base, s->size);
            delete s;
        }
    }

    state* s_;
};

namespace detail {
/// Unmaps on scope exit unless released (every refusal after step 4 unmaps).
struct mapping {
    void* p;
    std::size_t n;
    ~mapping() {
        if (p != nullptr) {
            ::munmap(p, n);
        }
    }
};

[[nodiscard]] inline int posix_prot(std::uint32_t prot) noexcept {
    return ((prot & prot_read) != 0 ? PROT_READ : 0) | ((prot & prot_write) != 0 ? PROT_WRITE : 0) |
           ((prot & prot_exec) != 0 ? PROT_EXEC : 0);
}

/// Step 3: the digest, then a signature by one of `keys`.
[[nodiscard]] inline status check_signature(const image_view& v, std::span<const public_key> keys,
                                            digest_bytes& d, public_key& signer) noexcept {
    if (sodium_init() < 0) {
        return {errc::not_supported, "image: libsodium failed to start"};
    }
    d = image_digest(v.file);
    if (sodium_memcmp(d.data(), v.header.digest, d.size()) != 0) {
        return {errc::refused, "image: digest mismatch (the image was altered or damaged)"};
    }
    for (const public_key& k : keys) {
        if (crypto_sign_verify_detached(v.header.signature, d.data(), d.size(), k.data()) == 0) {
            signer = k;
            return status::success();
        }
    }
    return {errc::refused, "image: not signed by a trusted key (unknown signer)"};
}

/// Step 6's host half: the operations the image returned fit this host.
[[nodiscard]] inline status check_ops(const plugin_ops* ops, const image_header& h) noexcept {
    if (ops == nullptr) {
        return {errc::not_supported, "image: the plugin refused this host's ABI"};
    }
    if (ops->abi_major != abi_major || ops->abi_minor > abi_minor || ops->size < sizeof(plugin_ops)) {
        return {errc::not_supported, "image: its operations table has another ABI version"};
    }
    if (ops->device_id != h.device_id) {
        return {errc::invalid_argument, "image: its operations name another device than its header"};
    }
    return status::success();
}
} // namespace detail

/// The entry table of a host whose buffers have `layout` (loaded_plugin.hpp).
[[nodiscard]] inline const shell_table* host_entry_table_of(buffer_layout layout) noexcept {
    switch (layout) {
    case buffer_layout::packet_buffer: return &host_entry_table_for<buffer_layout::packet_buffer>;
    case buffer_layout::rte_mbuf: return &host_entry_table_for<buffer_layout::rte_mbuf>;
    }
    return nullptr;
}

/// Loads `file` for a host whose device is `device_id` and whose buffers have `layout`,
/// trusting signatures by `keys`.
[[nodiscard]] inline result<loaded_image> load_image(
    std::span<const std::byte> file, std::uint32_t device_id, std::span<const public_key> keys,
    buffer_layout layout = buffer_layout::packet_buffer) noexcept {
    image_view v; // step 1
    if (const status st = parse_image(file, v); !st) {
        return st;
    }
    const image_header& h = v.header;
    if (h.device_id != device_id) { // step 2
        return status{errc::not_supported, "image: built for another device"};
    }
    const shell_table* host = host_entry_table_of(layout);
    if (host == nullptr || (h.buffer_layout & layout_bit(layout)) == 0) {
        return status{errc::not_supported,
                      "image: built without this host's buffer layout (it lists others)"};
    }
    digest_bytes d{}; // step 3
    public_key signer{};
    if (const status st = detail::check_signature(v, keys, d, signer); !st) {
        return st;
    }
    const long page = ::sysconf(_SC_PAGESIZE);
    if (page <= 0 || image_page % static_cast<std::uint32_t>(page) != 0) {
        return status{errc::not_supported, "image: host pages larger than the image's"};
    }
    // step 4: writable, never executable while it is.
    void* base = ::mmap(nullptr, h.mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return status{errc::no_memory, "image: cannot map its memory"};
    }
    detail::mapping m{base, h.mem_size};
    relocate_image(v, {static_cast<std::byte*>(base), h.mem_size}, reinterpret_cast<std::uintptr_t>(base));
    // step 5: everything none, then each segment its own protection.
    if (::mprotect(base, h.mem_size, PROT_NONE) != 0) {
        return status{errc::device_error, "image: cannot protect its memory"};
    }
    for (const image_segment& s : v.segment_list()) {
        if (::mprotect(static_cast<std::byte*>(base) + s.offset, s.size, detail::posix_prot(s.prot)) != 0) {
            return status{errc::device_error, "image: cannot protect a segment"};
        }
    }
    // step 6
    const auto entry = reinterpret_cast<entry_fn>(static_cast<std::byte*>(base) + h.entry);
    const plugin_ops* ops = entry(host);
    if (const status st = detail::check_ops(ops, h); !st) {
        return st;
    }
    auto* st = new (std::nothrow) loaded_image::state{base, h.mem_size, ops, d, signer, layout};
    if (st == nullptr) {
        return status{errc::no_memory, "image: no memory to keep it"};
    }
    m.p = nullptr;
    return loaded_image(st);
}

} // namespace npa::image
