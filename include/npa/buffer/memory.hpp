// npa/buffer/memory.hpp: backing memory for buffer pools and rings.
//
// A pool needs one contiguous block of memory with a device address (IOVA) for its
// start. Where the block comes from is a policy: the heap (tests), hugepages, a
// shared-memory segment (rings and pools shared between processes, the IVSHMEM idea),
// guest memory of the sim, an AF_XDP UMEM (whose "IOVA" is the offset into the UMEM).
// Anything with base(), size() and iova_base() is a backing (npa::memory_backing).
#pragma once

#include <npa/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace npa {

/// Heap memory, page-aligned, zeroed, owned. Allocated once at creation, never on the
/// data path. The IOVA of the start defaults to the virtual address (identity mapping,
/// as with an IOMMU in pass-through mode) and can be set to model a device's view.
class heap_memory {
public:
    static constexpr std::size_t alignment = 4096;

    heap_memory() noexcept = default;
    explicit heap_memory(std::size_t bytes, iova_t iova_base = bad_iova) noexcept
        : base_(static_cast<std::byte*>(
              ::operator new(bytes == 0 ? alignment : bytes, std::align_val_t{alignment},
                             std::nothrow))),
          size_(base_ != nullptr ? bytes : 0) {
        if (base_ != nullptr) {
            std::memset(base_, 0, size_);
            iova_ = iova_base == bad_iova ? reinterpret_cast<std::uintptr_t>(base_) : iova_base;
        }
    }
    heap_memory(heap_memory&& o) noexcept
        : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)),
          iova_(o.iova_) {}
    heap_memory& operator=(heap_memory&& o) noexcept {
        if (this != &o) {
            release();
            base_ = std::exchange(o.base_, nullptr);
            size_ = std::exchange(o.size_, 0);
            iova_ = o.iova_;
        }
        return *this;
    }
    heap_memory(const heap_memory&) = delete;
    heap_memory& operator=(const heap_memory&) = delete;
    ~heap_memory() { release(); }

    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] iova_t iova_base() const noexcept { return iova_; }

private:
    void release() noexcept {
        if (base_ != nullptr) {
            ::operator delete(base_, std::align_val_t{alignment});
            base_ = nullptr;
        }
    }

    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    iova_t iova_ = bad_iova;
};

/// A view of memory owned by someone else (a shared-memory segment, sim guest memory, a
/// UMEM). The owner must outlive every pool built on it.
class borrowed_memory {
public:
    borrowed_memory() noexcept = default;
    borrowed_memory(std::byte* base, std::size_t size, iova_t iova_base) noexcept
        : base_(base), size_(size), iova_(iova_base) {}

    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] iova_t iova_base() const noexcept { return iova_; }

private:
    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    iova_t iova_ = bad_iova;
};

} // namespace npa
