// The core under kernel-style flags, instantiated and linked without the C++ runtime.
//
// cmake/npa_header_checks.cmake compiles this file with -ffreestanding -fno-exceptions
// -fno-rtti -mno-red-zone and links it with cmake/freestanding/memory_functions.cpp into a
// shared object with -nostdlib -Wl,--no-undefined: a call into libstdc++ or libsupc++ (operator new, __cxa_*,
// the unwinder, std::terminate) anywhere in what is instantiated here fails the link.
//
// What is instantiated is what a kernel module hosting npa would use first: an index ring
// in memory the module provides, the generation-bit cursors over a real descriptor layout,
// a buffer pool over borrowed memory with a spin lock, and a plugin checked against a
// shell API built from that pool. The functions have C linkage so that a C shim (the
// module's side) could call them; the link keeps them because they are exported.
#include <npa/buffer/fixed_pool.hpp>
#include <npa/concepts/plugin.hpp>
#include <npa/control_state.hpp>
#include <npa/plugins/igbvf/plugin.hpp>
#include <npa/plugins/virtio_net/plugin.hpp>
#include <npa/plugins/vmxnet3/plugin.hpp>
#include <npa/ring/gen_ring.hpp>
#include <npa/ring/index_ring.hpp>
#include <npa/virtio/packed_device.hpp>
#include <npa/virtio/packed_ring.hpp>
#include <npa/virtio/split_device.hpp>
#include <npa/virtio/split_ring.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace {

using pool_type = npa::shared_fixed_pool<npa::borrowed_memory>;
using ring_type = npa::index_ring<npa::buffer_ref, 256>;

// The smallest shell API a module would write: buffers come from the pool, finished TX
// buffers go back to it, logging goes nowhere (a module would call printk).
struct module_api {
    using buffer_type = npa::buffer_ref;
    pool_type* pool = nullptr;

    std::uint32_t alloc_rx_buffers(std::uint16_t, std::span<buffer_type> out) noexcept {
        return pool->alloc_burst(out);
    }
    void release_rx_buffers(std::uint16_t, std::span<const buffer_type> b) noexcept {
        pool->free_burst(b);
    }
    void tx_complete(std::uint16_t, std::span<const buffer_type> b) noexcept {
        pool->free_burst(b);
    }
    void tx_unsent(std::uint16_t, std::span<const buffer_type> b) noexcept { pool->free_burst(b); }
    void log(npa::log_level, const char*) noexcept {}
};

static_assert(npa::check_plugin<npa::vmxnet3_plugin<module_api>, module_api>());
static_assert(npa::check_plugin<npa::igbvf_plugin<module_api>, module_api>());
static_assert(npa::check_plugin<npa::virtio_net_plugin<module_api>, module_api>());

} // namespace

