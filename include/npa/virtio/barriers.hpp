// npa/virtio/barriers.hpp: the barriers a virtqueue driver puts between its ring accesses,
// as the device's ordering requires (virtio 1.2 section 6.1, VIRTIO_F_ORDER_PLATFORM).
//
// By default a virtio device is another CPU of the same coherent system (a hypervisor's
// back end, a vhost process), so the barriers SMP code uses order the driver's accesses
// for it: C++ acquire loads and release stores, and a seq_cst fence where a store must be
// seen before a later load (Linux's virt_wmb / virt_rmb / virt_mb, "weak barriers").
// A device that offers ORDER_PLATFORM may be real hardware that reaches memory by DMA,
// outside the CPUs' inner shareable domain: once the feature is negotiated the driver
// must order its accesses as the platform orders DMA (6.1), which Linux does by dropping
// weak_barriers for every virtqueue of such a device (__vring_new_virtqueue) and then using
// dma_wmb / dma_rmb / mb (virtio_wmb, virtio_rmb, virtio_mb in virtio_ring.h):
//
//            wmb (before publishing)   rmb (after seeing the index)   mb (store, then load)
//   arm64    dmb oshst                 dmb oshld                      dsb sy
//   x86      (what acquire, release and seq_cst already give: nothing added)
//   other    seq_cst fence             seq_cst fence                  seq_cst fence
//
// On x86 DMA is coherent and ordered like the CPUs, so the platform's barriers add nothing
// the default ones lack. Elsewhere without a table entry (s390x among them: Linux's dma_wmb
// and dma_rmb there are its full serialisation, which is what a seq_cst fence compiles to)
// a full fence is the safe choice.
//
// driver_barriers is chosen once per queue when it is set up: the default path pays a
// test of one byte the queue already has in cache, and no barrier it did not have before;
// on x86, where the two kinds compile alike, not even the test.
//
// Freestanding: no exceptions, no allocation, standard headers only.
#pragma once

#include <atomic>
#include <cstdint>

namespace npa::virtio {

namespace platform_barrier {
// x86 has no entry: there the platform's barriers are what the release stores, acquire
// loads and seq_cst fences already are, and driver_barriers adds nothing (below).
#if defined(__aarch64__)
/// Earlier stores to DMA memory reach the device before later ones (Linux dma_wmb).
inline void wmb() noexcept { asm volatile("dmb oshst" ::: "memory"); }
/// Earlier loads from DMA memory complete before later ones (Linux dma_rmb).
inline void rmb() noexcept { asm volatile("dmb oshld" ::: "memory"); }
/// Every earlier access completes before any later one, stores before loads included
/// (Linux mb()).
inline void mb() noexcept { asm volatile("dsb sy" ::: "memory"); }
#else
inline void wmb() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void rmb() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void mb() noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
#endif
} // namespace platform_barrier

/// Which barriers a queue uses (see the file comment).
enum class ordering : std::uint8_t {
    smp,      ///< the device is another CPU: acquire, release and seq_cst fences suffice
    platform, ///< VIRTIO_F_ORDER_PLATFORM: the platform's DMA barriers on top of them
};

/// The barriers of one virtqueue driver. The driver's own acquire loads and release
/// stores stay as they are (they order the compiler and the CPUs); these add what DMA needs.
class driver_barriers {
public:
    void set(ordering o) noexcept { platform_ = o == ordering::platform; }
    [[nodiscard]] ordering get() const noexcept { return platform_ ? ordering::platform : ordering::smp; }

    // x86: nothing to choose (platform_barrier above), so nothing is tested; a packed ring
    // would otherwise pay the test per descriptor.
#if defined(__x86_64__) || defined(__i386__)
    void before_publish() const noexcept {}
    void after_acquire() const noexcept {}
    void store_load() const noexcept { std::atomic_thread_fence(std::memory_order_seq_cst); }
#else
    /// Before the store that hands descriptors over (Linux virtio_wmb).
    void before_publish() const noexcept {
        if (platform_) {
            platform_barrier::wmb();
        }
    }
    /// After the load that says the device wrote something, before it is read (virtio_rmb).
    void after_acquire() const noexcept {
        if (platform_) {
            platform_barrier::rmb();
        }
    }
    /// Between a store the device must see and a load of what it wrote (virtio_mb).
    void store_load() const noexcept {
        if (platform_) {
            platform_barrier::mb();
        } else {
            std::atomic_thread_fence(std::memory_order_seq_cst);
        }
    }
#endif

private:
    bool platform_ = false;
};

} // namespace npa::virtio
