// npa/sim/guest_memory.hpp: the guest's physical memory as a device sees it.
//
// A device never holds a host pointer to guest memory. It holds device addresses (IOVAs)
// and asks the memory model to translate them, one access at a time, with the length of
// the access. An address outside every region, or an access that runs past the end of
// its region, is a counted DMA fault and yields nullptr: the device model reports it and
// never touches memory through a wild pointer. This is what lets the sim catch a plugin
// that posts a bad address (the IOMMU's job on real hardware).
//
// A watch (set_dma_watch) sees every buffer DMA that reached memory: the conformance kit
// uses it to catch a device that reads or writes a buffer the plugin has already handed
// back (a detach that took its buffers back without stopping the device first).
//
// Regions start at an IOVA far from any host pointer (4 GiB and up), so a plugin that
// posts a host virtual address instead of an IOVA is caught at once.
#pragma once

#include <npa/buffer/memory.hpp>
#include <npa/config.hpp>
#include <npa/status.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

namespace npa::sim {

/// A block of guest memory: what the guest (driver) uses, and what the device uses.
struct guest_block {
    std::byte* virt = nullptr;
    iova_t iova = bad_iova;
    std::size_t size = 0;

    explicit operator bool() const noexcept { return virt != nullptr; }
    /// The block as pool backing (npa::fixed_pool<npa::borrowed_memory>).
    [[nodiscard]] borrowed_memory backing() const noexcept { return {virt, size, iova}; }
};

class guest_memory {
public:
    /// Regions a guest may have (RAM split by holes, as a PC's below/above 4 GiB).
    static constexpr std::size_t max_regions = 8;
    /// First region's device address: 4 GiB, never a valid host heap pointer value.
    static constexpr iova_t default_iova_base = iova_t{1} << 32;
    /// Gap between regions, so that running off the end of one never lands in the next.
    static constexpr iova_t region_gap = iova_t{1} << 30;

    guest_memory() noexcept = default;
    /// One region of `bytes` at default_iova_base.
    explicit guest_memory(std::size_t bytes) noexcept { (void)add_region(bytes); }
    guest_memory(const guest_memory&) = delete;
    guest_memory& operator=(const guest_memory&) = delete;

    /// Adds a zeroed region of `bytes`, placed after the previous one (plus region_gap).
    [[nodiscard]] status add_region(std::size_t bytes) noexcept {
        if (count_ == max_regions) {
            return {errc::no_memory, "guest memory: too many regions"};
        }
        iova_t at = default_iova_base;
        if (count_ != 0) {
            const region& last = regions_[count_ - 1];
            at = last.iova + last.size + region_gap;
        }
        heap_memory mem(bytes, at);
        if (mem.base() == nullptr) {
            return {errc::no_memory, "guest memory: allocation failed"};
        }
        regions_[count_++] = region{mem.base(), mem.size(), mem.iova_base(), 0, std::move(mem)};
        return status::success();
    }

    /// Adds memory someone else owns as a region at its own device address (a host
    /// process's DMA memory, e.g. DPDK's, whose buffers a device model in that process
    /// must reach). Nothing is carved out of it by allocate(). The owner keeps it mapped
    /// while the device runs; it must not overlap a region already added.
    [[nodiscard]] status add_borrowed_region(const borrowed_memory& m) noexcept {
        if (count_ == max_regions) {
            return {errc::no_memory, "guest memory: too many regions"};
        }
        if (m.base() == nullptr || m.size() == 0) {
            return {errc::invalid_argument, "guest memory: empty borrowed region"};
        }
        for (std::size_t i = 0; i < count_; ++i) {
            const region& r = regions_[i];
            if (m.iova_base() < r.iova + r.size && r.iova < m.iova_base() + m.size()) {
                return {errc::invalid_argument, "guest memory: borrowed region overlaps another"};
            }
        }
        regions_[count_++] = region{m.base(), m.size(), m.iova_base(), m.size(), heap_memory{}};
        return status::success();
    }

    /// Carves `bytes` (aligned to `align`) out of the first region with room. Setup only.
    [[nodiscard]] guest_block allocate(std::size_t bytes, std::size_t align = 4096) noexcept {
        for (std::size_t i = 0; i < count_; ++i) {
            region& r = regions_[i];
            const std::size_t start = (r.used + align - 1) / align * align;
            if (start + bytes <= r.size) {
                r.used = start + bytes;
                return {r.base + start, r.iova + start, bytes};
            }
        }
        return {};
    }

