// npa/linux/pci/dma_memory.hpp: memory a PCI device can DMA into, from user space, as an
// npa::memory_backing (pools and rings are built on it as on the sim's guest memory).
//
// Hugepages (MAP_HUGETLB, 2 MiB): a hugepage is physically contiguous, so one block of
// them is contiguous for the device when the kernel gave physically adjacent pages (checked
// page by page, refused otherwise). The memory is locked (mlock: never swapped, never
// moved while locked) and its physical addresses read from /proc/self/pagemap: the PFN of
// each page, bits 0..54 of its 64-bit entry, bit 63 "present" (Documentation/admin-guide/
// mm/pagemap.rst). Without CAP_SYS_ADMIN the kernel reports PFN 0: refused with a message
// that says so. IOVA = physical address: right without an IOMMU (or with it in passthrough),
// which is the case uio_pci_generic is for.
// Hugepages must be reserved first (/proc/sys/vm/nr_hugepages, or reserve_hugepages()).
#pragma once

#include <npa/concepts/memory_backing.hpp>
#include <npa/config.hpp>
#include <npa/linux/pci/sysfs.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

namespace npa::lnx::pci {

inline constexpr std::size_t hugepage_size = std::size_t{2} << 20;  ///< x86-64 and arm64 default
inline constexpr const char* pagemap_path = "/proc/self/pagemap";
inline constexpr const char* nr_hugepages_path = "/proc/sys/vm/nr_hugepages";

/// Asks the kernel for at least `pages` 2 MiB hugepages in the pool (nr_hugepages).
[[nodiscard]] inline bool reserve_hugepages(pci_error& e, unsigned pages) noexcept {
    char cur[32];
    if (!read_attr(e, nr_hugepages_path, cur, sizeof cur)) {
        return false;
    }
    if (static_cast<unsigned>(std::strtoul(cur, nullptr, 10)) >= pages) {
        return true;
    }
    char v[32];
    std::snprintf(v, sizeof v, "%u", pages);
    if (!write_attr(e, nr_hugepages_path, v)) {
        return false;
    }
    if (!read_attr(e, nr_hugepages_path, cur, sizeof cur)) {
        return false;
    }
    if (static_cast<unsigned>(std::strtoul(cur, nullptr, 10)) < pages) {
        fail(e, errc::no_memory, 0, "%s: asked for %u hugepages, the kernel reserved %s",
             nr_hugepages_path, pages, cur);
        return false;
    }
    return true;
}

/// The physical address of the page holding `virt` (which must be mapped and locked).
[[nodiscard]] inline bool physical_address(pci_error& e, const void* virt, std::uint64_t& out) noexcept {
    const long page = ::sysconf(_SC_PAGESIZE);
    const int fd = ::open(pagemap_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        fail(e, errno_code(err), err, "%s: open", pagemap_path);
        return false;
    }
    const auto v = reinterpret_cast<std::uintptr_t>(virt);
    std::uint64_t entry = 0;
    const ssize_t n = ::pread(fd, &entry, sizeof entry,
                              static_cast<off_t>(v / static_cast<std::uintptr_t>(page) * 8));
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof entry)) {
        fail(e, errno_code(n < 0 ? err : EIO), n < 0 ? err : EIO, "%s: read of the entry for %p",
             pagemap_path, virt);
        return false;
    }
    constexpr std::uint64_t present = std::uint64_t{1} << 63;
    constexpr std::uint64_t pfn_mask = (std::uint64_t{1} << 55) - 1;
    if ((entry & present) == 0) {
        fail(e, errc::device_error, 0, "%s: page at %p not present (not touched or not locked)",
             pagemap_path, virt);
        return false;
    }
    const std::uint64_t pfn = entry & pfn_mask;
    if (pfn == 0) {
        fail(e, errc::refused, EPERM,
             "%s: PFN 0 for %p: the kernel hides physical addresses without CAP_SYS_ADMIN "
             "(run as root)", pagemap_path, virt);
        return false;
    }
    out = pfn * static_cast<std::uint64_t>(page) + (v % static_cast<std::uintptr_t>(page));
    return true;
}

