// npa/linux/vhost_user/guest_memory.hpp: the back end's view of a front end's memory, as
// SET_MEM_TABLE hands it over: up to 8 regions, each a file descriptor mapped shared here,
// each known by two addresses: its guest-physical address (what descriptors carry) and the
// front end's own user address (what SET_VRING_ADDR carries).
//
// Trust: a translation succeeds only when the whole range [addr, addr + len) lies inside
// one region; anything else answers nullptr and is never followed. A range that straddles
// two regions is refused too (the front ends npa meets, DPDK's virtio-user and QEMU, never
// split one buffer over two regions of one table).
#pragma once

#include <npa/linux/vhost_user/message.hpp>
#include <npa/status.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace npa::vhost_user {

class guest_memory {
public:
    struct region {
        std::uint64_t gpa = 0, uva = 0, size = 0;
        std::byte* host = nullptr;  ///< where the region starts in this process
        void* map = nullptr;        ///< what mmap returned (nullptr: the caller's memory)
        std::size_t map_len = 0;
    };

    guest_memory() noexcept = default;
    guest_memory(const guest_memory&) = delete;
    guest_memory& operator=(const guest_memory&) = delete;
    ~guest_memory() { clear(); }

    /// Maps every region of a checked SET_MEM_TABLE (message.hpp's check()), one descriptor
    /// each; the descriptors are closed either way. On failure nothing stays mapped.
    [[nodiscard]] status map(const memory_table& t, std::span<const int> fds) noexcept {
        clear();
        status st = status::success();
        for (std::uint32_t i = 0; i < t.nregions && i < fds.size(); ++i) {
            const memory_region& g = t.regions[i];
            // The region starts mmap_offset bytes into its file: map from 0 and step over it
            // (the offset need not be page-aligned).
            const std::uint64_t len = g.mmap_offset + g.memory_size;
            void* p = st ? ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0) : MAP_FAILED;
            if (st && p == MAP_FAILED) {
                st = {errc::no_memory, "vhost-user: mmap of a memory region failed"};
            }
            if (p != MAP_FAILED) {
                regions_[count_++] = {g.guest_phys_addr, g.userspace_addr, g.memory_size,
                                      static_cast<std::byte*>(p) + g.mmap_offset, p, len};
            }
        }
        for (const int fd : fds) {
            ::close(fd);
        }
        if (!st) {
            clear();
        }
        return st;
    }

    /// A region in memory the caller owns (tests, fuzzing): no mapping.
    [[nodiscard]] bool add(std::byte* host, std::uint64_t gpa, std::uint64_t uva, std::uint64_t size) noexcept {
        if (count_ == max_regions || host == nullptr || size == 0 || gpa + size < gpa || uva + size < uva) {
            return false;
        }
        regions_[count_++] = {gpa, uva, size, host, nullptr, 0};
        return true;
    }

    void clear() noexcept {
        for (std::uint32_t i = 0; i < count_; ++i) {
            if (regions_[i].map != nullptr) {
                ::munmap(regions_[i].map, regions_[i].map_len);
            }
        }
        count_ = 0;
    }

    [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
    [[nodiscard]] std::span<const region> regions() const noexcept { return {regions_, count_}; }

    /// The host address of guest-physical [addr, addr + len), or nullptr.
    [[nodiscard]] std::byte* gpa(std::uint64_t addr, std::uint64_t len) const noexcept {
        return find(addr, len, &region::gpa);
    }
    /// The host address of front-end user address [addr, addr + len), or nullptr.
    [[nodiscard]] std::byte* uva(std::uint64_t addr, std::uint64_t len) const noexcept {
        return find(addr, len, &region::uva);
    }

private:
    [[nodiscard]] std::byte* find(std::uint64_t addr, std::uint64_t len,
                                  std::uint64_t region::*base) const noexcept {
        for (std::uint32_t i = 0; i < count_; ++i) {
            const region& r = regions_[i];
            const std::uint64_t b = r.*base;
            // addr - b cannot wrap once addr >= b; len is compared to what is left, never added
            if (addr >= b && addr - b <= r.size && len <= r.size - (addr - b)) {
                return r.host + (addr - b);
            }
        }
        return nullptr;
    }

    region regions_[max_regions]{};
    std::uint32_t count_ = 0;
};

} // namespace npa::vhost_user
