// npa/buffer/packet_buffer.hpp: the packet buffer and the handle plugins use.
//
// A buffer is a fixed-size block of DMA-able memory plus a 64-byte header of metadata
// (where the data starts, how long it is, offload requests and results). The header
// lives in the pool; the data path passes 8-byte handles (buffer_ref) around, never the
// header itself, so rings of handles stay dense.
#pragma once

#include <npa/config.hpp>
#include <npa/offload.hpp>

#include <cstddef>
#include <cstdint>

namespace npa {

/// The header of one buffer of a pool. One cache line.
struct alignas(cache_line_size) packet_buffer {
    std::byte* buf_addr = nullptr;  ///< start of the buffer's memory (headroom included)
    iova_t buf_iova = bad_iova;     ///< device address of buf_addr
    std::uint32_t buf_len = 0;      ///< bytes of memory at buf_addr
    std::uint32_t data_len = 0;     ///< bytes of packet data at buf_addr + data_off
    std::uint16_t data_off = 0;     ///< headroom before the packet data
    std::uint16_t pool_id = 0;      ///< which pool it came from (diagnostics)
    std::uint32_t index = 0;        ///< position in its pool
    offload_info offload{};
    std::uint64_t user = 0;         ///< free for the environment (timestamps, sequence numbers)
    std::uint8_t in_pool = 1;       ///< owned by the pool's free list (double-free detection)
};
static_assert(sizeof(packet_buffer) == cache_line_size);

/// The handle the data path moves: a pointer to a packet_buffer, with accessors.
/// Trivially copyable, 8 bytes; null is the "no buffer" value.
class buffer_ref {
public:
    constexpr buffer_ref() noexcept = default;
    constexpr explicit buffer_ref(packet_buffer* p) noexcept : p_(p) {}

    [[nodiscard]] std::byte* data() const noexcept { return p_->buf_addr + p_->data_off; }
    [[nodiscard]] iova_t iova() const noexcept { return p_->buf_iova + p_->data_off; }
    [[nodiscard]] std::uint32_t length() const noexcept { return p_->data_len; }
    void set_length(std::uint32_t len) const noexcept { p_->data_len = len; }
    /// Bytes available from data() to the end of the buffer.
    [[nodiscard]] std::uint32_t capacity() const noexcept { return p_->buf_len - p_->data_off; }
    [[nodiscard]] std::uint32_t headroom() const noexcept { return p_->data_off; }
    [[nodiscard]] offload_info offload() const noexcept { return p_->offload; }
    void set_offload(const offload_info& o) const noexcept { p_->offload = o; }
    [[nodiscard]] std::uint64_t user() const noexcept { return p_->user; }
    void set_user(std::uint64_t v) const noexcept { p_->user = v; }

    [[nodiscard]] packet_buffer* get() const noexcept { return p_; }
    constexpr explicit operator bool() const noexcept { return p_ != nullptr; }
    friend constexpr bool operator==(buffer_ref, buffer_ref) noexcept = default;

private:
    packet_buffer* p_ = nullptr;
};
static_assert(sizeof(buffer_ref) == 8);

} // namespace npa