/// Hugepage-backed, locked memory, contiguous for the device: an npa::memory_backing.
/// Owning and movable without moving the memory.
class dma_memory {
public:
    dma_memory() noexcept = default;

    /// At least `bytes`, rounded up to whole hugepages. Refused (with the reason in `e`)
    /// when no hugepages are reserved, the memory cannot be locked, the physical addresses
    /// cannot be read, or the pages are not physically adjacent.
    [[nodiscard]] static dma_memory create(pci_error& e, std::size_t bytes) noexcept {
        dma_memory m;
        const std::size_t len = (bytes + hugepage_size - 1) / hugepage_size * hugepage_size;
        if (len == 0) {
            fail(e, errc::invalid_argument, 0, "dma_memory: zero bytes asked for");
            return m;
        }
        void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            fail(e, errno_code(err), err,
                 "mmap MAP_HUGETLB %zu bytes (reserve hugepages first: %s)", len, nr_hugepages_path);
            return m;
        }
        m.base_ = static_cast<std::byte*>(p);
        m.size_ = len;
        if (::mlock(p, len) != 0) {
            const int err = errno;
            fail(e, errno_code(err), err, "mlock %zu bytes of hugepage memory", len);
            m.release();
            return m;
        }
        std::memset(p, 0, len);  // every page present before its address is read
        for (std::size_t off = 0; off < len; off += hugepage_size) {
            std::uint64_t pa = 0;
            if (!physical_address(e, m.base_ + off, pa)) {
                m.release();
                return m;
            }
            if (off == 0) {
                m.iova_ = pa;
            } else if (pa != m.iova_ + off) {
                fail(e, errc::no_memory, 0,
                     "dma_memory: hugepage %zu of %zu is at physical 0x%llx, not adjacent to the "
                     "first (0x%llx); ask for at most %zu bytes per block",
                     off / hugepage_size, len / hugepage_size, static_cast<unsigned long long>(pa),
                     static_cast<unsigned long long>(m.iova_ + off), hugepage_size);
                m.release();
                return m;
            }
        }
        return m;
    }

    dma_memory(dma_memory&& o) noexcept
        : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)),
          iova_(std::exchange(o.iova_, 0)) {}
    dma_memory& operator=(dma_memory&& o) noexcept {
        if (this != &o) {
            release();
            base_ = std::exchange(o.base_, nullptr);
            size_ = std::exchange(o.size_, 0);
            iova_ = std::exchange(o.iova_, 0);
        }
        return *this;
    }
    dma_memory(const dma_memory&) = delete;
    dma_memory& operator=(const dma_memory&) = delete;
    ~dma_memory() { release(); }

    [[nodiscard]] explicit operator bool() const noexcept { return base_ != nullptr; }
    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] iova_t iova_base() const noexcept { return iova_; }

private:
    void release() noexcept {
        if (base_ != nullptr) {
            ::munmap(base_, size_);  // also unlocks
            base_ = nullptr;
            size_ = 0;
            iova_ = 0;
        }
    }

    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
    iova_t iova_ = 0;
};

static_assert(memory_backing<dma_memory>);

/// A non-owning carve-out of a dma_memory: consecutive aligned blocks for rings and
/// shared areas, each with its device address.
class dma_arena {
public:
    explicit dma_arena(const dma_memory& m) noexcept : base_(m.base()), size_(m.size()), iova_(m.iova_base()) {}
    struct block {
        std::byte* virt = nullptr;
        iova_t iova = 0;
        std::size_t size = 0;
        [[nodiscard]] explicit operator bool() const noexcept { return virt != nullptr; }
    };
    /// `bytes` aligned to `align` (a power of two), zeroed; an empty block when out of room.
    [[nodiscard]] block take(std::size_t bytes, std::size_t align) noexcept {
        const std::size_t at = (used_ + align - 1) & ~(align - 1);
        if (at + bytes > size_) {
            return {};
        }
        used_ = at + bytes;
        std::memset(base_ + at, 0, bytes);
        return {base_ + at, iova_ + at, bytes};
    }

private:
    std::byte* base_;
    std::size_t size_;
    iova_t iova_;
    std::size_t used_ = 0;
};

} // namespace npa::lnx::pci
