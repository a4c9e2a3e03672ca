// npa/linux/umem.hpp: an AF_XDP UMEM as the backing memory of an npa buffer pool.
//
// A UMEM is a block of user memory the kernel reads and writes packets in; descriptors on
// the AF_XDP rings carry offsets into it, not pointers (Documentation/networking/af_xdp.rst,
// "UMEM"). That offset is exactly a device address, so the UMEM fits npa::memory_backing
// with iova_base() == 0: a pool built on it hands out buffers whose iova() is the UMEM
// offset the AF_XDP rings expect, and the AF_XDP plugin posts and sends them without a copy.
//
// Note: the namespace is npa::lnx, not npa::linux, because `linux` is a predefined macro
// in GNU C++ modes (-std=gnu++20).
#pragma once

#include <npa/buffer/fixed_pool.hpp>
#include <npa/config.hpp>

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace npa::lnx {

/// Chunk size of the UMEM and buffer size of the pool on it. AF_XDP's aligned mode
/// needs a power of two between 2048 and the page size; 2048 holds a 1500-byte MTU frame
/// after the kernel's XDP_PACKET_HEADROOM (256 bytes) and keeps the UMEM small.
inline constexpr std::uint32_t umem_chunk_size = 2048;
/// The kernel writes received frames this far into a chunk (XDP_PACKET_HEADROOM in
/// include/uapi/linux/bpf.h); the pool's headroom matches so RX and TX agree.
inline constexpr std::uint16_t umem_headroom = 256;
/// fixed_pool lays out [headers count*64][free stack count*4][data]; with a count that is
/// a multiple of this, the data area starts on a chunk boundary (count*68 % 2048 == 0),
/// so every buffer is exactly one aligned UMEM chunk.
inline constexpr std::uint32_t umem_count_multiple = 512;

/// Anonymous shared-nothing memory from mmap, owned, movable without moving the memory.
/// iova_base() is 0: device addresses are offsets into the UMEM.
class umem_memory {
public:
    umem_memory() noexcept = default;
    explicit umem_memory(std::size_t bytes) noexcept {
        // Round up to whole pages: XDP_UMEM_REG wants a page-aligned start and length.
        const std::size_t len = (bytes + 4095) / 4096 * 4096;
        void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            base_ = static_cast<std::byte*>(p);
            size_ = len;
        }
    }
    umem_memory(umem_memory&& o) noexcept
        : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    umem_memory& operator=(umem_memory&& o) noexcept {
        if (this != &o) {
            release();
            base_ = std::exchange(o.base_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    umem_memory(const umem_memory&) = delete;
    umem_memory& operator=(const umem_memory&) = delete;
    ~umem_memory() { release(); }

    [[nodiscard]] std::byte* base() const noexcept { return base_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] iova_t iova_base() const noexcept { return 0; }

private:
    void release() noexcept {
        if (base_ != nullptr) {
            ::munmap(base_, size_);
            base_ = nullptr;
        }
    }

    std::byte* base_ = nullptr;
    std::size_t size_ = 0;
};

using umem_pool = fixed_pool<umem_memory>;

/// The configuration of a pool whose buffers are whole UMEM chunks: buf_size ==
/// umem_chunk_size, headroom umem_headroom, count rounded up to a multiple of
/// umem_count_multiple. For pools on another backing that wraps a umem_memory.
[[nodiscard]] constexpr pool_config umem_pool_config(std::uint32_t count,
                                                     std::uint16_t pool_id = 0) noexcept {
    pool_config c;
    c.count = (count + umem_count_multiple - 1) / umem_count_multiple * umem_count_multiple;
    c.buf_size = umem_chunk_size;
    c.headroom = umem_headroom;
    c.pool_id = pool_id;
    return c;
}

/// A pool whose buffers are whole UMEM chunks (umem_pool_config).
[[nodiscard]] inline result<umem_pool> make_umem_pool(std::uint32_t count,
                                                      std::uint16_t pool_id = 0) noexcept {
    if (count == 0) {
        return {errc::invalid_argument, "umem pool: count must be at least 1"};
    }
    const pool_config c = umem_pool_config(count, pool_id);
    umem_memory mem(umem_pool::required_bytes(c));
    if (mem.base() == nullptr) {
        return {errc::no_memory, "umem pool: mmap of the UMEM failed"};
    }
    return umem_pool::create(c, std::move(mem));
}

} // namespace npa::lnx