extern "C" {

/// Bytes and alignment the caller provides for npa_ks_ring_create().
std::size_t npa_ks_ring_bytes(void) noexcept { return sizeof(ring_type); }

/// An index ring constructed in caller memory; moves `n` handles through it and back.
/// Returns how many came out, in order (n when the ring works).
std::uint32_t npa_ks_ring_roundtrip(void* mem, std::uint32_t n) noexcept {
    ring_type* r = ring_type::create_at(mem);
    npa::buffer_ref in[32];
    npa::buffer_ref out[32];
    n = n > 32 ? 32 : n;
    for (std::uint32_t i = 0; i < n; ++i) {
        in[i] =
            npa::buffer_ref(reinterpret_cast<npa::packet_buffer*>(std::uintptr_t{64} * (i + 1)));
    }
    const std::uint32_t put = r->enqueue_burst(std::span<const npa::buffer_ref>(in, n));
    const std::uint32_t got = r->dequeue_burst(std::span<npa::buffer_ref>(out, put));
    std::uint32_t same = 0;
    for (std::uint32_t i = 0; i < got; ++i) {
        same += out[i] == in[i] ? 1u : 0u;
    }
    return same;
}

/// vmxnet3's TX ring cursors over `slots` descriptors in caller memory: produces `n`
/// descriptors and consumes them again; returns how many the consumer saw.
std::uint32_t npa_ks_gen_roundtrip(void* ring, std::uint32_t slots, std::uint32_t n) noexcept {
    using desc = npa::vmxnet3::tx_desc;
    auto* d = static_cast<desc*>(ring);
    npa::gen_producer<npa::vmxnet3::tx_traits> prod(d, slots);
    npa::gen_consumer<npa::vmxnet3::tx_traits> cons(d, slots, true);
    for (std::uint32_t i = 0; i < n && i < slots; ++i) {
        prod.produce(desc{});
    }
    desc seen[8];
    std::uint32_t total = 0;
    for (;;) {
        const std::uint32_t k = cons.poll_burst(std::span<desc>(seen, 8));
        if (k == 0) {
            break;
        }
        total += k;
    }
    return total;
}

/// A spin-locked buffer pool over memory the caller owns: allocates every buffer, frees
/// them, and returns how many were handed out (count when the memory was big enough).
std::uint32_t npa_ks_pool_cycle(void* mem, std::size_t bytes, std::uint32_t count) noexcept {
    npa::pool_config c;
    c.count = count;
    c.buf_size = 2176;
    auto made = pool_type::create(c, npa::borrowed_memory(static_cast<std::byte*>(mem), bytes,
                                                          reinterpret_cast<std::uintptr_t>(mem)));
    if (!made) {
        return 0;
    }
    pool_type& pool = *made;
    module_api api{&pool};
    npa::buffer_ref bufs[16];
    std::uint32_t total = 0;
    for (;;) {
        const std::uint32_t k = api.alloc_rx_buffers(0, bufs);
        if (k == 0) {
            break;
        }
        total += k;
        bufs[0].set_length(60);
        api.tx_complete(0, std::span<const npa::buffer_ref>(bufs, k));
        if (total >= count) {
            break;
        }
    }
    return total;
}

/// The control state a shell keeps, with `n` VLAN filters added (ids 1..n); returns how
/// many it counts. Counting must not call into libgcc (__popcountdi2 without -mpopcnt):
/// the kernel exports no such helper, and the link here would fail.
std::uint32_t npa_ks_vlan_count(std::uint32_t n) noexcept {
    npa::control_state st;
    for (std::uint32_t i = 1; i <= n && i <= npa::max_vlan_id; ++i) {
        st.apply(npa::control_request::make_vlan(true, static_cast<std::uint16_t>(i)));
    }
    return st.vlan_count();
}

/// A split virtqueue of `n` entries in caller memory (virtio::layout_of(n).total bytes,
/// 16-byte aligned, and split_driver::state_words(n) words of driver state): `chains`
/// chains through both sides and back; returns how many came back.
std::uint32_t npa_ks_virtq_roundtrip(void* block, std::uint16_t* state, std::uint32_t n,
                                     std::uint32_t chains) noexcept {
    namespace v = npa::virtio;
    const v::split_ring r = v::split_ring::in_block(block, n);
    v::split_driver drv;
    v::split_device dev;
    if (!drv.reset(r, std::span<std::uint16_t>(state, v::split_driver::state_words(n)), true) ||
        !dev.reset(r, true)) {
        return 0;
    }
    std::uint32_t back = 0;
    v::segment segs[4];
    for (std::uint32_t i = 0; i < chains; ++i) {
        const v::segment s{0x1000, 64, true};
        if (drv.add(std::span<const v::segment>(&s, 1)) < 0) {
            break;
        }
        (void)drv.publish();
        v::chain c;
        if (dev.pop(c, segs, [](std::uint64_t, std::uint32_t, bool) { return true; }) !=
            v::pop_status::ok) {
            break;
        }
        dev.push_used(c.head, 60);
        dev.publish_used();
        v::used_chain u;
        back += drv.poll_used(u) == v::used_status::ok ? 1u : 0u;
    }
    return back;
}

/// A packed virtqueue of `n` descriptors in caller memory (16 * n bytes, 16-byte aligned,
/// then 8 bytes for the two event areas; packed_driver::state_words(n) words of driver
/// state): `chains` buffers through both sides and back; returns how many came back.
std::uint32_t npa_ks_packed_roundtrip(void* block, std::uint16_t* state, std::uint32_t n,
                                      std::uint32_t chains) noexcept {
    namespace v = npa::virtio;
    auto* b = static_cast<std::byte*>(block);
    const v::packed_ring r(b, b + v::packed_desc_bytes(n), b + v::packed_desc_bytes(n) + 4, n);
    v::packed_driver drv;
    v::packed_device dev;
    if (!drv.reset(r, std::span<std::uint16_t>(state, v::packed_driver::state_words(n))) ||
        !dev.reset(r)) {
        return 0;
    }
    std::uint32_t back = 0;
    v::segment segs[4];
    for (std::uint32_t i = 0; i < chains; ++i) {
        const v::segment s{0x1000, 64, true};
        if (drv.add(std::span<const v::segment>(&s, 1)) < 0) {
            break;
        }
        (void)drv.publish();
        v::chain c;
        std::uint16_t descs = 0;
        if (dev.pop(c, descs, segs, [](std::uint64_t, std::uint32_t, bool) { return true; }) !=
            v::pop_status::ok) {
            break;
        }
        dev.push_used(c.head, 60, descs);
        v::used_chain u;
        back += drv.poll_used(u) == v::used_status::ok ? 1u : 0u;
    }
    return back;
}

} // extern "C"