    /// Host pointer for a device access of `len` bytes at `iova`, or nullptr (counted as a
    /// DMA fault) when any byte of it is outside guest memory.
    [[nodiscard]] std::byte* translate(iova_t iova, std::size_t len) noexcept {
        std::byte* p = lookup(iova, len);
        if (p == nullptr) {
            faults_.fetch_add(1, std::memory_order_relaxed);
        }
        return p;
    }

    /// True if [iova, iova + len) is guest memory (no fault counted: a validity check).
    [[nodiscard]] bool contains(iova_t iova, std::size_t len) const noexcept {
        return lookup(iova, len) != nullptr;
    }

    /// Device reads and writes of buffer memory. False (and a counted fault) on a bad
    /// address or an injected fault; nothing is copied then.
    [[nodiscard]] bool dma_read(iova_t iova, void* dst, std::size_t len) noexcept {
        std::byte* p = dma_target(iova, len, false);
        if (p != nullptr) {
            std::memcpy(dst, p, len);
        }
        return p != nullptr;
    }
    [[nodiscard]] bool dma_write(iova_t iova, const void* src, std::size_t len) noexcept {
        std::byte* p = dma_target(iova, len, true);
        if (p != nullptr) {
            std::memcpy(p, src, len);
        }
        return p != nullptr;
    }

    /// Called for every buffer DMA that reaches memory (dma_read, dma_write), on the thread
    /// that steps the device, before the bytes move: the access still happens, as it would
    /// on a real device. Ring accesses (through translate()) are not buffer DMA.
    using dma_watch_fn = void (*)(void* ctx, iova_t iova, std::size_t len, bool write) noexcept;
    /// Sets (or, with nullptr, clears) the watch. Not synchronised with the device: set it
    /// while no device runs on a thread of its own.
    void set_dma_watch(dma_watch_fn fn, void* ctx) noexcept {
        watch_ = fn;
        watch_ctx_ = ctx;
    }

    /// Fault injection: the next `n` buffer DMAs fail as if the IOMMU rejected them.
    void fail_next_dma(std::uint32_t n) noexcept { inject_.store(n, std::memory_order_relaxed); }

    [[nodiscard]] std::uint64_t dma_faults() const noexcept {
        return faults_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::size_t regions() const noexcept { return count_; }
    [[nodiscard]] guest_block region_block(std::size_t i) const noexcept {
        return i < count_ ? guest_block{regions_[i].base, regions_[i].iova, regions_[i].size}
                          : guest_block{};
    }

private:
    struct region {
        std::byte* base = nullptr;
        std::size_t size = 0;
        iova_t iova = bad_iova;
        std::size_t used = 0;
        heap_memory mem; ///< the memory, unless borrowed
    };

    std::byte* lookup(iova_t iova, std::size_t len) const noexcept {
        for (std::size_t i = 0; i < count_; ++i) {
            const region& r = regions_[i];
            const iova_t lo = r.iova;
            // Written so that no sum can overflow: iova - lo <= size - len.
            if (iova >= lo && len <= r.size && iova - lo <= r.size - len) {
                return r.base + (iova - lo);
            }
        }
        return nullptr;
    }

    std::byte* dma_target(iova_t iova, std::size_t len, bool write) noexcept {
        std::uint32_t left = inject_.load(std::memory_order_relaxed);
        while (left != 0 &&
               !inject_.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
        }
        if (left != 0) {
            faults_.fetch_add(1, std::memory_order_relaxed);
            return nullptr;
        }
        std::byte* p = translate(iova, len);
        if (p != nullptr && watch_ != nullptr) {
            watch_(watch_ctx_, iova, len, write);
        }
        return p;
    }

    std::array<region, max_regions> regions_{};
    std::size_t count_ = 0;
    std::atomic<std::uint32_t> inject_{0};
    std::atomic<std::uint64_t> faults_{0};
    dma_watch_fn watch_ = nullptr;
    void* watch_ctx_ = nullptr;
};

} // namespace npa::sim
